//! The docker backend against the real local engine. Every resource carries
//! the test's label and is swept when the test ends, pass or fail.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use yard_core::StackName;
use yard_engine::{
    AgentRuntime, DockerConfig, DockerEngine, Engine, EngineError, KEPT_CAPABILITIES, ResourceKind,
    ResourceLimits, StackSpec, UserIds,
};
use yard_testkit::{
    AGENT_UID, CRASH_IMAGE, DockerSweep, TEST_LABEL, WEB_IMAGE, ensure_agent_image,
    ensure_stack_images,
};

/// An engine with a fresh instance id whose resources carry the test label.
fn engine_for(instance: &str, sweep: &DockerSweep) -> DockerEngine {
    let mut config = DockerConfig::new(instance);
    config
        .extra_labels
        .insert(TEST_LABEL.to_owned(), sweep.id().to_owned());
    DockerEngine::connect(config).unwrap()
}

fn engine(sweep: &DockerSweep) -> DockerEngine {
    engine_for(&format!("t{}", &sweep.id()[..9]), sweep)
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

#[tokio::test]
async fn steps_are_idempotent_and_removal_is_complete() {
    ensure_stack_images().await;
    let sweep = DockerSweep::new();
    let engine = engine(&sweep);
    let alice = spec("alice", WEB_IMAGE);

    for _ in 0..2 {
        engine.ensure_project(&alice).await.unwrap();
        engine.ensure_application(&alice).await.unwrap();
    }
    let resources = sweep.resources().await;
    assert_eq!(
        resources.len(),
        3,
        "one container, the stacks network, one volume: {resources:?}"
    );
    // Confined: no new privileges, a few capabilities, the spec's limits.
    let host = sweep
        .inspect("agentyard.stack=alice")
        .await
        .host_config
        .unwrap();
    assert_eq!(host.security_opt.unwrap(), ["no-new-privileges:true"]);
    assert_eq!(host.cap_drop.unwrap(), ["ALL"]);
    assert_eq!(host.cap_add.unwrap().len(), KEPT_CAPABILITIES.len());
    assert_eq!(
        (host.memory, host.nano_cpus, host.pids_limit),
        (Some(256 << 20), Some(500_000_000), Some(64))
    );
    assert!(
        engine.endpoint(&alice.name).await.unwrap().is_none(),
        "not started yet"
    );

    let endpoint = engine
        .deploy(&alice, Duration::from_secs(20))
        .await
        .unwrap();
    // Deploying again finds the running container.
    assert_eq!(
        engine
            .deploy(&alice, Duration::from_secs(20))
            .await
            .unwrap(),
        endpoint
    );
    assert_eq!(
        engine.endpoint(&alice.name).await.unwrap(),
        Some(endpoint.clone())
    );
    let page = yard_testkit::http()
        .get(endpoint.url("/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(page.trim(), "stack alice");

    let listed = engine.stack_resources().await.unwrap();
    assert_eq!(
        listed.len(),
        2,
        "the stacks network is the instance's: {listed:?}"
    );
    assert!(listed.iter().all(|r| r.stack == alice.name));

    let removed = engine.remove_stack(&alice.name).await.unwrap();
    let mut kinds: Vec<ResourceKind> = removed.iter().map(|r| r.kind).collect();
    kinds.sort();
    assert_eq!(kinds, [ResourceKind::Container, ResourceKind::Volume]);
    let left = sweep.resources().await;
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(
        left[0].starts_with("network") && left[0].ends_with("-stacks"),
        "{left:?}"
    );
    assert!(
        engine.remove_stack(&alice.name).await.unwrap().is_empty(),
        "removal repeats safely"
    );
}

#[tokio::test]
async fn a_missing_image_is_named_in_the_error() {
    let sweep = DockerSweep::new();
    let engine = engine(&sweep);
    let bob = spec("bob", "agentyard-test/does-not-exist:1");
    engine.ensure_project(&bob).await.unwrap();
    let err = engine.ensure_application(&bob).await.unwrap_err();
    assert!(matches!(err, EngineError::ImageNotFound { .. }), "{err}");
    assert!(err.to_string().contains("YARD_STACK_IMAGE"), "{err}");
    engine.remove_stack(&bob.name).await.unwrap();
    assert!(
        sweep.leftovers().await.is_empty(),
        "only the stacks network stays"
    );
}

#[tokio::test]
async fn a_stack_that_exits_fails_with_its_output() {
    ensure_stack_images().await;
    let sweep = DockerSweep::new();
    let engine = engine(&sweep);
    let carol = spec("carol", CRASH_IMAGE);
    engine.ensure_project(&carol).await.unwrap();
    engine.ensure_application(&carol).await.unwrap();
    let err = engine
        .deploy(&carol, Duration::from_secs(20))
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, EngineError::NotReady(_)), "{message}");
    assert!(
        message.contains("code 3") && message.contains("stack refuses to start"),
        "{message}"
    );
}

#[tokio::test]
async fn a_stack_that_never_answers_times_out() {
    ensure_stack_images().await;
    let sweep = DockerSweep::new();
    let engine = engine(&sweep);
    let mut dave = spec("dave", WEB_IMAGE);
    // Nothing listens on this port in the web image.
    dave.port = Some(9);
    engine.ensure_project(&dave).await.unwrap();
    engine.ensure_application(&dave).await.unwrap();
    let err = engine
        .deploy(&dave, Duration::from_secs(2))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("did not answer HTTP within 2s"),
        "{err}"
    );
}

