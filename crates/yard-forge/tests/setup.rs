//! The forge's first-boot set-up against the contract fake of Gitea
//! (`yard_testkit::GiteaFake`), which checks every request against Gitea's
//! own Swagger document: a clean run, a second run that duplicates
//! nothing, a crash after each step followed by a fresh run, a forge that
//! keeps failing, an external forge given an admin token, and the errors a
//! person sees (each naming its step, none holding a secret).

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use yard_forge::{
    AdminAuth, ForgeCredentials, ForgeSetup, Plan, Secret, SetupError, SetupOptions, Step,
    StepFailure, StoredSecrets, TOKEN_NAME, WEBHOOK_EVENTS,
};
use yard_testkit::GiteaFake;

const ADMIN: &str = "forge-admin";
const ADMIN_PASSWORD: &str = "admin-password-1";
const BOT: &str = "yard-bot";
const ORG: &str = "yard";
const WEBHOOK: &str = "http://127.0.0.1:8080/webhook/gitea";

/// Quick tries, so failing tests fail fast.
fn options(tries: u32) -> SetupOptions {
    SetupOptions {
        ready_timeout: Duration::from_secs(5),
        tries,
        first_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(4),
        request_timeout: Duration::from_secs(10),
    }
}

fn password_plan(stored: StoredSecrets) -> Plan {
    let mut plan = Plan::new(
        AdminAuth::Password {
            user: ADMIN.into(),
            password: Secret::new(ADMIN_PASSWORD),
        },
        BOT,
        ORG,
        WEBHOOK,
    );
    plan.stored = stored;
    plan
}

async fn run(
    fake: &GiteaFake,
    plan: &Plan,
    tries: u32,
) -> Result<ForgeCredentials, yard_forge::SetupFailed> {
    ForgeSetup::new(&fake.api_url(), options(tries))
        .unwrap()
        .run(plan)
        .await
}

/// The state of a clean run: the bot may use the API, its token and the
/// admin's work, the org has the bot among its owners, and there is one
/// active system hook to the yard with the yard's secret and events.
fn assert_set_up(fake: &GiteaFake, credentials: &ForgeCredentials) {
    let bot = fake.user(BOT).expect("the bot user");
    assert!(!bot.must_change_password, "the bot may use the API");
    assert!(!bot.is_admin);
    assert_eq!(bot.password, credentials.bot_password.expose());

    assert!(fake.token_is_valid(credentials.bot_token.expose()));
    assert!(fake.token_is_valid(credentials.admin_token.expose()));
    let bot_tokens = fake.tokens(BOT);
    let bot_token = bot_tokens
        .iter()
        .find(|t| t.sha1 == credentials.bot_token.expose())
        .expect("the bot's token is the bot's");
    for scope in ["write:repository", "write:issue", "read:user"] {
        assert!(bot_token.scopes.iter().any(|s| s == scope), "{scope}");
    }
    assert!(
        fake.tokens(ADMIN)
            .iter()
            .any(|t| t.sha1 == credentials.admin_token.expose()),
        "the admin's token is the admin's"
    );

    assert_eq!(fake.orgs().len(), 1, "one organisation");
    assert!(
        fake.team_members(ORG, "Owners").iter().any(|m| m == BOT),
        "the bot is an owner: {:?}",
        fake.team_members(ORG, "Owners")
    );

    let hooks = fake.hooks();
    assert_eq!(hooks.len(), 1, "one hook: {hooks:?}");
    let hook = &hooks[0];
    assert!(hook.system && hook.active);
    assert_eq!(hook.kind, "gitea");
    assert_eq!(hook.url, WEBHOOK);
    assert_eq!(hook.content_type, "json");
    assert_eq!(hook.id, credentials.webhook_id);
    assert!(!hook.secret.is_empty());
    assert_eq!(hook.secret, credentials.webhook_secret.expose());
    for event in WEBHOOK_EVENTS {
        assert!(
            hook.events.iter().any(|e| e == event),
            "{event}: {:?}",
            hook.events
        );
    }
    fake.assert_no_violations();
}

fn live_tokens(fake: &GiteaFake, user: &str) -> usize {
    fake.tokens(user).iter().filter(|t| t.valid).count()
}

#[tokio::test]
async fn a_clean_first_run_sets_up_the_bot_the_org_and_one_system_hook() {
    let fake = GiteaFake::start(ADMIN, ADMIN_PASSWORD).await;
    let credentials = run(&fake, &password_plan(StoredSecrets::default()), 3)
        .await
        .unwrap();
    assert_set_up(&fake, &credentials);
    assert_eq!(credentials.forge_url, fake.url());
    assert_eq!(credentials.admin_user, ADMIN);
    assert!(credentials.bot_password_generated);
    assert!(credentials.webhook_secret_generated);
    assert!(credentials.bot_password.expose().len() >= 32);
    assert_eq!(credentials.webhook_secret.expose().len(), 64);
    assert_eq!(
        fake.tokens(BOT)[0].name,
        TOKEN_NAME,
        "the first token has the plain name"
    );
    // The fake's own admin token, and the one made now.
    assert_eq!(live_tokens(&fake, ADMIN), 2);
    assert_eq!(live_tokens(&fake, BOT), 1);
}

