//! The `docker` backend: one local (or `DOCKER_HOST`) Docker engine.
//!
//! A stack is a data volume and one container, named
//! `agentyard-<instance>-<stack>` and labelled, on the instance's one stacks
//! network (`agentyard-<instance>-stacks`, a bridge with traffic between its
//! containers switched off). The container's HTTP port is published on
//! loopback with an ephemeral host port; the yard's host router proxies to
//! it. That works the same on Linux and on Docker Desktop, where container
//! addresses are not reachable from the host. Stacks made before the shared
//! network have a bridge network of their own; they keep it, and it goes
//! with them.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bollard::Docker;
use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, ContainerStateStatusEnum, ContainerSummary,
    ContainerUpdateBody, HealthStatusEnum, HostConfig, Mount, MountType, NetworkCreateRequest,
    PortBinding, RestartPolicy, RestartPolicyNameEnum, VolumeCreateRequest,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, ListContainersOptionsBuilder, ListNetworksOptionsBuilder,
    ListVolumesOptionsBuilder, RemoveContainerOptionsBuilder, RemoveVolumeOptionsBuilder,
};
use futures::stream::BoxStream;
use yard_core::StackName;

mod agents;
mod image_user;
mod watch;

use crate::docker_api::{
    ProbeClient, answers, backend, probe_client, stack_networks_and_volumes, status, tail_logs,
    unavailable,
};
use crate::{
    Endpoint, Engine, EngineError, LABEL_INSTANCE, LABEL_MANAGED, LABEL_STACK, ResourceKind,
    ResourceLimits, StackEvent, StackResource, StackSpec, StackState, UserIds, is_reserved_label,
};

/// The capabilities stacks and agents keep; all others are dropped. This is
/// Docker's default set without MKNOD, NET_RAW (forged packets), SETFCAP,
/// SETPCAP, SYS_CHROOT and AUDIT_WRITE: enough for a process that starts as
/// root to own its files and switch to its own user, nothing for reaching
/// past its container.
pub const KEPT_CAPABILITIES: [&str; 8] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "NET_BIND_SERVICE",
    "SETGID",
    "SETUID",
];

/// The confinement every container the yard makes runs under: no new
/// privileges (setuid binaries and file capabilities gain nothing), the
/// kept capabilities only, and `limits`.
fn confined(limits: &ResourceLimits) -> HostConfig {
    HostConfig {
        security_opt: Some(vec!["no-new-privileges:true".to_owned()]),
        cap_drop: Some(vec!["ALL".to_owned()]),
        cap_add: Some(KEPT_CAPABILITIES.map(str::to_owned).to_vec()),
        pids_limit: Some(limits.pids),
        memory: limits.memory_bytes,
        // The same as memory: no swap on top of the limit.
        memory_swap: limits.memory_bytes,
        nano_cpus: limits.cpus.map(|cpus| (cpus * 1e9) as i64),
        ..Default::default()
    }
}

/// Label recording the container port a stack listens on, so the endpoint
/// can be found again without the spec.
const LABEL_PORT: &str = "agentyard.port";
/// Label on the network all of an instance's stacks share.
const LABEL_NETWORK: &str = "agentyard.network";

/// How the docker backend names and labels what it makes.
#[derive(Debug, Clone)]
pub struct DockerConfig {
    /// The yard instance id, in every resource's name and labels.
    pub instance: String,
    /// Extra labels put on every resource (operators use them for
    /// attribution; tests use them to find and remove what they made).
    pub extra_labels: BTreeMap<String, String>,
    /// The host address stack ports are published on.
    pub publish_ip: IpAddr,
    /// Where the stack's data volume is mounted in its container.
    pub data_mount: String,
    /// This yard's own id when several yards share the instance id (one
    /// database): each makes and uses a stacks network of its own, named
    /// with it, because Docker lets two yards make two networks of one
    /// name at once and then cannot attach to either by that name.
    pub network_owner: Option<String>,
}

impl DockerConfig {
    /// Loopback publishing and `/data`, for `instance`.
    pub fn new(instance: impl Into<String>) -> Self {
        Self {
            instance: instance.into(),
            extra_labels: BTreeMap::new(),
            publish_ip: IpAddr::from([127, 0, 0, 1]),
            data_mount: "/data".to_owned(),
            network_owner: None,
        }
    }
}

