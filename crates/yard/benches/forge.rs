//! The forge's side of the yard, each against a baseline in the same run.
//!
//! (a) Webhook deliveries per second with signature checking: the real
//!     daemon with `forge.webhook_secret` set takes `POST /webhook/gitea`
//!     from 32 concurrent clients sending back to back, each request a
//!     unique `X-Gitea-Delivery`, `X-Gitea-Event: issues` and a Gitea
//!     `issues` payload of about 2 KB (action `opened`, so no rule acts)
//!     signed with the hex HMAC-SHA256. Baseline, same load and concurrency:
//!     a bare hyper server in this process that checks the same HMAC and
//!     answers 200 without storing anything, so the ratio is what reading,
//!     recording and answering each delivery costs. Deliveries/s, p50, p99.
//! (b) Time from an "issue assigned" delivery to its agent running: the
//!     contract fake of Gitea as an external forge (`POST /api/forge/init`),
//!     the scripted agent image; measured from the fake's assignment (which
//!     sends the webhook) until `GET /api/agents` lists the new agent as
//!     `running`. Baseline: `yard spawn` of the same repository copy (the
//!     one the yard fetched from the forge) until it returns a running
//!     agent. Medians over a few rounds each; every agent is stopped after
//!     its round, and the daemon's labelled sweep removes every container.
//!
//! Run with `cargo bench -p yard --bench forge [-- a b]` (default: both);
//! (b) needs Docker.

#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};
use yard_testkit::{Daemon, DaemonSetup, GiteaFake, Load, ensure_agent_image, load};

const YARD: &str = env!("CARGO_BIN_EXE_yard");
const SECRET: &str = "forge bench webhook secret";
const CLIENTS: usize = 32;
const RUN: Duration = Duration::from_secs(4);
const ROUNDS: usize = 5;
const ORG: &str = "agentyard";
const REPO: &str = "app";
const BOT: &str = "yard-bot";

#[tokio::main]
async fn main() {
    let asked: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let wanted = |part: &str| asked.is_empty() || asked.iter().any(|a| a == part);

    let fake = GiteaFake::start("forge-admin", "forge-admin-password").await;
    let image = if wanted("b") {
        ensure_agent_image().await
    } else {
        String::new()
    };
    // The forge must reach the yard's webhook at a known address, so the
    // port is chosen before the daemon starts.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let daemon = Daemon::start(
        YARD.as_ref(),
        DaemonSetup {
            env: vec![
                ("RUST_LOG".into(), "warn".into()),
                ("YARD_LISTEN".into(), format!("127.0.0.1:{port}")),
                (
                    "YARD_WEBHOOK_BASE".into(),
                    format!("http://127.0.0.1:{port}"),
                ),
                ("GITEA_URL".into(), fake.url()),
                ("GITEA_ADMIN_TOKEN".into(), fake.admin_token()),
                ("YARD_AGENT_IMAGE".into(), image.clone()),
                (
                    "YARD_AGENT_CACHES".into(),
                    format!("agentyard-bench-{}:/cache/b", uuid::Uuid::new_v4().simple()),
                ),
            ],
            ..DaemonSetup::default()
        },
    );
    let set = yard_testkit::http()
        .put(format!("{}/api/config/forge.webhook_secret", daemon.url()))
        .bearer_auth(daemon.token())
        .json(&json!({"value": SECRET}))
        .send()
        .await
        .unwrap();
    assert_eq!(set.status(), 200, "{}", set.text().await.unwrap());

    if wanted("a") {
        deliveries(&daemon).await;
    }
    if wanted("b") {
        assigned_to_running(&daemon, &fake).await;
    }
    daemon.sweep().sweep().await;
    let left = daemon.sweep().leftovers().await;
    assert!(left.is_empty(), "containers left behind: {left:?}");
}

// ----- (a) webhook deliveries per second -----

