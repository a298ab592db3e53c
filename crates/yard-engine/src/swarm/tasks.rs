//! Reading a service's tasks: which one is current, where it answers, what
//! the stacks are doing in one look, and the engine's events narrowed to
//! this instance's stacks.
//!
//! A service keeps a short history of tasks (Swarm's default is five per
//! slot): the ones that failed or were replaced stay, with a desired state
//! of `shutdown`. The current task is the one Swarm wants running; during
//! a start-first update there are two, and the newer one is the update's.

use std::collections::HashMap;

use bollard::models::{
    ContainerSummaryStateEnum, EventMessage, EventMessageTypeEnum, Task, TaskState,
};
use bollard::query_parameters::{EventsOptionsBuilder, ListContainersOptionsBuilder};
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use yard_core::StackName;

use super::{SwarmEngine, backend};
use crate::docker_api::container_change;
use crate::{EngineError, LABEL_INSTANCE, LABEL_MANAGED, LABEL_STACK, StackEvent, StackState};

/// A sortable key for a timestamp as Docker writes it (RFC 3339 in UTC,
/// with up to nine fractional digits, which it trims): the fraction padded
/// to nine digits, so text order is time order.
pub(super) fn time_key(at: &str) -> String {
    let at = at.trim_end_matches('Z');
    let (whole, fraction) = at.split_once('.').unwrap_or((at, ""));
    format!("{whole}.{fraction:0<9}")
}

fn created(task: &Task) -> String {
    task.created_at.as_deref().map(time_key).unwrap_or_default()
}

fn state(task: &Task) -> Option<TaskState> {
    task.status.as_ref().and_then(|s| s.state)
}

/// The newest task of all, whatever its state.
pub(super) fn newest(tasks: &[Task]) -> Option<&Task> {
    tasks.iter().max_by_key(|t| created(t))
}

/// The newest task that runs and that Swarm wants running: where the stack
/// answers now. A task being replaced has a desired state of `shutdown`
/// while it still runs; it is not asked for.
pub(super) fn newest_running(tasks: &[Task]) -> Option<&Task> {
    tasks
        .iter()
        .filter(|t| {
            state(t) == Some(TaskState::RUNNING) && t.desired_state == Some(TaskState::RUNNING)
        })
        .max_by_key(|t| created(t))
}

/// The task a client should go to now: the current one ([`newest_running`]),
/// or else a task still running while Swarm stops it, which answers until
/// it is gone (when a new task that failed at once made Swarm stop the old
/// one, say, until the rollback's task runs).
pub(super) fn serving(tasks: &[Task]) -> Option<&Task> {
    newest_running(tasks).or_else(|| {
        tasks
            .iter()
            .filter(|t| state(t) == Some(TaskState::RUNNING))
            .max_by_key(|t| created(t))
    })
}

/// The newest task that failed to run (it exited with an error, or no node
/// would take it).
pub(super) fn newest_failure(tasks: &[Task]) -> Option<&Task> {
    tasks
        .iter()
        .filter(|t| matches!(state(t), Some(TaskState::FAILED | TaskState::REJECTED)))
        .max_by_key(|t| created(t))
}

/// The id of the container a task runs (or ran) in.
pub(super) fn container_id(task: &Task) -> Option<&str> {
    task.status
        .as_ref()?
        .container_status
        .as_ref()?
        .container_id
        .as_deref()
        .filter(|id| !id.is_empty())
}

/// The host port a task publishes `target` on. Docker 20.10 publishes
/// IPv4 and IPv6 on ports of their own, IPv4's first: the first is the one
/// `127.0.0.1` reaches.
pub(super) fn published_port(task: &Task, target: u16) -> Option<u16> {
    task.status
        .as_ref()?
        .port_status
        .as_ref()?
        .ports
        .as_ref()?
        .iter()
        .filter(|p| p.target_port == Some(i64::from(target)))
        .find_map(|p| u16::try_from(p.published_port?).ok().filter(|&p| p != 0))
}

/// Whether a failed task's container ran and exited with an error: the
/// stack's own doing, which trying again will not mend. A task whose
/// container could not start (a host port taken between the engine
/// picking and binding it, say) is the engine's, and Swarm tries again.
pub(super) fn crashed(task: &Task) -> bool {
    let Some(status) = task.status.as_ref() else {
        return false;
    };
    let code = status
        .container_status
        .as_ref()
        .and_then(|c| c.exit_code)
        .unwrap_or_default();
    let not_started = status
        .err
        .as_deref()
        .is_some_and(|err| err.starts_with("starting container failed"));
    state(task) == Some(TaskState::FAILED) && code != 0 && !not_started
}