/// The docker backend.
#[derive(Debug, Clone)]
pub struct DockerEngine {
    docker: Docker,
    config: DockerConfig,
    probe: ProbeClient,
    /// Held while the stacks network is checked or made.
    network_lock: Arc<tokio::sync::Mutex<()>>,
    /// The user each agent image (by id) runs as, once looked up. Held
    /// across a lookup, so spawns racing for a new image look it up once.
    image_users: Arc<tokio::sync::Mutex<HashMap<String, Option<UserIds>>>>,
}

impl DockerEngine {
    /// A client for the engine at `DOCKER_HOST` (default: the local
    /// socket). Nothing is sent yet, so a yard can start while Docker is
    /// still coming up; [`Engine::ping`] tells whether it answers. Extra
    /// labels in the yard's own namespace are refused.
    pub fn connect(config: DockerConfig) -> Result<Self, EngineError> {
        if let Some(key) = config.extra_labels.keys().find(|k| is_reserved_label(k)) {
            return Err(EngineError::ReservedLabel(key.clone()));
        }
        let docker = Docker::connect_with_defaults().map_err(unavailable)?;
        let probe = probe_client();
        Ok(Self {
            docker,
            config,
            probe,
            network_lock: Arc::default(),
            image_users: Arc::default(),
        })
    }

    /// The engine's version string, for start-up logs and diagnostics.
    pub async fn version(&self) -> Result<String, EngineError> {
        let version = self.docker.version().await.map_err(unavailable)?;
        Ok(format!(
            "{} (API {})",
            version.version.unwrap_or_default(),
            version.api_version.unwrap_or_default()
        ))
    }

    fn resource_name(&self, stack: &StackName) -> String {
        format!("agentyard-{}-{}", self.config.instance, stack)
    }

    fn volume_name(&self, stack: &StackName) -> String {
        format!("{}-data", self.resource_name(stack))
    }

    /// The operator's extra labels plus `agentyard.managed=true`.
    fn base_labels(&self) -> HashMap<String, String> {
        let mut labels: HashMap<String, String> = self
            .config
            .extra_labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        labels.insert(LABEL_MANAGED.to_owned(), "true".to_owned());
        labels
    }

    fn labels(&self, stack: &StackName) -> HashMap<String, String> {
        let mut labels = self.base_labels();
        labels.insert(LABEL_INSTANCE.to_owned(), self.config.instance.clone());
        labels.insert(LABEL_STACK.to_owned(), stack.to_string());
        labels
    }

    /// `true` when `labels` mark a resource as this instance's, for `stack`.
    fn owns(&self, labels: Option<&HashMap<String, String>>, stack: &StackName) -> bool {
        labels.is_some_and(|l| {
            l.get(LABEL_MANAGED).map(String::as_str) == Some("true")
                && l.get(LABEL_INSTANCE) == Some(&self.config.instance)
                && l.get(LABEL_STACK).map(String::as_str) == Some(stack.as_str())
        })
    }

