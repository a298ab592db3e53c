//! The forge's set-up on demand (`POST /api/forge/init`, admin only)
//! against the contract fake of Gitea as an external forge (`GITEA_URL`
//! with `GITEA_ADMIN_TOKEN`): the bot, the organisation and one system
//! hook to this yard, the secrets kept as settings (listed as set, never
//! shown), the marker written; a second run duplicates nothing; a step
//! that keeps failing is named and leaves no marker; and a delivery the
//! fake signs is believed by the yard, so the secret matches end to end.

#![allow(clippy::unwrap_used)]

mod support;

use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{Options, TestYard, assert_error_response};
use yard_testkit::GiteaFake;

const BOT: &str = "yard-bot";
const ORG: &str = "agentyard";

async fn start(fake: &GiteaFake) -> TestYard {
    TestYard::start(Options {
        forge: Some((fake.url(), fake.admin_token())),
        ..Options::default()
    })
    .await
}

async fn init(yard: &TestYard) -> reqwest::Response {
    yard.post_json("/api/forge/init", &json!({}))
        .send()
        .await
        .unwrap()
}

/// The listing's entry for `key`.
fn entry<'a>(list: &'a Value, key: &str) -> &'a Value {
    list["settings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["key"] == key)
        .unwrap()
}

/// The bot's live token and the hook's secret, as the fake holds them.
fn secrets(fake: &GiteaFake) -> Vec<String> {
    let mut secrets: Vec<String> = fake
        .tokens(BOT)
        .into_iter()
        .filter(|t| t.valid)
        .map(|t| t.sha1)
        .collect();
    secrets.extend(fake.hooks().into_iter().map(|h| h.secret));
    secrets.push(fake.user(BOT).unwrap().password);
    secrets.push(fake.admin_token());
    secrets
}

fn assert_no_secret(text: &str, fake: &GiteaFake) {
    for secret in secrets(fake) {
        assert!(!text.contains(&secret), "a secret is shown: {text}");
    }
}

