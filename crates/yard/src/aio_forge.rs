//! The forge `yard aio` runs itself: its `app.ini`, written before it
//! starts, and its first site admin, made with Gitea's own CLI.
//!
//! Gitea's API cannot be used until an admin exists, and only the forge's
//! CLI (run as the forge's user, on its work directory and `app.ini`) can
//! make the first one. That is process spawning, which the services do
//! not do: [`GiteaCli`] is the binary's [`FirstAdmin`], handed to the
//! `Forge` service inside its configuration, so `Forge::init` (at first
//! boot and on `yard forge init`) makes or updates the admin just before
//! it signs in. The password goes to the CLI as an argument (the CLI has
//! no other way to take it) and never to a log line or an error: what the
//! CLI prints is cleaned of it.

use std::fmt::Write as _;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use yard_aio::{FORGE_PORT, Platform, SystemUser};
use yard_forge::{AppIni, Database, FileOwner, IniSecrets, load_ini_secrets, render_app_ini};
use yard_services::{FirstAdmin, Secret};

/// How long one run of Gitea's CLI may take.
const CLI_TIMEOUT: Duration = Duration::from_secs(120);
/// How much of the CLI's output an error keeps.
const OUTPUT_KEPT: usize = 600;

/// What the forge's `app.ini` is made from: SQLite under its work
/// directory, listening on `bind`, known to people as
/// `http://<host>:3001/`, sending webhooks only to the yard's host.
pub(crate) fn app_ini(
    work_dir: &Path,
    run_user: Option<&str>,
    bind: &str,
    host: &str,
    webhook_url: &str,
    secrets: IniSecrets,
) -> AppIni {
    AppIni {
        work_dir: work_dir.to_owned(),
        run_user: run_user.map(str::to_owned),
        database: Database::Sqlite,
        http_addr: bind.to_owned(),
        http_port: FORGE_PORT,
        root_url: format!("http://{host}:{FORGE_PORT}/"),
        webhook_url: webhook_url.to_owned(),
        trusted_proxies: Vec::new(),
        secrets,
    }
}

/// Writes the forge's `app.ini` where `gitea web --config` reads it,
/// keeping Gitea's own secrets from the file already there, owned by the
/// forge's user when the image has one.
pub(crate) fn write_app_ini(
    platform: &Platform,
    host: &str,
    webhook_url: &str,
) -> anyhow::Result<PathBuf> {
    let path = platform.forge_config_path();
    let secrets = load_ini_secrets(&path)?;
    let user = platform.forge_user();
    let ini = app_ini(
        &platform.forge_dir(),
        user.as_ref().map(|u| u.name.as_str()),
        &platform.bind.to_string(),
        host,
        webhook_url,
        secrets,
    );
    let text = render_app_ini(&ini).context("cannot make the forge's app.ini")?;
    let owner = user.map(|u| FileOwner {
        uid: u.uid,
        gid: u.gid,
    });
    yard_forge::write_app_ini(&path, &text, owner).context("cannot write the forge's app.ini")?;
    tracing::info!(path = %path.display(), root_url = %ini.root_url, webhook_host = %yard_forge::allowed_webhook_host(webhook_url).unwrap_or_default(), "wrote the forge's app.ini");
    Ok(path)
}

/// Gitea's CLI, run on the forge's work directory and `app.ini` as the
/// forge's user.
#[derive(Debug, Clone)]
pub(crate) struct GiteaCli {
    /// The `gitea` binary.
    pub(crate) program: PathBuf,
    pub(crate) work_dir: PathBuf,
    pub(crate) config: PathBuf,
    pub(crate) user: Option<SystemUser>,
}

impl GiteaCli {
    /// The forge of `platform`, with the `gitea` on the path.
    pub(crate) fn of(platform: &Platform) -> Self {
        Self {
            program: PathBuf::from("gitea"),
            work_dir: platform.forge_dir(),
            config: platform.forge_config_path(),
            user: platform.forge_user(),
        }
    }

    /// Runs `gitea admin user <args> --config <app.ini>`; what it printed,
    /// cleaned of `password`, on failure.
    async fn admin_user(&self, args: &[&str], password: &Secret) -> Result<(), String> {
        let mut command = tokio::process::Command::new(&self.program);
        command
            .args(["admin", "user"])
            .args(args)
            .arg("--config")
            .arg(&self.config)
            .env("GITEA_WORK_DIR", &self.work_dir)
            .env("HOME", &self.work_dir)
            .current_dir(&self.work_dir)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        if let Some(user) = &self.user {
            // Only a process running as someone else may (and must) switch.
            let me = std::fs::metadata("/proc/self").map(|m| m.uid()).ok();
            if me != Some(user.uid) {
                command.uid(user.uid).gid(user.gid);
            }
        }
        let what = format!("gitea admin user {}", args[0]);
        let output = tokio::time::timeout(CLI_TIMEOUT, command.output())
            .await
            .map_err(|_| format!("{what} did not finish within {}s", CLI_TIMEOUT.as_secs()))?
            .map_err(|e| format!("cannot run {}: {e}", self.program.display()))?;
        if output.status.success() {
            return Ok(());
        }
        let mut said = String::from_utf8_lossy(&output.stderr).into_owned();
        let _ = write!(said, " {}", String::from_utf8_lossy(&output.stdout));
        let said = said.replace(password.expose(), "[redacted]");
        let said: String = said.trim().chars().take(OUTPUT_KEPT).collect();
        Err(format!("{what} failed ({}): {said}", output.status))
    }
}

