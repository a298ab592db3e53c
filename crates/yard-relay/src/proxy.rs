//! One request through the relay: the access check, then a WebSocket
//! tunnel, a `/json` answer read whole and rewritten, or any other request
//! streamed both ways over a keep-alive pool to the upstream.
//!
//! Every failure is an answer, never a hang or a dropped connection: 401
//! without the token, 400 for a `Host` the relay will not put in a URL, 502
//! naming the upstream when it does not answer (within a few seconds to
//! connect) or answers `/json` with something that is not JSON.

use std::convert::Infallible;
use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Either, Full, Limited};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio_util::sync::CancellationToken;

use crate::access::{Admission, Gate};
use crate::forward::{Upstream, plausible_authority, requested_upgrade, strip_hop_by_hop};
use crate::json;
use crate::{RelayConfig, RelayError, tunnel};

/// How long the upstream has to accept a connection.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long the upstream has to answer a request's head (and, for `/json`,
/// its whole body). Streams after that have no deadline.
pub(crate) const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest `/json` answer the relay reads (`/json/protocol` is about
/// 1.6 MB).
const JSON_LIMIT: usize = 4 * 1024 * 1024;

/// What the relay answers with: the upstream's body streamed, or one it
/// made.
pub(crate) type RelayBody = Either<Incoming, Full<Bytes>>;

/// Everything a request needs, shared by all connections.
pub(crate) struct Relay {
    pub(crate) upstream: Upstream,
    pub(crate) gate: Gate,
    client: Client<HttpConnector, Incoming>,
    /// Cancelled when the relay shuts down: open tunnels end.
    pub(crate) stopping: CancellationToken,
}

impl fmt::Debug for Relay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Relay")
            .field("upstream", &self.upstream)
            .field("gate", &self.gate)
            .finish_non_exhaustive()
    }
}

impl Relay {
    pub(crate) fn new(
        config: &RelayConfig,
        stopping: CancellationToken,
    ) -> Result<Self, RelayError> {
        let upstream = Upstream::parse(&config.upstream)?;
        let gate = Gate::new(&config.access)?;
        let mut connector = HttpConnector::new();
        // Small answers must not wait on Nagle's algorithm.
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(64)
            .build(connector);
        Ok(Self {
            upstream,
            gate,
            client,
            stopping,
        })
    }

    /// Answers one request.
    pub(crate) async fn handle(
        &self,
        request: Request<Incoming>,
    ) -> Result<Response<RelayBody>, Infallible> {
        let (mut parts, body) = request.into_parts();
        let admission = self.gate.admit(&parts);
        if matches!(admission, Admission::Missing | Admission::Wrong) {
            tracing::debug!(method = %parts.method, path = parts.uri.path(), ?admission, "refused");
            return Ok(unauthorized(admission));
        }
        let mut response = if requested_upgrade(&parts.headers).is_some() {
            tunnel::open(self, Request::from_parts(parts, body)).await
        } else if json::is_json_path(parts.uri.path()) && parts.method != Method::HEAD {
            match public_authority(&parts) {
                Some(public) => {
                    let public = public.to_owned();
                    self.prepare(&mut parts);
                    parts.headers.remove(header::ACCEPT_ENCODING);
                    self.json(Request::from_parts(parts, body), &public).await
                }
                None => plain(
                    StatusCode::BAD_REQUEST,
                    "the request's Host is not a host[:port] the relay can hand back in URLs\n",
                ),
            }
        } else {
            self.prepare(&mut parts);
            self.forward(Request::from_parts(parts, body)).await
        };
        if admission == Admission::Query
            && let Some(cookie) = self.gate.set_cookie()
        {
            response
                .headers_mut()
                .append(header::SET_COOKIE, cookie.clone());
        }
        Ok(response)
    }

    /// Makes a client's request one for the upstream: the token off, the
    /// hop-by-hop headers and `Origin` dropped, the upstream's `Host` and
    /// an absolute URI for the pool.
    fn prepare(&self, parts: &mut http::request::Parts) {
        self.gate.strip(parts);
        strip_hop_by_hop(&mut parts.headers);
        parts.headers.remove(header::ORIGIN);
        parts
            .headers
            .insert(header::HOST, self.upstream.host.clone());
        let path = parts.uri.path_and_query().cloned();
        let mut uri = http::uri::Parts::default();
        uri.scheme = Some(http::uri::Scheme::HTTP);
        uri.authority = Some(self.upstream.authority.clone());
        uri.path_and_query = path.or_else(|| Some(http::uri::PathAndQuery::from_static("/")));
        if let Ok(uri) = Uri::from_parts(uri) {
            parts.uri = uri;
        }
    }

