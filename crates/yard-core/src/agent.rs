//! Agents: short-lived workers, each in its own container with its own
//! checkout, branch and credential.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{Owner, Timestamp};

/// An agent's id: 8 lowercase hex digits, short enough to type.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AgentId(String);

impl AgentId {
    /// A fresh random id.
    pub fn generate() -> Self {
        Self(uuid::Uuid::new_v4().simple().to_string()[..8].to_owned())
    }

    /// An id from user input, if it has the shape of one.
    pub fn parse(raw: &str) -> Option<Self> {
        let raw = raw.trim();
        (raw.len() == 8
            && raw
                .chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)))
        .then(|| Self(raw.to_owned()))
    }

    /// Wraps an id read back from the store or from engine labels.
    pub fn from_trusted(id: impl Into<String>) -> Self {
        Self(id.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The branch the agent works on: `yard/<id>`.
    pub fn branch(&self) -> String {
        format!("yard/{}", self.0)
    }
}

impl fmt::Display for AgentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where an agent is in its life. The spelling is part of the public API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AgentStatus {
    /// Its checkout and container are being made.
    Starting,
    /// Its container runs.
    Running,
    /// Its container finished on its own (see the exit code).
    Exited,
    /// It could not be started.
    Failed,
    /// A person, or the yard shutting down, stopped it.
    Stopped,
    /// Its checkout and branch were removed.
    Pruned,
}

impl AgentStatus {
    pub const ALL: [Self; 6] = [
        Self::Starting,
        Self::Running,
        Self::Exited,
        Self::Failed,
        Self::Stopped,
        Self::Pruned,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Running => "running",
            Self::Exited => "exited",
            Self::Failed => "failed",
            Self::Stopped => "stopped",
            Self::Pruned => "pruned",
        }
    }

    /// The statuses in which its container may exist and run.
    pub const LIVE: [Self; 2] = [Self::Starting, Self::Running];
}

impl fmt::Display for AgentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AgentStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| format!("unknown agent status {s:?}"))
    }
}

/// One agent, as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agent {
    pub id: AgentId,
    /// The yard instance that runs it.
    pub instance: String,
    /// The person who spawned it, or who spawned the agent that did;
    /// `None` for agents made before owners were recorded (the admins').
    pub owner: Option<Owner>,
    /// The agent that spawned it, if an agent did.
    pub parent: Option<AgentId>,
    /// The source repository's working tree, absolute.
    pub repo: String,
    /// The base as it was asked for (`HEAD`, a branch, a sha).
    pub base_ref: String,
    /// The commit the branch started from.
    pub base_commit: String,
    pub task: String,
    pub image: String,
    pub status: AgentStatus,
    pub exit_code: Option<i64>,
    /// Why it failed or stopped.
    pub message: Option<String>,
    /// Where its checkout is, absolute.
    pub checkout: String,
    /// The branch's last commit, once fetched back into the source.
    pub head_commit: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl Agent {
    pub fn branch(&self) -> String {
        self.id.branch()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_short_hex_and_name_their_branch() {
        let id = AgentId::generate();
        assert_eq!(id.as_str().len(), 8);
        assert_eq!(AgentId::parse(id.as_str()), Some(id.clone()));
        assert_eq!(id.branch(), format!("yard/{id}"));
        for bad in [
            "",
            "1234567",
            "123456789",
            "ABCDEF12",
            "../../x1",
            "zzzzzzzz",
        ] {
            assert_eq!(AgentId::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn statuses_round_trip() {
        for status in AgentStatus::ALL {
            assert_eq!(status.as_str().parse::<AgentStatus>(), Ok(status));
        }
        assert!(
            AgentStatus::LIVE.contains(&AgentStatus::Running)
                && !AgentStatus::LIVE.contains(&AgentStatus::Exited)
        );
    }
}
