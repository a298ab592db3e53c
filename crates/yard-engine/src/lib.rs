//! Where stacks run: the [`Engine`] trait and one module per backend.
//!
//! This crate is the only part of the yard that talks to a container engine.
//! Everything it creates carries labels (`agentyard.managed`,
//! `agentyard.instance`, `agentyard.stack`), and it finds what exists by those
//! labels rather than by remembering: after a crash, the labels are the truth
//! about what the engine holds, and the store is the truth about what should
//! exist. Every `ensure_*` step is idempotent: it adopts what a previous,
//! interrupted run already made instead of making a second one.

pub mod docker;

use std::fmt;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use tokio::io::AsyncWrite;
use yard_core::{AgentId, StackName};

pub use docker::{DockerConfig, DockerEngine};

/// Label on everything the yard creates.
pub const LABEL_MANAGED: &str = "agentyard.managed";
/// Label naming the yard instance that owns a resource.
pub const LABEL_INSTANCE: &str = "agentyard.instance";
/// Label naming the stack a resource belongs to.
pub const LABEL_STACK: &str = "agentyard.stack";
/// Label naming the agent a container runs.
pub const LABEL_AGENT: &str = "agentyard.agent";

/// What a backend needs to run one stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackSpec {
    pub name: StackName,
    pub image: String,
    /// The port the stack listens on inside its container; `None` takes the
    /// image's lowest exposed TCP port.
    pub port: Option<u16>,
    /// Environment for the stack's container, in order.
    pub env: Vec<(String, String)>,
}

/// Where the yard reaches a running stack's HTTP port, as `host:port`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Endpoint(pub String);

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The kinds of thing a stack owns on a backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ResourceKind {
    Container,
    Network,
    Volume,
}

impl fmt::Display for ResourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Container => "container",
            Self::Network => "network",
            Self::Volume => "volume",
        })
    }
}

/// One labelled resource that belongs to a stack of this instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackResource {
    pub kind: ResourceKind,
    pub name: String,
    pub stack: StackName,
}

/// What went wrong on a backend, worded for the person who has to fix it.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(
        "the container engine is not reachable ({0}); is Docker running, and is DOCKER_HOST right?"
    )]
    Unavailable(String),
    #[error(
        "image {image:?} is not on this engine; build or load it there, or set YARD_STACK_IMAGE to an image that is"
    )]
    ImageNotFound { image: String },
    #[error(
        "image {image:?} exposes no port; set YARD_STACK_PORT to the port the stack listens on"
    )]
    NoPort { image: String },
    #[error(
        "a {kind} named {name:?} already exists and does not belong to this yard; remove it or choose another stack name"
    )]
    Foreign { kind: ResourceKind, name: String },
    #[error("the stack did not come up: {0}")]
    NotReady(String),
    #[error("{operation} failed: {message}")]
    Backend {
        operation: &'static str,
        message: String,
    },
}

/// A place where stacks run.
///
/// The deploy steps are called in order (`ensure_project`,
/// `ensure_application`, `deploy`), possibly again after a crash; each must
/// find and adopt what an earlier call made. `remove_stack` removes
/// everything labelled with the stack's name and is safe to repeat.
#[async_trait]
pub trait Engine: Send + Sync + fmt::Debug {
    /// The backend's name, as `YARD_BACKEND` spells it.
    fn backend(&self) -> &'static str;

    /// Answers when the backend does.
    async fn ping(&self) -> Result<(), EngineError>;

    /// Step "project": the stack's private network and data volume.
    async fn ensure_project(&self, spec: &StackSpec) -> Result<(), EngineError>;

    /// Step "application": the stack's container, created but not started.
    async fn ensure_application(&self, spec: &StackSpec) -> Result<(), EngineError>;

    /// Step "deploy": starts the application and waits until it answers
    /// HTTP, at most `timeout`. Returns where it answers.
    async fn deploy(&self, spec: &StackSpec, timeout: Duration) -> Result<Endpoint, EngineError>;

    /// Where a stack answers now; `None` when it is not running.
    async fn endpoint(&self, name: &StackName) -> Result<Option<Endpoint>, EngineError>;

    /// Removes everything the stack owns; returns what was removed.
    async fn remove_stack(&self, name: &StackName) -> Result<Vec<StackResource>, EngineError>;

    /// Every resource of this instance that belongs to some stack.
    async fn stack_resources(&self) -> Result<Vec<StackResource>, EngineError>;
}

/// Where a mount in an agent container comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountSource {
    /// A path on the engine's host.
    Bind(PathBuf),
    /// A named volume.
    Volume(String),
}

/// One mount in an agent container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentMount {
    pub source: MountSource,
    pub target: String,
    pub read_only: bool,
}

/// What a backend needs to run one agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentSpec {
    pub id: AgentId,
    pub image: String,
    pub env: Vec<(String, String)>,
    pub mounts: Vec<AgentMount>,
    pub working_dir: String,
    /// Extra groups for the agent's processes (the control socket's group).
    pub group_add: Vec<String>,
}

/// A live connection to an agent's terminal: what it prints, and a writer
/// to its stdin.
pub struct AgentIo {
    pub output: BoxStream<'static, Result<Bytes, EngineError>>,
    pub input: Pin<Box<dyn AsyncWrite + Send>>,
}

impl fmt::Debug for AgentIo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentIo").finish_non_exhaustive()
    }
}

/// Where agents run: one container each, labelled with the yard instance
/// and the agent's id.
#[async_trait]
pub trait AgentRuntime: Send + Sync + fmt::Debug {
    /// Whether `image` is on the engine.
    async fn image_exists(&self, image: &str) -> Result<bool, EngineError>;

    /// Makes the shared cache volume `name` if it does not exist.
    async fn ensure_cache_volume(&self, name: &str) -> Result<(), EngineError>;

    /// Creates and starts the agent's container.
    async fn start_agent(&self, spec: &AgentSpec) -> Result<(), EngineError>;

    /// Waits until the agent's container exits; returns its exit code.
    async fn wait_agent(&self, id: &AgentId) -> Result<i64, EngineError>;

    /// Stops the agent (SIGTERM, then SIGKILL after `grace`) and removes its
    /// container. Returns whether there was one.
    async fn remove_agent(&self, id: &AgentId, grace: Duration) -> Result<bool, EngineError>;

    /// The agent's output (stdout and stderr), the last `tail` lines or all;
    /// with `follow`, the stream goes on until the container stops.
    fn agent_logs(
        &self,
        id: &AgentId,
        follow: bool,
        tail: Option<u32>,
    ) -> BoxStream<'static, Result<Bytes, EngineError>>;

    /// Connects to the agent's stdin and output.
    async fn attach_agent(&self, id: &AgentId) -> Result<AgentIo, EngineError>;

    /// The agents whose containers this instance has on the engine.
    async fn agent_containers(&self) -> Result<Vec<AgentId>, EngineError>;
}
