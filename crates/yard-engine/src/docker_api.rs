//! What the two backends on the Docker API (`docker` and `swarm`) share:
//! how Docker's errors become the yard's, the labelled networks and
//! volumes a stack owns, what a container event means for a stack, a
//! container's last output, and the readiness probe.

use std::collections::HashMap;
use std::time::Duration;

use bollard::Docker;
use bollard::errors::Error as DockerError;
use bollard::query_parameters::{
    ListNetworksOptionsBuilder, ListVolumesOptionsBuilder, LogsOptionsBuilder,
};
use bytes::Bytes;
use futures::TryStreamExt;
use http_body_util::Empty;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use yard_core::StackName;

use crate::{ContainerChange, Endpoint, EngineError, LABEL_STACK, ResourceKind, StackResource};

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

/// The HTTP client readiness probes go out on.
pub(crate) type ProbeClient = Client<HttpConnector, Empty<Bytes>>;

pub(crate) fn probe_client() -> ProbeClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// `true` when the stack at `endpoint` answers HTTP with a status below
/// 500 within two seconds: a server error is not ready.
pub(crate) async fn answers(client: &ProbeClient, endpoint: &Endpoint) -> bool {
    let Ok(request) = hyper::Request::get(endpoint.url("/"))
        .header(hyper::header::HOST, endpoint.host_header())
        .body(Empty::new())
    else {
        return false;
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(2), client.request(request)).await,
        Ok(Ok(response)) if response.status().as_u16() < 500
    )
}

/// The last lines a container printed, for failure messages.
pub(crate) async fn tail_logs(docker: &Docker, container: &str) -> String {
    let options = LogsOptionsBuilder::new()
        .stdout(true)
        .stderr(true)
        .tail("20")
        .build();
    match docker
        .logs(container, Some(options))
        .try_collect::<Vec<_>>()
        .await
    {
        Ok(lines) => lines.iter().map(ToString::to_string).collect::<String>(),
        Err(e) => format!("(logs unavailable: {e})"),
    }
}

/// What a container event (`action`, with the container's `attributes`)
/// means for the stack it belongs to, if anything.
pub(crate) fn container_change(
    action: &str,
    attributes: &HashMap<String, String>,
) -> Option<(StackName, ContainerChange)> {
    let stack = StackName::from_trusted(attributes.get(LABEL_STACK)?.as_str());
    let change = match action {
        "start" => ContainerChange::Started,
        "kill" => ContainerChange::Signalled(attributes.get("signal").cloned().unwrap_or_default()),
        "oom" => ContainerChange::OutOfMemory,
        "die" => ContainerChange::Died {
            code: attributes
                .get("exitCode")
                .and_then(|c| c.parse().ok())
                .unwrap_or_default(),
        },
        "destroy" => ContainerChange::Removed,
        "health_status: healthy" => ContainerChange::Health(true),
        "health_status: unhealthy" => ContainerChange::Health(false),
        _ => return None,
    };
    Some((stack, change))
}
