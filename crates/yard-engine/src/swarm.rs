//! The `swarm` backend: stacks as Docker Swarm services, driven through the
//! Docker API of a swarm manager.
//!
//! A stack is one replicated service with one replica, named
//! `agentyard-<instance>-<stack>`, on an overlay network of its own with the
//! same name (attachable, so a yard running in a plain container can join
//! it), with a local data volume `agentyard-<instance>-<stack>-data` when
//! [`SwarmConfig::data_volume`] says so. Everything is labelled like on the
//! docker backend (`agentyard.managed`, `agentyard.instance`,
//! `agentyard.stack`, the operator's extra labels), the service and its task
//! containers alike: the engine's container events then name the stack
//! without a lookup, and the labels, not memory, say what exists.
//!
//! What a service buys over a container is the rolling update
//! ([`SwarmEngine::update_image`]): Swarm starts the new task, watches it for
//! a while, and goes back to the old image by itself when the new one
//! fails. The update order follows the data: a stack with a data volume is
//! updated stop-first, because the old and the new task would otherwise
//! write the same volume at once; a stack without one start-first, so it
//! answers throughout.
//!
//! How the yard reaches a stack is [`SwarmReach`]. On a single node the
//! default, publishing in host mode, works without the yard joining the
//! swarm. On a cluster of several nodes the data volume is the catch: a
//! local volume lives on one node, so a task moved elsewhere would find an
//! empty one. With [`SwarmReach::HostPort`] every task is pinned to the
//! yard's own node, which settles both the port and the volume; with
//! [`SwarmReach::ServiceName`] a cluster needs a volume driver whose volumes
//! follow the task (NFS, a cloud disk), or a placement constraint added by
//! the operator.
//!
//! Confinement is what Swarm can express: memory, CPU and process limits,
//! and the same kept capabilities as the docker backend. Swarm sets no swap
//! limit, and `no-new-privileges` for services needs API 1.44 (Docker 25):
//! it is asked for, and older engines ignore it.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use async_trait::async_trait;
use bollard::Docker;
use bollard::errors::Error as DockerError;
use bollard::models::{
    HealthStatusEnum, LocalNodeState, NetworkConnectRequest, NetworkCreateRequest,
    NetworkDisconnectRequest, Service, Task, VolumeCreateRequest,
};
use bollard::query_parameters::{
    ListContainersOptionsBuilder, ListNetworksOptionsBuilder, ListServicesOptionsBuilder,
    ListTasksOptionsBuilder, ListVolumesOptionsBuilder, RemoveContainerOptionsBuilder,
    RemoveVolumeOptionsBuilder,
};
use futures::stream::BoxStream;
use yard_core::StackName;

mod spec;
mod tasks;
mod update;

use crate::docker_api::{
    ProbeClient, answers, backend, is_unreachable, probe_client, stack_networks_and_volumes,
    status, tail_logs, unavailable,
};
use crate::{
    Endpoint, Engine, EngineError, LABEL_INSTANCE, LABEL_MANAGED, LABEL_STACK, ResourceKind,
    StackEvent, StackResource, StackSpec, StackState, UpdateOutcome, is_reserved_label,
};

/// Label recording the container port a stack listens on, so its endpoint
/// can be found again without the spec (the same key as the docker
/// backend's).
const LABEL_PORT: &str = "agentyard.port";

/// How long removing a network or a volume is retried while the engine
/// still tears down the task that used it.
const RELEASE_WAIT: Duration = Duration::from_secs(20);

