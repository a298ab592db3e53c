//! `yard serve`: wires the store, the engine, the services and the two
//! listeners (TCP for people, a Unix socket for agents), converges with
//! what the engine holds, then serves until SIGINT or SIGTERM.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::net::{TcpListener, UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;
use yard_core::{NamePolicy, StackAddressing};
use yard_engine::{DockerConfig, DockerEngine, ResourceLimits};
use yard_server::{AppState, ConnectionLimits, HttpSettings, Services};
use yard_services::agent_images::AgentImages;
use yard_services::auth::{AdminToken, ensure_admin_token};
use yard_services::orchestrator::{CacheVolume, ControlAccess};
use yard_services::repo_roots::RepoRoots;
use yard_services::{
    DataDir, Deployer, DeployerConfig, EventBus, Gatekeeper, HealingConfig, Orchestrator,
    OrchestratorConfig, PolicyWatch, RestartPolicy,
};
use yard_store::{Store, redact};

use crate::cli::{ServeArgs, StackRestart};

/// How long running deployments get to finish after a stop signal before
/// they are left to resume at the next start.
const DEPLOY_GRACE: Duration = Duration::from_secs(5);
/// How long open connections get to finish after a stop signal.
const CONNECTION_GRACE: Duration = Duration::from_secs(8);
/// Agents are gone this soon after a stop signal.
const AGENT_REMOVAL: Duration = Duration::from_secs(8);
/// How long an agent gets between SIGTERM and SIGKILL when stopped.
const AGENT_STOP_GRACE: Duration = Duration::from_secs(3);
/// How many events the bus keeps for a slow subscriber.
const BUS_CAPACITY: usize = 1024;
/// How often the policy file is checked for changes.
const POLICY_CHECK: Duration = Duration::from_secs(1);

/// Everything `serve` and `doctor` derive from the arguments.
pub(crate) struct Setup {
    pub(crate) data_dir: DataDir,
    pub(crate) instance: String,
    pub(crate) database_url: String,
    pub(crate) socket: PathBuf,
    pub(crate) policy: PathBuf,
}

impl Setup {
    pub(crate) fn from_args(args: &ServeArgs) -> anyhow::Result<Self> {
        let data_dir = DataDir::open(args.data_dir.clone().unwrap_or_else(DataDir::default_path))
            .context("cannot create the data directory")?;
        let instance = data_dir
            .instance_id()
            .context("cannot read the instance id")?;
        let database_url = args
            .database_url
            .clone()
            .unwrap_or_else(|| Store::sqlite_url(data_dir.path()));
        let socket = args
            .socket
            .clone()
            .unwrap_or_else(|| data_dir.path().join("control.sock"));
        let policy = args
            .policy
            .clone()
            .unwrap_or_else(|| data_dir.path().join("policy.toml"));
        Ok(Self {
            data_dir,
            instance,
            database_url,
            socket,
            policy,
        })
    }
}

