//! Benchmark: the portal's two hot paths.
//!
//! 1. The host router: requests per second and latency (p50, p99) of `GET /`
//!    on a stack through `NAME.localhost` (client → yard → container),
//!    against the same requests sent straight to the container's published
//!    port, in the same run, with the same client and concurrency.
//! 2. SSE fan-out: 500 watchers of one deployment's `/api/status/{id}`, each
//!    checked to get every event from the state it joined at to `complete`;
//!    prints how far apart the first and last watcher heard of completion,
//!    and what the watchers cost the daemon in memory.
//!
//! Run with `cargo bench -p yard --bench portal`.

#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use eventsource_stream::Eventsource;
use futures::StreamExt;
use yard_testkit::{Daemon, DaemonSetup, Load, SLOW_IMAGE, WEB_IMAGE, ensure_stack_images, load};

const CONCURRENCY: usize = 16;
const RUN: Duration = Duration::from_secs(5);
const ROUNDS: usize = 3;
const WATCHERS: usize = 500;

#[tokio::main]
async fn main() {
    ensure_stack_images().await;
    router().await;
    fan_out().await;
}

fn daemon(image: &str) -> Daemon {
    Daemon::start(
        env!("CARGO_BIN_EXE_yard").as_ref(),
        DaemonSetup {
            stack_image: Some(image.to_owned()),
            env: vec![("RUST_LOG".into(), "warn".into())],
            ..DaemonSetup::default()
        },
    )
}

/// The container's published address for stack `name`.
fn container_address(name: &str) -> String {
    let docker = |args: &[&str]| {
        let output = Command::new("docker").args(args).output().unwrap();
        assert!(output.status.success(), "docker {args:?}");
        String::from_utf8(output.stdout).unwrap()
    };
    let filter = format!("label=agentyard.stack={name}");
    let id = docker(&["ps", "-q", "--filter", &filter]);
    let port = docker(&["port", id.trim()]);
    port.lines()
        .find_map(|l| l.split(" -> ").nth(1))
        .unwrap()
        .trim()
        .to_owned()
}

/// `CONCURRENCY` clients sending `GET url` (with `host`, if given) back to
/// back for `RUN`.
async fn measure(url: &str, host: Option<&str>) -> Load {
    let (url, host) = (url.to_owned(), host.map(str::to_owned));
    load(CONCURRENCY, RUN, move |client| {
        let request = client.get(&url);
        match &host {
            Some(host) => request.header("host", host),
            None => request,
        }
    })
    .await
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

async fn router() {
    let daemon = daemon(WEB_IMAGE);
    let id = daemon.api_deploy("routed").await;
    daemon.wait_complete(&id).await;
    let direct_url = format!("http://{}/", container_address("routed"));
    let host = format!("routed.localhost:{}", daemon.port());
    let routed_url = format!("{}/", daemon.url());
    // Warm both paths (connection pools, the router's endpoint cache).
    let _ = measure(&direct_url, None).await;
    let _ = measure(&routed_url, Some(&host)).await;

    let mut rows: Vec<(Load, Load)> = Vec::new();
    for _ in 0..ROUNDS {
        let direct = measure(&direct_url, None).await;
        let routed = measure(&routed_url, Some(&host)).await;
        rows.push((routed, direct));
    }
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "host router: GET / on a busybox httpd stack, {CONCURRENCY} concurrent clients, {RUN:?} per run, {ROUNDS} rounds (medians)"
    );
    let routed_rps = median(rows.iter().map(|(r, _)| r.per_second).collect());
    let direct_rps = median(rows.iter().map(|(_, d)| d.per_second).collect());
    let routed_p50 = median(rows.iter().map(|(r, _)| ms(r.p50)).collect());
    let direct_p50 = median(rows.iter().map(|(_, d)| ms(d.p50)).collect());
    let routed_p99 = median(rows.iter().map(|(r, _)| ms(r.p99)).collect());
    let direct_p99 = median(rows.iter().map(|(_, d)| ms(d.p99)).collect());
    println!(
        "  through NAME.localhost: {routed_rps:>8.0} req/s  p50 {routed_p50:>6.2} ms  p99 {routed_p99:>6.2} ms"
    );
    println!(
        "  straight to container:  {direct_rps:>8.0} req/s  p50 {direct_p50:>6.2} ms  p99 {direct_p99:>6.2} ms"
    );
    println!(
        "  ratio router / direct:  {:>8.2} (req/s)     {:>6.2} (p50)     {:>6.2} (p99)",
        routed_rps / direct_rps,
        routed_p50 / direct_p50,
        routed_p99 / direct_p99
    );
}

