//! The wire format of agentyard: every JSON body the REST API takes or
//! returns, the Server-Sent Events it streams, and its error shape.
//!
//! The server, the CLI and (later) the TUI and MCP tools all use these types,
//! so a field renamed here is renamed everywhere at once. Field names are
//! camelCase on the wire; the OpenAPI document is derived from these types.

mod agents;
mod aio;
mod auth;
mod config;
mod forge;
mod hooks;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use yard_core::{Deployment, Question, QuestionOutcome, Timestamp};

pub use agents::{
    AgentDiffView, AgentList, AgentView, AttachControl, AuditList, AuditView, CommitView,
    MergeView, PolicyView, PruneResult, SpawnRequest, SpawnResult,
};
pub use aio::{AioServiceView, AioStatus, BrowserView};
pub use auth::{
    CreateTokenRequest, CreatedToken, RevokedToken, SessionView, SignInRequest, TokenList,
    TokenRoleView, TokenView,
};
pub use config::{ConfigEntryView, ConfigList, SetConfigRequest};
pub use forge::{
    ForgeInitReport, GiteaComment, GiteaIssue, GiteaPayload, GiteaRepository, GiteaUser,
    WebhookReceipt, WebhookStatus,
};
pub use hooks::{
    ASK_USER_QUESTION, HookInput, HookOrigin, HookPending, HookQuestion, HookWait, hook_output,
    hook_reply,
};
pub use yard_core::{AgentStatus, Decision, DeploymentStatus, HookEvent, StackHealth};

/// The value of `service` in `/health`, so probes can tell what answered.
pub const SERVICE_NAME: &str = "agentyard";

/// SSE event names on `/api/status/{deploymentId}` and `/api/events`.
pub mod events {
    /// Carries a [`ProgressEvent`](super::ProgressEvent).
    pub const PROGRESS: &str = "progress";
    /// Carries a [`CompleteEvent`](super::CompleteEvent); the stream ends after it.
    pub const COMPLETE: &str = "complete";
    /// Carries an [`ErrorEvent`](super::ErrorEvent); the stream ends after it.
    pub const ERROR: &str = "error";
    /// On `/api/events`: a [`StackList`](super::StackList) of every live stack.
    pub const STACKS: &str = "stacks";
}

/// Formats a store timestamp as RFC 3339 with milliseconds, in UTC.
pub fn rfc3339(ts: Timestamp) -> String {
    // RFC 3339 has four-digit years: a corrupt or far-off time is shown
    // as the last one it can say rather than failing the answer.
    const LAST_MILLIS: u64 = 253_402_300_799_999;
    let millis = u64::try_from(ts.0).unwrap_or(0).min(LAST_MILLIS);
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_millis(millis);
    humantime::format_rfc3339_millis(time).to_string()
}

/// `GET /health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    /// `healthy`; `degraded` when a service of the all-in-one container
    /// is not up; `unhealthy` when the store does not answer.
    pub status: String,
    /// When the answer was made, RFC 3339.
    pub timestamp: String,
    pub version: String,
    /// Always `agentyard`.
    pub service: String,
    /// Deployments and removals under way right now.
    pub active_deployments: u64,
    /// Under `yard aio`: each supervised service's state, by name
    /// (`running`, or e.g. `backing_off` when it is not up).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub services: Option<std::collections::BTreeMap<String, String>>,
}

/// `GET /api/check/{name}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NameCheck {
    /// The name is valid and no live stack holds it.
    pub available: bool,
    /// The name follows the naming rules.
    pub valid: bool,
    /// Why the name cannot be used, when it cannot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `POST /api/deploy` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DeployRequest {
    /// 3 to 20 characters of a-z, 0-9 and '-'; trimmed and lowercased first.
    pub name: String,
}

/// `202` answer to `POST /api/deploy`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeployAccepted {
    pub deployment_id: String,
    pub name: String,
    /// Where the stack will answer once deployed.
    pub url: String,
    /// The SSE stream of this deployment's progress.
    pub status_endpoint: String,
}

