//! The REST handlers for agents: spawn, list, stop, logs, attach, diff,
//! merge, audit and prune.

use axum::body::Body;
use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio::io::AsyncWriteExt;
use utoipa::IntoParams;
use yard_api::{
    AgentDiffView, AgentList, AgentView, ApiError, AttachControl, AuditList, AuditView, CommitView,
    ErrorCode, MergeView, PolicyView, PruneResult, SpawnRequest, SpawnResult, rfc3339,
};
use yard_core::AgentId;
use yard_git::MergeOutcome;
use yard_services::TtySize;
use yard_services::orchestrator::SpawnRequest as Spawn;

use crate::AppState;
use crate::auth::Principal;
use crate::error::AppError;
use crate::extract::{JsonBody, PathArg, QueryArgs};

fn agent_id(raw: &str) -> Result<AgentId, AppError> {
    AgentId::parse(raw).ok_or_else(|| AppError::not_found(format!("there is no agent {raw:?}")))
}

/// Put agents on a task
///
/// Each agent gets its own checkout on a new branch `yard/<id>` from the
/// base, its own container and credential. All start at once. Users spawn
/// only on repositories inside the repository roots and only the allowed
/// images; the agents are the caller's.
#[utoipa::path(
    post,
    path = "/api/agents",
    tag = "agents",
    request_body = SpawnRequest,
    responses(
        (status = 201, description = "The agents, running or failed to start", body = SpawnResult),
        (status = 400, description = "Bad repository, base, count, task or image", body = ApiError),
        (status = 401, description = "Missing or invalid token", body = ApiError),
        (status = 403, description = "A repository outside the roots, or an image users may not run", body = ApiError),
        (status = 429, description = "Past a cap on running agents", body = ApiError),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn spawn(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    JsonBody(request): JsonBody<SpawnRequest>,
) -> Result<(StatusCode, Json<SpawnResult>), AppError> {
    let agents = state
        .orchestrator
        .spawn(
            &caller.actor(),
            Spawn {
                repo: Some(request.repo.into()),
                count: request.count,
                task: request.task,
                image: request.image,
                base: request.base,
            },
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(SpawnResult {
            agents: agents.iter().map(AgentView::from).collect(),
        }),
    ))
}

/// List the caller's agents (an admin's: all), newest first
#[utoipa::path(
    get,
    path = "/api/agents",
    tag = "agents",
    responses(
        (status = 200, description = "Agents", body = AgentList),
        (status = 401, description = "Missing or invalid token", body = ApiError),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
) -> Result<Json<AgentList>, AppError> {
    let agents = state.orchestrator.agents(&caller.actor(), 500).await?;
    Ok(Json(AgentList {
        agents: agents.iter().map(AgentView::from).collect(),
    }))
}

