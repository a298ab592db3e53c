//! `yard serve`: wires the store, the engine, the deployer and the server,
//! converges with what the engine holds, then serves until SIGINT/SIGTERM.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use yard_core::{NamePolicy, StackAddressing};
use yard_engine::{DockerConfig, DockerEngine};
use yard_server::AppState;
use yard_services::auth::{AdminToken, ensure_admin_token};
use yard_services::{DataDir, Deployer, DeployerConfig, EventBus};
use yard_store::{Store, redact};

use crate::cli::ServeArgs;

/// How long running deployments get to finish after a stop signal before
/// they are left to resume at the next start.
const DEPLOY_GRACE: Duration = Duration::from_secs(5);
/// How long open connections get to finish after a stop signal.
const CONNECTION_GRACE: Duration = Duration::from_secs(10);
/// How many events the bus keeps for a slow subscriber.
const BUS_CAPACITY: usize = 1024;

pub(crate) async fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let data_dir = DataDir::open(args.data_dir.clone().unwrap_or_else(DataDir::default_path))
        .context("cannot create the data directory")?;
    let instance = data_dir
        .instance_id()
        .context("cannot read the instance id")?;
    let database_url = args
        .database_url
        .clone()
        .unwrap_or_else(|| Store::sqlite_url(data_dir.path()));
    let store = Store::open(&database_url).await?;
    tracing::info!(store = %redact(&database_url), data_dir = %data_dir.path().display(), %instance, "store ready");
    match ensure_admin_token(&store, &data_dir).await? {
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

    let mut docker = DockerConfig::new(instance);
    docker.extra_labels = args.labels.iter().cloned().collect();
    let engine = DockerEngine::connect(docker)?;
    match engine.version().await {
        Ok(version) => tracing::info!(backend = %args.backend, %version, "engine ready"),
        Err(e) => {
            tracing::warn!(backend = %args.backend, error = %e, "engine not reachable yet; deployments fail until it is")
        }
    }

    let bus = EventBus::new(BUS_CAPACITY);
    let deployer = Deployer::new(
        store.clone(),
        Arc::new(engine),
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
        },
    );

    // Converge before taking requests: whatever a crash left is either
    // finished, rolled back or removed.
    converge(&deployer).await;
    let stopping = CancellationToken::new();
    let sweeper = tokio::spawn(sweep_periodically(
        deployer.clone(),
        args.reconcile_interval,
        stopping.clone(),
    ));

    data_dir
        .write_listen_addr(&addr.to_string())
        .context("cannot record the listen address")?;
    tracing::info!(%addr, url = %format!("http://{addr}"), "listening");

    let state = AppState::new(deployer.clone(), bus, stopping.clone());
    let signal_seen = CancellationToken::new();
    let on_signal = {
        let signal_seen = signal_seen.clone();
        async move {
            stop_signal().await;
            tracing::info!("stopping: no new requests; finishing open ones");
            signal_seen.cancel();
        }
    };
    let served = tokio::select! {
        served = yard_server::serve(listener, state, on_signal) => served.context("the server failed"),
        () = async {
            signal_seen.cancelled().await;
            tokio::time::sleep(CONNECTION_GRACE).await;
        } => {
            tracing::warn!("open connections did not finish in time; closing them");
            Ok(())
        }
    };
    stopping.cancel();
    let _ = sweeper.await;
    deployer.shutdown(DEPLOY_GRACE).await;
    data_dir.clear_listen_addr();
    store.close().await;
    served?;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// Resumes unfinished work and removes orphans. Failures are logged, not
/// fatal: the periodic sweep tries again.
async fn converge(deployer: &Deployer) {
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