    /// Sends a request over the pool and waits for the answer's head.
    async fn send(
        &self,
        request: Request<Incoming>,
    ) -> Result<Response<Incoming>, Response<RelayBody>> {
        let path = request.uri().path().to_owned();
        match tokio::time::timeout(ANSWER_TIMEOUT, self.client.request(request)).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(e)) => {
                let cause = causes(&e);
                tracing::warn!(upstream = %self.upstream.authority, path, error = %cause, "the upstream did not answer");
                Err(self.unreachable(&cause))
            }
            Err(_) => {
                tracing::warn!(upstream = %self.upstream.authority, path, "the upstream did not answer in time");
                Err(self.unreachable(&format!("no answer within {}s", ANSWER_TIMEOUT.as_secs())))
            }
        }
    }

    /// Streams a request to the upstream and its answer back.
    async fn forward(&self, request: Request<Incoming>) -> Response<RelayBody> {
        match self.send(request).await {
            Ok(response) => {
                let (mut parts, body) = response.into_parts();
                strip_hop_by_hop(&mut parts.headers);
                Response::from_parts(parts, Either::Left(body))
            }
            Err(answer) => answer,
        }
    }

    /// Forwards a `/json` request and rewrites its answer's URLs to lead
    /// back through the relay at `public`.
    async fn json(&self, request: Request<Incoming>, public: &str) -> Response<RelayBody> {
        let response = match self.send(request).await {
            Ok(response) => response,
            Err(answer) => return answer,
        };
        let (mut parts, body) = response.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        if !parts.status.is_success() {
            // Chromium's errors ("No such target id") are plain text.
            return Response::from_parts(parts, Either::Left(body));
        }
        let collected =
            tokio::time::timeout(ANSWER_TIMEOUT, Limited::new(body, JSON_LIMIT).collect()).await;
        let body = match collected {
            Ok(Ok(body)) => body.to_bytes(),
            Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
                tracing::warn!(upstream = %self.upstream.authority, limit = JSON_LIMIT, "a /json answer is too large");
                return plain(
                    StatusCode::BAD_GATEWAY,
                    &format!(
                        "the browser's /json answer is larger than {} MiB\n",
                        JSON_LIMIT / (1024 * 1024)
                    ),
                );
            }
            Ok(Err(e)) => return self.unreachable(&format!("its /json answer broke off: {e}")),
            Err(_) => return self.unreachable("its /json answer did not finish in time"),
        };
        match json::rewrite(&body, public, self.gate.token()) {
            Ok(rewritten) => {
                parts.headers.remove(header::CONTENT_ENCODING);
                parts
                    .headers
                    .insert(header::CONTENT_LENGTH, HeaderValue::from(rewritten.len()));
                Response::from_parts(parts, Either::Right(Full::new(Bytes::from(rewritten))))
            }
            Err(json::NotJson(e)) => {
                let content_type = parts
                    .headers
                    .get(header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("none");
                tracing::warn!(upstream = %self.upstream.authority, content_type, error = %e, "a /json answer is not JSON");
                plain(
                    StatusCode::BAD_GATEWAY,
                    &format!(
                        "the browser's /json answer is not JSON (content type {content_type}): {e}; \
                         is {} the browser's DevTools port?\n",
                        self.upstream.authority
                    ),
                )
            }
        }
    }

    /// 502, naming the upstream and why.
    pub(crate) fn unreachable(&self, cause: &str) -> Response<RelayBody> {
        plain(
            StatusCode::BAD_GATEWAY,
            &format!(
                "the relay's upstream {} did not answer: {cause}\n",
                self.upstream.authority
            ),
        )
    }
}

/// The `host[:port]` the client used, when it is plausible.
fn public_authority(parts: &http::request::Parts) -> Option<&str> {
    let host = match parts.headers.get(header::HOST) {
        Some(host) => host.to_str().ok()?,
        None => parts.uri.authority()?.as_str(),
    };
    plausible_authority(host).then_some(host)
}

/// An error and its causes on one line.
pub(crate) fn causes(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// A short plain-text answer.
pub(crate) fn plain(status: StatusCode, text: &str) -> Response<RelayBody> {
    let mut response = Response::new(Either::Right(Full::new(Bytes::from(text.to_owned()))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn unauthorized(admission: Admission) -> Response<RelayBody> {
    let text = if admission == Admission::Wrong {
        "the relay token is not valid\n"
    } else {
        "the relay needs a token: send Authorization: Bearer <token>, or add ?token=<token> to the URL\n"
    };
    let mut response = plain(StatusCode::UNAUTHORIZED, text);
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"yard relay\""),
    );
    response
}