/// One deployment, as `GET /api/deployments` and `/api/deployments/{id}` show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentView {
    pub id: String,
    pub name: String,
    pub status: DeploymentStatus,
    /// 0 to 100.
    pub progress: u8,
    pub current_step: String,
    /// Why the deployment failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    pub url: String,
    pub image: String,
    /// Who deployed it (a token's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&Deployment> for DeploymentView {
    fn from(d: &Deployment) -> Self {
        Self {
            id: d.id.to_string(),
            name: d.name.to_string(),
            status: d.status,
            progress: d.progress,
            current_step: d.current_step.clone(),
            message: d.message.clone(),
            url: d.url.clone(),
            image: d.image.clone(),
            owner: d.owner.as_ref().map(|o| o.name.clone()),
            created_at: rfc3339(d.created_at),
            updated_at: rfc3339(d.updated_at),
        }
    }
}

/// `GET /api/deployments`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DeploymentList {
    /// Newest first.
    pub deployments: Vec<DeploymentView>,
}

/// A live stack: the deployment that currently holds its name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StackView {
    pub name: String,
    pub url: String,
    pub status: DeploymentStatus,
    pub deployment_id: String,
    pub image: String,
    /// Who deployed it (a token's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// How it has been doing since it was deployed.
    pub health: StackHealth,
    /// Why it is in that state (`it exited with code 1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_reason: Option<String>,
    /// How often the yard has restarted it.
    pub restarts: u32,
    /// What went wrong last, kept after it recovers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure: Option<String>,
    pub created_at: String,
}

impl From<&Deployment> for StackView {
    fn from(d: &Deployment) -> Self {
        Self {
            name: d.name.to_string(),
            url: d.url.clone(),
            status: d.status,
            deployment_id: d.id.to_string(),
            image: d.image.clone(),
            owner: d.owner.as_ref().map(|o| o.name.clone()),
            health: d.health.health,
            health_reason: d.health.reason.clone(),
            restarts: d.health.restarts,
            last_failure: d.health.last_failure.clone(),
            created_at: rfc3339(d.created_at),
        }
    }
}

/// `GET /api/stacks`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StackList {
    /// Sorted by name.
    pub stacks: Vec<StackView>,
}

impl From<&[Deployment]> for StackList {
    /// The stacks that `live` deployments (one per name) hold.
    fn from(live: &[Deployment]) -> Self {
        Self {
            stacks: live.iter().map(StackView::from).collect(),
        }
    }
}

/// SSE `progress` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProgressEvent {
    pub status: DeploymentStatus,
    /// 0 to 100.
    pub progress: u8,
    pub current_step: String,
}

impl From<&Deployment> for ProgressEvent {
    fn from(d: &Deployment) -> Self {
        Self {
            status: d.status,
            progress: d.progress,
            current_step: d.current_step.clone(),
        }
    }
}

/// SSE `complete` event: the stack is up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CompleteEvent {
    pub url: String,
}

/// SSE `error` event: the deployment failed (and was rolled back).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorEvent {
    pub message: String,
}

/// Machine-readable error codes. Clients match on these, not on messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// A path or query parameter could not be read.
    BadRequest,
    InvalidName,
    NameTaken,
    InvalidJson,
    UnsupportedMediaType,
    PayloadTooLarge,
    Unauthorized,
    /// Signed in, but not allowed: another person's stack, or an admin's task.
    Forbidden,
    /// A request made with the session cookie lacked the page's CSRF token
    /// or came from another origin.
    CsrfRejected,
    /// An active token already has that name.
    TokenNameTaken,
    NotFound,
    MethodNotAllowed,
    DeploymentInProgress,
    /// A request body that parses but asks for something impossible.
    InvalidRequest,
    /// The agent is not running.
    AgentNotRunning,
    /// Starting these agents would pass a cap on running agents.
    TooManyAgents,
    /// A merge would conflict; nothing was changed.
    MergeConflict,
    /// The source repository is not in a state to merge into.
    RepositoryNotReady,
    /// What was asked for existed once and is gone.
    Gone,
    /// A rolling update failed and the stack went back to its old image.
    RolledBack,
    /// The question was answered, timed out or cancelled already.
    QuestionSettled,
    /// Another answering client shows the question.
    QuestionClaimed,
    /// The backend cannot do what was asked (e.g. a rolling update on
    /// the docker backend).
    Unsupported,
    UnknownEvent,
    /// The forge's webhook delivery is not signed with the shared secret.
    BadSignature,
    /// A step of the forge's set-up failed; the message names it.
    ForgeSetupFailed,
    Unavailable,
    Internal,
    /// A code this client does not know yet.
    #[serde(other)]
    Unknown,
}

