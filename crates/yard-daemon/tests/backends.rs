//! One behaviour suite for every backend: the same deploy, status,
//! failure-with-rollback, teardown and restart-reconcile run against the
//! fake, `docker`, `swarm` (a real single-node swarm on this machine's
//! engine) and `dokploy` (against the contract fake of Dokploy's API).
//! Each yard is built by the composition root, as `yard serve` builds it.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use yard_core::{DeploymentStatus, NamePolicy, Owner, Person, Role, StackAddressing};
use yard_daemon::{AgentSettings, BackendSource, DaemonConfig, Yard};
use yard_engine::{
    Backend, BackendConfig, BackendKind, DockerConfig, DockerEngine, DokployConfig, ResourceLimits,
};
use yard_server::{ConnectionLimits, HttpSettings};
use yard_services::agent_images::AgentImages;
use yard_services::repo_roots::RepoRoots;
use yard_services::{DataDir, DeployerConfig, HealingConfig, Route};
use yard_testkit::{
    CRASH_IMAGE, DockerSweep, DokployFake, FakeEngine, TEST_LABEL, WEB_IMAGE, ensure_stack_images,
    ensure_swarm,
};

/// How each backend under test is made, for a yard whose instance is
/// `instance`.
#[derive(Clone)]
enum Under {
    Fake(FakeEngine),
    Docker(Arc<DockerSweep>),
    Swarm(Arc<DockerSweep>),
    Dokploy(Arc<DokployFake>),
}

impl Under {
    fn backend(&self, instance: &str) -> Backend {
        let labelled = |kind: BackendKind, sweep: &DockerSweep| {
            let mut config = BackendConfig::docker(instance);
            config.kind = kind;
            config
                .extra_labels
                .insert(TEST_LABEL.to_owned(), sweep.id().to_owned());
            Backend::connect(&config).unwrap()
        };
        match self {
            Self::Fake(engine) => Backend::from_parts(
                BackendKind::Docker,
                Arc::new(engine.clone()),
                Arc::new(DockerEngine::connect(DockerConfig::new(instance)).unwrap()),
            ),
            Self::Docker(sweep) => labelled(BackendKind::Docker, sweep),
            Self::Swarm(sweep) => labelled(BackendKind::Swarm, sweep),
            Self::Dokploy(fake) => {
                let mut dokploy =
                    DokployConfig::new(fake.url(), fake.api_key(), instance, "stacks.test");
                dokploy.https = false;
                dokploy.traefik = Some(fake.authority());
                dokploy.poll_interval = Duration::from_millis(50);
                let mut config = BackendConfig::docker(instance);
                config.kind = BackendKind::Dokploy;
                config.dokploy = Some(dokploy);
                Backend::connect(&config).unwrap()
            }
        }
    }

    /// The images a good and a failing stack run, and what else makes the
    /// next deployment fail.
    fn images(&self) -> (&'static str, &'static str) {
        match self {
            Self::Fake(_) => ("web", "crash"),
            _ => (WEB_IMAGE, CRASH_IMAGE),
        }
    }

    fn arrange_failure(&self) {
        if let Self::Dokploy(fake) = self {
            fake.fail_next_deploy("the container exited with code 3");
        }
    }
}

fn config(data_dir: &DataDir, backend: Backend, image: &str) -> DaemonConfig {
    DaemonConfig {
        data_dir: data_dir.clone(),
        database_url: None,
        backend: BackendSource::Given(backend),
        deployer: DeployerConfig {
            stack_image: image.to_owned(),
            stack_port: None,
            stack_env: Vec::new(),
            addressing: StackAddressing::new("localhost", 3000, None),
            names: NamePolicy::default(),
            deploy_timeout: Duration::from_secs(60),
            limits: ResourceLimits {
                memory_bytes: Some(256 << 20),
                cpus: Some(0.5),
                pids: 64,
            },
            healing: HealingConfig::default(),
            lease_ttl: Duration::from_secs(10),
        },
        agents: AgentSettings {
            agent_image: image.to_owned(),
            allowed_images: AgentImages::new(&[image.to_owned()]).unwrap(),
            repo_roots: RepoRoots::new(vec![data_dir.path().join("repos")], false),
            max_agents: 1,
            max_agents_per_owner: 1,
            max_agents_total: 1,
            limits: ResourceLimits::AGENT_DEFAULT,
            control_volume: None,
            socket_group: None,
            caches: Vec::new(),
            agent_env: Vec::new(),
            lend_binary: None,
            stop_grace: Duration::from_secs(1),
            mode: Default::default(),
        },
        policy: data_dir.path().join("policy.toml"),
        policy_required: false,
        policy_check: Duration::from_secs(1),
        socket: data_dir.path().join("control.sock"),
        http: HttpSettings {
            mcp_allowed_origins: Vec::new(),
            mcp_allowed_hosts: Vec::new(),
            protect_stacks: false,
            portal_url: "http://localhost:3000".to_owned(),
        },
        connection_limits: ConnectionLimits::default(),
        reconcile_interval: Duration::from_secs(3600),
        question_timeout: Duration::from_secs(600),
        platform: None,
        config_key: None,
        forge: None,
    }
}

