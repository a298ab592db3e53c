//! How a deployed stack is doing, as the yard last saw it: its container
//! running and answering, stopped (and why), being restarted, gone, or
//! given up on after dying too often.
//!
//! A deployment's status says how far deploying got; a stack's health says
//! what happened to it since. They are kept apart so a stack that dies does
//! not move its deployment backwards, and a deployment in progress is never
//! mistaken for a stack that failed.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A stack's health. The spelling is part of the public API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StackHealth {
    /// Not deployed yet, or not looked at since.
    Starting,
    /// Its container runs and answers (HTTP below 500, or its own
    /// HEALTHCHECK says healthy).
    Running,
    /// Its container runs but does not answer well.
    Unhealthy,
    /// Its container stopped: it exited, was killed, or ran out of memory.
    Stopped,
    /// The yard is bringing it back.
    Restarting,
    /// Its container or its network is gone.
    Missing,
    /// It kept dying; the yard stopped restarting it.
    Failed,
}

impl StackHealth {
    pub const ALL: [Self; 7] = [
        Self::Starting,
        Self::Running,
        Self::Unhealthy,
        Self::Stopped,
        Self::Restarting,
        Self::Missing,
        Self::Failed,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Running => "running",
            Self::Unhealthy => "unhealthy",
            Self::Stopped => "stopped",
            Self::Restarting => "restarting",
            Self::Missing => "missing",
            Self::Failed => "failed",
        }
    }

    /// Whether the stack is down and may need bringing back.
    pub const fn is_down(self) -> bool {
        matches!(self, Self::Stopped | Self::Missing)
    }
}

impl fmt::Display for StackHealth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for StackHealth {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|h| h.as_str() == s)
            .ok_or_else(|| format!("unknown stack health {s:?}"))
    }
}

/// A stack's health with what explains it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthReport {
    pub health: StackHealth,
    /// Why it is in this state, for people ("exited with code 1").
    pub reason: Option<String>,
    /// How often the yard has restarted it.
    pub restarts: u32,
    /// What went wrong last, kept after it recovers.
    pub last_failure: Option<String>,
}

impl Default for HealthReport {
    fn default() -> Self {
        Self {
            health: StackHealth::Starting,
            reason: None,
            restarts: 0,
            last_failure: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn healths_round_trip() {
        for health in StackHealth::ALL {
            assert_eq!(health.as_str().parse::<StackHealth>(), Ok(health));
        }
        assert!(StackHealth::Stopped.is_down() && !StackHealth::Failed.is_down());
    }
}
