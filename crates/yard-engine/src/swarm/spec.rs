//! What a stack's service is made of: the service spec the swarm backend
//! creates, from the stack's spec and the backend's configuration. Pure, so
//! the choices (update order, restart policy, labels) are tested without an
//! engine.

use std::collections::HashMap;
use std::time::Duration;

use bollard::models::{
    EndpointPortConfig, EndpointPortConfigProtocolEnum, EndpointPortConfigPublishModeEnum,
    EndpointSpec, Limit, Mount, MountType, NetworkAttachmentConfig, ServiceSpec, ServiceSpecMode,
    ServiceSpecModeReplicated, ServiceSpecRollbackConfig,
    ServiceSpecRollbackConfigFailureActionEnum, ServiceSpecRollbackConfigOrderEnum,
    ServiceSpecUpdateConfig, ServiceSpecUpdateConfigFailureActionEnum,
    ServiceSpecUpdateConfigOrderEnum, TaskSpec, TaskSpecContainerSpec,
    TaskSpecContainerSpecPrivileges, TaskSpecPlacement, TaskSpecResources, TaskSpecRestartPolicy,
    TaskSpecRestartPolicyConditionEnum,
};
use yard_core::StackName;

use super::{LABEL_PORT, SwarmConfig, SwarmReach, TraefikConfig};
use crate::{KEPT_CAPABILITIES, StackSpec};

/// How long Swarm watches a new task before it calls an update done: a
/// task that fails within it rolls the update back.
const UPDATE_MONITOR: Duration = Duration::from_secs(5);
/// Between Swarm's restarts of a task that failed.
const RESTART_DELAY: Duration = Duration::from_secs(2);
/// How often Swarm restarts a failing task before it leaves it failed for
/// the yard's health watcher to see and act on by its own policy.
const RESTART_ATTEMPTS: i64 = 3;
/// How long a task's container gets to stop (SIGTERM) before it is killed:
/// enough for a web server to finish the requests it has.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Docker's durations are nanoseconds.
fn nanos(duration: Duration) -> i64 {
    i64::try_from(duration.as_nanos()).unwrap_or(i64::MAX)
}

