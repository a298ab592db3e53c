//! Tests of the fake Gitea itself: that it answers the way Gitea does
//! (statuses, shapes, authentication, Git over HTTP, webhooks), that it
//! catches requests breaking Gitea's Swagger document, and that its faults
//! fire. The yard's own forge tests build on these guarantees.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Output};

use axum::Router;
use axum::body::Bytes;
use axum::http::HeaderMap;
use axum::routing::post;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use yard_testkit::{GiteaFake, git, git_repo, http};

const ADMIN: &str = "root-admin";
const PASSWORD: &str = "admin-password-1";

/// One API call; its status and JSON body (`Null` when empty).
async fn call(
    fake: &GiteaFake,
    method: reqwest::Method,
    path: &str,
    auth: Auth<'_>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = http().request(method, format!("{}{path}", fake.api_url()));
    request = match auth {
        Auth::None => request,
        Auth::Token(token) => request.header("Authorization", format!("token {token}")),
        Auth::Basic(user, password) => request.basic_auth(user, Some(password)),
    };
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, body)
}

#[derive(Clone, Copy)]
enum Auth<'a> {
    None,
    Token(&'a str),
    Basic(&'a str, &'a str),
}

use reqwest::Method as M;

/// Makes organisation `org` with the admin's token and puts `user` in its
/// Owners team.
async fn org_with_owner(fake: &GiteaFake, admin: &str, org: &str, user: &str) {
    let admin = Auth::Token(admin);
    let (status, _) = call(
        fake,
        M::POST,
        "/orgs",
        admin,
        Some(json!({ "username": org })),
    )
    .await;
    assert_eq!(status, 201);
    let (_, teams) = call(fake, M::GET, &format!("/orgs/{org}/teams"), admin, None).await;
    let owners = teams[0]["id"].as_i64().unwrap();
    let (status, _) = call(
        fake,
        M::PUT,
        &format!("/teams/{owners}/members/{user}"),
        admin,
        None,
    )
    .await;
    assert_eq!(status, 204);
}

/// Makes a user who may use the API at once.
async fn make_user(fake: &GiteaFake, name: &str, password: &str) {
    let (status, body) = call(
        fake,
        M::POST,
        "/admin/users",
        Auth::Token(&fake.admin_token()),
        Some(json!({
            "username": name,
            "email": format!("{name}@example.com"),
            "password": password,
            "must_change_password": false,
        })),
    )
    .await;
    assert_eq!(status, 201, "{body}");
}

/// `git ARGS` in `dir`, talking to the fake only, never prompting.
fn git_output(dir: &Path, args: &[&str]) -> Output {
    Command::new("git")
        .args(["-c", "credential.helper=", "-c", "http.proxy="])
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_ASKPASS", "true")
        .env_remove("http_proxy")
        .env_remove("https_proxy")
        .env_remove("HTTP_PROXY")
        .env_remove("HTTPS_PROXY")
        .env_remove("ALL_PROXY")
        .env_remove("all_proxy")
        .output()
        .unwrap()
}

/// HMAC-SHA256 written out here, so the fake's is checked against an
/// independent one.
fn hmac_sha256_hex(key: &[u8], message: &[u8]) -> String {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let inner = Sha256::new()
        .chain_update(block.map(|b| b ^ 0x36))
        .chain_update(message)
        .finalize();
    let outer = Sha256::new()
        .chain_update(block.map(|b| b ^ 0x5c))
        .chain_update(inner)
        .finalize();
    hex::encode(outer)
}

#[tokio::test]
async fn version_is_public() {
    let fake = GiteaFake::start(ADMIN, PASSWORD).await;
    let (status, body) = call(&fake, M::GET, "/version", Auth::None, None).await;
    assert_eq!(status, 200);
    assert!(body["version"].as_str().is_some_and(|v| !v.is_empty()));
    fake.assert_no_violations();
}

