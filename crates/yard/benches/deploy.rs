//! Benchmark: 20 stacks deployed concurrently through the API, against the
//! same containers made with plain `docker` commands, in the same run.
//!
//! Both sides make, per stack, a volume and a container with its port
//! published on loopback, on one network they share, and count a stack as
//! done when it answers HTTP. Prints the time per stack on each side, their ratio, and
//! the daemon's peak resident memory. Run with
//! `cargo bench -p yard --bench deploy`.

#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::process::Command;
use std::time::{Duration, Instant};

use yard_testkit::{Daemon, DaemonSetup, DockerSweep, TEST_LABEL, WEB_IMAGE, ensure_stack_images};

const STACKS: usize = 20;
const ROUNDS: usize = 3;

#[tokio::main]
async fn main() {
    ensure_stack_images().await;
    let mut ours = Vec::new();
    let mut baseline = Vec::new();
    let mut peak_kib = 0;
    for round in 1..=ROUNDS {
        let (elapsed, peak) = through_the_api().await;
        let plain = plain_docker().await;
        println!(
            "round {round}: yard {:>6.0} ms, docker {:>6.0} ms for {STACKS} stacks",
            elapsed.as_secs_f64() * 1e3,
            plain.as_secs_f64() * 1e3
        );
        ours.push(elapsed);
        baseline.push(plain);
        peak_kib = peak_kib.max(peak);
    }
    ours.sort();
    baseline.sort();
    let (ours, baseline) = (ours[ROUNDS / 2], baseline[ROUNDS / 2]);
    let per = |d: Duration| d.as_secs_f64() * 1e3 / STACKS as f64;
    println!();
    println!("{STACKS} stacks deployed concurrently, median of {ROUNDS} rounds");
    println!("  yard (API + SSE):        {:>7.1} ms per stack", per(ours));
    println!(
        "  plain docker commands:   {:>7.1} ms per stack",
        per(baseline)
    );
    println!(
        "  ratio yard / docker:     {:>7.2}",
        ours.as_secs_f64() / baseline.as_secs_f64()
    );
    println!(
        "  daemon peak RSS (VmHWM): {:>7.1} MiB",
        peak_kib as f64 / 1024.0
    );
}

/// Deploys `STACKS` stacks at once through a fresh daemon and waits for
/// every `complete` event. Returns the wall time and the daemon's peak RSS.
async fn through_the_api() -> (Duration, u64) {
    let daemon = Daemon::start(
        env!("CARGO_BIN_EXE_yard").as_ref(),
        DaemonSetup {
            stack_image: Some(WEB_IMAGE.to_owned()),
            env: vec![("RUST_LOG".into(), "warn".into())],
            ..DaemonSetup::default()
        },
    );
    let started = Instant::now();
    let deployments = (0..STACKS).map(|i| {
        let daemon = &daemon;
        async move {
            let id = daemon.api_deploy(&format!("bench{i}")).await;
            daemon.wait_complete(&id).await;
        }
    });
    futures::future::join_all(deployments).await;
    let elapsed = started.elapsed();
    let (_, peak) = daemon.memory_kib();
    (elapsed, peak)
}

/// The same stacks with `docker volume create` and `docker run` on one
/// network made first (as the yard's is), all at once, each waited for
/// until it answers HTTP.
async fn plain_docker() -> Duration {
    let sweep = DockerSweep::new();
    let label = format!("{TEST_LABEL}={}", sweep.id());
    let shared = format!("plain-{}", &sweep.id()[..8]);
    let made = Command::new("docker")
        .args(["network", "create", "--label", &label, &shared])
        .output()
        .unwrap();
    assert!(made.status.success(), "docker network create");
    let started = Instant::now();
    let stacks = (0..STACKS).map(|i| {
        let label = label.clone();
        let shared = shared.clone();
        async move {
            let name = format!("plain-{}-{i}", &label[label.len() - 8..]);
            let docker = |args: Vec<String>| {
                let output = Command::new("docker").args(&args).output().unwrap();
                assert!(
                    output.status.success(),
                    "docker {args:?}: {}",
                    String::from_utf8_lossy(&output.stderr)
                );
                String::from_utf8(output.stdout).unwrap()
            };
            let name2 = name.clone();
            let port = tokio::task::spawn_blocking(move || {
                let name = name2;
                docker(vec![
                    "volume".into(),
                    "create".into(),
                    "--label".into(),
                    label.clone(),
                    format!("{name}-data"),
                ]);
                docker(vec![
                    "run".into(),
                    "-d".into(),
                    "--name".into(),
                    name.clone(),
                    "--label".into(),
                    label.clone(),
                    "--network".into(),
                    shared,
                    "-v".into(),
                    format!("{name}-data:/data"),
                    "-p".into(),
                    "127.0.0.1::8080".into(),
                    "-e".into(),
                    format!("YARD_STACK_NAME={name}"),
                    "--restart".into(),
                    "unless-stopped".into(),
                    WEB_IMAGE.into(),
                ]);
                docker(vec!["port".into(), name.clone(), "8080".into()])
            })
            .await
            .unwrap();
            let addr = port.lines().next().unwrap().trim().to_owned();
            let http = yard_testkit::http();
            while http.get(format!("http://{addr}/")).send().await.is_err() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    });
    futures::future::join_all(stacks).await;
    let elapsed = started.elapsed();
    sweep.sweep().await;
    elapsed
}
