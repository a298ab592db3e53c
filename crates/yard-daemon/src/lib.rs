//! The composition root: the one place that knows how the yard is put
//! together. [`Yard::build`] opens the store, connects the backend that
//! `YARD_BACKEND` names, makes the services and the server's state;
//! [`Yard::run`] converges with what the backend holds and serves until
//! told to stop, then shuts down in order. `yard serve`, `yard doctor` and
//! the test harness all build the yard here, so what the tests run is
//! what ships.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, UnixListener};
use tokio_util::sync::CancellationToken;
use yard_engine::{Backend, BackendConfig, EngineError, ResourceLimits};
use yard_server::{AppState, ConnectionLimits, HttpSettings, Services};
use yard_services::agent_images::AgentImages;
use yard_services::auth::{AdminToken, AuthError, ensure_admin_token};
use yard_services::orchestrator::{AgentMode, CacheVolume, ControlAccess};
use yard_services::repo_roots::RepoRoots;
use yard_services::{
    Access, DataDir, Deployer, DeployerConfig, EncryptionKey, EventBus, Forge, ForgeConfig,
    ForgeWebhooks, Gatekeeper, IssueRule, IssueRuleParts, KeyError, KeySource, Orchestrator,
    OrchestratorConfig, PlatformStatus, PolicyWatch, Questions, QuestionsError, Settings,
};
use yard_store::{Store, StoreError, redact};

pub use yard_services::hooks::PolicyLoadError;

/// How long running deployments get to finish after a stop signal before
/// they are left to resume at the next start.
const DEPLOY_GRACE: Duration = Duration::from_secs(5);
/// How long open connections get to finish after a stop signal.
const CONNECTION_GRACE: Duration = Duration::from_secs(8);
/// Agents are gone this soon after a stop signal.
const AGENT_REMOVAL: Duration = Duration::from_secs(8);
/// How many events the bus keeps for a slow subscriber.
const BUS_CAPACITY: usize = 1024;

/// Where the stacks run: the backend `YARD_BACKEND` names, or one made
/// elsewhere (a test's fake).
#[derive(Debug, Clone)]
pub enum BackendSource {
    Connect(Box<BackendConfig>),
    Given(Backend),
}

/// What agents may do and use; the rest of the orchestrator's settings
/// come from the data directory and the control socket.
#[derive(Debug, Clone)]
pub struct AgentSettings {
    pub agent_image: String,
    pub allowed_images: AgentImages,
    pub repo_roots: RepoRoots,
    pub max_agents: u32,
    pub max_agents_per_owner: u32,
    pub max_agents_total: u32,
    pub limits: ResourceLimits,
    /// A named volume holding the control socket's directory, for a yard
    /// that runs in a container; `None` bind-mounts the socket file.
    pub control_volume: Option<String>,
    /// The control socket's group, added to agents' processes.
    pub socket_group: Option<u32>,
    pub caches: Vec<CacheVolume>,
    pub agent_env: Vec<(String, String)>,
    pub lend_binary: Option<PathBuf>,
    pub stop_grace: Duration,
    pub mode: AgentMode,
}

/// Everything the yard is built from.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    pub data_dir: DataDir,
    /// `None` keeps state in the SQLite file in the data directory.
    pub database_url: Option<String>,
    pub backend: BackendSource,
    pub deployer: DeployerConfig,
    pub agents: AgentSettings,
    pub policy: PathBuf,
    /// Refuse to start without a readable policy file.
    pub policy_required: bool,
    /// How often the policy file is checked for changes.
    pub policy_check: Duration,
    /// The control socket agents reach the yard on.
    pub socket: PathBuf,
    pub http: HttpSettings,
    pub connection_limits: ConnectionLimits,
    /// How often labelled resources no deployment owns are swept.
    pub reconcile_interval: Duration,
    /// How long a question waits for a person unless it says.
    pub question_timeout: Duration,
    /// Under `yard aio`, the container's services, for `/api/aio` and
    /// `/health`.
    pub platform: Option<Arc<dyn PlatformStatus>>,
    /// The key secret settings are sealed with (`YARD_CONFIG_KEY`); `None`
    /// uses the data directory's `config-key`, made on first start.
    pub config_key: Option<EncryptionKey>,
    /// The forge the yard sets up (`GITEA_URL` with `GITEA_ADMIN_TOKEN`,
    /// or the one `yard aio` runs); `None`: there is none, and `POST
    /// /api/forge/init` says so.
    pub forge: Option<ForgeConfig>,
}

