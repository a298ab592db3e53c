//! Stacks that die are noticed and healed: a stop or a kill by hand, a
//! crash loop, running out of memory, a removed container and a lost
//! network, each seen in the stacks stream within a bound and made again
//! or reported, as the policy says.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use eventsource_stream::Eventsource;
use futures::StreamExt;
use futures::stream::BoxStream;
use serde_json::Value;
use support::{Options, TestYard};
use yard_services::RestartPolicy;
use yard_testkit::{FLAKY_IMAGE, HUNGRY_IMAGE};

/// How long a change may take to show in the stream.
const BOUND: Duration = Duration::from_secs(20);

/// The stacks stream, as the stack `name`'s entries.
async fn follow(yard: &TestYard, name: &str) -> BoxStream<'static, Value> {
    let response = yard.get("/api/events").send().await.unwrap();
    assert_eq!(response.status(), 200);
    let name = name.to_owned();
    response
        .bytes_stream()
        .eventsource()
        .filter_map(move |event| {
            let name = name.clone();
            async move {
                let list: Value = serde_json::from_str(&event.ok()?.data).ok()?;
                list["stacks"]
                    .as_array()?
                    .iter()
                    .find(|s| s["name"] == name.as_str())
                    .cloned()
            }
        })
        .boxed()
}

/// Waits for a stack entry that `wanted` accepts; returns it.
async fn until(stream: &mut BoxStream<'static, Value>, wanted: impl Fn(&Value) -> bool) -> Value {
    let mut seen = Vec::new();
    let found = tokio::time::timeout(BOUND, async {
        while let Some(stack) = stream.next().await {
            if wanted(&stack) {
                return Some(stack);
            }
            seen.push(format!("{} {}", stack["health"], stack["healthReason"]));
        }
        None
    })
    .await;
    match found {
        Ok(Some(stack)) => stack,
        _ => panic!("not seen within {BOUND:?}; seen: {seen:#?}"),
    }
}

fn health<'a>(wanted: &'a str) -> impl Fn(&Value) -> bool + 'a {
    move |stack| stack["health"] == wanted
}

/// Runs `docker ARGS`.
fn docker(args: &[&str]) {
    let status = std::process::Command::new("docker")
        .args(args)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "docker {args:?}");
}

async fn container(yard: &TestYard, name: &str) -> String {
    let inspected = yard.sweep.inspect(&format!("agentyard.stack={name}")).await;
    inspected.name.unwrap().trim_start_matches('/').to_owned()
}

async fn deployed(options: Options, name: &str) -> TestYard {
    let yard = TestYard::start(options).await;
    let (last, payload) = yard.deploy_and_wait(name).await;
    assert_eq!(last, "complete", "{payload}");
    yard
}

