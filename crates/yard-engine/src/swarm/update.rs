//! Rolling updates: a stack's image replaced in place by Swarm, which starts
//! the new task (first, when the stack has no data volume), watches it for
//! a few seconds, and goes back to the old image by itself when the new one
//! fails.
//!
//! The yard stays reachable through a start-first update like this: the
//! old task serves until the new one runs; from then [`Engine::endpoint`]
//! answers the new task's port (each task publishes its own, see
//! [`SwarmReach::HostPort`]), and a request that still went to the old
//! task after it stopped fails once, after which the yard's router forgets
//! the endpoint and asks again.
//!
//! A new task that never runs never takes over: the old one keeps serving
//! while Swarm rolls back. Without a health check in the image, though,
//! "runs" means "started": a task that crashes a moment after starting may
//! already have made Swarm stop the old one. The old task answers through
//! its stop grace period, the rollback starts the old image again, and
//! [`SwarmEngine::update_image`] returns once that runs. An image with a
//! `HEALTHCHECK` is not taken for running before it is healthy, which
//! closes that gap.
//!
//! [`Engine::endpoint`]: crate::Engine::endpoint
//! [`SwarmReach::HostPort`]: super::SwarmReach::HostPort

use std::time::Duration;

use bollard::models::ServiceUpdateStatusStateEnum;
use bollard::query_parameters::UpdateServiceOptionsBuilder;
use yard_core::StackName;

use super::{SwarmEngine, backend, tasks};
use crate::{EngineError, UpdateOutcome};

impl SwarmEngine {
    /// Replaces stack `name`'s image with `image` (which must be on the
    /// engine, by that reference) as a rolling update, and waits at most
    /// `timeout` for Swarm to finish it: [`UpdateOutcome::Updated`] when
    /// the new task ran through Swarm's watch, [`UpdateOutcome::RolledBack`]
    /// when it failed and the old image runs again. The same reference as
    /// now rolls too: a tag may name a newly built image.
    pub async fn update_image(
        &self,
        name: &StackName,
        image: &str,
        timeout: Duration,
    ) -> Result<UpdateOutcome, EngineError> {
        self.local_image(image).await?;
        let service =
            self.inspect_own_service(name)
                .await?
                .ok_or_else(|| EngineError::Backend {
                    operation: "updating the stack's image",
                    message: format!("stack {name} has no service"),
                })?;
        let id = service.id.clone().unwrap_or_default();
        let version = service
            .version
            .as_ref()
            .and_then(|v| v.index)
            .and_then(|index| i32::try_from(index).ok())
            .unwrap_or_default();
        // The status of the previous update, if any, stays until this one
        // starts: it is told apart by when it started.
        let before = service
            .update_status
            .as_ref()
            .and_then(|s| s.started_at.clone());
        let mut spec = service.spec.unwrap_or_default();
        let task = spec.task_template.get_or_insert_default();
        let container = task.container_spec.get_or_insert_default();
        let old = container.image.replace(image.to_owned());
        if old.as_deref() == Some(image) {
            task.force_update = Some(task.force_update.unwrap_or_default().wrapping_add(1));
        }
        let response = self
            .docker
            .update_service(
                &id,
                spec,
                UpdateServiceOptionsBuilder::new().version(version).build(),
                None,
            )
            .await
            .map_err(|e| backend("updating the stack service", e))?;
        for warning in response.warnings.unwrap_or_default() {
            tracing::warn!(stack = %name, %warning, "the engine warned about the update");
        }
        tracing::info!(
            stack = %name,
            from = old.as_deref().unwrap_or_default(),
            to = %image,
            "rolling update started"
        );
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let service = self.inspect_own_service(name).await?.ok_or_else(|| {
                EngineError::NotReady("the service vanished during its update".into())
            })?;
            let status = service
                .update_status
                .filter(|s| s.started_at.is_some() && s.started_at != before);
            let state = status.as_ref().and_then(|s| s.state);
            match state {
                Some(ServiceUpdateStatusStateEnum::COMPLETED) => {
                    tracing::info!(stack = %name, image = %image, "rolling update completed");
                    return Ok(UpdateOutcome::Updated);
                }
                Some(
                    ServiceUpdateStatusStateEnum::ROLLBACK_COMPLETED
                    | ServiceUpdateStatusStateEnum::PAUSED
                    | ServiceUpdateStatusStateEnum::ROLLBACK_PAUSED,
                ) => {
                    let message = status.and_then(|s| s.message).unwrap_or_default();
                    let reason = self.rollback_reason(&id, image, &message).await;
                    tracing::warn!(stack = %name, image = %image, %reason, "rolling update rolled back");
                    self.old_image_runs(&id, deadline).await;
                    return Ok(UpdateOutcome::RolledBack { reason });
                }
                _ => {}
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(EngineError::NotReady(format!(
                    "the update to {image} did not finish within {}s",
                    timeout.as_secs()
                )));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Waits (until `deadline` at most) for a task that Swarm wants running
    /// to run, after a rollback: Swarm may call the rollback done while the
    /// old image's new task is still starting.
    async fn old_image_runs(&self, service: &str, deadline: tokio::time::Instant) {
        while tokio::time::Instant::now() < deadline {
            match self.tasks_of(service).await {
                Ok(all) if tasks::newest_running(&all).is_none() => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                _ => return,
            }
        }
    }

    /// Why the update was rolled back: how the newest task of the new image
    /// ended, with its last output, and Swarm's word when it says more than
    /// that it rolled back.
    async fn rollback_reason(&self, service: &str, image: &str, message: &str) -> String {
        let failed = self.tasks_of(service).await.ok().and_then(|all| {
            let of_image: Vec<_> = all
                .into_iter()
                .filter(|t| {
                    t.spec
                        .as_ref()
                        .and_then(|s| s.container_spec.as_ref())
                        .and_then(|c| c.image.as_deref())
                        == Some(image)
                })
                .collect();
            tasks::newest_failure(&of_image).cloned().or_else(|| {
                // Stopped by the rollback before it could fail on its own.
                tasks::newest(&of_image).cloned()
            })
        });
        let mut reason = match &failed {
            Some(task) => format!("{image} failed: {}", self.failure_message(task).await),
            None => format!("{image} failed"),
        };
        if !message.is_empty() && !message.starts_with("rollback completed") {
            reason.push_str(&format!(" (Swarm: {message})"));
        }
        reason
    }
}