pub(crate) async fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let setup = Setup::from_args(&args)?;
    let policy = Arc::new(PolicyWatch::load(
        setup.policy.clone(),
        args.policy_required,
    )?);
    let store = Store::open(&setup.database_url).await?;
    tracing::info!(store = %redact(&setup.database_url), data_dir = %setup.data_dir.path().display(), instance = %setup.instance, "store ready");
    // After the store exists: SQLite makes its file with the umask's mode.
    for path in setup
        .data_dir
        .tighten()
        .context("cannot make the data directory private")?
    {
        tracing::warn!(path = %path.display(), "tightened: only the yard's user may read this now");
    }
    let repo_roots = repo_roots(&args, &setup)?;
    match ensure_admin_token(&store, &setup.data_dir).await? {
        AdminToken::Created(path) => {
            tracing::info!(path = %path.display(), "new admin token written (mode 0600); the CLI reads it from there")
        }
        AdminToken::Existing(path) => {
            tracing::info!(path = %path.display(), "admin token in place")
        }
    }

    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    let control = bind_control_socket(&setup.socket).await?;
    let socket_group = std::fs::metadata(&setup.socket)?.gid();

    let mut docker = DockerConfig::new(setup.instance.clone());
    docker.extra_labels = args.labels.iter().cloned().collect();
    let engine = Arc::new(DockerEngine::connect(docker)?);
    match engine.version().await {
        Ok(version) => tracing::info!(backend = %args.backend, %version, "engine ready"),
        Err(e) => {
            tracing::warn!(backend = %args.backend, error = %e, "engine not reachable yet; deployments and agents fail until it is")
        }
    }

    let bus = EventBus::new(BUS_CAPACITY);
    let deployer = Deployer::new(
        store.clone(),
        engine.clone(),
        bus.clone(),
        DeployerConfig {
            stack_image: args.stack_image.clone(),
            stack_port: args.stack_port,
            stack_env: args.stack_env.clone(),
            addressing: StackAddressing::new(
                &args.domain,
                addr.port(),
                args.stack_url_template.as_deref(),
            ),
            names: NamePolicy::new(&args.reserved_names),
            deploy_timeout: args.deploy_timeout,
            limits: ResourceLimits {
                memory_bytes: args.stack_memory.0,
                cpus: args.stack_cpus.0,
                ..ResourceLimits::STACK_DEFAULT
            },
            healing: HealingConfig {
                policy: match args.stack_restart {
                    StackRestart::OnFailure => RestartPolicy::OnFailure,
                    StackRestart::Never => RestartPolicy::Never,
                },
                max_restarts: args.stack_max_restarts,
                check_every: args.health_interval,
                ..HealingConfig::default()
            },
        },
    );
    let agent_images = if args.agent_images.is_empty() {
        vec![args.agent_image.clone()]
    } else {
        args.agent_images.clone()
    };
    let orchestrator = Orchestrator::new(
        store.clone(),
        engine,
        bus.clone(),
        Arc::clone(&policy),
        OrchestratorConfig {
            instance: setup.instance.clone(),
            agent_image: args.agent_image.clone(),
            allowed_images: AgentImages::new(&agent_images).map_err(anyhow::Error::msg)?,
            repo_roots,
            max_agents: args.max_agents,
            max_agents_per_owner: args.max_agents_per_owner,
            max_agents_total: args.max_agents_total,
            limits: ResourceLimits {
                memory_bytes: args.agent_memory.0,
                cpus: args.agent_cpus.0,
                ..ResourceLimits::AGENT_DEFAULT
            },
            checkouts_dir: setup.data_dir.path().join("checkouts"),
            control: match &args.control_volume {
                Some(volume) => ControlAccess::Volume(volume.clone()),
                None => ControlAccess::SocketFile(setup.socket.clone()),
            },
            socket_group: Some(socket_group),
            caches: if args.agent_caches.is_empty() {
                CacheVolume::defaults()
            } else {
                args.agent_caches.clone()
            },
            agent_env: args.agent_env.clone(),
            lend_binary: if args.lend_binary {
                Some(
                    std::env::current_exe()
                        .context("cannot find this yard's own binary to lend")?,
                )
            } else {
                None
            },
            stop_grace: AGENT_STOP_GRACE,
        },
    );
    let gatekeeper = Gatekeeper::new(store.clone(), Arc::clone(&policy));

    // Converge before taking requests: whatever a crash left is finished,
    // rolled back or removed.
    converge(&deployer, &orchestrator).await;
    tokio::spawn({
        let orchestrator = orchestrator.clone();
        async move { orchestrator.learn_agent_image().await }
    });
    let stopping = CancellationToken::new();
    let sweeper = tokio::spawn(sweep_periodically(
        deployer.clone(),
        args.reconcile_interval,
        stopping.clone(),
    ));
    let policy_watch = tokio::spawn(Arc::clone(&policy).watch(POLICY_CHECK, stopping.clone()));
    let stack_watch = tokio::spawn({
        let deployer = deployer.clone();
        let stopping = stopping.clone();
        async move { deployer.watch(stopping).await }
    });

    setup
        .data_dir
        .write_listen_addr(&addr.to_string())
        .context("cannot record the listen address")?;
    let settings = http_settings(&args, addr);
    tracing::info!(%addr, portal = %settings.portal_url, socket = %setup.socket.display(), "listening; open the portal in a browser and sign in with the admin token");

    let state = AppState::new(
        Services {
            deployer: deployer.clone(),
            orchestrator: orchestrator.clone(),
            gatekeeper,
            bus,
        },
        settings,
        stopping.clone(),
    );
    tokio::spawn({
        let stopping = stopping.clone();
        let orchestrator = orchestrator.clone();
        async move {
            stop_signal().await;
            tracing::info!("stopping: removing agents, finishing open requests");
            stopping.cancel();
            // Agents go at once, in parallel with draining connections.
            orchestrator.stop_all(AGENT_REMOVAL).await;
        }
    });
    let limits = ConnectionLimits {
        header_timeout: args.header_timeout,
    };
    let tcp = yard_server::serve_tcp(
        listener,
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
        (tcp, unix) = async { tokio::join!(tcp, unix) } => tcp.and(unix).context("the server failed"),
        () = async {
            stopping.cancelled().await;
            tokio::time::sleep(CONNECTION_GRACE).await;
        } => {
            tracing::warn!("open connections did not finish in time; closing them");
            Ok(())
        }
    };
    stopping.cancel();
    let _ = sweeper.await;
    let _ = policy_watch.await;
    let _ = stack_watch.await;
    // Finishes (or, if the servers failed, does) what the signal started;
    // removing what is already gone is quick.
    orchestrator.stop_all(AGENT_REMOVAL).await;
    deployer.shutdown(DEPLOY_GRACE).await;
    let _ = std::fs::remove_file(&setup.socket);
    setup.data_dir.clear_listen_addr();
    store.close().await;
    served?;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// The repository roots: the configured ones, or `<data-dir>/repos`