/// A question an agent asked a person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct QuestionView {
    pub id: String,
    pub agent_id: String,
    /// What the asking agent was put to do (the start of its task).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_task: Option<String>,
    /// `confirm` (yes/no), `select` (one of `options`), `text`, or
    /// `permission` (allow/deny a tool call).
    pub kind: String,
    pub message: String,
    /// The answers it takes; empty for text.
    pub options: Vec<String>,
    /// What it is about (a tool call), when it says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    /// When nobody answering counts as no answer (RFC 3339).
    pub deadline: String,
    pub created_at: String,
    /// `pending`, `answered`, `timed_out` or `cancelled`.
    pub outcome: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answered_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl From<&Question> for QuestionView {
    fn from(q: &Question) -> Self {
        let (answer, answered_by, reason) = match &q.outcome {
            QuestionOutcome::Answered { answer, by, reason } => {
                (Some(answer.clone()), Some(by.clone()), reason.clone())
            }
            _ => (None, None, None),
        };
        Self {
            id: q.id.clone(),
            agent_id: q.agent_id.to_string(),
            agent_task: q.agent_task.clone(),
            kind: q.kind.as_str().to_owned(),
            message: q.message.clone(),
            options: q.kind.options(),
            context: q.context.clone(),
            deadline: rfc3339(q.deadline),
            created_at: rfc3339(q.created_at),
            outcome: q.outcome.as_str().to_owned(),
            answer,
            answered_by,
            reason,
        }
    }
}

/// `GET /api/questions`: the pending ones, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct QuestionList {
    pub questions: Vec<QuestionView>,
}

/// `POST /api/questions/{id}/answer`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AnswerRequest {
    /// `yes`/`no` for a confirm, `allow`/`deny` for a permission, one of
    /// the options for a select, text for a text question.
    pub answer: String,
    /// What the agent should be told besides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What an answering client sends on `/api/questions/ws`, one JSON text
/// message each.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum QuestionClientMessage {
    /// "I am showing this one": other clients see it claimed and cannot
    /// claim it until it is released (or this client disconnects).
    Claim { id: String },
    /// "I stopped showing it" (a popup closed without an answer).
    Release { id: String },
    /// The answer, as for `POST /api/questions/{id}/answer`.
    Answer {
        id: String,
        answer: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
}

/// What the yard sends on `/api/questions/ws`, one JSON text message each.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum QuestionServerMessage {
    /// Every pending question the client may answer, oldest first, and
    /// which of them another client shows: sent at connect (and again if
    /// the client fell behind).
    Pending {
        questions: Vec<QuestionView>,
        claimed: Vec<String>,
    },
    /// A new question.
    Asked { question: QuestionView },
    /// A question was answered, timed out or was cancelled: stop showing it.
    Settled { question: QuestionView },
    /// A client claimed the question; `mine` when it is this one.
    Claimed { id: String, mine: bool },
    /// The question may be claimed again.
    Released { id: String },
    /// A message was refused; nothing changed. `id` names the question
    /// when the message did.
    Error {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        code: ErrorCode,
        error: String,
    },
}

/// `POST /api/stacks/{name}/update`: the image to run instead.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateStackRequest {
    pub image: String,
}

/// Every error answer: `{"error": "...", "code": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ApiError {
    /// What went wrong, for people.
    pub error: String,
    pub code: ErrorCode,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(rfc3339(Timestamp(0)), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            rfc3339(Timestamp(1_700_000_000_123)),
            "2023-11-14T22:13:20.123Z"
        );
        assert_eq!(rfc3339(Timestamp(i64::MAX)), "9999-12-31T23:59:59.999Z");
        assert_eq!(rfc3339(Timestamp(-5)), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn field_names_are_camel_case() {
        let accepted = DeployAccepted {
            deployment_id: "d".into(),
            name: "alice".into(),
            url: "u".into(),
            status_endpoint: "/api/status/d".into(),
        };
        let json = serde_json::to_value(&accepted).unwrap();
        assert!(json.get("deploymentId").is_some() && json.get("statusEndpoint").is_some());
    }

    #[test]
    fn unknown_error_codes_still_parse() {
        let e: ApiError =
            serde_json::from_str(r#"{"error":"x","code":"from_the_future"}"#).unwrap();
        assert_eq!(e.code, ErrorCode::Unknown);
    }
}
