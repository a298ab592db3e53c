//! `yard doctor`: checks what `yard serve` depends on and says exactly what
//! is wrong and how to fix it. It reads the same flags and variables as
//! `serve`, so it checks the configuration that would run.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::ExitCode;

use yard_engine::{AgentRuntime, DockerConfig, DockerEngine, Engine};
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
    let mut docker = DockerConfig::new(setup.instance.clone());
    docker.extra_labels = args.labels.iter().cloned().collect();
    match DockerEngine::connect(docker) {
        Err(e) => findings.push(fail(
            format!("engine: {e}"),
            "start Docker, or set DOCKER_HOST",
        )),
        Ok(engine) => {
            findings.push(match engine.ping().await {
                Ok(()) => ok(format!(
                    "engine: docker {}",
                    engine.version().await.unwrap_or_default()
                )),
                Err(e) => fail(
                    format!("engine: {e}"),
                    "start Docker (systemctl start docker), or set DOCKER_HOST",
                ),
            });
            for (what, image, variable) in [
                ("stack image", &args.stack_image, "YARD_STACK_IMAGE"),
                ("agent image", &args.agent_image, "YARD_AGENT_IMAGE"),
            ] {
                findings.push(match engine.image_exists(image).await {
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
        }
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
