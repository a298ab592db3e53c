//! Deployments: the run of steps that makes a stack, and the only ways its
//! status may move.
//!
//! The state machine is monotonic on purpose. A deployment resumed after a
//! crash re-runs its steps from the start (each step is idempotent), and
//! [`Deployment::advance`] quietly ignores a step it has already passed, so
//! people watching never see progress go backwards.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{HealthReport, Owner, StackName};

/// Milliseconds since the Unix epoch, UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(pub i64);

/// A deployment's id: a UUIDv7, so ids sort by creation time.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DeploymentId(String);

impl DeploymentId {
    /// A fresh, time-ordered id.
    pub fn generate() -> Self {
        Self(uuid::Uuid::now_v7().to_string())
    }

    /// Wraps an id read back from the store or taken from a request path.
    pub fn from_trusted(id: impl Into<String>) -> Self {
        Self(id.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DeploymentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a deployment is. The spelling is part of the public API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeploymentStatus {
    Initializing,
    CreatingProject,
    CreatingApplication,
    Deploying,
    Completed,
    Failed,
    Removing,
    Removed,
}

impl DeploymentStatus {
    /// Every status, in pipeline order.
    pub const ALL: [Self; 8] = [
        Self::Initializing,
        Self::CreatingProject,
        Self::CreatingApplication,
        Self::Deploying,
        Self::Completed,
        Self::Failed,
        Self::Removing,
        Self::Removed,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Initializing => "initializing",
            Self::CreatingProject => "creating_project",
            Self::CreatingApplication => "creating_application",
            Self::Deploying => "deploying",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Removing => "removing",
            Self::Removed => "removed",
        }
    }

    /// Still running its deploy steps.
    pub const fn is_in_progress(self) -> bool {
        matches!(
            self,
            Self::Initializing
                | Self::CreatingProject
                | Self::CreatingApplication
                | Self::Deploying
        )
    }

    /// Work is under way that the yard must finish (or resume after a crash).
    pub const fn is_active(self) -> bool {
        self.is_in_progress() || matches!(self, Self::Removing)
    }

    /// Nothing more will happen to this deployment.
    pub const fn is_final(self) -> bool {
        matches!(self, Self::Failed | Self::Removed)
    }

    /// The deployment still owns its stack's name: a second deployment of
    /// the same name is refused. The store enforces the same set with a
    /// partial unique index; keep [`Self::NAME_RELEASING`] in step.
    pub const fn holds_name(self) -> bool {
        !self.is_final()
    }

    /// The statuses that release a name, as the store's index spells them.
    pub const NAME_RELEASING: [Self; 2] = [Self::Failed, Self::Removed];

    /// Progress in percent when this status is entered; `None` keeps the
    /// progress reached so far (a failure does not pretend to be done).
    const fn progress(self) -> Option<u8> {
        match self {
            Self::Initializing => Some(5),
            Self::CreatingProject => Some(20),
            Self::CreatingApplication => Some(45),
            Self::Deploying => Some(70),
            Self::Completed => Some(100),
            Self::Failed => None,
            Self::Removing => Some(50),
            Self::Removed => Some(100),
        }
    }

    /// A short description of the step, shown next to the progress bar.
    pub const fn step_label(self) -> &'static str {
        match self {
            Self::Initializing => "Initializing",
            Self::CreatingProject => "Creating project (network and data volume)",
            Self::CreatingApplication => "Creating application (container)",
            Self::Deploying => "Deploying (starting and waiting for the stack to answer)",
            Self::Completed => "Completed",
            Self::Failed => "Failed",
            Self::Removing => "Removing the stack",
            Self::Removed => "Removed",
        }
    }

    /// The position in the deploy pipeline; statuses outside it have none.
    const fn pipeline_rank(self) -> Option<u8> {
        match self {
            Self::Initializing => Some(0),
            Self::CreatingProject => Some(1),
            Self::CreatingApplication => Some(2),
            Self::Deploying => Some(3),
            Self::Completed => Some(4),
            _ => None,
        }
    }

    fn allows(self, next: Self) -> bool {
        use DeploymentStatus::*;
        match (self, next) {
            (from, Failed) => from.is_in_progress(),
            (Completed, Removing) | (Removing, Removed) => true,
            (from, to) => match (from.pipeline_rank(), to.pipeline_rank()) {
                (Some(a), Some(b)) => b == a + 1,
                _ => false,
            },
        }
    }
}

impl fmt::Display for DeploymentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A status string that is not one of ours.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown deployment status {0:?}")]
pub struct UnknownStatus(pub String);

impl FromStr for DeploymentStatus {
    type Err = UnknownStatus;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| UnknownStatus(s.to_owned()))
    }
}

/// A move the state machine does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a deployment cannot go from {from} to {to}")]
pub struct TransitionError {
    pub from: DeploymentStatus,
    pub to: DeploymentStatus,
}

