//! An in-process yard on an ephemeral port: the real router, store and
//! docker engine, with the test's label on everything it creates.
//!
//! Each test binary compiles this module and uses a part of it.

#![allow(clippy::unwrap_used, dead_code)]

use std::path::PathBuf;
use std::time::Duration;

use eventsource_stream::Eventsource;
use futures::StreamExt;
use tokio_util::sync::CancellationToken;
use yard_core::{NamePolicy, StackAddressing};
use yard_daemon::{AgentSettings, BackendSource, DaemonConfig, Yard};
use yard_engine::{BackendConfig, BackendKind, ResourceLimits};
use yard_server::{ConnectionLimits, HttpSettings};
use yard_services::agent_images::AgentImages;
use yard_services::orchestrator::CacheVolume;
use yard_services::repo_roots::RepoRoots;
use yard_services::{
    DataDir, DeployerConfig, ForgeAdmin, ForgeConfig, HealingConfig, RestartPolicy, Secret,
    SetupOptions,
};
use yard_store::Store;
use yard_testkit::{DockerSweep, TEST_LABEL, WEB_IMAGE};

pub(crate) struct Options {
    pub(crate) image: String,
    pub(crate) database_url: Option<String>,
    /// The policy file's text; none means the built-in policy.
    pub(crate) policy: Option<String>,
    /// `YARD_PROTECT_STACKS`.
    pub(crate) protect_stacks: bool,
    /// `YARD_AGENT_IMAGES`; none means only the agent image (`image`).
    pub(crate) agent_images: Vec<String>,
    /// `YARD_REPO_ROOTS_STRICT`; the roots are the yard's `repos`.
    pub(crate) strict_roots: bool,
    /// `YARD_MAX_AGENTS_PER_OWNER`.
    pub(crate) max_agents_per_owner: u32,
    /// `YARD_MAX_AGENTS_TOTAL`.
    pub(crate) max_agents_total: u32,
    /// `YARD_HEADER_TIMEOUT`.
    pub(crate) header_timeout: Duration,
    /// How stacks are watched and healed (quick, for tests).
    pub(crate) healing: HealingConfig,
    /// `YARD_STACK_MEMORY`.
    pub(crate) stack_memory: Option<i64>,
    /// `YARD_BACKEND`.
    pub(crate) backend: BackendKind,
    /// `YARD_STACK_VOLUME`.
    pub(crate) stack_volume: bool,
    /// `YARD_QUESTION_TIMEOUT`.
    pub(crate) question_timeout: Duration,
    /// An external forge: `GITEA_URL` and `GITEA_ADMIN_TOKEN` (bot
    /// `yard-bot`, organisation `agentyard`, quick retries).
    pub(crate) forge: Option<(String, String)>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            image: WEB_IMAGE.to_owned(),
            database_url: None,
            policy: None,
            protect_stacks: false,
            agent_images: Vec::new(),
            strict_roots: false,
            max_agents_per_owner: 8,
            max_agents_total: 16,
            header_timeout: Duration::from_secs(15),
            healing: HealingConfig {
                policy: RestartPolicy::OnFailure,
                backoff: Duration::from_millis(200),
                max_backoff: Duration::from_secs(2),
                max_restarts: 3,
                window: Duration::from_secs(60),
                check_every: Duration::from_secs(2),
            },
            stack_memory: ResourceLimits::STACK_DEFAULT.memory_bytes,
            backend: BackendKind::Docker,
            stack_volume: true,
            question_timeout: Duration::from_secs(600),
            forge: None,
        }
    }
}

pub(crate) struct TestYard {
    pub(crate) base: String,
    pub(crate) port: u16,
    pub(crate) token: String,
    pub(crate) store: Store,
    pub(crate) http: reqwest::Client,
    /// The control socket agents talk to.
    pub(crate) socket: std::path::PathBuf,
    /// Where agents' checkouts go.
    pub(crate) checkouts: std::path::PathBuf,
    /// The repository root users may spawn in.
    pub(crate) repos: PathBuf,
    /// The data directory.
    pub(crate) data_dir: PathBuf,
    shutdown: CancellationToken,
    server: tokio::task::JoinHandle<()>,
    // Dropped after the server stops, so nothing outlives the test.
    pub(crate) sweep: DockerSweep,
    _dir: tempfile::TempDir,
}

