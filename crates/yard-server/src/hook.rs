//! `POST /hook`: an agent asks whether it may go ahead.
//!
//! The body is Claude Code's hook event JSON and the answer is exactly what
//! Claude Code expects from a hook (`{}` when there is nothing to say), so a
//! client can use this endpoint as an HTTP hook directly, and `yard hook`
//! only has to carry bytes between stdin, the control socket and stdout.

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use axum::{Extension, Json};
use serde_json::{Value, json};
use yard_api::{ApiError, ErrorCode, HookInput, hook_output};
use yard_core::{Agent, HookEvent, HookFacts};

use crate::AppState;
use crate::auth::bearer;
use crate::error::AppError;
use crate::extract::JsonBody;

/// Lets the request through only with a live agent's credential, and hands
/// the agent to the handler: the yard always knows which agent is calling.
pub(crate) async fn require_agent(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Result<Response, AppError> {
    let agent = match bearer(request.headers()) {
        Some(token) => state.orchestrator.authenticate(token).await?,
        None => None,
    };
    let agent = agent.ok_or_else(|| {
        AppError::client(
            StatusCode::UNAUTHORIZED,
            ErrorCode::Unauthorized,
            "missing or invalid agent credential: send 'Authorization: Bearer $YARD_AGENT_TOKEN' from a running agent",
        )
    })?;
    request.extensions_mut().insert(agent);
    Ok(next.run(request).await)
}

/// Decide a hook event (agents only)
///
/// Takes Claude Code's hook input and answers with Claude Code's hook
/// output for it: for `PreToolUse`, `hookSpecificOutput.permissionDecision`.
/// Every call is recorded in the agent's audit trail.
#[utoipa::path(
    post,
    path = "/hook",
    tag = "hooks",
    request_body = HookInput,
    responses(
        (status = 200, description = "Claude Code's hook output, or {} for none", body = Object),
        (status = 400, description = "Malformed input or an unknown event", body = ApiError),
        (status = 401, description = "Missing or invalid agent credential", body = ApiError),
    ),
    security(("agent" = []))
)]
pub(crate) async fn hook(
    State(state): State<AppState>,
    Extension(agent): Extension<Agent>,
    JsonBody(input): JsonBody<HookInput>,
) -> Result<Json<Value>, AppError> {
    let event: HookEvent =
        input
            .hook_event_name
            .parse()
            .map_err(|e: yard_core::hook::UnknownEvent| {
                AppError::client(
                    StatusCode::BAD_REQUEST,
                    ErrorCode::UnknownEvent,
                    e.to_string(),
                )
            })?;
    let facts = HookFacts {
        event,
        tool: input.tool_name.as_deref(),
        command: input.command(),
        path: input.path(),
    };
    let tool_input = input.tool_input.as_ref().map(Value::to_string);
    let verdict = state
        .gatekeeper
        .decide(&agent.id, &facts, tool_input.as_deref())
        .await?;
    Ok(Json(
        hook_output(event, verdict.decision, &verdict.reason).unwrap_or_else(|| json!({})),
    ))
}
