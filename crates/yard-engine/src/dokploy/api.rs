//! Speaking to Dokploy's public API: one HTTP call per procedure, and its
//! answer turned into a typed value or an [`EngineError`] worded for the
//! person who fixes it.
//!
//! Dokploy serves its tRPC procedures as plain HTTP at
//! `<DOKPLOY_URL>/api/<router>.<procedure>`, authenticated by the
//! `x-api-key` header: queries are `GET` with their input as query
//! parameters, mutations `POST` with a JSON body. Errors come as
//! `{ "message", "code", "issues"? }` (the document's `error.*` schemas), with
//! the HTTP status tRPC gives the code (`NOT_FOUND` is 404, `UNAUTHORIZED`
//! 401, and so on).

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{HeaderValue, LOCATION};
use reqwest::{Method, StatusCode, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::EngineError;

/// What an operation's caller hears when the key is refused: the fix is a
/// new key, and where to make one.
pub(super) const KEY_REFUSED: &str = "the Dokploy API key was refused (401); make a new key under Settings > API Keys in Dokploy and set DOKPLOY_API_KEY to it";

/// The most of an unexpected answer quoted in an error.
const QUOTED: usize = 300;

/// How a call to Dokploy failed. `NotFound` is kept apart from the rest
/// because removing what is already gone is success for the steps that
/// remove things; everywhere else it becomes an [`EngineError`] with `?`.
#[derive(Debug)]
pub(super) enum CallError {
    /// Dokploy answered with its `NOT_FOUND` error: the object is gone.
    NotFound {
        operation: &'static str,
        message: String,
    },
    Engine(EngineError),
}

impl From<CallError> for EngineError {
    fn from(e: CallError) -> Self {
        match e {
            CallError::NotFound { operation, message } => EngineError::Backend {
                operation,
                message: format!("Dokploy says it is not there (404): {message}"),
            },
            CallError::Engine(e) => e,
        }
    }
}

impl From<EngineError> for CallError {
    fn from(e: EngineError) -> Self {
        Self::Engine(e)
    }
}

/// `Ok(None)` for an object that is gone, so a removal can be repeated.
pub(super) fn unless_gone<T>(result: Result<T, CallError>) -> Result<Option<T>, EngineError> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(CallError::NotFound { operation, message }) => {
            tracing::debug!(operation, message = %message, "already gone in Dokploy");
            Ok(None)
        }
        Err(CallError::Engine(e)) => Err(e),
    }
}

/// A client of one Dokploy's API.
#[derive(Clone)]
pub(super) struct Api {
    http: reqwest::Client,
    /// `<DOKPLOY_URL>/api/`, always ending in a slash.
    base: Url,
    /// The key, marked sensitive so no debug output of a request shows it.
    key: HeaderValue,
}

impl fmt::Debug for Api {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the key.
        f.debug_struct("Api")
            .field("base", &self.base.as_str())
            .finish_non_exhaustive()
    }
}

impl Api {
    /// A client for the Dokploy at `url` (its address, with or without a
    /// trailing `/api`), using `key`.
    pub(super) fn new(url: &str, key: &str) -> Result<Self, EngineError> {
        let bad = |why: &str| {
            EngineError::Config(format!(
                "DOKPLOY_URL {url:?} is not a usable address ({why}); set it to your Dokploy's address, e.g. https://dokploy.example.com"
            ))
        };
        let mut base = Url::parse(url.trim()).map_err(|e| bad(&e.to_string()))?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(bad("use an http:// or https:// address"));
        }
        if base.query().is_some() || base.fragment().is_some() {
            return Err(bad("leave out any ?query or #fragment"));
        }
        // People copy the address of the API as often as the dashboard's:
        // both work.
        let path = base.path().trim_end_matches('/');
        let path = path.strip_suffix("/api").unwrap_or(path);
        let path = format!("{path}/api/");
        base.set_path(&path);

        let mut key = HeaderValue::from_str(key.trim()).map_err(|_| {
            EngineError::Config(
                "DOKPLOY_API_KEY holds characters no HTTP header can carry; copy the key again from Settings > API Keys".to_owned(),
            )
        })?;
        key.set_sensitive(true);

