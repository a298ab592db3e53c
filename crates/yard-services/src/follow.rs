//! Following one deployment: its current state, then every newer one, until
//! it settles. Every live view of a deployment (SSE, MCP progress) is built
//! on this.
//!
//! The bus is subscribed to *before* the current state is read, and states
//! not newer than the last one shown (`seq`) are skipped, so a follower who
//! joins late neither misses a change nor sees one twice. A follower that
//! falls behind the bus re-reads the store and carries on.

use futures::Stream;
use tokio::sync::broadcast::{self, error::RecvError};
use yard_core::{Deployment, DeploymentId};
use yard_store::Store;

use crate::YardEvent;

struct Follow {
    id: DeploymentId,
    shown_seq: i64,
    next: Option<Deployment>,
    events: broadcast::Receiver<YardEvent>,
    store: Store,
    settled: bool,
}

/// The states of the deployment `current` is a state of: `current` first,
/// then each newer one; the stream ends after the first settled state
/// (completed, failed, removing or removed).
pub(crate) fn follow(
    current: Deployment,
    events: broadcast::Receiver<YardEvent>,
    store: Store,
) -> impl Stream<Item = Deployment> + Send + 'static {
    let follow = Follow {
        id: current.id.clone(),
        shown_seq: 0,
        next: Some(current),
        events,
        store,
        settled: false,
    };
    futures::stream::unfold(follow, |mut follow| async move {
        let state = follow.next_state().await?;
        Some((state, follow))
    })
}

impl Follow {
    async fn next_state(&mut self) -> Option<Deployment> {
        loop {
            if self.settled {
                return None;
            }
            let candidate = match self.next.take() {
                Some(state) => state,
                None => match self.events.recv().await {
                    Ok(YardEvent::Deployment(d)) if d.id == self.id => d,
                    Ok(_) => continue,
                    // Fell behind the bus: the store has the latest state.
                    Err(RecvError::Lagged(_)) => {
                        match self.store.deployment(self.id.as_str()).await {
                            Ok(Some(d)) => d,
                            Ok(None) => return None,
                            Err(e) => {
                                tracing::error!(deployment = %self.id, error = %e, "a follower lost the store");
                                return None;
                            }
                        }
                    }
                    Err(RecvError::Closed) => return None,
                },
            };
            if candidate.seq <= self.shown_seq {
                continue;
            }
            self.shown_seq = candidate.seq;
            self.settled = !candidate.status.is_in_progress();
            return Some(candidate);
        }
    }
}