    /// Label filters for this instance's stack resources; `stack` narrows
    /// them to one stack.
    fn filters(&self, stack: Option<&StackName>) -> HashMap<&'static str, Vec<String>> {
        let mut labels = vec![
            format!("{LABEL_MANAGED}=true"),
            format!("{LABEL_INSTANCE}={}", self.config.instance),
        ];
        labels.push(match stack {
            Some(stack) => format!("{LABEL_STACK}={stack}"),
            None => LABEL_STACK.to_owned(),
        });
        HashMap::from([("label", labels)])
    }

    /// Every container (running or not) matching `filters`.
    async fn containers(
        &self,
        filters: &HashMap<&'static str, Vec<String>>,
        operation: &'static str,
    ) -> Result<Vec<ContainerSummary>, EngineError> {
        self.docker
            .list_containers(Some(
                ListContainersOptionsBuilder::new()
                    .all(true)
                    .filters(filters)
                    .build(),
            ))
            .await
            .map_err(|e| backend(operation, e))
    }

    /// The network every stack of this instance joins.
    fn stacks_network(&self) -> String {
        match &self.config.network_owner {
            Some(owner) => format!("agentyard-{}-stacks-{owner}", self.config.instance),
            None => format!("agentyard-{}-stacks", self.config.instance),
        }
    }

    /// Makes sure this instance's stacks network exists: one bridge with
    /// traffic between its containers switched off, so stacks reach the
    /// world and the yard reaches them through their published ports, but
    /// no stack reaches another. One network for all stacks takes one
    /// address pool, however many stacks there are. Checked every time (it
    /// may have been removed by hand) and made under a lock, so concurrent
    /// deployments make one. Returns its id.
    ///
    /// Docker does not refuse a second network of the same name, so yards
    /// sharing one instance id each have their own (see
    /// [`DockerConfig::network_owner`]); should a duplicate appear anyway,
    /// new stacks go to the lowest id, always attached by id.
    async fn ensure_stacks_network(&self) -> Result<String, EngineError> {
        let _making = self.network_lock.lock().await;
        let name = self.stacks_network();
        let mut found = self.stacks_networks(&name).await?;
        if found.is_empty() {
            let mut labels = self.base_labels();
            labels.insert(LABEL_INSTANCE.to_owned(), self.config.instance.clone());
            labels.insert(LABEL_NETWORK.to_owned(), "stacks".to_owned());
            self.docker
                .create_network(NetworkCreateRequest {
                    name: name.clone(),
                    driver: Some("bridge".to_owned()),
                    labels: Some(labels),
                    options: Some(HashMap::from([(
                        "com.docker.network.bridge.enable_icc".to_owned(),
                        "false".to_owned(),
                    )])),
                    ..Default::default()
                })
                .await
                .map_err(|e| backend("creating the stacks network", e))?;
            tracing::info!(network = %name, "stacks network created");
            found = self.stacks_networks(&name).await?;
        }
        found.into_iter().min().ok_or_else(|| EngineError::Backend {
            operation: "creating the stacks network",
            message: format!("{name} vanished as soon as it was made"),
        })
    }

    /// The ids of this instance's networks named `name`; an error if one by
    /// that name is not the yard's.
    async fn stacks_networks(&self, name: &str) -> Result<Vec<String>, EngineError> {
        let filters = HashMap::from([("name", vec![name.to_owned()])]);
        let networks = self
            .docker
            .list_networks(Some(
                ListNetworksOptionsBuilder::new().filters(&filters).build(),
            ))
            .await
            .map_err(|e| backend("inspecting the stacks network", e))?;
        let mut ours = Vec::new();
        // The name filter matches parts of names too.
        for network in networks
            .into_iter()
            .filter(|n| n.name.as_deref() == Some(name))
        {
            let labels = network.labels.unwrap_or_default();
            let is_ours = labels.get(LABEL_MANAGED).map(String::as_str) == Some("true")
                && labels.get(LABEL_INSTANCE) == Some(&self.config.instance)
                && labels.get(LABEL_NETWORK).map(String::as_str) == Some("stacks");
            if !is_ours {
                return Err(EngineError::Foreign {
                    kind: ResourceKind::Network,
                    name: name.to_owned(),
                });
            }
            ours.push(network.id.unwrap_or_default());
        }
        Ok(ours)
    }

    async fn ensure_volume(&self, stack: &StackName) -> Result<(), EngineError> {
        let name = self.volume_name(stack);
        match self.docker.inspect_volume(&name).await {
            Ok(volume) if self.owns(Some(&volume.labels), stack) => return Ok(()),
            Ok(_) => {
                return Err(EngineError::Foreign {
                    kind: ResourceKind::Volume,
                    name,
                });
            }
            Err(e) if status(&e) == Some(404) => {}
            Err(e) => return Err(backend("inspecting the data volume", e)),
        }
        self.docker
            .create_volume(VolumeCreateRequest {
                name: Some(name),
                labels: Some(self.labels(stack)),
                ..Default::default()
            })
            .await
            .map_err(|e| backend("creating the data volume", e))?;
        Ok(())
    }

    /// The stack's container, if it exists; an error if the name is taken
    /// by something that is not ours.
    async fn inspect_own_container(
        &self,
        stack: &StackName,
    ) -> Result<Option<ContainerInspectResponse>, EngineError> {
        let name = self.resource_name(stack);
        match self.docker.inspect_container(&name, None).await {
            Ok(container)
                if self.owns(
                    container.config.as_ref().and_then(|c| c.labels.as_ref()),
                    stack,
                ) =>
            {
                Ok(Some(container))
            }
            Ok(_) => Err(EngineError::Foreign {
                kind: ResourceKind::Container,
                name,
            }),
            Err(e) if status(&e) == Some(404) => Ok(None),
            Err(e) => Err(backend("inspecting the stack container", e)),
        }
    }

    /// The port the stack listens on: the configured one, or the image's
    /// lowest exposed TCP port.
    async fn stack_port(&self, spec: &StackSpec) -> Result<u16, EngineError> {
        let image = match self.docker.inspect_image(&spec.image).await {
            Ok(image) => image,
            Err(e) if status(&e) == Some(404) => {
                return Err(EngineError::ImageNotFound {
                    image: spec.image.clone(),
                });
            }
            Err(e) => return Err(backend("inspecting the stack image", e)),
        };
        if let Some(port) = spec.port {
            return Ok(port);
        }
        image
            .config
            .and_then(|c| c.exposed_ports)
            .unwrap_or_default()
            .iter()
            .filter_map(|p| p.strip_suffix("/tcp").and_then(|n| n.parse::<u16>().ok()))
            .min()
            .ok_or_else(|| EngineError::NoPort {
                image: spec.image.clone(),
            })
    }

    /// The published host port of a container's stack port.
    fn published(container: &ContainerInspectResponse) -> Option<u16> {
        let port = container
            .config
            .as_ref()?
            .labels
            .as_ref()?
            .get(LABEL_PORT)?
            .clone();
        container
            .network_settings
            .as_ref()?
            .ports
            .as_ref()?
            .get(&format!("{port}/tcp"))?
            .as_ref()?
            .iter()
            .find_map(|binding| binding.host_port.as_deref()?.parse().ok())
    }

    fn endpoint_at(&self, host_port: u16) -> Endpoint {
        Endpoint::http(format!("{}:{host_port}", self.config.publish_ip))
    }

    /// Lets the yard, not the engine, decide when a stack comes back: a
    /// container made with Docker's own restart policy (by an older yard)
    /// is switched to none.
    async fn without_engine_restarts(&self, container: &ContainerInspectResponse) {
        let policy = container
            .host_config
            .as_ref()
            .and_then(|h| h.restart_policy.as_ref())
            .and_then(|p| p.name);
        if matches!(
            policy,
            None | Some(RestartPolicyNameEnum::NO | RestartPolicyNameEnum::EMPTY)
        ) {
            return;
        }
        let Some(id) = container.id.as_deref() else {
            return;
        };
        let update = ContainerUpdateBody {
            restart_policy: Some(RestartPolicy {
                name: Some(RestartPolicyNameEnum::NO),
                maximum_retry_count: None,
            }),
            ..Default::default()
        };
        if let Err(e) = self.docker.update_container(id, update).await {
            tracing::warn!(container = %id, error = %e, "cannot switch off the engine's restarts");
        }
    }
}

