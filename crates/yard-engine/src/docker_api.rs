//! What the two backends on the Docker API (`docker` and `swarm`) share:
//! how Docker's errors become the yard's, and the labelled networks and
//! volumes a stack owns.

use std::collections::HashMap;

use bollard::Docker;
use bollard::errors::Error as DockerError;
use bollard::query_parameters::{ListNetworksOptionsBuilder, ListVolumesOptionsBuilder};
use yard_core::StackName;

use crate::{EngineError, LABEL_STACK, ResourceKind, StackResource};

/// The HTTP status of Docker's refusal, if it was one.
pub(crate) fn status(e: &DockerError) -> Option<u16> {
    match e {
        DockerError::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

/// Connection-level failures mean the engine is unreachable; the rest are
/// the engine refusing an operation.
pub(crate) fn is_unreachable(e: &DockerError) -> bool {
    matches!(
        e,
        DockerError::SocketNotFoundError(_)
            | DockerError::HyperLegacyError { .. }
            | DockerError::HyperResponseError { .. }
            | DockerError::IOError { .. }
            | DockerError::RequestTimeoutError
            | DockerError::UnsupportedURISchemeError { .. }
    )
}

pub(crate) fn unavailable(e: DockerError) -> EngineError {
    EngineError::Unavailable(format!(
        "the Docker engine ({e}); is Docker running, and is DOCKER_HOST right?"
    ))
}

/// The engine's refusal of `operation`, worded for the operator: an
/// unreachable engine is [`EngineError::Unavailable`], and an engine that
/// is not a swarm manager (refusing every service and task call alike)
/// gets its own error with what to do about it.
pub(crate) fn backend(operation: &'static str, e: DockerError) -> EngineError {
    if is_unreachable(&e) {
        return unavailable(e);
    }
    let message = match e {
        DockerError::DockerResponseServerError { message, .. } => message,
        other => other.to_string(),
    };
    if message.contains("not a swarm manager") {
        return EngineError::NotSwarmManager;
    }
    EngineError::Backend { operation, message }
}

/// The networks and volumes `filters` select that name a stack.
pub(crate) async fn stack_networks_and_volumes(
    docker: &Docker,
    filters: &HashMap<&'static str, Vec<String>>,
) -> Result<Vec<StackResource>, EngineError> {
    let stack_of = |labels: Option<&HashMap<String, String>>| {
        labels
            .and_then(|l| l.get(LABEL_STACK))
            .map(|s| StackName::from_trusted(s.as_str()))
    };
    let mut found = Vec::new();
    let networks = docker
        .list_networks(Some(
            ListNetworksOptionsBuilder::new().filters(filters).build(),
        ))
        .await
        .map_err(|e| backend("listing networks", e))?;
    for n in networks {
        if let Some(stack) = stack_of(n.labels.as_ref()) {
            found.push(StackResource {
                kind: ResourceKind::Network,
                name: n.name.or(n.id).unwrap_or_default(),
                stack,
            });
        }
    }
    let volumes = docker
        .list_volumes(Some(
            ListVolumesOptionsBuilder::new().filters(filters).build(),
        ))
        .await
        .map_err(|e| backend("listing volumes", e))?;
    for v in volumes.volumes.unwrap_or_default() {
        if let Some(stack) = stack_of(Some(&v.labels)) {
            found.push(StackResource {
                kind: ResourceKind::Volume,
                name: v.name,
                stack,
            });
        }
    }
    Ok(found)
}
