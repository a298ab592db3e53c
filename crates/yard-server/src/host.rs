//! The host router: a request for `NAME.<domain>` goes to stack NAME.
//!
//! It sits in front of every route, so `alice.localhost:3000/api/...` reaches
//! alice's stack, never the yard's API. Requests are streamed both ways
//! (bodies are not buffered), and upgrades (WebSocket, which web terminals
//! such as ttyd need) are passed through: once the stack agrees to switch
//! protocols, bytes are copied both ways until either side closes. A stack
//! that does not exist gets a small 404 page, one that is not up a 503
//! page: a person in a browser sees what is wrong instead of a connection
//! error. With stack protection on, [`crate::stack_access`] decides first.
//!
//! The yard's credentials never reach a stack, protected or not: every
//! `Authorization: Bearer yard_...` (all the yard's tokens, people's and
//! agents', start with `yard_`) and the yard's cookies (`yard_session`,
//! `yard_stack`) are taken off each request. Anything else, such as a
//! stack's own bearer token or Basic credentials, goes through.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use yard_core::{Endpoint, Scheme};
use yard_services::Route;
use yard_services::auth::TOKEN_PREFIX;

use crate::AppState;
use crate::auth::{SESSION_COOKIE, cookie_pairs};
use crate::stack_access::{self, STACK_COOKIE};

/// The HTTP client the router forwards with; pooled and shared.
pub(crate) type ProxyClient = Client<HttpConnector, Body>;

pub(crate) fn proxy_client() -> ProxyClient {
    let mut connector = HttpConnector::new();
    // A stack's small responses must not wait on Nagle's algorithm.
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new()).build(connector)
}

/// Middleware: proxies stack hosts, passes everything else on.
pub(crate) async fn route_by_host(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| request.uri().authority().map(|a| a.as_str()));
    let Some(label) = host.and_then(|h| state.deployer.config().addressing.stack_for_host(h))
    else {
        return next.run(request).await;
    };
    let label = label.to_lowercase();
    let request = if state.settings.protect_stacks {
        match stack_access::admit(&state, &label, request).await {
            Ok(request) => request,
            Err(refusal) => return refusal,
        }
    } else {
        request
    };
    match state.deployer.route(&label).await {
        Ok(Route::Ready(endpoint)) => {
            let again = replayable(&request);
            match proxy(&state, &label, &endpoint, request).await {
                Ok(response) => response,
                // The stack did not answer where it was: if it answers
                // elsewhere now (a rolling update moved it to a new task,
                // on a new port), a request without a body goes once more.
                Err(unreachable) => match (again, state.deployer.route(&label).await) {
                    (Some(again), Ok(Route::Ready(moved))) if moved != endpoint => {
                        tracing::debug!(stack = %label, from = %endpoint, to = %moved, "the stack moved; sending again");
                        proxy(&state, &label, &moved, again)
                            .await
                            .unwrap_or_else(|page| page)
                    }
                    _ => unreachable,
                },
            }
        }
        Ok(Route::Unknown) => page(
            StatusCode::NOT_FOUND,
            "No such stack",
            &format!("There is no stack named “{label}” here."),
        ),
        Ok(Route::Unavailable(reason)) => page(
            StatusCode::SERVICE_UNAVAILABLE,
            "Stack unavailable",
            &reason,
        ),
        Err(e) => {
            tracing::error!(stack = %label, error = %e, "cannot route to stack");
            page(
                StatusCode::BAD_GATEWAY,
                "Stack unreachable",
                "The yard cannot reach this stack right now. Try again in a moment.",
            )
        }
    }
}

/// The protocol a request asks to switch to (`Upgrade: websocket`), when it
/// really asks: `Connection` must name `upgrade` too.
fn requested_upgrade(headers: &HeaderMap) -> Option<HeaderValue> {
    let asks = connection_options(headers).any(|option| option.eq_ignore_ascii_case("upgrade"));
    asks.then(|| headers.get(header::UPGRADE).cloned())
        .flatten()
}

/// The options the `Connection` headers list: `upgrade`, `keep-alive`, or
/// the names of headers meant for this hop only.
fn connection_options(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
}

/// A copy of `request` to send again, when it has no body to lose: a GET
/// or HEAD without content. Others are sent once.
fn replayable(request: &Request) -> Option<Request> {
    let headers = request.headers();
    let bodiless = matches!(*request.method(), Method::GET | Method::HEAD)
        && !headers.contains_key(header::TRANSFER_ENCODING)
        && headers
            .get(header::CONTENT_LENGTH)
            .is_none_or(|length| length.as_bytes() == b"0");
    if !bodiless || requested_upgrade(headers).is_some() {
        return None;
    }
    let mut copy = Request::new(Body::empty());
    *copy.method_mut() = request.method().clone();
    *copy.uri_mut() = request.uri().clone();
    *copy.version_mut() = request.version();
    *copy.headers_mut() = headers.clone();
    Some(copy)
}

