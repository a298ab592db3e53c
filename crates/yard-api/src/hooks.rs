//! The hook protocol: Claude Code's hook event JSON in, its expected answer
//! out. Field names are Claude Code's (snake_case in, camelCase inside
//! `hookSpecificOutput`), because agents' clients speak it unchanged.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use utoipa::ToSchema;
use yard_core::question::{MAX_MESSAGE_BYTES, MAX_OPTION_CHARS, MAX_OPTIONS};
use yard_core::{Decision, HookEvent, QuestionKind, QuestionOutcome, Verdict};

/// A hook event as the agent's client sends it (on stdin to `yard hook`,
/// or as the body of `POST /hook`). Fields the yard does not use are
/// accepted and ignored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct HookInput {
    pub hook_event_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_input: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    /// `Elicitation`: what the MCP server asks its user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// `Elicitation`: the MCP server that asks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcp_server_name: Option<String>,
    /// `Elicitation`: the JSON schema of the form it wants filled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_schema: Option<Value>,
}

impl HookInput {
    /// `tool_input.command`, for shell tools.
    pub fn command(&self) -> Option<&str> {
        self.tool_input.as_ref()?.get("command")?.as_str()
    }

    /// `tool_input.file_path` (or `path`), for file tools.
    pub fn path(&self) -> Option<&str> {
        let input = self.tool_input.as_ref()?;
        input
            .get("file_path")
            .or_else(|| input.get("path"))
            .or_else(|| input.get("notebook_path"))?
            .as_str()
    }
}

/// What the client expects back for `event` decided as `decision`: the JSON
/// Claude Code reads from a hook's stdout (or an HTTP hook's body). `None`
/// means "no output": proceed as usual.
pub fn hook_output(event: HookEvent, decision: Decision, reason: &str) -> Option<Value> {
    let allowed = decision == Decision::Allow;
    match event {
        HookEvent::PreToolUse => Some(json!({
            "hookSpecificOutput": {
                "hookEventName": "PreToolUse",
                "permissionDecision": decision.as_str(),
                "permissionDecisionReason": reason,
            }
        })),
        HookEvent::PermissionRequest => Some(json!({
            "hookSpecificOutput": {
                "hookEventName": "PermissionRequest",
                "decision": if allowed {
                    json!({ "behavior": "allow" })
                } else {
                    json!({ "behavior": "deny", "message": reason })
                },
            }
        })),
        // The events whose answer can say "block" (Claude Code's own list).
        HookEvent::PostToolUse
        | HookEvent::PostToolBatch
        | HookEvent::UserPromptSubmit
        | HookEvent::UserPromptExpansion
        | HookEvent::Stop
        | HookEvent::SubagentStop
        | HookEvent::ConfigChange
        | HookEvent::PreCompact
            if !allowed =>
        {
            Some(json!({ "decision": "block", "reason": reason }))
        }
        HookEvent::Elicitation if !allowed => Some(json!({
            "hookSpecificOutput": { "hookEventName": "Elicitation", "action": "decline" }
        })),
        // Everything else cannot be refused: no answer, so the client goes
        // on as usual (the decision is still in the audit trail).
        _ => None,
    }
}

/// `202` from `POST /hook` sent with `Prefer: respond-async`: the event
/// waits for a person; wait on these questions with `POST /hook/wait`
/// (again after a reconnect: the questions are not asked twice).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HookPending {
    pub question_ids: Vec<String>,
    /// The latest deadline among them (RFC 3339): no answer comes later.
    pub deadline: String,
    /// Milliseconds from now to `deadline`, for clients without a clock
    /// they trust.
    pub wait_ms: u64,
}

/// `POST /hook/wait`: the questions a held hook event waits on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HookWait {
    pub question_ids: Vec<String>,
}

/// Claude Code's tool for asking its user multiple-choice questions. Its
/// `PreToolUse` event is held for a person, and answered from the hook.
pub const ASK_USER_QUESTION: &str = "AskUserQuestion";

