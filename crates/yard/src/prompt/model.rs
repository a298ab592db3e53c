//! The state of `yard prompt` and `yard agents --watch`: which questions
//! are pending, which one is shown and who else shows what, what was typed,
//! and what must be said to the yard.
//!
//! Pure on purpose: messages from the yard and key presses go in, state
//! and the channel messages to send come out, with no terminal and no
//! socket. So every rule (what gets claimed and released, what a key
//! answers, when `--once` is done) is tested on its own, and the view only
//! draws what is here.

use std::collections::HashMap;
use std::time::SystemTime;

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use yard_api::{AgentView, ErrorCode, QuestionClientMessage, QuestionServerMessage, QuestionView};

/// How `yard prompt` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Every pending question in a list, one shown at a time, until the
    /// person quits.
    Browse,
    /// The oldest question no other client shows, alone; done once it is
    /// settled (`--once`).
    Once,
}

/// Who shows a question, as far as this client knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Claim {
    /// Nobody.
    Free,
    /// This client asked to show it and waits for the yard to confirm.
    Requested,
    /// This client shows it.
    Mine,
    /// Another client shows it: it cannot be answered here until released.
    Elsewhere,
}

/// What answers a question takes, read from [`QuestionView::kind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `yes` or `no`.
    Confirm,
    /// `allow` or `deny` a tool call.
    Permission,
    /// One of the options.
    Select,
    /// Free text.
    Text,
    /// A kind this `yard` does not know (a newer daemon's).
    Unknown,
}

impl Kind {
    pub(crate) fn of(question: &QuestionView) -> Self {
        match question.kind.as_str() {
            "confirm" => Self::Confirm,
            "permission" => Self::Permission,
            "select" => Self::Select,
            "text" => Self::Text,
            _ => Self::Unknown,
        }
    }
}

/// Where typed characters go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Focus {
    /// Keys answer the shown question (or type a text answer).
    Answer,
    /// Keys type the reason sent with the answer.
    Reason,
}

/// A status line: what just happened, or what went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Status {
    pub(crate) text: String,
    pub(crate) is_error: bool,
}

impl Status {
    fn info(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            is_error: false,
        }
    }

    fn error(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            is_error: true,
        }
    }
}

/// Why `yard prompt` is done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Ending {
    /// The person quit.
    Quit,
    /// The question shown (`--once`) was answered from here.
    Answered {
        question: String,
        agent: String,
        answer: String,
    },
    /// The question shown (`--once`) was settled some other way: answered
    /// elsewhere, timed out, or cancelled.
    SettledElsewhere { question: String, how: String },
}

/// A pending question and what the person did with it so far; kept when
/// they look at another one, so nothing typed is lost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) question: QuestionView,
    pub(crate) claim: Claim,
    pub(crate) asked_at: Option<SystemTime>,
    pub(crate) deadline: Option<SystemTime>,
    /// The highlighted option of a select.
    pub(crate) option: usize,
    /// The answer typed so far, for a text question.
    pub(crate) text: String,
    /// What the agent should be told besides the answer.
    pub(crate) reason: String,
}

impl Entry {
    fn new(question: QuestionView) -> Self {
        Self {
            asked_at: humantime::parse_rfc3339(&question.created_at).ok(),
            deadline: humantime::parse_rfc3339(&question.deadline).ok(),
            question,
            claim: Claim::Free,
            option: 0,
            text: String::new(),
            reason: String::new(),
        }
    }

    pub(crate) fn kind(&self) -> Kind {
        Kind::of(&self.question)
    }

    fn id(&self) -> &str {
        &self.question.id
    }
}

/// The agents table (`yard agents --watch`, and ctrl-a in `yard prompt`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct AgentsTable {
    agents: Vec<AgentView>,
    selected: usize,
    /// Why the last refresh failed, if it did.
    error: Option<String>,
    /// When the table was last refreshed; `None` until it first is.
    refreshed_at: Option<SystemTime>,
}

/// What a key did to the agents table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TableKey {
    Handled,
    /// `q`, Esc or ctrl-c: the person is done with the table.
    Leave,
}