#[tokio::test]
async fn users_tokens_and_authentication() {
    let fake = GiteaFake::start(ADMIN, PASSWORD).await;
    let admin = fake.admin_token();
    let user = json!({
        "username": "yard-bot",
        "email": "bot@example.com",
        "password": "bot-password-1",
        "must_change_password": false,
    });
    let (status, body) = call(
        &fake,
        M::POST,
        "/admin/users",
        Auth::Token(&admin),
        Some(user.clone()),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["login"], "yard-bot");
    let (status, _) = call(
        &fake,
        M::POST,
        "/admin/users",
        Auth::Token(&admin),
        Some(user),
    )
    .await;
    assert_eq!(status, 422, "an existing user");
    let (status, _) = call(&fake, M::GET, "/users/yard-bot", Auth::None, None).await;
    assert_eq!(status, 200);
    let (status, _) = call(&fake, M::GET, "/users/nobody", Auth::None, None).await;
    assert_eq!(status, 404);

    // Admin routes want a site admin.
    let bot_basic = Auth::Basic("yard-bot", "bot-password-1");
    let (status, _) = call(&fake, M::GET, "/admin/hooks", bot_basic, None).await;
    assert_eq!(status, 403);
    let (status, _) = call(&fake, M::GET, "/admin/hooks", Auth::None, None).await;
    assert_eq!(status, 401);

    // Tokens: Basic authentication as the user; a name once per user.
    let request =
        json!({ "name": "yard", "scopes": ["write:repository", "write:issue", "read:user"] });
    let (status, token) = call(
        &fake,
        M::POST,
        "/users/yard-bot/tokens",
        bot_basic,
        Some(request.clone()),
    )
    .await;
    assert_eq!(status, 201, "{token}");
    let sha1 = token["sha1"].as_str().unwrap().to_owned();
    assert_eq!(sha1.len(), 40);
    let (status, body) = call(
        &fake,
        M::POST,
        "/users/yard-bot/tokens",
        bot_basic,
        Some(request.clone()),
    )
    .await;
    assert_eq!(status, 400, "a reused name: {body}");
    let (status, _) = call(
        &fake,
        M::POST,
        "/users/yard-bot/tokens",
        Auth::Basic("yard-bot", "wrong-password"),
        Some(json!({ "name": "other", "scopes": ["all"] })),
    )
    .await;
    assert_eq!(status, 401, "a wrong password");
    let (status, _) = call(
        &fake,
        M::POST,
        &format!("/users/{ADMIN}/tokens"),
        Auth::Token(&admin),
        Some(json!({ "name": "t", "scopes": ["all"] })),
    )
    .await;
    assert_eq!(
        status, 401,
        "tokens are made with Basic authentication only"
    );
    let (status, body) = call(
        &fake,
        M::POST,
        "/users/yard-bot/tokens",
        bot_basic,
        Some(json!({ "name": "none" })),
    )
    .await;
    assert_eq!(status, 400, "a token needs a scope: {body}");

    // The token works, within its scopes.
    let (status, me) = call(&fake, M::GET, "/user", Auth::Token(&sha1), None).await;
    assert_eq!((status, me["login"].as_str()), (200, Some("yard-bot")));
    let (status, _) = call(
        &fake,
        M::POST,
        "/orgs",
        Auth::Token(&sha1),
        Some(json!({ "username": "nope" })),
    )
    .await;
    assert_eq!(status, 403, "no organization scope");
    let (status, _) = call(
        &fake,
        M::GET,
        "/user",
        Auth::Token("0000000000000000000000000000000000000000"),
        None,
    )
    .await;
    assert_eq!(status, 401, "an unknown token");

    // Listing and deleting by name.
    let (status, list) = call(&fake, M::GET, "/users/yard-bot/tokens", bot_basic, None).await;
    assert_eq!(status, 200);
    assert_eq!(list[0]["name"], "yard");
    assert_eq!(list[0]["sha1"], "", "a listing never shows the secret");
    let (status, _) = call(
        &fake,
        M::DELETE,
        "/users/yard-bot/tokens/yard",
        bot_basic,
        None,
    )
    .await;
    assert_eq!(status, 204);
    assert!(!fake.token_is_valid(&sha1));
    let (status, _) = call(&fake, M::GET, "/user", Auth::Token(&sha1), None).await;
    assert_eq!(status, 401, "a deleted token");
    fake.assert_no_violations();
}

