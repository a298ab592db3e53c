//! Agent containers on the docker backend.
//!
//! An agent is one container named `agentyard-<instance>-agent-<id>`,
//! labelled with the instance and the agent id, created with stdin open (for
//! `yard attach`) but no TTY, so its logs stay clean multiplexed streams.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use bollard::errors::Error as DockerError;
use bollard::models::{ContainerCreateBody, HostConfig, Mount, MountType, VolumeCreateRequest};
use bollard::query_parameters::{
    AttachContainerOptionsBuilder, BuildImageOptionsBuilder, CreateContainerOptionsBuilder,
    LogsOptionsBuilder, RemoveContainerOptionsBuilder, ResizeContainerTTYOptionsBuilder,
    StopContainerOptionsBuilder,
};
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use yard_core::AgentId;

use super::{DockerEngine, backend, confined, status};
use crate::{
    AgentIo, AgentRuntime, AgentSpec, EngineError, LABEL_AGENT, LABEL_INSTANCE, LABEL_MANAGED,
    MountSource,
};

/// Label on shared cache volumes.
const LABEL_CACHE: &str = "agentyard.cache";

impl DockerEngine {
    fn agent_container(&self, id: &AgentId) -> String {
        format!("agentyard-{}-agent-{id}", self.config.instance)
    }

    fn agent_labels(&self, id: &AgentId) -> HashMap<String, String> {
        let mut labels = self.base_labels();
        labels.insert(LABEL_INSTANCE.to_owned(), self.config.instance.clone());
        labels.insert(LABEL_AGENT.to_owned(), id.to_string());
        labels
    }

    fn agent_filters(&self) -> HashMap<&'static str, Vec<String>> {
        HashMap::from([(
            "label",
            vec![
                format!("{LABEL_MANAGED}=true"),
                format!("{LABEL_INSTANCE}={}", self.config.instance),
                LABEL_AGENT.to_owned(),
            ],
        )])
    }
}

#[async_trait]
impl AgentRuntime for DockerEngine {
    async fn image_exists(&self, image: &str) -> Result<bool, EngineError> {
        match self.docker.inspect_image(image).await {
            Ok(_) => Ok(true),
            Err(e) if status(&e) == Some(404) => Ok(false),
            Err(e) => Err(backend("inspecting the agent image", e)),
        }
    }

    async fn build_image(&self, tag: &str, context: &std::path::Path) -> Result<(), EngineError> {
        let context = context.to_owned();
        let archive = tokio::task::spawn_blocking(move || {
            let mut archive = tar::Builder::new(Vec::new());
            archive.follow_symlinks(false);
            archive.append_dir_all(".", &context)?;
            archive.into_inner()
        })
        .await
        .map_err(|e| EngineError::Backend {
            operation: "packing the image's build context",
            message: e.to_string(),
        })?
        .map_err(|e| EngineError::Backend {
            operation: "packing the image's build context",
            message: e.to_string(),
        })?;
        let options = BuildImageOptionsBuilder::default()
            .t(tag)
            .dockerfile("Dockerfile")
            .rm(true)
            .forcerm(true)
            .build();
        let mut progress =
            self.docker
                .build_image(options, None, Some(bollard::body_full(archive.into())));
        while let Some(step) = progress.next().await {
            let step = step.map_err(|e| backend("building an image", e))?;
            if let Some(detail) = step.error_detail {
                return Err(EngineError::Backend {
                    operation: "building an image",
                    message: detail
                        .message
                        .unwrap_or_else(|| "the build failed".to_owned()),
                });
            }
            if let Some(line) = step.stream.as_deref().map(str::trim)
                && !line.is_empty()
            {
                tracing::debug!(%tag, line, "build");
            }
        }
        Ok(())
    }

    async fn image_user(&self, image: &str) -> Result<Option<crate::UserIds>, EngineError> {
        self.resolve_image_user(image).await
    }

    async fn ensure_cache_volume(&self, name: &str) -> Result<(), EngineError> {
        match self.docker.inspect_volume(name).await {
            Ok(_) => return Ok(()),
            Err(e) if status(&e) == Some(404) => {}
            Err(e) => return Err(backend("inspecting a cache volume", e)),
        }
        let mut labels = self.base_labels();
        labels.insert(LABEL_CACHE.to_owned(), "true".to_owned());
        self.docker
            .create_volume(VolumeCreateRequest {
                name: Some(name.to_owned()),
                labels: Some(labels),
                ..Default::default()
            })
            .await
            .map_err(|e| backend("creating a cache volume", e))?;
        Ok(())
    }

