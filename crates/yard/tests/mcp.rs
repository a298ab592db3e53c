//! The yard's MCP tools, driven by a client this project did not write: the
//! official Python SDK, over streamable HTTP (the newest protocol revision
//! and 2025-11-25) and over stdio through `yard mcp`. Results are checked
//! against the daemon's own REST API.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde_json::{Value, json};
use yard_testkit::{
    Daemon, DaemonSetup, ECHO_IMAGE, WEB_IMAGE, ensure_stack_images, mcp_python, run_mcp_plan,
};

const YARD: &str = env!("CARGO_BIN_EXE_yard");

const TOOLS: [&str; 9] = [
    "agent_status",
    "check_deployment_status",
    "check_name_availability",
    "deploy_stack",
    "list_agents",
    "list_deployments",
    "spawn_agents",
    "stop_agent",
    "test_api_connections",
];

fn python() -> PathBuf {
    mcp_python(env!("CARGO_TARGET_TMPDIR").as_ref())
}

async fn daemon() -> Daemon {
    ensure_stack_images().await;
    Daemon::start(
        YARD.as_ref(),
        DaemonSetup {
            stack_image: Some(WEB_IMAGE.to_owned()),
            env: vec![
                ("YARD_AGENT_IMAGE".into(), ECHO_IMAGE.into()),
                (
                    "YARD_AGENT_CACHES".into(),
                    format!(
                        "agentyard-test-mcp-{}:/cache/t",
                        uuid::Uuid::new_v4().simple()
                    ),
                ),
            ],
            ..DaemonSetup::default()
        },
    )
}

/// The three ways in, as the driver's `transport` and `mode`.
fn transports(daemon: &Daemon) -> Vec<(&'static str, Value, &'static str)> {
    let http = json!({"url": format!("{}/mcp", daemon.url()), "token": daemon.token()});
    let stdio = json!({
        "command": [YARD, "mcp"],
        "env": {"YARD_URL": daemon.url(), "YARD_DATA_DIR": daemon.data_dir()},
    });
    vec![
        ("http, newest revision", http.clone(), "auto"),
        ("http, 2025-11-25", http, "legacy"),
        ("stdio through yard mcp", stdio, "auto"),
    ]
}

fn call(tool: &str, args: Value) -> Value {
    json!({"op": "call", "tool": tool, "args": args})
}

