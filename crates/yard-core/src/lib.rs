//! The domain vocabulary of agentyard, shared by every other crate.
//!
//! Everything here is pure: no clocks, no files, no network. Callers pass the
//! current time in, which keeps the state machine deterministic and testable.
//! Value types carry serde derives because their spelling (`completed`,
//! `alice`) *is* the vocabulary; the JSON shapes of requests and responses
//! live in `yard-api`.

pub mod address;
pub mod deployment;
pub mod name;

pub use address::StackAddressing;
pub use deployment::{Deployment, DeploymentId, DeploymentStatus, Timestamp, TransitionError};
pub use name::{NameError, NamePolicy, StackName};
