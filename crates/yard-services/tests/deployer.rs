//! The deployer against the fake backend: rollback, resume, sweep, healing
//! and shutdown, in seconds and with no Docker engine (these tests pass
//! with `DOCKER_HOST` pointing nowhere). The same behaviour on the real
//! backends is in `yard-daemon`'s behaviour suite.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use yard_core::{
    Deployment, DeploymentStatus, NamePolicy, Owner, Person, Role, StackAddressing, StackHealth,
};
use yard_engine::{Engine, ResourceLimits};
use yard_services::{Deployer, DeployerConfig, EventBus, HealingConfig, RestartPolicy, Route};
use yard_store::Store;
use yard_testkit::{FakeEngine, Step};

struct Bench {
    deployer: Deployer,
    engine: FakeEngine,
    store: Store,
    _dir: tempfile::TempDir,
}

fn config(image: &str) -> DeployerConfig {
    DeployerConfig {
        stack_image: image.to_owned(),
        stack_port: None,
        stack_env: Vec::new(),
        addressing: StackAddressing::new("localhost", 3000, None),
        names: NamePolicy::default(),
        deploy_timeout: Duration::from_secs(5),
        limits: ResourceLimits::STACK_DEFAULT,
        healing: HealingConfig {
            policy: RestartPolicy::OnFailure,
            backoff: Duration::from_millis(50),
            max_backoff: Duration::from_millis(200),
            max_restarts: 2,
            window: Duration::from_secs(60),
            check_every: Duration::from_millis(200),
        },
        lease_ttl: Duration::from_secs(10),
    }
}

async fn bench(image: &str) -> Bench {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&Store::sqlite_url(dir.path())).await.unwrap();
    let engine = FakeEngine::new();
    let deployer = Deployer::new(
        store.clone(),
        Arc::new(engine.clone()),
        EventBus::new(256),
        config(image),
    );
    Bench {
        deployer,
        engine,
        store,
        _dir: dir,
    }
}

fn alice() -> Owner {
    Owner {
        id: "o-alice".into(),
        name: "alice".into(),
    }
}

fn admin() -> Person {
    Person {
        owner: Owner {
            id: "o-admin".into(),
            name: "admin".into(),
        },
        role: Role::Admin,
    }
}