async fn deliveries(daemon: &Daemon) {
    let body = Bytes::from(issues_payload().to_string());
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, SECRET.as_bytes());
    let signature = hex::encode(ring::hmac::sign(&key, &body));
    println!(
        "(a) webhook deliveries, {CLIENTS} concurrent clients, {}s each, {} byte payload",
        RUN.as_secs(),
        body.len()
    );

    let ours = drive(format!("{}/webhook/gitea", daemon.url()), &body, &signature).await;
    let bare = bare_verifier(key).await;
    let baseline = drive(format!("http://{bare}/webhook/gitea"), &body, &signature).await;

    let row = |name: &str, l: &Load| {
        println!(
            "  {name:<38} {:>8.0} /s, p50 {:>7.3} ms, p99 {:>7.3} ms",
            l.per_second,
            ms(l.p50),
            ms(l.p99)
        );
    };
    row("yard (verify, record, answer):", &ours);
    row("bare hyper (verify HMAC, answer 200):", &baseline);
    println!(
        "  ratio yard/bare: throughput {:.2}, p50 {:.2}, p99 {:.2}",
        ours.per_second / baseline.per_second,
        ms(ours.p50) / ms(baseline.p50),
        ms(ours.p99) / ms(baseline.p99)
    );
}

/// The load: every request a new delivery id, the same signed body.
async fn drive(url: String, body: &Bytes, signature: &str) -> Load {
    let counter = Arc::new(AtomicU64::new(0));
    let run = uuid::Uuid::new_v4().simple().to_string();
    let (body, signature) = (body.clone(), signature.to_owned());
    // A short warm-up, not counted.
    let warm = {
        let (url, body, signature, counter, run) = (
            url.clone(),
            body.clone(),
            signature.clone(),
            counter.clone(),
            run.clone(),
        );
        move |client: &reqwest::Client| delivery(client, &url, &body, &signature, &run, &counter)
    };
    load(CLIENTS, Duration::from_millis(500), warm).await;
    load(CLIENTS, RUN, move |client: &reqwest::Client| {
        delivery(client, &url, &body, &signature, &run, &counter)
    })
    .await
}

fn delivery(
    client: &reqwest::Client,
    url: &str,
    body: &Bytes,
    signature: &str,
    run: &str,
    counter: &AtomicU64,
) -> reqwest::RequestBuilder {
    let n = counter.fetch_add(1, Ordering::Relaxed);
    client
        .post(url)
        .header("content-type", "application/json")
        .header("x-gitea-signature", signature)
        .header("x-gitea-delivery", format!("{run}-{n}"))
        .header("x-gitea-event", "issues")
        .header("x-gitea-event-type", "issues")
        .body(body.clone())
}

