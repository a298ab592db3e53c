//! The web page's Agents view in a real headless Chromium, against the real
//! daemon: a person sees the agents and answers, live, the questions they
//! wait on (a policy `ask` and an `AskUserQuestion` choice), on a desktop
//! with the mouse and on a phone-sized screen by touch and keyboard. The
//! waiting agent is a record in the daemon's store whose credential makes
//! real hook calls, so no container is needed. Each test saves screenshots
//! of what the person saw under `target/tmp/browser/<test>/`.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::time::Duration;

use fantoccini::key::Key;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use yard_core::AgentId;
use yard_store::Store;
use yard_testkit::{Browser, Daemon, DaemonSetup, Screen};

mod support;

const YARD: &str = env!("CARGO_BIN_EXE_yard");

/// Every `psql` command waits for a person.
const ASK_PSQL: &str = "[[rules]]\ntool = \"Bash\"\ncommand = \"psql*\"\ndecision = \"ask\"\n";

/// How long a whole test may take before it fails instead of hanging.
const TEST_LIMIT: Duration = Duration::from_secs(300);
/// How long a held hook call may take to return once the page answered.
const HOOK_LIMIT: Duration = Duration::from_secs(30);

fn screenshots(test: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("browser")
        .join(test)
}

/// The page, as a person opens it: by name, not by IP address.
fn page_url(daemon: &Daemon) -> String {
    format!("http://localhost:{}/", daemon.port())
}

/// A yard whose policy asks about `psql`, with a running agent of the
/// admin's recorded in its store; returns the agent's id and credential.
async fn yard_with_an_agent() -> (Daemon, AgentId, String) {
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
    let agent = support::running_agent(
        &store,
        "browser-test",
        "migrate the orders table",
        Some(&token),
    )
    .await;
    (daemon, agent.id, token)
}

/// The agent calls its hook with `event`; the call returns the hook output
/// once a person answered.
fn hook(daemon: &Daemon, token: &str, event: Value) -> JoinHandle<Value> {
    let request = yard_testkit::http()
        .post(format!("{}/hook", daemon.url()))
        .bearer_auth(token)
        .json(&event);
    tokio::spawn(async move {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    })
}

async fn returned(call: JoinHandle<Value>) -> Value {
    tokio::time::timeout(HOOK_LIMIT, call)
        .await
        .expect("the hook call returns once the page answered")
        .unwrap()
}

fn psql_event() -> Value {
    json!({"hook_event_name": "PreToolUse", "tool_name": "Bash",
           "tool_input": {"command": "psql -c 'drop table t'"}})
}

fn database_event() -> Value {
    json!({"hook_event_name": "PreToolUse", "tool_name": "AskUserQuestion",
           "tool_input": {"questions": [{"question": "Which database?", "header": "DB",
                                         "options": [{"label": "Postgres"}, {"label": "SQLite"}]}]}})
}

/// Opens the page and signs in with the admin's token.
async fn sign_in(browser: &Browser, daemon: &Daemon) {
    browser.client().goto(&page_url(daemon)).await.unwrap();
    browser.wait_for_display("#view-signin", true).await;
    browser.type_into("#token", &daemon.token()).await;
    browser.click("#signin-button").await;
    browser.wait_for_display("#tabs", true).await;
}

/// Waits until the agent is listed as running, with its task and branch.
async fn agent_listed(browser: &Browser, id: &AgentId) {
    let item = format!("#agents-list li[data-agent=\"{id}\"]");
    browser
        .wait_for_text(&format!("{item} .badge"), |t| t == "running")
        .await;
    let text = browser.wait_for_text(&item, |t| !t.is_empty()).await;
    assert!(text.contains("migrate the orders table"), "{text}");
    assert!(text.contains(&format!("yard/{id}")), "{text}");
    assert!(text.contains("s ago"), "its age: {text}");
}

/// How the Agents view lies on the screen: the page's width against the
/// window's, whether the two cards stack in one column, and the buttons
/// shown that are less than 44 px high.
async fn layout(browser: &Browser) -> Value {
    browser
        .client()
        .execute(
            "const questions = document.getElementById('questions').getBoundingClientRect();
             const agents = document.getElementById('agents').getBoundingClientRect();
             const small = [...document.querySelectorAll('#tabs [role=tab], #panel-agents button')]
               .filter((b) => b.offsetParent !== null && b.getBoundingClientRect().height < 44)
               .map((b) => b.textContent);
             return {
               scrollWidth: document.documentElement.scrollWidth,
               innerWidth: window.innerWidth,
               oneColumn: questions.left === agents.left && agents.top >= questions.bottom,
               small,
             };",
            vec![],
        )
        .await
        .unwrap()
}