/// Waits until deployment `id` settles (completed or failed).
async fn settled(store: &Store, id: &str) -> Deployment {
    for _ in 0..200 {
        let deployment = store.deployment(id).await.unwrap().unwrap();
        if !deployment.status.is_in_progress() {
            return deployment;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("deployment {id} did not settle");
}

#[tokio::test]
async fn a_deployment_runs_its_steps_and_the_stack_is_routed() {
    let b = bench("web").await;
    let started = b.deployer.deploy("alice", &alice()).await.unwrap();
    let done = settled(&b.store, started.id.as_str()).await;
    assert_eq!(done.status, DeploymentStatus::Completed);
    assert_eq!(done.health.health, StackHealth::Running);
    assert!(matches!(
        b.deployer.route("alice").await.unwrap(),
        Route::Ready(_)
    ));
    assert_eq!(
        b.engine.resources().len(),
        2,
        "a project and an application"
    );
}

#[tokio::test]
async fn a_failure_at_any_step_rolls_back_everything_and_frees_the_name() {
    for step in [Step::Project, Step::Application, Step::Deploy] {
        let b = bench("web").await;
        b.engine.fail_on(step, 1);
        let started = b.deployer.deploy("alice", &alice()).await.unwrap();
        let failed = settled(&b.store, started.id.as_str()).await;
        assert_eq!(failed.status, DeploymentStatus::Failed, "{step:?}");
        let reason = failed.message.clone().unwrap_or_default();
        assert!(reason.contains("injected failure"), "{step:?}: {reason}");
        assert!(b.engine.resources().is_empty(), "{step:?}: rolled back");
        // The name is free again: the second try succeeds.
        let again = b.deployer.deploy("alice", &alice()).await.unwrap();
        let done = settled(&b.store, again.id.as_str()).await;
        assert_eq!(done.status, DeploymentStatus::Completed, "{step:?}");
    }
}

#[tokio::test]
async fn a_failed_rollback_says_so_and_the_sweep_finishes_it() {
    let b = bench("crash").await;
    b.engine.fail_on(Step::Remove, 1);
    let started = b.deployer.deploy("alice", &alice()).await.unwrap();
    let failed = settled(&b.store, started.id.as_str()).await;
    assert_eq!(failed.status, DeploymentStatus::Failed);
    let reason = failed.message.clone().unwrap_or_default();
    assert!(reason.contains("clean-up is incomplete"), "{reason}");
    assert!(!b.engine.resources().is_empty(), "left for the sweep");
    let removed = b.deployer.sweep_orphans().await.unwrap();
    assert!(!removed.is_empty());
    assert!(b.engine.resources().is_empty());
}

#[tokio::test]
async fn the_sweep_removes_orphans_and_keeps_live_stacks() {
    let b = bench("web").await;
    let started = b.deployer.deploy("alice", &alice()).await.unwrap();
    settled(&b.store, started.id.as_str()).await;
    b.engine.plant_orphan("ghost");
    let removed = b.deployer.sweep_orphans().await.unwrap();
    assert!(
        removed.iter().all(|r| r.stack.as_str() == "ghost"),
        "{removed:?}"
    );
    assert_eq!(removed.len(), 2);
    assert!(b.engine.is_running("alice"));
}

#[tokio::test]
async fn a_hanging_step_does_not_hold_shutdown_and_the_next_start_resumes_it() {
    let b = bench("web").await;
    b.engine.hang_on(Step::Deploy);
    let started = b.deployer.deploy("alice", &alice()).await.unwrap();
    while b.engine.calls(Step::Deploy) == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let stopping = tokio::time::Instant::now();
    b.deployer.shutdown(Duration::from_millis(200)).await;
    assert!(
        stopping.elapsed() < Duration::from_secs(2),
        "shutdown is bounded"
    );
    let left = b
        .store
        .deployment(started.id.as_str())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(left.status, DeploymentStatus::Deploying, "left to resume");

    // The next start: a new deployer on the same store and engine.
    b.engine.release();
    let next = Deployer::new(
        b.store.clone(),
        Arc::new(b.engine.clone()),
        EventBus::new(16),
        config("web"),
    );
    assert_eq!(next.resume().await.unwrap(), 1);
    let done = settled(&b.store, started.id.as_str()).await;
    assert_eq!(done.status, DeploymentStatus::Completed);
    assert_eq!(
        b.engine.resources().len(),
        2,
        "the steps adopted what existed"
    );
}

#[tokio::test]
async fn removal_is_complete_and_a_resumed_removal_finishes() {
    let b = bench("web").await;
    let started = b.deployer.deploy("alice", &alice()).await.unwrap();
    settled(&b.store, started.id.as_str()).await;
    // The removal hangs, and the daemon stops under it.
    b.engine.hang_on(Step::Remove);
    let deployer = b.deployer.clone();
    let removal = tokio::spawn(async move { deployer.destroy("alice", &admin()).await });
    while b.engine.calls(Step::Remove) == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    removal.abort();
    let left = b
        .store
        .deployment(started.id.as_str())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(left.status, DeploymentStatus::Removing);
    b.engine.release();
    assert_eq!(b.deployer.resume().await.unwrap(), 1);
    for _ in 0..100 {
        if b.engine.resources().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(b.engine.resources().is_empty());
    let removed = b
        .store
        .deployment(started.id.as_str())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(removed.status, DeploymentStatus::Removed);
}

#[tokio::test]
async fn a_stack_that_dies_or_loses_its_application_is_noticed_and_healed() {
    let b = bench("web").await;
    let started = b.deployer.deploy("alice", &alice()).await.unwrap();
    settled(&b.store, started.id.as_str()).await;
    let stopping = tokio_util::sync::CancellationToken::new();
    let watcher = tokio::spawn({
        let deployer = b.deployer.clone();
        let stopping = stopping.clone();
        async move { deployer.watch(stopping).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    for fault in ["crash", "lose"] {
        let before = b.engine.calls(Step::Deploy);
        match fault {
            "crash" => b.engine.crash("alice", 3),
            _ => b.engine.lose_application("alice"),
        }
        let mut healed = false;
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(30)).await;
            if b.engine.calls(Step::Deploy) > before && b.engine.is_running("alice") {
                healed = true;
                break;
            }
        }
        assert!(healed, "{fault}: made again by the policy");
        let stack = b
            .store
            .deployment(started.id.as_str())
            .await
            .unwrap()
            .unwrap();
        assert!(stack.health.restarts >= 1, "{fault}: {:?}", stack.health);
        assert!(
            stack.health.last_failure.is_some(),
            "{fault}: {:?}",
            stack.health
        );
    }
    stopping.cancel();
    watcher.await.unwrap();
}

#[tokio::test]
async fn an_unreachable_backend_fails_the_deployment_clearly_and_leaves_nothing() {
    let b = bench("web").await;
    b.engine.set_unreachable(true);
    assert!(b.engine.ping().await.is_err());
    let started = b.deployer.deploy("alice", &alice()).await.unwrap();
    let failed = settled(&b.store, started.id.as_str()).await;
    assert_eq!(failed.status, DeploymentStatus::Failed);
    assert!(
        failed.message.unwrap_or_default().contains("not reachable"),
        "the reason names the backend"
    );
    b.engine.set_unreachable(false);
    assert!(b.engine.resources().is_empty());
}
