//! Benchmark: one yard with hundreds of stacks on one engine.
//!
//! Deploys 200 stacks through the API, 20 at a time, against the same
//! number of containers made with plain `docker run` (20 at a time, on one
//! shared network, each waited for until it answers), in the same run.
//! Measures `GET /api/stacks` and a request through the host router with
//! 1 stack and with 200, from 8 clients at once, and the daemon's peak
//! resident memory. Run with `cargo bench -p yard --bench scale`.

#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::process::Command;
use std::time::{Duration, Instant};

use futures::StreamExt;
use yard_testkit::{Daemon, DaemonSetup, DockerSweep, TEST_LABEL, WEB_IMAGE, ensure_stack_images};

const STACKS: usize = 200;
const BATCH: usize = 20;
const CLIENTS: usize = 8;
const RUN: Duration = Duration::from_secs(3);

#[tokio::main]
async fn main() {
    ensure_stack_images().await;
    let daemon = Daemon::start(
        env!("CARGO_BIN_EXE_yard").as_ref(),
        DaemonSetup {
            stack_image: Some(WEB_IMAGE.to_owned()),
            env: vec![("RUST_LOG".into(), "warn".into())],
            ..DaemonSetup::default()
        },
    );
    let names: Vec<String> = (0..STACKS).map(|i| format!("scale-{i:03}")).collect();
    deploy(&daemon, &names[..1]).await;
    let list_at_1 = load(&daemon, "/api/stacks", None).await;
    let route_at_1 = load(&daemon, "/", Some(&names[0])).await;

    let started = Instant::now();
    for batch in names[1..].chunks(BATCH) {
        deploy(&daemon, batch).await;
    }
    let ours = started.elapsed();
    let listed = daemon.api_get("/api/stacks").await;
    assert_eq!(listed["stacks"].as_array().unwrap().len(), STACKS);
    let list_at_n = load(&daemon, "/api/stacks", None).await;
    let route_at_n = load(&daemon, "/", Some(&names[STACKS - 1])).await;
    let peak = peak_rss_kib(daemon.pid().unwrap());
    drop(daemon);

    let plain = plain_docker(STACKS - 1).await;
    let per = |d: Duration, n: usize| d.as_secs_f64() * 1e3 / n as f64;
    println!("{STACKS} stacks on one engine, {BATCH} deployed at a time");
    println!(
        "  yard (API, until each answers):  {:>7.1} ms per stack",
        per(ours, STACKS - 1)
    );
    println!(
        "  plain docker run (shared net):   {:>7.1} ms per container",
        per(plain, STACKS - 1)
    );
    println!(
        "  ratio yard / docker:             {:>7.2}",
        ours.as_secs_f64() / plain.as_secs_f64()
    );
    println!(
        "  daemon peak RSS (VmHWM):         {:>7.1} MiB",
        peak as f64 / 1024.0
    );
    println!("\n{CLIENTS} clients for {}s each, p50 / p99", RUN.as_secs());
    for (what, one, many) in [
        ("GET /api/stacks", &list_at_1, &list_at_n),
        ("router request ", &route_at_1, &route_at_n),
    ] {
        println!(
            "  {what}  at 1: {:>6.2} / {:>6.2} ms ({:>6.0}/s)   at {STACKS}: {:>6.2} / {:>6.2} ms ({:>6.0}/s)   p50 ratio {:.2}",
            ms(one.p50),
            ms(one.p99),
            one.per_second,
            ms(many.p50),
            ms(many.p99),
            many.per_second,
            many.p50.as_secs_f64() / one.p50.as_secs_f64()
        );
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Deploys `names` at once through the API and waits for each `complete`.
async fn deploy(daemon: &Daemon, names: &[String]) {
    let ids: Vec<String> =
        futures::future::join_all(names.iter().map(|n| daemon.api_deploy(n))).await;
    futures::future::join_all(ids.iter().map(|id| async move {
        let stream = yard_testkit::http()
            .get(format!("{}/api/status/{id}", daemon.url()))
            .bearer_auth(daemon.token())
            .send()
            .await
            .unwrap()
            .bytes_stream();
        let body: Vec<u8> = stream.map(|chunk| chunk.unwrap().to_vec()).concat().await;
        let body = String::from_utf8(body).unwrap();
        assert!(body.contains("event: complete"), "{body}");
    }))
    .await;
}

struct Load {
    per_second: f64,
    p50: Duration,
    p99: Duration,
}

/// `CLIENTS` clients sending `GET path` back to back for `RUN`: with the
/// admin token, or to stack `stack`'s address.
async fn load(daemon: &Daemon, path: &str, stack: Option<&str>) -> Load {
    let client = yard_testkit::http();
    let deadline = Instant::now() + RUN;
    let url = format!("{}{path}", daemon.url());
    let host = stack.map(|s| format!("{s}.localhost:{}", daemon.port()));
    let token = daemon.token();
    let workers = (0..CLIENTS).map(|_| {
        let (client, url, host, token) = (client.clone(), url.clone(), host.clone(), token.clone());
        tokio::spawn(async move {
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                let started = Instant::now();
                let request = match &host {
                    Some(host) => client.get(&url).header("host", host),
                    None => client.get(&url).bearer_auth(&token),
                };
                let response = request.send().await.unwrap();
                assert_eq!(response.status(), 200);
                response.bytes().await.unwrap();
                latencies.push(started.elapsed());
            }
            latencies
        })
    });
    let mut latencies: Vec<Duration> = futures::future::join_all(workers)
        .await
        .into_iter()
        .flat_map(Result::unwrap)
        .collect();
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    Load {
        per_second: latencies.len() as f64 / RUN.as_secs_f64(),
        p50: at(0.50),
        p99: at(0.99),
    }
}

fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// `count` containers of the stack image with `docker volume create` and
/// `docker run` on one shared network, `BATCH` at a time, each waited for
/// until it answers HTTP.
async fn plain_docker(count: usize) -> Duration {
    let sweep = DockerSweep::new();
    let label = format!("{TEST_LABEL}={}", sweep.id());
    let network = format!("plain-scale-{}", &sweep.id()[..8]);
    run_docker(&["network", "create", "--label", &label, &network]);
    let started = Instant::now();
    let indexes: Vec<usize> = (0..count).collect();
    for batch in indexes.chunks(BATCH) {
        futures::future::join_all(batch.iter().map(|i| {
            let (label, network) = (label.clone(), network.clone());
            async move {
                let name = format!("{network}-{i}");
                let port = tokio::task::spawn_blocking(move || {
                    let volume = format!("{name}-data");
                    run_docker(&["volume", "create", "--label", &label, &volume]);
                    run_docker(&[
                        "run",
                        "-d",
                        "--name",
                        &name,
                        "--label",
                        &label,
                        "--network",
                        &network,
                        "-v",
                        &format!("{volume}:/data"),
                        "-p",
                        "127.0.0.1::8080",
                        "-e",
                        &format!("YARD_STACK_NAME={name}"),
                        WEB_IMAGE,
                    ]);
                    run_docker(&["port", &name, "8080"])
                })
                .await
                .unwrap();
                let addr = port.lines().next().unwrap().trim().to_owned();
                let http = yard_testkit::http();
                while http.get(format!("http://{addr}/")).send().await.is_err() {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }))
        .await;
    }
    let elapsed = started.elapsed();
    sweep.sweep().await;
    elapsed
}

fn run_docker(args: &[&str]) -> String {
    let output = Command::new("docker").args(args).output().unwrap();
    assert!(
        output.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}
