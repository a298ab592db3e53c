//! A question outlives the yard: `yard hook` holds a tool call for a
//! person, the daemon is killed (SIGKILL) and started again, a person
//! answers, and the same waiting hook prints that answer. Nothing is
//! asked twice. And an answer given just before a kill, before the
//! store's write, is in the store after the restart and reaches the hook.

#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use yard_store::Store;
use yard_testkit::{Daemon, DaemonSetup};

mod support;

const YARD: &str = env!("CARGO_BIN_EXE_yard");

const ASK_PSQL: &str = r#"
[[rules]]
tool = "Bash"
command = "psql*"
decision = "ask"
reason = "Changing tables needs a person."
"#;

/// `yard hook` as the agent with credential `token` runs it before the
/// shell command `command`; its output is piped for the test to read.
fn hook_for(daemon: &Daemon, token: &str, command: &str) -> std::process::Child {
    let mut hook = Command::new(YARD)
        .arg("hook")
        .env("YARD_SOCKET", daemon.data_dir().join("control.sock"))
        .env("YARD_AGENT_TOKEN", token)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let event = json!({"hook_event_name": "PreToolUse", "tool_name": "Bash",
                       "tool_input": {"command": command}});
    hook.stdin
        .take()
        .unwrap()
        .write_all(event.to_string().as_bytes())
        .unwrap();
    hook
}

/// A daemon whose policy holds `psql` for a person, a running agent of
/// instance `instance`, and that agent's `yard hook` held for a person;
/// returns them with the held question's id, as the store has it.
async fn held_hook(instance: &str) -> (Daemon, Store, std::process::Child, String) {
    let daemon = Daemon::start(
        YARD.as_ref(),
        DaemonSetup {
            files: vec![("policy.toml".into(), ASK_PSQL.into())],
            ..DaemonSetup::default()
        },
    );
    let store = Store::open(&Store::sqlite_url(daemon.data_dir()))
        .await
        .unwrap();
    let token = support::agent_token();
    support::running_agent(&store, instance, "migrate", Some(&token)).await;
    let hook = hook_for(&daemon, &token, "psql -c 'drop table t'");
    let deadline = Instant::now() + Duration::from_secs(20);
    let id = loop {
        if let Some(q) = store.pending_questions().await.unwrap().first() {
            break q.id.clone();
        }
        assert!(
            Instant::now() < deadline,
            "the hook's question was never asked"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    (daemon, store, hook, id)
}

#[tokio::test]
async fn a_question_pending_when_the_yard_is_killed_is_answered_after_the_restart_and_reaches_the_waiting_hook()
 {
    let (mut daemon, store, hook, id) = held_hook("restart-test").await;

    daemon.start_again_at_same_address();
    let listed = daemon.api_get("/api/questions").await;
    assert_eq!(listed["questions"][0]["id"], id.as_str(), "{listed}");
    let response = yard_testkit::http()
        .post(format!("{}/api/questions/{id}/answer", daemon.url()))
        .bearer_auth(daemon.token())
        .json(&json!({"answer": "allow", "reason": "backed up first"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    let output = tokio::task::spawn_blocking(move || hook.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let said: Value = serde_json::from_slice(&output.stdout).unwrap();
    let decision = &said["hookSpecificOutput"];
    assert_eq!(decision["permissionDecision"], "allow", "{said}\n{stderr}");
    assert!(
        decision["permissionDecisionReason"]
            .as_str()
            .unwrap()
            .contains("backed up first"),
        "{said}"
    );
    // Asked once, across the restart.
    let all = store.pending_questions().await.unwrap();
    assert!(all.is_empty(), "{all:?}");
    assert_eq!(
        store.question(&id).await.unwrap().unwrap().outcome.as_str(),
        "answered"
    );
}

#[tokio::test]
async fn inside_zellij_each_question_opens_a_prompt_pane() {
    use std::os::unix::fs::PermissionsExt;
    // A stand-in for zellij that records how it was called.
    let bin = tempfile::tempdir().unwrap();
    let calls = bin.path().join("calls");
    let fake = bin.path().join("zellij");
    std::fs::write(
        &fake,
        format!("#!/bin/sh\necho \"$@\" >> {}\n", calls.display()),
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let daemon = Daemon::start(
        YARD.as_ref(),
        DaemonSetup {
            files: vec![("policy.toml".into(), ASK_PSQL.into())],
            env: vec![
                ("PATH".into(), path),
                ("ZELLIJ".into(), "0".into()),
                ("YARD_PROMPT_PANES".into(), "true".into()),
            ],
            ..DaemonSetup::default()
        },
    );
    let store = Store::open(&Store::sqlite_url(daemon.data_dir()))
        .await
        .unwrap();
    let token = support::agent_token();
    support::running_agent(&store, "restart-test", "migrate", Some(&token)).await;
    let mut hook = hook_for(&daemon, &token, "psql -c 'select 1'");
    let deadline = Instant::now() + Duration::from_secs(20);
    let called = loop {
        if let Ok(called) = std::fs::read_to_string(&calls) {
            break called;
        }
        assert!(Instant::now() < deadline, "no pane was opened");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let _ = hook.kill();
    let _ = hook.wait();
    assert!(called.starts_with("action new-pane --floating"), "{called}");
    assert!(
        called.contains(&format!(
            "prompt --once --url {} --data-dir {}",
            daemon.url(),
            daemon.data_dir().display()
        )),
        "{called}"
    );
    assert!(
        !called.contains(&daemon.token()),
        "no secret on a command line"
    );
}

#[tokio::test]
async fn an_answer_given_just_before_a_kill_is_in_the_store_after_it_and_reaches_the_hook() {
    let (mut daemon, store, hook, id) = held_hook("crash-test").await;

    let response = yard_testkit::http()
        .post(format!("{}/api/questions/{id}/answer", daemon.url()))
        .bearer_auth(daemon.token())
        .json(&json!({"answer": "allow", "reason": "backed up first"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // Killed at once: the store's write of the answer comes a little
    // after it is decided, so it is (almost always) not done yet, and the
    // answer log is what keeps it.
    daemon.kill();
    let log = std::fs::read_to_string(daemon.data_dir().join("answers.log")).unwrap();
    let stored = store.question(&id).await.unwrap().unwrap();
    if stored.outcome.is_pending() {
        assert!(log.contains(&id), "the answer is nowhere: {log:?}");
    }
    daemon.restart();
    // Whether the hook heard the answer before the kill or waits again
    // after it, it prints that answer.
    let output = tokio::task::spawn_blocking(move || hook.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let said: Value = serde_json::from_slice(&output.stdout).unwrap_or_default();
    assert_eq!(
        said["hookSpecificOutput"]["permissionDecision"],
        "allow",
        "{said} {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stored = store.question(&id).await.unwrap().unwrap();
    assert_eq!(
        stored.outcome,
        yard_core::QuestionOutcome::Answered {
            answer: "allow".into(),
            by: "admin".into(),
            reason: Some("backed up first".into()),
        }
    );
    assert_eq!(
        std::fs::read_to_string(daemon.data_dir().join("answers.log")).unwrap(),
        "",
        "emptied once the store has it"
    );
}