#[async_trait]
impl Engine for DockerEngine {
    fn backend(&self) -> &'static str {
        "docker"
    }

    async fn ping(&self) -> Result<(), EngineError> {
        self.docker.ping().await.map_err(unavailable)?;
        Ok(())
    }

    async fn ensure_project(&self, spec: &StackSpec) -> Result<(), EngineError> {
        self.ensure_stacks_network().await?;
        self.ensure_volume(&spec.name).await
    }

    async fn ensure_application(&self, spec: &StackSpec) -> Result<(), EngineError> {
        let port = self.stack_port(spec).await?;
        if let Some(container) = self.inspect_own_container(&spec.name).await? {
            self.without_engine_restarts(&container).await;
            return Ok(());
        }
        // By id: the name may be ambiguous for a moment (see
        // `ensure_stacks_network`).
        let network = self.ensure_stacks_network().await?;
        let name = self.resource_name(&spec.name);
        let mut labels = self.labels(&spec.name);
        labels.insert(LABEL_PORT.to_owned(), port.to_string());
        let container_port = format!("{port}/tcp");
        let body = ContainerCreateBody {
            image: Some(spec.image.clone()),
            env: Some(spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            labels: Some(labels),
            exposed_ports: Some(vec![container_port.clone()]),
            // Logs stay clean multiplexed streams; nobody types into a stack.
            tty: Some(false),
            host_config: Some(HostConfig {
                port_bindings: Some(HashMap::from([(
                    container_port,
                    Some(vec![PortBinding {
                        host_ip: Some(self.config.publish_ip.to_string()),
                        host_port: Some(String::new()),
                    }]),
                )])),
                network_mode: Some(network),
                mounts: Some(vec![Mount {
                    target: Some(self.config.data_mount.clone()),
                    source: Some(self.volume_name(&spec.name)),
                    typ: Some(MountType::VOLUME),
                    ..Default::default()
                }]),
                // The yard restarts stacks itself, by its policy, so it can
                // tell a crash from a restart and give up on a crash loop.
                restart_policy: Some(RestartPolicy {
                    name: Some(RestartPolicyNameEnum::NO),
                    maximum_retry_count: None,
                }),
                ..confined(&spec.limits)
            }),
            ..Default::default()
        };
        let options = CreateContainerOptionsBuilder::new().name(&name).build();
        self.docker
            .create_container(Some(options), body)
            .await
            .map_err(|e| backend("creating the stack container", e))?;
        Ok(())
    }

    async fn deploy(&self, spec: &StackSpec, timeout: Duration) -> Result<Endpoint, EngineError> {
        let name = self.resource_name(&spec.name);
        self.docker
            .start_container(&name, None)
            .await
            .map_err(|e| backend("starting the stack container", e))?;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let container = self
                .inspect_own_container(&spec.name)
                .await?
                .ok_or_else(|| {
                    EngineError::NotReady("the container vanished while starting".into())
                })?;
            let state = container.state.clone().unwrap_or_default();
            let stopped = matches!(
                state.status,
                Some(ContainerStateStatusEnum::EXITED | ContainerStateStatusEnum::DEAD)
            );
            if stopped || container.restart_count.unwrap_or(0) > 0 {
                let code = state.exit_code.unwrap_or_default();
                let logs = tail_logs(&self.docker, &name).await;
                return Err(EngineError::NotReady(format!(
                    "the container exited with code {code}; its last output:\n{logs}"
                )));
            }
            // An image with its own health check says when it is ready;
            // any other is ready when it answers HTTP below 500.
            let own_check = state.health.as_ref().and_then(|h| h.status);
            if own_check == Some(HealthStatusEnum::UNHEALTHY) {
                let logs = tail_logs(&self.docker, &name).await;
                return Err(EngineError::NotReady(format!(
                    "its own health check says it is unhealthy; its last output:\n{logs}"
                )));
            }
            if let Some(endpoint) = Self::published(&container).map(|p| self.endpoint_at(p)) {
                let ready = match own_check {
                    Some(HealthStatusEnum::HEALTHY) => true,
                    Some(HealthStatusEnum::STARTING) => false,
                    _ => answers(&self.probe, &endpoint).await,
                };
                if ready {
                    return Ok(endpoint);
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(EngineError::NotReady(format!(
                    "it did not answer HTTP within {}s",
                    timeout.as_secs()
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn endpoint(&self, name: &StackName) -> Result<Option<Endpoint>, EngineError> {
        let Some(container) = self.inspect_own_container(name).await? else {
            return Ok(None);
        };
        let running = container
            .state
            .as_ref()
            .and_then(|s| s.running)
            .unwrap_or(false);
        Ok(running
            .then(|| Self::published(&container))
            .flatten()
            .map(|port| self.endpoint_at(port)))
    }

    async fn remove_stack(&self, name: &StackName) -> Result<Vec<StackResource>, EngineError> {
        let filters = self.filters(Some(name));
        let mut removed = Vec::new();
        // Containers first: a network with endpoints or a volume in use
        // cannot be removed.
        let containers = self
            .containers(&filters, "listing the stack's containers")
            .await?;
        for container in containers {
            let id = container.id.unwrap_or_default();
            let force = RemoveContainerOptionsBuilder::new().force(true).build();
            match self.docker.remove_container(&id, Some(force)).await {
                Ok(()) => {}
                Err(e) if status(&e) == Some(404) => continue,
                Err(e) => return Err(backend("removing a stack container", e)),
            }
            removed.push(StackResource {
                kind: ResourceKind::Container,
                name: first_name(container.names.as_deref()).unwrap_or(id),
                stack: name.clone(),
            });
        }
        let networks = self
            .docker
            .list_networks(Some(
                ListNetworksOptionsBuilder::new().filters(&filters).build(),
            ))
            .await
            .map_err(|e| backend("listing the stack's networks", e))?;
        for network in networks {
            let id = network.id.unwrap_or_default();
            match self.docker.remove_network(&id).await {
                Ok(()) => {}
                Err(e) if status(&e) == Some(404) => continue,
                Err(e) => return Err(backend("removing the stack network", e)),
            }
            removed.push(StackResource {
                kind: ResourceKind::Network,
                name: network.name.unwrap_or(id),
                stack: name.clone(),
            });
        }
        let volumes = self
            .docker
            .list_volumes(Some(
                ListVolumesOptionsBuilder::new().filters(&filters).build(),
            ))
            .await
            .map_err(|e| backend("listing the stack's volumes", e))?;
        for volume in volumes.volumes.unwrap_or_default() {
            let force = RemoveVolumeOptionsBuilder::new().force(true).build();
            match self.docker.remove_volume(&volume.name, Some(force)).await {
                Ok(()) => {}
                Err(e) if status(&e) == Some(404) => continue,
                Err(e) => return Err(backend("removing the data volume", e)),
            }
            removed.push(StackResource {
                kind: ResourceKind::Volume,
                name: volume.name,
                stack: name.clone(),
            });
        }
        Ok(removed)
    }

    async fn remove_application(&self, name: &StackName) -> Result<Option<String>, EngineError> {
        let Some(id) = self
            .inspect_own_container(name)
            .await?
            .and_then(|container| container.id)
        else {
            return Ok(None);
        };
        let force = RemoveContainerOptionsBuilder::new().force(true).build();
        match self.docker.remove_container(&id, Some(force)).await {
            Ok(()) => Ok(Some(id)),
            Err(e) if matches!(status(&e), Some(404 | 409)) => Ok(Some(id)),
            Err(e) => Err(backend("removing the stack container", e)),
        }
    }

    async fn stack_states(&self) -> Result<Vec<(StackName, StackState)>, EngineError> {
        self.states().await
    }

    fn stack_events(&self) -> BoxStream<'static, Result<StackEvent, EngineError>> {
        self.events()
    }

    async fn probe(&self, endpoint: &Endpoint) -> bool {
        answers(&self.probe, endpoint).await
    }

    async fn stack_resources(&self) -> Result<Vec<StackResource>, EngineError> {
        let filters = self.filters(None);
        let stack_of = |labels: Option<&HashMap<String, String>>| {
            labels
                .and_then(|l| l.get(LABEL_STACK))
                .map(|s| StackName::from_trusted(s.as_str()))
        };
        let mut found = Vec::new();
        let containers = self.containers(&filters, "listing containers").await?;
        for c in containers {
            if let Some(stack) = stack_of(c.labels.as_ref()) {
                let name = first_name(c.names.as_deref()).or(c.id).unwrap_or_default();
                found.push(StackResource {
                    kind: ResourceKind::Container,
                    name,
                    stack,
                });
            }
        }
        found.extend(stack_networks_and_volumes(&self.docker, &filters).await?);
        Ok(found)
    }
}

/// Docker reports container names with a leading `/`.
fn first_name(names: Option<&[String]>) -> Option<String> {
    names?.first().map(|n| n.trim_start_matches('/').to_owned())
}
