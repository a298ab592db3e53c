//! A per-test Docker label and the guard that removes everything carrying it:
//! swarm services, containers, networks and volumes.

use std::collections::HashMap;

use bollard::Docker;
use bollard::models::ContainerInspectResponse;
use bollard::query_parameters::{
    ListContainersOptionsBuilder, ListNetworksOptionsBuilder, ListServicesOptionsBuilder,
    ListVolumesOptionsBuilder, RemoveContainerOptionsBuilder, RemoveVolumeOptionsBuilder,
};

/// The label key every test resource carries; the value is per test. It
/// is outside the yard's own `agentyard.` namespace, which the yard keeps
/// for itself: tests pass it the way an operator passes `YARD_LABELS`.
pub const TEST_LABEL: &str = "yard-test";

/// Owns one test's label. On drop (including during a panic) it removes
/// every swarm service, container, network and volume carrying it.
#[derive(Debug)]
pub struct DockerSweep {
    value: String,
}

impl Default for DockerSweep {
    fn default() -> Self {
        Self::new()
    }
}

impl DockerSweep {
    pub fn new() -> Self {
        Self {
            value: uuid::Uuid::new_v4().simple().to_string(),
        }
    }

    /// This test's label value.
    pub fn id(&self) -> &str {
        &self.value
    }

    /// Creates a network with the test label and `labels`: a stand-in for
    /// something the yard did not make, or for what a crash left behind.
    pub async fn create_network(&self, name: &str, labels: &[(&str, &str)]) {
        let mut all = HashMap::from([(TEST_LABEL.to_owned(), self.value.clone())]);
        all.extend(
            labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        client()
            .create_network(bollard::models::NetworkCreateRequest {
                name: name.to_owned(),
                labels: Some(all),
                ..Default::default()
            })
            .await
            .expect("creating a network");
    }

    /// The container of agent `agent` (made under this test's label), as
    /// the engine describes it.
    pub async fn agent_container(&self, agent: &str) -> ContainerInspectResponse {
        self.inspect(&format!("agentyard.agent={agent}")).await
    }

    /// The first container with this test's label and `label`, as the
    /// engine describes it.
    pub async fn inspect(&self, label: &str) -> ContainerInspectResponse {
        let filters = HashMap::from([("label", vec![self.label(), label.to_owned()])]);
        let docker = client();
        let containers = docker
            .list_containers(Some(
                ListContainersOptionsBuilder::new()
                    .all(true)
                    .filters(&filters)
                    .build(),
            ))
            .await
            .expect("listing containers");
        let id = containers
            .into_iter()
            .find_map(|c| c.id)
            .unwrap_or_else(|| panic!("no container labelled {label}"));
        docker
            .inspect_container(&id, None)
            .await
            .expect("inspecting a container")
    }

    /// The credential the yard gave agent `agent` (its `YARD_AGENT_TOKEN`).
    pub async fn agent_token(&self, agent: &str) -> String {
        self.agent_env(agent)
            .await
            .into_iter()
            .find_map(|kv| kv.strip_prefix("YARD_AGENT_TOKEN=").map(str::to_owned))
            .unwrap_or_else(|| panic!("agent {agent} has no YARD_AGENT_TOKEN"))
    }

    /// The environment of the container of agent `agent` (made under this
    /// test's label), as `KEY=VALUE` strings.
    pub async fn agent_env(&self, agent: &str) -> Vec<String> {
        self.agent_container(agent)
            .await
            .config
            .and_then(|c| c.env)
            .unwrap_or_default()
    }

    /// `yard-test=<id>`, as `YARD_LABELS` and `docker --filter` take it.
    pub fn label(&self) -> String {
        format!("{TEST_LABEL}={}", self.value)
    }

    /// Every resource with this test's label, as `kind name` lines, sorted.
    pub async fn resources(&self) -> Vec<String> {
        list(&self.label()).await
    }

    /// What stacks and agents left with this test's label: every resource
    /// but the stacks network, which a yard keeps for all its stacks.
    pub async fn leftovers(&self) -> Vec<String> {
        let mut found = self.resources().await;
        found.retain(|r| !(r.starts_with("network ") && r.ends_with("-stacks")));
        found
    }

    /// Removes everything with this test's label now.
    pub async fn sweep(&self) {
        remove_all(&self.label()).await;
    }
}

impl Drop for DockerSweep {
    fn drop(&mut self) {
        let label = self.label();
        // Drop may run inside a Tokio runtime, which cannot be blocked on;
        // a plain thread with its own runtime can.
        let swept = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map(|rt| rt.block_on(remove_all(&label)))
        })
        .join();
        if !matches!(swept, Ok(Ok(()))) {
            eprintln!(
                "warning: could not sweep Docker resources labelled {}",
                self.label()
            );
        }
    }
}