/// Sends `request` to the stack at `endpoint`; `Err` with the page to show
/// when the stack did not answer there (its address is forgotten then).
async fn proxy(
    state: &AppState,
    label: &str,
    endpoint: &Endpoint,
    mut request: Request,
) -> Result<Response, Response> {
    let path = request.uri().path_and_query().map_or("/", |p| p.as_str());
    if endpoint.scheme() == Scheme::Https {
        // A stack its backend serves over TLS under its own domain (Dokploy
        // behind Traefik) is reached there, not through the yard.
        let target = match endpoint.host() {
            Some(host) => format!("https://{host}{path}"),
            None => endpoint.url(path),
        };
        return Ok(match HeaderValue::from_str(&target) {
            Ok(location) => (
                StatusCode::TEMPORARY_REDIRECT,
                [(header::LOCATION, location)],
            )
                .into_response(),
            Err(_) => page(
                StatusCode::BAD_REQUEST,
                "Bad request",
                "The request path is not valid.",
            ),
        });
    }
    let Ok(uri) = endpoint.url(path).parse::<Uri>() else {
        return Ok(page(
            StatusCode::BAD_REQUEST,
            "Bad request",
            "The request path is not valid.",
        ));
    };
    let original_host = request.headers().get(header::HOST).cloned();
    let upgrade = requested_upgrade(request.headers());
    let client_side = upgrade.is_some().then(|| hyper::upgrade::on(&mut request));
    *request.uri_mut() = uri;
    let headers = request.headers_mut();
    strip_hop_by_hop(headers);
    strip_yard_credentials(headers);
    if let Some(protocol) = &upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, protocol.clone());
    }
    if let Some(host) = original_host {
        headers.insert(HeaderName::from_static("x-forwarded-host"), host);
    }
    // A stack behind a shared reverse proxy is picked by its own Host.
    if let Some(host) = endpoint.host().and_then(|h| HeaderValue::from_str(h).ok()) {
        headers.insert(header::HOST, host);
    }
    headers.insert(
        HeaderName::from_static("x-forwarded-proto"),
        HeaderValue::from_static("http"),
    );
    match state.proxy.request(request).await {
        Ok(mut response) => {
            if let Some(client_side) = client_side
                && response.status() == StatusCode::SWITCHING_PROTOCOLS
            {
                return Ok(switch_protocols(state, label, client_side, &mut response));
            }
            let mut response = response.map(Body::new);
            strip_hop_by_hop(response.headers_mut());
            Ok(response)
        }
        Err(e) => {
            tracing::warn!(stack = %label, %endpoint, error = %e, "stack did not answer");
            state.deployer.forget_endpoint(label);
            Err(page(
                StatusCode::BAD_GATEWAY,
                "Stack not answering",
                &format!(
                    "Stack “{label}” did not answer. It may be restarting; try again in a moment."
                ),
            ))
        }
    }
}

/// The stack agreed to switch protocols: answer the client's 101 the same
/// way and join the two connections once both have switched.
fn switch_protocols(
    state: &AppState,
    label: &str,
    client_side: hyper::upgrade::OnUpgrade,
    upstream: &mut hyper::Response<hyper::body::Incoming>,
) -> Response {
    let stack_side = hyper::upgrade::on(&mut *upstream);
    let protocol = upstream.headers().get(header::UPGRADE).cloned();
    let mut headers = upstream.headers().clone();
    strip_hop_by_hop(&mut headers);
    let stopping = state.shutdown.clone();
    let label = label.to_owned();
    tokio::spawn(async move {
        let (client, stack) = tokio::join!(client_side, stack_side);
        let (client, stack) = match (client, stack) {
            (Ok(client), Ok(stack)) => (client, stack),
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!(stack = %label, error = %e, "an upgraded connection did not switch");
                return;
            }
        };
        let (mut client, mut stack) = (TokioIo::new(client), TokioIo::new(stack));
        tokio::select! {
            copied = tokio::io::copy_bidirectional(&mut client, &mut stack) => {
                if let Err(e) = copied {
                    tracing::debug!(stack = %label, error = %e, "upgraded connection ended");
                }
            }
            () = stopping.cancelled() => {}
        }
    });
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    *response.headers_mut() = headers;
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    if let Some(protocol) = protocol {
        response.headers_mut().insert(header::UPGRADE, protocol);
    }
    response
}

