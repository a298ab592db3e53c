//! Agents belong to people, tried the way an attacker would: another
//! person's token against someone's agents, repositories outside the roots
//! (missing, 0700, another owner's, through a symlink or `..`), images that
//! are not allowed, caps on running agents, and a revoked token's agents.

#![allow(clippy::unwrap_used)]

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use reqwest::Method;
use serde_json::{Value, json};
use support::{Options, TestYard, assert_error_response};
use yard_testkit::{ECHO_IMAGE, WEB_IMAGE, git_repo_at};

/// Makes a token as `body` asks; returns its secret and id.
async fn token(yard: &TestYard, body: Value) -> (String, String) {
    let response = yard.post_json("/api/tokens", &body).send().await.unwrap();
    let status = response.status();
    let created: Value = response.json().await.unwrap();
    assert_eq!(status, 201, "{created}");
    (
        created["secret"].as_str().unwrap().to_owned(),
        created["id"].as_str().unwrap().to_owned(),
    )
}

/// Makes a user token named `name`; returns its secret.
async fn user(yard: &TestYard, name: &str) -> String {
    token(yard, json!({ "name": name })).await.0
}

/// A repository named `name` inside the yard's repository root.
fn repo_in_root(yard: &TestYard, name: &str) -> String {
    let path = yard.repos.join(name);
    git_repo_at(&path, &[("README.md", "hello\n")]);
    path.display().to_string()
}

/// `POST /api/agents` with `token`.
async fn spawn_as(yard: &TestYard, token: &str, body: Value) -> reqwest::Response {
    yard.http
        .post(format!("{}/api/agents", yard.base))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// Spawns one agent as `token`; returns its id.
async fn agent_of(yard: &TestYard, token: &str, repo: &str) -> String {
    let response = spawn_as(yard, token, json!({"repo": repo, "task": "wait"})).await;
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["agents"][0]["status"], "running", "{body}");
    body["agents"][0]["id"].as_str().unwrap().to_owned()
}

