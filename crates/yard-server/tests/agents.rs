//! The agent API and the hook endpoint, on real ports and a real control
//! socket, with real git repositories and real containers.

#![allow(clippy::unwrap_used)]

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};
use support::{Options, TestYard, assert_error_response};
use yard_testkit::{ECHO_IMAGE, WEB_IMAGE};

/// A repository with one commit.
fn repo() -> tempfile::TempDir {
    yard_testkit::git_repo(&[("README.md", "hello\n")])
}

async fn spawn(yard: &TestYard, body: Value) -> reqwest::Response {
    yard.post_json("/api/agents", &body).send().await.unwrap()
}

/// Spawns one agent on `repo` and returns its id and credential.
async fn one_agent(yard: &TestYard, repo: &Path, image: &str) -> (String, String) {
    let response = spawn(
        yard,
        json!({"repo": repo.display().to_string(), "task": "wait", "image": image}),
    )
    .await;
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 201, "{body}");
    let agent = &body["agents"][0];
    assert_eq!(agent["status"], "running", "{agent}");
    let id = agent["id"].as_str().unwrap().to_owned();
    let env = yard.sweep.agent_env(&id).await;
    assert!(
        env.iter().any(|kv| kv == "FROM_THE_YARD=yes"),
        "the operator's agent env: {env:?}"
    );
    assert!(
        env.iter().any(|kv| kv == "TEST_CACHE=/cache/test"),
        "the cache's variable: {env:?}"
    );
    let token = yard.sweep.agent_token(&id).await;
    (id, token)
}

#[tokio::test]
async fn bad_spawn_requests_are_refused_and_leave_nothing_behind() {
    let yard = TestYard::start(Options::default()).await;
    let repo = repo();
    let path = repo.path().display().to_string();
    let plain = tempfile::tempdir().unwrap();
    let cases = [
        (
            json!({"repo": "/no/such/repo", "task": "x"}),
            "does not exist",
        ),
        (
            json!({"repo": plain.path().display().to_string(), "task": "x"}),
            "not a git repository",
        ),
        (
            json!({"repo": path, "task": "x", "count": 0}),
            "between 1 and 8",
        ),
        (
            json!({"repo": path, "task": "x", "count": 10000}),
            "between 1 and 8",
        ),
        (json!({"repo": path, "task": "  "}), "task is empty"),
        (
            json!({"repo": path, "task": "x", "image": "agentyard-test/none:1"}),
            "not on the engine",
        ),
        (
            json!({"repo": path, "task": "x", "base": "no-such-branch"}),
            "no-such-branch",
        ),
    ];
    for (body, expected) in cases {
        let message =
            assert_error_response(spawn(&yard, body.clone()).await, 400, "invalid_request").await;
        assert!(message.contains(expected), "{body}: {message}");
    }
    let missing_task = spawn(&yard, json!({"repo": path})).await;
    assert_error_response(missing_task, 400, "invalid_json").await;

    assert_eq!(yard.get_json("/api/agents").await["agents"], json!([]));
    assert!(yard.sweep.leftovers().await.is_empty());
    assert!(!yard.checkouts.exists());
    let git_config = std::fs::read_to_string(repo.path().join(".git/config")).unwrap();
    assert!(
        !git_config.contains("preciousObjects"),
        "the repository is untouched"
    );
}