impl AgentsTable {
    /// Takes the outcome of a refresh made at `now`: new rows, or why there
    /// are none (the old rows stay, marked stale by the error).
    pub(crate) fn refreshed(&mut self, outcome: Result<Vec<AgentView>, String>, now: SystemTime) {
        match outcome {
            Ok(agents) => {
                self.agents = agents;
                self.error = None;
                self.refreshed_at = Some(now);
                self.selected = self.selected.min(self.agents.len().saturating_sub(1));
            }
            Err(error) => self.error = Some(error),
        }
    }

    pub(crate) fn press(&mut self, key: KeyEvent) -> TableKey {
        if key.kind == KeyEventKind::Release {
            return TableKey::Handled;
        }
        match key.code {
            KeyCode::Char('q') | KeyCode::Esc => return TableKey::Leave,
            KeyCode::Char('c') if key.modifiers.contains(KeyModifiers::CONTROL) => {
                return TableKey::Leave;
            }
            KeyCode::Up => self.selected = self.selected.saturating_sub(1),
            KeyCode::Down => {
                self.selected = (self.selected + 1).min(self.agents.len().saturating_sub(1));
            }
            _ => {}
        }
        TableKey::Handled
    }

    pub(crate) fn agents(&self) -> &[AgentView] {
        &self.agents
    }

    pub(crate) fn selected(&self) -> usize {
        self.selected
    }

    pub(crate) fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    pub(crate) fn refreshed_at(&self) -> Option<SystemTime> {
        self.refreshed_at
    }
}

/// Everything `yard prompt` shows and does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Model {
    mode: Mode,
    /// Oldest first, as the yard sends them.
    entries: Vec<Entry>,
    /// The id of the question shown.
    selected: Option<String>,
    focus: Focus,
    /// Whether the yard sent the pending questions yet.
    connected: bool,
    status: Option<Status>,
    /// The time ages and deadlines are counted from.
    now: SystemTime,
    /// The question an answer was sent for and not yet confirmed.
    answering: Option<String>,
    /// Channel messages to send, in order.
    outbox: Vec<QuestionClientMessage>,
    ending: Option<Ending>,
    /// The agents table, while it is shown instead of the questions.
    agents: Option<AgentsTable>,
}

impl Model {
    pub(crate) fn new(mode: Mode, now: SystemTime) -> Self {
        Self {
            mode,
            entries: Vec::new(),
            selected: None,
            focus: Focus::Answer,
            connected: false,
            status: None,
            now,
            answering: None,
            outbox: Vec::new(),
            ending: None,
            agents: None,
        }
    }

    pub(crate) fn mode(&self) -> Mode {
        self.mode
    }

    pub(crate) fn entries(&self) -> &[Entry] {
        &self.entries
    }

    pub(crate) fn selected_index(&self) -> Option<usize> {
        self.selected.as_deref().and_then(|id| self.position(id))
    }

    pub(crate) fn selected_entry(&self) -> Option<&Entry> {
        self.selected_index().map(|i| &self.entries[i])
    }

    pub(crate) fn focus(&self) -> Focus {
        self.focus
    }

    pub(crate) fn connected(&self) -> bool {
        self.connected
    }

    pub(crate) fn status(&self) -> Option<&Status> {
        self.status.as_ref()
    }

    pub(crate) fn now(&self) -> SystemTime {
        self.now
    }

    pub(crate) fn ending(&self) -> Option<&Ending> {
        self.ending.as_ref()
    }

    pub(crate) fn agents(&self) -> Option<&AgentsTable> {
        self.agents.as_ref()
    }

    /// The agents table, while it is shown: the runner refreshes it.
    pub(crate) fn agents_mut(&mut self) -> Option<&mut AgentsTable> {
        self.agents.as_mut()
    }

    /// The messages to send to the yard since the last call, in order.
    pub(crate) fn take_outbox(&mut self) -> Vec<QuestionClientMessage> {
        std::mem::take(&mut self.outbox)
    }