/// How the yard reaches a stack's service.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum SwarmReach {
    /// The yard runs on the manager node, outside the swarm's networks (as
    /// `yard serve` on a host does, and the tests here). Each task
    /// publishes the stack port on its node in host mode, on a port the
    /// engine picks, and the yard connects to `127.0.0.1:<that port>`;
    /// tasks are pinned to the yard's node so that address is theirs.
    ///
    /// Not the ingress routing mesh: on some hosts (this one) its ports do
    /// not answer on loopback, and it takes one port per stack on every
    /// node. Not a fixed host port either: two tasks of a service cannot
    /// bind the same port on one node, so a start-first update could never
    /// start its new task. The price of a port per task is that the port
    /// changes when the task does: [`Engine::endpoint`] answers the newest
    /// running task's port, and the yard's router forgets an endpoint that
    /// failed a request and asks again. Host-mode ports are bound on every
    /// interface of the node, not loopback only: firewall them, or use
    /// [`SwarmReach::ServiceName`].
    ///
    /// Docker picks these ports from the kernel's ephemeral range, so now
    /// and then one is taken between its pick and its bind (by an outgoing
    /// connection, or on Docker 20.10 by its separate IPv6 mapping): that
    /// task fails to start and Swarm starts another. `deploy` waits for
    /// it; an update takes it for a failed new image and rolls back.
    #[default]
    HostPort,
    /// The yard runs in a container (`container`, a name or id) on a manager
    /// node. It joins every stack's overlay network, and a stack answers
    /// at `<service name>:<port>` through Swarm's DNS; nothing is
    /// published.
    ServiceName { container: String },
}

/// Where Traefik finds stacks, when a Traefik with its Swarm provider routes
/// to them: each service gets the labels of one router and one service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraefikConfig {
    /// A stack answers at `<stack>.<domain>`.
    pub domain: String,
    /// The entry points its router listens on; empty for Traefik's default.
    pub entrypoints: Vec<String>,
    /// A network Traefik is on, which every stack's service joins too so
    /// Traefik can reach it; `None` when Traefik joins the stacks' own
    /// networks.
    pub network: Option<String>,
}

/// How the swarm backend names, labels and exposes what it makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwarmConfig {
    /// The yard instance id, in every resource's name and labels.
    pub instance: String,
    /// Extra labels put on every resource (operators use them for
    /// attribution; tests use them to find and remove what they made).
    pub extra_labels: BTreeMap<String, String>,
    /// How the yard reaches a stack.
    pub reach: SwarmReach,
    /// Where the stack's data volume is mounted in its container.
    pub data_mount: String,
    /// Whether each stack gets a data volume. With one, updates stop the
    /// old task before starting the new (stop-first): two tasks writing
    /// one volume at once is how data gets corrupted, and most stacks are
    /// not built for it. Without one, the new task starts first and the
    /// stack answers throughout.
    pub data_volume: bool,
    /// Labels for Traefik's Swarm provider, when one routes to stacks.
    pub traefik: Option<TraefikConfig>,
}

impl SwarmConfig {
    /// Host-port reach, a data volume at `/data`, no Traefik, for
    /// `instance`.
    pub fn new(instance: impl Into<String>) -> Self {
        Self {
            instance: instance.into(),
            extra_labels: BTreeMap::new(),
            reach: SwarmReach::HostPort,
            data_mount: "/data".to_owned(),
            data_volume: true,
            traefik: None,
        }
    }

    /// The service's name, and its network's.
    fn service_name(&self, stack: &StackName) -> String {
        format!("agentyard-{}-{}", self.instance, stack)
    }

    fn volume_name(&self, stack: &StackName) -> String {
        format!("{}-data", self.service_name(stack))
    }

    /// The operator's extra labels plus the yard's three.
    fn labels(&self, stack: &StackName) -> HashMap<String, String> {
        let mut labels: HashMap<String, String> = self
            .extra_labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        labels.insert(LABEL_MANAGED.to_owned(), "true".to_owned());
        labels.insert(LABEL_INSTANCE.to_owned(), self.instance.clone());
        labels.insert(LABEL_STACK.to_owned(), stack.to_string());
        labels
    }

    /// `true` when `labels` mark a resource as this instance's, for `stack`.
    fn owns(&self, labels: Option<&HashMap<String, String>>, stack: &StackName) -> bool {
        labels.is_some_and(|l| {
            l.get(LABEL_MANAGED).map(String::as_str) == Some("true")
                && l.get(LABEL_INSTANCE) == Some(&self.instance)
                && l.get(LABEL_STACK).map(String::as_str) == Some(stack.as_str())
        })
    }

