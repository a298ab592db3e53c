//! `/api/session`: the web page's sign-in, who is signed in, and sign-out.
//!
//! Signing in trades a token for an HttpOnly, SameSite=Strict session
//! cookie; the page never keeps the token. The answer carries the CSRF
//! token the page sends back on every change it makes.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use yard_api::{ApiError, SessionView, SignInRequest, rfc3339};
use yard_core::{SessionRecord, TokenRecord};
use yard_services::sessions::{NewSession, SESSION_LIFETIME};

use crate::AppState;
use crate::auth::{SESSION_COOKIE, SameSite, check_csrf, check_origin, portal_session, set_cookie};
use crate::error::AppError;
use crate::extract::JsonBody;
use crate::tokens::role_view;

fn view(state: &AppState, session: &SessionRecord, token: &TokenRecord) -> SessionView {
    SessionView {
        name: token.name.clone(),
        role: role_view(token.role),
        csrf_token: session.csrf_token.clone(),
        expires_at: rfc3339(session.expires_at),
        protect_stacks: state.settings.protect_stacks,
    }
}

/// Sign in with a token
///
/// Sets the session cookie. The token is checked and forgotten; the page
/// holds only the session.
#[utoipa::path(
    post,
    path = "/api/session",
    tag = "session",
    request_body = SignInRequest,
    responses(
        (status = 200, description = "Signed in; the session cookie is set", body = SessionView),
        (status = 400, description = "Bad body", body = ApiError),
        (status = 401, description = "Not an active token", body = ApiError),
        (status = 403, description = "From another origin", body = ApiError),
    )
)]
pub(crate) async fn sign_in(
    State(state): State<AppState>,
    headers: HeaderMap,
    JsonBody(request): JsonBody<SignInRequest>,
) -> Result<Response, AppError> {
    check_origin(&headers, &state.settings.portal_url)?;
    let NewSession {
        secret,
        session,
        token,
    } = state
        .access
        .sign_in(&request.token)
        .await?
        .ok_or_else(|| {
            AppError::client(
                StatusCode::UNAUTHORIZED,
                yard_api::ErrorCode::Unauthorized,
                "that is not an active token: paste the admin token from the data directory's admin-token file, or one made with `yard token create`",
            )
        })?;
    let cookie = set_cookie(
        &headers,
        SESSION_COOKIE,
        Some((&secret, SESSION_LIFETIME)),
        SameSite::Strict,
    );
    let mut response = Json(view(&state, &session, &token)).into_response();
    response.headers_mut().insert(header::SET_COOKIE, cookie);
    Ok(response)
}

/// Who is signed in
///
/// Answers for the session cookie, with the CSRF token a reloaded page
/// needs again.
#[utoipa::path(
    get,
    path = "/api/session",
    tag = "session",
    responses(
        (status = 200, description = "The session", body = SessionView),
        (status = 401, description = "Not signed in", body = ApiError),
    )
)]
pub(crate) async fn current(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<SessionView>, AppError> {
    let (_, session, token) = portal_session(&state, &headers)
        .await?
        .ok_or_else(not_signed_in)?;
    Ok(Json(view(&state, &session, &token)))
}

/// Sign out
///
/// Ends the session and clears the cookie. Needs the session's CSRF token.
#[utoipa::path(
    delete,
    path = "/api/session",
    tag = "session",
    responses(
        (status = 204, description = "Signed out"),
        (status = 401, description = "Not signed in", body = ApiError),
        (status = 403, description = "Missing CSRF token, or from another origin", body = ApiError),
    )
)]
pub(crate) async fn sign_out(
    State(state): State<AppState>,
    method: axum::http::Method,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let (secret, session, token) = portal_session(&state, &headers)
        .await?
        .ok_or_else(not_signed_in)?;
    check_csrf(&method, &headers, &session, &state.settings.portal_url)?;
    state.access.sign_out(&secret).await?;
    tracing::info!(token = %token.name, "signed out");
    let mut response = StatusCode::NO_CONTENT.into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        set_cookie(&headers, SESSION_COOKIE, None, SameSite::Strict),
    );
    Ok(response)
}

fn not_signed_in() -> AppError {
    AppError::client(
        StatusCode::UNAUTHORIZED,
        yard_api::ErrorCode::Unauthorized,
        "not signed in, or the session has ended: sign in again with a token",
    )
}
