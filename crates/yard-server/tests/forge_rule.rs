//! The forge's first rule, end to end: the contract fake of Gitea as an
//! external forge set up by `POST /api/forge/init`, real containers from
//! the scripted agent image (which runs the issue's text as a shell
//! script). An issue assigned to the bot gets an agent and a comment
//! naming it; the agent's commits come back as the branch `issue-N` and a
//! pull request that closes the issue; an agent with no commits is
//! reported on the issue; an issue in a repository the bot cannot read
//! makes nothing.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{Options, TestYard};
use yard_testkit::{FakeComment, GiteaFake};

const BOT: &str = "yard-bot";
const ORG: &str = "agentyard";
const REPO: &str = "app";

async fn start() -> (GiteaFake, TestYard) {
    let fake = GiteaFake::start("forge-admin", "forge-admin-password").await;
    let yard = TestYard::start(Options {
        image: yard_testkit::ensure_agent_image().await,
        forge: Some((fake.url(), fake.admin_token())),
        ..Options::default()
    })
    .await;
    let init = yard
        .post_json("/api/forge/init", &json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(init.status(), 200, "{}", init.text().await.unwrap());
    fake.seed_repo(ORG, REPO, &[("README.md", "hello\n")]);
    (fake, yard)
}

/// Waits up to `secs` for `check` to give something.
async fn within<T>(secs: u64, what: &str, check: impl FnMut() -> Option<T>) -> T {
    yard_testkit::within(secs, || what.to_owned(), check).await
}

/// The bot's comments on issue `number`.
fn bot_comments(fake: &GiteaFake, number: i64) -> Vec<FakeComment> {
    fake.comments_by(ORG, REPO, number, BOT)
}

async fn agents(yard: &TestYard) -> Vec<Value> {
    yard.get_json("/api/agents").await["agents"]
        .as_array()
        .unwrap()
        .clone()
}

#[tokio::test]
async fn an_issue_assigned_to_the_bot_ends_in_a_pull_request_with_the_agents_commits() {
    let (fake, yard) = start().await;
    let number = fake.add_issue(
        ORG,
        REPO,
        ": add a greeting",
        "sleep 3\necho hi > greeting.txt && git add greeting.txt && git commit -q -m 'Add a greeting'",
    );
    let sent = fake.assign_issue(ORG, REPO, number, BOT).await;
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].status, Some(200), "{:?}", sent[0].error);

    let comment = within(60, "the comment naming the agent", || {
        bot_comments(&fake, number).into_iter().next()
    })
    .await;
    let listed = agents(&yard).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    let id = listed[0]["id"].as_str().unwrap().to_owned();
    assert!(comment.body.contains(&id), "{}", comment.body);
    assert!(
        comment
            .body
            .contains(&format!("http://localhost:{}/#agents", yard.port)),
        "{}",
        comment.body
    );
    assert!(
        listed[0]["task"]
            .as_str()
            .unwrap()
            .starts_with(": add a greeting\n\n")
    );
    // The repository is fetched into the data directory, with no
    // credential left in it.
    let local = yard.data_dir.join("repos").join(ORG).join(REPO);
    let config = std::fs::read_to_string(local.join("config")).unwrap();
    let bot_token = fake.tokens(BOT)[0].sha1.clone();
    assert!(
        !config.contains(&bot_token) && !config.contains("url ="),
        "{config}"
    );

    // Assigned again while its agent works: no second agent.
    let again = fake.assign_issue(ORG, REPO, number, BOT).await;
    assert_eq!(again[0].status, Some(200));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(agents(&yard).await.len(), 1);

    let pull = within(90, "the pull request", || {
        fake.pulls(ORG, REPO).into_iter().next()
    })
    .await;
    assert_eq!(pull.head, format!("issue-{number}"));
    assert_eq!(pull.base, "main");
    assert_eq!(pull.poster, BOT);
    assert!(
        pull.body.contains(&format!("Closes #{number}")),
        "{}",
        pull.body
    );
    let refs = fake.refs(ORG, REPO);
    assert_eq!(
        refs.get(&format!("refs/heads/issue-{number}")),
        Some(&pull.head_sha),
        "{refs:?}"
    );
    assert_eq!(bot_comments(&fake, number).len(), 1);
    assert_eq!(agents(&yard).await.len(), 1);
    fake.assert_no_violations();
}

#[tokio::test]
async fn an_agent_that_commits_nothing_is_reported_on_the_issue() {
    let (fake, yard) = start().await;
    let number = fake.add_issue(ORG, REPO, ": nothing to do", "true");
    fake.assign_issue(ORG, REPO, number, BOT).await;
    let comments = within(90, "two comments", || {
        let found = bot_comments(&fake, number);
        (found.len() >= 2).then_some(found)
    })
    .await;
    let id = agents(&yard).await[0]["id"].as_str().unwrap().to_owned();
    assert!(comments[1].body.contains(&id), "{}", comments[1].body);
    assert!(
        comments[1].body.contains("without committing anything"),
        "{}",
        comments[1].body
    );
    assert!(fake.pulls(ORG, REPO).is_empty());
    assert!(!fake.refs(ORG, REPO).keys().any(|r| r.contains("issue-")));
    fake.assert_no_violations();
}

#[tokio::test]
async fn an_issue_in_a_repository_the_bot_cannot_read_makes_nothing() {
    let (fake, yard) = start().await;
    for (full, number) in [("forge-admin/hidden", 3), ("../escape", 4)] {
        let sent = fake
            .deliver(
                "issue_assign",
                json!({
                    "action": "assigned",
                    "number": number,
                    "issue": {"number": number, "title": ": x", "body": "true",
                              "assignees": [{"login": BOT}]},
                    "assignee": {"login": BOT},
                    "repository": {"full_name": full},
                }),
            )
            .await;
        assert_eq!(sent[0].status, Some(200), "{:?}", sent[0].error);
    }
    // The bot tries to say so on the issue it cannot see, and cannot.
    within(30, "the attempted comment", || {
        (fake.calls("issueCreateComment") >= 1).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(agents(&yard).await.is_empty());
    let repos = yard.data_dir.join("repos");
    let made: Vec<_> = std::fs::read_dir(&repos)
        .map(|dir| dir.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(made.is_empty(), "{made:?}");
    assert_eq!(fake.calls("git-upload-pack"), 0);
    assert!(fake.violations().is_empty(), "{:?}", fake.violations());
}
