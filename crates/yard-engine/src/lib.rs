//! Where stacks run: the [`Engine`] trait and one module per backend.
//!
//! This crate is the only part of the yard that talks to a container engine.
//! Everything it creates carries labels (`agentyard.managed`,
//! `agentyard.instance`, `agentyard.stack`), and it finds what exists by those
//! labels rather than by remembering: after a crash, the labels are the truth
//! about what the engine holds, and the store is the truth about what should
//! exist. Every `ensure_*` step is idempotent: it adopts what a previous,
//! interrupted run already made instead of making a second one.

pub mod backend;
pub mod docker;
mod docker_api;
pub mod dokploy;
pub mod swarm;

use std::fmt;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use tokio::io::AsyncWrite;
use yard_core::{AgentId, StackName};
pub use yard_core::{Endpoint, Scheme};

pub use backend::{Backend, BackendConfig, BackendKind};
pub use docker::{DockerConfig, DockerEngine, KEPT_CAPABILITIES};
pub use dokploy::{DokployConfig, DokployEngine};
pub use swarm::{SwarmConfig, SwarmEngine, SwarmReach, TraefikConfig};

/// Label on everything the yard creates.
pub const LABEL_MANAGED: &str = "agentyard.managed";
/// Label naming the yard instance that owns a resource.
pub const LABEL_INSTANCE: &str = "agentyard.instance";
/// Label naming the stack a resource belongs to.
pub const LABEL_STACK: &str = "agentyard.stack";
/// Label naming the agent a container runs.
pub const LABEL_AGENT: &str = "agentyard.agent";
/// Every label key with this prefix is the yard's own: operators' extra
/// labels may not use it, so nothing can pass for something the yard made.
pub const RESERVED_LABEL_PREFIX: &str = "agentyard.";

/// Whether `key` is in the yard's own label namespace.
pub fn is_reserved_label(key: &str) -> bool {
    key.len() >= RESERVED_LABEL_PREFIX.len()
        && key[..RESERVED_LABEL_PREFIX.len()].eq_ignore_ascii_case(RESERVED_LABEL_PREFIX)
}

/// What a container may use of its host. Every stack and agent runs with
/// limits: a runaway build or a fork bomb in one cannot starve the others.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ResourceLimits {
    /// Memory in bytes (swap included); `None` for no limit.
    pub memory_bytes: Option<i64>,
    /// CPUs, e.g. 1.5; `None` for no limit.
    pub cpus: Option<f64>,
    /// The most processes and threads at once.
    pub pids: i64,
}

impl ResourceLimits {
    /// Agents: builds need room (4 GiB, 2 CPUs, 4096 processes).
    pub const AGENT_DEFAULT: Self = Self {
        memory_bytes: Some(4 << 30),
        cpus: Some(2.0),
        pids: 4096,
    };
    /// Stacks: one assistant each (2 GiB, 1 CPU, 1024 processes).
    pub const STACK_DEFAULT: Self = Self {
        memory_bytes: Some(2 << 30),
        cpus: Some(1.0),
        pids: 1024,
    };
}

/// Parses a memory size: bytes, or a number with `k`, `m`, `g` (powers of
/// 1024, `b`/`ib` suffixes allowed), or `none`.
pub fn parse_memory(raw: &str) -> Result<Option<i64>, String> {
    let text = raw.trim().to_ascii_lowercase();
    if text == "none" || text == "unlimited" {
        return Ok(None);
    }
    let text = text.trim_end_matches('b').trim_end_matches('i');
    let (number, unit) = match text.char_indices().find(|(_, c)| c.is_ascii_alphabetic()) {
        Some((i, _)) => (&text[..i], &text[i..]),
        None => (text, ""),
    };
    let shift = match unit {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        _ => return Err(format!("{raw:?} is not a size like 512m or 4g")),
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("{raw:?} is not a size like 512m or 4g"))?;
    let bytes = value * 2f64.powi(shift);
    // Docker refuses less than 6 MiB.
    if !bytes.is_finite() || bytes < f64::from(6u32 << 20) || bytes > 9.0e18 {
        return Err(format!("{raw:?} must be at least 6m"));
    }
    Ok(Some(bytes as i64))
}

/// Parses a CPU count like `2` or `0.5`, or `none`.
pub fn parse_cpus(raw: &str) -> Result<Option<f64>, String> {
    let text = raw.trim();
    if text.eq_ignore_ascii_case("none") || text.eq_ignore_ascii_case("unlimited") {
        return Ok(None);
    }
    match text.parse::<f64>() {
        Ok(cpus) if (0.01..=1024.0).contains(&cpus) => Ok(Some(cpus)),
        _ => Err(format!("{raw:?} is not a CPU count like 2 or 0.5")),
    }
}

