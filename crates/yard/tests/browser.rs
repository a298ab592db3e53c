//! The web page in a real headless Chromium, against the real daemon: the
//! whole flow a person goes through, on a desktop and on a phone-sized
//! screen by keyboard alone. Each test saves screenshots of what the person
//! saw under `target/tmp/browser/<test>/`.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use fantoccini::Locator;
use fantoccini::key::Key;
use yard_testkit::{Browser, Daemon, DaemonSetup, SLOW_IMAGE, Screen, ensure_stack_images};

const YARD: &str = env!("CARGO_BIN_EXE_yard");

fn screenshots(test: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("browser")
        .join(test)
}

async fn daemon() -> Daemon {
    ensure_stack_images().await;
    Daemon::start(
        YARD.as_ref(),
        DaemonSetup {
            // Answers only after four seconds, so there is progress to watch.
            stack_image: Some(SLOW_IMAGE.to_owned()),
            ..DaemonSetup::default()
        },
    )
}

/// The page, as a person opens it: by name, not by IP address.
fn page_url(daemon: &Daemon) -> String {
    format!("http://localhost:{}/", daemon.port())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_person_deploys_follows_opens_and_deletes_a_stack() {
    let daemon = daemon().await;
    let mut browser = Browser::start(
        &screenshots("desktop"),
        Screen::Desktop {
            width: 1280,
            height: 900,
        },
    )
    .await;
    let client = browser.client().clone();
    client.goto(&page_url(&daemon)).await.unwrap();

    // Sign in: a wrong token is refused with the reason, the right one works.
    browser.wait_for_display("#view-signin", true).await;
    browser.screenshot("sign-in").await;
    browser.type_into("#token", "yard_not-a-token").await;
    browser.click("#signin-button").await;
    browser
        .wait_for_text("#signin-error", |t| t.contains("not an active token"))
        .await;
    browser.type_into("#token", &daemon.token()).await;
    browser.click("#signin-button").await;
    browser.wait_for_display("#view-deploy", true).await;
    browser.wait_for_text("#who", |t| t.contains("admin")).await;
    browser
        .wait_for_text("#stacks-empty", |t| t.contains("No stacks"))
        .await;

    // Names are checked as they are typed, and refusals say why.
    for (typed, reason) in [("ab", "too short"), ("api", "reserved"), ("Bad_Name", "")] {
        browser.type_into("#name", typed).await;
        let status = browser
            .wait_for_text("#name-status", |t| !t.is_empty() && t != "Checking…")
            .await;
        assert!(status.to_lowercase().contains(reason), "{typed}: {status}");
        assert!(!status.contains("available"), "{typed}: {status}");
        let button = client.find(Locator::Css("#deploy-button")).await.unwrap();
        assert!(
            !button.is_enabled().await.unwrap(),
            "{typed} cannot be deployed"
        );
    }
    browser.type_into("#name", "ab").await;
    browser
        .wait_for_text("#name-status", |t| t.contains("too short"))
        .await;
    browser.screenshot("refused-name").await;
    browser.type_into("#name", "alice").await;
    browser
        .wait_for_text("#name-status", |t| t.contains("available"))
        .await;
    browser.screenshot("available-name").await;

    // Deploy, and watch the progress reach success.
    browser.click("#deploy-button").await;
    browser.wait_for_display("#view-progress", true).await;
    browser
        .wait_for_text("#progress-step", |t| t.contains("Deploying"))
        .await;
    let percent = browser
        .wait_for_text("#progress-percent", |t| t != "0%")
        .await;
    assert_ne!(percent, "100%", "progress is shown on the way");
    browser.screenshot("progress").await;
    browser.wait_for_display("#view-success", true).await;
    let address = format!("http://alice.localhost:{}", daemon.port());
    let link = browser
        .wait_for_text("#success-link", |t| !t.is_empty())
        .await;
    assert_eq!(link, address);
    browser
        .wait_for_text("#stacks-list li[data-stack=alice] .badge", |t| t == "up")
        .await;
    browser.screenshot("success").await;

    // Follow the link: the stack's own page, through its address.
    let home = client.window().await.unwrap();
    browser.click("#success-link").await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let stack_window = loop {
        let windows = client.windows().await.unwrap();
        if let Some(window) = windows.into_iter().find(|w| *w != home) {
            break window;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the link opened no window"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    client.switch_to_window(stack_window).await.unwrap();
    browser
        .wait_for_text("body", |t| t.trim() == "stack alice")
        .await;
    assert_eq!(
        client.current_url().await.unwrap().as_str(),
        format!("{address}/")
    );
    browser.screenshot("stack-page").await;
    client.close_window().await.unwrap();
    client.switch_to_window(home).await.unwrap();

    // Delete it, after saying yes; the list updates by itself.
    browser
        .click("#stacks-list li[data-stack=alice] button")
        .await;
    browser.wait_for_display("#confirm", true).await;
    browser
        .wait_for_text("#confirm-title", |t| t.contains("alice"))
        .await;
    browser.screenshot("confirm-delete").await;
    browser.click("#confirm-delete").await;
    browser
        .wait_for_text("#stacks-empty", |t| t.contains("No stacks"))
        .await;
    browser.screenshot("deleted").await;
    assert_eq!(
        daemon.api_get("/api/stacks").await["stacks"],
        serde_json::json!([])
    );

    // Signing out takes the person back to the sign-in form.
    browser.click("#sign-out").await;
    browser.wait_for_display("#view-signin", true).await;
    client.refresh().await.unwrap();
    browser.wait_for_display("#view-signin", true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn on_a_phone_by_keyboard_progress_survives_a_yard_restart() {
    let mut daemon = daemon().await;
    let mut browser = Browser::start(
        &screenshots("phone"),
        Screen::Phone {
            width: 390,
            height: 844,
        },
    )
    .await;
    let client = browser.client().clone();
    client.goto(&page_url(&daemon)).await.unwrap();

    // The keyboard alone: focus starts in the token field, Enter submits.
    browser.wait_for_display("#view-signin", true).await;
    assert_eq!(browser.focused_id().await.as_deref(), Some("token"));
    browser
        .keys(&format!("{}{}", daemon.token(), char::from(Key::Enter)))
        .await;
    browser.wait_for_display("#view-deploy", true).await;
    assert_eq!(browser.focused_id().await.as_deref(), Some("name"));
    browser.screenshot("deploy-form").await;
    browser
        .keys(&format!("bob{}", char::from(Key::Enter)))
        .await;
    browser.wait_for_display("#view-progress", true).await;
    browser
        .wait_for_text("#progress-step", |t| t.contains("Deploying"))
        .await;
    browser.screenshot("progress").await;

    // The yard dies mid-deployment: the page says it lost the connection,
    // and when the yard is back it picks up the deployment where it is.
    daemon.kill();
    browser
        .wait_for_text("#progress-connection", |t| t.contains("reconnecting"))
        .await;
    browser.screenshot("reconnecting").await;
    daemon.start_again_at_same_address();
    browser.wait_for_display("#view-success", true).await;
    browser
        .wait_for_text("#success-link", |t| t.contains("bob.localhost"))
        .await;
    browser.screenshot("success").await;

    // Delete by keyboard: Tab to the stack's button, Enter, then Tab from
    // Cancel to Delete in the dialog, Enter.
    browser
        .wait_for_text("#stacks-list li[data-stack=bob] .badge", |t| t == "up")
        .await;
    client
        .execute("document.querySelector('#another').focus()", vec![])
        .await
        .unwrap();
    let mut tabs = 0;
    while browser.focused_id().await.is_some() || tabs == 0 {
        browser.keys(&char::from(Key::Tab).to_string()).await;
        tabs += 1;
        assert!(tabs < 10, "the stack's Delete button is reachable by Tab");
    }
    let label = client
        .active_element()
        .await
        .unwrap()
        .attr("aria-label")
        .await
        .unwrap();
    assert_eq!(label.as_deref(), Some("Delete stack bob"));
    browser.keys(&char::from(Key::Enter).to_string()).await;
    browser.wait_for_display("#confirm", true).await;
    browser.keys(&char::from(Key::Tab).to_string()).await;
    assert_eq!(
        browser.focused_id().await.as_deref(),
        Some("confirm-delete")
    );
    browser.screenshot("confirm-delete").await;
    browser.keys(&char::from(Key::Enter).to_string()).await;
    browser
        .wait_for_text("#stacks-empty", |t| t.contains("No stacks"))
        .await;
    browser.screenshot("deleted").await;
    assert_eq!(
        daemon.api_get("/api/stacks").await["stacks"],
        serde_json::json!([])
    );
}
