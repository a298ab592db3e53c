//! Who is calling the API: a bearer token, or the web page's session cookie.
//!
//! A cookie is sent by the browser on its own, so a request authenticated by
//! one could have been started by another site. Such requests must therefore
//! prove they come from the page: every state-changing one carries the
//! session's CSRF token in `X-CSRF-Token` (another site cannot read it), and
//! an `Origin`, when the browser sends one, must be the yard's own host.
//! Bearer tokens are never sent on their own, so they need neither.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use yard_api::ErrorCode;
use yard_core::{Actor, Person, Role};
use yard_core::{SessionRecord, TokenRecord};
use yard_services::sessions::SessionScope;

use crate::AppState;
use crate::error::AppError;

/// The portal's session cookie.
pub(crate) const SESSION_COOKIE: &str = "yard_session";
/// The header carrying the session's CSRF token.
pub(crate) const CSRF_HEADER: &str = "x-csrf-token";

/// The caller of an authenticated request, put in its extensions.
#[derive(Debug, Clone)]
pub(crate) struct Principal(pub(crate) TokenRecord);

impl Principal {
    /// The person behind the token.
    pub(crate) fn person(&self) -> Person {
        yard_services::auth::person(&self.0)
    }

    /// The person, as the services take who is asking.
    pub(crate) fn actor(&self) -> Actor {
        Actor::Person(self.person())
    }

    /// Refuses anyone but an admin.
    pub(crate) fn require_admin(&self) -> Result<(), AppError> {
        if self.0.role == Role::Admin {
            return Ok(());
        }
        Err(AppError::client(
            StatusCode::FORBIDDEN,
            ErrorCode::Forbidden,
            "only an admin token may do this",
        ))
    }
}

/// The token of an `Authorization: Bearer <token>` header.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
}

/// Every `name=value` pair of the request's `Cookie` headers, trimmed.
pub(crate) fn cookie_pairs(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .map(str::trim)
        .filter(|pair| !pair.is_empty())
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub(crate) fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    cookie_pairs(headers)
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim_matches('"'))
}

/// How a cookie may travel.
#[derive(Debug, Clone, Copy)]
pub(crate) enum SameSite {
    /// Never on requests another site starts: the portal's session.
    Strict,
    /// Also on top-level navigations from elsewhere: a stack's session,
    /// which arrives through a redirect from the portal.
    Lax,
}

/// A `Set-Cookie` value for an HttpOnly cookie; `None` for `max_age`
/// deletes it. `Secure` when the request came over HTTPS (through a proxy
/// that says so).
pub(crate) fn set_cookie(
    request: &HeaderMap,
    name: &str,
    value: Option<(&str, std::time::Duration)>,
    same_site: SameSite,
) -> HeaderValue {
    let same_site = match same_site {
        SameSite::Strict => "Strict",
        SameSite::Lax => "Lax",
    };
    let secure = request
        .get("x-forwarded-proto")
        .is_some_and(|p| p.as_bytes().eq_ignore_ascii_case(b"https"));
    let (value, max_age) = match value {
        Some((value, lifetime)) => (value, lifetime.as_secs()),
        None => ("", 0),
    };
    let mut cookie =
        format!("{name}={value}; Path=/; HttpOnly; SameSite={same_site}; Max-Age={max_age}");
    if secure {
        cookie.push_str("; Secure");
    }
    HeaderValue::from_str(&cookie).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Whether `a` and `b` are equal, in time that does not depend on where
/// they differ.
fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |diff, (x, y)| diff | (x ^ y))
            == 0
}

fn csrf_rejected(message: &str) -> AppError {
    AppError::client(StatusCode::FORBIDDEN, ErrorCode::CsrfRejected, message)
}