#[tokio::test]
async fn hooks_answer_by_the_policy_over_tcp_and_the_socket_and_are_audited() {
    let yard = TestYard::start(Options {
        policy: Some(
            r#"
            # `ask` here is the fallback at once; asking people is in
            # questions.rs.
            ask_people = false

            [[rules]]
            name = "no-rm"
            tool = "Bash"
            command = "rm -rf *"
            decision = "deny"
            reason = "Removing trees is not allowed here."

            [[rules]]
            name = "ask-push"
            command = "git push*"
            decision = "ask"
            "#
            .to_owned(),
        ),
        ..Options::default()
    })
    .await;
    let repo = repo();
    let (id, token) = one_agent(&yard, repo.path(), WEB_IMAGE).await;
    let hook = |body: Value, token: Option<&str>| {
        let mut request = yard.http.post(format!("{}/hook", yard.base)).json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    let pre = |command: &str| {
        json!({"hook_event_name": "PreToolUse", "session_id": "s", "cwd": "/workspace",
               "tool_name": "Bash", "tool_input": {"command": command}})
    };

    let denied: Value = hook(pre("rm -rf /workspace"), Some(&token))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        denied,
        json!({"hookSpecificOutput": {"hookEventName": "PreToolUse", "permissionDecision": "deny",
               "permissionDecisionReason": "Removing trees is not allowed here."}})
    );
    let allowed: Value = hook(pre("ls"), Some(&token))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(allowed["hookSpecificOutput"]["permissionDecision"], "allow");
    let asked: Value = hook(pre("git push origin main"), Some(&token))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        asked["hookSpecificOutput"]["permissionDecision"], "deny",
        "ask falls back to deny"
    );
    let stop: Value = hook(
        json!({"hook_event_name": "Stop", "session_id": "s"}),
        Some(&token),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(stop, json!({}));

    // The same answer over the control socket.
    let (status, body) = post_unix(&yard.socket, "/hook", &token, &pre("rm -rf /tmp")).await;
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap()["hookSpecificOutput"]["permissionDecision"],
        "deny"
    );
    let (status, _) = post_unix(&yard.socket, "/api/agents", &token, &json!({})).await;
    assert_eq!(status, 404, "nothing for people on the socket");

    // Credentials: none, a person's, a made-up one.
    assert_error_response(hook(pre("ls"), None).await.unwrap(), 401, "unauthorized").await;
    assert_error_response(
        hook(pre("ls"), Some(&yard.token)).await.unwrap(),
        401,
        "unauthorized",
    )
    .await;
    assert_error_response(
        hook(pre("ls"), Some("yard_agent_0000")).await.unwrap(),
        401,
        "unauthorized",
    )
    .await;
    // The agent's credential opens nothing else.
    let as_agent = yard
        .http
        .get(format!("{}/api/agents", yard.base))
        .bearer_auth(&token);
    assert_error_response(as_agent.send().await.unwrap(), 401, "unauthorized").await;

    // Bad input.
    let malformed = yard
        .http
        .post(format!("{}/hook", yard.base))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{\"hook_event_name\": ");
    assert_error_response(malformed.send().await.unwrap(), 400, "invalid_json").await;
    let unknown = hook(json!({"hook_event_name": "Lunch"}), Some(&token))
        .await
        .unwrap();
    let message = assert_error_response(unknown, 400, "unknown_event").await;
    assert!(
        message.contains("PreToolUse"),
        "lists the known events: {message}"
    );

    let audit = yard.get_json(&format!("/api/agents/{id}/audit")).await;
    let entries = audit["entries"].as_array().unwrap();
    let summary: Vec<(&str, &str, bool)> = entries
        .iter()
        .map(|e| {
            (
                e["rule"].as_str().unwrap(),
                e["decision"].as_str().unwrap(),
                e["asked"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("no-rm", "deny", false),
            ("default", "allow", false),
            ("ask-push", "deny", true),
            ("default", "allow", false),
            ("no-rm", "deny", false),
        ]
    );
    assert_eq!(entries[0]["subject"], "rm -rf /workspace");

    // Stopping the agent retires its credential.
    let stopped = yard
        .http
        .post(format!("{}/api/agents/{id}/stop", yard.base))
        .bearer_auth(&yard.token);
    assert_eq!(
        stopped.send().await.unwrap().json::<Value>().await.unwrap()["status"],
        "stopped"
    );
    assert_error_response(
        hook(pre("ls"), Some(&token)).await.unwrap(),
        401,
        "unauthorized",
    )
    .await;
}

#[tokio::test]
async fn a_broken_policy_edit_keeps_the_old_policy_and_says_why() {
    let yard = TestYard::start(Options {
        policy: Some("[[rules]]\ncommand = \"rm *\"\ndecision = \"deny\"\n".to_owned()),
        ..Options::default()
    })
    .await;
    let repo = repo();
    let (_, token) = one_agent(&yard, repo.path(), WEB_IMAGE).await;
    let decide = |command: &'static str| {
        let request = yard
            .http
            .post(format!("{}/hook", yard.base))
            .bearer_auth(&token)
            .json(&json!({"hook_event_name": "PreToolUse", "tool_name": "Bash", "tool_input": {"command": command}}));
        async move {
            let answer: Value = request.send().await.unwrap().json().await.unwrap();
            answer["hookSpecificOutput"]["permissionDecision"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    assert_eq!(decide("rm x").await, "deny");
    let policy_file = yard.checkouts.parent().unwrap().join("policy.toml");

    std::fs::write(
        &policy_file,
        "[[rules]]\ncommand = \"rm *\"\ndecision = \"sometimes\"\n",
    )
    .unwrap();
    let status = wait_for_policy(&yard, |p| p["error"].is_string()).await;
    assert!(
        status["error"].as_str().unwrap().contains("sometimes"),
        "{status}"
    );
    assert_eq!(
        decide("rm x").await,
        "deny",
        "the old policy stays in force"
    );

    std::fs::write(
        &policy_file,
        "default = \"deny\"\n[[rules]]\ncommand = \"ls*\"\ndecision = \"allow\"\n",
    )
    .unwrap();
    let status = wait_for_policy(&yard, |p| p["error"].is_null() && p["rules"] == 1).await;
    assert_eq!(status["fromFile"], true);
    assert_eq!(decide("ls -la").await, "allow");
    assert_eq!(decide("cat x").await, "deny");

    // A file that disappears does not open everything up: the last policy
    // stays in force, and the loss is reported like a broken file.
    std::fs::remove_file(&policy_file).unwrap();
    let status = wait_for_policy(&yard, |p| p["error"].is_string()).await;
    assert!(
        status["error"].as_str().unwrap().contains("gone"),
        "{status}"
    );
    assert_eq!(status["fromFile"], true);
    assert_eq!(decide("cat x").await, "deny", "still the last policy");
}

#[tokio::test]
async fn the_audit_keeps_a_bounded_prefix_of_a_large_tool_input() {
    let yard = TestYard::start(Options::default()).await;
    let repo = repo();
    let (id, token) = one_agent(&yard, repo.path(), WEB_IMAGE).await;
    let content = "x".repeat(1024 * 1024);
    let answer = yard
        .http
        .post(format!("{}/hook", yard.base))
        .bearer_auth(&token)
        .json(
            &json!({"hook_event_name": "PreToolUse", "tool_name": "Write",
                      "tool_input": {"file_path": "/workspace/big.txt", "content": content}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        answer.status(),
        200,
        "a 1 MiB write is decided, not refused"
    );
    let audit = yard.get_json(&format!("/api/agents/{id}/audit")).await;
    let entry = &audit["entries"][0];
    assert_eq!(entry["subject"], "/workspace/big.txt");
    let input = entry["input"].as_str().unwrap();
    assert!(input.len() <= 4096, "{} bytes kept", input.len());
    assert!(input.contains("xxxx"), "{}", &input[..40]);
}

#[tokio::test]
async fn agents_run_confined_in_private_checkouts() {
    let yard = TestYard::start(Options::default()).await;
    let repo = yard_testkit::git_repo(&[("README.md", "hello\n"), ("run.sh", "#!/bin/sh\n")]);
    std::fs::set_permissions(
        repo.path().join("run.sh"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    yard_testkit::git(repo.path(), &["add", "."]);
    yard_testkit::git(repo.path(), &["commit", "-qm", "script"]);
    let (id, _) = one_agent(&yard, repo.path(), WEB_IMAGE).await;

    let mode = |path: &Path| {
        std::fs::symlink_metadata(path)
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode(&yard.checkouts), 0o700, "only the yard enters");
    let checkout = yard.checkouts.join(&id);
    assert_eq!(mode(&checkout), 0o700);
    assert_eq!(mode(&checkout.join("README.md")), 0o600);
    assert_eq!(mode(&checkout.join("run.sh")), 0o700);
    assert_eq!(mode(&checkout.join(".git/config")), 0o600);
    assert_eq!(mode(&checkout.join(".git/objects")), 0o700);

    let container = yard.sweep.agent_container(&id).await;
    let host = container.host_config.unwrap();
    assert_eq!(host.security_opt.unwrap(), ["no-new-privileges:true"]);
    assert_eq!(host.cap_drop.unwrap(), ["ALL"]);
    let mut kept = host.cap_add.unwrap();
    kept.sort();
    let mut expected: Vec<String> = yard_engine::KEPT_CAPABILITIES.map(str::to_owned).to_vec();
    expected.sort();
    assert_eq!(kept, expected);
    assert_eq!(host.pids_limit, Some(4096));
    assert_eq!(host.memory, Some(4 << 30));
    assert_eq!(host.nano_cpus, Some(2_000_000_000));
}

#[tokio::test]
async fn slow_clients_are_dropped_and_health_stays_fast() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let yard = TestYard::start(Options {
        header_timeout: Duration::from_secs(3),
        ..Options::default()
    })
    .await;
    let mut held = Vec::new();
    for i in 0..300 {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", yard.port))
            .await
            .unwrap();
        // Half the connections send part of a head, half nothing at all.
        if i % 2 == 0 {
            stream
                .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
                .await
                .unwrap();
        }
        held.push(stream);
    }
    let started = std::time::Instant::now();
    assert_eq!(yard.health().await["status"], "healthy");
    // Well inside the header bound: nothing waited on the slow clients.
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "/health took {:?} beside 300 half-open connections",
        started.elapsed()
    );
    // Every one of them is closed within the bound (and a little slack).
    let closed = async {
        for mut stream in held {
            let mut buf = [0u8; 256];
            loop {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(8), closed)
        .await
        .expect("half-open connections were not dropped within the bound");
}

async fn wait_for_policy(yard: &TestYard, ready: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..100 {
        let status = yard.get_json("/api/policy").await;
        if ready(&status) {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "the policy file change was not picked up: {}",
        yard.get_json("/api/policy").await
    );
}

#[tokio::test]
async fn logs_and_attach_reach_the_agent_and_detaching_leaves_it_running() {
    let yard = TestYard::start(Options::default()).await;
    let repo = repo();
    let (id, _) = one_agent(&yard, repo.path(), ECHO_IMAGE).await;

    let mut url = reqwest::Url::parse(&format!("{}/api/agents/{id}/attach", yard.base)).unwrap();
    url.set_scheme("ws").unwrap();
    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
            url.as_str(),
        )
        .unwrap();
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {}", yard.token).parse().unwrap(),
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    socket
        .send(tokio_tungstenite::tungstenite::Message::Binary(
            Bytes::from_static(b"hello agent\n"),
        ))
        .await
        .unwrap();
    let echoed = tokio::time::timeout(Duration::from_secs(10), async {
        let mut seen = Vec::new();
        while let Some(Ok(message)) = socket.next().await {
            seen.extend_from_slice(&message.into_data());
            if String::from_utf8_lossy(&seen).contains("hello agent") {
                return seen;
            }
        }
        seen
    })
    .await
    .unwrap();
    assert!(String::from_utf8_lossy(&echoed).contains("hello agent"));
    socket.close(None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        yard.get_json(&format!("/api/agents/{id}")).await["status"],
        "running",
        "detaching leaves it running"
    );

    let logs = yard
        .get(&format!("/api/agents/{id}/logs"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        logs.contains("ready") && logs.contains("hello agent"),
        "{logs}"
    );
    let tail = yard
        .get(&format!("/api/agents/{id}/logs?tail=1"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(tail.trim(), "hello agent");

    assert_error_response(
        yard.get("/api/agents/ffffffff/logs").send().await.unwrap(),
        404,
        "not_found",
    )
    .await;
    assert_error_response(
        yard.get("/api/agents/not-an-id").send().await.unwrap(),
        404,
        "not_found",
    )
    .await;
    let stopped = yard
        .http
        .post(format!("{}/api/agents/{id}/stop", yard.base))
        .bearer_auth(&yard.token);
    assert_eq!(stopped.send().await.unwrap().status(), 200);
    assert_error_response(
        yard.get(&format!("/api/agents/{id}/logs"))
            .send()
            .await
            .unwrap(),
        410,
        "gone",
    )
    .await;
    let attach_stopped = yard.get(&format!("/api/agents/{id}/attach"));
    assert_error_response(
        attach_stopped.send().await.unwrap(),
        409,
        "agent_not_running",
    )
    .await;
    assert!(
        yard.sweep
            .resources()
            .await
            .iter()
            .all(|r| r.starts_with("volume")),
        "only the cache volume stays"
    );
}

/// `POST path` over a Unix socket; returns the status and body.
async fn post_unix(socket: &Path, path: &str, token: &str, body: &Value) -> (u16, Bytes) {
    let stream = tokio::net::UnixStream::connect(socket).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(connection);
    let request = hyper::Request::post(path)
        .header("host", "yard")
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {token}"))
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    let status = response.status().as_u16();
    (
        status,
        response.into_body().collect().await.unwrap().to_bytes(),
    )
}
