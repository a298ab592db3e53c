//! `/mcp`: the yard's MCP tools over streamable HTTP, on TCP and on the
//! control socket. A person's token opens every tool, an agent's credential
//! the agent tools; the tools learn which from the [`Actor`] put on the
//! request here.

use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::Response;
use yard_api::ErrorCode;
use yard_core::Actor;
use yard_mcp::HttpGuard;
use yard_services::auth::{self};
use yard_services::orchestrator::AGENT_TOKEN_PREFIX;

use crate::AppState;
use crate::auth::bearer;
use crate::error::AppError;

/// The `/mcp` route; `allowed_hosts` `None` skips the `Host` check.
pub(crate) fn router(state: &AppState, allowed_hosts: Option<Vec<String>>) -> Router<AppState> {
    let service = yard_mcp::http_service(
        state.deployer.clone(),
        state.orchestrator.clone(),
        state.questions.clone(),
        HttpGuard {
            allowed_origins: state.settings.mcp_allowed_origins.clone(),
            allowed_hosts,
        },
        state.shutdown.clone(),
    );
    Router::new()
        .route_service("/mcp", service)
        .layer(middleware::from_fn_with_state(state.clone(), identify))
}

/// Finds out who is calling: a person (user token) or an agent (its
/// credential). Anyone else gets 401 before MCP sees the request.
async fn identify(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Result<Response, AppError> {
    let caller = match bearer(request.headers()) {
        Some(token) if token.starts_with(AGENT_TOKEN_PREFIX) => state
            .orchestrator
            .authenticate(token)
            .await?
            .map(|agent| Actor::Agent(Box::new(agent))),
        Some(token) => state
            .access
            .authenticate(token)
            .await?
            .map(|token| Actor::Person(auth::person(&token))),
        None => None,
    };
    let caller = caller.ok_or_else(|| {
        AppError::client(
            StatusCode::UNAUTHORIZED,
            ErrorCode::Unauthorized,
            "missing or invalid token: send 'Authorization: Bearer <token>' with a user token, or an agent's YARD_AGENT_TOKEN",
        )
    })?;
    request.extensions_mut().insert(caller);
    Ok(next.run(request).await)
}
