//! `yard serve`: turns the arguments into the yard's configuration, binds
//! the two listeners (TCP for people, a Unix socket for agents), has the
//! composition root (`yard-daemon`) build the yard, converge with what the
//! backend holds, and serve until SIGINT or SIGTERM.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::net::{TcpListener, UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;
use yard_core::{NamePolicy, StackAddressing};
use yard_daemon::{AgentSettings, BackendSource, DaemonConfig, Yard};
use yard_engine::dokploy::CertificateType;
use yard_engine::{
    BackendConfig, BackendKind, DokployConfig, EngineError, ResourceLimits, SwarmReach,
    TraefikConfig,
};
use yard_server::{ConnectionLimits, HttpSettings};
use yard_services::agent_images::AgentImages;
use yard_services::orchestrator::CacheVolume;
use yard_services::repo_roots::RepoRoots;
use yard_services::{
    DataDir, DeployerConfig, EncryptionKey, ForgeAdmin, ForgeConfig, HealingConfig, PlatformStatus,
    RestartPolicy, Secret, SetupOptions,
};

use crate::cli::{ServeArgs, StackRestart};

/// How long an agent gets between SIGTERM and SIGKILL when stopped.
const AGENT_STOP_GRACE: Duration = Duration::from_secs(3);
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
        let database_url = yard_daemon::database_url(&data_dir, args.database_url.as_deref());
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
    let stopping = CancellationToken::new();
    tokio::spawn({
        let stopping = stopping.clone();
        async move {
            stop_signal().await;
            tracing::info!("stopping: removing agents, finishing open requests");
            stopping.cancel();
        }
    });
    serve(args, Extras::default(), stopping).await?;
    Ok(ExitCode::SUCCESS)
}

/// What `yard aio` adds to a plain `serve`.
#[derive(Debug, Default)]
pub(crate) struct Extras {
    /// The container's services, for `/api/aio` and `/health`.
    pub(crate) platform: Option<Arc<dyn PlatformStatus>>,
    /// Build the agent image on first boot if the engine lacks it.
    pub(crate) agent_image: Option<AgentImageBuild>,
    /// Set the forge up on first boot (in the background) if it is not.
    pub(crate) forge: Option<ForgeBoot>,
}

/// The forge's first boot under `yard aio`, and where to say how it goes
/// (`setting up`, `ready`, `failed: ...`).
#[derive(Debug)]
pub(crate) struct ForgeBoot {
    /// The forge `yard aio` runs; `None` sets up the external one the
    /// arguments name (`GITEA_URL` with `GITEA_ADMIN_TOKEN`), if any.
    pub(crate) internal: Option<ForgeConfig>,
    pub(crate) progress: Arc<Mutex<Option<String>>>,
}

impl ForgeBoot {
    fn report(&self, state: String) {
        *self.progress.lock().unwrap_or_else(PoisonError::into_inner) = Some(state);
    }
}

/// The agent image's build context, and where to say how building it goes
/// (`present`, `building`, `built`, `failed: ...`).
#[derive(Debug)]
pub(crate) struct AgentImageBuild {
    pub(crate) context: PathBuf,
    pub(crate) progress: Arc<Mutex<Option<String>>>,
}

impl AgentImageBuild {
    fn report(&self, state: String) {
        *self.progress.lock().unwrap_or_else(PoisonError::into_inner) = Some(state);
    }
}

