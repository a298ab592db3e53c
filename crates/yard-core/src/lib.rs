//! The domain vocabulary of agentyard, shared by every other crate.
//!
//! Everything here is pure: no clocks, no files, no network. Callers pass the
//! current time in, which keeps the state machine deterministic and testable.
//! Value types carry serde derives because their spelling (`completed`,
//! `alice`) *is* the vocabulary; the JSON shapes of requests and responses
//! live in `yard-api`.

pub mod access;
pub mod address;
pub mod agent;
pub mod audit;
pub mod config;
pub mod credentials;
pub mod deployment;
pub mod endpoint;
pub mod forge;
pub mod health;
pub mod hook;
pub mod image;
pub mod name;
pub mod policy;
pub mod question;

pub use access::{Actor, Owner, Person, Role};
pub use address::StackAddressing;
pub use agent::{Agent, AgentId, AgentStatus};
pub use audit::AuditEntry;
pub use config::{ConfigKey, ConfigRecord, ConfigValueError, UnknownConfigKey};
pub use credentials::{SessionRecord, TokenRecord};
pub use deployment::{Deployment, DeploymentId, DeploymentStatus, Timestamp, TransitionError};
pub use endpoint::{Endpoint, Scheme};
pub use forge::{DeliveryOutcome, ForgeEventKind, IssueGuidance, IssueWork};
pub use health::{HealthReport, StackHealth};
pub use hook::HookEvent;
pub use image::{ImageRef, ImageRefError};
pub use name::{NameError, NamePolicy, StackName};
pub use policy::{Decision, HookFacts, Policy, PolicyError, Verdict};
pub use question::{Question, QuestionError, QuestionKind, QuestionOutcome};
