//! The REST handlers for names, deployments and stacks.
//!
//! Handlers only translate: HTTP in, a deployer call, wire types out. The
//! rules live in the deployer and the domain.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use utoipa::IntoParams;
use yard_api::{
    ApiError, DeployAccepted, DeployRequest, DeploymentList, DeploymentView, NameCheck, StackList,
    StackView, UpdateStackRequest,
};
use yard_services::NameAvailability;

use crate::AppState;
use crate::auth::Principal;
use crate::error::AppError;
use crate::extract::{JsonBody, PathArg, QueryArgs};

/// Check whether a name can be deployed
///
/// Always answers 200; `valid` and `available` say whether the name can be
/// used, and `error` says why not.
#[utoipa::path(
    get,
    path = "/api/check/{name}",
    tag = "stacks",
    params(("name" = String, Path, description = "The name to check, as a person typed it")),
    responses(
        (status = 200, description = "The verdict", body = NameCheck),
        (status = 401, description = "Missing or invalid token", body = ApiError),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn check_name(
    State(state): State<AppState>,
    PathArg(name): PathArg<String>,
) -> Result<Json<NameCheck>, AppError> {
    let check = match state.deployer.check_name(&name).await? {
        NameAvailability::Available(_) => NameCheck {
            available: true,
            valid: true,
            error: None,
        },
        NameAvailability::Taken(name) => NameCheck {
            available: false,
            valid: true,
            error: Some(format!(
                "the name {name:?} is already taken by another stack"
            )),
        },
        NameAvailability::Invalid(e) => NameCheck {
            available: false,
            valid: false,
            error: Some(e.to_string()),
        },
    };
    Ok(Json(check))
}

/// Deploy a stack
///
/// Records the deployment and starts it; follow `statusEndpoint` (SSE) for
/// progress.
#[utoipa::path(
    post,
    path = "/api/deploy",
    tag = "stacks",
    request_body = DeployRequest,
    responses(
        (status = 202, description = "Deployment started", body = DeployAccepted),
        (status = 400, description = "Invalid name or body", body = ApiError),
        (status = 401, description = "Missing or invalid token", body = ApiError),
        (status = 409, description = "The name is taken", body = ApiError),
        (status = 413, description = "Body too large", body = ApiError),
        (status = 415, description = "Body is not JSON", body = ApiError),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn deploy(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    JsonBody(request): JsonBody<DeployRequest>,
) -> Result<(StatusCode, Json<DeployAccepted>), AppError> {
    let deployment = state
        .deployer
        .deploy(&request.name, &caller.0.owner())
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(DeployAccepted {
            deployment_id: deployment.id.to_string(),
            name: deployment.name.to_string(),
            url: deployment.url,
            status_endpoint: format!("/api/status/{}", deployment.id),
        }),
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListParams {
    /// At most this many, newest first (1 to 1000, default 100).
    limit: Option<u16>,
}

/// List deployments, newest first
#[utoipa::path(
    get,
    path = "/api/deployments",
    tag = "deployments",
    params(ListParams),
    responses(
        (status = 200, description = "Deployments", body = DeploymentList),
        (status = 400, description = "Bad limit", body = ApiError),
        (status = 401, description = "Missing or invalid token", body = ApiError),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn list_deployments(
    State(state): State<AppState>,
    QueryArgs(params): QueryArgs<ListParams>,
) -> Result<Json<DeploymentList>, AppError> {
    let limit = i64::from(params.limit.unwrap_or(100).clamp(1, 1000));
    let deployments = state.deployer.history(limit).await?;
    Ok(Json(DeploymentList {
        deployments: deployments.iter().map(DeploymentView::from).collect(),
    }))
}

/// Show one deployment
#[utoipa::path(
    get,
    path = "/api/deployments/{deploymentId}",
    tag = "deployments",
    params(("deploymentId" = String, Path, description = "The deployment's id")),
    responses(
        (status = 200, description = "The deployment", body = DeploymentView),
        (status = 401, description = "Missing or invalid token", body = ApiError),
        (status = 404, description = "No such deployment", body = ApiError),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn get_deployment(
    State(state): State<AppState>,
    PathArg(id): PathArg<String>,
) -> Result<Json<DeploymentView>, AppError> {
    let deployment = state
        .deployer
        .deployment(&id)
        .await?
        .ok_or_else(|| AppError::not_found(format!("there is no deployment with id {id:?}")))?;
    Ok(Json(DeploymentView::from(&deployment)))
}

/// List live stacks, by name
#[utoipa::path(
    get,
    path = "/api/stacks",
    tag = "stacks",
    responses(
        (status = 200, description = "Stacks that hold their name", body = StackList),
        (status = 401, description = "Missing or invalid token", body = ApiError),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn list_stacks(State(state): State<AppState>) -> Result<Response, AppError> {
    let live = state.deployer.live_stacks().await?;
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        state.stack_list.render(&live),
    )
        .into_response())
}

/// Remove a stack and everything it owns
///
/// Waits until the container and data volume are gone. Only the
/// stack's owner (the token that deployed it) or an admin may.
#[utoipa::path(
    delete,
    path = "/api/stacks/{name}",
    tag = "stacks",
    params(("name" = String, Path, description = "The stack's name")),
    responses(
        (status = 200, description = "Removed", body = StackView),
        (status = 401, description = "Missing or invalid token", body = ApiError),
        (status = 403, description = "Another person's stack", body = ApiError),
        (status = 404, description = "No such stack", body = ApiError),
        (status = 409, description = "Still deploying", body = ApiError),
        (status = 503, description = "The container engine is not reachable", body = ApiError),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn destroy_stack(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    PathArg(name): PathArg<String>,
) -> Result<Json<StackView>, AppError> {
    let removed = state.deployer.destroy(&name, &caller.person()).await?;
    Ok(Json(StackView::from(&removed)))
}

/// Run a stack on another image
///
/// A rolling update by the backend (swarm): the stack keeps answering while
/// the new image starts, and a new image that does not become healthy is
/// rolled back (409 `rolled_back`, with the reason; the deployment's record
/// says so too). Backends without rolling updates answer 409
/// `unsupported`. Only the stack's owner or an admin may.
#[utoipa::path(
    post,
    path = "/api/stacks/{name}/update",
    tag = "stacks",
    params(("name" = String, Path, description = "The stack's name")),
    request_body = UpdateStackRequest,
    responses(
        (status = 200, description = "Updated", body = StackView),
        (status = 400, description = "Not an image reference, or no such image", body = ApiError),
        (status = 401, description = "Missing or invalid token", body = ApiError),
        (status = 403, description = "Another person's stack", body = ApiError),
        (status = 404, description = "No such stack", body = ApiError),
        (status = 409, description = "Rolled back, still deploying, or not supported by the backend", body = ApiError),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn update_stack(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    PathArg(name): PathArg<String>,
    JsonBody(request): JsonBody<UpdateStackRequest>,
) -> Result<Json<StackView>, AppError> {
    let updated = state
        .deployer
        .update_stack(&name, &request.image, &caller.person())
        .await?;
    Ok(Json(StackView::from(&updated)))
}

/// Restart a stack now
///
/// Makes its container again (its data volume stays) and waits until it
/// answers; a stack the yard gave up on gets a fresh count of restarts.
/// Only the stack's owner or an admin may.
#[utoipa::path(
    post,
    path = "/api/stacks/{name}/restart",
    tag = "stacks",
    params(("name" = String, Path, description = "The stack's name")),
    responses(
        (status = 200, description = "Restarted, or why the restart failed in its health", body = StackView),
        (status = 401, description = "Missing or invalid token", body = ApiError),
        (status = 403, description = "Another person's stack", body = ApiError),
        (status = 404, description = "No such stack", body = ApiError),
        (status = 409, description = "Still deploying", body = ApiError),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn restart_stack(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    PathArg(name): PathArg<String>,
) -> Result<Json<StackView>, AppError> {
    let restarted = state
        .deployer
        .restart_stack(&name, &caller.person())
        .await?;
    Ok(Json(StackView::from(&restarted)))
}
