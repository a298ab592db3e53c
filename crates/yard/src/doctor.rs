//! `yard doctor`: checks what `yard serve` depends on and says exactly what
//! is wrong and how to fix it. It reads the same flags and variables as
//! `serve`, so it checks the configuration that would run.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::ExitCode;

use yard_engine::{AgentRuntime, Backend, BackendKind, Engine};
use yard_services::PolicyWatch;
use yard_store::{Store, redact};

use crate::cli::ServeArgs;
use crate::serve::Setup;

/// The outcome of one check.
enum Finding {
    Ok(String),
    Warn { problem: String, fix: String },
    Fail { problem: String, fix: String },
}

fn ok(message: impl Into<String>) -> Finding {
    Finding::Ok(message.into())
}

fn warn(problem: impl Into<String>, fix: impl Into<String>) -> Finding {
    Finding::Warn {
        problem: problem.into(),
        fix: fix.into(),
    }
}

fn fail(problem: impl Into<String>, fix: impl Into<String>) -> Finding {
    Finding::Fail {
        problem: problem.into(),
        fix: fix.into(),
    }
}

pub(crate) async fn run(args: &ServeArgs) -> anyhow::Result<ExitCode> {
    let setup = Setup::from_args(args)?;
    let mut findings = vec![
        data_dir(setup.data_dir.path()),
        admin_token(&setup.data_dir.admin_token_path()),
        store(&setup.database_url).await,
        policy(&setup.policy, args.policy_required),
        git().await,
    ];
    match crate::serve::backend_config(args, &setup).map(|config| Backend::connect(&config)) {
        Err(e) => findings.push(fail(
            format!("backend: {e}"),
            "set YARD_BACKEND to docker, swarm or dokploy",
        )),
        Ok(Err(e)) => findings.push(fail(format!("backend: {e}"), "fix the backend's settings")),
        Ok(Ok(backend)) => findings.extend(backend_findings(args, &backend).await),
    }
    findings.push(socket(&setup.socket).await);

    let mut failed = false;
    for finding in &findings {
        match finding {
            Finding::Ok(message) => println!("ok    {message}"),
            Finding::Warn { problem, fix } => println!("warn  {problem}\n      fix: {fix}"),
            Finding::Fail { problem, fix } => {
                failed = true;
                println!("FAIL  {problem}\n      fix: {fix}");
            }
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn data_dir(path: &Path) -> Finding {
    match std::fs::metadata(path) {
        Ok(meta) if meta.permissions().mode() & 0o077 != 0 => warn(
            format!(
                "data dir: {} can be read by others (mode {:o})",
                path.display(),
                meta.permissions().mode() & 0o777
            ),
            format!("chmod 700 {}", path.display()),
        ),
        Ok(_) => ok(format!("data dir: {}", path.display())),
        Err(e) => fail(
            format!("data dir: {}: {e}", path.display()),
            "set YARD_DATA_DIR to a writable directory",
        ),
    }
}

fn admin_token(path: &Path) -> Finding {
    match std::fs::metadata(path) {
        Ok(meta) if meta.permissions().mode() & 0o077 != 0 => fail(
            format!("admin token: {} can be read by others", path.display()),
            format!("chmod 600 {}", path.display()),
        ),
        Ok(_) => ok(format!("admin token: {}", path.display())),
        Err(_) => warn(
            format!("admin token: none at {}", path.display()),
            "`yard serve` writes one on its first start",
        ),
    }
}

async fn store(url: &str) -> Finding {
    match Store::open(url).await {
        Ok(store) => {
            let backend = format!("{:?}", store.backend()).to_lowercase();
            store.close().await;
            ok(format!("store: {backend} at {}", redact(url)))
        }
        Err(e) => fail(
            format!("store: {e}"),
            "check YARD_DATABASE_URL, or that PostgreSQL is running and the user may connect",
        ),
    }
}

fn policy(path: &Path, required: bool) -> Finding {
    match PolicyWatch::load(path.to_owned(), required) {
        Ok(watch) if watch.status().from_file => ok(format!(
            "policy: {} ({} rules)",
            path.display(),
            watch.status().rules
        )),
        Ok(_) => ok(format!(
            "policy: built-in (allow; ask falls back to deny); write {} to change it",
            path.display()
        )),
        Err(e) => fail(
            format!("policy: {e}"),
            "fix the file; `yard serve` will not start with it",
        ),
    }
}

async fn git() -> Finding {
    match tokio::process::Command::new("git")
        .arg("--version")
        .output()
        .await
    {
        Ok(out) if out.status.success() => {
            ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
        }
        _ => fail(
            "git: not found",
            "install git (apt-get install git); agents' checkouts need it",
        ),
    }
}

async fn socket(path: &Path) -> Finding {
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(_) => {
            return warn(
                format!(
                    "control socket: none at {} (the daemon is not running)",
                    path.display()
                ),
                "start it with `yard serve`",
            );
        }
    };
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o007 != 0 {
        return fail(
            format!(
                "control socket: {} is open to everyone (mode {mode:o})",
                path.display()
            ),
            format!("chmod 660 {}", path.display()),
        );
    }
    match tokio::net::UnixStream::connect(path).await {
        Ok(_) => ok(format!(
            "control socket: {} (mode {mode:o}), daemon answering",
            path.display()
        )),
        Err(e) => fail(
            format!("control socket: {} does not answer ({e})", path.display()),
            "a yard died without cleaning up: start `yard serve` again (it replaces the stale socket)",
        ),
    }
}

/// The stacks' backend, and the local engine agents run on.
async fn backend_findings(args: &ServeArgs, backend: &Backend) -> Vec<Finding> {
    let mut findings = vec![match backend.stacks.ping().await {
        Ok(()) => ok(format!("stacks: the {} backend answers", backend.kind)),
        Err(e) => fail(
            format!("stacks: {e}"),
            match backend.kind {
                BackendKind::Docker => "start Docker (systemctl start docker), or set DOCKER_HOST",
                BackendKind::Swarm => {
                    "point DOCKER_HOST at a swarm manager, or run `docker swarm init`"
                }
                BackendKind::Dokploy => "check DOKPLOY_URL and DOKPLOY_API_KEY",
            },
        ),
    }];
    let local = match backend.local.ping().await {
        Ok(()) => ok(format!(
            "agents: on the local engine, docker {}{}",
            backend.local.version().await.unwrap_or_default(),
            if backend.kind == BackendKind::Docker {
                ""
            } else {
                " (agents' checkouts are local directories, so agents stay here whatever runs the stacks)"
            }
        )),
        Err(e) => fail(
            format!("agents: the local engine: {e}"),
            "start Docker (systemctl start docker), or set DOCKER_HOST",
        ),
    };
    findings.push(local);
    let mut images = vec![("agent image", &args.agent_image, "YARD_AGENT_IMAGE")];
    // Dokploy pulls the stack image itself; the others run local images.
    if backend.kind != BackendKind::Dokploy {
        images.insert(0, ("stack image", &args.stack_image, "YARD_STACK_IMAGE"));
    }
    for (what, image, variable) in images {
        findings.push(match backend.local.image_exists(image).await {
            Ok(true) => ok(format!("{what}: {image}")),
            Ok(false) => warn(
                format!("{what}: {image} is not on the engine"),
                format!("build it (see deploy/ in the repository) or set {variable}"),
            ),
            Err(_) => warn(
                format!("{what}: cannot check {image}"),
                "fix the engine first",
            ),
        });
    }
    findings
}