    async fn start_agent(&self, spec: &AgentSpec) -> Result<(), EngineError> {
        let name = self.agent_container(&spec.id);
        let mounts = spec
            .mounts
            .iter()
            .map(|m| {
                let (typ, source) = match &m.source {
                    MountSource::Bind(path) => (MountType::BIND, path.display().to_string()),
                    MountSource::Volume(volume) => (MountType::VOLUME, volume.clone()),
                };
                Mount {
                    target: Some(m.target.clone()),
                    source: Some(source),
                    typ: Some(typ),
                    read_only: Some(m.read_only),
                    ..Default::default()
                }
            })
            .collect();
        let body = ContainerCreateBody {
            image: Some(spec.image.clone()),
            env: Some(spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            labels: Some(self.agent_labels(&spec.id)),
            working_dir: Some(spec.working_dir.clone()),
            // A TTY only for an interactive agent: without one, logs stay
            // separate stdout/stderr streams. Stdin stays open so a person
            // can attach and type either way.
            tty: Some(spec.tty),
            open_stdin: Some(true),
            attach_stdin: Some(true),
            stdin_once: Some(false),
            user: spec.user.map(|u| format!("{}:{}", u.uid, u.gid)),
            host_config: Some(HostConfig {
                mounts: Some(mounts),
                group_add: (!spec.group_add.is_empty()).then(|| spec.group_add.clone()),
                init: Some(true),
                ..confined(&spec.limits)
            }),
            ..Default::default()
        };
        let options = CreateContainerOptionsBuilder::new().name(&name).build();
        self.docker
            .create_container(Some(options), body)
            .await
            .map_err(|e| backend("creating the agent container", e))?;
        if let Err(e) = self.docker.start_container(&name, None).await {
            let force = RemoveContainerOptionsBuilder::new().force(true).build();
            let _ = self.docker.remove_container(&name, Some(force)).await;
            return Err(backend("starting the agent container", e));
        }
        Ok(())
    }

    async fn wait_agent(&self, id: &AgentId) -> Result<i64, EngineError> {
        let name = self.agent_container(id);
        let mut waits = std::pin::pin!(self.docker.wait_container(&name, None));
        match waits.next().await {
            Some(Ok(exit)) => Ok(exit.status_code),
            Some(Err(DockerError::DockerContainerWaitError { code, .. })) => Ok(code),
            Some(Err(e)) => Err(backend("waiting for the agent", e)),
            None => Err(EngineError::Backend {
                operation: "waiting for the agent",
                message: "the engine ended the wait without an exit code".to_owned(),
            }),
        }
    }

    async fn remove_agent(&self, id: &AgentId, grace: Duration) -> Result<bool, EngineError> {
        let name = self.agent_container(id);
        let seconds = i32::try_from(grace.as_secs()).unwrap_or(i32::MAX);
        let stop = StopContainerOptionsBuilder::new().t(seconds).build();
        match self.docker.stop_container(&name, Some(stop)).await {
            Ok(()) => {}
            Err(e) if status(&e) == Some(404) => return Ok(false),
            // Already stopping or stopped: removal below finishes the job.
            Err(e) => tracing::debug!(agent = %id, error = %e, "stop before removal"),
        }
        let force = RemoveContainerOptionsBuilder::new().force(true).build();
        match self.docker.remove_container(&name, Some(force)).await {
            Ok(()) => Ok(true),
            Err(e) if status(&e) == Some(404) => Ok(false),
            // Docker is already removing it.
            Err(e) if status(&e) == Some(409) => Ok(true),
            Err(e) => Err(backend("removing the agent container", e)),
        }
    }

    fn agent_logs(
        &self,
        id: &AgentId,
        follow: bool,
        tail: Option<u32>,
    ) -> BoxStream<'static, Result<bytes::Bytes, EngineError>> {
        let tail = tail.map_or_else(|| "all".to_owned(), |n| n.to_string());
        let options = LogsOptionsBuilder::new()
            .stdout(true)
            .stderr(true)
            .follow(follow)
            .tail(&tail)
            .build();
        self.docker
            .logs(&self.agent_container(id), Some(options))
            .map_ok(bollard::container::LogOutput::into_bytes)
            .map_err(|e| backend("reading the agent's logs", e))
            .boxed()
    }

    async fn attach_agent(&self, id: &AgentId) -> Result<AgentIo, EngineError> {
        // Docker's default detach keys (ctrl-p, ctrl-q) would be swallowed
        // on their way to the agent; the yard detaches on ctrl-e, e itself.
        let options = AttachContainerOptionsBuilder::new()
            .stdin(true)
            .stdout(true)
            .stderr(true)
            .stream(true)
            .detach_keys("ctrl-e,e")
            .build();
        let attached = self
            .docker
            .attach_container(&self.agent_container(id), Some(options))
            .await
            .map_err(|e| backend("attaching to the agent", e))?;
        let docker = self.docker.clone();
        let container = self.agent_container(id);
        let resize: crate::ResizeTty = Box::new(move |size: crate::TtySize| {
            let docker = docker.clone();
            let container = container.clone();
            Box::pin(async move {
                let options = ResizeContainerTTYOptionsBuilder::new()
                    .w(i32::from(size.cols))
                    .h(i32::from(size.rows))
                    .build();
                docker
                    .resize_container_tty(&container, options)
                    .await
                    .map_err(|e| backend("resizing the agent's terminal", e))
            })
        });
        Ok(AgentIo {
            resize,
            output: attached
                .output
                .map_ok(bollard::container::LogOutput::into_bytes)
                .map_err(|e| backend("reading from the agent", e))
                .boxed(),
            input: attached.input,
        })
    }

    async fn agent_containers(&self) -> Result<Vec<AgentId>, EngineError> {
        let containers = self
            .containers(&self.agent_filters(), "listing agent containers")
            .await?;
        Ok(containers
            .into_iter()
            .filter_map(|c| c.labels?.get(LABEL_AGENT).map(AgentId::from_trusted))
            .collect())
    }
}