impl TestYard {
    pub(crate) async fn start(options: Options) -> Self {
        yard_testkit::ensure_stack_images().await;
        let dir = tempfile::tempdir().unwrap();
        let data_dir = DataDir::open(dir.path()).unwrap();
        let sweep = DockerSweep::new();
        let instance = data_dir.instance_id().unwrap();
        let mut labels = std::collections::BTreeMap::new();
        labels.insert(TEST_LABEL.to_owned(), sweep.id().to_owned());

        let policy_path = dir.path().join("policy.toml");
        if let Some(text) = &options.policy {
            std::fs::write(&policy_path, text).unwrap();
        }
        let socket = dir.path().join("control.sock");
        let control = tokio::net::UnixListener::bind(&socket).unwrap();
        let checkouts = dir.path().join("checkouts");
        // Roots must be reachable by repository owners other than root.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let repos = dir.path().join("repos");
        std::fs::create_dir_all(&repos).unwrap();
        let agent_images = if options.agent_images.is_empty() {
            vec![options.image.clone()]
        } else {
            options.agent_images.clone()
        };

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let config = DaemonConfig {
            data_dir: data_dir.clone(),
            database_url: options.database_url.clone(),
            backend: BackendSource::Connect(Box::new(BackendConfig {
                kind: options.backend,
                stack_volume: options.stack_volume,
                extra_labels: labels,
                ..BackendConfig::docker(instance)
            })),
            deployer: DeployerConfig {
                stack_image: options.image.clone(),
                stack_port: None,
                stack_env: Vec::new(),
                addressing: StackAddressing::new("localhost", port, None),
                names: NamePolicy::default(),
                deploy_timeout: Duration::from_secs(30),
                limits: ResourceLimits {
                    memory_bytes: options.stack_memory,
                    ..ResourceLimits::STACK_DEFAULT
                },
                healing: options.healing.clone(),
                lease_ttl: Duration::from_secs(10),
            },
            agents: AgentSettings {
                agent_image: options.image,
                allowed_images: AgentImages::new(&agent_images).unwrap(),
                repo_roots: RepoRoots::new(vec![repos.clone()], options.strict_roots),
                max_agents: 8,
                max_agents_per_owner: options.max_agents_per_owner,
                max_agents_total: options.max_agents_total,
                limits: ResourceLimits::AGENT_DEFAULT,
                control_volume: None,
                socket_group: None,
                caches: vec![
                    CacheVolume::parse(&format!(
                        "agentyard-test-cache-{}:/cache/test:TEST_CACHE",
                        sweep.id()
                    ))
                    .unwrap(),
                ],
                agent_env: vec![("FROM_THE_YARD".to_owned(), "yes".to_owned())],
                lend_binary: None,
                stop_grace: Duration::from_secs(1),
                mode: Default::default(),
            },
            policy: policy_path,
            policy_required: false,
            policy_check: Duration::from_millis(100),
            socket: socket.clone(),
            http: HttpSettings {
                mcp_allowed_origins: vec![
                    format!("http://127.0.0.1:{port}"),
                    format!("http://localhost:{port}"),
                ],
                mcp_allowed_hosts: vec!["127.0.0.1".to_owned(), "localhost".to_owned()],
                protect_stacks: options.protect_stacks,
                portal_url: format!("http://localhost:{port}"),
            },
            connection_limits: ConnectionLimits {
                header_timeout: options.header_timeout,
            },
            reconcile_interval: Duration::from_secs(3600),
            question_timeout: options.question_timeout,
            platform: None,
            config_key: None,
            forge: options.forge.map(|(url, admin_token)| ForgeConfig {
                url,
                admin: ForgeAdmin::Token(Secret::new(admin_token)),
                bot_user: "yard-bot".to_owned(),
                org: "agentyard".to_owned(),
                webhook_url: format!("http://127.0.0.1:{port}/webhook/gitea"),
                options: SetupOptions {
                    ready_timeout: Duration::from_secs(5),
                    tries: 3,
                    first_backoff: Duration::from_millis(1),
                    max_backoff: Duration::from_millis(4),
                    request_timeout: Duration::from_secs(10),
                },
                log: None,
            }),
        };
        let yard = Yard::build(config).await.unwrap();
        let token = data_dir.read_admin_token().unwrap().unwrap();
        let store = yard.store.clone();
        let shutdown = CancellationToken::new();
        let server = tokio::spawn({
            let stop = shutdown.clone();
            async move { yard.run(listener, control, stop).await.unwrap() }
        });
        Self {
            base: format!("http://127.0.0.1:{port}"),
            port,
            token,
            store,
            http: yard_testkit::http(),
            socket,
            checkouts,
            repos,
            data_dir: dir.path().to_owned(),
            shutdown,
            server,
            sweep,
            _dir: dir,
        }
    }

