//! The in-process event bus: one broadcast channel that every live view
//! subscribes to.
//!
//! Events are full snapshots, not deltas, so a subscriber that falls behind
//! (and is told so by [`tokio::sync::broadcast::error::RecvError::Lagged`])
//! loses nothing it cannot recover: it re-reads the current state from the
//! store and carries on from there.

use tokio::sync::broadcast;
use yard_core::{Agent, Deployment, Question};

/// Something that changed in the yard.
#[derive(Debug, Clone)]
pub enum YardEvent {
    /// A deployment's new state, after it was stored.
    Deployment(Deployment),
    /// An agent's new state, after it was stored.
    Agent(Agent),
    /// A question asked, or settled, after it was stored.
    Question(Question),
    /// An answering client of this daemon claimed question `id` (`holder`
    /// names it) or released it (`None`).
    QuestionClaim { id: String, holder: Option<u64> },
}

/// A cheap-to-clone handle on the bus.
#[derive(Debug, Clone)]
pub struct EventBus {
    sender: broadcast::Sender<YardEvent>,
}

impl EventBus {
    /// A bus that keeps up to `capacity` events for slow subscribers.
    pub fn new(capacity: usize) -> Self {
        let (sender, _) = broadcast::channel(capacity);
        Self { sender }
    }

    /// Sends to every current subscriber; nobody listening is fine.
    pub fn publish(&self, event: YardEvent) {
        let _ = self.sender.send(event);
    }

    /// Events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<YardEvent> {
        self.sender.subscribe()
    }
}