    /// The clock moved on.
    pub(crate) fn tick(&mut self, now: SystemTime) {
        self.now = now;
    }

    /// Takes one message from the yard.
    pub(crate) fn receive(&mut self, message: QuestionServerMessage) {
        match message {
            QuestionServerMessage::Pending { questions, claimed } => {
                self.replace_all(questions, &claimed);
            }
            QuestionServerMessage::Asked { question } => self.asked(question),
            QuestionServerMessage::Settled { question } => self.settled(&question),
            QuestionServerMessage::Claimed { id, mine } => self.claimed(&id, mine),
            QuestionServerMessage::Released { id } => {
                if let Some(entry) = self.entry_mut(&id) {
                    entry.claim = Claim::Free;
                }
                self.reselect(None);
            }
            QuestionServerMessage::Error { id, code, error } => self.refused(id, code, error),
        }
    }

    /// Takes one key press.
    pub(crate) fn press(&mut self, key: KeyEvent) {
        if key.kind == KeyEventKind::Release {
            return;
        }
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        if ctrl && key.code == KeyCode::Char('c') {
            self.ending = Some(Ending::Quit);
            return;
        }
        let toggles_agents = ctrl && key.code == KeyCode::Char('a');
        if let Some(table) = &mut self.agents {
            if toggles_agents || table.press(key) == TableKey::Leave {
                self.agents = None;
            }
            return;
        }
        if toggles_agents {
            self.agents = Some(AgentsTable::default());
            return;
        }
        if self.focus == Focus::Reason {
            self.edit_reason(key, ctrl);
            return;
        }
        match key.code {
            KeyCode::Esc => self.ending = Some(Ending::Quit),
            KeyCode::PageUp => self.step(-1),
            KeyCode::PageDown => self.step(1),
            KeyCode::Tab if self.selected_entry().is_some() => self.focus = Focus::Reason,
            _ => self.answer_key(key.code, ctrl),
        }
    }

    /// A key meant for the shown question (or, with none, for the list).
    fn answer_key(&mut self, code: KeyCode, ctrl: bool) {
        let Some(index) = self.selected_index() else {
            if code == KeyCode::Char('q') {
                self.ending = Some(Ending::Quit);
            }
            return;
        };
        let entry = &mut self.entries[index];
        let last_option = entry.question.options.len().saturating_sub(1);
        match (entry.kind(), code) {
            (Kind::Select, KeyCode::Up) => entry.option = entry.option.saturating_sub(1),
            (Kind::Select, KeyCode::Down) => entry.option = (entry.option + 1).min(last_option),
            (Kind::Select, KeyCode::Enter) => {
                if let Some(option) = entry.question.options.get(entry.option).cloned() {
                    self.answer(index, option);
                }
            }
            (Kind::Text, KeyCode::Char(c)) if !ctrl => entry.text.push(c),
            (Kind::Text, KeyCode::Backspace) => {
                entry.text.pop();
            }
            (Kind::Text, KeyCode::Enter) => {
                let text = entry.text.trim().to_owned();
                if text.is_empty() {
                    self.status = Some(Status::error("type an answer first, then press Enter"));
                } else {
                    self.answer(index, text);
                }
            }
            (_, KeyCode::Up) => self.step(-1),
            (_, KeyCode::Down) => self.step(1),
            (Kind::Confirm, KeyCode::Char('y' | 'Y')) => self.answer(index, "yes".to_owned()),
            (Kind::Confirm, KeyCode::Char('n' | 'N')) => self.answer(index, "no".to_owned()),
            (Kind::Permission, KeyCode::Char('a' | 'A')) => self.answer(index, "allow".to_owned()),
            (Kind::Permission, KeyCode::Char('d' | 'D')) => self.answer(index, "deny".to_owned()),
            (_, KeyCode::Char('r')) => self.focus = Focus::Reason,
            (_, KeyCode::Char('q')) => self.ending = Some(Ending::Quit),
            _ => {}
        }
    }