/// A server on loopback that reads the body, checks its hex HMAC-SHA256
/// against `X-Gitea-Signature` and answers 200 (401 when it is wrong).
async fn bare_verifier(key: ring::hmac::Key) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let key = Arc::new(key);
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            stream.set_nodelay(true).unwrap();
            let key = key.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    move |request: hyper::Request<hyper::body::Incoming>| {
                        let key = key.clone();
                        async move {
                            let signature = request
                                .headers()
                                .get("x-gitea-signature")
                                .and_then(|v| v.to_str().ok())
                                .and_then(|v| hex::decode(v).ok())
                                .unwrap_or_default();
                            let body = request.into_body().collect().await?.to_bytes();
                            let good = ring::hmac::verify(&key, &body, &signature).is_ok();
                            let (status, answer) = if good {
                                (200, &br#"{"status":"accepted"}"#[..])
                            } else {
                                (401, &br#"{"error":"bad signature"}"#[..])
                            };
                            Ok::<_, hyper::Error>(
                                hyper::Response::builder()
                                    .status(status)
                                    .header("content-type", "application/json")
                                    .body(Full::new(Bytes::from_static(answer)))
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
    addr
}

/// What Gitea sends for an opened issue, about 2 KB.
fn issues_payload() -> Value {
    let user = |id: i64, login: &str| {
        json!({
            "id": id, "login": login, "login_name": "", "source_id": 0,
            "full_name": "", "email": format!("{login}@example.invalid"),
            "avatar_url": format!("http://forge.invalid/avatars/{id}"),
            "html_url": format!("http://forge.invalid/{login}"),
            "language": "en-US", "is_admin": false,
            "last_login": "2026-01-01T00:00:00Z", "created": "2025-06-01T00:00:00Z",
            "restricted": false, "active": true, "prohibit_login": false,
            "location": "", "website": "", "description": "", "visibility": "public",
            "followers_count": 0, "following_count": 0, "starred_repos_count": 0,
            "username": login
        })
    };
    json!({
        "action": "opened",
        "number": 42,
        "issue": {
            "id": 1042, "number": 42,
            "url": "http://forge.invalid/api/v1/repos/team/app/issues/42",
            "html_url": "http://forge.invalid/team/app/issues/42",
            "user": user(7, "alice"),
            "original_author": "", "original_author_id": 0,
            "title": "The login page forgets the redirect after a failed attempt",
            "body": "After one wrong password the form posts to /login without the `next` \
                     parameter, so a right password then lands on the dashboard. Keep \
                     `next` across failed attempts and add a test for it.",
            "ref": "", "labels": [], "milestone": null, "assignee": null,
            "assignees": null, "state": "open", "is_locked": false, "comments": 0,
            "created_at": "2026-01-02T10:00:00Z", "updated_at": "2026-01-02T10:00:00Z",
            "closed_at": null, "due_date": null, "pull_request": null,
            "repository": {"id": 3, "name": "app", "owner": "team", "full_name": "team/app"},
            "pin_order": 0
        },
        "repository": {
            "id": 3, "owner": user(2, "team"), "name": "app", "full_name": "team/app",
            "description": "", "empty": false, "private": true, "fork": false,
            "template": false, "parent": null, "mirror": false, "size": 120,
            "html_url": "http://forge.invalid/team/app",
            "clone_url": "http://forge.invalid/team/app.git",
            "default_branch": "main", "archived": false,
            "created_at": "2025-06-01T00:00:00Z", "updated_at": "2026-01-02T10:00:00Z"
        },
        "sender": user(7, "alice"),
        "commit_id": ""
    })
}

// ----- (b) issue assigned -> agent running -----

async fn assigned_to_running(daemon: &Daemon, fake: &GiteaFake) {
    println!("\n(b) until an agent runs, {ROUNDS} rounds each");
    daemon.api_forge_init().await;
    fake.seed_repo(ORG, REPO, &[("README.md", "hello\n")]);

    let mut seen: HashSet<String> = agents(daemon)
        .await
        .iter()
        .map(|a| a["id"].as_str().unwrap().to_owned())
        .collect();
    let mut forge_times = Vec::with_capacity(ROUNDS);
    for round in 0..ROUNDS {
        let number = fake.add_issue(ORG, REPO, &format!(": bench round {round}"), "sleep 3600");
        let started = Instant::now();
        let sent = fake.assign_issue(ORG, REPO, number, BOT).await;
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].status, Some(200), "{:?}", sent[0].error);
        let id = loop {
            let listed = agents(daemon).await;
            if let Some(agent) = listed
                .iter()
                .find(|a| !seen.contains(a["id"].as_str().unwrap()))
                && agent["status"] == "running"
            {
                break agent["id"].as_str().unwrap().to_owned();
            }
            assert!(
                started.elapsed() < Duration::from_secs(90),
                "no running agent for issue #{number} within 90s: {listed:?}\n{}",
                daemon.log()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        forge_times.push(started.elapsed());
        seen.insert(id.clone());
        stop(daemon, &id);
    }

    // The repository copy the yard fetched from the forge, from the same
    // base the issue's agents start from (its HEAD names no branch).
    let local = daemon.data_dir().join("repos").join(ORG).join(REPO);
    let mut spawn_times = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let started = Instant::now();
        let out = daemon.cli(&[
            "spawn",
            "--repo",
            &local.display().to_string(),
            "--base",
            "refs/heads/main",
            "--task",
            "sleep 3600",
            "--json",
        ]);
        let elapsed = started.elapsed();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let result: Value = serde_json::from_slice(&out.stdout).unwrap();
        let agent = &result["agents"][0];
        assert_eq!(agent["status"], "running", "{agent}");
        spawn_times.push(elapsed);
        stop(daemon, agent["id"].as_str().unwrap());
    }

    let forge = median(&mut forge_times.clone());
    let spawn = median(&mut spawn_times.clone());
    let list = |times: &[Duration]| {
        times
            .iter()
            .map(|t| format!("{:.0}", ms(*t)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "  issue assigned -> agent running: median {:>7.0} ms  (rounds: {} ms)",
        ms(forge),
        list(&forge_times)
    );
    println!(
        "  yard spawn of the same repository: median {:>5.0} ms  (rounds: {} ms)",
        ms(spawn),
        list(&spawn_times)
    );
    println!("  ratio forge/spawn (median): {:.2}", ms(forge) / ms(spawn));
}

async fn agents(daemon: &Daemon) -> Vec<Value> {
    daemon.api_get("/api/agents").await["agents"]
        .as_array()
        .unwrap()
        .clone()
}

fn stop(daemon: &Daemon, id: &str) {
    let out = daemon.cli(&["stop", id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn median(times: &mut [Duration]) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