#[tokio::test]
async fn an_admin_sets_the_external_forge_up_once_and_its_signed_deliveries_are_believed() {
    let fake = GiteaFake::start("forge-admin", "forge-admin-password").await;
    let yard = start(&fake).await;
    let webhook = format!("{}/webhook/gitea", yard.base);
    let marker = yard.data_dir.join("forge-ready");
    assert!(!marker.exists());

    let first = init(&yard).await;
    assert_eq!(first.status(), StatusCode::OK);
    let text = first.text().await.unwrap();
    assert_no_secret(&text, &fake);
    let report: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(report["forgeUrl"], fake.url());
    assert_eq!(report["adminUser"], "forge-admin");
    assert_eq!(report["botUser"], BOT);
    assert_eq!(report["org"], ORG);
    assert_eq!(report["webhookUrl"], webhook);
    assert_eq!(
        report["generated"],
        json!(["bot password", "webhook secret"])
    );
    for key in [
        "forge.url",
        "forge.bot_user",
        "forge.bot_password",
        "forge.bot_token",
        "forge.org",
        "forge.webhook_secret",
    ] {
        assert!(
            report["stored"]
                .as_array()
                .unwrap()
                .iter()
                .any(|k| k == key),
            "{key}: {report}"
        );
    }

    // The forge holds the bot, the organisation and one hook to the yard.
    let bot = fake.user(BOT).expect("the bot user");
    assert!(!bot.must_change_password);
    assert!(fake.team_members(ORG, "Owners").iter().any(|m| m == BOT));
    let hooks = fake.hooks();
    assert_eq!(hooks.len(), 1, "{hooks:?}");
    assert!(hooks[0].system && hooks[0].active);
    assert_eq!(hooks[0].url, webhook);
    assert!(!hooks[0].secret.is_empty());
    let bot_token = fake.tokens(BOT)[0].sha1.clone();

    // The yard keeps them as settings: secrets set, never shown.
    let listing = yard
        .get("/api/config")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_no_secret(&listing, &fake);
    let list: Value = serde_json::from_str(&listing).unwrap();
    assert_eq!(entry(&list, "forge.url")["value"], fake.url());
    assert_eq!(entry(&list, "forge.bot_user")["value"], BOT);
    assert_eq!(entry(&list, "forge.org")["value"], ORG);
    for key in [
        "forge.bot_token",
        "forge.bot_password",
        "forge.webhook_secret",
    ] {
        let setting = entry(&list, key);
        assert_eq!(
            (setting["set"].clone(), setting["secret"].clone()),
            (json!(true), json!(true)),
            "{key}"
        );
        assert!(setting.get("value").is_none(), "{setting}");
    }
    // The admin signed in with its own token: no password or token of
    // the yard's making.
    assert_eq!(entry(&list, "forge.admin_password")["set"], false);
    assert_eq!(entry(&list, "forge.admin_token")["set"], false);
    assert!(marker.exists(), "the marker is written");

    // Again: nothing new anywhere.
    let second = init(&yard).await;
    assert_eq!(second.status(), StatusCode::OK);
    let second: Value = second.json().await.unwrap();
    assert_eq!(second["generated"], json!([]));
    assert_eq!(second["stored"], json!([]));
    assert_eq!(second["webhookId"], report["webhookId"]);
    assert_eq!(fake.hooks().len(), 1);
    assert_eq!(fake.calls("userCreateToken"), 1, "no new token");
    assert!(
        fake.token_is_valid(&bot_token),
        "the bot's token still works"
    );
    assert_eq!(fake.tokens(BOT).iter().filter(|t| t.valid).count(), 1);

    // Only an admin may.
    let made: Value = yard
        .post_json("/api/tokens", &json!({ "name": "carol" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let user = made["secret"].as_str().unwrap();
    let as_user = yard
        .http
        .post(format!("{}/api/forge/init", yard.base))
        .bearer_auth(user)
        .send()
        .await
        .unwrap();
    assert_error_response(as_user, 403, "forbidden").await;

    // The forge signs a delivery with the secret the yard keeps.
    fake.seed_repo(ORG, "app", &[("README.md", "hello\n")]);
    let issue = fake.add_issue(ORG, "app", "Fix the greeting", "It says hello.");
    let sent = fake.assign_issue(ORG, "app", issue, BOT).await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    let delivery = &sent[0];
    assert_eq!(delivery.url, webhook);
    assert_eq!(delivery.status, Some(200), "{delivery:?}");
    let resend = |id: &str| {
        yard.http
            .post(&webhook)
            .header("content-type", "application/json")
            .header("x-gitea-event", &delivery.event)
            .header("x-gitea-event-type", &delivery.event_type)
            .header("x-gitea-signature", &delivery.signature)
            .header("x-gitea-delivery", id)
            .body(delivery.body.clone())
    };
    // Recorded the first time (so now a duplicate), and the signature is
    // good for the yard: under a new id the same body is accepted.
    let again: Value = resend(&delivery.id)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(again["status"], "duplicate", "{again}");
    let fresh: Value = resend("another-delivery")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(fresh["status"], "accepted", "{fresh}");
    fake.assert_no_violations();
}

#[tokio::test]
async fn a_forge_failing_a_step_is_named_leaves_no_marker_and_the_retry_makes_nothing_twice() {
    let fake = GiteaFake::start("forge-admin", "forge-admin-password").await;
    let yard = start(&fake).await;
    let marker = yard.data_dir.join("forge-ready");
    fake.fail_next("orgCreate", 500, 100);

    let failed = init(&yard).await;
    let message = assert_error_response(failed, 502, "forge_setup_failed").await;
    assert!(message.contains("creating the organisation"), "{message}");
    assert!(message.contains("500"), "{message}");
    assert_no_secret(&message, &fake);
    assert!(!marker.exists(), "no marker after a failure");
    // What was settled is kept: the bot's token.
    let list = yard.get_json("/api/config").await;
    assert_eq!(entry(&list, "forge.bot_token")["set"], true);
    assert_eq!(entry(&list, "forge.webhook_secret")["set"], true);

    fake.clear_faults();
    let done = init(&yard).await;
    assert_eq!(done.status(), StatusCode::OK);
    assert!(marker.exists());
    assert_eq!(fake.calls("userCreateToken"), 1, "the kept token is used");
    assert_eq!(fake.hooks().len(), 1);
    assert!(fake.team_members(ORG, "Owners").iter().any(|m| m == BOT));
    fake.assert_no_violations();
}

#[tokio::test]
async fn without_a_forge_the_set_up_says_how_to_configure_one() {
    let yard = TestYard::start(Options::default()).await;
    let message = assert_error_response(init(&yard).await, 409, "unsupported").await;
    assert!(message.contains("GITEA_URL"), "{message}");
    assert!(!yard.data_dir.join("forge-ready").exists());
}