/// The service that runs `spec`, listening on `port`, pinned to node
/// `node` when given.
pub(super) fn service_spec(
    config: &SwarmConfig,
    spec: &StackSpec,
    port: u16,
    node: Option<&str>,
) -> ServiceSpec {
    let name = config.service_name(&spec.name);
    let mut container_labels = config.labels(&spec.name);
    container_labels.insert(LABEL_PORT.to_owned(), port.to_string());
    let mut service_labels = container_labels.clone();
    let mut networks = vec![NetworkAttachmentConfig {
        target: Some(name.clone()),
        ..Default::default()
    }];
    if let Some(traefik) = &config.traefik {
        service_labels.extend(traefik_labels(traefik, &name, &spec.name, port));
        if let Some(network) = &traefik.network {
            networks.push(NetworkAttachmentConfig {
                target: Some(network.clone()),
                ..Default::default()
            });
        }
    }
    let mounts = config.data_volume.then(|| {
        vec![Mount {
            target: Some(config.data_mount.clone()),
            source: Some(config.volume_name(&spec.name)),
            typ: Some(MountType::VOLUME),
            ..Default::default()
        }]
    });
    let ports = match config.reach {
        // No published port: the engine picks a free one for each task,
        // so an old and a new task can run side by side on one node.
        SwarmReach::HostPort => Some(vec![EndpointPortConfig {
            protocol: Some(EndpointPortConfigProtocolEnum::TCP),
            target_port: Some(i64::from(port)),
            published_port: None,
            publish_mode: Some(EndpointPortConfigPublishModeEnum::HOST),
            name: None,
        }]),
        SwarmReach::ServiceName { .. } => None,
    };
    let start_first = !config.data_volume;
    ServiceSpec {
        name: Some(name),
        labels: Some(service_labels),
        mode: Some(ServiceSpecMode {
            replicated: Some(ServiceSpecModeReplicated { replicas: Some(1) }),
            ..Default::default()
        }),
        task_template: Some(TaskSpec {
            container_spec: Some(TaskSpecContainerSpec {
                image: Some(spec.image.clone()),
                labels: Some(container_labels),
                env: Some(spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
                mounts,
                // Logs stay clean multiplexed streams; nobody types into a
                // stack.
                tty: Some(false),
                stop_grace_period: Some(nanos(STOP_GRACE)),
                capability_drop: Some(vec!["ALL".to_owned()]),
                capability_add: Some(KEPT_CAPABILITIES.map(str::to_owned).to_vec()),
                privileges: Some(TaskSpecContainerSpecPrivileges {
                    no_new_privileges: Some(true),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            resources: Some(TaskSpecResources {
                limits: Some(Limit {
                    nano_cpus: spec.limits.cpus.map(|cpus| (cpus * 1e9) as i64),
                    memory_bytes: spec.limits.memory_bytes,
                    pids: Some(spec.limits.pids),
                }),
                ..Default::default()
            }),
            // Swarm restarts a crashed task a few times, a little apart;
            // after that the task stays failed and the yard's health
            // watcher decides, by its policy, as it does for containers.
            restart_policy: Some(TaskSpecRestartPolicy {
                condition: Some(TaskSpecRestartPolicyConditionEnum::ON_FAILURE),
                delay: Some(nanos(RESTART_DELAY)),
                max_attempts: Some(RESTART_ATTEMPTS),
                window: None,
            }),
            placement: node.map(|node| TaskSpecPlacement {
                constraints: Some(vec![format!("node.id=={node}")]),
                ..Default::default()
            }),
            networks: Some(networks),
            ..Default::default()
        }),
        update_config: Some(ServiceSpecUpdateConfig {
            parallelism: Some(1),
            delay: Some(0),
            failure_action: Some(ServiceSpecUpdateConfigFailureActionEnum::ROLLBACK),
            monitor: Some(nanos(UPDATE_MONITOR)),
            max_failure_ratio: Some(0.0),
            order: Some(if start_first {
                ServiceSpecUpdateConfigOrderEnum::START_FIRST
            } else {
                ServiceSpecUpdateConfigOrderEnum::STOP_FIRST
            }),
        }),
        // Going back is an update too, in the same order; if it fails as
        // well, Swarm stops and the service says so.
        rollback_config: Some(ServiceSpecRollbackConfig {
            parallelism: Some(1),
            delay: Some(0),
            failure_action: Some(ServiceSpecRollbackConfigFailureActionEnum::PAUSE),
            monitor: Some(nanos(UPDATE_MONITOR)),
            max_failure_ratio: Some(0.0),
            order: Some(if start_first {
                ServiceSpecRollbackConfigOrderEnum::START_FIRST
            } else {
                ServiceSpecRollbackConfigOrderEnum::STOP_FIRST
            }),
        }),
        networks: None,
        endpoint_spec: Some(EndpointSpec { mode: None, ports }),
    }
}

/// One Traefik router and service per stack, both named after the stack's
/// service: the router takes `Host(<stack>.<domain>)`, the service sends it
/// to the stack's port.
fn traefik_labels(
    traefik: &TraefikConfig,
    router: &str,
    stack: &StackName,
    port: u16,
) -> HashMap<String, String> {
    let mut labels = HashMap::from([
        ("traefik.enable".to_owned(), "true".to_owned()),
        (
            format!("traefik.http.routers.{router}.rule"),
            format!("Host(`{stack}.{}`)", traefik.domain),
        ),
        (
            format!("traefik.http.routers.{router}.service"),
            router.to_owned(),
        ),
        (
            format!("traefik.http.services.{router}.loadbalancer.server.port"),
            port.to_string(),
        ),
    ]);
    if !traefik.entrypoints.is_empty() {
        labels.insert(
            format!("traefik.http.routers.{router}.entrypoints"),
            traefik.entrypoints.join(","),
        );
    }
    if let Some(network) = &traefik.network {
        // Traefik 2 reads the first, Traefik 3's Swarm provider the second.
        labels.insert("traefik.docker.network".to_owned(), network.clone());
        labels.insert("traefik.swarm.network".to_owned(), network.clone());
    }
    labels
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{LABEL_INSTANCE, LABEL_MANAGED, LABEL_STACK, ResourceLimits};

    fn stack() -> StackSpec {
        StackSpec {
            name: StackName::from_trusted("alice"),
            image: "web:1".to_owned(),
            port: None,
            env: vec![("A".to_owned(), "1".to_owned())],
            limits: ResourceLimits::STACK_DEFAULT,
        }
    }

    fn order(spec: &ServiceSpec) -> Option<ServiceSpecUpdateConfigOrderEnum> {
        spec.update_config.as_ref().and_then(|u| u.order)
    }

    #[test]
    fn a_stack_with_data_stops_first_and_one_without_starts_first() {
        let mut config = SwarmConfig::new("i1");
        let with_data = service_spec(&config, &stack(), 8080, Some("node1"));
        assert_eq!(
            order(&with_data),
            Some(ServiceSpecUpdateConfigOrderEnum::STOP_FIRST)
        );
        let task = with_data.task_template.clone().unwrap_or_default();
        let mounts = task
            .container_spec
            .and_then(|c| c.mounts)
            .unwrap_or_default();
        assert_eq!(mounts.len(), 1);
        assert_eq!(mounts[0].source.as_deref(), Some("agentyard-i1-alice-data"));
        assert_eq!(
            task.placement.and_then(|p| p.constraints),
            Some(vec!["node.id==node1".to_owned()])
        );

        config.data_volume = false;
        let without = service_spec(&config, &stack(), 8080, None);
        assert_eq!(
            order(&without),
            Some(ServiceSpecUpdateConfigOrderEnum::START_FIRST)
        );
        let update = without.update_config.unwrap_or_default();
        assert_eq!(
            update.failure_action,
            Some(ServiceSpecUpdateConfigFailureActionEnum::ROLLBACK)
        );
        let container = without
            .task_template
            .and_then(|t| t.container_spec)
            .unwrap_or_default();
        assert_eq!(container.mounts, None);
    }

    #[test]
    fn services_and_their_containers_carry_the_labels_and_the_port() {
        let mut config = SwarmConfig::new("i1");
        config
            .extra_labels
            .insert("team".to_owned(), "red".to_owned());
        let spec = service_spec(&config, &stack(), 8080, None);
        assert_eq!(spec.name.as_deref(), Some("agentyard-i1-alice"));
        let container = spec
            .task_template
            .as_ref()
            .and_then(|t| t.container_spec.clone())
            .unwrap_or_default();
        for labels in [
            spec.labels.clone().unwrap_or_default(),
            container.labels.unwrap_or_default(),
        ] {
            assert_eq!(labels.get(LABEL_MANAGED).map(String::as_str), Some("true"));
            assert_eq!(labels.get(LABEL_INSTANCE).map(String::as_str), Some("i1"));
            assert_eq!(labels.get(LABEL_STACK).map(String::as_str), Some("alice"));
            assert_eq!(labels.get(LABEL_PORT).map(String::as_str), Some("8080"));
            assert_eq!(labels.get("team").map(String::as_str), Some("red"));
        }
        let ports = spec.endpoint_spec.and_then(|e| e.ports).unwrap_or_default();
        assert_eq!(ports.len(), 1);
        assert_eq!(
            ports[0].publish_mode,
            Some(EndpointPortConfigPublishModeEnum::HOST)
        );
        assert_eq!(ports[0].published_port, None, "the engine picks one");
    }

    #[test]
    fn traefik_gets_a_router_for_the_stacks_host() {
        let mut config = SwarmConfig::new("i1");
        config.reach = SwarmReach::ServiceName {
            container: "yard".to_owned(),
        };
        config.traefik = Some(TraefikConfig {
            domain: "yard.example".to_owned(),
            entrypoints: vec!["web".to_owned()],
            network: Some("proxy".to_owned()),
        });
        let spec = service_spec(&config, &stack(), 3000, None);
        let labels = spec.labels.clone().unwrap_or_default();
        let get = |k: &str| labels.get(k).map(String::as_str);
        assert_eq!(get("traefik.enable"), Some("true"));
        assert_eq!(
            get("traefik.http.routers.agentyard-i1-alice.rule"),
            Some("Host(`alice.yard.example`)")
        );
        assert_eq!(
            get("traefik.http.services.agentyard-i1-alice.loadbalancer.server.port"),
            Some("3000")
        );
        assert_eq!(
            get("traefik.http.routers.agentyard-i1-alice.entrypoints"),
            Some("web")
        );
        let networks = spec
            .task_template
            .and_then(|t| t.networks)
            .unwrap_or_default();
        let targets: Vec<_> = networks
            .iter()
            .filter_map(|n| n.target.as_deref())
            .collect();
        assert_eq!(targets, ["agentyard-i1-alice", "proxy"]);
        assert_eq!(
            spec.endpoint_spec.and_then(|e| e.ports),
            None,
            "nothing published when the yard joins the networks"
        );
    }
}
