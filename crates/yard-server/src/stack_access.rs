//! Protected stack addresses (`YARD_PROTECT_STACKS=true`): only the stack's
//! owner, or an admin, gets through to the stack.
//!
//! Scripts present their token as `Authorization: Bearer`. Browsers cannot:
//! the portal's cookie belongs to the portal's host and is never sent to
//! `NAME.<domain>`. So the portal hands a signed-in person over with
//! `/api/stacks/{name}/open`, which redirects to the stack's address with a
//! one-time ticket; the stack's host trades it for a cookie of its own,
//! scoped to that one stack. The host router removes the yard's
//! credentials from every request before it reaches the stack, protected
//! or not: a stack never sees a token or a session it could replay.

use axum::Extension;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use yard_api::ApiError;
use yard_core::StackName;
use yard_core::TokenRecord;
use yard_services::auth::{self, TOKEN_PREFIX};
use yard_services::sessions::{SESSION_LIFETIME, SessionScope};

use crate::AppState;
use crate::auth::{Principal, SameSite, bearer, cookie, set_cookie};
use crate::error::AppError;
use crate::extract::PathArg;
use crate::host::{page, page_with_link};

/// The cookie of a protected stack's own session.
pub(crate) const STACK_COOKIE: &str = "yard_stack";
/// Where the stack's host takes a ticket from the portal. Requests to this
/// path on a protected stack never reach the stack.
const HANDOVER_PATH: &str = "/_agentyard/session";

/// Lets `request` through to stack `label` if its caller may reach it,
/// with the yard's credentials taken off; otherwise answers it.
pub(crate) async fn admit(
    state: &AppState,
    label: &str,
    request: Request,
) -> Result<Request, Response> {
    let Ok(name) = state.deployer.config().names.parse(label) else {
        return Ok(request);
    };
    if request.uri().path() == HANDOVER_PATH {
        let ticket = request
            .uri()
            .query()
            .into_iter()
            .flat_map(|q| q.split('&'))
            .find_map(|pair| pair.strip_prefix("ticket="))
            .map(str::to_owned);
        return Err(hand_over(state, &name, ticket, request.headers()).await);
    }
    let owner = match state.deployer.live_stack(&name).await {
        Ok(Some(deployment)) => deployment.owner,
        // No such stack: the router says so.
        Ok(None) => return Ok(request),
        Err(e) => return Err(AppError::from(e).into_response()),
    };
    let allowed = |token: &TokenRecord| auth::person(token).may_manage(owner.as_ref());

    if let Some(token) = bearer(request.headers()).filter(|t| t.starts_with(TOKEN_PREFIX)) {
        return match state.access.authenticate(token).await {
            Ok(Some(token)) if allowed(&token) => Ok(request),
            Ok(_) => Err(refusal(state, &name)),
            Err(e) => Err(AppError::from(e).into_response()),
        };
    }
    if let Some(secret) = cookie(request.headers(), STACK_COOKIE) {
        match state
            .access
            .session(secret, &SessionScope::Stack(name.clone()))
            .await
        {
            Ok(Some((_, token))) if allowed(&token) => return Ok(request),
            Ok(_) => {}
            Err(e) => return Err(AppError::from(e).into_response()),
        }
    }
    Err(refusal(state, &name))
}

/// The page for someone who may not (yet) reach the stack.
fn refusal(state: &AppState, name: &StackName) -> Response {
    let open = open_url(state, name);
    page_with_link(
        StatusCode::UNAUTHORIZED,
        "Sign in to reach this stack",
        &format!(
            "Stack “{name}” is open only to its owner. Sign in to the yard's portal and open it from there."
        ),
        Some(("Open it from the portal", &open)),
    )
}

fn open_url(state: &AppState, name: &StackName) -> String {
    format!(
        "{}/api/stacks/{name}/open",
        state.settings.portal_url.trim_end_matches('/')
    )
}

/// `GET /_agentyard/session?ticket=...` on the stack's host: trades the
/// portal's ticket for the stack's cookie, then shows the stack.
async fn hand_over(
    state: &AppState,
    name: &StackName,
    ticket: Option<String>,
    headers: &HeaderMap,
) -> Response {
    let redeemed = match &ticket {
        Some(ticket) => state.access.redeem_ticket(ticket, name).await,
        None => Ok(None),
    };
    match redeemed {
        Ok(Some(session)) => {
            let mut response = Redirect::to("/").into_response();
            response.headers_mut().insert(
                header::SET_COOKIE,
                set_cookie(
                    headers,
                    STACK_COOKIE,
                    Some((&session.secret, SESSION_LIFETIME)),
                    SameSite::Lax,
                ),
            );
            response
        }
        Ok(None) => page_with_link(
            StatusCode::UNAUTHORIZED,
            "This link has expired",
            "Links from the portal work once, for a minute. Open the stack from the portal again.",
            Some(("Open it from the portal", &open_url(state, name))),
        ),
        Err(e) => {
            tracing::error!(stack = %name, error = %e, "cannot redeem a stack ticket");
            page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                "The yard could not sign you in to this stack. Try again in a moment.",
            )
        }
    }
}

/// Open a stack's address in the browser
///
/// Redirects to the stack. When stack addresses are protected, the redirect
/// carries a one-time ticket that signs the caller in on the stack's host.
#[utoipa::path(
    get,
    path = "/api/stacks/{name}/open",
    tag = "stacks",
    params(("name" = String, Path, description = "The stack's name")),
    responses(
        (status = 303, description = "To the stack's address"),
        (status = 401, description = "Missing or invalid token", body = ApiError),
        (status = 403, description = "Another person's stack", body = ApiError),
        (status = 404, description = "No such stack", body = ApiError),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn open(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    PathArg(name): PathArg<String>,
) -> Result<Response, AppError> {
    let name = StackName::from_trusted(name.trim().to_lowercase());
    let deployment = state
        .deployer
        .live_stack(&name)
        .await?
        .ok_or_else(|| AppError::not_found(format!("there is no stack named {name:?}")))?;
    if !state.settings.protect_stacks {
        return Ok(Redirect::to(&deployment.url).into_response());
    }
    if !caller.person().may_manage(deployment.owner.as_ref()) {
        return Err(AppError::client(
            StatusCode::FORBIDDEN,
            yard_api::ErrorCode::Forbidden,
            format!("stack {name:?} is open only to its owner and admins"),
        ));
    }
    let ticket = state.access.issue_ticket(caller.0, &name).await?;
    let url = format!(
        "{}{HANDOVER_PATH}?ticket={ticket}",
        deployment.url.trim_end_matches('/')
    );
    Ok(Redirect::to(&url).into_response())
}