/// What one watcher saw: each event's name and status, and when the last came.
struct Watched {
    events: Vec<(String, String)>,
    done_at: Instant,
}

async fn fan_out() {
    let daemon = daemon(SLOW_IMAGE);
    let (before, _) = daemon.memory_kib();
    // The slow stack answers after four seconds: time for every watcher to
    // join while it deploys.
    let id = daemon.api_deploy("watched").await;
    let client = yard_testkit::http();
    let url = Arc::new(format!("{}/api/status/{id}", daemon.url()));
    let token = Arc::new(daemon.token());
    let started = Instant::now();
    let watchers = (0..WATCHERS).map(|_| {
        let (client, url, token) = (client.clone(), Arc::clone(&url), Arc::clone(&token));
        tokio::spawn(async move {
            let response = client
                .get(url.as_str())
                .bearer_auth(token.as_str())
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
            let mut stream = response.bytes_stream().eventsource();
            let mut events = Vec::new();
            while let Some(event) = stream.next().await {
                let event = event.unwrap();
                let data: serde_json::Value = serde_json::from_str(&event.data).unwrap();
                let status = data["status"].as_str().unwrap_or_default().to_owned();
                events.push((event.event, status));
            }
            Watched {
                events,
                done_at: Instant::now(),
            }
        })
    });
    let watchers = futures::future::join_all(watchers);
    // Memory with every watcher connected, while the deployment runs.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (connected, _) = daemon.memory_kib();
    let watched: Vec<Watched> = watchers.await.into_iter().map(Result::unwrap).collect();
    let elapsed = started.elapsed();

    let ranks = [
        "initializing",
        "creating_project",
        "creating_application",
        "deploying",
        "completed",
    ];
    let rank = |s: &str| ranks.iter().position(|r| *r == s);
    let mut complete = 0;
    for w in &watched {
        let names: Vec<&str> = w.events.iter().map(|(e, _)| e.as_str()).collect();
        assert_eq!(names.last(), Some(&"complete"), "{names:?}");
        let statuses: Vec<usize> = w
            .events
            .iter()
            .filter(|(e, _)| e == "progress")
            .map(|(_, s)| rank(s).unwrap())
            .collect();
        // Every step from the one joined at, in order, none missing, the
        // last one `completed`.
        assert!(
            statuses.windows(2).all(|p| p[1] == p[0] + 1),
            "{statuses:?}"
        );
        assert_eq!(statuses.last(), Some(&4));
        complete += 1;
    }
    let first = watched.iter().map(|w| w.done_at).min().unwrap();
    let last = watched.iter().map(|w| w.done_at).max().unwrap();
    let events: Vec<usize> = watched.iter().map(|w| w.events.len()).collect();
    println!();
    println!("SSE fan-out: {WATCHERS} watchers of one deployment");
    println!(
        "  every event, in order, up to complete: {complete}/{WATCHERS} watchers ({}..={} events each)",
        events.iter().min().unwrap(),
        events.iter().max().unwrap()
    );
    println!(
        "  first to last watcher hearing `complete`: {:.1} ms (whole run {:.1} s)",
        (last - first).as_secs_f64() * 1e3,
        elapsed.as_secs_f64()
    );
    println!(
        "  daemon memory with {WATCHERS} watchers connected: +{:.1} MiB ({:.1} KiB per watcher)",
        connected.saturating_sub(before) as f64 / 1024.0,
        connected.saturating_sub(before) as f64 / WATCHERS as f64
    );
}