    fn edit_reason(&mut self, key: KeyEvent, ctrl: bool) {
        let Some(index) = self.selected_index() else {
            self.focus = Focus::Answer;
            return;
        };
        let reason = &mut self.entries[index].reason;
        match key.code {
            KeyCode::Char(c) if !ctrl => reason.push(c),
            KeyCode::Backspace => {
                reason.pop();
            }
            KeyCode::Enter | KeyCode::Tab | KeyCode::Esc => self.focus = Focus::Answer,
            _ => {}
        }
    }

    /// Sends `answer` for the question at `index`, with its reason.
    fn answer(&mut self, index: usize, answer: String) {
        let entry = &self.entries[index];
        if entry.claim == Claim::Elsewhere {
            self.status = Some(Status::error(
                "another client shows this question; it can be answered here once it lets go",
            ));
            return;
        }
        let id = entry.id().to_owned();
        let reason = entry.reason.trim();
        self.outbox.push(QuestionClientMessage::Answer {
            id: id.clone(),
            answer: answer.clone(),
            reason: (!reason.is_empty()).then(|| reason.to_owned()),
        });
        self.answering = Some(id);
        self.status = Some(Status::info(format!("sending {answer:?}…")));
    }

    /// Shows the question `delta` places away in the list.
    fn step(&mut self, delta: isize) {
        if self.mode == Mode::Once {
            return;
        }
        let Some(index) = self.selected_index() else {
            return;
        };
        let next = index
            .saturating_add_signed(delta)
            .min(self.entries.len().saturating_sub(1));
        let id = self.entries[next].id().to_owned();
        self.select(Some(id));
    }

    fn replace_all(&mut self, questions: Vec<QuestionView>, claimed: &[String]) {
        let mut before: HashMap<String, Entry> = self
            .entries
            .drain(..)
            .map(|entry| (entry.question.id.clone(), entry))
            .collect();
        self.entries = questions
            .into_iter()
            .map(|question| {
                let elsewhere = claimed.contains(&question.id);
                let mut entry = match before.remove(&question.id) {
                    Some(mut entry) => {
                        entry.question = question;
                        entry
                    }
                    None => Entry::new(question),
                };
                entry.claim = match entry.claim {
                    _ if elsewhere => Claim::Elsewhere,
                    mine @ (Claim::Mine | Claim::Requested) => mine,
                    Claim::Free | Claim::Elsewhere => Claim::Free,
                };
                entry
            })
            .collect();
        self.connected = true;
        self.reselect(None);
    }

    fn asked(&mut self, question: QuestionView) {
        match self.entry_mut(&question.id) {
            Some(entry) => entry.question = question,
            None => self.entries.push(Entry::new(question)),
        }
        self.reselect(None);
    }

    fn settled(&mut self, question: &QuestionView) {
        let Some(index) = self.position(&question.id) else {
            return;
        };
        let entry = self.entries.remove(index);
        let was_shown = self.selected.as_deref() == Some(entry.id());
        let answered_here = self.answering.as_deref() == Some(entry.id())
            && question.outcome == "answered"
            && question.answer.is_some();
        if self.answering.as_deref() == Some(entry.id()) {
            self.answering = None;
        }
        let agent = &question.agent_id;
        match (self.mode, answered_here) {
            (Mode::Once, true) => {
                self.ending = Some(Ending::Answered {
                    question: question.id.clone(),
                    agent: agent.clone(),
                    answer: question.answer.clone().unwrap_or_default(),
                });
            }
            (Mode::Once, false) if was_shown => {
                self.ending = Some(Ending::SettledElsewhere {
                    question: question.id.clone(),
                    how: settled_how(question),
                });
            }
            (Mode::Browse, true) => {
                let answer = question.answer.as_deref().unwrap_or_default();
                self.status = Some(Status::info(format!(
                    "answered agent {agent}'s question: {answer}"
                )));
            }
            (Mode::Browse, false) if was_shown => {
                self.status = Some(Status::info(format!(
                    "agent {agent}'s question was {}",
                    settled_how(question)
                )));
            }
            _ => {}
        }
        if self.ending.is_none() {
            self.reselect(was_shown.then_some(index));
        }
    }

