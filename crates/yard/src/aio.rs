//! `yard aio`: the all-in-one container's main process, and `yard aio
//! status`.
//!
//! The daemon runs in this process, not as a child: it is the container's
//! reason to exist, it starts in well under a second, and it can then
//! report the supervised services on `/api/aio` and `/health` without a
//! second channel. Beside it the supervisor (`yard-aio`) runs the forge and
//! the browser stack the built-in configuration and the optional TOML file
//! describe. On SIGTERM the services stop in reverse start order within a
//! bound, then the daemon stops as `yard serve` does.
//!
//! First boot of the forge: for the forge the container runs (no
//! `GITEA_URL`), its `app.ini` is written before the supervisor starts it
//! (`aio_forge.rs`); once the daemon is up, in the background, a forge not
//! yet set up (no `<data-dir>/forge-ready`) is waited for, given its first
//! admin with Gitea's CLI and set up by the `Forge` service. An external
//! forge (`GITEA_URL` with `GITEA_ADMIN_TOKEN`) takes the same steps minus
//! the first two. `/api/aio` says how it went (`forge: ...`).

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use anyhow::Context;
use tokio_util::sync::CancellationToken;
use yard_aio::{FORGE_PORT, NOVNC_PORT, Platform, RELAY_PORT, StatusHandle, Supervisor};
use yard_api::{AioServiceView, AioStatus};
use yard_services::{
    BrowserInfo, ForgeAdmin, ForgeConfig, PlatformReport, PlatformService, PlatformStatus, Secret,
    SetupOptions,
};

use crate::aio_forge::{self, GiteaCli};
use crate::cli::{AioArgs, ClientArgs};
use crate::commands::{connect, explain, print_json};
use crate::serve::{self, AgentImageBuild, Extras, ForgeBoot, Setup};

/// How long the first boot waits for the forge the container runs.
const FORGE_READY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);

/// Runs the container until SIGTERM or SIGINT.
pub(crate) async fn run(args: AioArgs) -> anyhow::Result<ExitCode> {
    let setup = Setup::from_args(&args.serve)?;
    let internal_browser = args.chrome_cdp_url.is_none();
    let relay_token = if internal_browser {
        Some(
            yard_relay::relay_token(args.relay_token.clone(), setup.data_dir.path())
                .context("cannot read or make the relay token")?,
        )
    } else {
        None
    };
    let browser = browser_info(&args);
    let mut env = browser_env(&browser);
    if let Some(token) = &relay_token {
        env.insert("YARD_RELAY_TOKEN".to_owned(), token.clone());
    }
    let platform = Platform {
        yard_binary: std::env::current_exe().context("cannot find this yard's own binary")?,
        data_dir: setup.data_dir.path().to_owned(),
        bind: args.bind,
        forge: args.serve.gitea_url.is_none(),
        browser: internal_browser,
        env: env.clone(),
    };
    let mut config = platform.config()?;
    if let Some(path) = &args.config {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the aio config {}", path.display()))?;
        config = config
            .overlay(&text)
            .with_context(|| format!("in {}", path.display()))?;
    }
    platform
        .prepare_directories()
        .context("cannot prepare the services' directories")?;
    let forge_host = args
        .browser_host
        .clone()
        .unwrap_or_else(|| args.serve.domain.clone());
    let webhook_url = serve::webhook_url(&args.serve, args.serve.listen.port());
    let internal_forge = if platform.forge {
        aio_forge::write_app_ini(&platform, &forge_host, &webhook_url)?;
        Some(internal_forge(&args, &platform, webhook_url))
    } else {
        None
    };
    let mut supervisor = Supervisor::start(config, &args.log_dir)?;
    tracing::info!(
        services = supervisor.status().len(),
        logs = %args.log_dir.display(),
        browser = %browser.mode,
        forge = if platform.forge { "internal" } else { "external" },
        "supervising the container's services"
    );
    let agent_image = Arc::new(Mutex::new(None));
    let forge = Arc::new(Mutex::new(None));
    let status = Arc::new(ContainerStatus {
        services: supervisor.status_handle(),
        started: Instant::now(),
        browser,
        agent_image: Arc::clone(&agent_image),
        forge: Arc::clone(&forge),
    });
    // The image ships the agent image's build context; without the
    // engine's socket the build fails, and the status says why.
    let agent_image = args
        .agent_context
        .join("Dockerfile")
        .is_file()
        .then(|| AgentImageBuild {
            context: args.agent_context.clone(),
            progress: agent_image,
        });

    let mut serve_args = args.serve;
    // Agents find their browser without configuration.
    serve_args.agent_env.extend(env);
    let stopping = CancellationToken::new();
    let extras = Extras {
        platform: Some(status as Arc<dyn PlatformStatus>),
        agent_image,
        forge: Some(ForgeBoot {
            internal: internal_forge,
            progress: forge,
        }),
    };
    let mut daemon = tokio::spawn(serve::serve(serve_args, extras, stopping.clone()));
    let daemon_ended = tokio::select! {
        () = serve::stop_signal() => None,
        ended = &mut daemon => Some(ended),
    };
    tracing::info!(within = ?args.stop_within, "stopping the services in reverse order");
    supervisor.shutdown(args.stop_within).await;
    stopping.cancel();
    let served = match daemon_ended {
        Some(ended) => ended,
        None => daemon.await,
    };
    served.context("the daemon's task failed")??;
    Ok(ExitCode::SUCCESS)
}