async fn fits_a_phone(browser: &Browser) {
    let layout = layout(browser).await;
    assert!(
        layout["scrollWidth"].as_u64() <= layout["innerWidth"].as_u64(),
        "nothing overflows sideways: {layout}"
    );
    assert_eq!(layout["oneColumn"], true, "{layout}");
    assert_eq!(
        layout["small"],
        json!([]),
        "buttons big enough to tap: {layout}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn on_a_desktop_a_person_answers_an_agents_questions_live() {
    tokio::time::timeout(TEST_LIMIT, on_a_desktop())
        .await
        .expect("the test finished in time");
}

async fn on_a_desktop() {
    let (daemon, id, token) = yard_with_an_agent().await;
    let mut browser = Browser::start(
        &screenshots("agents-desktop"),
        Screen::Desktop {
            width: 1280,
            height: 900,
        },
    )
    .await;
    sign_in(&browser, &daemon).await;

    // The Agents tab lists the agent, and says the question channel is live.
    browser.click("#tab-agents").await;
    browser.wait_for_display("#panel-stacks", false).await;
    agent_listed(&browser, &id).await;
    browser
        .wait_for_text("#questions-connection", |t| t == "Live")
        .await;
    browser
        .wait_for_text("#questions-empty", |t| t.contains("No agent is waiting"))
        .await;
    browser.screenshot("agents").await;

    // The agent runs psql: the page shows the question as it is asked.
    let permission = hook(&daemon, &token, psql_event());
    browser
        .wait_for_text("#questions-list li .context", |t| {
            t == "Bash: psql -c 'drop table t'"
        })
        .await;
    let shown = browser
        .wait_for_text("#questions-list li", |t| t.contains("left"))
        .await;
    assert!(shown.contains(&format!("Agent {id}")), "{shown}");
    assert!(shown.contains("May the agent use Bash?"), "{shown}");
    browser
        .wait_for_text("#questions-count", |t| t == "1")
        .await;

    // Another answering client takes it: here it is being answered
    // elsewhere and cannot be opened, until the other client lets go.
    let question = daemon.api_get("/api/questions").await["questions"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut request = format!(
        "ws://{}/api/questions/ws",
        daemon.url().trim_start_matches("http://")
    )
    .into_client_request()
    .unwrap();
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {}", daemon.token()).parse().unwrap(),
    );
    let (mut other, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let claim = json!({"type": "claim", "id": question}).to_string();
    other.send(Message::text(claim)).await.unwrap();
    browser
        .wait_for_text("#questions-list li .elsewhere", |t| {
            t.contains("answered elsewhere")
        })
        .await;
    let toggle = browser
        .client()
        .find(fantoccini::Locator::Css("#questions-list li .toggle"))
        .await
        .unwrap();
    assert!(
        !toggle.is_enabled().await.unwrap(),
        "its controls are disabled"
    );
    browser.screenshot("answered-elsewhere").await;
    let release = json!({"type": "release", "id": question}).to_string();
    other.send(Message::text(release)).await.unwrap();
    browser
        .wait_for_display("#questions-list li .elsewhere", false)
        .await;
    other.close(None).await.unwrap();
    while other.next().await.is_some() {}

    // The person opens it and allows: the agent's call returns "allow".
    browser.click("#questions-list li .toggle").await;
    browser
        .wait_for_display("#questions-list li .answer", true)
        .await;
    browser.screenshot("permission").await;
    browser
        .click("#questions-list li button[data-answer=allow]")
        .await;
    let said = returned(permission).await;
    assert_eq!(
        said["hookSpecificOutput"]["permissionDecision"], "allow",
        "{said}"
    );
    browser
        .wait_for_text("#questions-empty", |t| t.contains("No agent is waiting"))
        .await;
    browser.wait_for_display("#questions-count", false).await;

    // A choice from AskUserQuestion: one button per option.
    let choice = hook(&daemon, &token, database_event());
    browser
        .wait_for_text("#questions-list li .question-message", |t| {
            t == "[DB] Which database?"
        })
        .await;
    browser.click("#questions-list li .toggle").await;
    browser
        .wait_for_display("#questions-list li button[data-answer=Postgres]", true)
        .await;
    browser.screenshot("select").await;
    browser
        .click("#questions-list li button[data-answer=SQLite]")
        .await;
    let said = returned(choice).await;
    assert_eq!(
        said["hookSpecificOutput"]["updatedInput"]["answers"],
        json!({"Which database?": "SQLite"}),
        "{said}"
    );
    browser
        .wait_for_text("#questions-empty", |t| t.contains("No agent is waiting"))
        .await;

    // A question without options is answered in words, with a reason.
    let words = hook(
        &daemon,
        &token,
        json!({"hook_event_name": "PreToolUse", "tool_name": "AskUserQuestion",
               "tool_input": {"questions": [{"question": "Name the new table?"}]}}),
    );
    browser
        .wait_for_text("#questions-list li .question-message", |t| {
            t == "Name the new table?"
        })
        .await;
    browser.click("#questions-list li .toggle").await;
    browser
        .type_into("#questions-list li textarea", "orders_v2")
        .await;
    browser
        .type_into("#questions-list li input", "matches the naming scheme")
        .await;
    browser.screenshot("text").await;
    browser.click("#questions-list li .choices button").await;
    let said = returned(words).await;
    assert_eq!(
        said["hookSpecificOutput"]["updatedInput"]["answers"],
        json!({"Name the new table?": "orders_v2"}),
        "{said}"
    );
    browser
        .wait_for_text("#questions-empty", |t| t.contains("No agent is waiting"))
        .await;

    // The agent's log is opened on demand; this one has no container, and
    // the page says what the API said.
    let item = format!("#agents-list li[data-agent=\"{id}\"]");
    browser
        .click(&format!("{item} button[aria-controls=log-{id}]"))
        .await;
    browser
        .wait_for_text(&format!("#log-{id} .error"), |t| !t.is_empty())
        .await;
    browser.screenshot("answered").await;

    // Merging needs its source repository, which this agent lacks: the
    // refusal is shown under its buttons.
    browser
        .click(&format!("{item} button[aria-label=\"Merge agent {id}\"]"))
        .await;
    browser.wait_for_display("#agent-confirm", true).await;
    browser.click("#agent-confirm-ok").await;
    let refused = browser
        .wait_for_text(&format!("{item} .status.bad"), |t| !t.is_empty())
        .await;
    assert!(refused.contains("/repo does not exist"), "{refused}");
    browser.screenshot("merge-refused").await;

    // Stop, after saying yes: the list shows it stopped.
    browser
        .click(&format!("{item} button[aria-label=\"Stop agent {id}\"]"))
        .await;
    browser.wait_for_display("#agent-confirm", true).await;
    browser.click("#agent-confirm-ok").await;
    browser
        .wait_for_text(&format!("{item} .badge"), |t| t == "stopped")
        .await;
    browser.screenshot("stopped").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn on_a_phone_a_person_answers_by_touch_and_keyboard() {
    tokio::time::timeout(TEST_LIMIT, on_a_phone())
        .await
        .expect("the test finished in time");
}

async fn on_a_phone() {
    let (mut daemon, id, token) = yard_with_an_agent().await;
    let mut browser = Browser::start(
        &screenshots("agents-phone"),
        Screen::Phone {
            width: 390,
            height: 844,
        },
    )
    .await;
    sign_in(&browser, &daemon).await;

    // From the Stacks tab, the right arrow key opens the Agents tab.
    browser
        .client()
        .execute("document.getElementById('tab-stacks').focus()", vec![])
        .await
        .unwrap();
    browser.keys(&char::from(Key::Right).to_string()).await;
    browser.wait_for_display("#panel-agents", true).await;
    assert_eq!(browser.focused_id().await.as_deref(), Some("tab-agents"));
    agent_listed(&browser, &id).await;
    browser
        .wait_for_text("#questions-connection", |t| t == "Live")
        .await;
    fits_a_phone(&browser).await;
    browser.screenshot("agents").await;

    // A policy ask, answered by keyboard: Enter on Answer moves the focus
    // to Allow, and Enter allows.
    let permission = hook(&daemon, &token, psql_event());
    browser
        .wait_for_text("#questions-list li .context", |t| t.contains("psql"))
        .await;
    browser
        .wait_for_text("#questions-count", |t| t == "1")
        .await;
    fits_a_phone(&browser).await;
    browser.screenshot("permission").await;
    browser
        .client()
        .execute(
            "document.querySelector('#questions-list li .toggle').focus()",
            vec![],
        )
        .await
        .unwrap();
    browser.keys(&char::from(Key::Enter).to_string()).await;
    browser
        .wait_for_display("#questions-list li .answer", true)
        .await;
    let focused = browser
        .client()
        .active_element()
        .await
        .unwrap()
        .attr("data-answer")
        .await
        .unwrap();
    assert_eq!(focused.as_deref(), Some("allow"));
    fits_a_phone(&browser).await;
    browser.screenshot("permission-open").await;
    browser.keys(&char::from(Key::Enter).to_string()).await;
    let said = returned(permission).await;
    assert_eq!(
        said["hookSpecificOutput"]["permissionDecision"], "allow",
        "{said}"
    );
    browser
        .wait_for_text("#questions-empty", |t| t.contains("No agent is waiting"))
        .await;

    // The yard restarts: the page says it lost the question channel, and
    // connects again by itself.
    daemon.kill();
    browser
        .wait_for_text("#questions-connection", |t| t.contains("reconnecting"))
        .await;
    fits_a_phone(&browser).await;
    browser.screenshot("reconnecting").await;
    daemon.start_again_at_same_address();
    browser
        .wait_for_text("#questions-connection", |t| t == "Live")
        .await;

    // A choice, by touch.
    let choice = hook(&daemon, &token, database_event());
    browser
        .wait_for_text("#questions-list li .question-message", |t| {
            t.contains("Which database?")
        })
        .await;
    browser.click("#questions-list li .toggle").await;
    browser
        .wait_for_display("#questions-list li button[data-answer=SQLite]", true)
        .await;
    fits_a_phone(&browser).await;
    browser.screenshot("select").await;
    browser
        .click("#questions-list li button[data-answer=SQLite]")
        .await;
    let said = returned(choice).await;
    assert_eq!(
        said["hookSpecificOutput"]["updatedInput"]["answers"],
        json!({"Which database?": "SQLite"}),
        "{said}"
    );
    browser
        .wait_for_text("#questions-empty", |t| t.contains("No agent is waiting"))
        .await;
    fits_a_phone(&browser).await;
    browser.screenshot("answered").await;
}
