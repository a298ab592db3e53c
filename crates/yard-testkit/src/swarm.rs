//! A swarm for tests of the swarm backend: the local engine made a
//! single-node swarm manager when it is not one yet.
//!
//! The swarm is left in place when the tests end: other test binaries may
//! be using it, and leaving it is CI's business (`docker swarm leave
//! --force` at the end of its run, when it made the swarm).

use bollard::Docker;
use bollard::models::{LocalNodeState, SwarmInitRequest};
use tokio::sync::OnceCell;

static SWARM: OnceCell<()> = OnceCell::const_new();

/// Makes the local engine a swarm manager (`docker swarm init
/// --advertise-addr 127.0.0.1`, listening on loopback only) unless it is
/// one. Once per test process; another process doing the same at the same
/// time is fine ("already part of a swarm" counts as done).
pub async fn ensure_swarm() {
    SWARM
        .get_or_init(|| async {
            let docker = Docker::connect_with_defaults().expect("a Docker client");
            if is_manager(&docker).await {
                return;
            }
            let init = SwarmInitRequest {
                advertise_addr: Some("127.0.0.1".to_owned()),
                listen_addr: Some("127.0.0.1:2377".to_owned()),
                ..Default::default()
            };
            match docker.init_swarm(init).await {
                Ok(node) => eprintln!("made this engine a swarm manager (node {node})"),
                Err(e) if e.to_string().contains("already part of a swarm") => {}
                Err(e) => panic!("docker swarm init: {e}"),
            }
            assert!(
                is_manager(&docker).await,
                "the engine is in a swarm but not a manager; point DOCKER_HOST at a manager"
            );
        })
        .await;
}

async fn is_manager(docker: &Docker) -> bool {
    let swarm = docker
        .info()
        .await
        .expect("docker info")
        .swarm
        .unwrap_or_default();
    swarm.local_node_state == Some(LocalNodeState::ACTIVE) && swarm.control_available == Some(true)
}