#[tokio::test]
async fn a_user_made_through_the_api_must_change_their_password_first() {
    let fake = GiteaFake::start(ADMIN, PASSWORD).await;
    let admin = fake.admin_token();
    let (status, _) = call(
        &fake,
        M::POST,
        "/admin/users",
        Auth::Token(&admin),
        Some(
            json!({ "username": "late", "email": "late@example.com", "password": "late-password" }),
        ),
    )
    .await;
    assert_eq!(status, 201);
    assert!(fake.user("late").unwrap().must_change_password);
    let basic = Auth::Basic("late", "late-password");
    let token = json!({ "name": "t", "scopes": ["all"] });
    let (status, body) = call(
        &fake,
        M::POST,
        "/users/late/tokens",
        basic,
        Some(token.clone()),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = call(
        &fake,
        M::PATCH,
        "/admin/users/late",
        Auth::Token(&admin),
        Some(json!({ "source_id": 0, "login_name": "late", "must_change_password": false })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = call(&fake, M::POST, "/users/late/tokens", basic, Some(token)).await;
    assert_eq!(status, 201);
    fake.assert_no_violations();
}

#[tokio::test]
async fn organisations_teams_and_members() {
    let fake = GiteaFake::start(ADMIN, PASSWORD).await;
    let admin = fake.admin_token();
    make_user(&fake, "yard-bot", "bot-password-1").await;
    let org = json!({ "username": "yard", "full_name": "The yard", "visibility": "private" });
    let (status, body) = call(
        &fake,
        M::POST,
        "/orgs",
        Auth::Token(&admin),
        Some(org.clone()),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["name"], "yard");
    let (status, _) = call(&fake, M::POST, "/orgs", Auth::Token(&admin), Some(org)).await;
    assert_eq!(status, 422, "an existing organisation");
    let (status, _) = call(&fake, M::GET, "/orgs/yard", Auth::Token(&admin), None).await;
    assert_eq!(status, 200);
    let (status, _) = call(&fake, M::GET, "/orgs/yard", Auth::None, None).await;
    assert_eq!(status, 404, "a private organisation, to a stranger");

    let (status, teams) = call(&fake, M::GET, "/orgs/yard/teams", Auth::Token(&admin), None).await;
    assert_eq!(status, 200);
    assert_eq!(teams[0]["name"], "Owners");
    let team = teams[0]["id"].as_i64().unwrap();
    let (status, _) = call(
        &fake,
        M::PUT,
        &format!("/teams/{team}/members/yard-bot"),
        Auth::Token(&admin),
        None,
    )
    .await;
    assert_eq!(status, 204);
    let (status, _) = call(
        &fake,
        M::PUT,
        &format!("/teams/{team}/members/nobody"),
        Auth::Token(&admin),
        None,
    )
    .await;
    assert_eq!(status, 404);
    let (status, members) = call(
        &fake,
        M::GET,
        &format!("/teams/{team}/members"),
        Auth::Token(&admin),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let logins: Vec<&str> = members
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["login"].as_str())
        .collect();
    assert_eq!(logins, [ADMIN, "yard-bot"]);
    assert_eq!(fake.team_members("yard", "Owners"), [ADMIN, "yard-bot"]);

    // An owner may make the organisation's repositories.
    let (status, repo) = call(
        &fake,
        M::POST,
        "/orgs/yard/repos",
        Auth::Basic("yard-bot", "bot-password-1"),
        Some(json!({ "name": "app", "private": true, "auto_init": true })),
    )
    .await;
    assert_eq!(status, 201, "{repo}");
    assert_eq!(repo["clone_url"], fake.clone_url("yard", "app"));
    assert_eq!(repo["default_branch"], "main");
    assert_eq!(repo["empty"], false);
    let (status, _) = call(
        &fake,
        M::POST,
        "/orgs/yard/repos",
        Auth::Token(&admin),
        Some(json!({ "name": "app" })),
    )
    .await;
    assert_eq!(status, 409);
    fake.assert_no_violations();
}

#[tokio::test]
async fn system_hooks_are_made_with_the_documented_body() {
    let fake = GiteaFake::start(ADMIN, PASSWORD).await;
    let admin = fake.admin_token();
    let hook = json!({
        "type": "gitea",
        "config": {
            "url": "http://127.0.0.1:9/hooks/gitea",
            "content_type": "json",
            "secret": "s3cret",
            "is_system_webhook": "true",
        },
        "events": ["issues", "issue_comment", "pull_request"],
        "active": true,
    });
    let (status, body) = call(
        &fake,
        M::POST,
        "/admin/hooks",
        Auth::Token(&admin),
        Some(hook),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert!(
        body["config"].get("secret").is_none(),
        "Gitea never shows the secret"
    );
    let id = body["id"].as_i64().unwrap();
    let (status, list) = call(&fake, M::GET, "/admin/hooks", Auth::Token(&admin), None).await;
    assert_eq!(status, 200);
    assert_eq!(list.as_array().unwrap().len(), 1);
    let stored = &fake.hooks()[0];
    assert!(stored.system && stored.active);
    assert_eq!(stored.secret, "s3cret");
    assert!(stored.events.contains(&"issue_assign".to_owned()));

    // Without is_system_webhook it is a default hook, not listed as a
    // system one; without active it is inactive.
    let default = json!({ "type": "gitea", "config": { "url": "http://127.0.0.1:9/", "content_type": "json" } });
    let (status, body) = call(
        &fake,
        M::POST,
        "/admin/hooks",
        Auth::Token(&admin),
        Some(default),
    )
    .await;
    assert_eq!(status, 201);
    assert_eq!(body["active"], false);
    assert_eq!(body["events"], json!(["push"]));
    let (_, list) = call(&fake, M::GET, "/admin/hooks", Auth::Token(&admin), None).await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    let (_, all) = call(
        &fake,
        M::GET,
        "/admin/hooks?type=all",
        Auth::Token(&admin),
        None,
    )
    .await;
    assert_eq!(all.as_array().unwrap().len(), 2);

    let (status, body) = call(
        &fake,
        M::PATCH,
        &format!("/admin/hooks/{id}"),
        Auth::Token(&admin),
        Some(json!({ "active": false, "events": ["issues"] })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["active"], false);
    let (status, _) = call(
        &fake,
        M::POST,
        "/admin/hooks",
        Auth::Token(&admin),
        Some(json!({ "type": "gitea", "config": { "url": "not a url", "content_type": "json" } })),
    )
    .await;
    assert_eq!(status, 422);
    fake.assert_no_violations();
}

#[tokio::test]
async fn requests_that_break_the_document_are_recorded() {
    let fake = GiteaFake::start(ADMIN, PASSWORD).await;
    let admin = fake.admin_token();
    // `active` is a boolean in CreateHookOption.
    let wrong = json!({
        "type": "gitea",
        "config": { "url": "http://127.0.0.1:9/", "content_type": "json" },
        "active": "yes",
    });
    let (status, body) = call(
        &fake,
        M::POST,
        "/admin/hooks",
        Auth::Token(&admin),
        Some(wrong),
    )
    .await;
    assert_eq!(status, 422, "Go's decoder refuses it: {body}");
    assert!(fake.hooks().is_empty());
    let violations = fake.take_violations();
    assert_eq!(violations.len(), 1, "{violations:?}");
    assert!(violations[0].contains("$.active"), "{violations:?}");

    // A field Gitea does not know is served, ignored, and recorded.
    let (status, _) = call(
        &fake,
        M::POST,
        "/orgs",
        Auth::Token(&admin),
        Some(json!({ "username": "yard", "is_system_webhook": true })),
    )
    .await;
    assert_eq!(status, 201);
    let violations = fake.take_violations();
    assert!(
        violations.iter().any(|v| v.contains("is_system_webhook")),
        "{violations:?}"
    );

    // A path the document does not have, a missing required field.
    let (status, _) = call(
        &fake,
        M::GET,
        "/admin/nothing-here",
        Auth::Token(&admin),
        None,
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = call(
        &fake,
        M::POST,
        "/admin/users",
        Auth::Token(&admin),
        Some(json!({ "username": "x" })),
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(fake.take_violations().len(), 2);
    fake.assert_no_violations();
}

#[tokio::test]
async fn faults_answer_an_error_then_let_calls_through() {
    let fake = GiteaFake::start(ADMIN, PASSWORD).await;
    let admin = fake.admin_token();
    fake.fail_next("adminCreateUser", 500, 2);
    let user =
        json!({ "username": "bot", "email": "bot@example.com", "password": "bot-password-1" });
    for _ in 0..2 {
        let (status, body) = call(
            &fake,
            M::POST,
            "/admin/users",
            Auth::Token(&admin),
            Some(user.clone()),
        )
        .await;
        assert_eq!(status, 500);
        assert!(body["message"].is_string());
    }
    assert!(fake.user("bot").is_none(), "a failed call changes nothing");
    let (status, _) = call(
        &fake,
        M::POST,
        "/admin/users",
        Auth::Token(&admin),
        Some(user.clone()),
    )
    .await;
    assert_eq!(status, 201);
    assert_eq!(fake.calls("adminCreateUser"), 3);

    // A forge that does the work, then crashes before answering.
    fake.fail_after_next("POST /api/v1/orgs", 502, 1);
    let (status, _) = call(
        &fake,
        M::POST,
        "/orgs",
        Auth::Token(&admin),
        Some(json!({ "username": "yard" })),
    )
    .await;
    assert_eq!(status, 502);
    assert!(fake.org("yard").is_some());
    let (status, _) = call(
        &fake,
        M::POST,
        "/orgs",
        Auth::Token(&admin),
        Some(json!({ "username": "yard" })),
    )
    .await;
    assert_eq!(status, 422, "the retry finds it made");
    fake.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn git_over_http_and_pull_requests() {
    let fake = GiteaFake::start(ADMIN, PASSWORD).await;
    let admin = fake.admin_token();
    make_user(&fake, "yard-bot", "bot-password-1").await;
    let (status, _) = call(
        &fake,
        M::POST,
        "/orgs",
        Auth::Token(&admin),
        Some(json!({ "username": "yard" })),
    )
    .await;
    assert_eq!(status, 201);
    let (status, _) = call(
        &fake,
        M::POST,
        "/admin/users/yard/repos",
        Auth::Token(&admin),
        Some(json!({ "name": "app", "private": true })),
    )
    .await;
    assert_eq!(status, 201);
    let first = fake.seed_repo("yard", "app", &[("README.md", "# app\n")]);
    assert_eq!(fake.refs("yard", "app")["refs/heads/main"], first);
    let (_, teams) = call(&fake, M::GET, "/orgs/yard/teams", Auth::Token(&admin), None).await;
    let team = teams[0]["id"].as_i64().unwrap();
    call(
        &fake,
        M::PUT,
        &format!("/teams/{team}/members/yard-bot"),
        Auth::Token(&admin),
        None,
    )
    .await;
    let token = fake.add_token("yard-bot", "git", &["write:repository", "write:issue"]);

    // Without credentials: refused with a Basic challenge.
    let response = http()
        .get(format!(
            "{}/info/refs?service=git-upload-pack",
            fake.clone_url("yard", "app")
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert!(
        response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Basic")
    );
    let scratch = tempfile::tempdir().unwrap();
    let out = git_output(
        scratch.path(),
        &["clone", "-q", &fake.clone_url("yard", "app"), "anonymous"],
    );
    assert!(!out.status.success(), "a clone without credentials");

    // With user:token.
    let url = fake.clone_url_with("yard", "app", "yard-bot", &token);
    let out = git_output(scratch.path(), &["clone", "-q", &url, "work"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let work = scratch.path().join("work");
    assert_eq!(
        std::fs::read_to_string(work.join("README.md")).unwrap(),
        "# app\n"
    );

    // A pushed branch shows up in the fake's refs.
    git(&work, &["checkout", "-q", "-b", "agent/issue-1"]);
    std::fs::write(work.join("fix.txt"), "fixed\n").unwrap();
    git(&work, &["add", "."]);
    git(&work, &["commit", "-qm", "fix"]);
    let out = git_output(&work, &["push", "-q", "origin", "agent/issue-1"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pushed = git(&work, &["rev-parse", "HEAD"]);
    fake.fail_once("git-receive-pack", 500);
    git(&work, &["commit", "-q", "--allow-empty", "-m", "more"]);
    let out = git_output(&work, &["push", "-q", "origin", "agent/issue-1"]);
    assert!(!out.status.success(), "a push while the forge fails");
    assert_eq!(fake.refs("yard", "app")["refs/heads/agent/issue-1"], pushed);
    git(&work, &["reset", "-q", "--hard", "HEAD~1"]);
    assert_eq!(fake.refs("yard", "app")["refs/heads/agent/issue-1"], pushed);
    assert_eq!(fake.calls("git-receive-pack"), 2);

    // A read-only token may fetch but not push.
    let reader = fake.add_token("yard-bot", "reader", &["read:repository"]);
    let local = git_repo(&[("a.txt", "a\n")]);
    let read_url = fake.clone_url_with("yard", "app", "yard-bot", &reader);
    let out = git_output(
        local.path(),
        &["push", "-q", &read_url, "HEAD:refs/heads/other"],
    );
    assert!(!out.status.success(), "a push with a read-only token");

    // The pull request.
    let bot = Auth::Token(&token);
    let pull =
        json!({ "head": "agent/issue-1", "base": "main", "title": "Fix #1", "body": "Closes #1" });
    let (status, body) = call(
        &fake,
        M::POST,
        "/repos/yard/app/pulls",
        bot,
        Some(pull.clone()),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["head"]["sha"], pushed);
    assert_eq!(body["base"]["ref"], "main");
    let number = body["number"].as_i64().unwrap();
    let (status, _) = call(&fake, M::POST, "/repos/yard/app/pulls", bot, Some(pull)).await;
    assert_eq!(status, 409, "one pull request per head and base");
    let (status, _) = call(
        &fake,
        M::POST,
        "/repos/yard/app/pulls",
        bot,
        Some(json!({ "head": "missing", "base": "main", "title": "x" })),
    )
    .await;
    assert_eq!(status, 404, "a missing head branch, as Gitea answers it");
    let (status, list) = call(&fake, M::GET, "/repos/yard/app/pulls", bot, None).await;
    assert_eq!(status, 200);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["number"], number);
    assert_eq!(fake.pulls("yard", "app")[0].head, "agent/issue-1");
    assert!(
        fake.refs("yard", "app")
            .contains_key(&format!("refs/pull/{number}/head"))
    );
    fake.assert_no_violations();
}

#[tokio::test]
async fn issues_and_comments() {
    let fake = GiteaFake::start(ADMIN, PASSWORD).await;
    let token = fake.admin_token();
    let admin = Auth::Token(&token);
    fake.seed_repo(ADMIN, "notes", &[("a.txt", "a\n")]);
    let (status, issue) = call(
        &fake,
        M::POST,
        &format!("/repos/{ADMIN}/notes/issues"),
        admin,
        Some(json!({ "title": "Broken", "body": "Please fix" })),
    )
    .await;
    assert_eq!(status, 201, "{issue}");
    let number = issue["number"].as_i64().unwrap();
    let (status, got) = call(
        &fake,
        M::GET,
        &format!("/repos/{ADMIN}/notes/issues/{number}"),
        admin,
        None,
    )
    .await;
    assert_eq!((status, got["title"].as_str()), (200, Some("Broken")));
    let (status, _) = call(
        &fake,
        M::GET,
        &format!("/repos/{ADMIN}/notes/issues/99"),
        admin,
        None,
    )
    .await;
    assert_eq!(status, 404);
    let (status, comment) = call(
        &fake,
        M::POST,
        &format!("/repos/{ADMIN}/notes/issues/{number}/comments"),
        admin,
        Some(json!({ "body": "On it" })),
    )
    .await;
    assert_eq!(status, 201, "{comment}");
    let (status, comments) = call(
        &fake,
        M::GET,
        &format!("/repos/{ADMIN}/notes/issues/{number}/comments"),
        admin,
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(comments[0]["body"], "On it");
    assert_eq!(fake.comments(ADMIN, "notes", number)[0].body, "On it");
    fake.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_reach_the_receiver_signed() {
    let fake = GiteaFake::start(ADMIN, PASSWORD).await;
    let admin = fake.admin_token();

    // A tiny receiver that hands over what it gets.
    let (sender, mut received) = tokio::sync::mpsc::unbounded_channel::<(HeaderMap, Bytes)>();
    let app = Router::new().route(
        "/hooks/gitea",
        post(move |headers: HeaderMap, body: Bytes| {
            let sender = sender.clone();
            async move {
                let _ = sender.send((headers, body));
                axum::http::StatusCode::ACCEPTED
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let receiver = format!("http://{}/hooks/gitea", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let hook = json!({
        "type": "gitea",
        "config": { "url": receiver, "content_type": "json", "secret": "s3cret", "is_system_webhook": "true" },
        "events": ["issues", "issue_comment"],
        "active": true,
    });
    let (status, _) = call(
        &fake,
        M::POST,
        "/admin/hooks",
        Auth::Token(&admin),
        Some(hook),
    )
    .await;
    assert_eq!(status, 201);

    let sent = fake
        .deliver("issues", json!({ "action": "opened", "number": 1 }))
        .await;
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].status, Some(202));
    let (headers, body) = received.recv().await.unwrap();
    assert_eq!(headers["x-gitea-event"], "issues");
    assert_eq!(headers["content-type"], "application/json");
    let delivery = headers["x-gitea-delivery"].to_str().unwrap();
    assert!(uuid::Uuid::parse_str(delivery).is_ok(), "{delivery}");
    assert_eq!(
        headers["x-gitea-signature"].to_str().unwrap(),
        hmac_sha256_hex(b"s3cret", &body)
    );
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap()["action"],
        "opened"
    );

    // Assigning an issue to the bot: Gitea's issue_assign payload.
    make_user(&fake, "yard-bot", "bot-password-1").await;
    org_with_owner(&fake, &admin, "yard", "yard-bot").await;
    fake.seed_repo("yard", "app", &[("README.md", "# app\n")]);
    let number = fake.add_issue("yard", "app", "Add a feature", "Details");
    let sent = fake.assign_issue("yard", "app", number, "yard-bot").await;
    assert_eq!(sent[0].status, Some(202));
    let (headers, body) = received.recv().await.unwrap();
    assert_eq!(headers["x-gitea-event"], "issues");
    assert_eq!(headers["x-gitea-event-type"], "issue_assign");
    assert_eq!(
        headers["x-gitea-signature"].to_str().unwrap(),
        hmac_sha256_hex(b"s3cret", &body)
    );
    let payload: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(payload["action"], "assigned");
    assert_eq!(payload["number"], number);
    assert_eq!(payload["issue"]["assignees"][0]["login"], "yard-bot");
    assert_eq!(payload["repository"]["full_name"], "yard/app");
    assert_eq!(
        payload["repository"]["clone_url"],
        fake.clone_url("yard", "app")
    );
    assert_eq!(payload["repository"]["default_branch"], "main");
    assert_eq!(payload["sender"]["login"], ADMIN);
    assert_eq!(
        fake.issue("yard", "app", number).unwrap().assignees,
        ["yard-bot"]
    );

    // A comment in the web interface: Gitea's issue_comment payload.
    let sent = fake
        .comment_as("yard", "app", number, ADMIN, "@yard-bot go on")
        .await;
    assert_eq!(sent[0].status, Some(202));
    let (headers, body) = received.recv().await.unwrap();
    assert_eq!(headers["x-gitea-event"], "issue_comment");
    let payload: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(payload["action"], "created");
    assert_eq!(payload["issue"]["number"], number);
    assert_eq!(payload["comment"]["body"], "@yard-bot go on");
    assert_eq!(payload["comment"]["user"]["login"], ADMIN);
    assert_eq!(payload["is_pull"], false);
    let stored = fake.comments("yard", "app", number);
    assert_eq!(payload["comment"]["id"], stored[0].id);
    assert_eq!(fake.deliveries().len(), 3);
    fake.assert_no_violations();
}

#[tokio::test]
async fn a_users_permission_is_told_to_admins_repository_admins_and_themselves() {
    let fake = GiteaFake::start(ADMIN, PASSWORD).await;
    let admin = fake.admin_token();
    for name in ["writer", "reader"] {
        make_user(&fake, name, &format!("{name}-password-1")).await;
    }
    org_with_owner(&fake, &admin, "yard", "writer").await;
    fake.seed_repo("yard", "app", &[("README.md", "# app\n")]);
    let reader = fake.add_token("reader", "t", &["all"]);
    let writer = fake.add_token("writer", "t", &["all"]);
    let permission = |token: String, user: &'static str| {
        let fake = &fake;
        async move {
            call(
                fake,
                M::GET,
                &format!("/repos/yard/app/collaborators/{user}/permission"),
                Auth::Token(&token),
                None,
            )
            .await
        }
    };
    let (status, body) = permission(admin.clone(), "writer").await;
    assert_eq!((status, body["permission"].as_str()), (200, Some("owner")));
    assert_eq!(body["user"]["login"], "writer");
    assert_eq!(
        permission(admin.clone(), "reader").await.1["permission"],
        "read"
    );
    assert_eq!(
        permission(writer.clone(), "reader").await.1["permission"],
        "read"
    );
    assert_eq!(
        permission(reader.clone(), "reader").await.1["permission"],
        "read"
    );
    // A reader may not ask about others; nobody learns of a missing user.
    assert_eq!(permission(reader.clone(), "writer").await.0, 403);
    assert_eq!(permission(admin.clone(), "nobody").await.0, 404);
    assert_eq!(
        call(
            &fake,
            M::GET,
            "/repos/yard/app/collaborators/reader/permission",
            Auth::None,
            None
        )
        .await
        .0,
        401
    );
    fake.assert_no_violations();
}

#[test]
fn the_test_hmac_is_hmac() {
    // RFC 4231, test case 2.
    assert_eq!(
        hmac_sha256_hex(b"Jefe", b"what do ya want for nothing?"),
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
}
