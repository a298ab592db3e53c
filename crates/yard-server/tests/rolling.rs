//! Rolling updates through the API, on a real single-node swarm: a good
//! image replaces the running one while requests to the stack's address
//! keep being answered; a bad one is rolled back, and the stack's record
//! says so. Bad input changes nothing.

#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use support::{Options, TestYard, assert_error_response};
use yard_engine::BackendKind;
use yard_testkit::{CRASH_IMAGE, WEB_IMAGE, ensure_swarm};

/// A second name for `image`, removed when dropped.
struct Tag(String);

impl Tag {
    fn of(image: &str, tag: &str) -> Self {
        let status = std::process::Command::new("docker")
            .args(["tag", image, tag])
            .status()
            .unwrap();
        assert!(status.success());
        Self(tag.to_owned())
    }
}

impl Drop for Tag {
    fn drop(&mut self) {
        let _ = std::process::Command::new("docker")
            .args(["rmi", &self.0])
            .output();
    }
}

#[tokio::test]
async fn a_rolling_update_keeps_the_stack_answering_and_a_bad_image_is_rolled_back() {
    yard_testkit::ensure_stack_images().await;
    ensure_swarm().await;
    let yard = TestYard::start(Options {
        backend: BackendKind::Swarm,
        // Without a data volume, so the new task starts before the old
        // stops.
        stack_volume: false,
        ..Options::default()
    })
    .await;
    let (event, data) = yard.deploy_and_wait("roll").await;
    assert_eq!(event, "complete", "{data}");
    let suffix = &yard.sweep.id()[..8];
    let good = Tag::of(WEB_IMAGE, &format!("agentyard-test/web:roll-{suffix}"));
    let bad = Tag::of(CRASH_IMAGE, &format!("agentyard-test/web:crash-{suffix}"));

    // Requests to the stack all through the update.
    let done = Arc::new(AtomicBool::new(false));
    let (answered, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let load = {
        let (done, answered, failed) = (done.clone(), answered.clone(), failed.clone());
        let request = yard.stack("roll", "/");
        async move {
            while !done.load(Ordering::Relaxed) {
                let ok = match request.try_clone().unwrap().send().await {
                    Ok(response) => response.status() == 200,
                    Err(_) => false,
                };
                let counter = if ok { &answered } else { &failed };
                counter.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    let load = tokio::spawn(load);
    let response = yard
        .post_json(
            "/api/stacks/roll/update",
            &serde_json::json!({ "image": good.0 }),
        )
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["image"], good.0.as_str());
    tokio::time::sleep(Duration::from_millis(500)).await;
    done.store(true, Ordering::Relaxed);
    load.await.unwrap();
    let (answered, failed) = (
        answered.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
    );
    assert!(answered > 20, "the load ran: {answered}");
    assert_eq!(
        failed, 0,
        "no failed request during the update ({answered} answered)"
    );
    let history = yard.get_json("/api/deployments").await;
    let record = &history["deployments"][0];
    assert!(
        record["message"].as_str().unwrap().contains("updated from"),
        "{record}"
    );

    // A bad image: rolled back, said so, and the stack still answers.
    let response = yard
        .post_json(
            "/api/stacks/roll/update",
            &serde_json::json!({ "image": bad.0 }),
        )
        .send()
        .await
        .unwrap();
    let message = assert_error_response(response, 409, "rolled_back").await;
    assert!(message.contains("rolled back"), "{message}");
    let history = yard.get_json("/api/deployments").await;
    assert!(
        history["deployments"][0]["message"]
            .as_str()
            .unwrap()
            .contains("rolled back"),
        "{history}"
    );
    let answer = yard.stack("roll", "/").send().await.unwrap();
    assert_eq!(answer.status(), 200);

    // Bad input changes nothing.
    for (path, image, status, code) in [
        (
            "/api/stacks/nobody/update",
            good.0.as_str(),
            404,
            "not_found",
        ),
        (
            "/api/stacks/roll/update",
            "Not An Image!",
            400,
            "invalid_request",
        ),
        (
            "/api/stacks/roll/update",
            "agentyard-test/none:1",
            400,
            "invalid_request",
        ),
    ] {
        let response = yard
            .post_json(path, &serde_json::json!({ "image": image }))
            .send()
            .await
            .unwrap();
        assert_error_response(response, status, code).await;
    }
    let stacks = yard.get_json("/api/stacks").await;
    assert_eq!(stacks["stacks"][0]["image"], good.0.as_str(), "{stacks}");
}

#[tokio::test]
async fn the_docker_backend_says_it_has_no_rolling_updates() {
    let yard = TestYard::start(Options::default()).await;
    let (event, data) = yard.deploy_and_wait("still").await;
    assert_eq!(event, "complete", "{data}");
    let response = yard
        .post_json(
            "/api/stacks/still/update",
            &serde_json::json!({ "image": WEB_IMAGE }),
        )
        .send()
        .await
        .unwrap();
    let message = assert_error_response(response, 409, "unsupported").await;
    assert!(message.contains("docker"), "{message}");
}
