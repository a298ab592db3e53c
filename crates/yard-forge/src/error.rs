//! How the forge's set-up fails: every failure names the step it happened
//! in ("creating the bot user: …") and says what the forge answered, so
//! the person reading the log knows where to look.
//!
//! No secret ever appears here: requests carry credentials in headers, and
//! what the forge says back is cleaned of the run's secrets before it is
//! kept (see `setup.rs`).

use std::fmt;
use std::time::Duration;

use crate::setup::StoredSecrets;

/// A step of the set-up, as an error or a log line names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// `GET /api/v1/version` until it answers.
    WaitForForge,
    /// Signing in as the admin (`GET /api/v1/user`).
    CheckAdmin,
    /// The admin's API token.
    AdminToken,
    /// The bot user, its password, `must_change_password` off.
    BotUser,
    /// The bot's API token.
    BotToken,
    /// The organisation.
    Organisation,
    /// The bot in the organisation's `Owners` team.
    OrgOwners,
    /// The system webhook to the yard.
    Webhook,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::WaitForForge => "waiting for the forge's API",
            Self::CheckAdmin => "checking the admin credential",
            Self::AdminToken => "making the admin's API token",
            Self::BotUser => "creating the bot user",
            Self::BotToken => "making the bot's API token",
            Self::Organisation => "creating the organisation",
            Self::OrgOwners => "adding the bot to the organisation's Owners team",
            Self::Webhook => "setting up the system webhook",
        })
    }
}

/// What went wrong within a step.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StepFailure {
    /// The forge kept failing (5xx, or no connection) until the tries ran
    /// out.
    #[error("{last} after {tries} tries")]
    GaveUp { last: String, tries: u32 },
    /// The forge refused a request the set-up does not know how to handle.
    #[error("the forge answered {status}: {message}")]
    Refused { status: u16, message: String },
    /// The forge answered with something Gitea does not send.
    #[error("the forge's answer was not what Gitea sends: {0}")]
    Unexpected(String),
    /// The forge is in a state the set-up will not change by itself; the
    /// message says what to do.
    #[error("{0}")]
    Conflict(String),
}

/// Why the set-up could not be done.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The forge's address cannot be used.
    #[error("the forge's address is not usable: {0}")]
    Address(String),
    /// The plan cannot be carried out as given.
    #[error("the forge set-up's plan is not usable: {0}")]
    Plan(String),
    /// The forge's API did not answer in time. The caller knows where the
    /// forge's log is and should add it.
    #[error(
        "the forge at {url} did not answer GET /api/v1/version within {}s (last: {last}); see the forge's log",
        waited.as_secs()
    )]
    NotReady {
        url: String,
        waited: Duration,
        last: String,
    },
    /// A step failed.
    #[error("{step}: {failure}")]
    Step { step: Step, failure: StepFailure },
    /// No HTTP client could be made.
    #[error("cannot make an HTTP client: {0}")]
    Client(String),
}

impl SetupError {
    /// The step that failed, if it was one.
    pub fn step(&self) -> Option<Step> {
        match self {
            Self::Step { step, .. } => Some(*step),
            Self::NotReady { .. } => Some(Step::WaitForForge),
            _ => None,
        }
    }
}

/// A set-up that stopped part-way: the error, and the secrets it had
/// already settled, which the caller stores just as it stores a finished
/// run's (they go back in the next run's plan so that it makes nothing
/// twice).
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct SetupFailed {
    pub error: SetupError,
    pub stored: StoredSecrets,
}
