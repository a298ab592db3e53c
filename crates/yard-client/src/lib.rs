//! A typed client for the yard's REST API.
//!
//! Everything the CLI does goes through here, so the CLI is one more client
//! of the same API a browser or a script uses: it has no back door into the
//! daemon's state. Errors keep the API's own message and code.

use std::time::Duration;

use eventsource_stream::Eventsource;
use futures::StreamExt;
use reqwest::{Method, StatusCode, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;
use yard_api::{
    ApiError, CompleteEvent, DeployAccepted, DeployRequest, DeploymentList, DeploymentView,
    ErrorEvent, Health, NameCheck, ProgressEvent, StackList, StackView, events,
};

/// How a client call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{0:?} is not a usable yard URL: {1}")]
    BadUrl(String, String),
    #[error("cannot reach the yard at {url}: {reason}; is `yard serve` running there?")]
    Unreachable { url: String, reason: String },
    /// The API refused the request; `error.error` says why.
    #[error("{}", .error.error)]
    Api { status: u16, error: ApiError },
    #[error("unexpected answer from the yard: {0}")]
    Protocol(String),
}

/// How a followed deployment ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The stack is up at this URL.
    Completed(String),
    /// The deployment failed (and was rolled back) for this reason.
    Failed(String),
}

/// A client of one yard.
#[derive(Debug, Clone)]
pub struct YardClient {
    http: reqwest::Client,
    base: Url,
    token: Option<String>,
}

/// How many times in a row [`YardClient::follow`] reconnects before giving up.
const RECONNECTS: u32 = 60;

impl YardClient {
    /// A client for the yard at `base` (e.g. `http://127.0.0.1:3000`).
    pub fn new(base: &str, token: Option<String>) -> Result<Self, ClientError> {
        let bad = |reason: String| ClientError::BadUrl(base.to_owned(), reason);
        let mut base_url = Url::parse(base).map_err(|e| bad(e.to_string()))?;
        if !matches!(base_url.scheme(), "http" | "https") || base_url.cannot_be_a_base() {
            return Err(bad("use an http:// or https:// URL".to_owned()));
        }
        if !base_url.path().ends_with('/') {
            let path = format!("{}/", base_url.path());
            base_url.set_path(&path);
        }
        // reqwest is built without a default TLS provider; ring is ours.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| bad(e.to_string()))?;
        Ok(Self {
            http,
            base: base_url,
            token,
        })
    }

    /// The URL of `segments` under the base, each segment percent-encoded,
    /// so a name like `a/b` stays one segment.
    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    fn request(&self, method: Method, segments: &[&str]) -> reqwest::RequestBuilder {
        let request = self.http.request(method, self.url(segments));
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    async fn send<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<T, ClientError> {
        let response = request.send().await.map_err(|e| self.unreachable(&e))?;
        let status = response.status();
        let body = response.bytes().await.map_err(|e| self.unreachable(&e))?;
        if status.is_success() {
            return serde_json::from_slice(&body)
                .map_err(|e| ClientError::Protocol(format!("{status}: {e}")));
        }
        Err(match serde_json::from_slice::<ApiError>(&body) {
            Ok(error) => ClientError::Api {
                status: status.as_u16(),
                error,
            },
            Err(_) => ClientError::Protocol(format!(
                "{status}: {}",
                String::from_utf8_lossy(&body)
                    .chars()
                    .take(200)
                    .collect::<String>()
            )),
        })
    }

    fn unreachable(&self, e: &reqwest::Error) -> ClientError {
        let mut reason = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(inner) = source {
            reason = format!("{reason}: {inner}");
            source = inner.source();
        }
        ClientError::Unreachable {
            url: self.base.to_string(),
            reason,
        }
    }

    async fn get<T: DeserializeOwned>(&self, segments: &[&str]) -> Result<T, ClientError> {
        self.send(self.request(Method::GET, segments)).await
    }

    async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        segments: &[&str],
        body: &B,
    ) -> Result<T, ClientError> {
        self.send(self.request(Method::POST, segments).json(body))
            .await
    }