async fn yard_on(under: &Under, dir: &std::path::Path, image: &str) -> Yard {
    let data_dir = DataDir::open(dir).unwrap();
    let instance = data_dir.instance_id().unwrap();
    Yard::build(config(&data_dir, under.backend(&instance), image))
        .await
        .unwrap()
}

fn owner() -> Owner {
    Owner {
        id: "o-suite".into(),
        name: "suite".into(),
    }
}

fn admin() -> Person {
    Person {
        owner: owner(),
        role: Role::Admin,
    }
}

/// Waits until the deployment settles; returns its status and message.
async fn outcome(yard: &Yard, id: &str) -> (DeploymentStatus, Option<String>) {
    for _ in 0..1200 {
        let deployment = yard
            .services
            .deployer
            .deployment(id)
            .await
            .unwrap()
            .unwrap();
        if !deployment.status.is_in_progress() {
            return (deployment.status, deployment.message);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("deployment {id} did not settle in a minute");
}

async fn resources_of(yard: &Yard, stack: &str) -> usize {
    yard.backend
        .stacks
        .stack_resources()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.stack.as_str() == stack)
        .count()
}

/// The suite itself.
async fn behaves(under: Under) {
    let (good, bad) = under.images();
    let dir = tempfile::tempdir().unwrap();
    let yard = yard_on(&under, dir.path(), good).await;
    let deployer = &yard.services.deployer;

    // Deploy, then status: completed, routed, and the stack answers.
    let deployment = deployer.deploy("alpha", &owner()).await.unwrap();
    let (status, message) = outcome(&yard, deployment.id.as_str()).await;
    assert_eq!(status, DeploymentStatus::Completed, "{message:?}");
    let Route::Ready(endpoint) = deployer.route("alpha").await.unwrap() else {
        panic!("a completed stack is routed");
    };
    assert!(
        yard.backend.stacks.probe(&endpoint).await,
        "{endpoint} answers"
    );
    assert!(resources_of(&yard, "alpha").await > 0);

    // Failure mid-way: rolled back, nothing left, the reason kept.
    let failing_dir = tempfile::tempdir().unwrap();
    let failing = yard_on(&under, failing_dir.path(), bad).await;
    under.arrange_failure();
    let broken = failing
        .services
        .deployer
        .deploy("beta", &owner())
        .await
        .unwrap();
    let (status, message) = outcome(&failing, broken.id.as_str()).await;
    assert_eq!(status, DeploymentStatus::Failed);
    assert!(message.is_some_and(|m| !m.is_empty()), "the reason is kept");
    assert_eq!(resources_of(&failing, "beta").await, 0, "rolled back");
    failing.services.deployer.shutdown(Duration::ZERO).await;

    // Teardown: removed, and nothing of it left on the backend.
    let removed = deployer.destroy("alpha", &admin()).await.unwrap();
    assert_eq!(removed.status, DeploymentStatus::Removed);
    assert_eq!(resources_of(&yard, "alpha").await, 0);

    // Restart-reconcile: the yard stops in the middle of a deployment; the
    // next yard on the same data directory finishes it.
    let started = deployer.deploy("gamma", &owner()).await.unwrap();
    deployer.shutdown(Duration::ZERO).await;
    drop(yard);
    let again = yard_on(&under, dir.path(), good).await;
    again.converge().await;
    let (status, message) = outcome(&again, started.id.as_str()).await;
    assert_eq!(status, DeploymentStatus::Completed, "{message:?}");
    assert!(matches!(
        again.services.deployer.route("gamma").await.unwrap(),
        Route::Ready(_)
    ));
    again
        .services
        .deployer
        .destroy("gamma", &admin())
        .await
        .unwrap();
    assert_eq!(resources_of(&again, "gamma").await, 0);
    again
        .services
        .deployer
        .shutdown(Duration::from_secs(5))
        .await;
}

#[tokio::test]
async fn the_fake_backend_behaves() {
    behaves(Under::Fake(FakeEngine::new())).await;
}

#[tokio::test]
async fn the_docker_backend_behaves() {
    ensure_stack_images().await;
    behaves(Under::Docker(Arc::new(DockerSweep::new()))).await;
}

#[tokio::test]
async fn the_swarm_backend_behaves() {
    ensure_stack_images().await;
    ensure_swarm().await;
    behaves(Under::Swarm(Arc::new(DockerSweep::new()))).await;
}

#[tokio::test]
async fn the_dokploy_backend_behaves() {
    let fake = Arc::new(DokployFake::start().await);
    behaves(Under::Dokploy(Arc::clone(&fake))).await;
    fake.assert_clean();
}
