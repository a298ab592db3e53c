//! `GET /api/status/{deploymentId}`: a deployment's progress as Server-Sent Events.
//!
//! Built on [`yard_services::Deployer::follow`]: a watcher who joins late
//! starts with the current state, and any number of watchers share the one
//! bus. The stream ends after exactly one `complete` or `error`, or when the
//! daemon shuts down.

use std::convert::Infallible;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::{Stream, StreamExt};
use serde::Serialize;
use yard_api::{ApiError, CompleteEvent, ErrorEvent, ProgressEvent, events};
use yard_core::{Deployment, DeploymentStatus};

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

/// The SSE events for one state: `progress`, and for a settled state the
/// one `complete` or `error` that ends the stream.
fn events_for(deployment: &Deployment) -> Vec<Event> {
    let id = deployment.seq.to_string();
    let progress = sse(events::PROGRESS, &ProgressEvent::from(deployment)).id(id.clone());
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