#[tokio::test]
async fn a_second_run_with_what_the_first_returned_duplicates_nothing() {
    let fake = GiteaFake::start(ADMIN, ADMIN_PASSWORD).await;
    let first = run(&fake, &password_plan(StoredSecrets::default()), 3)
        .await
        .unwrap();
    let second = run(&fake, &password_plan(first.stored()), 3).await.unwrap();
    assert_set_up(&fake, &second);
    assert_eq!(second.bot_token.expose(), first.bot_token.expose());
    assert_eq!(second.admin_token.expose(), first.admin_token.expose());
    assert_eq!(second.bot_password.expose(), first.bot_password.expose());
    assert_eq!(
        second.webhook_secret.expose(),
        first.webhook_secret.expose()
    );
    assert_eq!(second.webhook_id, first.webhook_id);
    assert!(!second.bot_password_generated && !second.webhook_secret_generated);
    assert_eq!(fake.calls("userCreateToken"), 2, "no new tokens");
    assert_eq!(fake.calls("adminCreateHook"), 1, "no new hook");
    assert_eq!(live_tokens(&fake, ADMIN), 2);
    assert_eq!(live_tokens(&fake, BOT), 1);
}

/// Where a crash is injected: the call is done, then answered 500.
const CRASH_POINTS: [(&str, Step); 7] = [
    ("userGetCurrent", Step::CheckAdmin),
    ("POST /api/v1/users/forge-admin/tokens", Step::AdminToken),
    ("adminCreateUser", Step::BotUser),
    ("POST /api/v1/users/yard-bot/tokens", Step::BotToken),
    ("orgCreate", Step::Organisation),
    ("orgAddTeamMember", Step::OrgOwners),
    ("adminCreateHook", Step::Webhook),
];

#[tokio::test]
async fn a_crash_after_each_step_then_a_fresh_run_ends_as_a_clean_run() {
    for (target, step) in CRASH_POINTS {
        // The next boot has what the crashed one stored, or nothing.
        for keep_stored in [true, false] {
            let fake = GiteaFake::start(ADMIN, ADMIN_PASSWORD).await;
            fake.fail_after_next(target, 500, 1);
            let failed = run(&fake, &password_plan(StoredSecrets::default()), 1)
                .await
                .unwrap_err();
            assert_eq!(
                failed.error.step(),
                Some(step),
                "{target}: {}",
                failed.error
            );
            let message = failed.error.to_string();
            assert!(message.contains(&step.to_string()), "{message}");
            assert!(message.contains("500"), "{message}");

            let stored = if keep_stored {
                failed.stored.clone()
            } else {
                StoredSecrets::default()
            };
            let credentials = run(&fake, &password_plan(stored), 3)
                .await
                .unwrap_or_else(|f| panic!("after a crash at {target}: {}", f.error));
            assert_set_up(&fake, &credentials);
            if keep_stored {
                assert_eq!(
                    credentials.webhook_secret.expose(),
                    failed.stored.webhook_secret.as_ref().unwrap().expose(),
                    "{target}: the stored secret is kept"
                );
            }

            // And it stays put from then on.
            let tokens = fake.calls("userCreateToken");
            let again = run(&fake, &password_plan(credentials.stored()), 3)
                .await
                .unwrap();
            assert_set_up(&fake, &again);
            assert_eq!(fake.calls("userCreateToken"), tokens, "{target}");
        }
    }
}

#[tokio::test]
async fn a_crash_within_a_run_is_ridden_out_by_its_retries() {
    for (target, _) in CRASH_POINTS {
        let fake = GiteaFake::start(ADMIN, ADMIN_PASSWORD).await;
        fake.fail_after_next(target, 502, 1);
        let credentials = run(&fake, &password_plan(StoredSecrets::default()), 3)
            .await
            .unwrap_or_else(|f| panic!("{target}: {}", f.error));
        assert_set_up(&fake, &credentials);
        if target == "adminCreateHook" {
            assert_eq!(
                fake.calls("adminCreateHook"),
                1,
                "the hook made before the crash is kept, not made again"
            );
        }
    }
}