/// What a backend needs to run one stack.
#[derive(Debug, Clone, PartialEq)]
pub struct StackSpec {
    pub name: StackName,
    pub image: String,
    /// The port the stack listens on inside its container; `None` takes the
    /// image's lowest exposed TCP port.
    pub port: Option<u16>,
    /// Environment for the stack's container, in order.
    pub env: Vec<(String, String)>,
    pub limits: ResourceLimits,
}

/// The kinds of thing a stack owns on a backend: Docker's containers,
/// networks and volumes, Swarm's services, Dokploy's projects,
/// applications and domains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ResourceKind {
    Container,
    Service,
    Network,
    Volume,
    Project,
    Application,
    Domain,
}

impl fmt::Display for ResourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Container => "container",
            Self::Service => "service",
            Self::Network => "network",
            Self::Volume => "volume",
            Self::Project => "project",
            Self::Application => "application",
            Self::Domain => "domain",
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
    /// The backend does not answer; the message says which and where.
    #[error("the backend is not reachable: {0}")]
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
    #[error(
        "the label {0:?} is in the yard's own namespace (agentyard.*); pick another key for YARD_LABELS"
    )]
    ReservedLabel(String),
    #[error("image {image:?} runs as user {user:?}, which it does not define in /etc/passwd")]
    UnknownImageUser { image: String, user: String },
    #[error("{operation} failed: {message}")]
    Backend {
        operation: &'static str,
        message: String,
    },
    /// The backend's settings are missing or wrong; the message says which
    /// and what to set.
    #[error("the backend is not set up: {0}")]
    Config(String),
    /// The backend refused the yard's credentials; the message says how to
    /// make ones it takes.
    #[error("{0}")]
    Refused(String),
    /// The backend answered in a shape its documentation does not give.
    #[error(
        "the backend answered in a shape the yard does not know, so this yard may not support its version: {0}"
    )]
    Contract(String),
    #[error(
        "this Docker engine is not a swarm manager; run `docker swarm init` or point DOCKER_HOST at a manager"
    )]
    NotSwarmManager,
    #[error("the {backend} backend does not support {operation}")]
    Unsupported {
        backend: &'static str,
        operation: &'static str,
    },
}

/// How a rolling update of a stack's image ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpdateOutcome {
    /// The new image runs and passed the backend's checks.
    Updated,
    /// The new image failed and the stack went back to the old one, which
    /// still runs; `reason` says what failed.
    RolledBack { reason: String },
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

    /// Step "project": where the stack lives (a network, a data volume, a
    /// Dokploy project: whatever the backend groups a stack's parts in).
    async fn ensure_project(&self, spec: &StackSpec) -> Result<(), EngineError>;

    /// Step "application": what runs the stack, defined but not yet
    /// necessarily running (a created container, a service, a Dokploy
    /// application with its image, environment and domain).
    async fn ensure_application(&self, spec: &StackSpec) -> Result<(), EngineError>;

    /// Step "deploy": runs the application and waits until it is ready, at
    /// most `timeout`. Readiness and where the stack answers are the
    /// backend's business (a published port, a service name, a domain);
    /// ready means an HTTP status below 500, or the image's own health
    /// check where it has one.
    async fn deploy(&self, spec: &StackSpec, timeout: Duration) -> Result<Endpoint, EngineError>;

    /// Where a stack answers now; `None` when it is not running.
    async fn endpoint(&self, name: &StackName) -> Result<Option<Endpoint>, EngineError>;

    /// Removes everything the stack owns; returns what was removed.
    async fn remove_stack(&self, name: &StackName) -> Result<Vec<StackResource>, EngineError>;

    /// Removes only the stack's application (its container), keeping its
    /// data: the first half of making it again. Safe to repeat. Returns the
    /// id of what it removed, whose events are old news from then on.
    async fn remove_application(&self, name: &StackName) -> Result<Option<String>, EngineError>;

    /// Every resource of this instance that belongs to some stack.
    async fn stack_resources(&self) -> Result<Vec<StackResource>, EngineError>;

    /// What every stack of this instance is doing now, in one look.
    async fn stack_states(&self) -> Result<Vec<(StackName, StackState)>, EngineError>;

    /// What happens to this instance's stacks from now on, as it happens.
    /// The stream ends or fails when the backend's feed does; callers
    /// subscribe again and look at [`Engine::stack_states`] for what they
    /// missed.
    fn stack_events(&self) -> BoxStream<'static, Result<StackEvent, EngineError>>;

    /// Whether the stack at `endpoint` answers well: an HTTP status below
    /// 500, within a couple of seconds.
    async fn probe(&self, endpoint: &Endpoint) -> bool;

    /// Replaces a running stack's image in place, the backend keeping it
    /// answering while it can and going back to the old image when the new
    /// one fails; waits at most `timeout` for the outcome. Backends that
    /// make stacks again instead (remove, then deploy) say
    /// [`EngineError::Unsupported`].
    async fn update_image(
        &self,
        name: &StackName,
        image: &str,
        timeout: Duration,
    ) -> Result<UpdateOutcome, EngineError> {
        let _ = (name, image, timeout);
        Err(EngineError::Unsupported {
            backend: self.backend(),
            operation: "rolling updates",
        })
    }
}

