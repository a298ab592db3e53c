//! The real `yard serve` process under test.
//!
//! Each daemon gets its own data directory (so its own store, admin token
//! and instance id), listens on an ephemeral loopback port, and labels what
//! it creates with its own test label. Dropping it kills the process and
//! sweeps its Docker resources; a failed test prints the daemon's log.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::DockerSweep;

/// How to start a daemon under test.
#[derive(Debug, Clone, Default)]
pub struct DaemonSetup {
    /// `YARD_STACK_IMAGE`.
    pub stack_image: Option<String>,
    /// `YARD_DATABASE_URL`; `None` keeps the default SQLite store.
    pub database_url: Option<String>,
    /// More environment for the daemon.
    pub env: Vec<(String, String)>,
    /// Files written into the data directory before the first start, e.g.
    /// `policy.toml`.
    pub files: Vec<(String, String)>,
}

/// A running (or stopped) `yard serve`.
#[derive(Debug)]
pub struct Daemon {
    bin: PathBuf,
    setup: DaemonSetup,
    child: Option<Child>,
    addr: String,
    /// `YARD_LISTEN` for the next launch.
    listen: String,
    // Dropped after the process is killed, so nothing it made outlives it.
    sweep: DockerSweep,
    data_dir: tempfile::TempDir,
}

impl Daemon {
    /// Starts `bin serve` and waits until it listens.
    pub fn start(bin: &Path, setup: DaemonSetup) -> Self {
        let data_dir = tempfile::Builder::new()
            .prefix("yard-test-")
            .tempdir()
            .expect("a data dir");
        for (name, contents) in &setup.files {
            std::fs::write(data_dir.path().join(name), contents).expect("a data dir file");
        }
        let mut daemon = Self {
            bin: bin.to_owned(),
            setup,
            child: None,
            addr: String::new(),
            listen: "127.0.0.1:0".to_owned(),
            sweep: DockerSweep::new(),
            data_dir,
        };
        daemon.launch();
        daemon
    }

    fn launch(&mut self) {
        let addr_file = self.data_dir.path().join("listen-addr");
        let _ = std::fs::remove_file(&addr_file);
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("daemon log");
        let mut cmd = Command::new(&self.bin);
        cmd.arg("serve")
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("YARD_DATA_DIR", self.data_dir.path())
            .env("YARD_LISTEN", &self.listen)
            .env("YARD_LABELS", self.sweep.label())
            .env("RUST_LOG", "info,yard=debug")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log);
        if let Ok(host) = std::env::var("DOCKER_HOST") {
            cmd.env("DOCKER_HOST", host);
        }
        if let Some(image) = &self.setup.stack_image {
            cmd.env("YARD_STACK_IMAGE", image);
        }
        if let Some(url) = &self.setup.database_url {
            cmd.env("YARD_DATABASE_URL", url);
        }
        cmd.envs(self.setup.env.iter().map(|(k, v)| (k, v)));
        self.child = Some(cmd.spawn().expect("spawning yard serve"));
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(addr) = std::fs::read_to_string(&addr_file)
                && !addr.trim().is_empty()
            {
                self.addr = addr.trim().to_owned();
                return;
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("yard serve exited with {status}:\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "yard serve did not listen within 30s:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The daemon's base URL, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.addr
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse().ok())
            .expect("a port")
    }

    pub fn data_dir(&self) -> &Path {
        self.data_dir.path()
    }

    /// The admin token the daemon wrote on first start.
    pub fn token(&self) -> String {
        std::fs::read_to_string(self.data_dir.path().join("admin-token"))
            .expect("admin-token")
            .trim()
            .to_owned()
    }

    /// This daemon's Docker label guard.
    pub fn sweep(&self) -> &DockerSweep {
        &self.sweep
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    fn log_path(&self) -> PathBuf {
        self.data_dir.path().join("daemon.log")
    }

    /// Everything the daemon printed so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// SIGKILL: no clean-up of any kind, as in a crash.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then waits up to `within` for the exit.
    pub fn terminate(&mut self, within: Duration) -> ExitStatus {
        let mut child = self.child.take().expect("a running daemon");
        let pid = Pid::from_raw(i32::try_from(child.id()).expect("pid"));
        kill(pid, Signal::SIGTERM).expect("SIGTERM");
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!(
                    "yard serve did not exit within {within:?} of SIGTERM:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts the daemon again on the same data directory.
    pub fn restart(&mut self) {
        self.kill();
        self.launch();
    }

    /// Starts a killed daemon again on the same data directory and the
    /// same address, so clients that were connected can reconnect.
    pub fn start_again_at_same_address(&mut self) {
        self.kill();
        self.listen.clone_from(&self.addr);
        self.launch();
    }

    /// `GET path` on the API with the admin token, as JSON.
    pub async fn api_get(&self, path: &str) -> serde_json::Value {
        crate::http()
            .get(format!("{}{path}", self.url()))
            .bearer_auth(self.token())
            .send()
            .await
            .expect("the API answers")
            .json()
            .await
            .expect("a JSON answer")
    }

    /// Sets the forge up (`POST /api/forge/init` with the admin token);
    /// panics unless it answers 200.
    pub async fn api_forge_init(&self) {
        let init = crate::http()
            .post(format!("{}/api/forge/init", self.url()))
            .bearer_auth(self.token())
            .json(&serde_json::json!({}))
            .send()
            .await
            .expect("the API answers");
        let status = init.status();
        let body = init.text().await.unwrap_or_default();
        assert_eq!(status, 200, "the forge's set-up: {body}");
    }

    /// Starts deploying `name` through the API; returns the deployment id.
    pub async fn api_deploy(&self, name: &str) -> String {
        let accepted = crate::http()
            .post(format!("{}/api/deploy", self.url()))
            .bearer_auth(self.token())
            .json(&serde_json::json!({ "name": name }))
            .send()
            .await
            .expect("the API answers")
            .json::<serde_json::Value>()
            .await
            .expect("a JSON answer");
        accepted["deploymentId"]
            .as_str()
            .unwrap_or_else(|| panic!("no deployment for {name}: {accepted}"))
            .to_owned()
    }

    /// Waits until deployment `id` has ended, through its progress stream;
    /// panics unless it completed.
    pub async fn wait_complete(&self, id: &str) {
        let body = crate::http()
            .get(format!("{}/api/status/{id}", self.url()))
            .bearer_auth(self.token())
            .timeout(Duration::from_secs(120))
            .send()
            .await
            .expect("the API answers")
            .text()
            .await
            .expect("the whole stream");
        assert!(body.contains("event: complete"), "{body}");
    }

    /// The daemon's resident memory now (`VmRSS`) and at its peak
    /// (`VmHWM`), in KiB.
    pub fn memory_kib(&self) -> (u64, u64) {
        let status = self
            .pid()
            .and_then(|pid| std::fs::read_to_string(format!("/proc/{pid}/status")).ok())
            .unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(name))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                .unwrap_or(0)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    /// Runs `yard ARGS` as a client of this daemon.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(&self.bin)
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("YARD_URL", self.url())
            .env("YARD_DATA_DIR", self.data_dir.path())
            .env("NO_COLOR", "1")
            .output()
            .expect("running the yard CLI")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!(
                "--- yard serve log ({}) ---\n{}",
                self.data_dir.path().display(),
                self.log()
            );
        }
    }
}