#[tokio::test]
async fn a_forge_answering_500_on_one_step_fails_naming_the_step() {
    let fake = GiteaFake::start(ADMIN, ADMIN_PASSWORD).await;
    fake.fail_next("orgCreate", 500, 100);
    let failed = run(&fake, &password_plan(StoredSecrets::default()), 4)
        .await
        .unwrap_err();
    fake.clear_faults();
    let message = failed.error.to_string();
    assert!(
        message.starts_with("creating the organisation: the forge answered 500"),
        "{message}"
    );
    assert!(message.ends_with("after 4 tries"), "{message}");
    assert_eq!(fake.calls("orgCreate"), 4);
    assert!(
        matches!(
            failed.error,
            SetupError::Step {
                step: Step::Organisation,
                failure: StepFailure::GaveUp { tries: 4, .. }
            }
        ),
        "{:?}",
        failed.error
    );
    // What was settled before comes back, and never shows in the message.
    let stored = failed.stored;
    for secret in [
        stored.admin_token.as_ref().unwrap(),
        stored.bot_password.as_ref().unwrap(),
        stored.bot_token.as_ref().unwrap(),
        stored.webhook_secret.as_ref().unwrap(),
    ] {
        assert!(!message.contains(secret.expose()));
        assert!(!format!("{stored:?}").contains(secret.expose()));
    }
    assert!(fake.token_is_valid(stored.bot_token.as_ref().unwrap().expose()));
    assert!(!message.contains(ADMIN_PASSWORD));
    fake.assert_no_violations();
}

#[tokio::test]
async fn a_refusal_that_no_step_handles_fails_at_once() {
    let fake = GiteaFake::start(ADMIN, ADMIN_PASSWORD).await;
    fake.fail_next("adminCreateHook", 403, 1);
    let failed = run(&fake, &password_plan(StoredSecrets::default()), 5)
        .await
        .unwrap_err();
    assert_eq!(fake.calls("adminCreateHook"), 1, "not tried again");
    let message = failed.error.to_string();
    assert!(
        message.starts_with("setting up the system webhook: the forge answered 403"),
        "{message}"
    );
    fake.assert_no_violations();
}

#[tokio::test]
async fn an_external_forge_is_set_up_with_an_admin_token() {
    let fake = GiteaFake::start(ADMIN, ADMIN_PASSWORD).await;
    let plan = Plan::new(
        AdminAuth::Token(Secret::new(fake.admin_token())),
        BOT,
        ORG,
        WEBHOOK,
    );
    let credentials = run(&fake, &plan, 3).await.unwrap();
    assert_set_up(&fake, &credentials);
    assert_eq!(credentials.admin_user, ADMIN, "read from the forge");
    assert_eq!(credentials.admin_token.expose(), fake.admin_token());
    assert!(credentials.admin_password.is_none());
    assert_eq!(live_tokens(&fake, ADMIN), 1, "no admin token is made");
    assert!(credentials.stored().admin_token.is_none());

    let mut again = plan.clone();
    again.stored = credentials.stored();
    let second = run(&fake, &again, 3).await.unwrap();
    assert_set_up(&fake, &second);
    assert_eq!(second.bot_token.expose(), credentials.bot_token.expose());
}

