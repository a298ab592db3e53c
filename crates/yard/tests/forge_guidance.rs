//! The forge's rule with a person in the loop, end to end: the real daemon
//! (`yard serve`), the contract fake of Gitea as its external forge, real
//! agent containers running the scripted agent, which asks for guidance
//! through `yard mcp` as a real agent's client does.
//!
//! An agent's question appears on its issue; a comment addressed to the
//! bot answers it, or waits for the agent's next question, or goes with
//! the next agent's task; a comment from someone who may only read is not
//! taken. The work on an issue outlives the yard: killed while its agent
//! works, the yard on its next start turns the agent's commits into the
//! pull request.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use serde_json::{Value, json};
use yard_testkit::{Daemon, DaemonSetup, FakeComment, GiteaFake, ensure_agent_image};

const YARD: &str = env!("CARGO_BIN_EXE_yard");
const BOT: &str = "yard-bot";
const ORG: &str = "agentyard";
const REPO: &str = "app";
const ADMIN: &str = "forge-admin";

/// The fake forge, and a daemon whose agents run the scripted agent image
/// with this build's `yard`, set up against the fake by `yard forge init`.
async fn start() -> (GiteaFake, Daemon) {
    let image = ensure_agent_image().await;
    let fake = GiteaFake::start(ADMIN, "forge-admin-password").await;
    let env = [
        ("GITEA_URL", fake.url()),
        ("GITEA_ADMIN_TOKEN", fake.admin_token()),
        ("YARD_AGENT_IMAGE", image),
        ("YARD_LEND_BINARY", "true".to_owned()),
    ];
    let daemon = Daemon::start(
        YARD.as_ref(),
        DaemonSetup {
            env: env.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
            ..DaemonSetup::default()
        },
    );
    daemon.api_forge_init().await;
    fake.seed_repo(ORG, REPO, &[("README.md", "hello\n")]);
    (fake, daemon)
}

/// Waits up to `secs` for `check`; on failure the message has the yard's
/// log.
async fn within<T>(secs: u64, what: &str, daemon: &Daemon, check: impl FnMut() -> Option<T>) -> T {
    yard_testkit::within(
        secs,
        || format!("{what}; the yard's log:\n{}", daemon.log()),
        check,
    )
    .await
}

/// The bot's comments on issue `number` that contain `text`.
fn bot_saying(fake: &GiteaFake, number: i64, text: &str) -> Vec<FakeComment> {
    fake.comments_by(ORG, REPO, number, BOT)
        .into_iter()
        .filter(|c| c.body.contains(text))
        .collect()
}

async fn agents(daemon: &Daemon) -> Vec<Value> {
    daemon.api_get("/api/agents").await["agents"]
        .as_array()
        .unwrap()
        .clone()
}

/// Comments `body` as `user` and checks the yard took the delivery.
async fn comment(fake: &GiteaFake, number: i64, user: &str, body: &str) {
    let sent = fake.comment_as(ORG, REPO, number, user, body).await;
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].status, Some(200), "{:?}", sent[0].error);
}

