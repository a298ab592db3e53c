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

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
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
    /// What the asker needs to make its reply later (see
    /// [`Question::origin`]).
    pub origin: Option<String>,
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
    #[error("question {0:?} is shown by another answering client; wait until it is released")]
    Claimed(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One answering client (a terminal, a page), for claims.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientId(pub u64);

/// Which answering client shows which question, on this daemon. Claims
/// are only a courtesy between clients (two people do not answer the same
/// popup): an answer never needs one, and a claim never holds an agent up.
#[derive(Debug, Default)]
struct Claims {
    next_client: AtomicU64,
    held: Mutex<HashMap<String, ClientId>>,
}

/// The questions service; cheap to clone.
#[derive(Debug, Clone)]
pub struct Questions {
    store: Store,
    bus: EventBus,
    default_timeout: Duration,
    claims: Arc<Claims>,
    asked_here: Arc<AskedHere>,
}

/// The pending questions asked through this daemon, as asked: an answer
/// is checked against them without a look in the store, leaving the one
/// conditional write that decides which outcome wins. Only a cache: a
/// question settled elsewhere (another daemon) stays here until an answer
/// to it fails to be written, or its deadline passes.
#[derive(Debug, Default)]
struct AskedHere {
    questions: Mutex<HashMap<String, Question>>,
}

impl AskedHere {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Question>> {
        self.questions.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn remember(&self, question: &Question) {
        let now = now();
        let mut questions = self.lock();
        questions.retain(|_, q| q.deadline > now);
        questions.insert(question.id.clone(), question.clone());
    }

    /// Question `id` if it was asked here, is thought pending and its
    /// deadline has not passed.
    fn get(&self, id: &str) -> Option<Question> {
        let now = now();
        self.lock().get(id).filter(|q| q.deadline > now).cloned()
    }

    fn forget(&self, id: &str) {
        self.lock().remove(id);
    }
}

impl Questions {
    /// Questions kept in `store`, announced on `bus`; a question that names
    /// no timeout waits `default_timeout`.
    pub fn new(store: Store, bus: EventBus, default_timeout: Duration) -> Self {
        Self {
            store,
            bus,
            default_timeout,
            claims: Arc::default(),
            asked_here: Arc::default(),
        }
    }

    /// A new answering client's id.
    pub fn connect(&self) -> ClientId {
        ClientId(self.claims.next_client.fetch_add(1, Ordering::Relaxed))
    }

    /// Whether `by` may see and answer `question`.
    pub fn visible_to(by: &Person, question: &Question) -> bool {
        may_answer(by, question)
    }

    /// The questions some client claims, with who.
    pub fn claims(&self) -> HashMap<String, ClientId> {
        self.held().clone()
    }

    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<String, ClientId>> {
        self.claims.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `client` (of person `by`) shows question `id`; refused when it is
    /// not theirs, not pending, or another client shows it.
    pub async fn claim(
        &self,
        by: &Person,
        client: ClientId,
        id: &str,
    ) -> Result<(), QuestionsError> {
        let question = self.answerable(by, id).await?;
        {
            let mut held = self.held();
            match held.get(id) {
                Some(holder) if *holder != client => {
                    return Err(QuestionsError::Claimed(id.to_owned()));
                }
                Some(_) => return Ok(()),
                None => held.insert(question.id.clone(), client),
            };
        }
        self.bus.publish(YardEvent::QuestionClaim {
            id: question.id,
            holder: Some(client.0),
        });
        Ok(())
    }

    /// `client` no longer shows question `id`; releasing what it does not
    /// hold changes nothing.
    pub fn release(&self, client: ClientId, id: &str) {
        let released = {
            let mut held = self.held();
            held.get(id) == Some(&client) && held.remove(id).is_some()
        };
        if released {
            self.bus.publish(YardEvent::QuestionClaim {
                id: id.to_owned(),
                holder: None,
            });
        }
    }

    /// `client` went away: everything it showed may be claimed again.
    pub fn disconnect(&self, client: ClientId) {
        let released: Vec<String> = {
            let mut held = self.held();
            let ids = held
                .iter()
                .filter(|(_, holder)| **holder == client)
                .map(|(id, _)| id.clone())
                .collect::<Vec<_>>();
            for id in &ids {
                held.remove(id);
            }
            ids
        };
        for id in released {
            self.bus
                .publish(YardEvent::QuestionClaim { id, holder: None });
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
            origin: asked.origin,
            agent_task: task_line(&agent.task),
        };
        self.store.insert_question(&question).await?;
        self.asked_here.remember(&question);
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
        let events = self.bus.subscribe();
        self.wait_listening(id, None, events, cancelled).await
    }

    /// Asks like [`Questions::ask`], listening for the answer before the
    /// question is announced: however soon a person answers, the waiter
    /// is ready, and its first wait needs no look in the store.
    pub async fn ask_to_wait(
        &self,
        agent: &Agent,
        asked: NewQuestion,
    ) -> Result<Waiting, QuestionsError> {
        let events = self.bus.subscribe();
        let question = self.ask(agent, asked).await?;
        Ok(Waiting { question, events })
    }

    /// The wait, with the bus already listened to, and the question as it
    /// was just asked (pending, its agent live) when the caller knows it.
    async fn wait_listening(
        &self,
        id: &str,
        mut known: Option<Question>,
        mut events: tokio::sync::broadcast::Receiver<YardEvent>,
        cancelled: impl Future<Output = ()>,
    ) -> Result<QuestionOutcome, QuestionsError> {
        tokio::pin!(cancelled);
        loop {
            let question = match known.take() {
                Some(question) => question,
                None => {
                    let question = self
                        .store
                        .question(id)
                        .await?
                        .ok_or_else(|| QuestionsError::NoSuchQuestion(id.to_owned()))?;
                    self.settle_if_stale(question).await?
                }
            };
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
                settled = settled_on_bus(&mut events, &question) => match settled {
                    // The bus carries the stored outcome: no need to look.
                    Some(outcome) => return Ok(outcome),
                    None => None,
                },
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
        let status = if question.deadline.0 <= now().0 {
            None
        } else {
            self.store
                .agent(&question.agent_id)
                .await?
                .map(|agent| agent.status)
        };
        self.settle_if_stale_with(question, status).await
    }

    /// [`Questions::settle_if_stale`] with the asking agent's status known
    /// (`None`: not in the store).
    async fn settle_if_stale_with(
        &self,
        question: Question,
        agent_status: Option<AgentStatus>,
    ) -> Result<Question, QuestionsError> {
        if !question.outcome.is_pending() {
            return Ok(question);
        }
        let outcome = if question.deadline.0 <= now().0 {
            QuestionOutcome::TimedOut
        } else {
            match agent_status {
                Some(status) if AgentStatus::LIVE.contains(&status) => return Ok(question),
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
        self.asked_here.forget(id);
        if self.store.settle_question(id, outcome, now()).await? {
            tracing::info!(question = %id, outcome = outcome.as_str(), "question settled");
            self.announce(id).await?;
        }
        Ok(())
    }

    /// The pending questions `by` may answer (their own agents', or all
    /// for an admin), oldest first.
    pub async fn pending(&self, by: &Person) -> Result<Vec<Question>, QuestionsError> {
        self.pending_where(|question| may_answer(by, question))
            .await
    }

    /// The pending questions of `agent`, oldest first.
    pub async fn pending_of(&self, agent: &AgentId) -> Result<Vec<Question>, QuestionsError> {
        self.pending_where(|question| question.agent_id == *agent)
            .await
    }

    /// The pending questions `wanted` keeps, oldest first; those nobody
    /// can answer any more are settled on the way.
    async fn pending_where(
        &self,
        wanted: impl Fn(&Question) -> bool,
    ) -> Result<Vec<Question>, QuestionsError> {
        let mut pending = Vec::new();
        for question in self.store.pending_questions().await? {
            if !wanted(&question) {
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
        self.answer_as(by, None, id, answer, reason).await
    }

    /// [`Questions::answer`] from answering client `client`, which must
    /// not be refused by another client's claim.
    pub async fn answer_as(
        &self,
        by: &Person,
        client: Option<ClientId>,
        id: &str,
        answer: &str,
        reason: Option<String>,
    ) -> Result<Question, QuestionsError> {
        // Asked here: no look in the store before the one conditional
        // write, which refuses a question settled meanwhile or whose agent
        // has ended; then the usual look says why.
        if let Some(question) = self.asked_here.get(id) {
            if !may_answer(by, &question) {
                return Err(QuestionsError::NoSuchQuestion(id.to_owned()));
            }
            self.check_claim(client, id)?;
            let (answer, reason) = checked_answer(&question, answer, reason.as_deref())?;
            let written = self
                .store
                .answer_question(id, &answer, &by.owner.name, reason.as_deref(), now())
                .await?;
            self.asked_here.forget(id);
            if written {
                let outcome = QuestionOutcome::Answered {
                    answer,
                    by: by.owner.name.clone(),
                    reason,
                };
                return Ok(self.answered(by, question, outcome));
            }
        }
        let question = self.answerable(by, id).await?;
        self.check_claim(client, id)?;
        let (answer, reason) = checked_answer(&question, answer, reason.as_deref())?;
        let outcome = QuestionOutcome::Answered {
            answer,
            by: by.owner.name.clone(),
            reason,
        };
        if !self.store.settle_question(id, &outcome, now()).await? {
            let settled = self.store.question(id).await?;
            return Err(QuestionsError::Settled {
                id: id.to_owned(),
                outcome: settled.map_or("settled", |q| q.outcome.as_str()),
            });
        }
        Ok(self.answered(by, question, outcome))
    }

    /// Refused when another client than `client` shows question `id`.
    fn check_claim(&self, client: Option<ClientId>, id: &str) -> Result<(), QuestionsError> {
        match client {
            Some(client) if self.held().get(id).is_some_and(|holder| *holder != client) => {
                Err(QuestionsError::Claimed(id.to_owned()))
            }
            _ => Ok(()),
        }
    }

    /// Announces `question` as answered by `by` with `outcome`, as the
    /// store now holds it (written in one conditional statement, so not
    /// read back), before the log line, so the waiting agent is not kept
    /// waiting for it.
    fn answered(&self, by: &Person, question: Question, outcome: QuestionOutcome) -> Question {
        self.held().remove(&question.id);
        let answered = Question {
            outcome,
            ..question
        };
        self.bus.publish(YardEvent::Question(answered.clone()));
        tracing::info!(question = %answered.id, by = %by.owner.name, "question answered");
        answered
    }

    /// Question `id` if `by` may answer it and it is pending.
    async fn answerable(&self, by: &Person, id: &str) -> Result<Question, QuestionsError> {
        let (question, agent_status) = self
            .store
            .question_and_agent_status(id)
            .await?
            .ok_or_else(|| QuestionsError::NoSuchQuestion(id.to_owned()))?;
        if !may_answer(by, &question) {
            // Said the same way as an unknown id: another person's
            // questions are not theirs to learn about.
            return Err(QuestionsError::NoSuchQuestion(id.to_owned()));
        }
        let question = self.settle_if_stale_with(question, agent_status).await?;
        if !question.outcome.is_pending() {
            return Err(QuestionsError::Settled {
                id: id.to_owned(),
                outcome: question.outcome.as_str(),
            });
        }
        Ok(question)
    }

    /// Question `id` if it is `agent`'s own; another agent's is unknown.
    pub async fn of_agent(&self, agent: &AgentId, id: &str) -> Result<Question, QuestionsError> {
        match self.store.question(id).await? {
            Some(question) if question.agent_id == *agent => Ok(question),
            _ => Err(QuestionsError::NoSuchQuestion(id.to_owned())),
        }
    }

    /// Takes back a question its asker no longer waits on (settled as
    /// cancelled).
    pub async fn withdraw(&self, id: &str) -> Result<(), QuestionsError> {
        self.settle(id, &QuestionOutcome::Cancelled).await
    }

    /// Cancels the pending questions of an agent that ended.
    pub async fn cancel_agent(&self, agent: &AgentId) -> Result<usize, QuestionsError> {
        let cancelled = self.store.cancel_questions_of(agent, now()).await?;
        for id in &cancelled {
            self.asked_here.forget(id);
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

/// A question just asked whose answer is being listened for; see
/// [`Questions::ask_to_wait`].
#[derive(Debug)]
pub struct Waiting {
    question: Question,
    events: tokio::sync::broadcast::Receiver<YardEvent>,
}

impl Waiting {
    /// The question, as asked.
    pub fn question(&self) -> &Question {
        &self.question
    }

    /// Waits as [`Questions::wait`] does.
    pub async fn wait(
        self,
        questions: &Questions,
        cancelled: impl Future<Output = ()>,
    ) -> Result<QuestionOutcome, QuestionsError> {
        let id = self.question.id.clone();
        questions
            .wait_listening(&id, Some(self.question), self.events, cancelled)
            .await
    }
}

/// `answer` as `question` takes it, and the reason if one was given.
fn checked_answer(
    question: &Question,
    answer: &str,
    reason: Option<&str>,
) -> Result<(String, Option<String>), QuestionsError> {
    let answer = question.check_answer(answer)?;
    let reason = reason.filter(|r| !r.trim().is_empty()).map(str::to_owned);
    Ok((answer, reason))
}

/// The start of an agent's task as a question shows it: its first line
/// that says something, at most [`TASK_LINE_CHARS`] characters.
fn task_line(task: &str) -> Option<String> {
    let line = task
        .lines()
        .map(|l| l.trim().trim_start_matches(':').trim())
        .find(|l| !l.is_empty())?;
    Some(line.chars().take(TASK_LINE_CHARS).collect())
}

/// How much of an agent's task a question keeps.
const TASK_LINE_CHARS: usize = 120;

/// Whether `by` may see and answer `question`: a person answers their own
/// agents' questions, an admin everyone's.
fn may_answer(by: &Person, question: &Question) -> bool {
    by.is_admin() || question.owner_id.as_deref() == Some(by.owner.id.as_str())
}

/// Resolves when the bus says `question` was settled (with its outcome),
/// or may have been (its agent changed, or the subscriber fell behind:
/// `None`, look in the store); never when the bus is gone.
async fn settled_on_bus(
    events: &mut tokio::sync::broadcast::Receiver<YardEvent>,
    question: &Question,
) -> Option<QuestionOutcome> {
    loop {
        match events.recv().await {
            Ok(YardEvent::Question(q)) if q.id == question.id && !q.outcome.is_pending() => {
                return Some(q.outcome);
            }
            Ok(YardEvent::Agent(agent)) if agent.id == question.agent_id => return None,
            Ok(_) => {}
            Err(RecvError::Lagged(_)) => return None,
            Err(RecvError::Closed) => std::future::pending::<()>().await,
        }
    }
}