/// Builds the yard, converges and serves until `stopping` is cancelled.
pub(crate) async fn serve(
    args: ServeArgs,
    extras: Extras,
    stopping: CancellationToken,
) -> anyhow::Result<()> {
    let setup = Setup::from_args(&args)?;
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    let control = bind_control_socket(&setup.socket).await?;
    let socket_group = std::fs::metadata(&setup.socket)?.gid();
    let mut config = daemon_config(&args, &setup, addr, Some(socket_group))?;
    config.platform = extras.platform;
    if let Some(internal) = extras.forge.as_ref().and_then(|boot| boot.internal.clone()) {
        config.forge = Some(internal);
    }
    let yard = match Yard::build(config).await {
        Ok(yard) => yard,
        Err(e) => {
            let _ = std::fs::remove_file(&setup.socket);
            return Err(e.into());
        }
    };
    match yard.backend.stacks.ping().await {
        Ok(()) => tracing::info!(backend = %yard.backend.kind, "backend ready"),
        // Settings that cannot work stop the start: waiting would not help.
        Err(
            e @ (EngineError::NotSwarmManager | EngineError::Refused(_) | EngineError::Config(_)),
        ) => {
            let _ = std::fs::remove_file(&setup.socket);
            bail!("the {} backend: {e}", yard.backend.kind);
        }
        Err(e) => {
            tracing::warn!(backend = %yard.backend.kind, error = %e, "backend not reachable yet; deployments fail until it is")
        }
    }
    // Converge before taking requests: whatever a crash left is finished,
    // rolled back or removed.
    yard.converge().await;
    if let Some(build) = extras.agent_image {
        // In the background: /health does not wait for an image build.
        let orchestrator = yard.services.orchestrator.clone();
        tokio::spawn(async move {
            let outcome = orchestrator
                .ensure_agent_image(&build.context, || build.report("building".to_owned()))
                .await;
            build.report(match outcome {
                Ok(false) => "present".to_owned(),
                Ok(true) => "built".to_owned(),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot build the agent image");
                    format!("failed: {e}")
                }
            });
        });
    }

    if let Some(boot) = extras.forge
        && yard.services.forge.is_configured()
    {
        // In the background too: the forge may take a while to answer.
        let forge = yard.services.forge.clone();
        tokio::spawn(async move {
            if forge.is_ready() {
                tracing::info!("the forge was set up before");
                boot.report("ready".to_owned());
                return;
            }
            boot.report("setting up".to_owned());
            match forge.init().await {
                Ok(_) => boot.report("ready".to_owned()),
                Err(e) => {
                    tracing::warn!(error = %e, "the forge's first boot failed; `yard forge init` tries again");
                    boot.report(format!("failed: {e}"));
                }
            }
        });
    }

    setup
        .data_dir
        .write_listen_addr(&addr.to_string())
        .context("cannot record the listen address")?;
    tracing::info!(%addr, portal = %http_settings(&args, addr).portal_url, socket = %setup.socket.display(), "listening; open the portal in a browser and sign in with the admin token");
    if crate::prompt_panes::wanted(args.prompt_panes) {
        tracing::info!("opening a Zellij pane for each question");
        tokio::spawn(crate::prompt_panes::open_for_questions(
            yard.services.bus.clone(),
            crate::prompt_panes::PaneTarget {
                listen: addr,
                data_dir: setup.data_dir.path().to_owned(),
            },
            stopping.clone(),
        ));
    }
    let served = yard.run(listener, control, stopping).await;
    let _ = std::fs::remove_file(&setup.socket);
    setup.data_dir.clear_listen_addr();
    served.context("the server failed")?;
    tracing::info!("stopped");
    Ok(())
}