/// Drops the yard's cookies from the request's `Cookie` headers, keeping
/// the rest.
fn remove_yard_cookies(headers: &mut HeaderMap) {
    let kept: Vec<String> = cookie_pairs(headers)
        .filter(|pair| {
            let name = pair.split('=').next().unwrap_or_default().trim();
            name != SESSION_COOKIE && name != STACK_COOKIE
        })
        .map(str::to_owned)
        .collect();
    headers.remove(header::COOKIE);
    if !kept.is_empty()
        && let Ok(value) = HeaderValue::from_str(&kept.join("; "))
    {
        headers.insert(header::COOKIE, value);
    }
}

/// Takes the yard's own credentials off a request bound for a stack.
fn strip_yard_credentials(headers: &mut HeaderMap) {
    let kept: Vec<HeaderValue> = headers
        .get_all(header::AUTHORIZATION)
        .iter()
        .filter(|value| !is_yard_bearer(value))
        .cloned()
        .collect();
    headers.remove(header::AUTHORIZATION);
    for value in kept {
        headers.append(header::AUTHORIZATION, value);
    }
    remove_yard_cookies(headers);
}

/// `Bearer yard_...`, in any case and spacing.
fn is_yard_bearer(value: &HeaderValue) -> bool {
    let Ok(text) = value.to_str() else {
        return false;
    };
    let mut parts = text.trim().splitn(2, char::is_whitespace);
    let scheme = parts.next().unwrap_or_default();
    let credential = parts.next().unwrap_or_default().trim();
    scheme.eq_ignore_ascii_case("bearer") && credential.starts_with(TOKEN_PREFIX)
}

/// Headers that describe one connection, not the message, and so must not
/// be forwarded (RFC 9110 §7.6.1), including any the `Connection` header names.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = connection_options(headers)
        .filter_map(|name| HeaderName::try_from(name).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in [
        header::CONNECTION,
        HeaderName::from_static("keep-alive"),
        header::PROXY_AUTHENTICATE,
        header::PROXY_AUTHORIZATION,
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
    ] {
        headers.remove(name);
    }
}

/// A small HTML page for people who reach a stack address in a browser.
pub(crate) fn page(status: StatusCode, title: &str, message: &str) -> Response {
    page_with_link(status, title, message, None)
}

/// [`page`] with a link to follow, `(text, href)`.
pub(crate) fn page_with_link(
    status: StatusCode,
    title: &str,
    message: &str,
    link: Option<(&str, &str)>,
) -> Response {
    let link = link.map_or_else(String::new, |(text, href)| {
        format!(
            "<p><a href=\"{}\">{}</a></p>",
            escape_html(href),
            escape_html(text)
        )
    });
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} · agentyard</title></head>\
         <body style=\"font-family: system-ui, sans-serif; max-width: 36rem; margin: 4rem auto; padding: 0 1rem\">\
         <h1>{title}</h1><p>{message}</p>{link}</body></html>",
        title = escape_html(title),
        message = escape_html(message),
    );
    (status, Html(body)).into_response()
}

fn escape_html(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_are_dropped() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-secret"),
        );
        headers.insert("x-secret", HeaderValue::from_static("1"));
        headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        strip_hop_by_hop(&mut headers);
        assert_eq!(headers.len(), 1);
        assert!(headers.contains_key(header::CONTENT_TYPE));
    }

    #[test]
    fn the_yards_credentials_are_taken_off_and_the_rest_kept() {
        let mut headers = HeaderMap::new();
        for value in [
            "Bearer yard_0123",
            "bearer   yard_agent_4567",
            "Bearer stack-own-token",
            "Basic dXNlcjpwYXNz",
        ] {
            headers.append(header::AUTHORIZATION, HeaderValue::from_static(value));
        }
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; yard_stack=s; yard_stacks=x; yard_session=p"),
        );
        headers.append(header::COOKIE, HeaderValue::from_static("b=2"));
        strip_yard_credentials(&mut headers);
        let auth: Vec<_> = headers.get_all(header::AUTHORIZATION).iter().collect();
        assert_eq!(auth, ["Bearer stack-own-token", "Basic dXNlcjpwYXNz"]);
        assert_eq!(
            headers.get(header::COOKIE).unwrap(),
            "a=1; yard_stacks=x; b=2"
        );
        let mut only = HeaderMap::new();
        only.insert(header::COOKIE, HeaderValue::from_static("yard_stack=s"));
        strip_yard_credentials(&mut only);
        assert!(only.get(header::COOKIE).is_none());
    }

    #[test]
    fn pages_escape_what_they_echo() {
        assert_eq!(
            escape_html("<b>\"x\" & 'y'</b>"),
            "&lt;b&gt;&quot;x&quot; &amp; &#39;y&#39;&lt;/b&gt;"
        );
    }
}
