//! `GET /api/status/{deploymentId}`: a deployment's progress as Server-Sent Events.
//!
//! The handler subscribes to the bus *before* it reads the deployment's
//! current state, then skips bus events that are not newer than that state
//! (`seq`), so a watcher who joins late neither misses an event nor sees one
//! twice. Any number of watchers share the one bus. The stream ends after
//! exactly one `complete` or `error`, or when the daemon shuts down.

use std::collections::VecDeque;
use std::convert::Infallible;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::{Stream, StreamExt};
use serde::Serialize;
use tokio::sync::broadcast::{self, error::RecvError};
use yard_api::{ApiError, CompleteEvent, ErrorEvent, ProgressEvent, events};
use yard_core::{Deployment, DeploymentId, DeploymentStatus};
use yard_services::YardEvent;
use yard_store::Store;

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
    let events = state.bus.subscribe();
    let store = state.deployer.store().clone();
    let current = store
        .deployment(&id)
        .await?
        .ok_or_else(|| AppError::not_found(format!("there is no deployment with id {id:?}")))?;
    let stream = Watch::new(current, events, store)
        .into_stream()
        .take_until(state.shutdown.clone().cancelled_owned())
        .map(Ok);
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

struct Watch {
    id: DeploymentId,
    seen_seq: i64,
    events: broadcast::Receiver<YardEvent>,
    store: Store,
    queue: VecDeque<Event>,
    finished: bool,
}

impl Watch {
    fn new(current: Deployment, events: broadcast::Receiver<YardEvent>, store: Store) -> Self {
        let mut watch = Self {
            id: current.id.clone(),
            seen_seq: 0,
            events,
            store,
            queue: VecDeque::new(),
            finished: false,
        };
        watch.show(&current);
        watch
    }

    fn into_stream(self) -> impl Stream<Item = Event> {
        futures::stream::unfold(self, |mut watch| async move {
            let event = watch.next_event().await?;
            Some((event, watch))
        })
    }

    /// Queues the events for a newer state of the deployment.
    fn show(&mut self, deployment: &Deployment) {
        if deployment.seq <= self.seen_seq || self.finished {
            return;
        }
        self.seen_seq = deployment.seq;
        let id = deployment.seq.to_string();
        self.queue
            .push_back(sse(events::PROGRESS, &ProgressEvent::from(deployment)).id(id.clone()));
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
            _ => return,
        };
        self.queue.push_back(last.id(id));
        self.finished = true;
    }

    async fn next_event(&mut self) -> Option<Event> {
        loop {
            if let Some(event) = self.queue.pop_front() {
                return Some(event);
            }
            if self.finished {
                return None;
            }
            match self.events.recv().await {
                Ok(YardEvent::Deployment(d)) if d.id == self.id => self.show(&d),
                Ok(_) => {}
                // Fell behind the bus: the store has the latest state.
                Err(RecvError::Lagged(_)) => match self.store.deployment(self.id.as_str()).await {
                    Ok(Some(d)) => self.show(&d),
                    Ok(None) => return None,
                    Err(e) => {
                        tracing::error!(deployment = %self.id, error = %e, "watch lost the store");
                        return None;
                    }
                },
                Err(RecvError::Closed) => return None,
            }
        }
    }
}

fn sse(name: &'static str, payload: &impl Serialize) -> Event {
    Event::default()
        .event(name)
        .data(serde_json::to_string(payload).unwrap_or_default())
}
