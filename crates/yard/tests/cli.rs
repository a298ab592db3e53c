//! The `yard` binary end to end: the daemon as a real process, the CLI as a
//! real client, signals as real signals.

#![allow(clippy::unwrap_used)]

use std::process::Output;
use std::time::{Duration, Instant};

use serde_json::Value;
use yard_testkit::{Daemon, DaemonSetup, SLOW_IMAGE, WEB_IMAGE, ensure_stack_images};

const YARD: &str = env!("CARGO_BIN_EXE_yard");

async fn daemon(image: &str) -> Daemon {
    ensure_stack_images().await;
    Daemon::start(
        YARD.as_ref(),
        DaemonSetup {
            stack_image: Some(image.to_owned()),
            ..DaemonSetup::default()
        },
    )
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).trim().to_owned()
}

#[tokio::test]
async fn deploy_prints_the_url_and_the_stack_answers_there() {
    let daemon = daemon(WEB_IMAGE).await;
    assert_eq!(daemon.cli(&["check", "alice"]).status.code(), Some(0));

    let deployed = daemon.cli(&["deploy", "alice"]);
    assert!(deployed.status.success(), "{}", stderr(&deployed));
    let url = stdout(&deployed);
    assert_eq!(url, format!("http://alice.localhost:{}", daemon.port()));
    assert!(
        stderr(&deployed).contains("[100%] Completed"),
        "{}",
        stderr(&deployed)
    );

    // The stack's address, resolved to the daemon as a browser would.
    let page = reqwest_for_localhost_subdomains()
        .get(&url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(page.trim(), "stack alice");

    let listed = daemon.cli(&["stacks"]);
    assert!(stdout(&listed).contains("alice") && stdout(&listed).contains("completed"));
    let json: Value = serde_json::from_str(&stdout(&daemon.cli(&["stacks", "--json"]))).unwrap();
    assert_eq!(json["stacks"][0]["url"], url.as_str());

    let taken = daemon.cli(&["check", "alice"]);
    assert_eq!(taken.status.code(), Some(1));
    assert!(stdout(&taken).contains("taken"));
    let again = daemon.cli(&["deploy", "alice"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        stderr(&again).contains("already taken"),
        "{}",
        stderr(&again)
    );

    // Killed by hand: healed, and `yard stacks` says so; `yard stacks
    // restart` makes it again on demand.
    let container = daemon.sweep().inspect("agentyard.stack=alice").await;
    let killed = std::process::Command::new("docker")
        .args(["kill", container.id.as_deref().unwrap()])
        .output()
        .unwrap();
    assert!(killed.status.success(), "{}", stderr(&killed));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let json: Value =
            serde_json::from_str(&stdout(&daemon.cli(&["stacks", "--json"]))).unwrap();
        let stack = &json["stacks"][0];
        if stack["restarts"] == 1 && stack["health"] == "running" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "not healed: {json}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let listed = stdout(&daemon.cli(&["stacks"]));
    assert!(listed.contains("RESTARTS"), "{listed}");
    assert!(
        listed.contains("last failure: it was killed by hand"),
        "{listed}"
    );
    let restarted = daemon.cli(&["stacks", "restart", "alice"]);
    assert!(restarted.status.success(), "{}", stderr(&restarted));
    assert!(
        stdout(&restarted).contains("alice is running again"),
        "{}",
        stdout(&restarted)
    );
    let json: Value = serde_json::from_str(&stdout(&daemon.cli(&["stacks", "--json"]))).unwrap();
    assert_eq!(json["stacks"][0]["restarts"], 2, "{json}");
    let unknown = daemon.cli(&["stacks", "restart", "nobody"]);
    assert_eq!(unknown.status.code(), Some(1), "{}", stderr(&unknown));

    let destroyed = daemon.cli(&["destroy", "alice", "--json"]);
    assert!(destroyed.status.success(), "{}", stderr(&destroyed));
    let json: Value = serde_json::from_str(&stdout(&destroyed)).unwrap();
    assert_eq!(json["status"], "removed");
    let gone = daemon.cli(&["destroy", "alice"]);
    assert_eq!(gone.status.code(), Some(1));
    assert!(
        stderr(&gone).contains("no stack named"),
        "{}",
        stderr(&gone)
    );
    assert!(daemon.sweep().leftovers().await.is_empty());
}

/// A client that resolves `*.localhost` to loopback, as browsers do.
fn reqwest_for_localhost_subdomains() -> reqwest::Client {
    struct Loopback;
    impl reqwest::dns::Resolve for Loopback {
        fn resolve(&self, _: reqwest::dns::Name) -> reqwest::dns::Resolving {
            let addrs: reqwest::dns::Addrs = Box::new(std::iter::once(std::net::SocketAddr::from(
                ([127, 0, 0, 1], 0),
            )));
            Box::pin(async move { Ok(addrs) })
        }
    }
    let _ = yard_testkit::http();
    reqwest::Client::builder()
        .no_proxy()
        .dns_resolver(std::sync::Arc::new(Loopback))
        .build()
        .unwrap()
}

#[tokio::test]
async fn json_output_and_exit_codes_suit_scripts() {
    let daemon = daemon(WEB_IMAGE).await;
    let check = daemon.cli(&["check", "a_b", "--json"]);
    assert_eq!(check.status.code(), Some(1));
    let verdict: Value = serde_json::from_str(&stdout(&check)).unwrap();
    assert_eq!(verdict["valid"], false);

    let deployed = daemon.cli(&["deploy", "bob", "--json"]);
    assert!(deployed.status.success(), "{}", stderr(&deployed));
    let deployment: Value = serde_json::from_str(&stdout(&deployed)).unwrap();
    assert_eq!(deployment["status"], "completed");
    assert_eq!(stderr(&deployed), "", "--json prints no progress");

    let usage = daemon.cli(&["deploy"]);
    assert_eq!(
        usage.status.code(),
        Some(2),
        "a missing argument is a usage error"
    );
    assert_eq!(daemon.cli(&["launch", "bob"]).status.code(), Some(2));
    assert_eq!(
        daemon.cli(&["serve", "--listen", "nowhere"]).status.code(),
        Some(2)
    );

    let bad = daemon.cli(&["deploy", "api"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(stderr(&bad).contains("reserved"), "{}", stderr(&bad));

    let wrong_token = daemon.cli(&["stacks", "--token", "yard_wrong"]);
    assert_eq!(wrong_token.status.code(), Some(1));
    assert!(
        stderr(&wrong_token).contains("hint"),
        "{}",
        stderr(&wrong_token)
    );

    let nobody = daemon.cli(&["stacks", "--url", "http://127.0.0.1:9"]);
    assert_eq!(nobody.status.code(), Some(1));
    assert!(
        stderr(&nobody).contains("cannot reach the yard"),
        "{}",
        stderr(&nobody)
    );
}

/// Polls the API until the deployment reaches a final or completed state.
async fn wait_for_outcome(daemon: &Daemon, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let deployment = daemon.api_get(&format!("/api/deployments/{id}")).await;
        if matches!(deployment["status"].as_str(), Some("completed" | "failed")) {
            return deployment;
        }
        assert!(Instant::now() < deadline, "no outcome: {deployment}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_daemon_killed_mid_deployment_converges_after_restart() {
    let mut daemon = daemon(SLOW_IMAGE).await;
    let http = yard_testkit::http();
    for (round, delay_ms) in [0_u64, 40, 300, 2000].into_iter().enumerate() {
        let name = format!("crash{round}");
        let id = daemon.api_deploy(&name).await;
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        daemon.kill();
        daemon.restart();

        let outcome = wait_for_outcome(&daemon, &id).await;
        let mine: Vec<String> = daemon
            .sweep()
            .resources()
            .await
            .into_iter()
            .filter(|r| r.ends_with(&name) || r.ends_with(&format!("{name}-data")))
            .collect();
        match outcome["status"].as_str() {
            Some("completed") => {
                assert_eq!(
                    mine.len(),
                    2,
                    "round {round}: a completed stack owns exactly its container and volume: {mine:?}"
                );
                let page = http
                    .get(daemon.url())
                    .header("host", format!("{name}.localhost:{}", daemon.port()))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(page.status(), 200, "round {round}");
            }
            _ => assert!(
                mine.is_empty(),
                "round {round}: a failed deployment leaves nothing: {mine:?}"
            ),
        }
    }
    assert!(
        daemon.log().contains("resuming"),
        "at least one kill landed mid-deployment"
    );
    // Everything left belongs to a completed stack; removing those leaves nothing.
    let stacks = daemon.api_get("/api/stacks").await;
    for stack in stacks["stacks"].as_array().unwrap() {
        let name = stack["name"].as_str().unwrap();
        assert!(daemon.cli(&["destroy", name]).status.success());
    }
    assert!(daemon.sweep().leftovers().await.is_empty());
}

#[tokio::test]
async fn orphans_are_removed_at_start() {
    let mut daemon = daemon(WEB_IMAGE).await;
    assert!(daemon.cli(&["deploy", "kept"]).status.success());
    daemon.kill();
    let instance = std::fs::read_to_string(daemon.data_dir().join("instance-id")).unwrap();
    let instance = instance.trim();
    // What a crash between creating a network and recording it would leave.
    daemon
        .sweep()
        .create_network(
            &format!("agentyard-{instance}-ghost"),
            &[
                ("agentyard.managed", "true"),
                ("agentyard.instance", instance),
                ("agentyard.stack", "ghost"),
            ],
        )
        .await;
    assert_eq!(daemon.sweep().leftovers().await.len(), 3);
    daemon.restart();
    let left = daemon.sweep().leftovers().await;
    assert_eq!(
        left.len(),
        2,
        "the orphan is gone, the live stack stays: {left:?}"
    );
    assert!(left.iter().all(|r| r.contains("-kept")), "{left:?}");
    assert!(daemon.log().contains("removed orphaned resource"));
}

#[tokio::test]
async fn sigterm_stops_the_daemon_promptly_even_with_watchers() {
    let mut daemon = daemon(SLOW_IMAGE).await;
    let http = yard_testkit::http();
    let id = daemon.api_deploy("patient").await;
    // An open progress stream must not hold the daemon up.
    let watcher = http
        .get(format!("{}/api/status/{id}", daemon.url()))
        .bearer_auth(daemon.token())
        .send()
        .await
        .unwrap();
    assert_eq!(watcher.status(), 200);

    let started = Instant::now();
    let status = daemon.terminate(Duration::from_secs(15));
    assert!(status.success(), "exit status {status}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    assert!(!daemon.data_dir().join("listen-addr").exists());
    drop(watcher);

    // Whatever the signal interrupted is finished after a restart.
    daemon.restart();
    let outcome = wait_for_outcome(&daemon, &id).await;
    assert_eq!(outcome["status"], "completed", "{outcome}");
}

#[tokio::test]
async fn tokens_are_made_listed_and_revoked_from_the_cli() {
    let daemon = daemon(WEB_IMAGE).await;
    let made = daemon.cli(&["token", "create", "--name", "carol"]);
    assert!(made.status.success(), "{}", stderr(&made));
    let secret = stdout(&made).trim().to_owned();
    assert!(
        secret.starts_with("yard_"),
        "the secret alone on stdout: {secret}"
    );
    assert!(
        stderr(&made).contains("only this once"),
        "{}",
        stderr(&made)
    );

    let as_carol = daemon.cli(&["stacks", "--token", &secret]);
    assert!(as_carol.status.success(), "{}", stderr(&as_carol));
    let carol_lists = daemon.cli(&["token", "list", "--token", &secret]);
    assert_eq!(carol_lists.status.code(), Some(1));
    assert!(
        stderr(&carol_lists).contains("admin"),
        "{}",
        stderr(&carol_lists)
    );

    let listed = daemon.cli(&["token", "list", "--json"]);
    let listed: Value = serde_json::from_str(&stdout(&listed)).unwrap();
    let names: Vec<&str> = listed["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["admin", "carol"]);
    assert!(!stdout(&daemon.cli(&["token", "list"])).contains(&secret));

    let again = daemon.cli(&["token", "create", "--name", "carol"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        stderr(&again).contains("already named"),
        "{}",
        stderr(&again)
    );
    assert!(daemon.cli(&["token", "revoke", "carol"]).status.success());
    assert_eq!(
        daemon.cli(&["stacks", "--token", &secret]).status.code(),
        Some(1)
    );
    assert_eq!(
        daemon.cli(&["token", "create"]).status.code(),
        Some(2),
        "--name is required"
    );
}

/// `yard serve` with `env`, expected to refuse to start; returns its exit
/// code and what it printed.
fn refused_serve(env: &[(&str, &str)]) -> (Option<i32>, String) {
    let data = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(YARD)
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("YARD_DATA_DIR", data.path())
        .env("YARD_LISTEN", "127.0.0.1:0")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (out.status.code(), stderr(&out))
}

#[test]
fn the_yards_label_namespace_and_a_required_policy_are_enforced_at_start() {
    let (code, said) = refused_serve(&[("YARD_LABELS", "team=a,agentyard.agent=x")]);
    assert_eq!(code, Some(2), "{said}");
    assert!(
        said.contains("agentyard.agent") && said.contains("namespace"),
        "{said}"
    );
    let (code, said) = refused_serve(&[("YARD_POLICY_REQUIRED", "true")]);
    assert_eq!(code, Some(1), "{said}");
    assert!(said.contains("YARD_POLICY_REQUIRED"), "{said}");
}

#[tokio::test]
async fn a_loose_data_directory_is_tightened_at_start() {
    use std::os::unix::fs::PermissionsExt;
    let mut daemon = daemon(WEB_IMAGE).await;
    let dir = daemon.data_dir().to_owned();
    let store = dir.join("agentyard.db");
    let set = |path: &std::path::Path, mode: u32| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    let mode =
        |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(
        (mode(&dir), mode(&store)),
        (0o700, 0o600),
        "a new one is private"
    );
    daemon.terminate(Duration::from_secs(10));
    set(&dir, 0o755);
    set(&store, 0o644);
    set(&dir.join("admin-token"), 0o644);
    daemon.restart();
    assert_eq!(
        (mode(&dir), mode(&store), mode(&dir.join("admin-token"))),
        (0o700, 0o600, 0o600)
    );
    let log = daemon.log();
    assert!(log.contains("tightened"), "{log}");
}

#[tokio::test]
async fn a_backend_that_cannot_work_stops_serve_with_what_to_fix() {
    let (code, said) = refused_serve(&[("YARD_BACKEND", "nonsense")]);
    assert_eq!(code, Some(2), "{said}");
    assert!(
        said.contains("docker") && said.contains("swarm") && said.contains("dokploy"),
        "{said}"
    );

    let (code, said) = refused_serve(&[("YARD_BACKEND", "dokploy")]);
    assert_eq!(code, Some(1), "{said}");
    assert!(said.contains("DOKPLOY_URL"), "{said}");

    let fake = yard_testkit::DokployFake::start().await;
    let url = fake.url();
    let (code, said) = tokio::task::spawn_blocking(move || {
        refused_serve(&[
            ("YARD_BACKEND", "dokploy"),
            ("DOKPLOY_URL", &url),
            ("DOKPLOY_API_KEY", "not-the-key"),
        ])
    })
    .await
    .unwrap();
    assert_eq!(code, Some(1), "{said}");
    assert!(said.contains("API key was refused"), "{said}");
    assert!(
        !said.contains("not-the-key"),
        "the key is never printed: {said}"
    );
}

#[tokio::test]
async fn health_exits_zero_for_a_healthy_yard_without_any_token_and_one_when_none_answers() {
    let daemon = daemon(WEB_IMAGE).await;
    let run = |url: &str| {
        std::process::Command::new(YARD)
            .args(["health", "--url", url])
            .env_clear()
            .output()
            .unwrap()
    };
    let healthy = run(&daemon.url());
    assert_eq!(healthy.status.code(), Some(0), "{}", stderr(&healthy));
    assert!(
        stdout(&healthy).ends_with("healthy"),
        "{}",
        stdout(&healthy)
    );
    let nobody = run("http://127.0.0.1:9");
    assert_eq!(nobody.status.code(), Some(1));
    assert!(
        stderr(&nobody).contains("did not answer /health"),
        "{}",
        stderr(&nobody)
    );
}

/// `yard config ARGS` for `daemon`, with `input` on stdin.
fn config_with_stdin(daemon: &Daemon, args: &[&str], input: &str) -> Output {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new(YARD)
        .arg("config")
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("YARD_URL", daemon.url())
        .env("YARD_DATA_DIR", daemon.data_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[tokio::test]
async fn a_secret_set_from_stdin_is_listed_as_set_and_never_shown_or_logged() {
    use std::os::unix::fs::PermissionsExt;
    let daemon = daemon(WEB_IMAGE).await;
    let secret = "bot-token; it's \"quoted\" ✓";
    let set = config_with_stdin(&daemon, &["set", "forge.bot_token"], &format!("{secret}\n"));
    assert!(set.status.success(), "{}", stderr(&set));
    assert!(!stdout(&set).contains(secret) && !stderr(&set).contains(secret));
    let url = daemon.cli(&[
        "config",
        "set",
        "forge.url",
        "--value",
        "http://127.0.0.1:3001",
    ]);
    assert!(url.status.success(), "{}", stderr(&url));

    let listed = daemon.cli(&["config", "list"]);
    assert!(listed.status.success(), "{}", stderr(&listed));
    let table = stdout(&listed);
    assert!(!table.contains("bot-token"), "{table}");
    assert_eq!(line_of(&daemon, "forge.bot_token")[1], "set", "{table}");
    assert_eq!(line_of(&daemon, "claude.token")[1], "unset", "{table}");
    assert_eq!(
        line_of(&daemon, "forge.url")[1..],
        ["set", "http://127.0.0.1:3001"]
    );
    let json: Value =
        serde_json::from_str(&stdout(&daemon.cli(&["config", "list", "--json"]))).unwrap();
    let bot = json["settings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["key"] == "forge.bot_token")
        .unwrap();
    assert_eq!((bot["set"].as_bool(), bot.get("value")), (Some(true), None));

    let unknown = daemon.cli(&["config", "set", "forge.password", "--value", "x"]);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(
        stderr(&unknown).contains("forge.admin_password"),
        "{}",
        stderr(&unknown)
    );
    let unset = daemon.cli(&["config", "unset", "forge.bot_token"]);
    assert!(unset.status.success(), "{}", stderr(&unset));
    assert_eq!(line_of(&daemon, "forge.bot_token")[1], "unset");

    let mode = std::fs::metadata(daemon.data_dir().join("config-key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let log = daemon.log();
    assert!(log.contains("forge.bot_token"), "the key is logged: {log}");
    assert!(!log.contains("bot-token"), "the value never is: {log}");
}

/// The fields of `key`'s line in `yard config list`.
fn line_of(daemon: &Daemon, key: &str) -> Vec<String> {
    let listed = stdout(&daemon.cli(&["config", "list"]));
    listed
        .lines()
        .find(|l| l.split_whitespace().next() == Some(key))
        .unwrap()
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

/// A signed `issues` delivery to `daemon`'s webhook; the answer's status.
async fn deliver(daemon: &Daemon, secret: &str, id: &str) -> u16 {
    let body = br#"{"action":"opened","repository":{"full_name":"team/app"}}"#;
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    yard_testkit::http()
        .post(format!("{}/webhook/gitea", daemon.url()))
        .header(
            "x-gitea-signature",
            hex::encode(ring::hmac::sign(&key, body)),
        )
        .header("x-gitea-delivery", id)
        .header("x-gitea-event", "issues")
        .body(body.to_vec())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn yards_sharing_a_database_open_its_secrets_only_with_the_same_config_key() {
    ensure_stack_images().await;
    let url = yard_testkit::fresh_postgres_url().await;
    let key = "5e".repeat(32);
    let start = |env: Vec<(String, String)>| {
        Daemon::start(
            YARD.as_ref(),
            DaemonSetup {
                stack_image: Some(WEB_IMAGE.to_owned()),
                database_url: Some(url.clone()),
                env,
                ..DaemonSetup::default()
            },
        )
    };
    let with_key = || vec![("YARD_CONFIG_KEY".to_owned(), key.clone())];
    let first = start(with_key());
    let secret = "shared webhook secret";
    let set = config_with_stdin(&first, &["set", "forge.webhook_secret"], secret);
    assert!(set.status.success(), "{}", stderr(&set));
    assert!(
        !first.data_dir().join("config-key").exists(),
        "YARD_CONFIG_KEY is used instead of a file"
    );
    assert_eq!(deliver(&first, secret, "d-1").await, 200);

    let second = start(with_key());
    assert_eq!(deliver(&second, secret, "d-2").await, 200);

    // A yard with its own key cannot open the secret: a clear error in
    // its log, naming the setting, never the value.
    let stranger = start(Vec::new());
    assert_eq!(deliver(&stranger, secret, "d-3").await, 500);
    let log = stranger.log();
    assert!(
        log.contains("forge.webhook_secret") && log.contains("YARD_CONFIG_KEY"),
        "{log}"
    );
    assert!(!log.contains(secret), "{log}");
    assert!(
        log.contains("YARD_CONFIG_KEY is not set"),
        "warned at start: {log}"
    );

    let (code, said) = refused_serve(&[("YARD_CONFIG_KEY", "not-hex-at-all")]);
    assert_eq!(code, Some(1), "{said}");
    assert!(
        said.contains("64 hex digits") && !said.contains("not-hex-at-all"),
        "{said}"
    );
}

// Multi-threaded: the fake forge answers while the test waits on the CLI.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forge_init_sets_an_external_forge_up_again_and_prints_no_secret() {
    ensure_stack_images().await;
    let fake = yard_testkit::GiteaFake::start("forge-admin", "forge-admin-password").await;
    let daemon = Daemon::start(
        YARD.as_ref(),
        DaemonSetup {
            stack_image: Some(WEB_IMAGE.to_owned()),
            env: vec![
                ("GITEA_URL".to_owned(), fake.url()),
                ("GITEA_ADMIN_TOKEN".to_owned(), fake.admin_token()),
            ],
            ..DaemonSetup::default()
        },
    );
    let first = daemon.cli(&["forge", "init"]);
    assert!(first.status.success(), "{}", stderr(&first));
    let printed = stdout(&first);
    for line in [
        "bot:      yard-bot (an owner of agentyard)",
        "generated: bot password, webhook secret",
    ] {
        assert!(printed.contains(line), "{line} in:\n{printed}");
    }
    assert!(printed.contains("/webhook/gitea"), "{printed}");
    assert!(daemon.data_dir().join("forge-ready").exists());

    let again = daemon.cli(&["forge", "init"]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(stdout(&again).contains("nothing new"), "{}", stdout(&again));
    assert_eq!(fake.hooks().len(), 1);
    assert_eq!(fake.calls("userCreateToken"), 1);

    let hook_secret = fake.hooks()[0].secret.clone();
    let bot = fake.user("yard-bot").unwrap();
    let bot_token = fake.tokens("yard-bot")[0].sha1.clone();
    let everything = format!(
        "{printed}{}{}{}{}",
        stderr(&first),
        stdout(&again),
        stderr(&again),
        daemon.log()
    );
    for secret in [hook_secret, bot.password, bot_token, fake.admin_token()] {
        assert!(
            !everything.contains(&secret),
            "a secret is printed or logged"
        );
    }
    fake.assert_no_violations();
}