#[tokio::test(flavor = "multi_thread")]
async fn every_tool_answers_on_every_transport_as_the_api_does() {
    let python = python();
    let daemon = daemon().await;
    let repo = yard_testkit::git_repo(&[("README.md", "hello\n")]);
    for (round, (what, transport, mode)) in transports(&daemon).into_iter().enumerate() {
        let name = format!("mcp{round}");
        let plan = json!({"transport": transport, "mode": mode, "steps": [
            {"op": "list_tools"},
            call("check_name_availability", json!({"name": name})),
            call("check_name_availability", json!({"name": "ab"})),
            {"op": "call", "tool": "deploy_stack", "args": {"name": name}, "progress": true},
            call("list_deployments", json!({})),
            call("test_api_connections", json!({})),
            call("spawn_agents", json!({"repo": repo.path(), "count": 1, "task": "wait"})),
            call("list_agents", json!({})),
            call("deploy_stack", json!({})),
            call("deploy_stack", json!({"name": name})),
            call("spawn_agents", json!({"repo": repo.path(), "count": "three", "task": "x"})),
            call("spawn_agents", json!({"repo": "/no/such/repo", "count": 1, "task": "x"})),
            call("agent_status", json!({"id": "nope"})),
            call("check_deployment_status", json!({"deploymentId": "no-such-id"})),
        ]});
        let results = run_mcp_plan(&python, &plan);
        assert_eq!(results.len(), 15, "{what}: {results:?}");
        let expected_version = if mode == "legacy" {
            "2025-11-25"
        } else {
            "2026-07-28"
        };
        assert_eq!(results[0]["protocolVersion"], expected_version, "{what}");

        // tools/list: every tool, described, with a schema.
        let tools = results[1]["tools"].as_array().unwrap();
        let names: BTreeSet<&str> = tools.iter().map(|t| t["name"].as_str().unwrap()).collect();
        assert_eq!(names, TOOLS.into_iter().collect(), "{what}");
        for tool in tools {
            assert!(
                tool["description"].as_str().unwrap().len() > 40,
                "{what}: {tool}"
            );
            assert_eq!(tool["inputSchema"]["type"], "object", "{what}: {tool}");
        }

        let free = &results[2];
        assert_eq!(
            free["structured"],
            json!({"available": true, "valid": true}),
            "{what}"
        );
        let refused = &results[3]["structured"];
        assert_eq!(
            (refused["valid"].as_bool(), refused["available"].as_bool()),
            (Some(false), Some(false))
        );
        assert!(refused["error"].as_str().unwrap().contains("too short"));

        // deploy_stack: progress that rises to 100, then the final state,
        // the same as the API's record of it.
        let deployed = &results[4];
        assert_eq!(deployed["isError"], false, "{what}: {deployed}");
        let progress: Vec<f64> = deployed["progress"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["progress"].as_f64().unwrap())
            .collect();
        assert!(
            progress.windows(2).all(|w| w[0] < w[1]),
            "{what}: {progress:?}"
        );
        assert_eq!(progress.last(), Some(&100.0), "{what}");
        assert!(deployed["progress"][0]["message"].is_string());
        let deployment = &deployed["structured"];
        assert_eq!(deployment["status"], "completed");
        let id = deployment["id"].as_str().unwrap();
        assert_eq!(
            &daemon.api_get(&format!("/api/deployments/{id}")).await,
            deployment,
            "{what}"
        );

        let listed = &results[5]["structured"]["deployments"];
        assert!(
            listed.as_array().unwrap().iter().any(|d| d["id"] == id),
            "{what}"
        );
        let checks = results[6]["structured"]["checks"].as_array().unwrap();
        assert_eq!(checks.len(), 2);
        assert!(
            checks
                .iter()
                .all(|c| c["ok"] == true && c["latencyMs"].as_f64().unwrap() >= 0.0),
            "{checks:?}"
        );

        let agent = &results[7]["structured"]["agents"][0];
        assert_eq!(agent["status"], "running", "{what}: {}", results[7]);
        let agent_id = agent["id"].as_str().unwrap();
        assert_eq!(
            &daemon.api_get(&format!("/api/agents/{agent_id}")).await,
            agent
        );
        let agents = &results[8]["structured"]["agents"];
        assert!(
            agents
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a["id"] == agent_id)
        );

        // Bad arguments and failures are tool errors a person can act on.
        for (index, needle) in [
            (9, "name"),
            (10, "already taken"),
            (11, "count"),
            (12, "does not exist"),
            (13, "not an agent id"),
            (14, "no deployment"),
        ] {
            let result = &results[index];
            assert_eq!(result["isError"], true, "{what} step {index}: {result}");
            assert!(
                result["text"].as_str().unwrap().contains(needle),
                "{what} step {index}: {result}"
            );
        }

        // agent_status and stop_agent, with the id just learnt.
        let plan = json!({"transport": plan["transport"], "mode": mode, "steps": [
            call("agent_status", json!({"id": agent_id})),
            call("stop_agent", json!({"id": agent_id})),
        ]});
        let results = run_mcp_plan(&python, &plan);
        assert_eq!(
            results[1]["structured"]["status"], "running",
            "{what}: {results:?}"
        );
        assert_eq!(
            results[2]["structured"]["status"], "stopped",
            "{what}: {results:?}"
        );
        assert_eq!(
            daemon.api_get(&format!("/api/agents/{agent_id}")).await["status"],
            "stopped"
        );
        assert!(daemon.cli(&["destroy", &name]).status.success());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn credentials_origins_and_hosts_are_checked() {
    let python = python();
    let daemon = daemon().await;
    let url = format!("{}/mcp", daemon.url());

    // A real client without a credential, or from a foreign page, gets nowhere.
    for transport in [
        json!({"url": url}),
        json!({"url": url, "token": "yard_0000"}),
        json!({"url": url, "token": daemon.token(), "origin": "https://evil.example"}),
    ] {
        let results = run_mcp_plan(
            &python,
            &json!({"transport": transport, "steps": [{"op": "list_tools"}]}),
        );
        assert_eq!(results[0]["op"], "connect", "{transport}: {results:?}");
    }
    // The same refusals on the wire.
    let initialize = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    let post = |origin: Option<&str>, host: Option<&str>, token: Option<&str>| {
        let mut request = yard_testkit::http()
            .post(&url)
            .header("accept", "application/json, text/event-stream")
            .json(&initialize);
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        if let Some(host) = host {
            request = request.header("host", host);
        }
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        async move { request.send().await.unwrap().status().as_u16() }
    };
    let token = daemon.token();
    let own_origin = format!("http://127.0.0.1:{}", daemon.port());
    assert_eq!(post(None, None, None).await, 401);
    assert_eq!(
        post(Some("https://evil.example"), None, Some(&token)).await,
        403
    );
    assert_eq!(post(Some(&own_origin), None, Some(&token)).await, 200);
    assert_eq!(
        post(None, None, Some(&token)).await,
        200,
        "no Origin: not a browser"
    );
    let rebound = post(
        None,
        Some(&format!("evil.example:{}", daemon.port())),
        Some(&token),
    )
    .await;
    assert!(
        rebound == 403 || rebound == 421,
        "a foreign Host is refused: {rebound}"
    );

    // An agent, with its own credential over the control socket, sees and
    // may call only the agent tools.
    let repo = yard_testkit::git_repo(&[("README.md", "hello\n")]);
    let spawned = daemon.cli(&[
        "spawn",
        "--repo",
        &repo.path().display().to_string(),
        "--task",
        "wait",
        "--json",
    ]);
    assert!(
        spawned.status.success(),
        "{}",
        String::from_utf8_lossy(&spawned.stderr)
    );
    let spawned: Value = serde_json::from_slice(&spawned.stdout).unwrap();
    let agent_id = spawned["agents"][0]["id"].as_str().unwrap();
    let agent_token = daemon.sweep().agent_token(agent_id).await;
    let socket = daemon.data_dir().join("control.sock");
    let as_agent = json!({
        "command": [YARD, "mcp", "--socket", socket],
        "env": {"YARD_AGENT_TOKEN": agent_token},
    });
    let results = run_mcp_plan(
        &python,
        &json!({"transport": as_agent, "steps": [
            {"op": "list_tools"},
            call("agent_status", json!({"id": agent_id})),
            call("deploy_stack", json!({"name": "sneaky"})),
        ]}),
    );
    let names: BTreeSet<&str> = results[1]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "agent_status",
            "confirm_action",
            "list_agents",
            "request_guidance",
            "select_option",
            "spawn_agents",
            "stop_agent"
        ]
        .into_iter()
        .collect()
    );
    assert_eq!(results[2]["structured"]["id"], agent_id);
    assert_eq!(results[3]["isError"], true);
    assert!(
        results[3]["text"]
            .as_str()
            .unwrap()
            .contains("not open to agents"),
        "{:?}",
        results[3]
    );
    assert_eq!(
        daemon.api_get("/api/stacks").await["stacks"],
        json!([]),
        "nothing was deployed"
    );
}