/// `yard aio status`.
pub(crate) async fn status(client: &ClientArgs) -> anyhow::Result<ExitCode> {
    let status = connect(client)?.aio().await.map_err(explain)?;
    if client.json {
        print_json(&status)?;
    } else {
        print_status(&status);
    }
    let all_up = status.services.iter().all(AioServiceView::is_up);
    Ok(if all_up {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn print_status(status: &AioStatus) {
    println!(
        "{:<16} {:<12} {:>8} {:>10} {:>8}  LAST EXIT",
        "SERVICE", "STATE", "PID", "UPTIME", "RESTARTS"
    );
    for service in &status.services {
        let state = if service.state == "running" && !service.ready {
            "not ready"
        } else {
            service.state.as_str()
        };
        let pid = service.pid.map(|pid| pid.to_string()).unwrap_or_default();
        let uptime = service
            .uptime_seconds
            .map(|seconds| humantime::format_duration(std::time::Duration::from_secs(seconds)))
            .map(|uptime| uptime.to_string())
            .unwrap_or_default();
        let last_exit = service.last_exit.as_deref().unwrap_or("-");
        println!(
            "{:<16} {:<12} {:>8} {:>10} {:>8}  {last_exit}",
            service.name, state, pid, uptime, service.restarts
        );
        if let Some(detail) = &service.detail {
            println!("{:<16} {detail}", "");
        }
    }
    println!("browser: {}", status.browser.mode);
    if let Some(url) = &status.browser.view_url {
        println!("  watch:    {url}");
    }
    if let Some(url) = &status.browser.cdp_url {
        println!("  devtools: {url}");
    }
    if let Some(image) = &status.agent_image {
        println!("agent image: {image}");
    }
    if let Some(forge) = &status.forge {
        println!("forge: {forge}");
    }
}

/// The forge the container runs: its admin signs in with `ADMIN_PASSWORD`
/// (or the stored or a generated password), made first with Gitea's CLI.
fn internal_forge(args: &AioArgs, platform: &Platform, webhook_url: String) -> ForgeConfig {
    let serve = &args.serve;
    ForgeConfig {
        url: format!("http://127.0.0.1:{FORGE_PORT}"),
        admin: ForgeAdmin::Password {
            user: serve.admin_user.clone(),
            password: serve.admin_password.clone().map(Secret::new),
            first_admin: Some(Arc::new(GiteaCli::of(platform))),
        },
        bot_user: serve.bot_user.clone(),
        org: serve.org_name.clone(),
        webhook_url,
        options: SetupOptions {
            ready_timeout: FORGE_READY_TIMEOUT,
            ..SetupOptions::default()
        },
        log: Some(args.log_dir.join("gitea.log")),
    }
}

/// Where the browser is, from the arguments.
fn browser_info(args: &AioArgs) -> BrowserInfo {
    match &args.chrome_cdp_url {
        Some(cdp) => BrowserInfo {
            mode: "external".to_owned(),
            view_url: Some(args.browser_view_url.clone().unwrap_or_else(|| cdp.clone())),
            cdp_url: Some(cdp.clone()),
        },
        None => {
            let host = args
                .browser_host
                .clone()
                .unwrap_or_else(|| args.serve.domain.clone());
            BrowserInfo {
                mode: "internal".to_owned(),
                view_url: Some(args.browser_view_url.clone().unwrap_or_else(|| {
                    format!("http://{host}:{NOVNC_PORT}/vnc.html?autoconnect=true&resize=scale")
                })),
                cdp_url: Some(format!("http://{host}:{RELAY_PORT}")),
            }
        }
    }
}

/// What agents and services get in their environment about the browser.
fn browser_env(browser: &BrowserInfo) -> BTreeMap<String, String> {
    let mut env = BTreeMap::from([("BROWSER_MODE".to_owned(), browser.mode.clone())]);
    if let Some(url) = &browser.view_url {
        env.insert("BROWSER_VIEW_URL".to_owned(), url.clone());
    }
    if let Some(url) = &browser.cdp_url {
        env.insert("BROWSER_CDP_URL".to_owned(), url.clone());
    }
    env
}

/// The report `/api/aio` and `/health` give: the daemon itself, then the
/// supervised services.
#[derive(Debug)]
struct ContainerStatus {
    services: StatusHandle,
    started: Instant,
    browser: BrowserInfo,
    agent_image: Arc<Mutex<Option<String>>>,
    forge: Arc<Mutex<Option<String>>>,
}

impl PlatformStatus for ContainerStatus {
    fn report(&self) -> PlatformReport {
        let daemon = PlatformService {
            name: "yard".to_owned(),
            state: "running".to_owned(),
            pid: Some(std::process::id()),
            uptime: Some(self.started.elapsed()),
            restarts: 0,
            last_exit: None,
            ready: true,
            detail: None,
        };
        let supervised = self
            .services
            .status()
            .into_iter()
            .map(|service| PlatformService {
                name: service.name,
                state: service.state.to_string(),
                pid: service.pid,
                uptime: service.uptime,
                restarts: service.restarts,
                last_exit: service.last_exit.map(|exit| exit.to_string()),
                ready: service.ready,
                detail: service.detail,
            });
        PlatformReport {
            services: std::iter::once(daemon).chain(supervised).collect(),
            browser: self.browser.clone(),
            agent_image: self
                .agent_image
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
            forge: self
                .forge
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        }
    }
}
