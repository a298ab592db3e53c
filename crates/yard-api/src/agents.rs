//! Wire types for agents: spawning, listing, diffs, merges and the audit
//! trail of their hook calls.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use yard_core::{Agent, AgentStatus, Decision};

use crate::rfc3339;

fn one() -> u32 {
    1
}

/// `POST /api/agents` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SpawnRequest {
    /// The source repository, as an absolute path on the daemon's machine;
    /// for users, inside the yard's repository roots.
    pub repo: String,
    /// How many agents (default 1).
    #[serde(default = "one")]
    pub count: u32,
    /// What the agents should do; each gets it as `YARD_TASK`.
    pub task: String,
    /// The agent image; the daemon's default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// The commit to start from (a branch, tag or sha); default `HEAD`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<String>,
}

/// One agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentView {
    pub id: String,
    pub status: AgentStatus,
    /// `yard/<id>`, in the agent's checkout and, once brought back, in the
    /// source repository.
    pub branch: String,
    pub repo: String,
    pub base_ref: String,
    pub base_commit: String,
    pub task: String,
    pub image: String,
    /// The name of the person it works for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// The agent that spawned it, if one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i64>,
    /// Why it failed or stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The branch's last commit, once brought back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head_commit: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&Agent> for AgentView {
    fn from(a: &Agent) -> Self {
        Self {
            id: a.id.to_string(),
            status: a.status,
            branch: a.branch(),
            repo: a.repo.clone(),
            base_ref: a.base_ref.clone(),
            base_commit: a.base_commit.clone(),
            task: a.task.clone(),
            image: a.image.clone(),
            owner: a.owner.as_ref().map(|o| o.name.clone()),
            parent: a.parent.as_ref().map(ToString::to_string),
            exit_code: a.exit_code,
            message: a.message.clone(),
            head_commit: a.head_commit.clone(),
            created_at: rfc3339(a.created_at),
            updated_at: rfc3339(a.updated_at),
        }
    }
}

/// `GET /api/agents`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AgentList {
    /// Newest first.
    pub agents: Vec<AgentView>,
}

/// `201` answer to `POST /api/agents`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SpawnResult {
    /// Every agent asked for; one that could not start has status `failed`
    /// and a message.
    pub agents: Vec<AgentView>,
}

/// One commit on an agent's branch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CommitView {
    pub sha: String,
    pub author: String,
    pub subject: String,
}

/// `GET /api/agents/{id}/diff`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AgentDiffView {
    pub agent: AgentView,
    /// Oldest first.
    pub commits: Vec<CommitView>,
    /// A unified diff of the branch against its base.
    pub patch: String,
}

/// `POST /api/agents/{id}/merge`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MergeView {
    /// The branch merged into.
    pub into: String,
    /// The merge commit; absent when the branch was already merged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    pub up_to_date: bool,
}

/// One recorded hook decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AuditView {
    pub at: String,
    pub event: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    /// The command or path decided on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// The start of the tool call's input, as JSON (at most a few KiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<String>,
    /// What the agent was told.
    pub decision: Decision,
    /// A rule said `ask` and the policy's fallback decided.
    pub asked: bool,
    pub rule: String,
    pub reason: String,
}

/// `GET /api/agents/{id}/audit`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditList {
    pub agent_id: String,
    /// Oldest first.
    pub entries: Vec<AuditView>,
}

/// `POST /api/agents/prune`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PruneResult {
    pub pruned: Vec<AgentView>,
}

/// `GET /api/policy`: the hook policy in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyView {
    pub path: String,
    /// Whether the file exists; without it the built-in policy applies.
    pub from_file: bool,
    pub rules: usize,
    /// Why the file's latest version was rejected (the previous policy
    /// stays in force).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A control message on the attach WebSocket, sent as a text frame (the
/// person's keystrokes travel as binary frames).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum AttachControl {
    /// The person's terminal is now `cols` x `rows` cells.
    Resize { cols: u16, rows: u16 },
}
