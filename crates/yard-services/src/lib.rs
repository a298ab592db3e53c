//! The yard's services: what happens between a request and the backends.
//!
//! Services own no I/O of their own kind: they persist through `yard-store`,
//! act on backends through `yard-engine`, and announce every change on the
//! [`EventBus`], which feeds every live view (SSE today). Nothing polls the
//! store for changes.
//!
//! API boundary: the services are all the server, MCP and the CLI see. No
//! service hands out its store or its engine; a question the server needs
//! answered is a method here.

pub mod access;
pub mod agent_images;
mod answer_log;
pub mod auth;
pub mod bus;
pub mod datadir;
pub mod deployer;
mod follow;
pub mod forge;
pub mod hooks;
pub mod issue_rule;
mod locks;
pub mod orchestrator;
pub mod platform;
pub mod questions;
pub mod repo_roots;
pub mod sessions;
pub mod settings;
pub mod webhooks;

use std::time::{SystemTime, UNIX_EPOCH};

use yard_core::Timestamp;

pub use access::Access;
pub use bus::{EventBus, YardEvent};
pub use datadir::DataDir;
pub use deployer::{
    ConnectionCheck, DeployError, Deployer, DeployerConfig, HealingConfig, NameAvailability,
    RestartPolicy, Route,
};
pub use forge::{FirstAdmin, Forge, ForgeAdmin, ForgeConfig, ForgeError, ForgeReport};
pub use hooks::{Gatekeeper, PolicyWatch};
pub use issue_rule::{CommentFacts, IssueFacts, IssueRule, IssueRuleParts, RuleError};
pub use orchestrator::{Orchestrator, OrchestratorConfig, OrchestratorError};
pub use platform::{BrowserInfo, PlatformReport, PlatformService, PlatformStatus};
pub use questions::{ClientId, NewQuestion, Questions, QuestionsError, Waiting};
pub use settings::{ConfigState, EncryptionKey, KeyError, KeySource, Settings, SettingsError};
pub use webhooks::{Delivery, ForgeWebhooks, Receipt, Verified, WebhookError};
/// What can go wrong underneath the services, named here so callers need
/// neither the store nor the engine crate.
pub use yard_engine::{AgentIo, EngineError, TtySize};
/// The forge set-up's vocabulary, named here so callers need not depend on
/// `yard-forge` for it.
pub use yard_forge::{Secret, SetupOptions};
pub use yard_store::StoreError;

/// The current time, as the store records it.
pub fn now() -> Timestamp {
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default();
    Timestamp(i64::try_from(millis).unwrap_or(i64::MAX))
}