/// An agent's own credential, over MCP on the control socket, reaches only
/// the agent and the agents it spawned: it spawns only on its own
/// repository, only as many as the policy allows, and stops only its
/// descendants.
#[tokio::test(flavor = "multi_thread")]
async fn an_agents_credential_reaches_only_itself_and_its_children() {
    let python = python();
    let daemon = daemon().await;
    let policy = daemon.data_dir().join("policy.toml");
    let own = yard_testkit::git_repo(&[("README.md", "own\n")]);
    let other = yard_testkit::git_repo(&[("README.md", "someone else's\n")]);
    let spawn = |repo: &std::path::Path| {
        let out = daemon.cli(&[
            "spawn",
            "--repo",
            &repo.display().to_string(),
            "--task",
            "wait",
            "--json",
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let result: Value = serde_json::from_slice(&out.stdout).unwrap();
        result["agents"][0]["id"].as_str().unwrap().to_owned()
    };
    let me = spawn(own.path());
    let stranger = spawn(other.path());
    let token = daemon.sweep().agent_token(&me).await;
    let as_agent = json!({
        "command": [YARD, "mcp", "--socket", daemon.data_dir().join("control.sock")],
        "env": {"YARD_AGENT_TOKEN": token},
    });
    let run = |steps: Value| {
        let mut results = run_mcp_plan(&python, &json!({"transport": as_agent, "steps": steps}));
        assert_eq!(results[0]["op"], "connected", "{results:?}");
        results.remove(0);
        results
    };
    let text = |result: &Value| result["text"].as_str().unwrap_or_default().to_owned();

    // No spawning until the policy allows it.
    let refused = run(json!([call(
        "spawn_agents",
        json!({"count": 1, "task": "help"})
    )]));
    assert_eq!(refused[0]["isError"], true);
    assert!(text(&refused[0]).contains("may_spawn"), "{refused:?}");
    std::fs::write(&policy, "[agents]\nmay_spawn = 1\n").unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while daemon.api_get("/api/policy").await["fromFile"] != true {
        assert!(
            std::time::Instant::now() < deadline,
            "the policy was not read"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    let stranger_repo = other.path().display().to_string();
    let results = run(json!([
        call(
            "spawn_agents",
            json!({"repo": stranger_repo, "count": 1, "task": "escape"})
        ),
        call("spawn_agents", json!({"count": 2, "task": "too many"})),
        call("spawn_agents", json!({"count": 1, "task": "help"})),
        call("spawn_agents", json!({"count": 1, "task": "one more"})),
        call("list_agents", json!({})),
        call("agent_status", json!({"id": stranger})),
        call("stop_agent", json!({"id": stranger})),
        call("stop_agent", json!({"id": me})),
    ]));
    assert!(
        text(&results[0]).contains("only on its own repository"),
        "{:?}",
        results[0]
    );
    assert!(
        text(&results[1]).contains("may spawn 1"),
        "{:?}",
        results[1]
    );
    let child = &results[2]["structured"]["agents"][0];
    assert_eq!(child["status"], "running", "{:?}", results[2]);
    assert_eq!(child["parent"], me.as_str());
    assert_eq!(
        child["repo"],
        own.path().canonicalize().unwrap().display().to_string()
    );
    let child = child["id"].as_str().unwrap().to_owned();
    assert!(
        text(&results[3]).contains("has spawned 1"),
        "{:?}",
        results[3]
    );
    let seen: BTreeSet<&str> = results[4]["structured"]["agents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert_eq!(seen, [me.as_str(), child.as_str()].into_iter().collect());
    for refused in &results[5..7] {
        assert_eq!(refused["isError"], true);
        assert!(text(refused).contains("no agent"), "{refused:?}");
    }
    assert!(
        text(&results[7]).contains("only agents it spawned"),
        "{:?}",
        results[7]
    );

    // The person's view: the stranger runs on; the child is the agent's to
    // stop.
    let status = |id: &str| {
        let path = format!("/api/agents/{id}");
        let daemon = &daemon;
        async move { daemon.api_get(&path).await["status"].clone() }
    };
    assert_eq!(status(&stranger).await, "running");
    let stopped = run(json!([call("stop_agent", json!({"id": child}))]));
    assert_eq!(stopped[0]["structured"]["status"], "stopped", "{stopped:?}");
    assert_eq!(status(&me).await, "running");
}
