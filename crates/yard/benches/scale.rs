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

use yard_testkit::{
    Daemon, DaemonSetup, DockerSweep, Load, TEST_LABEL, WEB_IMAGE, ensure_stack_images, load,
};

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
    let list_at_1 = measure(&daemon, "/api/stacks", None).await;
    let route_at_1 = measure(&daemon, "/", Some(&names[0])).await;

    let started = Instant::now();
    for batch in names[1..].chunks(BATCH) {
        deploy(&daemon, batch).await;
    }
    let ours = started.elapsed();
    let listed = daemon.api_get("/api/stacks").await;
    assert_eq!(listed["stacks"].as_array().unwrap().len(), STACKS);
    let list_at_n = measure(&daemon, "/api/stacks", None).await;
    let route_at_n = measure(&daemon, "/", Some(&names[STACKS - 1])).await;
    let (_, peak) = daemon.memory_kib();
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
    let ids = futures::future::join_all(names.iter().map(|n| daemon.api_deploy(n))).await;
    futures::future::join_all(ids.iter().map(|id| daemon.wait_complete(id))).await;
}

/// `CLIENTS` clients sending `GET path` back to back for `RUN`: with the
/// admin token, or to stack `stack`'s address.
async fn measure(daemon: &Daemon, path: &str, stack: Option<&str>) -> Load {
    let url = format!("{}{path}", daemon.url());
    let host = stack.map(|s| format!("{s}.localhost:{}", daemon.port()));
    let token = daemon.token();
    load(CLIENTS, RUN, move |client| match &host {
        Some(host) => client.get(&url).header("host", host),
        None => client.get(&url).bearer_auth(&token),
    })
    .await
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