/// Why a hook event became a question, with what its reply needs: kept
/// with the question (as JSON, in `Question::origin`) so the reply can be
/// made after a restart, by whichever call waits then.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "from", rename_all = "snake_case")]
pub enum HookOrigin {
    /// A tool call the policy says to ask about (`PreToolUse` or
    /// `PermissionRequest`); `fallback` applies when nobody answers.
    Permission {
        event: HookEvent,
        fallback: Decision,
    },
    /// Question `index` of an `AskUserQuestion` call whose input is
    /// `tool_input`.
    AskUserQuestion { index: usize, tool_input: Value },
    /// An MCP server's form; a text answer fills `fields` (none: a
    /// yes/no question whose yes accepts).
    Elicitation { fields: Vec<String> },
}

impl HookOrigin {
    /// The event the reply answers.
    pub fn event(&self) -> HookEvent {
        match self {
            Self::Permission { event, .. } => *event,
            Self::AskUserQuestion { .. } => HookEvent::PreToolUse,
            Self::Elicitation { .. } => HookEvent::Elicitation,
        }
    }
}

/// One question a hook event puts to a person.
#[derive(Debug, Clone, PartialEq)]
pub struct HookQuestion {
    pub kind: QuestionKind,
    pub message: String,
    pub context: Option<String>,
    pub origin: HookOrigin,
}

impl HookInput {
    /// The questions this event puts to a person, given the policy's
    /// verdict on it; none when the verdict alone answers it. Whatever
    /// Claude Code sends makes a question that can be stored: messages are
    /// cut to size, and option lists too long for a select become text.
    pub fn questions(&self, event: HookEvent, verdict: &Verdict) -> Vec<HookQuestion> {
        let tool = self.tool_name.as_deref();
        match event {
            HookEvent::PreToolUse if tool == Some(ASK_USER_QUESTION) => {
                // The policy may still refuse the tool outright.
                if verdict.decision == Decision::Deny && !verdict.person {
                    return Vec::new();
                }
                self.ask_user_questions()
            }
            HookEvent::PreToolUse | HookEvent::PermissionRequest if verdict.person => {
                let subject = self.command().or(self.path());
                let context = match (tool, subject) {
                    (Some(tool), Some(subject)) => Some(format!("{tool}: {subject}")),
                    (Some(tool), None) => Some(tool.to_owned()),
                    (None, _) => None,
                };
                vec![HookQuestion {
                    kind: QuestionKind::Permission,
                    message: fit(&format!(
                        "May the agent use {}? {}",
                        tool.unwrap_or("this tool"),
                        verdict.reason
                    )),
                    context,
                    origin: HookOrigin::Permission {
                        event,
                        fallback: verdict.decision,
                    },
                }]
            }
            HookEvent::Elicitation if verdict.decision == Decision::Allow => {
                vec![self.elicitation()]
            }
            _ => Vec::new(),
        }
    }