#[tokio::test]
async fn instances_see_and_remove_only_their_own() {
    let sweep = DockerSweep::new();
    let engine = engine(&sweep);
    let erin = spec("erin", WEB_IMAGE);
    engine.ensure_project(&erin).await.unwrap();
    let other = engine_for("someone-else", &sweep);
    assert!(other.stack_resources().await.unwrap().is_empty());
    assert!(other.remove_stack(&erin.name).await.unwrap().is_empty());
    assert_eq!(sweep.resources().await.len(), 2);
}

#[tokio::test]
async fn a_resource_with_our_name_but_not_our_labels_is_not_adopted() {
    let sweep = DockerSweep::new();
    let instance = format!("t{}", &sweep.id()[..9]);
    let engine = engine_for(&instance, &sweep);
    let frank = spec("frank", WEB_IMAGE);
    // Someone else's network, squatting the name the stacks network has.
    sweep
        .create_network(&format!("agentyard-{instance}-stacks"), &[])
        .await;
    let err = engine.ensure_project(&frank).await.unwrap_err();
    assert!(
        matches!(
            err,
            EngineError::Foreign {
                kind: ResourceKind::Network,
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string().contains("does not belong to this yard"),
        "{err}"
    );
    assert!(engine.stack_resources().await.unwrap().is_empty());
}

#[tokio::test]
async fn the_yards_own_label_namespace_is_refused_as_an_extra_label() {
    let mut config = DockerConfig::new("t0");
    config
        .extra_labels
        .insert("agentyard.agent".to_owned(), "x".to_owned());
    let err = DockerEngine::connect(config).unwrap_err();
    assert!(matches!(err, EngineError::ReservedLabel(_)), "{err}");
    assert!(err.to_string().contains("YARD_LABELS"), "{err}");
}

#[tokio::test]
async fn an_images_user_is_found_in_numbers() {
    ensure_stack_images().await;
    let agent_image = ensure_agent_image().await;
    let sweep = DockerSweep::new();
    let engine = engine(&sweep);
    assert_eq!(
        engine.image_user(&agent_image).await.unwrap(),
        Some(UserIds {
            uid: AGENT_UID,
            gid: AGENT_UID
        }),
        "USER agent, looked up in the image's passwd"
    );
    assert_eq!(engine.image_user(WEB_IMAGE).await.unwrap(), None, "root");
    assert!(matches!(
        engine.image_user("agentyard-test/none:1").await,
        Err(EngineError::ImageNotFound { .. })
    ));
    assert!(
        sweep.resources().await.is_empty(),
        "the container that read the image's passwd is gone"
    );
}

/// A stack made when each stack had a bridge network of its own keeps
/// answering, is adopted by the steps, and leaves nothing when removed.
#[tokio::test]
async fn a_stack_of_the_old_layout_keeps_working_and_goes_whole() {
    use bollard::models::{ContainerCreateBody, HostConfig, PortBinding};
    use bollard::query_parameters::CreateContainerOptionsBuilder;
    use std::collections::HashMap;
    ensure_stack_images().await;
    let sweep = DockerSweep::new();
    let instance = format!("t{}", &sweep.id()[..9]);
    let engine = engine_for(&instance, &sweep);
    let gina = spec("gina", WEB_IMAGE);
    let name = format!("agentyard-{instance}-gina");
    let ours = [
        ("agentyard.managed", "true"),
        ("agentyard.instance", instance.as_str()),
        ("agentyard.stack", "gina"),
    ];
    sweep.create_network(&name, &ours).await;
    let mut labels: HashMap<String, String> = ours
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    labels.insert("agentyard.port".to_owned(), "8080".to_owned());
    labels.insert(TEST_LABEL.to_owned(), sweep.id().to_owned());
    let docker = bollard::Docker::connect_with_defaults().unwrap();
    docker
        .create_container(
            Some(CreateContainerOptionsBuilder::new().name(&name).build()),
            ContainerCreateBody {
                image: Some(WEB_IMAGE.to_owned()),
                env: Some(vec!["YARD_STACK_NAME=gina".to_owned()]),
                labels: Some(labels),
                exposed_ports: Some(vec!["8080/tcp".to_owned()]),
                host_config: Some(HostConfig {
                    network_mode: Some(name.clone()),
                    port_bindings: Some(HashMap::from([(
                        "8080/tcp".to_owned(),
                        Some(vec![PortBinding {
                            host_ip: Some("127.0.0.1".to_owned()),
                            host_port: Some(String::new()),
                        }]),
                    )])),
                    ..Default::default()
                }),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    engine.ensure_project(&gina).await.unwrap();
    engine.ensure_application(&gina).await.unwrap();
    let endpoint = engine.deploy(&gina, Duration::from_secs(20)).await.unwrap();
    let page = yard_testkit::http()
        .get(endpoint.url("/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(page.trim(), "stack gina");
    let mut removed: Vec<ResourceKind> = engine
        .remove_stack(&gina.name)
        .await
        .unwrap()
        .iter()
        .map(|r| r.kind)
        .collect();
    removed.sort();
    assert_eq!(
        removed,
        [
            ResourceKind::Container,
            ResourceKind::Network,
            ResourceKind::Volume
        ]
    );
}

#[tokio::test]
async fn a_stacks_life_comes_through_the_event_feed() {
    use futures::StreamExt;
    use yard_engine::{ContainerChange, StackEvent};
    ensure_stack_images().await;
    let sweep = DockerSweep::new();
    let engine = engine(&sweep);
    let mut events = engine.stack_events();
    let hank = spec("hank", WEB_IMAGE);
    engine.ensure_project(&hank).await.unwrap();
    engine.ensure_application(&hank).await.unwrap();
    let first = tokio::time::timeout(Duration::from_secs(10), async {
        let deploying = engine.deploy(&hank, Duration::from_secs(20));
        let mut deploying = std::pin::pin!(deploying);
        loop {
            tokio::select! {
                event = events.next() => return event,
                _ = &mut deploying => {}
            }
        }
    })
    .await
    .expect("an event within 10 s");
    let event = first.unwrap().unwrap();
    assert!(
        matches!(
            &event,
            StackEvent::Container { stack, change: ContainerChange::Started, .. } if stack.as_str() == "hank"
        ),
        "{event:?}"
    );
    engine.remove_stack(&hank.name).await.unwrap();
}