fn client() -> Docker {
    Docker::connect_with_defaults().expect("a Docker client")
}

fn filters(label: &str) -> HashMap<&'static str, Vec<String>> {
    HashMap::from([("label", vec![label.to_owned()])])
}

async fn list(label: &str) -> Vec<String> {
    let docker = client();
    let filters = filters(label);
    let mut found = Vec::new();
    for s in services(&docker, &filters).await {
        let name = s.spec.and_then(|spec| spec.name).unwrap_or_default();
        found.push(format!("service {name}"));
    }
    let containers = docker
        .list_containers(Some(
            ListContainersOptionsBuilder::new()
                .all(true)
                .filters(&filters)
                .build(),
        ))
        .await
        .expect("listing containers");
    for c in containers {
        let name = c.names.unwrap_or_default().join(",");
        found.push(format!("container {}", name.trim_start_matches('/')));
    }
    let networks = docker
        .list_networks(Some(
            ListNetworksOptionsBuilder::new().filters(&filters).build(),
        ))
        .await
        .expect("listing networks");
    for n in networks {
        found.push(format!("network {}", n.name.unwrap_or_default()));
    }
    let volumes = docker
        .list_volumes(Some(
            ListVolumesOptionsBuilder::new().filters(&filters).build(),
        ))
        .await
        .expect("listing volumes");
    for v in volumes.volumes.unwrap_or_default() {
        found.push(format!("volume {}", v.name));
    }
    found.sort();
    found
}

/// The swarm services matching `filters`; none when the engine is not a
/// swarm manager, which has no services to list.
async fn services(
    docker: &Docker,
    filters: &HashMap<&'static str, Vec<String>>,
) -> Vec<bollard::models::Service> {
    docker
        .list_services(Some(
            ListServicesOptionsBuilder::new().filters(filters).build(),
        ))
        .await
        .unwrap_or_default()
}

async fn remove_all(label: &str) {
    let docker = client();
    let filters = filters(label);
    // Services first: they would start new containers for the ones removed
    // below, and their tasks hold networks and volumes.
    let services = services(&docker, &filters).await;
    for s in &services {
        let _ = docker
            .delete_service(s.id.as_deref().unwrap_or_default())
            .await;
    }
    if let Ok(containers) = docker
        .list_containers(Some(
            ListContainersOptionsBuilder::new()
                .all(true)
                .filters(&filters)
                .build(),
        ))
        .await
    {
        for c in containers {
            let force = RemoveContainerOptionsBuilder::new().force(true).build();
            let _ = docker
                .remove_container(&c.id.unwrap_or_default(), Some(force))
                .await;
        }
    }
    if let Ok(networks) = docker
        .list_networks(Some(
            ListNetworksOptionsBuilder::new().filters(&filters).build(),
        ))
        .await
    {
        for n in networks {
            let id = n.id.unwrap_or_default();
            // An overlay network stays in use for a moment after its
            // service's task is gone.
            let tries = if services.is_empty() { 1 } else { 40 };
            for _ in 0..tries {
                match docker.remove_network(&id).await {
                    Err(bollard::errors::Error::DockerResponseServerError {
                        status_code, ..
                    }) if status_code != 404 => {
                        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
                    }
                    _ => break,
                }
            }
        }
    }
    if let Ok(volumes) = docker
        .list_volumes(Some(
            ListVolumesOptionsBuilder::new().filters(&filters).build(),
        ))
        .await
    {
        for v in volumes.volumes.unwrap_or_default() {
            let force = RemoveVolumeOptionsBuilder::new().force(true).build();
            let _ = docker.remove_volume(&v.name, Some(force)).await;
        }
    }
}