/// The yard's whole configuration, from the arguments. `doctor` checks the
/// same one `serve` would run.
pub(crate) fn daemon_config(
    args: &ServeArgs,
    setup: &Setup,
    addr: std::net::SocketAddr,
    socket_group: Option<u32>,
) -> anyhow::Result<DaemonConfig> {
    let agent_images = if args.agent_images.is_empty() {
        vec![args.agent_image.clone()]
    } else {
        args.agent_images.clone()
    };
    Ok(DaemonConfig {
        data_dir: setup.data_dir.clone(),
        database_url: args.database_url.clone(),
        backend: BackendSource::Connect(Box::new(backend_config(args, setup)?)),
        deployer: DeployerConfig {
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
            lease_ttl: args.lease_ttl,
        },
        agents: AgentSettings {
            agent_image: args.agent_image.clone(),
            allowed_images: AgentImages::new(&agent_images).map_err(anyhow::Error::msg)?,
            repo_roots: repo_roots(args, setup)?,
            max_agents: args.max_agents,
            max_agents_per_owner: args.max_agents_per_owner,
            max_agents_total: args.max_agents_total,
            limits: ResourceLimits {
                memory_bytes: args.agent_memory.0,
                cpus: args.agent_cpus.0,
                ..ResourceLimits::AGENT_DEFAULT
            },
            control_volume: args.control_volume.clone(),
            socket_group,
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
            mode: args.agent_mode,
        },
        policy: setup.policy.clone(),
        policy_required: args.policy_required,
        policy_check: POLICY_CHECK,
        socket: setup.socket.clone(),
        http: http_settings(args, addr),
        connection_limits: ConnectionLimits {
            header_timeout: args.header_timeout,
        },
        reconcile_interval: args.reconcile_interval,
        question_timeout: args.question_timeout,
        platform: None,
        config_key: args
            .config_key
            .as_deref()
            .map(EncryptionKey::from_hex)
            .transpose()?,
        forge: external_forge(args, addr),
    })
}

/// The yard's webhook address the forge sends events to:
/// `<YARD_WEBHOOK_BASE or the portal's URL>/webhook/gitea`.
pub(crate) fn webhook_url(args: &ServeArgs, port: u16) -> String {
    let base = args
        .webhook_base
        .clone()
        .or_else(|| args.public_url.clone())
        .unwrap_or_else(|| format!("http://{}:{port}", args.domain.trim_matches('.')));
    format!("{}/webhook/gitea", base.trim_end_matches('/'))
}

/// The external forge (`GITEA_URL` with `GITEA_ADMIN_TOKEN`), if the
/// arguments name one.
fn external_forge(args: &ServeArgs, addr: std::net::SocketAddr) -> Option<ForgeConfig> {
    let url = args.gitea_url.clone()?;
    let Some(token) = args.gitea_admin_token.clone().filter(|t| !t.is_empty()) else {
        tracing::warn!(forge = %url, "GITEA_URL is set without GITEA_ADMIN_TOKEN: the yard cannot set the forge up");
        return None;
    };
    Some(ForgeConfig {
        url,
        admin: ForgeAdmin::Token(Secret::new(token)),
        bot_user: args.bot_user.clone(),
        org: args.org_name.clone(),
        webhook_url: webhook_url(args, addr.port()),
        options: SetupOptions::default(),
        log: None,
    })
}

/// The backend `YARD_BACKEND` names, with what it needs.
pub(crate) fn backend_config(args: &ServeArgs, setup: &Setup) -> anyhow::Result<BackendConfig> {
    let mut config = BackendConfig::docker(setup.instance.clone());
    config.kind = args
        .backend
        .parse::<BackendKind>()
        .map_err(anyhow::Error::msg)?;
    config.extra_labels = args.labels.iter().cloned().collect();
    config.stack_volume = args.stack_volume;
    if let Some(container) = &args.swarm_container {
        config.swarm_reach = SwarmReach::ServiceName {
            container: container.clone(),
        };
    }
    if args.traefik {
        config.traefik = Some(TraefikConfig {
            domain: args.domain.clone(),
            entrypoints: Vec::new(),
            network: args.traefik_network.clone(),
        });
    }
    config.dokploy = args.dokploy_url.as_ref().map(|url| {
        let mut dokploy = DokployConfig::new(
            url.clone(),
            args.dokploy_api_key.clone().unwrap_or_default(),
            setup.instance.clone(),
            args.dokploy_domain
                .clone()
                .unwrap_or_else(|| args.domain.clone()),
        );
        dokploy.https = args.dokploy_https;
        if !args.dokploy_https {
            dokploy.certificate = CertificateType::None;
        }
        dokploy
    });
    Ok(config)
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

/// Resolves on Ctrl-C (SIGINT) or SIGTERM.
pub(crate) async fn stop_signal() {
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