/// Refuses a request from a page on another origin: its `Origin`, when it
/// has one, must name the host the request was sent to, or the portal's
/// public address (`portal_url`), for a yard behind a proxy that rewrites
/// `Host`.
pub(crate) fn check_origin(headers: &HeaderMap, portal_url: &str) -> Result<(), AppError> {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) else {
        return match headers.get(header::ORIGIN) {
            None => Ok(()),
            Some(_) => Err(foreign_origin()),
        };
    };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let origin_host = origin.split_once("://").map(|(_, authority)| authority);
    let same_host = matches!((origin_host, host), (Some(o), Some(h)) if o.eq_ignore_ascii_case(h));
    let portal = origin.eq_ignore_ascii_case(portal_url.trim_end_matches('/'));
    if same_host || portal {
        Ok(())
    } else {
        Err(foreign_origin())
    }
}

fn foreign_origin() -> AppError {
    csrf_rejected(
        "this request comes from a page on another origin; the yard only takes session requests from its own page",
    )
}

/// Checks what a session-authenticated request must prove: that it comes
/// from the yard's own page.
pub(crate) fn check_csrf(
    method: &Method,
    headers: &HeaderMap,
    session: &SessionRecord,
    portal_url: &str,
) -> Result<(), AppError> {
    check_origin(headers, portal_url)?;
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return Ok(());
    }
    let sent = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
    match sent {
        Some(sent) if same_secret(sent, &session.csrf_token) => Ok(()),
        _ => Err(csrf_rejected(
            "missing or wrong X-CSRF-Token: send the csrfToken from /api/session with every change made with the session cookie",
        )),
    }
}

/// The portal session a request's cookie names, if it is live.
pub(crate) async fn portal_session(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<(String, SessionRecord, TokenRecord)>, AppError> {
    let Some(secret) = cookie(headers, SESSION_COOKIE) else {
        return Ok(None);
    };
    Ok(state
        .access
        .session(secret, &SessionScope::Portal)
        .await?
        .map(|(session, token)| (secret.to_owned(), session, token)))
}

/// Lets the request through only with an active token or a live session
/// (and, for a session, proof that the request comes from the page).
pub(crate) async fn require_token(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Result<Response, AppError> {
    let token = match bearer(request.headers()) {
        Some(token) => state
            .access
            .authenticate(token)
            .await?
            .ok_or_else(AppError::unauthorized)?,
        None => {
            let (_, session, token) = portal_session(&state, request.headers())
                .await?
                .ok_or_else(AppError::unauthorized)?;
            check_csrf(
                request.method(),
                request.headers(),
                &session,
                &state.settings.portal_url,
            )?;
            token
        }
    };
    tracing::debug!(token = %token.name, "authenticated");
    request.extensions_mut().insert(Principal(token));
    Ok(next.run(request).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; yard_session=abc"),
        );
        headers.append(header::COOKIE, HeaderValue::from_static("b=2"));
        assert_eq!(cookie(&headers, "yard_session"), Some("abc"));
        assert_eq!(cookie(&headers, "b"), Some("2"));
        assert_eq!(cookie(&headers, "yard"), None);
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "ab"));
    }

    const PORTAL: &str = "https://yard.example.com/";

    #[test]
    fn origins_must_be_the_host_asked() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("localhost:3000"));
        assert!(
            check_origin(&headers, PORTAL).is_ok(),
            "no Origin: not a cross-site page"
        );
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://localhost:3000"),
        );
        assert!(check_origin(&headers, PORTAL).is_ok());
        for foreign in [
            "http://alice.localhost:3000",
            "null",
            "https://evil.example",
        ] {
            headers.insert(header::ORIGIN, HeaderValue::from_static(foreign));
            assert!(check_origin(&headers, PORTAL).is_err(), "{foreign}");
        }
        // Behind a proxy that rewrites Host, the public address counts.
        headers.insert(header::HOST, HeaderValue::from_static("127.0.0.1:3000"));
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://yard.example.com"),
        );
        assert!(check_origin(&headers, PORTAL).is_ok());
    }
}
