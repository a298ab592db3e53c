//! The audit trail of hook calls: what an agent asked to do and what the
//! yard decided, by which rule.

use crate::{AgentId, Decision, Timestamp};

/// One recorded hook call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub id: String,
    pub agent_id: AgentId,
    pub event: String,
    pub tool: Option<String>,
    pub subject: Option<String>,
    /// The start of the call's tool input, as JSON (bounded by the caller).
    pub input: Option<String>,
    pub decision: Decision,
    pub asked: bool,
    pub rule: String,
    pub reason: String,
    pub created_at: Timestamp,
}
