//! Benchmark: how long `yard aio` takes from start to `/health` healthy.
//!
//! Three ways, in the same run, each started fresh (a new data directory)
//! several times, median and worst printed:
//! - `yard serve`, the baseline: the daemon alone;
//! - `yard aio` with the forge and the browser external (`GITEA_URL`,
//!   `CHROME_CDP_URL`): the daemon and the supervisor with nothing to run;
//!   goal ≤ 1 s;
//! - `yard aio` with the real browser stack (Xvfb, Chromium, x11vnc,
//!   websockify, the two relays) and the forge turned off; goal ≤ 5 s.
//!   Healthy here means every service runs and passed its ready check.
//!
//! Run with `cargo bench -p yard --bench aio` (it uses the fixed ports of
//! the browser stack: 9222, 9223, 5900, 6080, 6081 and display :99).

#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ROUNDS: usize = 5;

#[derive(Clone, Copy)]
enum Start {
    Serve,
    AioAlone,
    AioBrowser,
}

impl Start {
    fn label(self) -> &'static str {
        match self {
            Self::Serve => "yard serve (baseline)",
            Self::AioAlone => "yard aio, forge and browser external",
            Self::AioBrowser => "yard aio, with the browser stack",
        }
    }
}

fn main() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let http = runtime.block_on(async { yard_testkit::http() });
    println!("time from start to /health healthy, {ROUNDS} fresh starts each");
    println!(
        "{:<40} {:>10} {:>10} {:>10}",
        "", "median", "worst", "÷ serve"
    );
    let mut baseline = None;
    for start in [Start::Serve, Start::AioAlone, Start::AioBrowser] {
        let mut times: Vec<Duration> = (0..ROUNDS)
            .map(|_| runtime.block_on(time_to_healthy(start, &http)))
            .collect();
        times.sort();
        let median = times[ROUNDS / 2];
        let worst = times[ROUNDS - 1];
        let base = *baseline.get_or_insert(median);
        println!(
            "{:<40} {:>8.0}ms {:>8.0}ms {:>9.2}×",
            start.label(),
            median.as_secs_f64() * 1000.0,
            worst.as_secs_f64() * 1000.0,
            median.as_secs_f64() / base.as_secs_f64()
        );
    }
}

/// Kills the started process's whole tree on drop.
struct Started(Child);

impl Drop for Started {
    fn drop(&mut self) {
        let pid = self.0.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if self.0.try_wait().unwrap().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn time_to_healthy(start: Start, http: &reqwest::Client) -> Duration {
    let temp = tempfile::tempdir().unwrap();
    let data = temp.path().join("data");
    let _ = std::fs::remove_file("/tmp/.X99-lock");
    let mut command = Command::new(env!("CARGO_BIN_EXE_yard"));
    command
        .env("YARD_DATA_DIR", &data)
        .env("YARD_LISTEN", "127.0.0.1:0")
        .env("YARD_LABELS", "yard-test=aio-bench")
        .env("YARD_AIO_LOG_DIR", temp.path().join("logs"))
        .env("YARD_AGENT_CONTEXT", temp.path().join("none"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    match start {
        Start::Serve => {
            command.arg("serve");
        }
        Start::AioAlone => {
            command
                .arg("aio")
                .env("GITEA_URL", "http://127.0.0.1:9")
                .env("CHROME_CDP_URL", "http://127.0.0.1:9");
        }
        Start::AioBrowser => {
            let config = temp.path().join("aio.toml");
            std::fs::write(&config, "[services.gitea]\nenabled = false\n").unwrap();
            command.arg("aio").env("YARD_AIO_CONFIG", &config);
        }
    }
    let started = Instant::now();
    let _process = Started(command.spawn().unwrap());
    let base = listen_address(&data).await;
    loop {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{} never became healthy",
            start.label()
        );
        if let Ok(answer) = http.get(format!("{base}/health")).send().await
            && let Ok(body) = answer.json::<serde_json::Value>().await
            && body["status"] == "healthy"
        {
            return started.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The daemon's URL, once it has written where it listens.
async fn listen_address(data: &Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(addr) = std::fs::read_to_string(data.join("listen-addr"))
            && !addr.trim().is_empty()
        {
            return format!("http://{}", addr.trim());
        }
        assert!(Instant::now() < deadline, "the daemon never listened");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}