/// Swarm is still bringing the task up (or restarting it after a delay).
pub(super) fn in_progress(task: &Task) -> bool {
    matches!(
        state(task),
        Some(
            TaskState::NEW
                | TaskState::ALLOCATED
                | TaskState::PENDING
                | TaskState::ASSIGNED
                | TaskState::ACCEPTED
                | TaskState::PREPARING
                | TaskState::READY
                | TaskState::STARTING
        )
    )
}

impl SwarmEngine {
    /// Every stack's state in one look: one service listing, one task
    /// listing, and one container listing for health verdicts.
    pub(super) async fn states(&self) -> Result<Vec<(StackName, StackState)>, EngineError> {
        let services = self.services(None).await?;
        if services.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<String> = services.iter().filter_map(|s| s.id.clone()).collect();
        let filters = HashMap::from([("service", ids)]);
        let tasks = self
            .docker
            .list_tasks(Some(
                bollard::query_parameters::ListTasksOptionsBuilder::new()
                    .filters(&filters)
                    .build(),
            ))
            .await
            .map_err(|e| backend("listing the stacks' tasks", e))?;
        let health = self.container_health_verdicts().await?;
        let mut states = Vec::with_capacity(services.len());
        for service in &services {
            let Some(stack) = service
                .spec
                .as_ref()
                .and_then(|s| s.labels.as_ref())
                .and_then(|l| l.get(LABEL_STACK))
                .map(|s| StackName::from_trusted(s.as_str()))
            else {
                continue;
            };
            let own: Vec<Task> = tasks
                .iter()
                .filter(|t| t.service_id.is_some() && t.service_id == service.id)
                .cloned()
                .collect();
            if let Some(task) = serving(&own) {
                let id = container_id(task)
                    .or(task.id.as_deref())
                    .unwrap_or_default()
                    .to_owned();
                states.push((
                    stack,
                    StackState::Running {
                        healthy: health.get(&id).copied().flatten(),
                        id,
                        attached: true,
                        endpoint: self.endpoint_of(service, task),
                    },
                ));
                continue;
            }
            let Some(task) = newest(&own) else {
                // No task at all: Swarm has not scheduled one yet.
                continue;
            };
            let id = container_id(task)
                .or(task.id.as_deref())
                .unwrap_or_default()
                .to_owned();
            let state = if in_progress(task) {
                // Swarm is (re)starting it: up, but not answering yet.
                StackState::Running {
                    id,
                    healthy: None,
                    attached: true,
                    endpoint: None,
                }
            } else {
                let status = task.status.clone().unwrap_or_default();
                // Whether the kernel killed it for memory is only in its
                // container's inspection, when the container is on this
                // node.
                let oom = match container_id(task) {
                    Some(container) => self.oom_killed(container).await,
                    None => false,
                };
                StackState::Exited {
                    id,
                    code: status
                        .container_status
                        .and_then(|c| c.exit_code)
                        .unwrap_or_default(),
                    oom,
                    finished: status.timestamp,
                }
            };
            states.push((stack, state));
        }
        Ok(states)
    }

    async fn oom_killed(&self, container: &str) -> bool {
        match self.docker.inspect_container(container, None).await {
            Ok(inspected) => inspected.state.and_then(|s| s.oom_killed).unwrap_or(false),
            Err(_) => false,
        }
    }

    /// The health verdict of every running task container of this
    /// instance on this node, by container id: `None` for an image
    /// without a health check.
    async fn container_health_verdicts(
        &self,
    ) -> Result<HashMap<String, Option<bool>>, EngineError> {
        let filters = self.config.filters(None);
        let containers = self
            .docker
            .list_containers(Some(
                ListContainersOptionsBuilder::new()
                    .filters(&filters)
                    .build(),
            ))
            .await
            .map_err(|e| backend("listing the stacks' containers", e))?;
        Ok(containers
            .into_iter()
            .filter(|c| c.state == Some(ContainerSummaryStateEnum::RUNNING))
            .filter_map(|c| {
                let status = c.status.unwrap_or_default();
                let verdict = if status.contains("(unhealthy)") {
                    Some(false)
                } else if status.contains("(healthy)") {
                    Some(true)
                } else {
                    None
                };
                Some((c.id?, verdict))
            })
            .collect())
    }

    /// The engine's events about this instance's task containers (the same
    /// changes the docker backend reports), and a prompt to look again
    /// whenever one of its services changes (an update, a rollback, a
    /// removal).
    pub(super) fn events(&self) -> BoxStream<'static, Result<StackEvent, EngineError>> {
        let containers = HashMap::from([
            ("type", vec!["container".to_owned()]),
            (
                "label",
                vec![
                    format!("{LABEL_MANAGED}=true"),
                    format!("{LABEL_INSTANCE}={}", self.config.instance),
                    LABEL_STACK.to_owned(),
                ],
            ),
        ]);
        // Service events carry the service's name, not its labels.
        let services = HashMap::from([("type", vec!["service".to_owned()])]);
        let prefix = format!("agentyard-{}-", self.config.instance);
        let feed = |filters: HashMap<&'static str, Vec<String>>| {
            self.docker
                .events(Some(EventsOptionsBuilder::new().filters(&filters).build()))
                .map_err(|e| backend("following the engine's events", e))
        };
        futures::stream::select(feed(containers), feed(services))
            .try_filter_map(move |message| {
                let event = stack_event(message, &prefix);
                async move { Ok(event) }
            })
            .boxed()
    }
}