    /// `GET /health`. An unhealthy daemon answers 503 in the same shape,
    /// so that is a [`Health`] too, not an error.
    pub async fn health(&self) -> Result<Health, ClientError> {
        let response = self
            .request(Method::GET, &["health"])
            .send()
            .await
            .map_err(|e| self.unreachable(&e))?;
        let status = response.status();
        if status != StatusCode::OK && status != StatusCode::SERVICE_UNAVAILABLE {
            return Err(ClientError::Protocol(format!("{status} from /health")));
        }
        response
            .json()
            .await
            .map_err(|e| ClientError::Protocol(format!("/health: {e}")))
    }

    /// `GET /api/check/{name}`.
    pub async fn check_name(&self, name: &str) -> Result<NameCheck, ClientError> {
        self.get(&["api", "check", name]).await
    }

    /// `POST /api/deploy`.
    pub async fn deploy(&self, name: &str) -> Result<DeployAccepted, ClientError> {
        let body = DeployRequest {
            name: name.to_owned(),
        };
        self.post(&["api", "deploy"], &body).await
    }

    /// `GET /api/deployments`.
    pub async fn deployments(&self) -> Result<DeploymentList, ClientError> {
        self.get(&["api", "deployments"]).await
    }

    /// `GET /api/deployments/{id}`.
    pub async fn deployment(&self, id: &str) -> Result<DeploymentView, ClientError> {
        self.get(&["api", "deployments", id]).await
    }

    /// `GET /api/stacks`.
    pub async fn stacks(&self) -> Result<StackList, ClientError> {
        self.get(&["api", "stacks"]).await
    }

    /// `DELETE /api/stacks/{name}`.
    pub async fn destroy(&self, name: &str) -> Result<StackView, ClientError> {
        self.send(self.request(Method::DELETE, &["api", "stacks", name]))
            .await
    }

    /// Follows `GET /api/status/{id}` until the deployment completes or
    /// fails, calling `on_progress` for every progress event. A dropped
    /// connection is re-opened (the stream starts again from the current
    /// state), so a daemon restart mid-deployment is survived.
    pub async fn follow(
        &self,
        id: &str,
        mut on_progress: impl FnMut(&ProgressEvent),
    ) -> Result<Outcome, ClientError> {
        let mut failures = 0;
        loop {
            match self.follow_once(id, &mut on_progress).await {
                Ok(Some(outcome)) => return Ok(outcome),
                Err(e @ (ClientError::Api { .. } | ClientError::Protocol(_))) => return Err(e),
                Ok(None) | Err(_) if failures < RECONNECTS => {
                    failures += 1;
                    tracing::debug!(
                        deployment = id,
                        failures,
                        "progress stream dropped; reconnecting"
                    );
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Ok(None) => {
                    return Err(ClientError::Protocol(
                        "the progress stream kept ending before the deployment did".to_owned(),
                    ));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// One connection to the progress stream; `None` when it ended early.
    async fn follow_once(
        &self,
        id: &str,
        on_progress: &mut impl FnMut(&ProgressEvent),
    ) -> Result<Option<Outcome>, ClientError> {
        let response = self
            .request(Method::GET, &["api", "status", id])
            .header(reqwest::header::ACCEPT, "text/event-stream")
            .send()
            .await
            .map_err(|e| self.unreachable(&e))?;
        let status = response.status();
        if !status.is_success() {
            let body = response.bytes().await.unwrap_or_default();
            return Err(match serde_json::from_slice::<ApiError>(&body) {
                Ok(error) => ClientError::Api {
                    status: status.as_u16(),
                    error,
                },
                Err(_) => ClientError::Protocol(format!("{status} from the progress stream")),
            });
        }
        let mut stream = response.bytes_stream().eventsource();
        while let Some(event) = stream.next().await {
            let Ok(event) = event else {
                return Ok(None);
            };
            let parse_error =
                |e: serde_json::Error| ClientError::Protocol(format!("{} event: {e}", event.event));
            match event.event.as_str() {
                events::PROGRESS => {
                    on_progress(&serde_json::from_str(&event.data).map_err(parse_error)?)
                }
                events::COMPLETE => {
                    let done: CompleteEvent =
                        serde_json::from_str(&event.data).map_err(parse_error)?;
                    return Ok(Some(Outcome::Completed(done.url)));
                }
                events::ERROR => {
                    let failed: ErrorEvent =
                        serde_json::from_str(&event.data).map_err(parse_error)?;
                    return Ok(Some(Outcome::Failed(failed.message)));
                }
                _ => {}
            }
        }
        Ok(None)
    }
}