        // reqwest is built without a default TLS provider; ring is ours.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(60))
            // A redirect would turn a POST into a GET; say where to point
            // DOKPLOY_URL instead of following it.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| EngineError::Config(format!("cannot make an HTTP client: {e}")))?;
        Ok(Self { http, base, key })
    }

    /// Dokploy's own address, for links into its dashboard.
    pub(super) fn dashboard(&self) -> String {
        let base = self.base.as_str();
        base.strip_suffix("api/").unwrap_or(base).to_owned()
    }

    fn url(&self, operation: &str) -> Result<Url, EngineError> {
        self.base.join(operation).map_err(|e| EngineError::Backend {
            operation: "building a Dokploy URL",
            message: e.to_string(),
        })
    }

    /// A query: `GET /api/<operation>?<input>`, its answer parsed as `T`.
    pub(super) async fn get<T: DeserializeOwned>(
        &self,
        operation: &'static str,
        input: &[(&str, &str)],
    ) -> Result<T, CallError> {
        let mut url = self.url(operation)?;
        if !input.is_empty() {
            url.query_pairs_mut().extend_pairs(input);
        }
        let body = self
            .send(operation, self.http.request(Method::GET, url))
            .await?;
        parse(operation, &body)
    }

    /// A mutation: `POST /api/<operation>` with `input` as JSON, its answer
    /// parsed as `T`.
    pub(super) async fn post<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        operation: &'static str,
        input: &B,
    ) -> Result<T, CallError> {
        let body = self.post_raw(operation, input).await?;
        parse(operation, &body)
    }

    /// A mutation whose answer the yard does not need (Dokploy answers
    /// `true`, or the changed row).
    pub(super) async fn post_unit<B: Serialize + ?Sized>(
        &self,
        operation: &'static str,
        input: &B,
    ) -> Result<(), CallError> {
        self.post_raw(operation, input).await.map(drop)
    }

    async fn post_raw<B: Serialize + ?Sized>(
        &self,
        operation: &'static str,
        input: &B,
    ) -> Result<Bytes, CallError> {
        let url = self.url(operation)?;
        let request = self.http.request(Method::POST, url).json(input);
        self.send(operation, request).await
    }

    async fn send(
        &self,
        operation: &'static str,
        request: reqwest::RequestBuilder,
    ) -> Result<Bytes, CallError> {
        let response = request
            .header("x-api-key", self.key.clone())
            .send()
            .await
            .map_err(|e| self.unreachable(&e))?;
        let status = response.status();
        let location = response
            .headers()
            .get(LOCATION)
            .and_then(|l| l.to_str().ok())
            .map(str::to_owned);
        let body = response.bytes().await.map_err(|e| self.unreachable(&e))?;
        tracing::debug!(operation, status = status.as_u16(), "Dokploy answered");
        if status.is_success() {
            return Ok(body);
        }
        Err(self.refusal(operation, status, location, &body))
    }

    /// What an answer other than 2xx means.
    fn refusal(
        &self,
        operation: &'static str,
        status: StatusCode,
        location: Option<String>,
        body: &[u8],
    ) -> CallError {
        let error = serde_json::from_slice::<ErrorBody>(body).ok();
        let message = error
            .as_ref()
            .map(|e| e.message())
            .unwrap_or_else(|| quote(body));
        let code = error.as_ref().map(|e| e.code.as_str()).unwrap_or_default();
        let engine = match status.as_u16() {
            401 => EngineError::Refused(KEY_REFUSED.to_owned()),
            403 => EngineError::Refused(format!(
                "the Dokploy API key may not do {operation} (403: {message}); use a key of a Dokploy user who may create and remove projects and services (an owner's or an admin's)"
            )),
            // Only Dokploy's own NOT_FOUND means gone: a bare 404 from
            // something else at that address means DOKPLOY_URL is wrong,
            // and taking it for "gone" would make removals lie.
            _ if code == "NOT_FOUND" => return CallError::NotFound { operation, message },
            404 => EngineError::Config(format!(
                "there is no Dokploy API at {} ({operation} answered 404 without Dokploy's error shape); is DOKPLOY_URL your Dokploy's address?",
                self.base
            )),
            300..=399 => EngineError::Config(format!(
                "Dokploy at {} redirects {operation} to {}; set DOKPLOY_URL to the address it redirects to",
                self.base,
                location.as_deref().unwrap_or("somewhere else"),
            )),
            _ => EngineError::Backend {
                operation,
                message: format!("Dokploy answered {status}: {message}"),
            },
        };
        CallError::Engine(engine)
    }

    fn unreachable(&self, e: &reqwest::Error) -> CallError {
        let mut reason = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(inner) = source {
            reason = format!("{reason}: {inner}");
            source = inner.source();
        }
        CallError::Engine(EngineError::Unavailable(format!(
            "Dokploy at {} does not answer: {reason}; check DOKPLOY_URL",
            self.base
        )))
    }
}

/// Dokploy's error answer (`components.schemas["error.*"]`).
#[derive(Debug, serde::Deserialize)]
struct ErrorBody {
    message: String,
    code: String,
    #[serde(default)]
    issues: Vec<Issue>,
}

#[derive(Debug, serde::Deserialize)]
struct Issue {
    message: String,
}

impl ErrorBody {
    /// The message with the input problems Dokploy listed, if any.
    fn message(&self) -> String {
        if self.issues.is_empty() {
            return self.message.clone();
        }
        let issues: Vec<&str> = self.issues.iter().map(|i| i.message.as_str()).collect();
        format!("{} ({})", self.message, issues.join("; "))
    }
}

/// An answer in the shape the yard expects, or a contract error naming the
/// operation and quoting the start of what came instead.
fn parse<T: DeserializeOwned>(operation: &'static str, body: &[u8]) -> Result<T, CallError> {
    serde_json::from_slice(body).map_err(|e| {
        CallError::Engine(EngineError::Contract(format!(
            "{operation} answered in a shape the yard does not know ({e}); the answer began: {}",
            quote(body)
        )))
    })
}

/// The start of `body` as text, for error messages.
fn quote(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return "(an empty body)".to_owned();
    }
    match text.char_indices().nth(QUOTED) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}
