//! `POST /hook`: an agent asks whether it may go ahead.
//!
//! The body is Claude Code's hook event JSON and the answer is exactly what
//! Claude Code expects from a hook (`{}` when there is nothing to say), so a
//! client can use this endpoint as an HTTP hook directly, and `yard hook`
//! only has to carry bytes between stdin, the control socket and stdout.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{Value, json};
use yard_api::{
    ApiError, ErrorCode, HookInput, HookOrigin, HookPending, HookQuestion, HookWait, hook_output,
    hook_reply, rfc3339,
};
use yard_core::{Agent, HookEvent, HookFacts};
use yard_services::{NewQuestion, Waiting};

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
/// Every call is recorded in the agent's audit trail. An event a person
/// must answer (a policy `ask`, an `AskUserQuestion` call, an
/// `Elicitation`) becomes questions: the call waits for them, or, with
/// `Prefer: respond-async`, answers `202` with their ids for
/// `POST /hook/wait`.
#[utoipa::path(
    post,
    path = "/hook",
    tag = "hooks",
    request_body = HookInput,
    responses(
        (status = 200, description = "Claude Code's hook output, or {} for none", body = Object),
        (status = 202, description = "Held for a person (with Prefer: respond-async)", body = HookPending),
        (status = 400, description = "Malformed input or an unknown event", body = ApiError),
        (status = 401, description = "Missing or invalid agent credential", body = ApiError),
    ),
    security(("agent" = []))
)]
pub(crate) async fn hook(
    State(state): State<AppState>,
    Extension(agent): Extension<Agent>,
    headers: HeaderMap,
    JsonBody(input): JsonBody<HookInput>,
) -> Result<Response, AppError> {
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
    let asks = input.questions(event, &verdict);
    if asks.is_empty() {
        return Ok(Json(
            hook_output(event, verdict.decision, &verdict.reason).unwrap_or_else(|| json!({})),
        )
        .into_response());
    }
    let asked = ask_all(&state, &agent, asks).await?;
    if prefers_async(&headers) {
        let deadline = asked
            .iter()
            .map(|w| w.question().deadline)
            .max_by_key(|d| d.0)
            .unwrap_or(yard_core::Timestamp(0));
        let wait_ms = u64::try_from(deadline.0.saturating_sub(now_millis())).unwrap_or(0);
        let pending = HookPending {
            question_ids: asked.iter().map(|w| w.question().id.clone()).collect(),
            deadline: rfc3339(deadline),
            wait_ms,
        };
        return Ok((StatusCode::ACCEPTED, Json(pending)).into_response());
    }
    // Held in this call: each question was listened for before anyone
    // could see it, and is waited on as asked, with no look in the store.
    let mut settled = Vec::with_capacity(asked.len());
    for waiting in asked {
        let origin = hook_origin(&waiting.question().id, waiting.question().origin.as_deref())?;
        let outcome = waiting
            .wait(&state.questions, std::future::pending())
            .await?;
        settled.push((origin, outcome));
    }
    Ok(Json(hook_reply(&settled)).into_response())
}

/// Wait for a held hook event's answer (agents only)
///
/// For a `POST /hook` answered `202`: waits until every question named is
/// answered, timed out or cancelled, then answers with the hook output the
/// event gets. Calling again after a dropped connection or a yard restart
/// waits on the same questions; nothing is asked twice.
#[utoipa::path(
    post,
    path = "/hook/wait",
    tag = "hooks",
    request_body = HookWait,
    responses(
        (status = 200, description = "Claude Code's hook output for the held event", body = Object),
        (status = 400, description = "No question ids", body = ApiError),
        (status = 401, description = "Missing or invalid agent credential", body = ApiError),
        (status = 404, description = "A question that is not this agent's", body = ApiError),
    ),
    security(("agent" = []))
)]
pub(crate) async fn wait(
    State(state): State<AppState>,
    Extension(agent): Extension<Agent>,
    JsonBody(request): JsonBody<HookWait>,
) -> Result<Json<Value>, AppError> {
    if request.question_ids.is_empty() || request.question_ids.len() > MAX_HELD_QUESTIONS {
        return Err(AppError::client(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidRequest,
            format!(
                "name between 1 and {MAX_HELD_QUESTIONS} question ids, as POST /hook answered them"
            ),
        ));
    }
    Ok(Json(
        reply_when_settled(&state, &agent, &request.question_ids).await?,
    ))
}

/// The most questions one hook event may hold (an `AskUserQuestion` call
/// asks a handful).
const MAX_HELD_QUESTIONS: usize = 16;

/// Whether the client asked to be told at once that the event is held
/// (`Prefer: respond-async`, RFC 7240), so it can wait in a call of its
/// own that survives a reconnect.
fn prefers_async(headers: &HeaderMap) -> bool {
    headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim().eq_ignore_ascii_case("respond-async"))
}

fn now_millis() -> i64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
}

/// Asks every question of one event; if one cannot be asked, the ones
/// asked before it are withdrawn, so nobody answers half an event.
async fn ask_all(
    state: &AppState,
    agent: &Agent,
    asks: Vec<HookQuestion>,
) -> Result<Vec<Waiting>, AppError> {
    let mut asked = Vec::with_capacity(asks.len());
    for ask in asks {
        let origin = serde_json::to_string(&ask.origin).ok();
        let question = NewQuestion {
            kind: ask.kind,
            message: ask.message,
            context: ask.context,
            timeout_seconds: None,
            origin,
        };
        match state.questions.ask_to_wait(agent, question).await {
            Ok(waiting) => asked.push(waiting),
            Err(e) => {
                for waiting in &asked {
                    let id = &waiting.question().id;
                    if let Err(e) = state.questions.withdraw(id).await {
                        tracing::warn!(question = %id, error = %e, "cannot withdraw a question");
                    }
                }
                return Err(e.into());
            }
        }
    }
    Ok(asked)
}

/// What a hook event's question keeps to make its reply later.
fn hook_origin(id: &str, origin: Option<&str>) -> Result<HookOrigin, AppError> {
    origin
        .and_then(|o| serde_json::from_str(o).ok())
        .ok_or_else(|| {
            AppError::client(
                StatusCode::BAD_REQUEST,
                ErrorCode::InvalidRequest,
                format!("question {id:?} was not asked by a hook event"),
            )
        })
}

/// Waits until every question in `ids` (all `agent`'s) is settled and
/// makes the hook output from their origins and outcomes.
async fn reply_when_settled(
    state: &AppState,
    agent: &Agent,
    ids: &[String],
) -> Result<Value, AppError> {
    let mut settled = Vec::with_capacity(ids.len());
    for id in ids {
        let question = state.questions.of_agent(&agent.id, id).await?;
        let origin = hook_origin(id, question.origin.as_deref())?;
        // The agent's end settles the question (cancelled); nothing else
        // here may, so a dropped call leaves it pending for the next one.
        let outcome = state.questions.wait(id, std::future::pending()).await?;
        settled.push((origin, outcome));
    }
    Ok(hook_reply(&settled))
}
