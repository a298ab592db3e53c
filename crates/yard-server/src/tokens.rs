//! `/api/tokens`: the tokens an admin makes for people, listed and revoked.

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::Deserialize;
use utoipa::IntoParams;
use yard_api::{
    ApiError, CreateTokenRequest, CreatedToken, RevokedToken, TokenList, TokenRoleView, TokenView,
    rfc3339,
};
use yard_core::Role;
use yard_core::TokenRecord;
use yard_services::auth::NewToken;

use crate::AppState;
use crate::auth::Principal;
use crate::error::AppError;
use crate::extract::{JsonBody, PathArg, QueryArgs};

pub(crate) fn role_view(role: Role) -> TokenRoleView {
    match role {
        Role::Admin => TokenRoleView::Admin,
        Role::User => TokenRoleView::User,
    }
}

fn view(token: &TokenRecord) -> TokenView {
    TokenView {
        id: token.id.clone(),
        name: token.name.clone(),
        role: role_view(token.role),
        created_at: rfc3339(token.created_at),
        revoked_at: token.revoked_at.map(rfc3339),
    }
}

/// List the active tokens (admin)
#[utoipa::path(
    get,
    path = "/api/tokens",
    tag = "tokens",
    responses(
        (status = 200, description = "The active tokens, without their secrets", body = TokenList),
        (status = 401, description = "Missing or invalid token", body = ApiError),
        (status = 403, description = "Not an admin", body = ApiError),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
) -> Result<Json<TokenList>, AppError> {
    caller.require_admin()?;
    let tokens = state.access.tokens().await?;
    Ok(Json(TokenList {
        tokens: tokens.iter().map(view).collect(),
    }))
}

/// Make a token for a person (admin)
///
/// The answer is the only place the secret ever appears.
#[utoipa::path(
    post,
    path = "/api/tokens",
    tag = "tokens",
    request_body = CreateTokenRequest,
    responses(
        (status = 201, description = "Made", body = CreatedToken),
        (status = 400, description = "Bad name or body", body = ApiError),
        (status = 401, description = "Missing or invalid token", body = ApiError),
        (status = 403, description = "Not an admin", body = ApiError),
        (status = 409, description = "An active token has that name", body = ApiError),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    JsonBody(request): JsonBody<CreateTokenRequest>,
) -> Result<(StatusCode, Json<CreatedToken>), AppError> {
    caller.require_admin()?;
    let role = match request.role {
        Some(TokenRoleView::Admin) => Role::Admin,
        Some(TokenRoleView::User) | None => Role::User,
    };
    let issued = state
        .access
        .create_token(&NewToken {
            name: request.name,
            role,
            takes_over: request.takes_over,
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedToken {
            token: view(&issued.record),
            secret: issued.secret,
        }),
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub(crate) struct RevokeParams {
    /// Leave the token's agents running (their credentials stop working
    /// until a token takes over from this one).
    #[serde(default)]
    keep_agents: bool,
}

/// Revoke a token by id or name (admin)
///
/// Its sessions and its agents' credentials end at once, and its agents
/// are stopped unless `keepAgents` says otherwise.
#[utoipa::path(
    delete,
    path = "/api/tokens/{token}",
    tag = "tokens",
    params(("token" = String, Path, description = "The token's id or name"), RevokeParams),
    responses(
        (status = 200, description = "Revoked", body = RevokedToken),
        (status = 400, description = "The admin token", body = ApiError),
        (status = 401, description = "Missing or invalid token", body = ApiError),
        (status = 403, description = "Not an admin", body = ApiError),
        (status = 404, description = "No such active token", body = ApiError),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn revoke(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    PathArg(key): PathArg<String>,
    QueryArgs(params): QueryArgs<RevokeParams>,
) -> Result<Json<RevokedToken>, AppError> {
    caller.require_admin()?;
    let revoked = state.access.revoke_token(&key).await?;
    let stopped = if params.keep_agents {
        Vec::new()
    } else {
        state.orchestrator.stop_agents_of(&revoked.owner()).await?
    };
    Ok(Json(RevokedToken {
        token: view(&revoked),
        stopped_agents: stopped.iter().map(|a| a.id.to_string()).collect(),
    }))
}