/// The event an engine message means for stacks, if any; `prefix` starts
/// the names of this instance's services.
fn stack_event(message: EventMessage, prefix: &str) -> Option<StackEvent> {
    let action = message.action?;
    let attributes = message
        .actor
        .as_ref()?
        .attributes
        .clone()
        .unwrap_or_default();
    match message.typ? {
        EventMessageTypeEnum::SERVICE => attributes
            .get("name")
            .is_some_and(|name| name.starts_with(prefix))
            .then_some(StackEvent::Network),
        EventMessageTypeEnum::CONTAINER => {
            let (stack, change) = container_change(&action, &attributes)?;
            Some(StackEvent::Container {
                stack,
                id: message.actor?.id?,
                change,
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ContainerChange;
    use bollard::models::{
        ContainerStatus, EndpointPortConfig, EventActor, PortStatus, TaskStatus,
    };

    fn task(id: &str, created: &str, state: TaskState, desired: TaskState) -> Task {
        Task {
            id: Some(id.to_owned()),
            created_at: Some(created.to_owned()),
            desired_state: Some(desired),
            status: Some(TaskStatus {
                state: Some(state),
                container_status: Some(ContainerStatus {
                    container_id: Some(format!("c-{id}")),
                    ..Default::default()
                }),
                port_status: Some(PortStatus {
                    ports: Some(vec![EndpointPortConfig {
                        target_port: Some(8080),
                        published_port: Some(30000),
                        ..Default::default()
                    }]),
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn timestamps_sort_whatever_their_fractions() {
        assert!(time_key("2026-12-02T03:41:15.9Z") > time_key("2026-12-02T03:41:15.10Z"));
        assert!(time_key("2026-12-02T03:41:16Z") > time_key("2026-12-02T03:41:15.999999999Z"));
    }

    #[test]
    fn the_current_task_is_the_newest_one_swarm_wants_running() {
        let old = task(
            "old",
            "2026-12-02T03:41:15.5Z",
            TaskState::RUNNING,
            TaskState::SHUTDOWN,
        );
        let new = task(
            "new",
            "2026-12-02T03:41:20.25Z",
            TaskState::RUNNING,
            TaskState::RUNNING,
        );
        let failed = task(
            "failed",
            "2026-12-02T03:41:21Z",
            TaskState::FAILED,
            TaskState::SHUTDOWN,
        );
        let tasks = [old.clone(), new, failed];
        assert_eq!(
            newest_running(&tasks).and_then(|t| t.id.as_deref()),
            Some("new")
        );
        assert_eq!(
            newest_failure(&tasks).and_then(|t| t.id.as_deref()),
            Some("failed")
        );
        assert_eq!(newest(&tasks).and_then(container_id), Some("c-failed"));
        assert_eq!(
            newest_running(std::slice::from_ref(&old)),
            None,
            "being replaced"
        );
        assert_eq!(
            serving(&[old]).and_then(|t| t.id.as_deref()),
            Some("old"),
            "it answers until it is gone"
        );
        assert_eq!(published_port(&tasks[1], 8080), Some(30000));
        assert_eq!(published_port(&tasks[1], 80), None);
    }

    #[test]
    fn engine_messages_become_stack_events() {
        let message = |typ, action: &str, attributes: &[(&str, &str)]| EventMessage {
            typ: Some(typ),
            action: Some(action.to_owned()),
            actor: Some(EventActor {
                id: Some("x1".to_owned()),
                attributes: Some(
                    attributes
                        .iter()
                        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                        .collect(),
                ),
            }),
            ..Default::default()
        };
        let prefix = "agentyard-i1-";
        let died = message(
            EventMessageTypeEnum::CONTAINER,
            "die",
            &[(LABEL_STACK, "alice"), ("exitCode", "3")],
        );
        assert_eq!(
            stack_event(died, prefix),
            Some(StackEvent::Container {
                stack: StackName::from_trusted("alice"),
                id: "x1".to_owned(),
                change: ContainerChange::Died { code: 3 },
            })
        );
        let ours = message(
            EventMessageTypeEnum::SERVICE,
            "update",
            &[("name", "agentyard-i1-alice")],
        );
        assert_eq!(stack_event(ours, prefix), Some(StackEvent::Network));
        let theirs = message(
            EventMessageTypeEnum::SERVICE,
            "update",
            &[("name", "agentyard-i2-alice")],
        );
        assert_eq!(stack_event(theirs, prefix), None);
    }
}