/// One deployment of a stack, as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployment {
    pub id: DeploymentId,
    pub name: StackName,
    pub status: DeploymentStatus,
    pub progress: u8,
    pub current_step: String,
    /// Why it failed, when it did.
    pub message: Option<String>,
    pub url: String,
    pub image: String,
    /// Who asked for it: the stack's owner. `None` for deployments made
    /// before owners were recorded (the admins').
    pub owner: Option<Owner>,
    /// How the stack has been doing since it was deployed. Kept apart from
    /// `status`: the watcher writes it, the deployment's steps never do.
    pub health: HealthReport,
    /// Bumped on every change, so a watcher can tell which of two snapshots
    /// is newer and skip events it has already seen.
    pub seq: i64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl Deployment {
    /// A deployment that has just been asked for.
    pub fn new(name: StackName, url: String, image: String, now: Timestamp) -> Self {
        let status = DeploymentStatus::Initializing;
        Self {
            id: DeploymentId::generate(),
            name,
            status,
            progress: status.progress().unwrap_or(0),
            current_step: status.step_label().to_owned(),
            message: None,
            url,
            image,
            owner: None,
            health: HealthReport::default(),
            seq: 1,
            created_at: now,
            updated_at: now,
        }
    }

    /// Moves to `to`. Returns `Ok(false)` without changing anything when the
    /// deployment is already there or past it in the pipeline (a resumed
    /// run repeating a step), and an error for a move the machine forbids.
    pub fn advance(
        &mut self,
        to: DeploymentStatus,
        now: Timestamp,
    ) -> Result<bool, TransitionError> {
        if self.status == to {
            return Ok(false);
        }
        if let (Some(at), Some(target)) = (self.status.pipeline_rank(), to.pipeline_rank())
            && target < at
        {
            return Ok(false);
        }
        if !self.status.allows(to) {
            return Err(TransitionError {
                from: self.status,
                to,
            });
        }
        self.status = to;
        if let Some(progress) = to.progress() {
            self.progress = progress;
        }
        self.current_step = to.step_label().to_owned();
        self.touch(now);
        Ok(true)
    }

    /// Records a failure during the current step, with the reason people see.
    pub fn fail(
        &mut self,
        reason: impl Into<String>,
        now: Timestamp,
    ) -> Result<(), TransitionError> {
        let failed_step = self.status;
        if !failed_step.allows(DeploymentStatus::Failed) {
            return Err(TransitionError {
                from: failed_step,
                to: DeploymentStatus::Failed,
            });
        }
        self.status = DeploymentStatus::Failed;
        self.current_step = format!("Failed while {}", failed_step.step_label().to_lowercase());
        self.message = Some(reason.into());
        self.touch(now);
        Ok(())
    }

    fn touch(&mut self, now: Timestamp) {
        self.seq += 1;
        self.updated_at = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use DeploymentStatus::*;

    fn fresh() -> Deployment {
        Deployment::new(
            StackName::from_trusted("alice"),
            "http://alice.localhost:3000".into(),
            "img".into(),
            Timestamp(1),
        )
    }

    #[test]
    fn runs_the_pipeline_in_order_with_rising_progress() {
        let mut d = fresh();
        let mut last = (d.progress, d.seq);
        for to in [CreatingProject, CreatingApplication, Deploying, Completed] {
            assert_eq!(d.advance(to, Timestamp(2)), Ok(true));
            assert!(d.progress > last.0 && d.seq > last.1, "{to}");
            last = (d.progress, d.seq);
        }
        assert_eq!(d.progress, 100);
        assert_eq!(d.advance(Removing, Timestamp(3)), Ok(true));
        assert_eq!(d.advance(Removed, Timestamp(4)), Ok(true));
        assert!(d.status.is_final() && !d.status.holds_name());
    }

    #[test]
    fn a_resumed_run_never_moves_backwards() {
        let mut d = fresh();
        d.advance(CreatingProject, Timestamp(2)).unwrap();
        d.advance(CreatingApplication, Timestamp(2)).unwrap();
        let before = d.clone();
        assert_eq!(d.advance(CreatingProject, Timestamp(9)), Ok(false));
        assert_eq!(d.advance(CreatingApplication, Timestamp(9)), Ok(false));
        assert_eq!(d, before);
    }

    #[test]
    fn forbids_skips_and_moves_out_of_final_states() {
        let mut d = fresh();
        assert!(d.advance(Deploying, Timestamp(2)).is_err());
        assert!(d.advance(Removing, Timestamp(2)).is_err());
        d.fail("boom", Timestamp(3)).unwrap();
        assert_eq!(d.status, Failed);
        assert_eq!(d.message.as_deref(), Some("boom"));
        assert_eq!(d.current_step, "Failed while initializing");
        assert!(d.advance(CreatingProject, Timestamp(4)).is_err());
        assert!(d.fail("again", Timestamp(4)).is_err());
    }

    #[test]
    fn failure_keeps_the_progress_reached() {
        let mut d = fresh();
        d.advance(CreatingProject, Timestamp(2)).unwrap();
        d.fail("network refused", Timestamp(3)).unwrap();
        assert_eq!(d.progress, 20);
    }

    #[test]
    fn statuses_round_trip_through_their_spelling() {
        for status in DeploymentStatus::ALL {
            assert_eq!(status.as_str().parse::<DeploymentStatus>(), Ok(status));
            // The serde spelling must equal as_str(): the store and the API agree.
            let json = serde_json::to_string(&status).unwrap();
            assert_eq!(json, format!("\"{}\"", status.as_str()));
        }
        assert!("done".parse::<DeploymentStatus>().is_err());
    }

    #[test]
    fn name_holding_matches_the_releasing_list() {
        for status in DeploymentStatus::ALL {
            assert_eq!(
                status.holds_name(),
                !DeploymentStatus::NAME_RELEASING.contains(&status),
                "{status}"
            );
        }
    }
}
