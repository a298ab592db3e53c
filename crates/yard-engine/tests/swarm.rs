//! The swarm backend against the real local engine, made a single-node
//! swarm manager if it is not one (and left one: CI leaves the swarm at the
//! end of its run). Every service, network, volume and task container
//! carries the test's label and is swept when the test ends, pass or fail.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bollard::Docker;
use bollard::query_parameters::{RemoveImageOptionsBuilder, TagImageOptionsBuilder};
use futures::StreamExt;
use yard_core::StackName;
use yard_engine::{
    ContainerChange, DockerConfig, DockerEngine, Endpoint, Engine, EngineError, KEPT_CAPABILITIES,
    ResourceKind, ResourceLimits, StackEvent, StackSpec, StackState, SwarmConfig, SwarmEngine,
    UpdateOutcome,
};
use yard_testkit::{
    CRASH_IMAGE, DockerSweep, TEST_LABEL, WEB_IMAGE, ensure_stack_images, ensure_swarm, http,
};

const DEPLOY: Duration = Duration::from_secs(60);
const UPDATE: Duration = Duration::from_secs(90);

/// A swarm, the test images, and an engine with a fresh instance id whose
/// resources carry the test label; `data_volume` as the stack needs.
async fn engine(sweep: &DockerSweep, data_volume: bool) -> SwarmEngine {
    ensure_swarm().await;
    ensure_stack_images().await;
    let mut config = SwarmConfig::new(format!("s{}", &sweep.id()[..9]));
    config
        .extra_labels
        .insert(TEST_LABEL.to_owned(), sweep.id().to_owned());
    config.data_volume = data_volume;
    let engine = SwarmEngine::connect(config).unwrap();
    engine.ping().await.unwrap();
    engine
}

fn spec(name: &str, image: &str) -> StackSpec {
    StackSpec {
        name: StackName::from_trusted(name),
        image: image.to_owned(),
        port: None,
        env: vec![("YARD_STACK_NAME".into(), name.into())],
        limits: ResourceLimits {
            memory_bytes: Some(256 << 20),
            cpus: Some(0.5),
            pids: 64,
        },
    }
}

async fn get(endpoint: &Endpoint) -> Result<(u16, String), String> {
    let response = http()
        .get(endpoint.url("/"))
        .header("host", endpoint.host_header())
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    Ok((status, response.text().await.map_err(|e| e.to_string())?))
}

fn kinds(resources: &[yard_engine::StackResource]) -> Vec<ResourceKind> {
    let mut kinds: Vec<_> = resources.iter().map(|r| r.kind).collect();
    kinds.sort();
    kinds
}

/// A second tag of an image, removed (just the tag: the image keeps its
/// first) when dropped, pass or fail.
struct ImageTag(String);

impl ImageTag {
    async fn of(image: &str, tag: &str) -> Self {
        let (repo, _) = image.split_once(':').unwrap();
        Docker::connect_with_defaults()
            .unwrap()
            .tag_image(
                image,
                Some(TagImageOptionsBuilder::new().repo(repo).tag(tag).build()),
            )
            .await
            .unwrap();
        Self(format!("{repo}:{tag}"))
    }
}

impl Drop for ImageTag {
    fn drop(&mut self) {
        let image = self.0.clone();
        let _ = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(async {
                    let keep_layers = RemoveImageOptionsBuilder::new().noprune(true).build();
                    let _ = Docker::connect_with_defaults()
                        .unwrap()
                        .remove_image(&image, Some(keep_layers), None)
                        .await;
                });
        })
        .join();
    }
}

/// The image the stack's service runs now, as its spec says.
async fn service_image(engine_instance: &str, stack: &str) -> String {
    Docker::connect_with_defaults()
        .unwrap()
        .inspect_service(&format!("agentyard-{engine_instance}-{stack}"), None)
        .await
        .unwrap()
        .spec
        .and_then(|s| s.task_template)
        .and_then(|t| t.container_spec)
        .and_then(|c| c.image)
        .unwrap()
}