// Multi-threaded: the fake forge answers while the test waits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guidance_on_the_issue_answers_the_agent_waits_for_its_next_question_and_goes_with_the_next_task()
 {
    let (fake, daemon) = start().await;
    fake.add_user("reader", "reader-password", false);
    let number = fake.add_issue(
        ORG,
        REPO,
        ": write down the answers",
        "first=$(guidance 'Which greeting?')\nsleep 4\nsecond=$(guidance 'And the farewell?')\nprintf '%s\\n%s\\n' \"$first\" \"$second\" > answers.txt && git add answers.txt && git commit -q -m 'Answers'",
    );
    fake.assign_issue(ORG, REPO, number, BOT).await;

    let asked = within(90, "the agent's question on the issue", &daemon, || {
        bot_saying(&fake, number, "Which greeting?")
            .into_iter()
            .next()
    })
    .await;
    let id = agents(&daemon).await[0]["id"].as_str().unwrap().to_owned();
    assert!(
        asked.body.contains(&format!("Agent `{id}` asks")),
        "{}",
        asked.body
    );
    assert!(asked.body.contains(&format!("`@{BOT}`")), "{}", asked.body);

    // Someone who may only read the repository is not listened to.
    comment(&fake, number, "reader", &format!("@{BOT} say boo")).await;
    comment(&fake, number, ADMIN, &format!("@{BOT} say hello")).await;
    within(30, "the answer's receipt", &daemon, || {
        bot_saying(&fake, number, "as the answer to its question")
            .into_iter()
            .next()
    })
    .await;
    // Before the agent asks again: kept for its next question.
    comment(&fake, number, ADMIN, &format!("@{BOT}: wave goodbye")).await;
    within(30, "the note that it waits", &daemon, || {
        bot_saying(&fake, number, "when it next asks for guidance")
            .into_iter()
            .next()
    })
    .await;

    let pull = within(90, "the pull request", &daemon, || {
        fake.pulls(ORG, REPO).into_iter().next()
    })
    .await;
    assert_eq!(pull.head, format!("issue-{number}"));
    let diff = daemon.api_get(&format!("/api/agents/{id}/diff")).await;
    let patch = diff["patch"].as_str().unwrap();
    assert!(patch.contains("say hello"), "{patch}");
    assert!(patch.contains("wave goodbye"), "{patch}");
    assert!(patch.contains("forge-admin (on the forge)"), "{patch}");
    assert!(!patch.contains("boo"), "{patch}");
    // The second question was answered from what waited: never put on
    // the issue.
    assert!(bot_saying(&fake, number, "And the farewell?").is_empty());
    assert!(bot_saying(&fake, number, "say boo").is_empty());

    // With no agent at work, guidance goes with the next agent's task.
    comment(&fake, number, ADMIN, &format!("@{BOT} next time use tabs")).await;
    within(30, "the note for the next agent", &daemon, || {
        bot_saying(&fake, number, "the next agent on this issue")
            .into_iter()
            .next()
    })
    .await;
    fake.assign_issue(ORG, REPO, number, BOT).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let task = loop {
        let listed = agents(&daemon).await;
        if let Some(agent) = listed.iter().find(|a| a["id"] != json!(id)) {
            break agent["task"].as_str().unwrap().to_owned();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no second agent:\n{}",
            daemon.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        task.contains("Guidance given on the issue:\n- forge-admin wrote: next time use tabs"),
        "{task}"
    );
    fake.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_on_an_issue_outlives_a_yard_killed_while_its_agent_works() {
    let (fake, mut daemon) = start().await;
    let number = fake.add_issue(
        ORG,
        REPO,
        ": greet, then take forever",
        "echo hi > greeting.txt && git add greeting.txt && git commit -q -m 'Add a greeting'\nsleep 600",
    );
    fake.assign_issue(ORG, REPO, number, BOT).await;
    within(90, "the comment naming the agent", &daemon, || {
        bot_saying(&fake, number, "is working on this issue")
            .into_iter()
            .next()
    })
    .await;
    let id = agents(&daemon).await[0]["id"].as_str().unwrap().to_owned();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while daemon.api_get(&format!("/api/agents/{id}/diff")).await["commits"]
        .as_array()
        .is_none_or(Vec::is_empty)
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no commit:\n{}",
            daemon.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // SIGKILL: nothing is finished on the way down.
    daemon.start_again_at_same_address();
    let pull = within(60, "the pull request after the restart", &daemon, || {
        fake.pulls(ORG, REPO).into_iter().next()
    })
    .await;
    assert_eq!(pull.head, format!("issue-{number}"));
    assert!(
        pull.body.contains(&format!("Closes #{number}")),
        "{}",
        pull.body
    );
    assert!(
        pull.body.contains(&format!("agent `{id}`")),
        "{}",
        pull.body
    );
    assert!(pull.body.contains("the yard restarted"), "{}", pull.body);
    assert_eq!(
        fake.refs(ORG, REPO)
            .get(&format!("refs/heads/issue-{number}")),
        Some(&pull.head_sha)
    );
    // Finished: assigned again, the issue gets a new agent.
    fake.assign_issue(ORG, REPO, number, BOT).await;
    within(60, "a second agent's comment", &daemon, || {
        (bot_saying(&fake, number, "is working on this issue").len() == 2).then_some(())
    })
    .await;
    fake.assert_no_violations();
}