    fn claimed(&mut self, id: &str, mine: bool) {
        if let Some(entry) = self.entry_mut(id) {
            entry.claim = if mine { Claim::Mine } else { Claim::Elsewhere };
        }
        self.reselect(None);
    }

    fn refused(&mut self, id: Option<String>, code: ErrorCode, error: String) {
        self.status = Some(Status::error(error));
        let Some(id) = id else {
            return;
        };
        if self.answering.as_deref() == Some(id.as_str()) {
            self.answering = None;
        }
        if code == ErrorCode::QuestionClaimed
            && let Some(entry) = self.entry_mut(&id)
        {
            entry.claim = Claim::Elsewhere;
            self.reselect(None);
        }
    }

    /// Makes sure a question is shown if one can be, and claimed if it is
    /// free. `near` is where a question just disappeared from the list:
    /// the one that took its place is shown next.
    fn reselect(&mut self, near: Option<usize>) {
        let current = self.selected_index().filter(|&index| {
            self.mode == Mode::Browse || self.entries[index].claim != Claim::Elsewhere
        });
        let next = current.or_else(|| match self.mode {
            Mode::Browse => near
                .map(|index| index.min(self.entries.len().saturating_sub(1)))
                .filter(|&index| index < self.entries.len())
                .or_else(|| self.first_answerable())
                .or_else(|| (!self.entries.is_empty()).then_some(0)),
            Mode::Once => self.first_answerable(),
        });
        let id = next.map(|index| self.entries[index].id().to_owned());
        self.select(id);
    }

    fn first_answerable(&self) -> Option<usize> {
        self.entries
            .iter()
            .position(|entry| entry.claim != Claim::Elsewhere)
    }

    /// Shows question `id` (or none): releases the one shown before if this
    /// client held it, and claims the new one if nobody holds it.
    fn select(&mut self, id: Option<String>) {
        if self.selected != id {
            if let Some(previous) = self.selected.take()
                && let Some(entry) = self.entry_mut(&previous)
                && matches!(entry.claim, Claim::Mine | Claim::Requested)
            {
                entry.claim = Claim::Free;
                self.outbox
                    .push(QuestionClientMessage::Release { id: previous });
            }
            self.selected = id;
            self.focus = Focus::Answer;
        }
        if let Some(id) = self.selected.clone()
            && let Some(entry) = self.entry_mut(&id)
            && entry.claim == Claim::Free
        {
            entry.claim = Claim::Requested;
            self.outbox.push(QuestionClientMessage::Claim { id });
        }
    }

    fn position(&self, id: &str) -> Option<usize> {
        self.entries.iter().position(|entry| entry.id() == id)
    }

    fn entry_mut(&mut self, id: &str) -> Option<&mut Entry> {
        self.entries.iter_mut().find(|entry| entry.id() == id)
    }
}