impl FirstAdmin for GiteaCli {
    fn ensure<'a>(
        &'a self,
        user: &'a str,
        password: &'a Secret,
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>> {
        Box::pin(async move {
            let email = format!("{user}@localhost");
            let created = self
                .admin_user(
                    &[
                        "create",
                        "--admin",
                        "--username",
                        user,
                        "--password",
                        password.expose(),
                        "--email",
                        &email,
                        "--must-change-password=false",
                    ],
                    password,
                )
                .await;
            match created {
                Ok(()) => {
                    tracing::info!(admin = %user, "made the forge's first admin");
                    Ok(())
                }
                Err(why) if why.contains("already exists") => {
                    self.admin_user(
                        &[
                            "change-password",
                            "--username",
                            user,
                            "--password",
                            password.expose(),
                            "--must-change-password=false",
                        ],
                        password,
                    )
                    .await?;
                    tracing::info!(admin = %user, "the forge's admin exists; set its password to the yard's");
                    Ok(())
                }
                Err(why) => Err(why),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::os::unix::fs::PermissionsExt;

    use super::*;

    const WEBHOOK: &str = "http://yard.example.com:8080/webhook/gitea";

    #[test]
    fn the_app_ini_is_sqlite_locked_closed_and_sends_webhooks_only_to_the_yard() {
        let ini = app_ini(
            Path::new("/data/gitea"),
            Some("git"),
            "0.0.0.0",
            "forge.example.com",
            WEBHOOK,
            IniSecrets::generate(),
        );
        let text = render_app_ini(&ini).unwrap();
        for line in [
            "RUN_USER = git",
            "WORK_PATH = /data/gitea",
            "HTTP_ADDR = 0.0.0.0",
            "HTTP_PORT = 3001",
            "ROOT_URL = http://forge.example.com:3001/",
            "DB_TYPE = sqlite3",
            "PATH = /data/gitea/data/gitea.db",
            "INSTALL_LOCK = true",
            "DISABLE_REGISTRATION = true",
            "ALLOWED_HOST_LIST = yard.example.com",
            "ENABLE_REVERSE_PROXY_AUTHENTICATION = false",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in:\n{text}");
        }
        assert!(!text.contains("= *"), "nothing is open to all:\n{text}");
    }

    #[test]
    fn writing_keeps_giteas_secrets_and_the_file_private() {
        let dir = tempfile::tempdir().unwrap();
        let platform = Platform {
            yard_binary: PathBuf::from("/usr/local/bin/yard"),
            data_dir: dir.path().to_owned(),
            bind: std::net::IpAddr::from([127, 0, 0, 1]),
            forge: true,
            browser: false,
            env: Default::default(),
        };
        platform.prepare_directories().unwrap();
        let path = write_app_ini(&platform, "localhost", WEBHOOK).unwrap();
        assert_eq!(path, platform.forge_config_path());
        let first = std::fs::read_to_string(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        write_app_ini(&platform, "localhost", WEBHOOK).unwrap();
        let second = std::fs::read_to_string(&path).unwrap();
        let secret = |text: &str| {
            text.lines()
                .find(|l| l.starts_with("SECRET_KEY"))
                .unwrap()
                .to_owned()
        };
        assert_eq!(
            secret(&first),
            secret(&second),
            "Gitea's key survives a boot"
        );
        assert!(first.contains("ROOT_URL = http://localhost:3001/"));
    }

    /// A stand-in for `gitea` that records its arguments and says the
    /// user exists when asked to create it.
    fn fake_gitea(dir: &Path, create_answer: &str) -> GiteaCli {
        let program = dir.join("gitea");
        let log = dir.join("calls");
        std::fs::write(
            &program,
            format!(
                "#!/bin/sh\necho \"$GITEA_WORK_DIR $*\" >> {log}\ncase \"$3\" in\n  create) {create_answer} ;;\n  *) exit 0 ;;\nesac\n",
                log = log.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
        GiteaCli {
            program,
            work_dir: dir.to_owned(),
            config: dir.join("app.ini"),
            user: None,
        }
    }

    #[tokio::test]
    async fn an_admin_that_exists_gets_the_yards_password_and_errors_never_show_it() {
        let dir = tempfile::tempdir().unwrap();
        let password = Secret::new("s3cret-Passw0rd");
        let cli = fake_gitea(
            dir.path(),
            "echo \"CreateUser: user already exists [name: yard-admin]\" >&2; exit 1",
        );
        cli.ensure("yard-admin", &password).await.unwrap();
        let calls = std::fs::read_to_string(dir.path().join("calls")).unwrap();
        let calls: Vec<&str> = calls.lines().collect();
        assert_eq!(calls.len(), 2, "{calls:?}");
        let work = dir.path().display().to_string();
        assert!(
            calls[0].starts_with(&format!(
                "{work} admin user create --admin --username yard-admin"
            )),
            "{}",
            calls[0]
        );
        assert!(calls[0].contains("--must-change-password=false"));
        assert!(calls[0].ends_with(&format!("--config {work}/app.ini")));
        assert!(calls[1].contains("admin user change-password --username yard-admin"));
        assert!(calls[1].contains("--must-change-password=false"));

        let dir = tempfile::tempdir().unwrap();
        let cli = fake_gitea(
            dir.path(),
            "echo \"cannot open the database with password s3cret-Passw0rd\" >&2; exit 3",
        );
        let error = cli.ensure("yard-admin", &password).await.unwrap_err();
        assert!(error.contains("gitea admin user create failed"), "{error}");
        assert!(!error.contains("s3cret-Passw0rd"), "{error}");
        assert!(error.contains("[redacted]"), "{error}");
    }
}