    /// Label filters for this instance's stack resources; `stack` narrows
    /// them to one stack.
    fn filters(&self, stack: Option<&StackName>) -> HashMap<&'static str, Vec<String>> {
        let mut labels = vec![
            format!("{LABEL_MANAGED}=true"),
            format!("{LABEL_INSTANCE}={}", self.instance),
        ];
        labels.push(match stack {
            Some(stack) => format!("{LABEL_STACK}={stack}"),
            None => LABEL_STACK.to_owned(),
        });
        HashMap::from([("label", labels)])
    }
}

/// The swarm backend.
#[derive(Debug, Clone)]
pub struct SwarmEngine {
    docker: Docker,
    config: SwarmConfig,
    probe: ProbeClient,
}

impl SwarmEngine {
    /// A client for the engine at `DOCKER_HOST` (default: the local
    /// socket), which should be a swarm manager. Nothing is sent yet, so a
    /// yard can start while Docker is still coming up; [`Engine::ping`]
    /// tells whether it answers and manages a swarm. Extra labels in the
    /// yard's own namespace are refused.
    pub fn connect(config: SwarmConfig) -> Result<Self, EngineError> {
        if let Some(key) = config.extra_labels.keys().find(|k| is_reserved_label(k)) {
            return Err(EngineError::ReservedLabel(key.clone()));
        }
        let docker = Docker::connect_with_defaults().map_err(unavailable)?;
        let probe = probe_client();
        Ok(Self {
            docker,
            config,
            probe,
        })
    }

    /// Whether the engine is a swarm manager, the only kind that takes
    /// services; [`EngineError::NotSwarmManager`] says how to make it one.
    pub async fn check_manager(&self) -> Result<(), EngineError> {
        self.manager_node().await.map(drop)
    }

    /// The id of the manager node the engine runs, which tasks are pinned
    /// to when the yard reaches them through host ports.
    async fn manager_node(&self) -> Result<String, EngineError> {
        let info = self.docker.info().await.map_err(unavailable)?;
        let swarm = info.swarm.unwrap_or_default();
        let manager = swarm.local_node_state == Some(LocalNodeState::ACTIVE)
            && swarm.control_available == Some(true);
        match swarm.node_id.filter(|id| manager && !id.is_empty()) {
            Some(id) => Ok(id),
            None => Err(EngineError::NotSwarmManager),
        }
    }

    /// The stack's service, if it exists; an error if the name is taken by
    /// a service that is not ours.
    async fn inspect_own_service(&self, stack: &StackName) -> Result<Option<Service>, EngineError> {
        let name = self.config.service_name(stack);
        match self.docker.inspect_service(&name, None).await {
            Ok(service) => {
                let spec = service.spec.as_ref();
                let same_name = spec.and_then(|s| s.name.as_deref()) == Some(name.as_str());
                if same_name
                    && self
                        .config
                        .owns(spec.and_then(|s| s.labels.as_ref()), stack)
                {
                    Ok(Some(service))
                } else {
                    Err(EngineError::Foreign {
                        kind: ResourceKind::Service,
                        name,
                    })
                }
            }
            Err(e) if status(&e) == Some(404) => Ok(None),
            Err(e) => Err(backend("inspecting the stack service", e)),
        }
    }

    /// Every task the service has, current and past (Swarm keeps a few).
    async fn tasks_of(&self, service_id: &str) -> Result<Vec<Task>, EngineError> {
        let filters = HashMap::from([("service", vec![service_id.to_owned()])]);
        self.docker
            .list_tasks(Some(
                ListTasksOptionsBuilder::new().filters(&filters).build(),
            ))
            .await
            .map_err(|e| backend("listing the stack's tasks", e))
    }

    /// Every service of this instance (`stack` narrows to one stack's).
    async fn services(&self, stack: Option<&StackName>) -> Result<Vec<Service>, EngineError> {
        let filters = self.config.filters(stack);
        self.docker
            .list_services(Some(
                ListServicesOptionsBuilder::new().filters(&filters).build(),
            ))
            .await
            .map_err(|e| backend("listing the stacks' services", e))
    }