#[tokio::test]
async fn steps_are_idempotent_and_removal_is_complete() {
    let sweep = DockerSweep::new();
    let engine = engine(&sweep, true).await;
    let alice = spec("alice", WEB_IMAGE);

    for _ in 0..2 {
        engine.ensure_project(&alice).await.unwrap();
        engine.ensure_application(&alice).await.unwrap();
    }
    let resources = engine.stack_resources().await.unwrap();
    assert_eq!(
        kinds(&resources),
        [
            ResourceKind::Service,
            ResourceKind::Network,
            ResourceKind::Volume
        ],
        "{resources:?}"
    );
    let first = engine.deploy(&alice, DEPLOY).await.unwrap();
    assert_eq!(engine.deploy(&alice, DEPLOY).await.unwrap(), first);
    assert_eq!(engine.endpoint(&alice.name).await.unwrap(), Some(first));

    // Confined like the docker backend's containers, as far as Swarm goes.
    let host = sweep
        .inspect("agentyard.stack=alice")
        .await
        .host_config
        .unwrap();
    assert_eq!(host.cap_drop.unwrap(), ["ALL"]);
    assert_eq!(host.cap_add.unwrap().len(), KEPT_CAPABILITIES.len());
    assert_eq!(
        (host.memory, host.nano_cpus, host.pids_limit),
        (Some(256 << 20), Some(500_000_000), Some(64))
    );

    // A same-named network that is not ours is refused, not adopted.
    let bob = spec("bob", WEB_IMAGE);
    let taken = format!("agentyard-s{}-bob", &sweep.id()[..9]);
    sweep.create_network(&taken, &[]).await;
    assert!(matches!(
        engine.ensure_project(&bob).await,
        Err(EngineError::Foreign {
            kind: ResourceKind::Network,
            ..
        })
    ));

    let removed = engine.remove_stack(&alice.name).await.unwrap();
    assert_eq!(
        kinds(&removed),
        [
            ResourceKind::Service,
            ResourceKind::Network,
            ResourceKind::Volume
        ],
        "{removed:?}"
    );
    assert!(engine.remove_stack(&alice.name).await.unwrap().is_empty());
    assert!(engine.stack_resources().await.unwrap().is_empty());
    assert_eq!(engine.endpoint(&alice.name).await.unwrap(), None);
    assert_eq!(sweep.leftovers().await, [format!("network {taken}")]);
}

