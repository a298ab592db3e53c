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
//!
//! Where this daemon alone writes its store (a SQLite file in its data
//! directory, see [`Questions::with_answer_log`]), its memory decides the
//! answers to the questions asked through it: an answer is made durable by
//! one append to the answer log, the waiting agent hears it at once, and
//! the store has it some tens of milliseconds later, in one write for a
//! burst.
//! Until then every look at the store sees the answer over what the store
//! says, so nothing reads a decided question as pending.

use std::collections::HashMap;
use std::future::Future;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;
use yard_core::{
    Agent, AgentId, AgentStatus, Person, Question, QuestionError, QuestionKind, QuestionOutcome,
    Timestamp,
};
use yard_store::{Store, StoreError};

use crate::answer_log::{AnswerLog, LoggedAnswer};
use crate::{EventBus, YardEvent, now};

/// How often a waiting call looks in the store besides listening on the
/// bus: answers given through another daemon are seen this late at most.
const LOOK_EVERY: Duration = Duration::from_secs(1);

/// How long an answer decided here waits before it is written to the
/// store: long enough that the waiting agent has its reply before the
/// write takes the machine's time, and that a burst of answers goes in
/// one write; short enough that nobody notices.
const WRITE_DELAY: Duration = Duration::from_millis(50);

/// How long the keeper waits before trying a failed write again.
const WRITE_RETRY: Duration = Duration::from_secs(1);

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
    #[error("the answer log {path}: {source}")]
    AnswerLog {
        path: String,
        #[source]
        source: std::io::Error,
    },
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
    /// Set when this daemon alone writes the store.
    answer_log: Option<Arc<AnswerLog>>,
    /// Wakes the keeper when an answer is decided here.
    decided: Arc<tokio::sync::Notify>,
    /// Held by each look at questions in the store and each change of
    /// them, and by the write of answers decided here: a look never falls
    /// between that write and the answers leaving memory.
    store_turn: Arc<tokio::sync::Mutex<()>>,
}

/// The pending questions asked through this daemon, as asked, and the
/// answers decided here that the store does not have yet.
///
/// An answer to a question asked here is checked against it without a
/// look in the store. With an answer log, taking the question out of
/// `asked` decides it (whoever takes it first); otherwise one conditional
/// write in the store does. A question leaves `asked` when it is decided,
/// settled any other way, or past its deadline, and never comes back, so
/// a question not in `asked` is decided in the store. Without a log this
/// is only a cache: a question settled through another daemon stays in
/// `asked` until an answer to it fails to be written.
#[derive(Debug, Default)]
struct AskedHere {
    state: Mutex<Asked>,
}

#[derive(Debug, Default)]
struct Asked {
    asked: HashMap<String, Question>,
    /// Answered here, logged, not yet in the store: as the store will
    /// have them, with when they were answered.
    unwritten: HashMap<String, (Question, Timestamp)>,
}

