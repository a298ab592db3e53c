//! Questions for a person: an agent asks, waits, and gets exactly the
//! answer a person gave to its question, or is told that nobody answered
//! in time, or that it was stopped.
//!
//! The question lives in the store from the moment it is asked, so a
//! restart loses none: a waiting call that reconnects waits on the same
//! question by its id. Waiting never depends on anyone being connected: it
//! races the answer (announced on the bus, and looked up in the store
//! every second for answers given through another daemon) against the
//! deadline and the caller's own cancellation, and whichever settles the
//! question first in the store wins.

use std::future::Future;
use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;
use yard_core::{
    Agent, AgentId, AgentStatus, Person, Question, QuestionError, QuestionKind, QuestionOutcome,
};
use yard_store::{Store, StoreError};

use crate::{EventBus, YardEvent, now};

/// How often a waiting call looks in the store besides listening on the
/// bus: answers given through another daemon are seen this late at most.
const LOOK_EVERY: Duration = Duration::from_secs(1);

/// What an agent asks.
#[derive(Debug, Clone)]
pub struct NewQuestion {
    pub kind: QuestionKind,
    pub message: String,
    /// What it is about (a tool call), shown beside the message.
    pub context: Option<String>,
    /// How long to wait for a person; `None` takes the yard's default.
    pub timeout_seconds: Option<i64>,
}

