//! An in-process yard on an ephemeral port: the real router, store and
//! docker engine, with the test's label on everything it creates.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use eventsource_stream::Eventsource;
use futures::StreamExt;
use tokio_util::sync::CancellationToken;
use yard_core::{NamePolicy, StackAddressing};
use yard_engine::{DockerConfig, DockerEngine};
use yard_server::AppState;
use yard_services::{DataDir, Deployer, DeployerConfig, EventBus};
use yard_store::Store;
use yard_testkit::{DockerSweep, TEST_LABEL, WEB_IMAGE};

pub(crate) struct Options {
    pub(crate) image: String,
    pub(crate) database_url: Option<String>,
    pub(crate) deploy_timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            image: WEB_IMAGE.to_owned(),
            database_url: None,
            deploy_timeout: Duration::from_secs(30),
        }
    }
}

pub(crate) struct TestYard {
    pub(crate) base: String,
    pub(crate) port: u16,
    pub(crate) token: String,
    pub(crate) store: Store,
    pub(crate) http: reqwest::Client,
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
        let url = options
            .database_url
            .unwrap_or_else(|| Store::sqlite_url(dir.path()));
        let store = Store::open(&url).await.unwrap();
        yard_services::auth::ensure_admin_token(&store, &data_dir)
            .await
            .unwrap();
        let token = data_dir.read_admin_token().unwrap().unwrap();

        let sweep = DockerSweep::new();
        let mut docker = DockerConfig::new(format!("t{}", &sweep.id()[..9]));
        docker
            .extra_labels
            .insert(TEST_LABEL.to_owned(), sweep.id().to_owned());
        let engine = DockerEngine::connect(docker).unwrap();

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let bus = EventBus::new(1024);
        let deployer = Deployer::new(
            store.clone(),
            Arc::new(engine),
            bus.clone(),
            DeployerConfig {
                stack_image: options.image,
                stack_port: None,
                stack_env: Vec::new(),
                addressing: StackAddressing::new("localhost", port, None),
                names: NamePolicy::default(),
                deploy_timeout: options.deploy_timeout,
            },
        );
        let shutdown = CancellationToken::new();
        let state = AppState::new(deployer, bus, shutdown.clone());
        let stop = shutdown.clone();
        let server = tokio::spawn(async move {
            yard_server::serve(listener, state, stop.cancelled_owned())
                .await
                .unwrap();
        });
        Self {
            base: format!("http://127.0.0.1:{port}"),
            port,
            token,
            store,
            http: yard_testkit::http(),
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