    /// The overlay network a stack's service is on. Attachable, so a yard
    /// in a plain container can join it ([`SwarmReach::ServiceName`]).
    /// Swarm's default address pool (10.0.0.0/8 in /24s) holds tens of
    /// thousands of such networks, unlike the local bridge pools that made
    /// the docker backend share one network.
    async fn ensure_network(&self, stack: &StackName) -> Result<(), EngineError> {
        let name = self.config.service_name(stack);
        match self.docker.inspect_network(&name, None).await {
            Ok(network) if network.name.as_deref() == Some(name.as_str()) => {
                if !self.config.owns(network.labels.as_ref(), stack) {
                    return Err(EngineError::Foreign {
                        kind: ResourceKind::Network,
                        name,
                    });
                }
            }
            // Matched something else by id prefix: the name is free.
            Ok(_) => self.create_network(stack, &name).await?,
            Err(e) if status(&e) == Some(404) => self.create_network(stack, &name).await?,
            Err(e) => return Err(backend("inspecting the stack network", e)),
        }
        if let SwarmReach::ServiceName { container } = &self.config.reach {
            let join = NetworkConnectRequest {
                container: container.clone(),
                endpoint_config: None,
            };
            match self.docker.connect_network(&name, join).await {
                Ok(()) => {
                    tracing::info!(network = %name, %container, "the yard joined the stack network");
                }
                // Already on it: joined by an earlier run of this step.
                Err(e) if status(&e) == Some(403) => {}
                Err(e) => return Err(backend("joining the stack network", e)),
            }
        }
        Ok(())
    }

    async fn create_network(&self, stack: &StackName, name: &str) -> Result<(), EngineError> {
        self.docker
            .create_network(NetworkCreateRequest {
                name: name.to_owned(),
                driver: Some("overlay".to_owned()),
                attachable: Some(true),
                labels: Some(self.config.labels(stack)),
                ..Default::default()
            })
            .await
            .map_err(|e| backend("creating the stack network", e))?;
        tracing::info!(network = %name, %stack, "stack network created");
        Ok(())
    }