    /// One question per question of an `AskUserQuestion` call.
    fn ask_user_questions(&self) -> Vec<HookQuestion> {
        let input = self.tool_input.clone().unwrap_or(Value::Null);
        let asked = input
            .get("questions")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        asked
            .iter()
            .enumerate()
            .map(|(index, question)| {
                let text = question
                    .get("question")
                    .and_then(Value::as_str)
                    .unwrap_or("(the agent asked without words)");
                let message = match question.get("header").and_then(Value::as_str) {
                    Some(header) if !header.is_empty() => format!("[{header}] {text}"),
                    _ => text.to_owned(),
                };
                let options: Vec<(String, Option<String>)> = question
                    .get("options")
                    .and_then(Value::as_array)
                    .map(|options| {
                        options
                            .iter()
                            .filter_map(|o| {
                                let label = o.get("label")?.as_str()?.replace('\n', " ");
                                let description = o
                                    .get("description")
                                    .and_then(Value::as_str)
                                    .map(str::to_owned);
                                Some((label, description))
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let described: Vec<String> = options
                    .iter()
                    .filter_map(|(label, description)| {
                        description.as_ref().map(|d| format!("{label}: {d}"))
                    })
                    .collect();
                let labels: Vec<String> = options.into_iter().map(|(label, _)| label).collect();
                let fits_select = (2..=MAX_OPTIONS).contains(&labels.len())
                    && labels
                        .iter()
                        .all(|l| !l.trim().is_empty() && l.chars().count() <= MAX_OPTION_CHARS);
                let (kind, context) = if fits_select {
                    (QuestionKind::Select { options: labels }, described)
                } else {
                    // Not a list a select can offer: the person answers in
                    // words, with the labels shown.
                    (QuestionKind::Text, labels)
                };
                HookQuestion {
                    kind,
                    message: fit(&message),
                    context: (!context.is_empty()).then(|| fit(&context.join("\n"))),
                    origin: HookOrigin::AskUserQuestion {
                        index,
                        tool_input: input.clone(),
                    },
                }
            })
            .collect()
    }

    /// The question an `Elicitation` event asks.
    fn elicitation(&self) -> HookQuestion {
        let fields: Vec<String> = self
            .requested_schema
            .as_ref()
            .and_then(|schema| schema.get("properties"))
            .and_then(Value::as_object)
            .map(|properties| properties.keys().cloned().collect())
            .unwrap_or_default();
        let server = self.mcp_server_name.as_deref().unwrap_or("an MCP server");
        let message = self.message.as_deref().unwrap_or("(no message)");
        let (kind, context) = match fields.as_slice() {
            [] => (
                QuestionKind::Confirm,
                format!("{server} asks; yes accepts, no declines"),
            ),
            [_] => (
                QuestionKind::Text,
                format!("{server} asks for {}", fields[0]),
            ),
            _ => (
                QuestionKind::Text,
                format!(
                    "{server} asks for {} (answer with a JSON object of them)",
                    fields.join(", ")
                ),
            ),
        };
        HookQuestion {
            kind,
            message: fit(message),
            context: Some(context),
            origin: HookOrigin::Elicitation { fields },
        }
    }
}

/// `text`, cut to what a question may carry.
fn fit(text: &str) -> String {
    if text.len() <= MAX_MESSAGE_BYTES {
        return text.to_owned();
    }
    let mut end = MAX_MESSAGE_BYTES - 3;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}

/// The hook's reply once all its questions are settled: `settled` holds
/// each question's origin and outcome, in the order they were asked.
pub fn hook_reply(settled: &[(HookOrigin, QuestionOutcome)]) -> Value {
    let Some((first, _)) = settled.first() else {
        return json!({});
    };
    match first {
        HookOrigin::Permission { event, fallback } => {
            let (decision, reason) = match &settled[0].1 {
                QuestionOutcome::Answered { answer, by, reason } => {
                    let decision = if answer == "allow" {
                        Decision::Allow
                    } else {
                        Decision::Deny
                    };
                    let said = match reason {
                        Some(reason) => format!("{decision} by {by}: {reason}"),
                        None => format!("{decision} by {by}"),
                    };
                    (decision, said)
                }
                QuestionOutcome::TimedOut => (
                    *fallback,
                    format!(
                        "nobody answered in time, so the policy's fallback applies: {fallback}"
                    ),
                ),
                QuestionOutcome::Cancelled | QuestionOutcome::Pending => (
                    Decision::Deny,
                    "the question was cancelled: this agent is stopping".to_owned(),
                ),
            };
            hook_output(*event, decision, &reason).unwrap_or_else(|| json!({}))
        }
        HookOrigin::AskUserQuestion { tool_input, .. } => {
            ask_user_question_reply(tool_input, settled)
        }
        HookOrigin::Elicitation { fields } => elicitation_reply(fields, &settled[0].1),
    }
}

/// Claude Code takes answers to `AskUserQuestion` from a `PreToolUse`
/// hook as `permissionDecision: "allow"` with `updatedInput`: the call's
/// input echoed back (its `questions`) plus `answers`, an object from each
/// question's text to the chosen label. This is the form its hooks
/// reference documents for the tool (added after anthropics/claude-code
/// issue 39620), and the one that skips its own picker; `allow` without
/// `answers` would return empty answers. When a question is not answered,
/// the call is denied with words the model reads, so it knows nobody
/// answered rather than seeing an empty choice.
fn ask_user_question_reply(tool_input: &Value, settled: &[(HookOrigin, QuestionOutcome)]) -> Value {
    let questions = tool_input
        .get("questions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut answers = Map::new();
    let mut people = Vec::new();
    for (origin, outcome) in settled {
        let HookOrigin::AskUserQuestion { index, .. } = origin else {
            continue;
        };
        let QuestionOutcome::Answered { answer, by, .. } = outcome else {
            let why = if matches!(outcome, QuestionOutcome::Cancelled) {
                "The question was cancelled because this agent is stopping."
            } else {
                "Nobody answered your question in time: no person is available now. Decide without the answer, or ask again later."
            };
            return hook_output(HookEvent::PreToolUse, Decision::Deny, why)
                .unwrap_or_else(|| json!({}));
        };
        let text = questions
            .get(*index)
            .and_then(|q| q.get("question"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        answers.insert(text.to_owned(), Value::String(answer.clone()));
        if !people.contains(by) {
            people.push(by.clone());
        }
    }
    let mut updated = match tool_input {
        Value::Object(map) => map.clone(),
        _ => Map::new(),
    };
    updated.insert("answers".to_owned(), Value::Object(answers));
    json!({
        "hookSpecificOutput": {
            "hookEventName": "PreToolUse",
            "permissionDecision": "allow",
            "permissionDecisionReason": format!("answered by {}", people.join(", ")),
            "updatedInput": Value::Object(updated),
        }
    })
}

/// An `Elicitation` hook answers with `action` (`accept`, `decline`,
/// `cancel`) and, to accept, the form's `content`.
fn elicitation_reply(fields: &[String], outcome: &QuestionOutcome) -> Value {
    let reply = |action: &str, content: Option<Value>| {
        let mut output = json!({ "hookEventName": "Elicitation", "action": action });
        if let Some(content) = content {
            output["content"] = content;
        }
        json!({ "hookSpecificOutput": output })
    };
    let QuestionOutcome::Answered { answer, .. } = outcome else {
        return reply("cancel", None);
    };
    match fields {
        [] if answer == "yes" => reply("accept", Some(json!({}))),
        [] => reply("decline", None),
        [field] => reply("accept", Some(json!({ field.as_str(): answer }))),
        _ => match serde_json::from_str::<Value>(answer) {
            Ok(Value::Object(content)) => reply("accept", Some(Value::Object(content))),
            // Not an object: the text goes to the first field.
            _ => reply("accept", Some(json!({ fields[0].as_str(): answer }))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pre_tool_use_carries_the_decision() {
        let out = hook_output(HookEvent::PreToolUse, Decision::Deny, "no").unwrap();
        assert_eq!(
            out,
            json!({"hookSpecificOutput": {"hookEventName": "PreToolUse", "permissionDecision": "deny", "permissionDecisionReason": "no"}})
        );
    }

    #[test]
    fn other_events_answer_only_to_block() {
        assert_eq!(hook_output(HookEvent::Stop, Decision::Allow, "fine"), None);
        assert_eq!(
            hook_output(HookEvent::UserPromptSubmit, Decision::Deny, "no"),
            Some(json!({"decision": "block", "reason": "no"}))
        );
        assert_eq!(
            hook_output(HookEvent::SessionStart, Decision::Deny, "no"),
            None
        );
        let permission = hook_output(HookEvent::PermissionRequest, Decision::Deny, "no").unwrap();
        assert_eq!(
            permission["hookSpecificOutput"]["decision"]["behavior"],
            "deny"
        );
    }

    #[test]
    fn facts_come_from_the_tool_input() {
        let input: HookInput = serde_json::from_value(json!({
            "hook_event_name": "PreToolUse", "tool_name": "Write",
            "tool_input": {"file_path": "/w/a.txt", "content": "x"}, "transcript_path": "/t"
        }))
        .unwrap();
        assert_eq!((input.path(), input.command()), (Some("/w/a.txt"), None));
    }

    fn verdict(decision: Decision, person: bool) -> Verdict {
        Verdict {
            decision,
            asked: person,
            person,
            rule: "r".into(),
            reason: "needs a person".into(),
        }
    }

    fn answered(answer: &str) -> QuestionOutcome {
        QuestionOutcome::Answered {
            answer: answer.into(),
            by: "alice".into(),
            reason: None,
        }
    }

    #[test]
    fn a_policy_ask_becomes_a_permission_question_and_its_fallback_applies_unanswered() {
        let input: HookInput = serde_json::from_value(json!({
            "hook_event_name": "PermissionRequest", "tool_name": "Bash",
            "tool_input": {"command": "psql"}
        }))
        .unwrap();
        let asks = input.questions(HookEvent::PermissionRequest, &verdict(Decision::Deny, true));
        assert_eq!(asks.len(), 1);
        assert_eq!(asks[0].kind, QuestionKind::Permission);
        assert_eq!(asks[0].context.as_deref(), Some("Bash: psql"));
        let origin = asks[0].origin.clone();
        let allowed = hook_reply(&[(origin.clone(), answered("allow"))]);
        assert_eq!(
            allowed["hookSpecificOutput"]["decision"]["behavior"],
            "allow"
        );
        let lapsed = hook_reply(&[(origin, QuestionOutcome::TimedOut)]);
        assert_eq!(lapsed["hookSpecificOutput"]["decision"]["behavior"], "deny");
        // Not asked: no question.
        assert!(
            input
                .questions(
                    HookEvent::PermissionRequest,
                    &verdict(Decision::Allow, false)
                )
                .is_empty()
        );
    }

    #[test]
    fn odd_ask_user_questions_still_make_questions_that_can_be_stored() {
        let many: Vec<Value> = (0..80).map(|i| json!({"label": format!("o{i}")})).collect();
        let input: HookInput = serde_json::from_value(json!({
            "hook_event_name": "PreToolUse", "tool_name": "AskUserQuestion",
            "tool_input": {"questions": [
                {"question": "x".repeat(100_000), "options": [{"label": "a"}, {"label": "b"}]},
                {"question": "Which?", "options": many},
                {"options": "not a list"}
            ]}
        }))
        .unwrap();
        let asks = input.questions(HookEvent::PreToolUse, &verdict(Decision::Allow, false));
        assert_eq!(asks.len(), 3);
        assert!(asks[0].message.len() <= MAX_MESSAGE_BYTES);
        assert_eq!(
            asks[1].kind,
            QuestionKind::Text,
            "too many options for a select"
        );
        assert_eq!(asks[2].kind, QuestionKind::Text);
        // A policy that denies the tool outright asks nobody.
        assert!(
            input
                .questions(HookEvent::PreToolUse, &verdict(Decision::Deny, false))
                .is_empty()
        );
    }

    #[test]
    fn an_elicitation_without_fields_is_a_yes_or_no() {
        let input: HookInput = serde_json::from_value(json!({
            "hook_event_name": "Elicitation", "mcp_server_name": "s", "message": "Go on?"
        }))
        .unwrap();
        let asks = input.questions(HookEvent::Elicitation, &verdict(Decision::Allow, false));
        assert_eq!(asks[0].kind, QuestionKind::Confirm);
        let origin = asks[0].origin.clone();
        assert_eq!(
            hook_reply(&[(origin.clone(), answered("no"))])["hookSpecificOutput"]["action"],
            "decline"
        );
        assert_eq!(
            hook_reply(&[(origin, QuestionOutcome::TimedOut)])["hookSpecificOutput"]["action"],
            "cancel"
        );
    }
}