impl AskedHere {
    fn lock(&self) -> std::sync::MutexGuard<'_, Asked> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn remember(&self, question: &Question) {
        let now = now();
        let mut state = self.lock();
        state.asked.retain(|_, q| q.deadline > now);
        state.asked.insert(question.id.clone(), question.clone());
    }

    /// Question `id` if it was asked here, is thought pending and its
    /// deadline has not passed.
    fn get(&self, id: &str) -> Option<Question> {
        let now = now();
        self.lock()
            .asked
            .get(id)
            .filter(|q| q.deadline > now)
            .cloned()
    }

    fn forget(&self, id: &str) {
        self.lock().asked.remove(id);
    }

    /// Forgets every question `agent` asked here: none of them can be
    /// decided in memory any more.
    fn forget_agent(&self, agent: &AgentId) {
        self.lock().asked.retain(|_, q| q.agent_id != *agent);
    }

    /// Forgets every question asked here: the store decides them all.
    fn forget_all(&self) {
        self.lock().asked.clear();
    }

    /// Decides question `id` with `given` if nobody has: logs it and keeps
    /// it until the store has it. `None` when it was settled meanwhile; an
    /// error (and nothing decided) when the log cannot take it.
    fn decide(
        &self,
        id: &str,
        given: &LoggedAnswer,
        log: &AnswerLog,
    ) -> std::io::Result<Option<Question>> {
        let mut state = self.lock();
        let Some(question) = state.asked.remove(id) else {
            return Ok(None);
        };
        // Logged under the lock: the log holds answers in the order they
        // were decided, and only answers that were.
        if let Err(e) = log.append(given) {
            state.asked.insert(id.to_owned(), question);
            return Err(e);
        }
        let answered = Question {
            outcome: given.outcome(),
            ..question
        };
        state
            .unwritten
            .insert(id.to_owned(), (answered.clone(), given.at()));
        Ok(Some(answered))
    }

    /// Question `id` as decided here, if the store does not have it yet.
    fn decided(&self, id: &str) -> Option<Question> {
        self.lock().unwritten.get(id).map(|(q, _)| q.clone())
    }

    /// The answers decided here that the store does not have yet, with
    /// when they were given.
    fn unwritten(&self) -> Vec<(Question, Timestamp)> {
        self.lock().unwritten.values().cloned().collect()
    }

    /// `written` are in the store now.
    fn written(&self, written: &[(Question, Timestamp)]) {
        let mut state = self.lock();
        for (question, _) in written {
            state.unwritten.remove(&question.id);
        }
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
            answer_log: None,
            decided: Arc::default(),
            store_turn: Arc::default(),
        }
    }

    /// These questions, for a store this daemon alone writes (a SQLite
    /// file in its data directory; never a database other daemons share,
    /// through which questions asked here may be answered): answers to
    /// questions asked here are decided in memory and kept in the answer
    /// log at `path` until the store has them. What an earlier run left in
    /// the log is written to the store first. Starts the keeper of what
    /// memory decides, so call it inside the runtime that serves.
    pub async fn with_answer_log(mut self, path: &Path) -> Result<Self, QuestionsError> {
        let (log, left) = AnswerLog::open(path).map_err(|source| QuestionsError::AnswerLog {
            path: path.display().to_string(),
            source,
        })?;
        let outcomes: Vec<QuestionOutcome> = left.iter().map(LoggedAnswer::outcome).collect();
        let settled: Vec<_> = left
            .iter()
            .zip(&outcomes)
            .map(|(answer, outcome)| (answer.id.as_str(), outcome, answer.at()))
            .collect();
        let recorded = self.store.settle_questions(&settled).await?;
        log.written(left.len());
        if recorded > 0 {
            tracing::info!(
                count = recorded,
                "answers an earlier run gave written to the store"
            );
        }
        self.answer_log = Some(Arc::new(log));
        tokio::spawn(self.clone().keep_decided_answers());
        Ok(self)
    }

    /// The keeper of what memory decides: a little after each answer
    /// decided here, writes every answer the store does not have yet, in
    /// one transaction; and forgets the questions of an agent that ended,
    /// so an answer to one is refused as the store would refuse it.
    async fn keep_decided_answers(self) {
        let mut events = self.bus.subscribe();
        loop {
            tokio::select! {
                () = self.decided.notified() => {
                    tokio::time::sleep(WRITE_DELAY).await;
                    if let Err(e) = self.flush().await {
                        tracing::warn!(error = %e, "cannot write answers to the store yet; the answer log keeps them");
                        tokio::time::sleep(WRITE_RETRY).await;
                        self.decided.notify_one();
                    }
                }
                event = events.recv() => match event {
                    Ok(YardEvent::Agent(agent)) if !AgentStatus::LIVE.contains(&agent.status) => {
                        self.asked_here.forget_agent(&agent.id);
                    }
                    Ok(_) => {}
                    // An agent's end may have gone by unseen: nothing is
                    // decided in memory until asked again.
                    Err(RecvError::Lagged(_)) => self.asked_here.forget_all(),
                    Err(RecvError::Closed) => return,
                },
            }
        }
    }

    /// Writes every answer decided here that the store does not have yet;
    /// at shutdown, so the next start finds them in the store.
    pub async fn flush(&self) -> Result<(), QuestionsError> {
        let _turn = self.store_turn.lock().await;
        self.write_decided().await
    }

    /// [`Questions::flush`], in the caller's store turn.
    async fn write_decided(&self) -> Result<(), QuestionsError> {
        let Some(log) = &self.answer_log else {
            return Ok(());
        };
        let unwritten = self.asked_here.unwritten();
        if unwritten.is_empty() {
            return Ok(());
        }
        let settled: Vec<_> = unwritten
            .iter()
            .map(|(q, at)| (q.id.as_str(), &q.outcome, *at))
            .collect();
        let written = self.store.settle_questions(&settled).await?;
        if written < unwritten.len() {
            // Only another writer of this store could have settled them:
            // a second daemon on the same data directory.
            tracing::warn!(
                count = unwritten.len() - written,
                "the store had questions settled that were answered here"
            );
        }
        self.asked_here.written(&unwritten);
        log.written(unwritten.len());
        Ok(())
    }

    /// `question` as this daemon knows it: an answer decided here and not
    /// yet written shows over what the store says. Looked at in the store
    /// turn the store was read in.
    fn as_decided(&self, question: Question) -> Question {
        self.asked_here.decided(&question.id).unwrap_or(question)
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
        let question = {
            let _turn = self.store_turn.lock().await;
            self.answerable(by, id).await?
        };
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
                    let _turn = self.store_turn.lock().await;
                    let question = self
                        .store
                        .question(id)
                        .await?
                        .ok_or_else(|| QuestionsError::NoSuchQuestion(id.to_owned()))?;
                    self.settle_if_stale(self.as_decided(question)).await?
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
                let _turn = self.store_turn.lock().await;
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
            .map(|q| self.as_decided(q))
            .ok_or_else(|| QuestionsError::NoSuchQuestion(question.id.clone()))
    }

    /// Writes `outcome` if the question is still pending, and announces
    /// it; an answer decided here wins.
    async fn settle(&self, id: &str, outcome: &QuestionOutcome) -> Result<(), QuestionsError> {
        self.asked_here.forget(id);
        if self.asked_here.decided(id).is_some() {
            return Ok(());
        }
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
        let _turn = self.store_turn.lock().await;
        let mut pending = Vec::new();
        for question in self.store.pending_questions().await? {
            if !wanted(&question) || self.asked_here.decided(&question.id).is_some() {
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
        // Asked here: no look in the store. With an answer log, memory
        // decides and the store is written a little later; without, one
        // conditional write decides (it refuses a question settled
        // meanwhile or whose agent has ended, and the usual look says why).
        if let Some(question) = self.asked_here.get(id) {
            if !may_answer(by, &question) {
                return Err(QuestionsError::NoSuchQuestion(id.to_owned()));
            }
            self.check_claim(client, id)?;
            let (answer, reason) = checked_answer(&question, answer, reason.as_deref())?;
            let given = LoggedAnswer {
                id: id.to_owned(),
                answer,
                by: by.owner.name.clone(),
                reason,
                at: now().0,
            };
            let write_first = match &self.answer_log {
                None => true,
                Some(log) => match self.asked_here.decide(id, &given, log) {
                    Ok(Some(answered)) => {
                        self.decided.notify_one();
                        return Ok(self.answered(by, answered));
                    }
                    // Settled meanwhile: the look below says how.
                    Ok(None) => false,
                    Err(e) => {
                        tracing::warn!(question = %id, error = %e, "cannot append to the answer log; the store decides");
                        true
                    }
                },
            };
            if write_first {
                // Out of memory first: from here the store decides.
                self.asked_here.forget(id);
                let _turn = self.store_turn.lock().await;
                let written = self
                    .store
                    .answer_question(
                        id,
                        &given.answer,
                        &given.by,
                        given.reason.as_deref(),
                        given.at(),
                    )
                    .await?;
                if written {
                    let answered = Question {
                        outcome: given.outcome(),
                        ..question
                    };
                    return Ok(self.answered(by, answered));
                }
            }
        }
        let _turn = self.store_turn.lock().await;
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
        Ok(self.answered(
            by,
            Question {
                outcome,
                ..question
            },
        ))
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

    /// Announces `answered`, answered by `by`, as the store holds it or
    /// is about to (so not read back), before the log line, so the
    /// waiting agent is not kept waiting for it.
    fn answered(&self, by: &Person, answered: Question) -> Question {
        self.held().remove(&answered.id);
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
        let question = self.as_decided(question);
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
        let _turn = self.store_turn.lock().await;
        match self.store.question(id).await? {
            Some(question) if question.agent_id == *agent => Ok(self.as_decided(question)),
            _ => Err(QuestionsError::NoSuchQuestion(id.to_owned())),
        }
    }

    /// Takes back a question its asker no longer waits on (settled as
    /// cancelled).
    pub async fn withdraw(&self, id: &str) -> Result<(), QuestionsError> {
        let _turn = self.store_turn.lock().await;
        self.settle(id, &QuestionOutcome::Cancelled).await
    }

    /// Cancels the pending questions of an agent that ended.
    pub async fn cancel_agent(&self, agent: &AgentId) -> Result<usize, QuestionsError> {
        // Nothing of this agent's is decided in memory from here on, and
        // what was is written first: the store's cancel must not undo an
        // answer the agent already heard.
        self.asked_here.forget_agent(agent);
        let _turn = self.store_turn.lock().await;
        self.write_decided().await?;
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
