//! A typed client for the yard's REST API.
//!
//! Everything the CLI does goes through here, so the CLI is one more client
//! of the same API a browser or a script uses: it has no back door into the
//! daemon's state. Errors keep the API's own message and code.

use std::time::Duration;

use bytes::Bytes;
use eventsource_stream::Eventsource;
use futures::Stream;
use futures::StreamExt;
use reqwest::{Method, StatusCode, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;
use yard_api::{
    AgentDiffView, AgentList, AgentView, AioStatus, ApiError, AuditList, CompleteEvent,
    ConfigEntryView, ConfigList, CreateTokenRequest, CreatedToken, DeployAccepted, DeployRequest,
    DeploymentList, DeploymentView, ErrorEvent, ForgeInitReport, Health, MergeView, NameCheck,
    PolicyView, ProgressEvent, PruneResult, RevokedToken, SetConfigRequest, SpawnRequest,
    SpawnResult, StackList, StackView, TokenList, events,
};

/// A WebSocket to an agent's terminal.
pub type AgentSocket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

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
        self.request_to(method, self.url(segments))
    }

    fn request_to(&self, method: Method, url: Url) -> reqwest::RequestBuilder {
        let request = self.http.request(method, url);
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
        let response = self.check(response).await?;
        let status = response.status();
        let body = response.bytes().await.map_err(|e| self.unreachable(&e))?;
        serde_json::from_slice(&body).map_err(|e| ClientError::Protocol(format!("{status}: {e}")))
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

    /// `GET /api/aio`: the all-in-one container's services.
    pub async fn aio(&self) -> Result<AioStatus, ClientError> {
        self.get(&["api", "aio"]).await
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

    /// `POST /api/stacks/{name}/update`: a rolling update to `image`.
    pub async fn update_stack(&self, name: &str, image: &str) -> Result<StackView, ClientError> {
        self.send(
            self.request(Method::POST, &["api", "stacks", name, "update"])
                .json(&yard_api::UpdateStackRequest {
                    image: image.to_owned(),
                }),
        )
        .await
    }

    /// `POST /api/stacks/{name}/restart`.
    pub async fn restart_stack(&self, name: &str) -> Result<StackView, ClientError> {
        self.send(self.request(Method::POST, &["api", "stacks", name, "restart"]))
            .await
    }

    /// `POST /api/tokens`.
    pub async fn create_token(
        &self,
        request: &CreateTokenRequest,
    ) -> Result<CreatedToken, ClientError> {
        self.post(&["api", "tokens"], request).await
    }

    /// `GET /api/tokens`.
    pub async fn tokens(&self) -> Result<TokenList, ClientError> {
        self.get(&["api", "tokens"]).await
    }

    /// `DELETE /api/tokens/{token}`, by id or name; its agents stop unless
    /// `keep_agents`.
    pub async fn revoke_token(
        &self,
        key: &str,
        keep_agents: bool,
    ) -> Result<RevokedToken, ClientError> {
        let mut url = self.url(&["api", "tokens", key]);
        if keep_agents {
            url.query_pairs_mut().append_pair("keepAgents", "true");
        }
        self.send(self.request_to(Method::DELETE, url)).await
    }

    /// `GET /api/config`: every setting, a secret only as set or unset.
    pub async fn config(&self) -> Result<ConfigList, ClientError> {
        self.get(&["api", "config"]).await
    }

    /// `PUT /api/config/{key}`.
    pub async fn set_config(&self, key: &str, value: &str) -> Result<ConfigEntryView, ClientError> {
        self.send(
            self.request(Method::PUT, &["api", "config", key])
                .json(&SetConfigRequest {
                    value: value.to_owned(),
                }),
        )
        .await
    }

    /// `DELETE /api/config/{key}`.
    pub async fn unset_config(&self, key: &str) -> Result<ConfigEntryView, ClientError> {
        self.send(self.request(Method::DELETE, &["api", "config", key]))
            .await
    }

    /// `POST /api/forge/init`: sets the forge up again; what it did.
    pub async fn forge_init(&self) -> Result<ForgeInitReport, ClientError> {
        self.send(self.request(Method::POST, &["api", "forge", "init"]))
            .await
    }

    /// `POST /api/agents`.
    pub async fn spawn(&self, request: &SpawnRequest) -> Result<SpawnResult, ClientError> {
        self.post(&["api", "agents"], request).await
    }

    /// `GET /api/agents`.
    pub async fn agents(&self) -> Result<AgentList, ClientError> {
        self.get(&["api", "agents"]).await
    }

    /// `GET /api/agents/{id}`.
    pub async fn agent(&self, id: &str) -> Result<AgentView, ClientError> {
        self.get(&["api", "agents", id]).await
    }

    /// `POST /api/agents/{id}/stop`.
    pub async fn stop_agent(&self, id: &str) -> Result<AgentView, ClientError> {
        self.send(self.request(Method::POST, &["api", "agents", id, "stop"]))
            .await
    }

    /// `GET /api/agents/{id}/diff`.
    pub async fn diff(&self, id: &str) -> Result<AgentDiffView, ClientError> {
        self.get(&["api", "agents", id, "diff"]).await
    }

    /// `POST /api/agents/{id}/merge`.
    pub async fn merge(&self, id: &str) -> Result<MergeView, ClientError> {
        self.send(self.request(Method::POST, &["api", "agents", id, "merge"]))
            .await
    }

    /// `GET /api/agents/{id}/audit`.
    pub async fn audit(&self, id: &str) -> Result<AuditList, ClientError> {
        self.get(&["api", "agents", id, "audit"]).await
    }

    /// `POST /api/agents/prune`.
    pub async fn prune(&self) -> Result<PruneResult, ClientError> {
        self.send(self.request(Method::POST, &["api", "agents", "prune"]))
            .await
    }

    /// `GET /api/policy`.
    pub async fn policy(&self) -> Result<PolicyView, ClientError> {
        self.get(&["api", "policy"]).await
    }

    /// `GET /api/agents/{id}/logs`: the agent's output as it arrives.
    pub async fn logs(
        &self,
        id: &str,
        follow: bool,
        tail: Option<u32>,
    ) -> Result<impl Stream<Item = Result<Bytes, ClientError>> + use<>, ClientError> {
        let mut url = self.url(&["api", "agents", id, "logs"]);
        url.query_pairs_mut()
            .append_pair("follow", &follow.to_string());
        if let Some(tail) = tail {
            url.query_pairs_mut().append_pair("tail", &tail.to_string());
        }
        let response = self
            .request_to(Method::GET, url)
            .send()
            .await
            .map_err(|e| self.unreachable(&e))?;
        let response = self.check(response).await?;
        let base = self.base.to_string();
        Ok(response.bytes_stream().map(move |chunk| {
            chunk.map_err(|e| ClientError::Unreachable {
                url: base.clone(),
                reason: e.to_string(),
            })
        }))
    }

    /// Opens `GET /api/agents/{id}/attach` as a WebSocket.
    pub async fn attach(&self, id: &str) -> Result<AgentSocket, ClientError> {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut url = self.url(&["api", "agents", id, "attach"]);
        let scheme = if url.scheme() == "https" { "wss" } else { "ws" };
        url.set_scheme(scheme)
            .map_err(|()| ClientError::BadUrl(url.to_string(), "not a WebSocket URL".to_owned()))?;
        let mut request = url
            .as_str()
            .into_client_request()
            .map_err(|e| ClientError::BadUrl(url.to_string(), e.to_string()))?;
        if let Some(token) = &self.token {
            let value = format!("Bearer {token}").parse().map_err(|_| {
                ClientError::Protocol("the token is not a valid header value".to_owned())
            })?;
            request.headers_mut().insert("authorization", value);
        }
        match tokio_tungstenite::connect_async(request).await {
            Ok((socket, _)) => Ok(socket),
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                let status = response.status().as_u16();
                let body = response.body().clone().unwrap_or_default();
                Err(match serde_json::from_slice::<ApiError>(&body) {
                    Ok(error) => ClientError::Api { status, error },
                    Err(_) => ClientError::Protocol(format!("{status} from attach")),
                })
            }
            Err(e) => Err(ClientError::Unreachable {
                url: self.base.to_string(),
                reason: e.to_string(),
            }),
        }
    }

    /// Passes a successful response through; turns an error answer into
    /// [`ClientError::Api`].
    async fn check(&self, response: reqwest::Response) -> Result<reqwest::Response, ClientError> {
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let body = response.bytes().await.unwrap_or_default();
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
        let mut stream = self.check(response).await?.bytes_stream().eventsource();
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
