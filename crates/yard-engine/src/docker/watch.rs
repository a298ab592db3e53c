//! Watching stacks on the docker backend: one look at all of them (a
//! single container listing, plus an inspection for each stopped one), and
//! the engine's event feed narrowed to this instance's stack containers and
//! to the network they share.

use std::collections::HashMap;

use bollard::models::{ContainerSummaryStateEnum, EventMessage, EventMessageTypeEnum};
use bollard::query_parameters::EventsOptionsBuilder;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use yard_core::StackName;

use super::{DockerEngine, LABEL_PORT, backend, status};
use crate::docker_api::container_change;
use crate::{EngineError, LABEL_INSTANCE, LABEL_MANAGED, LABEL_STACK, StackEvent, StackState};

impl DockerEngine {
    pub(super) async fn states(&self) -> Result<Vec<(StackName, StackState)>, EngineError> {
        let containers = self
            .containers(&self.filters(None), "listing the stacks' containers")
            .await?;
        let mut states = Vec::with_capacity(containers.len());
        for container in containers {
            let labels = container.labels.unwrap_or_default();
            let (Some(stack), Some(id)) = (labels.get(LABEL_STACK), container.id) else {
                continue;
            };
            let stack = StackName::from_trusted(stack.as_str());
            let up = matches!(
                container.state,
                Some(
                    ContainerSummaryStateEnum::RUNNING
                        | ContainerSummaryStateEnum::RESTARTING
                        | ContainerSummaryStateEnum::PAUSED
                )
            );
            if up {
                let status = container.status.unwrap_or_default();
                let healthy = if status.contains("(unhealthy)") {
                    Some(false)
                } else if status.contains("(healthy)") {
                    Some(true)
                } else {
                    None
                };
                let attached = container
                    .network_settings
                    .and_then(|n| n.networks)
                    .is_some_and(|networks| networks.keys().any(|n| n != "none"));
                let port: Option<u16> = labels.get(LABEL_PORT).and_then(|p| p.parse().ok());
                let endpoint = container
                    .ports
                    .unwrap_or_default()
                    .into_iter()
                    .find(|p| Some(p.private_port) == port && p.public_port.is_some())
                    .and_then(|p| p.public_port)
                    .map(|public| self.endpoint_at(public));
                states.push((
                    stack,
                    StackState::Running {
                        id,
                        healthy,
                        attached,
                        endpoint,
                    },
                ));
                continue;
            }
            // A stopped one: how it ended is only in its inspection.
            match self.docker.inspect_container(&id, None).await {
                Ok(inspected) => {
                    let state = inspected.state.unwrap_or_default();
                    states.push((
                        stack,
                        StackState::Exited {
                            id,
                            code: state.exit_code.unwrap_or_default(),
                            oom: state.oom_killed.unwrap_or(false),
                            finished: state.finished_at,
                        },
                    ));
                }
                Err(e) if status(&e) == Some(404) => {}
                Err(e) => return Err(backend("inspecting a stopped stack", e)),
            }
        }
        Ok(states)
    }

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
        let networks = HashMap::from([
            ("type", vec!["network".to_owned()]),
            ("network", vec![self.stacks_network()]),
        ]);
        let feed = |filters: HashMap<&'static str, Vec<String>>| {
            self.docker
                .events(Some(EventsOptionsBuilder::new().filters(&filters).build()))
                .map_err(|e| backend("following the engine's events", e))
        };
        futures::stream::select(feed(containers), feed(networks))
            .try_filter_map(|message| async move { Ok(stack_event(message)) })
            .boxed()
    }
}

/// The event an engine message means for stacks, if any.
fn stack_event(message: EventMessage) -> Option<StackEvent> {
    let action = message.action?;
    let actor = message.actor?;
    match message.typ? {
        EventMessageTypeEnum::NETWORK => {
            matches!(action.as_str(), "disconnect" | "destroy").then_some(StackEvent::Network)
        }
        EventMessageTypeEnum::CONTAINER => {
            let attributes = actor.attributes.unwrap_or_default();
            let (stack, change) = container_change(&action, &attributes)?;
            Some(StackEvent::Container {
                stack,
                id: actor.id?,
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
    use bollard::models::EventActor;

    fn message(
        typ: EventMessageTypeEnum,
        action: &str,
        attributes: &[(&str, &str)],
    ) -> EventMessage {
        EventMessage {
            typ: Some(typ),
            action: Some(action.to_owned()),
            actor: Some(EventActor {
                id: Some("c1".to_owned()),
                attributes: Some(
                    attributes
                        .iter()
                        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                        .collect(),
                ),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn engine_messages_become_stack_events() {
        let died = message(
            EventMessageTypeEnum::CONTAINER,
            "die",
            &[(LABEL_STACK, "alice"), ("exitCode", "137")],
        );
        assert_eq!(
            stack_event(died),
            Some(StackEvent::Container {
                stack: StackName::from_trusted("alice"),
                id: "c1".to_owned(),
                change: ContainerChange::Died { code: 137 }
            })
        );
        let unhealthy = message(
            EventMessageTypeEnum::CONTAINER,
            "health_status: unhealthy",
            &[(LABEL_STACK, "alice")],
        );
        assert!(matches!(
            stack_event(unhealthy),
            Some(StackEvent::Container {
                change: ContainerChange::Health(false),
                ..
            })
        ));
        let agent = message(
            EventMessageTypeEnum::CONTAINER,
            "die",
            &[("agentyard.agent", "x")],
        );
        assert_eq!(stack_event(agent), None, "not a stack");
        let gone = message(EventMessageTypeEnum::NETWORK, "destroy", &[]);
        assert_eq!(stack_event(gone), Some(StackEvent::Network));
        let exec = message(
            EventMessageTypeEnum::CONTAINER,
            "exec_start: sh",
            &[(LABEL_STACK, "alice")],
        );
        assert_eq!(stack_event(exec), None);
    }
}