/// Show one agent
#[utoipa::path(
    get,
    path = "/api/agents/{id}",
    tag = "agents",
    params(("id" = String, Path, description = "The agent's id")),
    responses(
        (status = 200, description = "The agent", body = AgentView),
        (status = 401, description = "Missing or invalid token", body = ApiError),
        (status = 404, description = "No such agent", body = ApiError),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn get(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    PathArg(id): PathArg<String>,
) -> Result<Json<AgentView>, AppError> {
    let agent = state
        .orchestrator
        .agent(&caller.actor(), &agent_id(&id)?)
        .await?;
    Ok(Json(AgentView::from(&agent)))
}

/// Stop an agent
///
/// Stops and removes its container; its checkout and branch stay.
#[utoipa::path(
    post,
    path = "/api/agents/{id}/stop",
    tag = "agents",
    params(("id" = String, Path, description = "The agent's id")),
    responses(
        (status = 200, description = "The agent, stopped", body = AgentView),
        (status = 401, description = "Missing or invalid token", body = ApiError),
        (status = 404, description = "No such agent", body = ApiError),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn stop(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    PathArg(id): PathArg<String>,
) -> Result<Json<AgentView>, AppError> {
    let agent = state
        .orchestrator
        .stop(&caller.actor(), &agent_id(&id)?)
        .await?;
    Ok(Json(AgentView::from(&agent)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct LogParams {
    /// Keep the stream open and send new output as it comes.
    #[serde(default)]
    follow: bool,
    /// Only the last N lines (default: all).
    tail: Option<u32>,
}

/// An agent's output
///
/// Plain text, stdout and stderr together; with `follow`, streamed until
/// the agent's container stops.
#[utoipa::path(
    get,
    path = "/api/agents/{id}/logs",
    tag = "agents",
    params(("id" = String, Path, description = "The agent's id"), LogParams),
    responses(
        (status = 200, description = "The output", content_type = "text/plain", body = String),
        (status = 401, description = "Missing or invalid token", body = ApiError),
        (status = 404, description = "No such agent", body = ApiError),
        (status = 410, description = "The agent's container is gone", body = ApiError),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn logs(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    PathArg(id): PathArg<String>,
    QueryArgs(params): QueryArgs<LogParams>,
) -> Result<Response, AppError> {
    let output = state
        .orchestrator
        .logs(&caller.actor(), &agent_id(&id)?, params.follow, params.tail)
        .await?
        .take_until(state.shutdown.clone().cancelled_owned());
    Ok((
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        Body::from_stream(output),
    )
        .into_response())
}

/// Attach to an agent's terminal (WebSocket)
///
/// Binary messages from the client go to the agent's stdin; its output
/// comes back as binary messages. Closing the socket detaches; the agent
/// keeps running.
#[utoipa::path(
    get,
    path = "/api/agents/{id}/attach",
    tag = "agents",
    params(("id" = String, Path, description = "The agent's id")),
    responses(
        (status = 101, description = "Attached"),
        (status = 401, description = "Missing or invalid token", body = ApiError),
        (status = 404, description = "No such agent", body = ApiError),
        (status = 409, description = "The agent is not running", body = ApiError),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn attach(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    PathArg(id): PathArg<String>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, AppError> {
    let id = agent_id(&id)?;
    let io = state.orchestrator.attach(&caller.actor(), &id).await?;
    let upgrade = upgrade.map_err(|rejection| {
        AppError::client(
            StatusCode::BAD_REQUEST,
            ErrorCode::BadRequest,
            format!("attach speaks WebSocket: {}", rejection.body_text()),
        )
    })?;
    let shutdown = state.shutdown.clone();
    Ok(upgrade.on_upgrade(move |socket| relay(socket, io, id, shutdown)))
}

/// Copies between the WebSocket and the agent until either side ends.
async fn relay(
    socket: WebSocket,
    io: yard_services::AgentIo,
    id: AgentId,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let (mut to_client, mut from_client) = socket.split();
    let yard_services::AgentIo {
        mut output,
        mut input,
        resize,
    } = io;
    let downstream = async {
        while let Some(chunk) = output.next().await {
            let Ok(bytes) = chunk else { break };
            if to_client.send(Message::Binary(bytes)).await.is_err() {
                break;
            }
        }
        let _ = to_client.send(Message::Close(None)).await;
    };
    let upstream = async {
        while let Some(Ok(message)) = from_client.next().await {
            let bytes = match message {
                Message::Binary(bytes) => bytes,
                Message::Text(text) => {
                    if let Ok(AttachControl::Resize { cols, rows }) =
                        serde_json::from_str(text.as_str())
                    {
                        if let Err(e) = resize(TtySize { cols, rows }).await {
                            tracing::debug!(agent = %id, error = %e, "cannot resize the agent's terminal");
                        }
                        continue;
                    }
                    // Plain text from a simple client is typing too.
                    bytes::Bytes::from(text.as_str().to_owned())
                }
                Message::Close(_) => break,
                Message::Ping(_) | Message::Pong(_) => continue,
            };
            if input.write_all(&bytes).await.is_err() || input.flush().await.is_err() {
                break;
            }
        }
    };
    tokio::select! {
        () = downstream => {}
        () = upstream => {}
        () = shutdown.cancelled() => {}
    }
    tracing::debug!(agent = %id, "detached");
}

/// An agent's commits and changes against its base
#[utoipa::path(
    get,
    path = "/api/agents/{id}/diff",
    tag = "agents",
    params(("id" = String, Path, description = "The agent's id")),
    responses(
        (status = 200, description = "Commits and patch", body = AgentDiffView),
        (status = 401, description = "Missing or invalid token", body = ApiError),
        (status = 404, description = "No such agent", body = ApiError),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn diff(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    PathArg(id): PathArg<String>,
) -> Result<Json<AgentDiffView>, AppError> {
    let diff = state
        .orchestrator
        .diff(&caller.actor(), &agent_id(&id)?)
        .await?;
    Ok(Json(AgentDiffView {
        agent: AgentView::from(&diff.agent),
        commits: diff
            .commits
            .into_iter()
            .map(|c| CommitView {
                sha: c.sha,
                author: c.author,
                subject: c.subject,
            })
            .collect(),
        patch: diff.patch,
    }))
}

/// Merge an agent's branch into its source repository
///
/// Merges into the branch checked out there, which must be clean. A merge
/// that would conflict changes nothing and answers 409 with the files.
#[utoipa::path(
    post,
    path = "/api/agents/{id}/merge",
    tag = "agents",
    params(("id" = String, Path, description = "The agent's id")),
    responses(
        (status = 200, description = "Merged, or already merged", body = MergeView),
        (status = 401, description = "Missing or invalid token", body = ApiError),
        (status = 404, description = "No such agent", body = ApiError),
        (status = 409, description = "Conflicts, or the repository has uncommitted changes; nothing changed", body = ApiError),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn merge(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    PathArg(id): PathArg<String>,
) -> Result<Json<MergeView>, AppError> {
    let id = agent_id(&id)?;
    match state.orchestrator.merge(&caller.actor(), &id).await? {
        MergeOutcome::Merged { into, commit } => Ok(Json(MergeView {
            into,
            commit: Some(commit),
            up_to_date: false,
        })),
        MergeOutcome::UpToDate { into } => Ok(Json(MergeView {
            into,
            commit: None,
            up_to_date: true,
        })),
        MergeOutcome::Conflicts { into, files } => Err(AppError::client(
            StatusCode::CONFLICT,
            ErrorCode::MergeConflict,
            format!(
                "merging {} into {into} would conflict in: {}; nothing was changed",
                id.branch(),
                files.join(", ")
            ),
        )),
    }
}

/// An agent's hook decisions, oldest first
#[utoipa::path(
    get,
    path = "/api/agents/{id}/audit",
    tag = "agents",
    params(("id" = String, Path, description = "The agent's id")),
    responses(
        (status = 200, description = "Every hook call and its decision", body = AuditList),
        (status = 401, description = "Missing or invalid token", body = ApiError),
        (status = 404, description = "No such agent", body = ApiError),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn audit(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    PathArg(id): PathArg<String>,
) -> Result<Json<AuditList>, AppError> {
    let agent = state
        .orchestrator
        .agent(&caller.actor(), &agent_id(&id)?)
        .await?;
    let entries = state.gatekeeper.audit(&agent.id).await?;
    Ok(Json(AuditList {
        agent_id: agent.id.to_string(),
        entries: entries
            .into_iter()
            .map(|e| AuditView {
                at: rfc3339(e.created_at),
                event: e.event,
                tool: e.tool,
                subject: e.subject,
                input: e.input,
                decision: e.decision,
                asked: e.asked,
                rule: e.rule,
                reason: e.reason,
            })
            .collect(),
    }))
}

/// Remove the checkouts and branches of agents that have ended
#[utoipa::path(
    post,
    path = "/api/agents/prune",
    tag = "agents",
    responses(
        (status = 200, description = "The agents pruned", body = PruneResult),
        (status = 401, description = "Missing or invalid token", body = ApiError),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn prune(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
) -> Result<Json<PruneResult>, AppError> {
    let pruned = state.orchestrator.prune(&caller.actor()).await?;
    Ok(Json(PruneResult {
        pruned: pruned.iter().map(AgentView::from).collect(),
    }))
}

/// The hook policy in force
#[utoipa::path(
    get,
    path = "/api/policy",
    tag = "agents",
    responses(
        (status = 200, description = "Where the policy comes from, and any error in its file", body = PolicyView),
        (status = 401, description = "Missing or invalid token", body = ApiError),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn policy(State(state): State<AppState>) -> Json<PolicyView> {
    let status = state.gatekeeper.policy_status();
    Json(PolicyView {
        path: status.path.display().to_string(),
        from_file: status.from_file,
        rules: status.rules,
        error: status.error,
    })
}