/// How a question ended, in words: "answered yes by alice", "timed out".
fn settled_how(question: &QuestionView) -> String {
    match question.outcome.as_str() {
        "answered" => format!(
            "answered {} by {}",
            question.answer.as_deref().unwrap_or("?"),
            question.answered_by.as_deref().unwrap_or("someone")
        ),
        "timed_out" => "not answered in time".to_owned(),
        "cancelled" => "cancelled: its agent ended".to_owned(),
        other => other.to_owned(),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A pending question of `kind` from agent `agent`, asked a minute
    /// before [`clock`] and due nine minutes after it.
    pub(crate) fn question(id: &str, agent: &str, kind: &str, message: &str) -> QuestionView {
        let options = match kind {
            "confirm" => vec!["yes".to_owned(), "no".to_owned()],
            "permission" => vec!["allow".to_owned(), "deny".to_owned()],
            "select" => vec!["Red".to_owned(), "Blue".to_owned(), "Green".to_owned()],
            _ => Vec::new(),
        };
        QuestionView {
            id: id.to_owned(),
            agent_id: agent.to_owned(),
            agent_task: Some(format!("task of {agent}")),
            kind: kind.to_owned(),
            message: message.to_owned(),
            options,
            context: Some("Bash: rm -rf build".to_owned()),
            deadline: "2030-01-01T00:09:00Z".to_owned(),
            created_at: "2029-12-31T23:59:00Z".to_owned(),
            outcome: "pending".to_owned(),
            answer: None,
            answered_by: None,
            reason: None,
        }
    }

    /// The time the model's clock reads in these tests.
    pub(crate) fn clock() -> SystemTime {
        humantime::parse_rfc3339("2030-01-01T00:00:00Z").unwrap()
    }

    pub(crate) fn model_with(mode: Mode, questions: Vec<QuestionView>, claimed: &[&str]) -> Model {
        let mut model = Model::new(mode, clock());
        model.receive(QuestionServerMessage::Pending {
            questions,
            claimed: claimed.iter().map(|id| (*id).to_owned()).collect(),
        });
        model
    }

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    fn type_text(model: &mut Model, text: &str) {
        for c in text.chars() {
            model.press(key(KeyCode::Char(c)));
        }
    }

    fn claim(id: &str) -> QuestionClientMessage {
        QuestionClientMessage::Claim { id: id.to_owned() }
    }

    fn release(id: &str) -> QuestionClientMessage {
        QuestionClientMessage::Release { id: id.to_owned() }
    }

    fn answer(id: &str, answer: &str, reason: Option<&str>) -> QuestionClientMessage {
        QuestionClientMessage::Answer {
            id: id.to_owned(),
            answer: answer.to_owned(),
            reason: reason.map(str::to_owned),
        }
    }

    fn answered(mut question: QuestionView, with: &str) -> QuestionServerMessage {
        question.outcome = "answered".to_owned();
        question.answer = Some(with.to_owned());
        question.answered_by = Some("alice".to_owned());
        QuestionServerMessage::Settled { question }
    }

    #[test]
    fn the_first_question_is_claimed_and_y_answers_a_confirm_yes() {
        let mut model = model_with(
            Mode::Browse,
            vec![question("q1", "a1", "confirm", "ok?")],
            &[],
        );
        assert_eq!(model.take_outbox(), vec![claim("q1")]);
        model.receive(QuestionServerMessage::Claimed {
            id: "q1".to_owned(),
            mine: true,
        });
        assert_eq!(model.selected_entry().unwrap().claim, Claim::Mine);
        model.press(key(KeyCode::Char('x')));
        assert!(model.take_outbox().is_empty(), "x answers nothing");
        model.press(key(KeyCode::Char('y')));
        assert_eq!(model.take_outbox(), vec![answer("q1", "yes", None)]);
    }

    #[test]
    fn n_answers_a_confirm_no_and_a_and_d_allow_and_deny_a_permission() {
        let mut model = model_with(
            Mode::Browse,
            vec![
                question("q1", "a1", "confirm", "ok?"),
                question("q2", "a1", "permission", "run it?"),
            ],
            &[],
        );
        model.press(key(KeyCode::Char('n')));
        model.press(key(KeyCode::Down));
        model.press(key(KeyCode::Char('d')));
        model.press(key(KeyCode::Char('a')));
        assert_eq!(
            model.take_outbox(),
            vec![
                claim("q1"),
                answer("q1", "no", None),
                release("q1"),
                claim("q2"),
                answer("q2", "deny", None),
                answer("q2", "allow", None),
            ]
        );
    }

    #[test]
    fn r_adds_a_reason_sent_with_the_answer() {
        let mut model = model_with(
            Mode::Browse,
            vec![question("q1", "a1", "permission", "run it?")],
            &[],
        );
        model.take_outbox();
        model.press(key(KeyCode::Char('r')));
        assert_eq!(model.focus(), Focus::Reason);
        type_text(&mut model, "too riskyy");
        model.press(key(KeyCode::Backspace));
        model.press(key(KeyCode::Enter));
        assert_eq!(model.focus(), Focus::Answer);
        assert!(
            model.take_outbox().is_empty(),
            "typing a reason answers nothing"
        );
        model.press(key(KeyCode::Char('d')));
        assert_eq!(
            model.take_outbox(),
            vec![answer("q1", "deny", Some("too risky"))]
        );
    }

    #[test]
    fn arrows_move_within_a_selects_options_and_enter_sends_the_highlighted_one() {
        let mut model = model_with(
            Mode::Browse,
            vec![
                question("q1", "a1", "select", "which?"),
                question("q2", "a1", "confirm", "ok?"),
            ],
            &[],
        );
        model.take_outbox();
        model.press(key(KeyCode::Up));
        assert_eq!(
            model.selected_entry().unwrap().option,
            0,
            "stays on the first"
        );
        for _ in 0..5 {
            model.press(key(KeyCode::Down));
        }
        assert_eq!(
            model.selected_entry().unwrap().option,
            2,
            "stops at the last"
        );
        model.press(key(KeyCode::Up));
        assert_eq!(model.selected_index(), Some(0), "still the select");
        model.press(key(KeyCode::Enter));
        assert_eq!(model.take_outbox(), vec![answer("q1", "Blue", None)]);
        model.press(key(KeyCode::PageDown));
        assert_eq!(
            model.selected_index(),
            Some(1),
            "page down picks the next question"
        );
    }

    #[test]
    fn a_text_answer_is_typed_edited_and_sent_with_enter_but_never_empty() {
        let mut model = model_with(Mode::Once, vec![question("q1", "a1", "text", "how?")], &[]);
        model.take_outbox();
        model.press(key(KeyCode::Enter));
        assert!(model.take_outbox().is_empty());
        assert!(model.status().unwrap().is_error);
        type_text(&mut model, "use the cacheq");
        model.press(key(KeyCode::Backspace));
        assert_eq!(model.ending(), None, "q is typed, not quit");
        model.press(key(KeyCode::Enter));
        assert_eq!(
            model.take_outbox(),
            vec![answer("q1", "use the cache", None)]
        );
    }

    #[test]
    fn a_question_another_client_shows_is_marked_and_cannot_be_answered() {
        let mut model = model_with(
            Mode::Browse,
            vec![
                question("q1", "a1", "confirm", "first?"),
                question("q2", "a2", "confirm", "second?"),
            ],
            &["q1"],
        );
        assert_eq!(
            model.selected_index(),
            Some(1),
            "the free one is shown first"
        );
        assert_eq!(model.take_outbox(), vec![claim("q2")]);
        model.press(key(KeyCode::Up));
        assert_eq!(model.selected_entry().unwrap().claim, Claim::Elsewhere);
        model.press(key(KeyCode::Char('y')));
        assert_eq!(
            model.take_outbox(),
            vec![release("q2")],
            "no claim and no answer"
        );
        assert!(model.status().unwrap().is_error);
        // Once the other client lets go, the shown question is claimed.
        model.receive(QuestionServerMessage::Released {
            id: "q1".to_owned(),
        });
        assert_eq!(model.take_outbox(), vec![claim("q1")]);
    }

    #[test]
    fn errors_from_the_yard_show_in_the_status_line() {
        let mut model = model_with(
            Mode::Browse,
            vec![question("q1", "a1", "confirm", "ok?")],
            &[],
        );
        model.receive(QuestionServerMessage::Error {
            id: Some("q1".to_owned()),
            code: ErrorCode::QuestionClaimed,
            error: "another client shows question q1".to_owned(),
        });
        let status = model.status().unwrap();
        assert!(status.is_error && status.text.contains("another client"));
        assert_eq!(model.selected_entry().unwrap().claim, Claim::Elsewhere);
    }

    #[test]
    fn settling_the_shown_question_shows_the_next_one() {
        let first = question("q1", "a1", "confirm", "first?");
        let mut model = model_with(
            Mode::Browse,
            vec![first.clone(), question("q2", "a2", "confirm", "second?")],
            &[],
        );
        model.press(key(KeyCode::Char('y')));
        model.take_outbox();
        model.receive(answered(first, "yes"));
        assert_eq!(model.entries().len(), 1);
        assert_eq!(model.take_outbox(), vec![claim("q2")]);
        assert!(model.status().unwrap().text.contains("yes"));
        assert_eq!(model.ending(), None);
    }

    #[test]
    fn once_shows_the_oldest_unclaimed_question_and_ends_when_it_is_answered() {
        let second = question("q2", "a2", "confirm", "second?");
        let mut model = model_with(
            Mode::Once,
            vec![question("q1", "a1", "confirm", "first?"), second.clone()],
            &["q1"],
        );
        assert_eq!(model.take_outbox(), vec![claim("q2")]);
        model.press(key(KeyCode::Up));
        assert_eq!(model.selected_index(), Some(1), "--once shows one question");
        model.press(key(KeyCode::Char('y')));
        assert_eq!(model.take_outbox(), vec![answer("q2", "yes", None)]);
        model.receive(answered(second, "yes"));
        assert_eq!(
            model.ending(),
            Some(&Ending::Answered {
                question: "q2".to_owned(),
                agent: "a2".to_owned(),
                answer: "yes".to_owned(),
            })
        );
    }

    #[test]
    fn once_waits_for_a_question_and_moves_on_when_another_client_wins_it() {
        let mut model = model_with(Mode::Once, Vec::new(), &[]);
        assert_eq!(model.selected_entry(), None);
        model.receive(QuestionServerMessage::Asked {
            question: question("q1", "a1", "confirm", "first?"),
        });
        model.receive(QuestionServerMessage::Asked {
            question: question("q2", "a1", "confirm", "second?"),
        });
        assert_eq!(model.take_outbox(), vec![claim("q1")]);
        model.receive(QuestionServerMessage::Claimed {
            id: "q1".to_owned(),
            mine: false,
        });
        assert_eq!(model.take_outbox(), vec![claim("q2")]);
        assert_eq!(model.selected_index(), Some(1));
    }

    #[test]
    fn once_ends_when_the_shown_question_is_settled_elsewhere() {
        let first = question("q1", "a1", "confirm", "first?");
        let mut model = model_with(Mode::Once, vec![first.clone()], &[]);
        model.receive(answered(first, "no"));
        assert_eq!(
            model.ending(),
            Some(&Ending::SettledElsewhere {
                question: "q1".to_owned(),
                how: "answered no by alice".to_owned(),
            })
        );
    }

    #[test]
    fn q_and_esc_quit_ctrl_a_shows_the_agents_and_q_goes_back() {
        let mut model = model_with(
            Mode::Browse,
            vec![question("q1", "a1", "confirm", "ok?")],
            &[],
        );
        model.press(KeyEvent::new(KeyCode::Char('a'), KeyModifiers::CONTROL));
        assert!(model.agents().is_some());
        model.press(key(KeyCode::Char('q')));
        assert!(model.agents().is_none());
        assert_eq!(model.ending(), None);
        model.press(key(KeyCode::Char('q')));
        assert_eq!(model.ending(), Some(&Ending::Quit));
        let mut model = model_with(Mode::Browse, Vec::new(), &[]);
        model.press(key(KeyCode::Esc));
        assert_eq!(model.ending(), Some(&Ending::Quit));
    }

    #[test]
    fn a_new_snapshot_keeps_what_was_typed_and_this_clients_claims() {
        let mut model = model_with(
            Mode::Browse,
            vec![question("q1", "a1", "text", "how?")],
            &[],
        );
        type_text(&mut model, "draft");
        model.receive(QuestionServerMessage::Claimed {
            id: "q1".to_owned(),
            mine: true,
        });
        model.take_outbox();
        model.receive(QuestionServerMessage::Pending {
            questions: vec![question("q1", "a1", "text", "how?")],
            claimed: Vec::new(),
        });
        let entry = model.selected_entry().unwrap();
        assert_eq!((entry.text.as_str(), entry.claim), ("draft", Claim::Mine));
        assert!(model.take_outbox().is_empty(), "no second claim");
    }
}