#[tokio::test]
async fn a_bot_made_by_hand_that_must_change_its_password_is_fixed() {
    let fake = GiteaFake::start(ADMIN, ADMIN_PASSWORD).await;
    // As a person would make it through the API: Gitea's default is that
    // it must change its password, which blocks the API.
    let response = yard_testkit::http()
        .post(format!("{}/admin/users", fake.api_url()))
        .header("Authorization", format!("token {}", fake.admin_token()))
        .json(&serde_json::json!({
            "username": BOT,
            "email": "bot@example.com",
            "password": "some-old-password",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    assert!(fake.user(BOT).unwrap().must_change_password);

    let credentials = run(&fake, &password_plan(StoredSecrets::default()), 3)
        .await
        .unwrap();
    assert_set_up(&fake, &credentials);
    assert_ne!(fake.user(BOT).unwrap().password, "some-old-password");
}

#[tokio::test]
async fn a_used_token_name_gets_a_suffix() {
    let fake = GiteaFake::start(ADMIN, ADMIN_PASSWORD).await;
    fake.add_token(ADMIN, TOKEN_NAME, &["read:user"]);
    fake.add_token(ADMIN, &format!("{TOKEN_NAME}-2"), &["read:user"]);
    let credentials = run(&fake, &password_plan(StoredSecrets::default()), 3)
        .await
        .unwrap();
    assert_set_up(&fake, &credentials);
    let made = fake
        .tokens(ADMIN)
        .into_iter()
        .find(|t| t.sha1 == credentials.admin_token.expose())
        .unwrap();
    assert_eq!(made.name, format!("{TOKEN_NAME}-3"));
}

#[tokio::test]
async fn a_stored_token_that_no_longer_works_is_replaced() {
    let fake = GiteaFake::start(ADMIN, ADMIN_PASSWORD).await;
    let first = run(&fake, &password_plan(StoredSecrets::default()), 3)
        .await
        .unwrap();
    let mut stored = first.stored();
    stored.bot_token = Some(Secret::new("0".repeat(40)));
    // A token of someone else is no token of the bot's either.
    stored.admin_token = Some(first.bot_token.clone());
    let second = run(&fake, &password_plan(stored), 3).await.unwrap();
    assert_set_up(&fake, &second);
    assert_ne!(second.bot_token.expose(), first.bot_token.expose());
    assert_ne!(second.admin_token.expose(), first.bot_token.expose());
    assert_eq!(
        fake.tokens(BOT)
            .iter()
            .map(|t| t.name.as_str())
            .collect::<Vec<_>>(),
        [TOKEN_NAME.to_owned(), format!("{TOKEN_NAME}-2")]
    );
}

#[tokio::test]
async fn a_hook_whose_secret_the_yard_lost_is_made_again() {
    let fake = GiteaFake::start(ADMIN, ADMIN_PASSWORD).await;
    let first = run(&fake, &password_plan(StoredSecrets::default()), 3)
        .await
        .unwrap();
    let mut stored = first.stored();
    stored.webhook_secret = None;
    let second = run(&fake, &password_plan(stored), 3).await.unwrap();
    assert_set_up(&fake, &second);
    assert_ne!(
        second.webhook_secret.expose(),
        first.webhook_secret.expose()
    );
    assert_ne!(second.webhook_id, first.webhook_id);
    assert!(second.webhook_secret_generated);
}

#[tokio::test]
async fn a_wrong_admin_password_is_a_clear_error_without_the_password() {
    let fake = GiteaFake::start(ADMIN, ADMIN_PASSWORD).await;
    let plan = Plan::new(
        AdminAuth::Password {
            user: ADMIN.into(),
            password: Secret::new("not-the-password"),
        },
        BOT,
        ORG,
        WEBHOOK,
    );
    let failed = run(&fake, &plan, 3).await.unwrap_err();
    let message = failed.error.to_string();
    assert!(
        message.starts_with(
            "checking the admin credential: the forge refused the admin credential (401"
        ),
        "{message}"
    );
    assert!(!message.contains("not-the-password"), "{message}");
    assert_eq!(fake.calls("adminCreateUser"), 0, "nothing else was tried");

    // A user who is not a site admin.
    fake.add_user("someone", "someone-password-1", false);
    let plan = Plan::new(
        AdminAuth::Password {
            user: "someone".into(),
            password: Secret::new("someone-password-1"),
        },
        BOT,
        ORG,
        WEBHOOK,
    );
    let message = run(&fake, &plan, 3).await.unwrap_err().error.to_string();
    assert!(
        message.contains("someone is not a site administrator"),
        "{message}"
    );
    fake.assert_no_violations();
}

#[tokio::test]
async fn a_forge_that_never_answers_is_a_bounded_wait() {
    // A port nobody listens on.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    let mut options = options(3);
    options.ready_timeout = Duration::from_millis(300);
    let setup = ForgeSetup::new(&format!("http://{address}"), options).unwrap();
    let started = std::time::Instant::now();
    let failed = setup
        .run(&password_plan(StoredSecrets::default()))
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(failed.error.step(), Some(Step::WaitForForge));
    let message = failed.error.to_string();
    assert!(
        message.contains(&format!("http://{address}")) && message.contains("GET /api/v1/version"),
        "{message}"
    );
}

#[tokio::test]
async fn a_plan_that_cannot_work_is_refused_before_any_call() {
    let fake = GiteaFake::start(ADMIN, ADMIN_PASSWORD).await;
    let mut plan = password_plan(StoredSecrets::default());
    plan.bot_user = ADMIN.into();
    assert!(matches!(
        run(&fake, &plan, 3).await.unwrap_err().error,
        SetupError::Plan(_)
    ));
    let mut plan = password_plan(StoredSecrets::default());
    plan.webhook_url = "http://user:secret@yard/webhook/gitea".into();
    let message = run(&fake, &plan, 3).await.unwrap_err().error.to_string();
    assert!(!message.contains("secret@"), "{message}");
    assert_eq!(fake.calls("getVersion"), 0);
}

/// A run's future may be spawned on a multi-threaded runtime (the yard
/// runs the set-up in the background and from a request handler).
#[test]
fn a_run_can_move_between_threads() {
    fn send<T: Send>(_: &T) {}
    let setup = ForgeSetup::new("http://127.0.0.1:9", options(1)).unwrap();
    let plan = password_plan(StoredSecrets::default());
    send(&setup.run(&plan));
}