/// What a stack's application is doing, as the backend sees it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StackState {
    /// It runs. `healthy` is the image's own health check's verdict when it
    /// has one; `attached` says whether it is on a network at all.
    Running {
        id: String,
        healthy: Option<bool>,
        attached: bool,
        endpoint: Option<Endpoint>,
    },
    /// It stopped, with its exit code; `oom` when the kernel killed it for
    /// memory; `finished` when it did, as the engine says it (RFC 3339).
    Exited {
        id: String,
        code: i64,
        oom: bool,
        finished: Option<String>,
    },
}

/// Something that happened to a stack, or to the network they share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StackEvent {
    /// Stack `stack`'s container (`id`) changed.
    Container {
        stack: StackName,
        id: String,
        change: ContainerChange,
    },
    /// A network stacks use lost a container or went away: look again.
    Network,
}

/// What happened to a stack's container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContainerChange {
    Started,
    /// Someone sent it a signal (a stop or a kill), just before it died.
    Signalled(String),
    /// The kernel killed it for memory.
    OutOfMemory,
    Died {
        code: i64,
    },
    Removed,
    /// Its own health check changed its verdict.
    Health(bool),
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

/// The numeric user and group a container's processes run as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UserIds {
    pub uid: u32,
    pub gid: u32,
}

/// What a backend needs to run one agent.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentSpec {
    pub id: AgentId,
    pub image: String,
    /// Who its processes run as; `None` keeps the image's (root) user.
    pub user: Option<UserIds>,
    pub limits: ResourceLimits,
    pub env: Vec<(String, String)>,
    pub mounts: Vec<AgentMount>,
    pub working_dir: String,
    /// Extra groups for the agent's processes (the control socket's group).
    pub group_add: Vec<String>,
    /// Whether it runs on a terminal (an interactive agent a person can
    /// attach to and watch); without one its stdout and stderr stay
    /// separate streams.
    pub tty: bool,
}

/// A terminal's size, in character cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TtySize {
    pub cols: u16,
    pub rows: u16,
}

/// Resizes the terminal an [`AgentIo`] is attached to.
pub type ResizeTty = Box<
    dyn Fn(TtySize) -> futures::future::BoxFuture<'static, Result<(), EngineError>> + Send + Sync,
>;

/// A live connection to an agent's terminal: what it prints, a writer to
/// its stdin, and its window size.
pub struct AgentIo {
    pub output: BoxStream<'static, Result<Bytes, EngineError>>,
    pub input: Pin<Box<dyn AsyncWrite + Send>>,
    /// Tells the agent's terminal its new size (a person's window changed).
    pub resize: ResizeTty,
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

    /// Builds `tag` from the Dockerfile in the directory `context`.
    async fn build_image(&self, tag: &str, context: &std::path::Path) -> Result<(), EngineError>;

    /// The non-root user `image` says its processes run as, as numbers;
    /// `None` when it runs them as root.
    async fn image_user(&self, image: &str) -> Result<Option<UserIds>, EngineError>;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_parse_like_docker_and_refuse_nonsense() {
        assert_eq!(parse_memory("512m"), Ok(Some(512 << 20)));
        assert_eq!(parse_memory("4G"), Ok(Some(4 << 30)));
        assert_eq!(parse_memory("1.5gib"), Ok(Some(3 << 29)));
        assert_eq!(parse_memory("none"), Ok(None));
        for bad in ["", "lots", "1x", "1k", "-1g"] {
            assert!(parse_memory(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_cpus("0.5"), Ok(Some(0.5)));
        assert_eq!(parse_cpus("none"), Ok(None));
        for bad in ["0", "-1", "many", "NaN"] {
            assert!(parse_cpus(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_whole_agentyard_prefix_is_reserved() {
        for ours in [
            "agentyard.agent",
            "agentyard.managed",
            "AgentYard.X",
            "agentyard.",
        ] {
            assert!(is_reserved_label(ours), "{ours}");
        }
        for theirs in ["team", "agentyard-test", "io.agentyard", "agentyard"] {
            assert!(!is_reserved_label(theirs), "{theirs}");
        }
    }
}