/// (made if missing). A configured root that does not exist is reported.
fn repo_roots(args: &ServeArgs, setup: &Setup) -> anyhow::Result<RepoRoots> {
    let roots = if args.repo_roots.is_empty() {
        let default = setup.data_dir.path().join("repos");
        std::fs::create_dir_all(&default)
            .with_context(|| format!("cannot create {}", default.display()))?;
        vec![default]
    } else {
        args.repo_roots.clone()
    };
    for root in &roots {
        if !root.is_absolute() {
            bail!(
                "YARD_REPO_ROOTS: {} is not an absolute path",
                root.display()
            );
        }
        if !root.is_dir() {
            tracing::warn!(root = %root.display(), "repository root does not exist; users cannot spawn agents there");
        }
    }
    let shown: Vec<String> = roots.iter().map(|r| r.display().to_string()).collect();
    tracing::info!(roots = %shown.join(":"), strict = args.repo_roots_strict, "repository roots");
    Ok(RepoRoots::new(roots, args.repo_roots_strict))
}

/// The yard's own origins and loopback names, plus the operator's.
fn http_settings(args: &ServeArgs, addr: std::net::SocketAddr) -> HttpSettings {
    let port = addr.port();
    let mut origins = vec![
        format!("http://localhost:{port}"),
        format!("http://127.0.0.1:{port}"),
    ];
    origins.extend(args.mcp_allowed_origins.iter().cloned());
    let mut hosts: Vec<String> = ["localhost", "127.0.0.1", "::1"].map(str::to_owned).into();
    if !addr.ip().is_unspecified() && !addr.ip().is_loopback() {
        hosts.push(addr.ip().to_string());
    }
    hosts.extend(args.mcp_allowed_hosts.iter().cloned());
    HttpSettings {
        mcp_allowed_origins: origins,
        mcp_allowed_hosts: hosts,
        protect_stacks: args.protect_stacks,
        portal_url: args
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}:{port}", args.domain.trim_matches('.'))),
    }
}

/// Binds the control socket (mode 0660). A stale socket file from a run
/// that died is replaced; a live one means another yard is there.
async fn bind_control_socket(path: &Path) -> anyhow::Result<UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    if path.exists() {
        if UnixStream::connect(path).await.is_ok() {
            bail!("another yard is already listening on {}", path.display());
        }
        std::fs::remove_file(path)
            .with_context(|| format!("cannot replace the stale socket {}", path.display()))?;
    }
    let listener =
        UnixListener::bind(path).with_context(|| format!("cannot listen on {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .with_context(|| format!("cannot set the mode of {}", path.display()))?;
    Ok(listener)
}

/// Resumes unfinished work and removes orphans. Failures are logged, not
/// fatal: the periodic sweep tries again.
async fn converge(deployer: &Deployer, orchestrator: &Orchestrator) {
    match orchestrator.reap().await {
        Ok(0) => {}
        Ok(count) => tracing::warn!(count, "removed agent containers left by an earlier run"),
        Err(e) => tracing::warn!(error = %e, "cannot remove agents left by an earlier run"),
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

/// Resolves on Ctrl-C (SIGINT) or SIGTERM.
async fn stop_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot watch for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}