/// `method path` with `token`.
async fn send(yard: &TestYard, method: Method, path: &str, token: &str) -> reqwest::Response {
    yard.http
        .request(method, format!("{}{path}", yard.base))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

/// `method path` with `token`, as JSON.
async fn json_of(yard: &TestYard, method: Method, path: &str, token: &str) -> Value {
    send(yard, method, path, token).await.json().await.unwrap()
}

#[tokio::test]
async fn people_see_and_act_on_their_own_agents_only() {
    let yard = TestYard::start(Options::default()).await;
    let alice = user(&yard, "alice").await;
    let bob = user(&yard, "bob").await;
    let repo = repo_in_root(&yard, "app");
    let id = agent_of(&yard, &alice, &repo).await;

    // Bob can neither see nor touch it: every route answers as for an
    // agent that does not exist.
    let listed: Value = json_of(&yard, Method::GET, "/api/agents", &bob).await;
    assert_eq!(listed["agents"], json!([]));
    for (method, path) in [
        (Method::GET, format!("/api/agents/{id}")),
        (Method::POST, format!("/api/agents/{id}/stop")),
        (Method::GET, format!("/api/agents/{id}/logs")),
        (Method::GET, format!("/api/agents/{id}/attach")),
        (Method::GET, format!("/api/agents/{id}/diff")),
        (Method::POST, format!("/api/agents/{id}/merge")),
        (Method::GET, format!("/api/agents/{id}/audit")),
    ] {
        let response = send(&yard, method.clone(), &path, &bob).await;
        let message = assert_error_response(response, 404, "not_found").await;
        assert!(message.contains("no agent"), "{method} {path}: {message}");
    }
    let none_such = send(&yard, Method::GET, "/api/agents/ffffffff", &bob).await;
    assert_error_response(none_such, 404, "not_found").await;

    // Alice and the admin see it, with its owner.
    let mine: Value = json_of(&yard, Method::GET, &format!("/api/agents/{id}"), &alice).await;
    assert_eq!(
        (mine["owner"].as_str(), mine["status"].as_str()),
        (Some("alice"), Some("running"))
    );
    let all = yard.get_json("/api/agents").await;
    assert_eq!(all["agents"][0]["id"], id.as_str());

    // Bob's prune leaves Alice's work alone; hers removes it.
    let stopped = send(
        &yard,
        Method::POST,
        &format!("/api/agents/{id}/stop"),
        &alice,
    )
    .await;
    assert_eq!(stopped.status(), 200);
    let pruned: Value = json_of(&yard, Method::POST, "/api/agents/prune", &bob).await;
    assert_eq!(pruned["pruned"], json!([]));
    let branch = format!("yard/{id}");
    let branches = yard_testkit::git(Path::new(&repo), &["branch", "--list", &branch]);
    assert!(!branches.is_empty(), "the branch came back and stays");
    let pruned: Value = json_of(&yard, Method::POST, "/api/agents/prune", &alice).await;
    assert_eq!(pruned["pruned"][0]["id"], id.as_str());
}

/// Calls MCP tool `tool` with `arguments`; returns the result as JSON
/// (`isError`, `content`, `structuredContent`).
async fn call_tool(
    client: &rmcp::service::RunningService<rmcp::RoleClient, ()>,
    tool: &'static str,
    arguments: Value,
) -> Value {
    let params = rmcp::model::CallToolRequestParams::new(tool)
        .with_arguments(arguments.as_object().unwrap().clone());
    serde_json::to_value(client.call_tool(params).await.unwrap()).unwrap()
}

/// The text of a tool error, which must say something.
fn tool_error(result: &Value) -> String {
    assert_eq!(result["isError"], true, "{result}");
    let text = result["content"][0]["text"].as_str().unwrap().to_owned();
    assert!(text.len() > 10, "an error says why: {result}");
    text
}

#[tokio::test]
async fn over_mcp_people_see_and_act_on_their_own_agents_only() {
    let yard = TestYard::start(Options::default()).await;
    let alice = user(&yard, "alice").await;
    let bob = user(&yard, "bob").await;
    let repo = repo_in_root(&yard, "app");
    let id = agent_of(&yard, &alice, &repo).await;

    // Bob's assistant neither lists nor touches it: every tool answers as
    // for an agent that does not exist.
    let mcp = yard.mcp_as(&bob).await;
    let listed = call_tool(&mcp, "list_agents", json!({})).await;
    assert_ne!(listed["isError"], true, "{listed}");
    assert_eq!(listed["structuredContent"]["agents"], json!([]), "{listed}");
    let none_such = "ffffffff";
    for tool in ["agent_status", "stop_agent"] {
        let unknown = tool_error(&call_tool(&mcp, tool, json!({"id": none_such})).await);
        assert!(unknown.contains("no agent"), "{tool}: {unknown}");
        let refused = call_tool(&mcp, tool, json!({"id": id})).await;
        assert_eq!(
            refused["structuredContent"],
            Value::Null,
            "{tool}: {refused}"
        );
        let message = tool_error(&refused);
        assert_eq!(
            message.replace(&id, "ID"),
            unknown.replace(none_such, "ID"),
            "{tool}: the same answer as for no agent at all"
        );
        assert!(!message.contains("alice"), "{tool}: {message}");
    }
    mcp.cancel().await.unwrap();

    // The agent runs on, still Alice's.
    let mine: Value = json_of(&yard, Method::GET, &format!("/api/agents/{id}"), &alice).await;
    assert_eq!(
        (mine["owner"].as_str(), mine["status"].as_str()),
        (Some("alice"), Some("running"))
    );

    // The admin's assistant lists it.
    let admin = yard.mcp_as(&yard.token).await;
    let all = call_tool(&admin, "list_agents", json!({})).await;
    assert_ne!(all["isError"], true, "{all}");
    assert_eq!(
        all["structuredContent"]["agents"][0]["id"],
        id.as_str(),
        "{all}"
    );
    admin.cancel().await.unwrap();
}

#[tokio::test]
async fn repositories_outside_the_roots_are_refused_without_saying_whether_they_exist() {
    let yard = TestYard::start(Options::default()).await;
    let alice = user(&yard, "alice").await;

    // Someone else's private repository, outside the roots.
    let elsewhere = tempfile::tempdir().unwrap();
    let private = elsewhere.path().join("private");
    git_repo_at(&private, &[("secret.txt", "hunter2\n")]);
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::chown(&private, Some(4321), Some(4321)).unwrap();
    // A symlink and a `..` inside the roots that lead out.
    std::os::unix::fs::symlink(&private, yard.repos.join("shortcut")).unwrap();
    let config_before = std::fs::read_to_string(private.join(".git/config")).unwrap();

    let mut messages = Vec::new();
    for path in [
        private.display().to_string(),
        yard.repos.join("shortcut").display().to_string(),
        format!("{}/../../../{}", yard.repos.display(), private.display()),
        "/etc".to_owned(),
        "/no/such/repository".to_owned(),
    ] {
        let response = spawn_as(&yard, &alice, json!({"repo": path, "task": "read it"})).await;
        let message = assert_error_response(response, 403, "forbidden").await;
        assert!(message.contains("repository roots"), "{path}: {message}");
        messages.push(message.replace(&path, "PATH"));
    }
    messages.dedup();
    assert_eq!(
        messages.len(),
        1,
        "one answer for every path outside: {messages:?}"
    );
    let relative = spawn_as(&yard, &alice, json!({"repo": "repos/app", "task": "x"})).await;
    assert_error_response(relative, 400, "invalid_request").await;
    assert_eq!(
        std::fs::read_to_string(private.join(".git/config")).unwrap(),
        config_before,
        "the repository was not touched"
    );
    assert_eq!(yard.get_json("/api/agents").await["agents"], json!([]));
    assert!(yard.sweep.leftovers().await.is_empty());

    // Inside the roots, a missing repository is simply missing.
    let missing = spawn_as(
        &yard,
        &alice,
        json!({"repo": yard.repos.join("nothing-here").display().to_string(), "task": "x"}),
    )
    .await;
    let message = assert_error_response(missing, 400, "invalid_request").await;
    assert!(message.contains("does not exist"), "{message}");

    // Admins may go anywhere, unless the roots are strict.
    let outside = yard_testkit::git_repo(&[("README.md", "admin's\n")]);
    let body = json!({"repo": outside.path().display().to_string(), "task": "x"});
    let admin_spawn = spawn_as(&yard, &yard.token, body.clone()).await;
    assert_eq!(admin_spawn.status(), 201);
    let strict = TestYard::start(Options {
        strict_roots: true,
        ..Options::default()
    })
    .await;
    let refused = spawn_as(&strict, &strict.token, body).await;
    assert_error_response(refused, 403, "forbidden").await;
}

#[tokio::test]
async fn users_run_only_allowed_images_and_bad_references_are_400() {
    let yard = TestYard::start(Options::default()).await;
    let alice = user(&yard, "alice").await;
    let repo = repo_in_root(&yard, "app");
    let with_image = |image: &str| json!({"repo": repo, "task": "x", "image": image});

    let other = spawn_as(&yard, &alice, with_image(ECHO_IMAGE)).await;
    let message = assert_error_response(other, 403, "forbidden").await;
    assert!(message.contains("YARD_AGENT_IMAGES"), "{message}");
    for bad in ["Bad Image!", "../../etc/passwd", "x:", ""] {
        let response = spawn_as(&yard, &alice, with_image(bad)).await;
        let message = assert_error_response(response, 400, "invalid_request").await;
        assert!(
            message.contains("not an image reference"),
            "{bad}: {message}"
        );
        let as_admin = yard
            .post_json("/api/agents", &with_image(bad))
            .send()
            .await
            .unwrap();
        assert_error_response(as_admin, 400, "invalid_request").await;
    }
    assert_eq!(yard.get_json("/api/agents").await["agents"], json!([]));
    let git_config = std::fs::read_to_string(Path::new(&repo).join(".git/config")).unwrap();
    assert!(
        !git_config.contains("preciousObjects"),
        "a refused spawn touches nothing"
    );

    // The allowed image, as written or as the engine reads it; any image
    // for an admin.
    let allowed = spawn_as(&yard, &alice, with_image(WEB_IMAGE)).await;
    assert_eq!(allowed.status(), 201);
    let admin = yard
        .post_json("/api/agents", &with_image(ECHO_IMAGE))
        .send()
        .await
        .unwrap();
    assert_eq!(admin.status(), 201);
}

#[tokio::test]
async fn caps_on_running_agents_hold_per_person_and_in_all() {
    let yard = TestYard::start(Options {
        max_agents_per_owner: 2,
        max_agents_total: 3,
        ..Options::default()
    })
    .await;
    let alice = user(&yard, "alice").await;
    let bob = user(&yard, "bob").await;
    let repo = repo_in_root(&yard, "app");
    let spawn = |token: &str, count: u32| {
        let request = yard
            .http
            .post(format!("{}/api/agents", yard.base))
            .bearer_auth(token)
            .json(&json!({"repo": repo, "task": "x", "count": count}));
        async move { request.send().await.unwrap() }
    };

    assert_eq!(spawn(&alice, 2).await.status(), 201);
    let over = spawn(&alice, 1).await;
    let message = assert_error_response(over, 429, "too_many_agents").await;
    assert!(message.contains("YARD_MAX_AGENTS_PER_OWNER"), "{message}");
    assert_eq!(spawn(&bob, 1).await.status(), 201);
    let full = spawn(&bob, 1).await;
    let message = assert_error_response(full, 429, "too_many_agents").await;
    assert!(message.contains("YARD_MAX_AGENTS_TOTAL"), "{message}");
    // Concurrent spawns cannot squeeze past the cap together.
    let id = yard.get_json("/api/agents").await["agents"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    yard.post_json(&format!("/api/agents/{id}/stop"), &json!({}))
        .send()
        .await
        .unwrap();
    let carol = user(&yard, "carol").await;
    let (a, b) = tokio::join!(spawn(&carol, 1), spawn(&carol, 1));
    let mut statuses = [a.status().as_u16(), b.status().as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, [201, 429]);
}

#[tokio::test]
async fn a_revoked_tokens_agents_lose_their_credentials_at_once_and_stop() {
    let yard = TestYard::start(Options::default()).await;
    let repo = repo_in_root(&yard, "app");
    let hook = |credential: String| {
        let request = yard
            .http
            .post(format!("{}/hook", yard.base))
            .bearer_auth(credential)
            .json(
                &json!({"hook_event_name": "PreToolUse", "tool_name": "Bash",
                          "tool_input": {"command": "ls"}}),
            );
        async move { request.send().await.unwrap().status().as_u16() }
    };

    // By default, revoking stops the agents.
    let alice = user(&yard, "alice").await;
    let id = agent_of(&yard, &alice, &repo).await;
    let secret = yard.sweep.agent_token(&id).await;
    assert_eq!(hook(secret.clone()).await, 200);
    let revoked: Value = yard
        .delete("/api/tokens/alice")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(revoked["stoppedAgents"], json!([id]));
    assert_eq!(hook(secret).await, 401);
    let agent = yard.get_json(&format!("/api/agents/{id}")).await;
    assert_eq!(agent["status"], "stopped", "{agent}");
    assert!(
        agent["message"].as_str().unwrap().contains("revoked"),
        "{agent}"
    );

    // With keepAgents they run on, mute until a token takes over.
    let (bob, bob_id) = token(&yard, json!({"name": "bob"})).await;
    let id = agent_of(&yard, &bob, &repo).await;
    let secret = yard.sweep.agent_token(&id).await;
    let kept = yard
        .delete("/api/tokens/bob?keepAgents=true")
        .send()
        .await
        .unwrap();
    assert_eq!(kept.status(), 200);
    assert_eq!(
        hook(secret.clone()).await,
        401,
        "the credential died with the token"
    );
    assert_eq!(
        yard.get_json(&format!("/api/agents/{id}")).await["status"],
        "running"
    );

    // A new token under the same name (in any case) owns nothing of the old.
    let new_bob = user(&yard, "BOB").await;
    let seen = send(&yard, Method::GET, &format!("/api/agents/{id}"), &new_bob).await;
    assert_error_response(seen, 404, "not_found").await;
    assert_eq!(hook(secret.clone()).await, 401);
    let dup = yard
        .post_json("/api/tokens", &json!({"name": "bob"}))
        .send()
        .await
        .unwrap();
    assert_error_response(dup, 409, "token_name_taken").await;

    // An admin's explicit take-over carries the ownership and revives the
    // credentials; taking over from an active token is refused.
    let (robert, _) = token(&yard, json!({"name": "robert", "takesOver": bob_id})).await;
    let seen: Value = json_of(&yard, Method::GET, &format!("/api/agents/{id}"), &robert).await;
    assert_eq!(seen["id"], id.as_str());
    assert_eq!(hook(secret).await, 200);
    let active = yard
        .post_json("/api/tokens", &json!({"name": "x", "takesOver": "robert"}))
        .send()
        .await
        .unwrap();
    let message = assert_error_response(active, 409, "invalid_request").await;
    assert!(message.contains("revoke it first"), "{message}");
}
