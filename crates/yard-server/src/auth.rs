//! Bearer-token authentication for every `/api` route.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::Response;
use yard_services::auth::authenticate;

use crate::AppState;
use crate::error::AppError;

/// The token of an `Authorization: Bearer <token>` header.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
}

/// Lets the request through only with an active token.
pub(crate) async fn require_token(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, AppError> {
    let token = bearer(request.headers()).ok_or_else(AppError::unauthorized)?;
    let caller = authenticate(state.deployer.store(), token)
        .await?
        .ok_or_else(AppError::unauthorized)?;
    tracing::debug!(token = %caller.name, "authenticated");
    Ok(next.run(request).await)
}