async fn answers(yard: &TestYard, name: &str) -> (u16, String) {
    let response = yard.stack(name, "/").send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// The status stack `name` answers with once it serves again: a stack
/// made again is running before its server listens and its new address is
/// routed, so a 503 in between is retried, for up to 10 s.
async fn answers_again(yard: &TestYard, name: &str) -> u16 {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (status, _) = answers(yard, name).await;
        if status != 503 || tokio::time::Instant::now() > deadline {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_stack_stopped_or_killed_by_hand_is_seen_at_once_and_made_again() {
    let yard = deployed(Options::default(), "tough").await;
    let mut stream = follow(&yard, "tough").await;
    until(&mut stream, health("running")).await;

    docker(&["stop", "-t", "1", &container(&yard, "tough").await]);
    let stopped = until(&mut stream, |s| s["health"] == "stopped").await;
    assert!(
        stopped["healthReason"]
            .as_str()
            .unwrap()
            .contains("stopped by hand"),
        "{stopped}"
    );
    let back = until(&mut stream, health("running")).await;
    assert_eq!(back["restarts"], 1, "{back}");
    assert!(
        back["lastFailure"]
            .as_str()
            .unwrap()
            .contains("stopped by hand")
    );
    assert_eq!(answers_again(&yard, "tough").await, 200);

    docker(&["kill", &container(&yard, "tough").await]);
    let killed = until(&mut stream, |s| s["health"] == "stopped").await;
    assert_eq!(killed["healthReason"], "it was killed by hand", "{killed}");
    let back = until(&mut stream, health("running")).await;
    assert_eq!(back["restarts"], 2, "{back}");
    assert_eq!(
        answers(&yard, "tough").await,
        (200, "stack tough\n".to_owned())
    );
    let listed = yard.get_json("/api/stacks").await;
    assert_eq!(
        listed["stacks"][0]["status"], "completed",
        "the deployment stays"
    );
}

#[tokio::test]
async fn with_restarts_off_a_dead_stack_is_reported_and_restarted_only_on_demand() {
    let mut options = Options::default();
    options.healing.policy = RestartPolicy::Never;
    let yard = deployed(options, "still").await;
    let mut stream = follow(&yard, "still").await;
    until(&mut stream, health("running")).await;

    docker(&["kill", &container(&yard, "still").await]);
    until(&mut stream, health("stopped")).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let stacks = yard.get_json("/api/stacks").await;
    assert_eq!(
        stacks["stacks"][0]["health"], "stopped",
        "not healed: {stacks}"
    );
    let (status, page) = answers(&yard, "still").await;
    assert_eq!(status, 503);
    assert!(page.contains("killed by hand"), "{page}");

    // A container removed by hand is reported as missing.
    docker(&["rm", "-f", &container(&yard, "still").await]);
    let missing = until(&mut stream, health("missing")).await;
    assert_eq!(
        missing["healthReason"], "its container was removed",
        "{missing}"
    );

    let restarted = yard
        .post_json("/api/stacks/still/restart", &serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(restarted.status(), 200);
    let restarted: Value = restarted.json().await.unwrap();
    assert_eq!(restarted["health"], "running", "{restarted}");
    assert_eq!(answers_again(&yard, "still").await, 200);
}

#[tokio::test]
async fn a_crash_loop_is_given_up_on_with_the_reason() {
    let yard = deployed(
        Options {
            image: FLAKY_IMAGE.to_owned(),
            ..Options::default()
        },
        "flaky",
    )
    .await;
    let mut stream = follow(&yard, "flaky").await;
    let stopped = until(&mut stream, health("stopped")).await;
    assert_eq!(
        stopped["healthReason"], "it exited with code 3",
        "{stopped}"
    );
    let failed = until(&mut stream, health("failed")).await;
    let reason = failed["healthReason"].as_str().unwrap();
    assert!(
        reason.contains("kept dying") && reason.contains("exited with code 3"),
        "{failed}"
    );
    assert_eq!(failed["restarts"], 3, "{failed}");
    let (status, page) = answers(&yard, "flaky").await;
    assert_eq!(status, 503);
    assert!(page.contains("kept dying"), "{page}");
}

#[tokio::test]
async fn a_stack_that_runs_out_of_memory_says_so() {
    let mut options = Options {
        image: HUNGRY_IMAGE.to_owned(),
        stack_memory: Some(32 << 20),
        ..Options::default()
    };
    options.healing.policy = RestartPolicy::Never;
    let yard = deployed(options, "hungry").await;
    let mut stream = follow(&yard, "hungry").await;
    let stopped = until(&mut stream, health("stopped")).await;
    assert!(
        stopped["healthReason"]
            .as_str()
            .unwrap()
            .contains("ran out of memory"),
        "{stopped}"
    );
}

#[tokio::test]
async fn a_removed_container_or_a_lost_network_is_made_again() {
    let yard = deployed(Options::default(), "sturdy").await;
    let mut stream = follow(&yard, "sturdy").await;
    until(&mut stream, health("running")).await;

    docker(&["rm", "-f", &container(&yard, "sturdy").await]);
    until(&mut stream, |s| {
        s["health"] == "stopped" || s["health"] == "missing"
    })
    .await;
    until(&mut stream, health("running")).await;
    assert_eq!(answers_again(&yard, "sturdy").await, 200, "made again");

    let name = container(&yard, "sturdy").await;
    let network = yard
        .sweep
        .resources()
        .await
        .into_iter()
        .find_map(|r| r.strip_prefix("network ").map(str::to_owned))
        .unwrap();
    docker(&["network", "disconnect", "-f", &network, &name]);
    let lost = until(&mut stream, health("missing")).await;
    assert_eq!(lost["healthReason"], "it lost its network", "{lost}");
    let back = until(&mut stream, health("running")).await;
    assert_eq!(back["restarts"], 2, "{back}");
    assert_eq!(answers_again(&yard, "sturdy").await, 200);

    // The network itself removed by hand: made again, and the stack on it.
    let name = container(&yard, "sturdy").await;
    docker(&["network", "disconnect", "-f", &network, &name]);
    docker(&["network", "rm", &network]);
    let lost = until(&mut stream, |s| s["health"] != "running").await;
    assert!(
        lost["healthReason"].as_str().unwrap().contains("network"),
        "{lost}"
    );
    let back = until(&mut stream, health("running")).await;
    assert_eq!(back["restarts"], 3, "{back}");
    assert_eq!(
        answers_again(&yard, "sturdy").await,
        200,
        "on a new network"
    );
    let listed = yard.get_json("/api/stacks").await;
    let stack = &listed["stacks"][0];
    assert_eq!(
        (&stack["health"], &stack["restarts"]),
        (&serde_json::json!("running"), &serde_json::json!(3)),
        "{listed}"
    );
}