/// Why asking, answering or waiting failed.
#[derive(Debug, thiserror::Error)]
pub enum QuestionsError {
    #[error(transparent)]
    Invalid(#[from] QuestionError),
    #[error("there is no question with id {0:?}")]
    NoSuchQuestion(String),
    #[error("question {id:?} is already {outcome}; it takes no other answer")]
    Settled { id: String, outcome: &'static str },
    #[error("question {0:?} belongs to another person's agent")]
    NotYours(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The questions service; cheap to clone.
#[derive(Debug, Clone)]
pub struct Questions {
    store: Store,
    bus: EventBus,
    default_timeout: Duration,
}

impl Questions {
    /// Questions kept in `store`, announced on `bus`; a question that names
    /// no timeout waits `default_timeout`.
    pub fn new(store: Store, bus: EventBus, default_timeout: Duration) -> Self {
        Self {
            store,
            bus,
            default_timeout,
        }
    }

    /// Records `agent`'s question and announces it; returns it, pending.
    pub async fn ask(&self, agent: &Agent, asked: NewQuestion) -> Result<Question, QuestionsError> {
        let default = i64::try_from(self.default_timeout.as_secs()).unwrap_or(i64::MAX);
        let wait = yard_core::question::check_question(
            &asked.kind,
            &asked.message,
            asked.timeout_seconds.unwrap_or(default),
        )?;
        let created_at = now();
        let wait_ms = i64::try_from(wait.as_millis()).unwrap_or(i64::MAX);
        let question = Question {
            id: uuid::Uuid::now_v7().to_string(),
            agent_id: agent.id.clone(),
            owner_id: agent.owner.as_ref().map(|o| o.id.clone()),
            kind: asked.kind,
            message: asked.message,
            context: asked.context,
            deadline: yard_core::Timestamp(created_at.0.saturating_add(wait_ms)),
            created_at,
            outcome: QuestionOutcome::Pending,
        };
        self.store.insert_question(&question).await?;
        tracing::info!(question = %question.id, agent = %question.agent_id, kind = question.kind.as_str(), "question asked");
        self.bus.publish(YardEvent::Question(question.clone()));
        Ok(question)
    }

    /// Waits until question `id` is settled: answered, past its deadline
    /// (then it is settled as timed out), or `cancelled` resolves (then it
    /// is settled as cancelled). Returns how it ended; a question already
    /// settled returns at once, so a caller that reconnects after a
    /// restart gets the answer given meanwhile.
    pub async fn wait(
        &self,
        id: &str,
        cancelled: impl Future<Output = ()>,
    ) -> Result<QuestionOutcome, QuestionsError> {
        // Subscribed before the first look: nothing settles unseen.
        let mut events = self.bus.subscribe();
        tokio::pin!(cancelled);
        loop {
            let question = self
                .store
                .question(id)
                .await?
                .ok_or_else(|| QuestionsError::NoSuchQuestion(id.to_owned()))?;
            let question = self.settle_if_stale(question).await?;
            if !question.outcome.is_pending() {
                return Ok(question.outcome);
            }
            let left = Duration::from_millis(
                u64::try_from(question.deadline.0.saturating_sub(now().0)).unwrap_or(0),
            );
            let settle = tokio::select! {
                () = tokio::time::sleep(left) => Some(QuestionOutcome::TimedOut),
                () = &mut cancelled => Some(QuestionOutcome::Cancelled),
                () = tokio::time::sleep(LOOK_EVERY) => None,
                () = settled_on_bus(&mut events, &question) => None,
            };
            // Whoever settles it first, the store says how at the next look.
            if let Some(outcome) = settle {
                self.settle(id, &outcome).await?;
            }
        }
    }

    /// Settles `question` if nobody can answer it any more: its deadline
    /// passed (timed out) or its agent is no longer running (cancelled),
    /// e.g. while no daemon was waiting on it. Returns it as it now is.
    async fn settle_if_stale(&self, question: Question) -> Result<Question, QuestionsError> {
        if !question.outcome.is_pending() {
            return Ok(question);
        }
        let outcome = if question.deadline.0 <= now().0 {
            QuestionOutcome::TimedOut
        } else {
            let agent = self.store.agent(&question.agent_id).await?;
            match agent {
                Some(agent) if AgentStatus::LIVE.contains(&agent.status) => return Ok(question),
                _ => QuestionOutcome::Cancelled,
            }
        };
        self.settle(&question.id, &outcome).await?;
        self.store
            .question(&question.id)
            .await?
            .ok_or_else(|| QuestionsError::NoSuchQuestion(question.id.clone()))
    }

    /// Writes `outcome` if the question is still pending, and announces it.
    async fn settle(&self, id: &str, outcome: &QuestionOutcome) -> Result<(), QuestionsError> {
        if self.store.settle_question(id, outcome, now()).await? {
            tracing::info!(question = %id, outcome = outcome.as_str(), "question settled");
            self.announce(id).await?;
        }
        Ok(())
    }

    /// The pending questions `by` may answer (their own agents', or all
    /// for an admin), oldest first.
    pub async fn pending(&self, by: &Person) -> Result<Vec<Question>, QuestionsError> {
        let mut pending = Vec::new();
        for question in self.store.pending_questions().await? {
            if !may_answer(by, &question) {
                continue;
            }
            let question = self.settle_if_stale(question).await?;
            if question.outcome.is_pending() {
                pending.push(question);
            }
        }
        Ok(pending)
    }

    /// Answers question `id` for `by`; refused when the question is not
    /// theirs to answer, already settled, or `answer` does not fit it.
    pub async fn answer(
        &self,
        by: &Person,
        id: &str,
        answer: &str,
        reason: Option<String>,
    ) -> Result<Question, QuestionsError> {
        let question = self
            .store
            .question(id)
            .await?
            .ok_or_else(|| QuestionsError::NoSuchQuestion(id.to_owned()))?;
        if !may_answer(by, &question) {
            // Said the same way as an unknown id: another person's
            // questions are not theirs to learn about.
            return Err(QuestionsError::NoSuchQuestion(id.to_owned()));
        }
        let question = self.settle_if_stale(question).await?;
        if !question.outcome.is_pending() {
            return Err(QuestionsError::Settled {
                id: id.to_owned(),
                outcome: question.outcome.as_str(),
            });
        }
        let answer = question.check_answer(answer)?;
        let outcome = QuestionOutcome::Answered {
            answer,
            by: by.owner.name.clone(),
            reason: reason.filter(|r| !r.trim().is_empty()),
        };
        if !self.store.settle_question(id, &outcome, now()).await? {
            let settled = self.store.question(id).await?;
            return Err(QuestionsError::Settled {
                id: id.to_owned(),
                outcome: settled.map_or("settled", |q| q.outcome.as_str()),
            });
        }
        tracing::info!(question = %id, by = %by.owner.name, "question answered");
        self.announce(id).await
    }

    /// Cancels the pending questions of an agent that ended.
    pub async fn cancel_agent(&self, agent: &AgentId) -> Result<usize, QuestionsError> {
        let cancelled = self.store.cancel_questions_of(agent, now()).await?;
        for id in &cancelled {
            self.announce(id).await?;
        }
        Ok(cancelled.len())
    }

    async fn announce(&self, id: &str) -> Result<Question, QuestionsError> {
        let question = self
            .store
            .question(id)
            .await?
            .ok_or_else(|| QuestionsError::NoSuchQuestion(id.to_owned()))?;
        self.bus.publish(YardEvent::Question(question.clone()));
        Ok(question)
    }
}

/// Whether `by` may see and answer `question`: a person answers their own
/// agents' questions, an admin everyone's.
fn may_answer(by: &Person, question: &Question) -> bool {
    by.is_admin() || question.owner_id.as_deref() == Some(by.owner.id.as_str())
}

/// Resolves when the bus says `question` was settled, or may have been
/// (its agent changed, or the subscriber fell behind); never when the bus
/// is gone.
async fn settled_on_bus(
    events: &mut tokio::sync::broadcast::Receiver<YardEvent>,
    question: &Question,
) {
    loop {
        match events.recv().await {
            Ok(YardEvent::Question(q)) if q.id == question.id && !q.outcome.is_pending() => return,
            Ok(YardEvent::Agent(agent)) if agent.id == question.agent_id => return,
            Ok(_) => {}
            Err(RecvError::Lagged(_)) => return,
            Err(RecvError::Closed) => std::future::pending::<()>().await,
        }
    }
}
