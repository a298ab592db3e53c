//! The hook protocol: Claude Code's hook event JSON in, its expected answer
//! out. Field names are Claude Code's (snake_case in, camelCase inside
//! `hookSpecificOutput`), because agents' clients speak it unchanged.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;
use yard_core::{Decision, HookEvent};

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
}
