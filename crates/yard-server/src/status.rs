//! Live views as Server-Sent Events.
//!
//! `GET /api/status/{deploymentId}` is one deployment's progress, built on
//! [`yard_services::Deployer::follow`]: a watcher who joins late starts with
//! the current state, and any number of watchers share the one bus. The
//! stream ends after exactly one `complete` or `error`, or when the daemon
//! shuts down.
//!
//! `GET /api/events` is what the web page's lists show: the stacks, whole,
//! at once and again after every change.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::{Stream, StreamExt};
use serde::Serialize;
use std::sync::Arc;
use tokio::sync::broadcast::error::RecvError;
use yard_api::{ApiError, CompleteEvent, ErrorEvent, ProgressEvent, StackList, events};
use yard_core::{Deployment, DeploymentStatus};
use yard_services::YardEvent;

use crate::AppState;
use crate::error::AppError;
use crate::extract::PathArg;

/// Follow a deployment's progress (Server-Sent Events)
///
/// Events: `progress` (ProgressEvent) for the current state and every change,
/// then exactly one `complete` (CompleteEvent) or `error` (ErrorEvent), and
/// the stream ends. Joining late starts with the current state.
#[utoipa::path(
    get,
    path = "/api/status/{deploymentId}",
    tag = "deployments",
    params(("deploymentId" = String, Path, description = "The deployment's id")),
    responses(
        (status = 200, description = "An event stream of progress, then complete or error", content_type = "text/event-stream", body = ProgressEvent),
        (status = 401, description = "Missing or invalid token", body = ApiError),
        (status = 404, description = "No such deployment", body = ApiError),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn watch(
    State(state): State<AppState>,
    PathArg(id): PathArg<String>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, AppError> {
    let states = state
        .deployer
        .follow(&id)
        .await?
        .ok_or_else(|| AppError::not_found(format!("there is no deployment with id {id:?}")))?;
    let stream = states
        .flat_map(|deployment| futures::stream::iter(events_for(&deployment)))
        .take_until(state.shutdown.clone().cancelled_owned())
        .map(Ok);
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// How soon a browser that lost a stream tries again.
const RETRY: Duration = Duration::from_secs(1);

/// Follow the yard's stacks (Server-Sent Events)
///
/// Events: `stacks` (StackList) with every live stack, first at once and
/// then after each change to any of them. The stream lasts until the
/// client leaves or the daemon stops.
#[utoipa::path(
    get,
    path = "/api/events",
    tag = "stacks",
    responses(
        (status = 200, description = "An event stream of stack lists", content_type = "text/event-stream", body = StackList),
        (status = 401, description = "Missing or invalid token", body = ApiError),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn watch_stacks(
    State(state): State<AppState>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let changes = state.bus.subscribe();
    let deployer = state.deployer.clone();
    let rendered = Arc::clone(&state.stack_list);
    // The first list is read after subscribing, so no change is missed.
    let lists = futures::stream::unfold((changes, true), move |(mut changes, first)| {
        let deployer = deployer.clone();
        let rendered = Arc::clone(&rendered);
        async move {
            if !first {
                // Wait for a stack to change, then take every change already
                // queued: one list answers a burst of them.
                loop {
                    match changes.recv().await {
                        Ok(YardEvent::Deployment(_)) | Err(RecvError::Lagged(_)) => break,
                        Ok(_) => {}
                        Err(RecvError::Closed) => return None,
                    }
                }
                while changes.try_recv().is_ok() {}
            }
            match deployer.live_stacks().await {
                Ok(live) => {
                    let json = rendered.render(&live);
                    let event = Event::default()
                        .event(events::STACKS)
                        .data(String::from_utf8_lossy(&json))
                        .retry(RETRY);
                    Some((event, (changes, false)))
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot list stacks for a watcher");
                    None
                }
            }
        }
    });
    let stream = lists
        .take_until(state.shutdown.clone().cancelled_owned())
        .map(Ok);
    Sse::new(stream).keep_alive(KeepAlive::default())
}

/// The SSE events for one state: `progress`, and for a settled state the
/// one `complete` or `error` that ends the stream.
fn events_for(deployment: &Deployment) -> Vec<Event> {
    let id = deployment.seq.to_string();
    let progress = sse(events::PROGRESS, &ProgressEvent::from(deployment))
        .id(id.clone())
        .retry(RETRY);
    let last = match deployment.status {
        DeploymentStatus::Completed => sse(
            events::COMPLETE,
            &CompleteEvent {
                url: deployment.url.clone(),
            },
        ),
        DeploymentStatus::Failed => sse(
            events::ERROR,
            &ErrorEvent {
                message: deployment
                    .message
                    .clone()
                    .unwrap_or_else(|| "the deployment failed".to_owned()),
            },
        ),
        DeploymentStatus::Removing | DeploymentStatus::Removed => sse(
            events::ERROR,
            &ErrorEvent {
                message: format!("stack {} has been removed", deployment.name),
            },
        ),
        _ => return vec![progress],
    };
    vec![progress, last.id(id)]
}

fn sse(name: &'static str, payload: &impl Serialize) -> Event {
    Event::default()
        .event(name)
        .data(serde_json::to_string(payload).unwrap_or_default())
}