/// Why the yard could not be built or run.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("cannot read the instance id in the data directory: {0}")]
    Instance(#[source] std::io::Error),
    #[error("cannot make the data directory private: {0}")]
    Tighten(#[source] std::io::Error),
    #[error(transparent)]
    Policy(#[from] PolicyLoadError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    AdminToken(#[from] AuthError),
    #[error(transparent)]
    ConfigKey(#[from] KeyError),
    #[error("the backend: {0}")]
    Backend(#[from] EngineError),
    #[error("the server failed: {0}")]
    Serve(#[source] std::io::Error),
    #[error(transparent)]
    Questions(#[from] QuestionsError),
}

/// A built yard, ready to converge and serve.
#[derive(Debug)]
pub struct Yard {
    /// The store; for the binary's shutdown and the tests' inspection only.
    pub store: Store,
    pub backend: Backend,
    pub services: Services,
    pub instance: String,
    policy: Arc<PolicyWatch>,
    /// Finishes, after a restart, the work on issues an earlier run took.
    issue_rule: IssueRule,
    config: DaemonConfig,
}

/// The SQLite URL in `data_dir`, or the configured database.
pub fn database_url(data_dir: &DataDir, configured: Option<&str>) -> String {
    configured.map_or_else(|| Store::sqlite_url(data_dir.path()), str::to_owned)
}

impl Yard {
    /// Opens the store (migrating it), makes the admin token on first
    /// start, connects the backend and makes the services.
    pub async fn build(config: DaemonConfig) -> Result<Self, DaemonError> {
        let instance = config
            .data_dir
            .instance_id()
            .map_err(DaemonError::Instance)?;
        let policy = Arc::new(PolicyWatch::load(
            config.policy.clone(),
            config.policy_required,
        )?);
        let url = database_url(&config.data_dir, config.database_url.as_deref());
        let store = Store::open(&url).await?;
        tracing::info!(store = %redact(&url), data_dir = %config.data_dir.path().display(), %instance, "store ready");
        // After the store exists: SQLite makes its file with the umask's mode.
        for path in config.data_dir.tighten().map_err(DaemonError::Tighten)? {
            tracing::warn!(path = %path.display(), "tightened: only the yard's user may read this now");
        }
        match ensure_admin_token(&store, &config.data_dir).await? {
            AdminToken::Created(path) => {
                tracing::info!(path = %path.display(), "new admin token written (mode 0600); the CLI reads it from there");
            }
            AdminToken::Existing(path) => {
                tracing::debug!(path = %path.display(), "admin token in place");
            }
        }
        let config_key = match config.config_key.clone() {
            Some(key) => {
                tracing::info!("secret settings sealed with YARD_CONFIG_KEY");
                key
            }
            None => {
                let (key, source) = EncryptionKey::from_data_dir(&config.data_dir)?;
                match source {
                    KeySource::Made(path) => {
                        tracing::info!(path = %path.display(), "new config key written (mode 0600); secret settings are sealed with it, so back it up with the store");
                    }
                    KeySource::File(path) => {
                        tracing::debug!(path = %path.display(), "config key in place");
                    }
                }
                if store.is_shared() {
                    tracing::warn!(
                        "the store is shared but YARD_CONFIG_KEY is not set: each yard seals secret settings with its own key, and cannot read the others'"
                    );
                }
                key
            }
        };
        // Every daemon on one database names and labels stacks alike: the
        // first one's instance id, kept in the store, is the stacks'.
        let stacks_instance = store.instance_id(&instance).await?;
        if stacks_instance != instance {
            tracing::info!(%stacks_instance, agents_instance = %instance, "stacks use the instance id kept in the shared store");
        }
        let backend = match &config.backend {
            BackendSource::Connect(backend) => {
                let mut backend = backend.as_ref().clone();
                backend.stacks_instance = Some(stacks_instance);
                Backend::connect(&backend)?
            }
            BackendSource::Given(backend) => backend.clone(),
        };
        let bus = EventBus::new(BUS_CAPACITY);
        let deployer = Deployer::new(
            store.clone(),
            backend.stacks.clone(),
            bus.clone(),
            config.deployer.clone(),
        );
        let agents = config.agents.clone();
        let orchestrator = Orchestrator::new(
            store.clone(),
            backend.agents.clone(),
            bus.clone(),
            Arc::clone(&policy),
            OrchestratorConfig {
                instance: instance.clone(),
                agent_image: agents.agent_image,
                allowed_images: agents.allowed_images,
                repo_roots: agents.repo_roots,
                max_agents: agents.max_agents,
                max_agents_per_owner: agents.max_agents_per_owner,
                max_agents_total: agents.max_agents_total,
                limits: agents.limits,
                checkouts_dir: config.data_dir.path().join("checkouts"),
                control: match agents.control_volume {
                    Some(volume) => ControlAccess::Volume(volume),
                    None => ControlAccess::SocketFile(config.socket.clone()),
                },
                socket_group: agents.socket_group,
                caches: agents.caches,
                agent_env: agents.agent_env,
                lend_binary: agents.lend_binary,
                stop_grace: agents.stop_grace,
                mode: agents.mode,
            },
        );
        let settings = Settings::new(store.clone(), config_key);
        let mut questions = Questions::new(store.clone(), bus.clone(), config.question_timeout);
        // A SQLite file is this daemon's alone, so its memory may decide
        // answers; a shared database decides them itself.
        if !store.is_shared() {
            questions = questions
                .with_answer_log(&config.data_dir.answer_log_path())
                .await?;
        }
        let issue_rule = IssueRule::new(IssueRuleParts {
            store: store.clone(),
            settings: settings.clone(),
            orchestrator: orchestrator.clone(),
            questions: questions.clone(),
            bus: bus.clone(),
            data_dir: config.data_dir.clone(),
            portal_url: config.http.portal_url.clone(),
            instance: instance.clone(),
        });
        let services = Services {
            access: Access::new(store.clone()),
            deployer,
            orchestrator: orchestrator.clone(),
            gatekeeper: Gatekeeper::new(store.clone(), Arc::clone(&policy)),
            questions,
            webhooks: ForgeWebhooks::new(store.clone(), settings.clone())
                .with_issue_rule(issue_rule.clone()),
            forge: Forge::new(settings.clone(), &config.data_dir, config.forge.clone()),
            config: settings,
            bus,
            platform: config.platform.clone(),
        };
        Ok(Self {
            store,
            backend,
            services,
            instance,
            policy,
            issue_rule,
            config,
        })
    }

    /// Finishes or undoes what a crash left: agents of an earlier run are
    /// removed, orphaned resources swept, unfinished deployments resumed,
    /// and the issues those agents worked on told how they ended.
    /// Failures are logged, not fatal: the periodic sweep tries again.
    pub async fn converge(&self) {
        let Services {
            deployer,
            orchestrator,
            ..
        } = &self.services;
        match orchestrator.reap().await {
            Ok(0) => {}
            Ok(count) => tracing::warn!(count, "removed agent containers left by an earlier run"),
            Err(e) => tracing::warn!(error = %e, "cannot remove agents left by an earlier run"),
        }
        // After the reap: the earlier run's agents are settled, so each
        // issue's work goes straight to its pull request or report.
        match self.issue_rule.resume().await {
            Ok(0) => {}
            Ok(count) => tracing::info!(count, "finishing the work on issues an earlier run took"),
            Err(e) => {
                tracing::warn!(error = %e, "cannot finish the work on issues an earlier run took")
            }
        }
        match deployer.sweep_orphans().await {
            Ok(removed) if !removed.is_empty() => {
                tracing::warn!(count = removed.len(), "removed orphaned resources at start");
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "orphan sweep failed; will retry"),
        }
        match deployer.resume().await {
            Ok(0) => {}
            Ok(count) => tracing::info!(count, "resumed unfinished deployments"),
            Err(e) => tracing::error!(error = %e, "cannot resume unfinished deployments"),
        }
    }

    /// Serves people on `tcp` and agents on `control` until `stopping` is
    /// cancelled, with the watchers running beside; then removes agents,
    /// lets running deployments reach a step boundary and closes the
    /// store. Call [`Yard::converge`] first.
    pub async fn run(
        self,
        tcp: TcpListener,
        control: UnixListener,
        stopping: CancellationToken,
    ) -> Result<(), DaemonError> {
        let Self {
            store,
            services,
            policy,
            config,
            ..
        } = self;
        let deployer = services.deployer.clone();
        let orchestrator = services.orchestrator.clone();
        let questions = services.questions.clone();
        let learning = tokio::spawn({
            let orchestrator = orchestrator.clone();
            async move { orchestrator.learn_agent_image().await }
        });
        let sweeper = tokio::spawn(sweep_periodically(
            deployer.clone(),
            config.reconcile_interval,
            stopping.clone(),
        ));
        let take_over = tokio::spawn(take_over_periodically(deployer.clone(), stopping.clone()));
        let policy_watch = tokio::spawn(policy.watch(config.policy_check, stopping.clone()));
        let stack_watch = tokio::spawn({
            let deployer = deployer.clone();
            let stopping = stopping.clone();
            async move { deployer.watch(stopping).await }
        });
        // Agents go as soon as the stop comes, in parallel with draining
        // connections.
        let agent_stop = tokio::spawn({
            let stopping = stopping.clone();
            let orchestrator = orchestrator.clone();
            async move {
                stopping.cancelled().await;
                orchestrator.stop_all(AGENT_REMOVAL).await;
            }
        });
        let state = AppState::new(services, config.http.clone(), stopping.clone());
        let limits = config.connection_limits;
        let tcp = yard_server::serve_tcp(
            tcp,
            yard_server::app(state.clone()),
            limits,
            stopping.clone().cancelled_owned(),
        );
        let unix = yard_server::serve(
            control,
            yard_server::control_app(state),
            limits,
            stopping.clone().cancelled_owned(),
        );
        let served = tokio::select! {
            (tcp, unix) = async { tokio::join!(tcp, unix) } => tcp.and(unix).map_err(DaemonError::Serve),
            () = async {
                stopping.cancelled().await;
                tokio::time::sleep(CONNECTION_GRACE).await;
            } => {
                tracing::warn!("open connections did not finish in time; closing them");
                Ok(())
            }
        };
        stopping.cancel();
        learning.abort();
        let _ = sweeper.await;
        let _ = take_over.await;
        let _ = policy_watch.await;
        let _ = stack_watch.await;
        let _ = agent_stop.await;
        // Finishes (or, if the servers failed, does) what the stop started;
        // removing what is already gone is quick.
        orchestrator.stop_all(AGENT_REMOVAL).await;
        deployer.shutdown(DEPLOY_GRACE).await;
        // Answers decided in memory go to the store now rather than from
        // the answer log at the next start.
        if let Err(e) = questions.flush().await {
            tracing::warn!(error = %e, "cannot write the last answers to the store; the answer log keeps them");
        }
        store.close().await;
        served
    }
}

async fn sweep_periodically(deployer: Deployer, every: Duration, stopping: CancellationToken) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        tokio::select! {
            _ = ticks.tick() => {
                if let Err(e) = deployer.sweep_orphans().await {
                    tracing::warn!(error = %e, "orphan sweep failed; will retry");
                }
            }
            () = stopping.cancelled() => return,
        }
    }
}

/// Looks for work whose daemon died (its lease expired) twice per lease
/// time, so it is taken over within about one and a half lease times.
async fn take_over_periodically(deployer: Deployer, stopping: CancellationToken) {
    let mut ticks = tokio::time::interval(deployer.lease_ttl() / 2);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        tokio::select! {
            _ = ticks.tick() => match deployer.take_over().await {
                Ok(0) => {}
                Ok(count) => tracing::info!(count, "took over unfinished work"),
                Err(e) => tracing::warn!(error = %e, "cannot look for work to take over; will retry"),
            },
            () = stopping.cancelled() => return,
        }
    }
}