#[tokio::test]
async fn a_stack_answers_through_its_endpoint_and_can_be_made_again() {
    let sweep = DockerSweep::new();
    let engine = engine(&sweep, true).await;
    let carol = spec("carol", WEB_IMAGE);
    // The task container's start names the stack; the service's creation
    // prompts a look. The feed is read from before the steps on.
    let mut events = engine.stack_events();
    let watched = tokio::spawn({
        let carol = carol.name.clone();
        async move {
            let (mut started, mut prompted) = (false, false);
            while !(started && prompted) {
                match events.next().await {
                    Some(Ok(StackEvent::Container {
                        stack,
                        change: ContainerChange::Started,
                        ..
                    })) if stack == carol => started = true,
                    Some(Ok(StackEvent::Network)) => prompted = true,
                    Some(Ok(_)) => {}
                    other => panic!("the feed ended: {other:?}"),
                }
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    engine.ensure_project(&carol).await.unwrap();
    engine.ensure_application(&carol).await.unwrap();
    let endpoint = engine.deploy(&carol, DEPLOY).await.unwrap();
    assert!(endpoint.authority().starts_with("127.0.0.1:"), "{endpoint}");
    tokio::time::timeout(Duration::from_secs(10), watched)
        .await
        .expect("the events of the deployment")
        .unwrap();

    let (status, body) = get(&endpoint).await.unwrap();
    assert_eq!((status, body.trim()), (200, "stack carol"));
    assert!(engine.probe(&endpoint).await);
    let states = engine.stack_states().await.unwrap();
    assert!(
        matches!(
            states.as_slice(),
            [(name, StackState::Running { endpoint: Some(e), attached: true, .. })]
                if name == &carol.name && e == &endpoint
        ),
        "{states:?}"
    );

    // The application goes, its network and data stay, and it comes back.
    let old = engine.remove_application(&carol.name).await.unwrap();
    assert!(old.is_some());
    assert_eq!(engine.endpoint(&carol.name).await.unwrap(), None);
    assert_eq!(
        kinds(&engine.stack_resources().await.unwrap()),
        [ResourceKind::Network, ResourceKind::Volume]
    );
    engine.ensure_project(&carol).await.unwrap();
    engine.ensure_application(&carol).await.unwrap();
    let again = engine.deploy(&carol, DEPLOY).await.unwrap();
    assert_eq!(get(&again).await.unwrap().0, 200);

    engine.remove_stack(&carol.name).await.unwrap();
    let leftovers = sweep.leftovers().await;
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[tokio::test]
async fn a_crashing_image_fails_deploy_with_its_reason() {
    let sweep = DockerSweep::new();
    let engine = engine(&sweep, true).await;
    let dave = spec("dave", CRASH_IMAGE);
    engine.ensure_project(&dave).await.unwrap();
    engine.ensure_application(&dave).await.unwrap();
    match engine.deploy(&dave, DEPLOY).await {
        Err(EngineError::NotReady(message)) => {
            assert!(message.contains("non-zero exit (3)"), "{message}");
            assert!(message.contains("stack refuses to start"), "{message}");
        }
        other => panic!("expected NotReady, got {other:?}"),
    }
    // Swarm tries it again a few times, then leaves it failed: exited, with
    // its code.
    let deadline = tokio::time::Instant::now() + DEPLOY;
    loop {
        let states = engine.stack_states().await.unwrap();
        if let [(name, StackState::Exited { code, finished, .. })] = states.as_slice() {
            assert_eq!((name, *code), (&dave.name, 3));
            assert!(finished.is_some());
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{states:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // An image the engine does not have is refused before anything runs.
    let missing = spec("erin", "agentyard-test/no-such-image:1");
    engine.ensure_project(&missing).await.unwrap();
    assert!(matches!(
        engine.ensure_application(&missing).await,
        Err(EngineError::ImageNotFound { .. })
    ));
    engine.remove_stack(&dave.name).await.unwrap();
    engine.remove_stack(&missing.name).await.unwrap();
    let leftovers = sweep.leftovers().await;
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// A start-first update keeps the stack answering, and a bad image rolls
/// back to the good one.
///
/// Each task publishes its own host port, so the port changes with the
/// update: a client holding the old endpoint sees its request fail once
/// the old task stops. The yard's router then forgets the endpoint and
/// asks the engine again; the request loop here does the same at once and
/// retries the request once, so a request counts as failed only when the
/// stack did not answer at the endpoint the engine gave for it right then.
#[tokio::test]
async fn a_rolling_update_keeps_answering_and_a_bad_image_rolls_back() {
    let sweep = DockerSweep::new();
    let engine = engine(&sweep, false).await;
    let next = ImageTag::of(WEB_IMAGE, &format!("swarm-{}", &sweep.id()[..9])).await;
    let instance = format!("s{}", &sweep.id()[..9]);
    let frank = spec("frank", WEB_IMAGE);
    engine.ensure_project(&frank).await.unwrap();
    engine.ensure_application(&frank).await.unwrap();
    let first = engine.deploy(&frank, DEPLOY).await.unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let requests = tokio::spawn({
        let (engine, stop, name) = (engine.clone(), stop.clone(), frank.name.clone());
        let mut endpoint = first.clone();
        async move {
            let (mut ok, mut failed, mut endpoints) = (0u32, Vec::new(), vec![endpoint.clone()]);
            while !stop.load(Ordering::Relaxed) {
                let answered = match get(&endpoint).await {
                    Ok((200, _)) => true,
                    _ => {
                        if let Some(now) = engine.endpoint(&name).await.unwrap() {
                            endpoint = now;
                            if !endpoints.contains(&endpoint) {
                                endpoints.push(endpoint.clone());
                            }
                        }
                        match get(&endpoint).await {
                            Ok((200, _)) => true,
                            other => {
                                failed.push(format!("{endpoint}: {other:?}"));
                                false
                            }
                        }
                    }
                };
                ok += u32::from(answered);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            (ok, failed, endpoints)
        }
    });

    let outcome = engine
        .update_image(&frank.name, &next.0, UPDATE)
        .await
        .unwrap();
    assert_eq!(outcome, UpdateOutcome::Updated);
    // The old task stops after the update is done; keep asking meanwhile.
    tokio::time::sleep(Duration::from_secs(8)).await;
    stop.store(true, Ordering::Relaxed);
    let (ok, failed, endpoints) = requests.await.unwrap();
    assert!(failed.is_empty(), "{} failed: {failed:?}", failed.len());
    assert!(ok > 50, "only {ok} requests");
    assert_eq!(service_image(&instance, "frank").await, next.0);
    let now = engine.endpoint(&frank.name).await.unwrap().unwrap();
    assert_ne!(now, first, "the new task publishes its own port");
    assert!(
        endpoints.contains(&now),
        "the loop followed it: {endpoints:?}"
    );

    // A crashing image is rolled back, and the good one answers still.
    match engine
        .update_image(&frank.name, CRASH_IMAGE, UPDATE)
        .await
        .unwrap()
    {
        UpdateOutcome::RolledBack { reason } => {
            assert!(reason.contains("non-zero exit (3)"), "{reason}");
            assert!(reason.contains("stack refuses to start"), "{reason}");
        }
        other => panic!("expected a rollback, got {other:?}"),
    }
    assert_eq!(service_image(&instance, "frank").await, next.0);
    let after = engine.endpoint(&frank.name).await.unwrap().unwrap();
    let (status, body) = get(&after).await.unwrap();
    assert_eq!((status, body.trim()), (200, "stack frank"));

    // An image the engine does not have is refused up front.
    assert!(matches!(
        engine
            .update_image(&frank.name, "agentyard-test/no-such-image:1", UPDATE)
            .await,
        Err(EngineError::ImageNotFound { .. })
    ));

    engine.remove_stack(&frank.name).await.unwrap();
    let leftovers = sweep.leftovers().await;
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[tokio::test]
async fn backends_without_rolling_updates_say_so() {
    let docker = DockerEngine::connect(DockerConfig::new("unused")).unwrap();
    let outcome = docker
        .update_image(&StackName::from_trusted("x"), WEB_IMAGE, UPDATE)
        .await;
    assert!(
        matches!(
            outcome,
            Err(EngineError::Unsupported {
                backend: "docker",
                operation: "rolling updates"
            })
        ),
        "{outcome:?}"
    );
}

#[test]
fn reserved_labels_are_refused() {
    let mut config = SwarmConfig::new("x");
    config
        .extra_labels
        .insert("agentyard.managed".to_owned(), "false".to_owned());
    assert!(matches!(
        SwarmEngine::connect(config),
        Err(EngineError::ReservedLabel(_))
    ));
}
