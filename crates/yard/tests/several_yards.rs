//! Several yards on one PostgreSQL: two real daemons share a database and
//! an engine. The same deployments sent to both are made once each, and
//! work a daemon leaves when it is killed is finished or rolled back by
//! the other once its lease expires.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use serde_json::Value;
use yard_testkit::{
    Daemon, DaemonSetup, SLOW_IMAGE, WEB_IMAGE, ensure_stack_images, fresh_postgres_url,
};

const YARD: &str = env!("CARGO_BIN_EXE_yard");
const STACKS: usize = 20;

fn yard_on(url: &str, image: &str) -> Daemon {
    Daemon::start(
        YARD.as_ref(),
        DaemonSetup {
            stack_image: Some(image.to_owned()),
            database_url: Some(url.to_owned()),
            env: vec![("YARD_LEASE_TTL".into(), "2s".into())],
            ..DaemonSetup::default()
        },
    )
}

/// `POST /api/deploy` of `name`; the deployment id when accepted.
async fn try_deploy(daemon: &Daemon, name: &str) -> Option<String> {
    let response = yard_testkit::http()
        .post(format!("{}/api/deploy", daemon.url()))
        .bearer_auth(daemon.token())
        .json(&serde_json::json!({ "name": name }))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    match status {
        202 => Some(body["deploymentId"].as_str().unwrap().to_owned()),
        409 => None,
        other => panic!("deploy {name}: {other} {body}"),
    }
}

/// The stack containers a daemon made, by its test label.
fn containers_of(daemon: &Daemon) -> usize {
    let out = std::process::Command::new("docker")
        .args(["ps", "-aq", "--filter", "label=agentyard.stack", "--filter"])
        .arg(format!("label={}", daemon.sweep().label()))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).lines().count()
}

async fn outcome(daemon: &Daemon, id: &str, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let deployment = daemon.api_get(&format!("/api/deployments/{id}")).await;
        if matches!(deployment["status"].as_str(), Some("completed" | "failed")) {
            return deployment;
        }
        assert!(
            Instant::now() < deadline,
            "no outcome in time: {deployment}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn two_daemons_on_one_database_deploy_each_stack_once_and_finish_each_others_work() {
    ensure_stack_images().await;
    let url = fresh_postgres_url().await;
    let mut first = yard_on(&url, SLOW_IMAGE);
    let second = yard_on(&url, WEB_IMAGE);

    // The same 20 deployments to both at once: one of each pair wins.
    let sends = (0..STACKS).map(|i| {
        let (first, second) = (&first, &second);
        async move {
            let name = format!("pair{i}");
            let (a, b) = tokio::join!(try_deploy(first, &name), try_deploy(second, &name));
            match (a, b) {
                (Some(id), None) => (first, id),
                (None, Some(id)) => (second, id),
                other => panic!("{name}: exactly one daemon takes it, not {other:?}"),
            }
        }
    });
    let accepted = futures::future::join_all(sends).await;
    for (daemon, id) in &accepted {
        let done = outcome(daemon, id, Duration::from_secs(90)).await;
        assert_eq!(done["status"], "completed", "{done}");
    }
    assert_eq!(
        containers_of(&first) + containers_of(&second),
        STACKS,
        "exactly one container per stack"
    );
    let listed = second.api_get("/api/stacks").await;
    let live = listed["stacks"].as_array().unwrap();
    assert_eq!(live.len(), STACKS, "{listed}");

    // A daemon dies in the middle of a deployment (its image takes four
    // seconds to answer): the other takes it over once the lease expires.
    let id = try_deploy(&first, "orphaned").await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let deployment = first.api_get(&format!("/api/deployments/{id}")).await;
        if deployment["status"] == "deploying" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never got to deploying: {deployment}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    first.kill();
    let killed = Instant::now();
    let done = outcome(&second, &id, Duration::from_secs(60)).await;
    assert!(
        killed.elapsed() < Duration::from_secs(30),
        "taken over within a bound, not {:?}",
        killed.elapsed()
    );
    assert_eq!(done["status"], "completed", "finished by the other: {done}");
    let answer = yard_testkit::http()
        .get(second.url())
        .header("host", format!("orphaned.localhost:{}", second.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(
        answer.status(),
        200,
        "the stack answers through the survivor"
    );
    assert!(
        second.log().contains("taking over"),
        "the survivor says it took the work over"
    );
}
