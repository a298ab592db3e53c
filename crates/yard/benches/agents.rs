//! Benchmarks for agents, each against a baseline in the same run:
//!
//! (a) one hook decision as an agent's client makes it (a process per
//!     event): `yard hook`, against `curl --unix-socket` to the same
//!     endpoint and a ten-line Python hook doing the same request; p50 and
//!     p99 over 1000 events each.
//! (b) time until 3 and until 10 agents are running, against a plain shell
//!     loop of `git worktree add` and `docker run` of the same image, and
//!     against the same loop with the confinement the yard gives agents
//!     (no new privileges, few capabilities, limits).
//! (c) hook decisions per second on the control socket under concurrent
//!     load, against a bare HTTP server on a Unix socket that answers the
//!     same bytes without deciding anything.
//!
//! Run with `cargo bench -p yard --bench agents [-- a b c]` (default: all
//! three); needs curl and python3.

#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde_json::Value;
use yard_testkit::{
    Daemon, DaemonSetup, DockerSweep, TEST_LABEL, ensure_agent_image, ensure_stack_images,
};

const YARD: &str = env!("CARGO_BIN_EXE_yard");
const EVENT: &str = r#"{"hook_event_name":"PreToolUse","session_id":"bench","cwd":"/workspace","tool_name":"Bash","tool_input":{"command":"cargo test"}}"#;
const POLICY: &str = "[[rules]]\nname = \"no-rm\"\ncommand = \"rm -rf *\"\ndecision = \"deny\"\n";