    /// The stack's data volume: a local volume, on the node the engine
    /// runs; see the module's notes on clusters.
    async fn ensure_volume(&self, stack: &StackName) -> Result<(), EngineError> {
        let name = self.config.volume_name(stack);
        match self.docker.inspect_volume(&name).await {
            Ok(volume) if self.config.owns(Some(&volume.labels), stack) => return Ok(()),
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
                name: Some(name.clone()),
                labels: Some(self.config.labels(stack)),
                ..Default::default()
            })
            .await
            .map_err(|e| backend("creating the data volume", e))?;
        tracing::info!(volume = %name, %stack, "data volume created");
        Ok(())
    }

    /// Fails with [`EngineError::ImageNotFound`] unless `image` is on the
    /// engine: there may be no registry to pull from, so a service runs
    /// only images its node already has, by the reference given.
    async fn local_image(&self, image: &str) -> Result<bollard::models::ImageInspect, EngineError> {
        match self.docker.inspect_image(image).await {
            Ok(found) => Ok(found),
            Err(e) if status(&e) == Some(404) => Err(EngineError::ImageNotFound {
                image: image.to_owned(),
            }),
            Err(e) => Err(backend("inspecting the stack image", e)),
        }
    }

    /// The port the stack listens on: the configured one, or the image's
    /// lowest exposed TCP port.
    async fn stack_port(&self, spec: &StackSpec) -> Result<u16, EngineError> {
        let image = self.local_image(&spec.image).await?;
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

    /// Where a running task of `service` answers.
    fn endpoint_of(&self, service: &Service, task: &Task) -> Option<Endpoint> {
        let spec = service.spec.as_ref()?;
        let port: u16 = spec.labels.as_ref()?.get(LABEL_PORT)?.parse().ok()?;
        match &self.config.reach {
            SwarmReach::HostPort => {
                tasks::published_port(task, port).map(|p| Endpoint::http(format!("127.0.0.1:{p}")))
            }
            SwarmReach::ServiceName { .. } => {
                Some(Endpoint::http(format!("{}:{port}", spec.name.as_deref()?)))
            }
        }
    }

    /// The verdict of a task container's own health check, when the image
    /// has one and the container is on this node.
    async fn container_health(&self, container: &str) -> Option<HealthStatusEnum> {
        let inspected = self.docker.inspect_container(container, None).await.ok()?;
        inspected.state?.health?.status
    }

    /// Why a failed task failed, with its container's last output when
    /// the container is still on this node.
    async fn failure_message(&self, task: &Task) -> String {
        let status = task.status.clone().unwrap_or_default();
        let why = status
            .err
            .or(status.message)
            .unwrap_or_else(|| "no reason given".to_owned());
        match status.container_status.and_then(|c| c.container_id) {
            Some(container) if !container.is_empty() => {
                let logs = tail_logs(&self.docker, &container).await;
                format!("its task failed ({why}); its last output:\n{logs}")
            }
            _ => format!("its task failed ({why})"),
        }
    }

    /// Force-removes the stack's task containers on this node, so what they
    /// held (the data volume, a network endpoint) is free at once rather
    /// than after Swarm's stop grace period.
    async fn remove_task_containers(&self, stack: &StackName) -> Result<(), EngineError> {
        let filters = self.config.filters(Some(stack));
        let containers = self
            .docker
            .list_containers(Some(
                ListContainersOptionsBuilder::new()
                    .all(true)
                    .filters(&filters)
                    .build(),
            ))
            .await
            .map_err(|e| backend("listing the stack's task containers", e))?;
        for container in containers {
            let id = container.id.unwrap_or_default();
            let force = RemoveContainerOptionsBuilder::new().force(true).build();
            match self.docker.remove_container(&id, Some(force)).await {
                // 409: Swarm is removing it already.
                Ok(()) => {}
                Err(e) if matches!(status(&e), Some(404 | 409)) => {}
                Err(e) => return Err(backend("removing a task container", e)),
            }
        }
        Ok(())
    }

    /// Deletes the service named `service` (id or name); `false` when it was
    /// already gone.
    async fn delete_service(&self, service: &str) -> Result<bool, EngineError> {
        match self.docker.delete_service(service).await {
            Ok(()) => {
                tracing::info!(%service, "stack service removed");
                Ok(true)
            }
            Err(e) if status(&e) == Some(404) => Ok(false),
            Err(e) => Err(backend("removing the stack service", e)),
        }
    }

    /// Waits until no network matches `filters`: a removed overlay network
    /// lingers on the node for a moment after the manager removed it, and
    /// a removal is complete only when nothing is left.
    async fn networks_gone(
        &self,
        filters: &HashMap<&'static str, Vec<String>>,
    ) -> Result<(), EngineError> {
        let deadline = tokio::time::Instant::now() + RELEASE_WAIT;
        loop {
            let left = self
                .docker
                .list_networks(Some(
                    ListNetworksOptionsBuilder::new().filters(filters).build(),
                ))
                .await
                .map_err(|e| backend("listing the stack's networks", e))?;
            if left.is_empty() || tokio::time::Instant::now() >= deadline {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Runs `remove` until it succeeds, the thing is gone (404), or
    /// [`RELEASE_WAIT`] passes: a network or volume stays in use for a
    /// moment after the task that used it was removed.
    async fn remove_released<F, Fut>(
        &self,
        operation: &'static str,
        mut remove: F,
    ) -> Result<bool, EngineError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<(), DockerError>>,
    {
        let deadline = tokio::time::Instant::now() + RELEASE_WAIT;
        loop {
            match remove().await {
                Ok(()) => return Ok(true),
                Err(e) if status(&e) == Some(404) => return Ok(false),
                Err(e) if is_unreachable(&e) || tokio::time::Instant::now() >= deadline => {
                    return Err(backend(operation, e));
                }
                Err(e) => {
                    tracing::debug!(operation, error = %e, "still in use; retrying");
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            }
        }
    }
}

#[async_trait]
impl Engine for SwarmEngine {
    fn backend(&self) -> &'static str {
        "swarm"
    }

    async fn ping(&self) -> Result<(), EngineError> {
        self.docker.ping().await.map_err(unavailable)?;
        self.check_manager().await
    }

    async fn ensure_project(&self, spec: &StackSpec) -> Result<(), EngineError> {
        self.ensure_network(&spec.name).await?;
        if self.config.data_volume {
            self.ensure_volume(&spec.name).await?;
        }
        Ok(())
    }

    /// Creates the service, which in Swarm also starts it: `deploy` then
    /// waits for it.
    async fn ensure_application(&self, spec: &StackSpec) -> Result<(), EngineError> {
        let port = self.stack_port(spec).await?;
        if self.inspect_own_service(&spec.name).await?.is_some() {
            return Ok(());
        }
        let node = match self.config.reach {
            SwarmReach::HostPort => Some(self.manager_node().await?),
            SwarmReach::ServiceName { .. } => None,
        };
        let service = spec::service_spec(&self.config, spec, port, node.as_deref());
        let created = self
            .docker
            .create_service(service, None)
            .await
            .map_err(|e| backend("creating the stack service", e))?;
        for warning in created.warnings.unwrap_or_default() {
            tracing::warn!(stack = %spec.name, %warning, "the engine warned about the service");
        }
        tracing::info!(
            stack = %spec.name,
            service = created.id.as_deref().unwrap_or_default(),
            image = %spec.image,
            port,
            "stack service created"
        );
        Ok(())
    }

    async fn deploy(&self, spec: &StackSpec, timeout: Duration) -> Result<Endpoint, EngineError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut last_failure = None;
        loop {
            let service = self.inspect_own_service(&spec.name).await?.ok_or_else(|| {
                EngineError::NotReady("the service vanished while starting".into())
            })?;
            let tasks = self
                .tasks_of(service.id.as_deref().unwrap_or_default())
                .await?;
            if let Some(task) = tasks::newest_running(&tasks) {
                // An image with its own health check says when it is
                // ready; any other is ready when it answers HTTP below 500.
                let container = tasks::container_id(task);
                let own_check = match container {
                    Some(id) => self.container_health(id).await,
                    None => None,
                };
                if own_check == Some(HealthStatusEnum::UNHEALTHY) {
                    let logs = tail_logs(&self.docker, container.unwrap_or_default()).await;
                    return Err(EngineError::NotReady(format!(
                        "its own health check says it is unhealthy; its last output:\n{logs}"
                    )));
                }
                if let Some(endpoint) = self.endpoint_of(&service, task) {
                    let ready = match own_check {
                        Some(HealthStatusEnum::HEALTHY) => true,
                        Some(HealthStatusEnum::STARTING) => false,
                        _ => answers(&self.probe, &endpoint).await,
                    };
                    if ready {
                        return Ok(endpoint);
                    }
                }
            } else if let Some(failed) = tasks::newest_failure(&tasks) {
                // A stack that crashed is the deployer's to report now,
                // though Swarm would try it again a few times; so is one
                // Swarm gave up on. One the engine could not start, Swarm
                // is trying again: wait for that.
                let retrying = tasks.iter().any(tasks::in_progress);
                if tasks::crashed(failed) || !retrying {
                    return Err(EngineError::NotReady(self.failure_message(failed).await));
                }
                last_failure = Some(failed.clone());
            }
            if tokio::time::Instant::now() >= deadline {
                let why = match &last_failure {
                    Some(failed) => format!("; {}", self.failure_message(failed).await),
                    None => String::new(),
                };
                return Err(EngineError::NotReady(format!(
                    "it did not answer HTTP within {}s{why}",
                    timeout.as_secs()
                )));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn endpoint(&self, name: &StackName) -> Result<Option<Endpoint>, EngineError> {
        let Some(service) = self.inspect_own_service(name).await? else {
            return Ok(None);
        };
        let tasks = self
            .tasks_of(service.id.as_deref().unwrap_or_default())
            .await?;
        Ok(tasks::serving(&tasks).and_then(|task| self.endpoint_of(&service, task)))
    }

    async fn remove_stack(&self, name: &StackName) -> Result<Vec<StackResource>, EngineError> {
        let filters = self.config.filters(Some(name));
        let mut removed = Vec::new();
        // The service first: a network with tasks on it or a volume in use
        // cannot be removed.
        for service in self.services(Some(name)).await? {
            let id = service.id.clone().unwrap_or_default();
            if self.delete_service(&id).await? {
                removed.push(StackResource {
                    kind: ResourceKind::Service,
                    name: service.spec.and_then(|s| s.name).unwrap_or(id),
                    stack: name.clone(),
                });
            }
        }
        self.remove_task_containers(name).await?;
        let networks = self
            .docker
            .list_networks(Some(
                ListNetworksOptionsBuilder::new().filters(&filters).build(),
            ))
            .await
            .map_err(|e| backend("listing the stack's networks", e))?;
        for network in networks {
            let id = network.id.unwrap_or_default();
            if let SwarmReach::ServiceName { container } = &self.config.reach {
                let leave = NetworkDisconnectRequest {
                    container: container.clone(),
                    force: Some(true),
                };
                // Not on it (any more) is as good as leaving.
                let _ = self.docker.disconnect_network(&id, leave).await;
            }
            let gone = self
                .remove_released("removing the stack network", || {
                    self.docker.remove_network(&id)
                })
                .await?;
            if gone {
                removed.push(StackResource {
                    kind: ResourceKind::Network,
                    name: network.name.unwrap_or(id),
                    stack: name.clone(),
                });
            }
        }
        self.networks_gone(&filters).await?;
        let volumes = self
            .docker
            .list_volumes(Some(
                ListVolumesOptionsBuilder::new().filters(&filters).build(),
            ))
            .await
            .map_err(|e| backend("listing the stack's volumes", e))?;
        for volume in volumes.volumes.unwrap_or_default() {
            let gone = self
                .remove_released("removing the data volume", || {
                    let force = RemoveVolumeOptionsBuilder::new().force(true).build();
                    self.docker.remove_volume(&volume.name, Some(force))
                })
                .await?;
            if gone {
                removed.push(StackResource {
                    kind: ResourceKind::Volume,
                    name: volume.name,
                    stack: name.clone(),
                });
            }
        }
        tracing::info!(stack = %name, removed = removed.len(), "stack removed");
        Ok(removed)
    }

    /// Removes the service, keeping network and volume. Returns the id of
    /// the container its current task ran in, since that is what the
    /// engine's container events name (the service's id when it had none).
    async fn remove_application(&self, name: &StackName) -> Result<Option<String>, EngineError> {
        let Some(service) = self.inspect_own_service(name).await? else {
            return Ok(None);
        };
        let id = service.id.unwrap_or_default();
        let tasks = self.tasks_of(&id).await?;
        let container = tasks::newest(&tasks)
            .and_then(tasks::container_id)
            .map(str::to_owned);
        self.delete_service(&id).await?;
        self.remove_task_containers(name).await?;
        Ok(Some(container.unwrap_or(id)))
    }

    async fn stack_resources(&self) -> Result<Vec<StackResource>, EngineError> {
        let filters = self.config.filters(None);
        let stack_of = |labels: Option<&HashMap<String, String>>| {
            labels
                .and_then(|l| l.get(LABEL_STACK))
                .map(|s| StackName::from_trusted(s.as_str()))
        };
        let mut found = Vec::new();
        for service in self.services(None).await? {
            let spec = service.spec.unwrap_or_default();
            if let Some(stack) = stack_of(spec.labels.as_ref()) {
                found.push(StackResource {
                    kind: ResourceKind::Service,
                    name: spec.name.or(service.id).unwrap_or_default(),
                    stack,
                });
            }
        }
        found.extend(stack_networks_and_volumes(&self.docker, &filters).await?);
        Ok(found)
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

    async fn update_image(
        &self,
        name: &StackName,
        image: &str,
        timeout: Duration,
    ) -> Result<UpdateOutcome, EngineError> {
        SwarmEngine::update_image(self, name, image, timeout).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_engine_outside_a_swarm_is_told_how_to_make_one() {
        let refused = DockerError::DockerResponseServerError {
            status_code: 503,
            message: "This node is not a swarm manager. Use \"docker swarm init\" or \"docker swarm join\" to connect this node to swarm and try again.".to_owned(),
        };
        let error = backend("creating the stack service", refused);
        assert!(matches!(error, EngineError::NotSwarmManager), "{error:?}");
        let text = error.to_string();
        assert!(text.contains("docker swarm init"), "{text}");
        assert!(text.contains("DOCKER_HOST"), "{text}");
        let other = DockerError::DockerResponseServerError {
            status_code: 500,
            message: "no space left".to_owned(),
        };
        assert!(matches!(
            backend("creating the stack service", other),
            EngineError::Backend { .. }
        ));
    }
}