    pub(crate) fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
    }

    /// `GET path` with the token, as JSON.
    pub(crate) async fn get_json(&self, path: &str) -> serde_json::Value {
        self.get(path).send().await.unwrap().json().await.unwrap()
    }

    /// An MCP client over TCP with `credential` (a person's token or an
    /// agent's), as an assistant connects.
    pub(crate) async fn mcp_as(
        &self,
        credential: &str,
    ) -> rmcp::service::RunningService<rmcp::RoleClient, ()> {
        use rmcp::ServiceExt;
        use rmcp::transport::StreamableHttpClientTransport;
        use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
        let config = StreamableHttpClientTransportConfig::with_uri(format!("{}/mcp", self.base))
            .auth_header(credential.to_owned());
        let transport = StreamableHttpClientTransport::with_client(reqwest::Client::new(), config);
        ().serve(transport).await.unwrap()
    }

    /// `GET /health`, without a token.
    pub(crate) async fn health(&self) -> serde_json::Value {
        let url = format!("{}/health", self.base);
        self.http
            .get(url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub(crate) fn delete(&self, path: &str) -> reqwest::RequestBuilder {
        self.http
            .delete(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
    }

    pub(crate) fn post_json(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> reqwest::RequestBuilder {
        self.http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .json(body)
    }

    /// A request to the stack `name` through its address.
    pub(crate) fn stack(&self, name: &str, path: &str) -> reqwest::RequestBuilder {
        self.http
            .get(format!("{}{path}", self.base))
            .header("host", format!("{name}.localhost:{}", self.port))
    }

    /// Starts deploying `name`; returns the deployment id.
    pub(crate) async fn deploy(&self, name: &str) -> String {
        let response = self
            .post_json("/api/deploy", &serde_json::json!({ "name": name }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202);
        let body: serde_json::Value = response.json().await.unwrap();
        body["deploymentId"].as_str().unwrap().to_owned()
    }

    /// Every SSE event of a deployment's status stream until it ends.
    pub(crate) async fn events(&self, id: &str) -> Vec<(String, serde_json::Value)> {
        let response = self.get(&format!("/api/status/{id}")).send().await.unwrap();
        assert_eq!(response.status(), 200);
        let mut stream = response.bytes_stream().eventsource();
        let mut events = Vec::new();
        let collect = async {
            while let Some(event) = stream.next().await {
                let event = event.unwrap();
                events.push((event.event, serde_json::from_str(&event.data).unwrap()));
            }
        };
        tokio::time::timeout(Duration::from_secs(60), collect)
            .await
            .expect("the status stream ended");
        events
    }

    /// Deploys `name` and waits for the outcome; returns the final event.
    pub(crate) async fn deploy_and_wait(&self, name: &str) -> (String, serde_json::Value) {
        let id = self.deploy(name).await;
        self.events(&id).await.pop().unwrap()
    }
}

impl Drop for TestYard {
    fn drop(&mut self) {
        self.shutdown.cancel();
        self.server.abort();
    }
}

/// Asserts an error answer's status and code; returns its message, which
/// must say something.
pub(crate) async fn assert_error_response(
    response: reqwest::Response,
    status: u16,
    code: &str,
) -> String {
    let actual = response.status().as_u16();
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(
        (actual, body["code"].as_str()),
        (status, Some(code)),
        "{body}"
    );
    let message = body["error"].as_str().unwrap().to_owned();
    assert!(message.len() > 10, "an error says why: {body}");
    message
}