#[tokio::main]
async fn main() {
    ensure_stack_images().await;
    let image = ensure_agent_image().await;
    let daemon = Daemon::start(
        YARD.as_ref(),
        DaemonSetup {
            env: vec![
                ("RUST_LOG".into(), "warn".into()),
                ("YARD_AGENT_IMAGE".into(), image.clone()),
                (
                    "YARD_AGENT_CACHES".into(),
                    format!("agentyard-bench-{}:/cache/b", uuid::Uuid::new_v4().simple()),
                ),
            ],
            files: vec![("policy.toml".into(), POLICY.into())],
            ..DaemonSetup::default()
        },
    );
    let repo = yard_testkit::git_repo(&[("README.md", "bench\n")]);
    let asked: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let wanted = |part: &str| asked.is_empty() || asked.iter().any(|a| a == part);
    let socket = daemon.data_dir().join("control.sock");

    if wanted("a") {
        println!("(a) one hook decision, a process per event, 1000 events each");
        let (id, token) = one_agent(&daemon, repo.path(), "sleep 3600").await;
        hook_latency(&socket, &token);
        stop(&daemon, &id);
    }
    if wanted("b") {
        println!("\n(b) time until N agents are running");
    }
    for n in [3, 10].into_iter().filter(|_| wanted("b")) {
        let yard = spawn_time(&daemon, repo.path(), n);
        let plain = shell_loop_time(repo.path(), &image, n, daemon.sweep(), "");
        let confined = shell_loop_time(repo.path(), &image, n, daemon.sweep(), &confinement());
        println!(
            "  {n:>2} agents: yard spawn {:>7.0} ms, shell loop {:>7.0} ms (ratio {:.2}), confined shell loop {:>7.0} ms (ratio {:.2})",
            ms(yard),
            ms(plain),
            yard.as_secs_f64() / plain.as_secs_f64(),
            ms(confined),
            yard.as_secs_f64() / confined.as_secs_f64()
        );
    }

    if !wanted("c") {
        return;
    }
    println!("\n(c) hook decisions per second on the control socket, 32 connections, 5 s");
    let (id, token) = one_agent(&daemon, repo.path(), "sleep 3600").await;
    let yard = load(&socket, &token, 32, Duration::from_secs(5)).await;
    let bare_socket = daemon.data_dir().join("bare.sock");
    let bare = bare_server(&bare_socket);
    let baseline = load(&bare_socket, &token, 32, Duration::from_secs(5)).await;
    bare.store(true, Ordering::Relaxed);
    println!(
        "  yard: {:>8.0}/s (p99 {:.2} ms), bare HTTP on a Unix socket: {:>8.0}/s (p99 {:.2} ms), ratio {:.3}",
        yard.0,
        yard.1,
        baseline.0,
        baseline.1,
        yard.0 / baseline.0
    );
    stop(&daemon, &id);
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn spawn_ids(daemon: &Daemon, repo: &Path, n: u32, task: &str) -> Vec<String> {
    let out = daemon.cli(&[
        "spawn",
        "--repo",
        &repo.display().to_string(),
        "-n",
        &n.to_string(),
        "--task",
        task,
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result: Value = serde_json::from_slice(&out.stdout).unwrap();
    result["agents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            assert_eq!(a["status"], "running", "{a}");
            a["id"].as_str().unwrap().to_owned()
        })
        .collect()
}

async fn one_agent(daemon: &Daemon, repo: &Path, task: &str) -> (String, String) {
    let id = spawn_ids(daemon, repo, 1, task).remove(0);
    let token = daemon.sweep().agent_token(&id).await;
    (id, token)
}

fn stop(daemon: &Daemon, id: &str) {
    assert!(daemon.cli(&["stop", id]).status.success());
}

/// Runs `command` once per event with the event on stdin; returns p50 and p99.
fn percentiles(mut command: impl FnMut() -> Command, runs: usize) -> (f64, f64) {
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let started = Instant::now();
        let mut child = command()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(EVENT.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        times.push(started.elapsed());
        assert!(
            out.status.success() && out.stdout.windows(5).any(|w| w == b"allow"),
            "{out:?}"
        );
    }
    times.sort();
    (ms(times[runs / 2]), ms(times[runs * 99 / 100]))
}

const PYTHON_HOOK: &str = r#"
import http.client, json, os, socket, sys
class UnixConnection(http.client.HTTPConnection):
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX); self.sock.connect(os.environ["YARD_SOCKET"])
conn = UnixConnection("yard")
conn.request("POST", "/hook", sys.stdin.read(), {"Content-Type": "application/json", "Authorization": "Bearer " + os.environ["YARD_AGENT_TOKEN"]})
answer = conn.getresponse().read().decode()
if answer != "{}": print(answer)
"#;

fn hook_latency(socket: &Path, token: &str) {
    let runs = 1000;
    let yard = percentiles(
        || {
            let mut c = Command::new(YARD);
            c.arg("hook")
                .env("YARD_SOCKET", socket)
                .env("YARD_AGENT_TOKEN", token);
            c
        },
        runs,
    );
    let curl = percentiles(
        || {
            let mut c = Command::new("curl");
            c.args(["-s", "--unix-socket"])
                .arg(socket)
                .args(["-H", "Content-Type: application/json", "-H"])
                .arg(format!("Authorization: Bearer {token}"))
                .args(["--data-binary", "@-", "http://yard/hook"]);
            c
        },
        runs,
    );
    // The interpreter itself, not a version manager's shim in front of it.
    let interpreter = Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .unwrap();
    let interpreter = String::from_utf8(interpreter.stdout)
        .unwrap()
        .trim()
        .to_owned();
    let python = percentiles(
        || {
            let mut c = Command::new(&interpreter);
            c.args(["-c", PYTHON_HOOK])
                .env("YARD_SOCKET", socket)
                .env("YARD_AGENT_TOKEN", token);
            c
        },
        runs,
    );
    for (name, (p50, p99)) in [
        ("yard hook", yard),
        ("curl --unix-socket", curl),
        ("python hook", python),
    ] {
        println!(
            "  {name:<20} p50 {p50:>6.2} ms  p99 {p99:>6.2} ms   (p50 ratio yard/this {:.2})",
            yard.0 / p50
        );
    }
}

fn spawn_time(daemon: &Daemon, repo: &Path, n: u32) -> Duration {
    let started = Instant::now();
    let ids = spawn_ids(daemon, repo, n, "sleep 3600");
    let elapsed = started.elapsed();
    for id in &ids {
        stop(daemon, id);
    }
    elapsed
}

/// The same work as a person would script it: a worktree and a container
/// per agent, one after the other.
/// `docker run` options that confine a container the way the yard confines
/// each agent (no new privileges, its kept capabilities, the default
/// limits), for the confined baseline.
fn confinement() -> String {
    let caps: String = yard_engine::KEPT_CAPABILITIES
        .iter()
        .map(|c| format!(" --cap-add {c}"))
        .collect();
    format!(
        "--security-opt no-new-privileges:true --cap-drop ALL{caps} --pids-limit 4096 \
         --memory 4g --memory-swap 4g --cpus 2"
    )
}

fn shell_loop_time(
    repo: &Path,
    image: &str,
    n: u32,
    sweep: &DockerSweep,
    options: &str,
) -> Duration {
    let worktrees = tempfile::tempdir().unwrap();
    let label = format!("{TEST_LABEL}={}", sweep.id());
    let script = format!(
        "for i in $(seq 1 {n}); do \
           git -C {repo} worktree add -q -b plain-$$-$i {dir}/w$i HEAD && \
           docker run -d -q --label {label} {options} -v {dir}/w$i:/workspace -w /workspace {image} sleep 3600 >/dev/null || exit 1; \
         done",
        repo = repo.display(),
        dir = worktrees.path().display(),
    );
    let started = Instant::now();
    let ok = Command::new("sh")
        .args(["-c", &script])
        .status()
        .unwrap()
        .success();
    let elapsed = started.elapsed();
    assert!(ok, "the shell loop failed");
    let cleanup = format!(
        "docker ps -aq --filter label={label} | xargs -r docker rm -f >/dev/null; git -C {} worktree prune",
        repo.display()
    );
    Command::new("sh").args(["-c", &cleanup]).status().unwrap();
    elapsed
}

/// Posts the event over `connections` keep-alive connections for `length`;
/// returns requests per second and the p99 latency in milliseconds.
async fn load(socket: &Path, token: &str, connections: usize, length: Duration) -> (f64, f64) {
    let deadline = Instant::now() + length;
    let workers = (0..connections).map(|_| {
        let socket = socket.to_owned();
        let auth = format!("Bearer {token}");
        tokio::spawn(async move {
            let stream = tokio::net::UnixStream::connect(&socket).await.unwrap();
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                    .await
                    .unwrap();
            tokio::spawn(connection);
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                let request = hyper::Request::post("/hook")
                    .header("host", "yard")
                    .header("content-type", "application/json")
                    .header("authorization", &auth)
                    .body(Full::new(Bytes::from_static(EVENT.as_bytes())))
                    .unwrap();
                let started = Instant::now();
                let response = sender.send_request(request).await.unwrap();
                assert!(response.status().is_success());
                response.into_body().collect().await.unwrap();
                latencies.push(started.elapsed());
            }
            latencies
        })
    });
    let mut all: Vec<Duration> = Vec::new();
    for worker in futures::future::join_all(workers).await {
        all.extend(worker.unwrap());
    }
    all.sort();
    (
        all.len() as f64 / length.as_secs_f64(),
        ms(all[all.len() * 99 / 100]),
    )
}

/// An HTTP/1 server on a Unix socket that answers every request with the
/// bytes the yard would answer, deciding nothing: the transport's ceiling.
fn bare_server(path: &Path) -> Arc<AtomicBool> {
    let _ = std::fs::remove_file(path);
    let listener = tokio::net::UnixListener::bind(path).unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let stop = Arc::clone(&done);
    let answer = Bytes::from_static(
        br#"{"hookSpecificOutput":{"hookEventName":"PreToolUse","permissionDecision":"allow","permissionDecisionReason":"allow by the policy default"}}"#,
    );
    tokio::spawn(async move {
        while !stop.load(Ordering::Relaxed) {
            let Ok((stream, _)) = listener.accept().await else {
                break;
            };
            let answer = answer.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    move |request: hyper::Request<hyper::body::Incoming>| {
                        let answer = answer.clone();
                        async move {
                            request.into_body().collect().await?;
                            Ok::<_, hyper::Error>(
                                hyper::Response::builder()
                                    .header("content-type", "application/json")
                                    .body(Full::new(answer))
                                    .unwrap(),
                            )
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    done
}
