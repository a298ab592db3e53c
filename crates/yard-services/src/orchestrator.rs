//! The orchestrator: puts agents on a task, each in its own container with
//! its own checkout, branch and credential, and brings their work back.
//!
//! An agent's row is written before anything is made for it, so after a
//! crash the store names every checkout and container that may exist.
//! Agents do not outlive the yard: sibling containers are not its children,
//! so [`Orchestrator::stop_all`] removes them on shutdown and
//! [`Orchestrator::reap`] removes what a crashed run left. Their branches
//! and checkouts stay for review until [`Orchestrator::prune`].
//!
//! Agents belong to people. Every request names its [`Actor`]: a person
//! sees and acts on their own agents (an admin on all), and an agent, with
//! its own credential, on itself and the agents it spawned, spawning only
//! on its own repository, only as many as the policy's `[agents] may_spawn`
//! allows. Users spawn only inside the repository roots and only the
//! allowed images; caps on running agents per owner and in all hold on
//! every path, checked and recorded under one lock. An agent someone may
//! not see answers exactly as one that does not exist.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::stream::BoxStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use yard_core::{Actor, Agent, AgentId, AgentStatus, ImageRef, ImageRefError, Owner};
use yard_engine::{
    AgentIo, AgentMount, AgentRuntime, AgentSpec, EngineError, MountSource, ResourceLimits, UserIds,
};
use yard_git::{Commit, GitError, MergeOutcome, Repo};
use yard_store::{AgentTransition, Store, StoreError};

use crate::agent_images::AgentImages;
use crate::auth::hash_token;
use crate::hooks::PolicyWatch;
use crate::locks::NameLocks;
use crate::repo_roots::{RepoPathError, RepoRoots};
use crate::{EventBus, YardEvent, now};

/// Where the control socket appears in every agent container.
pub const AGENT_SOCKET: &str = "/run/agentyard/control.sock";
/// Where an agent's checkout appears in its container.
pub const AGENT_WORKSPACE: &str = "/workspace";
/// Where the yard's own binary appears, when it lends it to agents.
const AGENT_YARD_BINARY: &str = "/usr/local/bin/yard";
/// Every agent's credential starts with this.
pub const AGENT_TOKEN_PREFIX: &str = "yard_agent_";
/// How far up a chain of spawns the yard looks for an ancestor.
const MAX_SPAWN_DEPTH: usize = 64;

/// How agents reach the control socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlAccess {
    /// The socket file on the engine's host, bind-mounted at
    /// [`AGENT_SOCKET`]. Only the socket is shared, never the data
    /// directory around it (it holds the admin token and the store).
    SocketFile(PathBuf),
    /// A named volume holding the socket's directory, mounted at
    /// `/run/agentyard`: for a yard that itself runs in a container.
    Volume(String),
}

/// A shared build cache: a named volume, where it is mounted, and the
/// variable that tells tools to use it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheVolume {
    pub volume: String,
    pub target: String,
    pub env: Option<String>,
}

impl CacheVolume {
    /// `NAME:PATH[:VARIABLE]`, e.g. `agentyard-cargo-cache:/cache/cargo:CARGO_HOME`.
    pub fn parse(spec: &str) -> Result<Self, String> {
        let mut parts = spec.splitn(3, ':');
        let volume = parts.next().unwrap_or_default().trim();
        let target = parts.next().unwrap_or_default().trim();
        let env = parts.next().map(str::trim).filter(|v| !v.is_empty());
        let name_ok = !volume.is_empty()
            && volume
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !name_ok || !target.starts_with('/') {
            return Err(format!(
                "{spec:?} is not NAME:/PATH[:VARIABLE] (for example agentyard-cargo-cache:/cache/cargo:CARGO_HOME)"
            ));
        }
        Ok(Self {
            volume: volume.to_owned(),
            target: target.to_owned(),
            env: env.map(str::to_owned),
        })
    }

    /// The caches agents get unless configured otherwise.
    pub fn defaults() -> Vec<Self> {
        [
            "agentyard-cargo-cache:/cache/cargo:CARGO_HOME",
            "agentyard-npm-cache:/cache/npm:npm_config_cache",
            "agentyard-pip-cache:/cache/pip:PIP_CACHE_DIR",
        ]
        .iter()
        .filter_map(|spec| Self::parse(spec).ok())
        .collect()
    }
}

/// What the orchestrator needs to know.
#[derive(Debug, Clone)]
pub struct OrchestratorConfig {
    pub instance: String,
    /// The image agents run unless a spawn names another.
    pub agent_image: String,
    /// The images users' and agents' spawns may run; admins may run any.
    pub allowed_images: AgentImages,
    /// Where repositories must be for users' spawns.
    pub repo_roots: RepoRoots,
    /// The most agents one spawn may ask for.
    pub max_agents: u32,
    /// The most agents one person may have running, their agents' children
    /// included.
    pub max_agents_per_owner: u32,
    /// The most agents this yard runs at once.
    pub max_agents_total: u32,
    /// What each agent's container may use.
    pub limits: ResourceLimits,
    /// Where checkouts are made, one directory per agent.
    pub checkouts_dir: PathBuf,
    pub control: ControlAccess,
    /// The control socket's group, added to agent processes so a non-root
    /// agent can reach a 0660 socket.
    pub socket_group: Option<u32>,
    pub caches: Vec<CacheVolume>,
    /// More environment for every agent (API keys, proxies).
    pub agent_env: Vec<(String, String)>,
    /// Lend this binary to agents at `/usr/local/bin/yard`, for images that
    /// do not have `yard` for their hooks (it must suit the image's libc).
    pub lend_binary: Option<PathBuf>,
    /// How long an agent gets between SIGTERM and SIGKILL.
    pub stop_grace: Duration,
    /// How agents run their client.
    pub mode: AgentMode,
}

/// How agents run their client (`YARD_AGENT_MODE`, passed to the agent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AgentMode {
    /// Scripted (`claude --print`): no terminal, stdout and stderr apart.
    #[default]
    Headless,
    /// On a terminal (Claude Code in a tmux session), so a person who
    /// attaches sees the live session and can type into it.
    Interactive,
}

impl AgentMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Headless => "headless",
            Self::Interactive => "interactive",
        }
    }
}

/// A request for agents.
#[derive(Debug, Clone)]
pub struct SpawnRequest {
    /// The source repository; an agent spawning children may leave it out
    /// (its own is the only one it may use).
    pub repo: Option<PathBuf>,
    pub count: u32,
    pub task: String,
    pub image: Option<String>,
    pub base: Option<String>,
}

/// An agent's work against its base.
#[derive(Debug, Clone)]
pub struct AgentDiff {
    pub agent: Agent,
    pub commits: Vec<Commit>,
    pub patch: String,
}

/// Why an orchestrator request failed.
#[derive(Debug, thiserror::Error)]
pub enum OrchestratorError {
    #[error("count must be between 1 and {max}, not {count}")]
    BadCount { count: u32, max: u32 },
    #[error("the task is empty; say what the agents should do")]
    EmptyTask,
    #[error(transparent)]
    RepoPath(#[from] RepoPathError),
    #[error(transparent)]
    BadImage(#[from] ImageRefError),
    #[error(
        "image {image:?} is not one users may run ({allowed}); ask an admin to add it to YARD_AGENT_IMAGES"
    )]
    ImageNotAllowed { image: String, allowed: String },
    #[error("image {0:?} is not on the engine; build or load it there first")]
    NoImage(String),
    /// The caller may not do this (an agent's limits, an agent stopping
    /// itself); the reason says why.
    #[error("{0}")]
    Forbidden(String),
    #[error(
        "{running} agents are running for {scope} and the limit is {limit}; stop some first, or ask an admin to raise {setting}"
    )]
    TooManyAgents {
        scope: &'static str,
        running: i64,
        limit: u32,
        setting: &'static str,
    },
    #[error("there is no agent {0:?}")]
    NoSuchAgent(String),
    #[error("agent {id} is {status}, not running")]
    NotRunning { id: AgentId, status: AgentStatus },
    #[error("the logs of agent {0} are gone with its container")]
    NoContainer(AgentId),
    #[error(transparent)]
    Git(#[from] GitError),
    #[error("{context}: {source}")]
    Io {
        context: &'static str,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// The orchestrator; cheap to clone.
#[derive(Debug, Clone)]
pub struct Orchestrator {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Store,
    runtime: Arc<dyn AgentRuntime>,
    bus: EventBus,
    /// The policy, for what agents may spawn.
    policy: Arc<PolicyWatch>,
    config: OrchestratorConfig,
    /// Held while a spawn counts running agents and records new ones, so
    /// two spawns cannot both fit under a cap that fits only one.
    admission: tokio::sync::Mutex<()>,
    /// One lock per source repository: fetches and merges into one
    /// repository take turns.
    repo_locks: NameLocks,
    monitors: TaskTracker,
    stopping: CancellationToken,
}

impl Orchestrator {
    pub fn new(
        store: Store,
        runtime: Arc<dyn AgentRuntime>,
        bus: EventBus,
        policy: Arc<PolicyWatch>,
        config: OrchestratorConfig,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                runtime,
                bus,
                policy,
                config,
                admission: tokio::sync::Mutex::new(()),
                repo_locks: NameLocks::default(),
                monitors: TaskTracker::new(),
                stopping: CancellationToken::new(),
            }),
        }
    }

    /// Starts `count` agents on `task` for `by`, all at once. Everything is
    /// checked before anything is made, so a refused request leaves nothing
    /// behind, and the repository's configuration is touched only once the
    /// spawn is admitted.
    pub async fn spawn(
        &self,
        by: &Actor,
        request: SpawnRequest,
    ) -> Result<Vec<Agent>, OrchestratorError> {
        let config = &self.inner.config;
        if request.count == 0 || request.count > config.max_agents {
            return Err(OrchestratorError::BadCount {
                count: request.count,
                max: config.max_agents,
            });
        }
        if request.task.trim().is_empty() {
            return Err(OrchestratorError::EmptyTask);
        }
        let owner = by.owner().cloned().ok_or_else(|| {
            OrchestratorError::Forbidden(
                "this agent has no recorded owner, so it cannot spawn agents".to_owned(),
            )
        })?;
        let admin = by.is_admin();
        let (repo, parent) = match by {
            Actor::Person(_) => {
                let asked = request.repo.as_deref().ok_or(RepoPathError::Missing)?;
                let path = config.repo_roots.permit(asked, admin)?;
                let repo = Repo::open(&path).await?;
                // git may have found the repository above the path asked for.
                config.repo_roots.holds(repo.path(), admin)?;
                config.repo_roots.holds(repo.common_dir(), admin)?;
                (repo, None)
            }
            Actor::Agent(agent) => (
                self.own_repo(agent, request.repo.as_deref()).await?,
                Some(agent.id.clone()),
            ),
        };
        let base_ref = request.base.clone().unwrap_or_else(|| "HEAD".to_owned());
        let base_commit = repo.resolve_commit(&base_ref).await?;
        let image = ImageRef::parse(request.image.as_deref().unwrap_or(&config.agent_image))?;
        if !admin && !config.allowed_images.allows(&image) {
            return Err(OrchestratorError::ImageNotAllowed {
                image: image.to_string(),
                allowed: config.allowed_images.describe(),
            });
        }
        let image = image.to_string();
        // Who the agents run as; looking it up also tells that the image is
        // on the engine.
        let user = match self.inner.runtime.image_user(&image).await {
            Err(EngineError::ImageNotFound { .. }) => {
                return Err(OrchestratorError::NoImage(image));
            }
            found => found?,
        };
        for cache in &config.caches {
            self.inner
                .runtime
                .ensure_cache_volume(&cache.volume)
                .await?;
        }
        let planned = Planned {
            owner,
            parent,
            repo: repo.path().display().to_string(),
            base_ref,
            base_commit,
            task: request.task,
            image,
        };
        let admitted = self.admit(&planned, request.count).await?;
        if let Err(e) = self.prepare(&repo).await {
            for (agent, _) in &admitted {
                self.fail(&agent.id, &e).await;
            }
            return Err(e);
        }
        let launches = admitted
            .into_iter()
            .map(|(agent, token)| self.launch(agent, token, &repo, user));
        let agents = futures::future::join_all(launches).await;
        agents.into_iter().collect()
    }

    /// The repository an agent may spawn children on: its own. A path it
    /// names must be that one.
    async fn own_repo(
        &self,
        agent: &Agent,
        asked: Option<&Path>,
    ) -> Result<Repo, OrchestratorError> {
        let may_spawn = self.inner.policy.policy().may_spawn();
        if may_spawn == 0 {
            return Err(OrchestratorError::Forbidden(
                "agents may not spawn agents here; the policy's [agents] may_spawn allows none"
                    .to_owned(),
            ));
        }
        let own = Path::new(&agent.repo);
        if let Some(asked) = asked
            && asked != own
            && std::fs::canonicalize(asked).ok().as_deref() != Some(own)
        {
            return Err(OrchestratorError::Forbidden(format!(
                "an agent may spawn agents only on its own repository ({}); leave repo out",
                agent.repo
            )));
        }
        Ok(Repo::open(own).await?)
    }

    /// Checks the caps and records the agents, under the admission lock.
    /// Returns each agent with its credential.
    async fn admit(
        &self,
        planned: &Planned,
        count: u32,
    ) -> Result<Vec<(Agent, String)>, OrchestratorError> {
        let config = &self.inner.config;
        let _admission = self.inner.admission.lock().await;
        let (total, owners) = self
            .inner
            .store
            .live_agent_counts(&config.instance, &planned.owner.id)
            .await?;
        let wanted = i64::from(count);
        if total + wanted > i64::from(config.max_agents_total) {
            return Err(OrchestratorError::TooManyAgents {
                scope: "this yard",
                running: total,
                limit: config.max_agents_total,
                setting: "YARD_MAX_AGENTS_TOTAL",
            });
        }
        if owners + wanted > i64::from(config.max_agents_per_owner) {
            return Err(OrchestratorError::TooManyAgents {
                scope: "one person",
                running: owners,
                limit: config.max_agents_per_owner,
                setting: "YARD_MAX_AGENTS_PER_OWNER",
            });
        }
        if let Some(parent) = &planned.parent {
            let may_spawn = self.inner.policy.policy().may_spawn();
            let spawned = self.inner.store.child_count(parent).await?;
            if spawned + wanted > i64::from(may_spawn) {
                return Err(OrchestratorError::Forbidden(format!(
                    "an agent may spawn {may_spawn} agents in its life ([agents] may_spawn) and this one has spawned {spawned}"
                )));
            }
        }
        let mut admitted = Vec::with_capacity(count as usize);
        for _ in 0..count {
            let id = AgentId::generate();
            let token = format!(
                "{AGENT_TOKEN_PREFIX}{}",
                hex::encode(rand::random::<[u8; 32]>())
            );
            let created = now();
            let agent = Agent {
                instance: config.instance.clone(),
                owner: Some(planned.owner.clone()),
                parent: planned.parent.clone(),
                repo: planned.repo.clone(),
                base_ref: planned.base_ref.clone(),
                base_commit: planned.base_commit.clone(),
                task: planned.task.clone(),
                image: planned.image.clone(),
                status: AgentStatus::Starting,
                exit_code: None,
                message: None,
                checkout: config.checkouts_dir.join(id.as_str()).display().to_string(),
                head_commit: None,
                created_at: created,
                updated_at: created,
                id,
            };
            self.inner
                .store
                .insert_agent(&agent, &hash_token(&token))
                .await?;
            self.publish(&agent.id).await;
            admitted.push((agent, token));
        }
        Ok(admitted)
    }

    /// What a spawn does to the source repository and the yard's files
    /// once admitted: objects kept from `git gc`, a private checkouts
    /// directory.
    async fn prepare(&self, repo: &Repo) -> Result<(), OrchestratorError> {
        repo.protect_objects().await?;
        private_dir(&self.inner.config.checkouts_dir).await
    }

    /// Records that agent `id` could not start, with `error`.
    async fn fail(&self, id: &AgentId, error: &OrchestratorError) {
        tracing::warn!(agent = %id, error = %error, "agent failed to start");
        let failed = self
            .transition(
                id,
                &[AgentStatus::Starting],
                AgentStatus::Failed,
                None,
                Some(error.to_string()),
            )
            .await;
        if let Err(e) = failed {
            tracing::error!(agent = %id, error = %e, "cannot record the agent's failure");
        }
    }

    /// Checks out and starts one recorded agent. A failure is recorded on
    /// the agent (status `failed`), not returned.
    async fn launch(
        &self,
        agent: Agent,
        token: String,
        repo: &Repo,
        user: Option<UserIds>,
    ) -> Result<Agent, OrchestratorError> {
        let id = agent.id.clone();
        let checkout = PathBuf::from(&agent.checkout);
        let started = async {
            repo.create_checkout(&checkout, &id.branch(), &agent.base_commit)
                .await?;
            make_private(&checkout, user).await?;
            let spec = self.spec(&agent, repo, &token, user);
            self.inner.runtime.start_agent(&spec).await?;
            Ok::<(), OrchestratorError>(())
        }
        .await;
        match started {
            Ok(()) => {
                self.transition(
                    &id,
                    &[AgentStatus::Starting],
                    AgentStatus::Running,
                    None,
                    None,
                )
                .await?;
                tracing::info!(agent = %id, repo = %agent.repo, base = %agent.base_commit, image = %agent.image, owner = ?agent.owner.as_ref().map(|o| &o.name), "agent running");
                self.monitor(id.clone());
            }
            Err(e) => {
                let _ = tokio::fs::remove_dir_all(&checkout).await;
                self.fail(&id, &e).await;
            }
        }
        self.load(&id).await
    }

    fn spec(&self, agent: &Agent, repo: &Repo, token: &str, user: Option<UserIds>) -> AgentSpec {
        let config = &self.inner.config;
        let identity = format!("agentyard agent {}", agent.id);
        let email = format!("agent-{}@agentyard.invalid", agent.id);
        let mut env = vec![
            ("YARD_AGENT_ID".to_owned(), agent.id.to_string()),
            ("YARD_TASK".to_owned(), agent.task.clone()),
            ("YARD_AGENT_TOKEN".to_owned(), token.to_owned()),
            ("YARD_SOCKET".to_owned(), AGENT_SOCKET.to_owned()),
            (
                "YARD_AGENT_MODE".to_owned(),
                config.mode.as_str().to_owned(),
            ),
            // The borrowed objects belong to the repository's owner, not
            // to the user the agent runs as.
            ("GIT_CONFIG_COUNT".to_owned(), "1".to_owned()),
            ("GIT_CONFIG_KEY_0".to_owned(), "safe.directory".to_owned()),
            ("GIT_CONFIG_VALUE_0".to_owned(), "*".to_owned()),
            ("GIT_AUTHOR_NAME".to_owned(), identity.clone()),
            ("GIT_AUTHOR_EMAIL".to_owned(), email.clone()),
            ("GIT_COMMITTER_NAME".to_owned(), identity),
            ("GIT_COMMITTER_EMAIL".to_owned(), email),
        ];
        env.extend(config.agent_env.iter().cloned());
        let objects = repo.objects_dir();
        let mut mounts = vec![
            AgentMount {
                source: MountSource::Bind(PathBuf::from(&agent.checkout)),
                target: AGENT_WORKSPACE.to_owned(),
                read_only: false,
            },
            // The alternates file names this path, so it appears at the
            // same place inside, and only for reading.
            AgentMount {
                source: MountSource::Bind(objects.clone()),
                target: objects.display().to_string(),
                read_only: true,
            },
            match &config.control {
                ControlAccess::SocketFile(path) => AgentMount {
                    source: MountSource::Bind(path.clone()),
                    target: AGENT_SOCKET.to_owned(),
                    read_only: false,
                },
                ControlAccess::Volume(volume) => AgentMount {
                    source: MountSource::Volume(volume.clone()),
                    target: "/run/agentyard".to_owned(),
                    read_only: false,
                },
            },
        ];
        for cache in &config.caches {
            mounts.push(AgentMount {
                source: MountSource::Volume(cache.volume.clone()),
                target: cache.target.clone(),
                read_only: false,
            });
            if let Some(var) = &cache.env {
                env.push((var.clone(), cache.target.clone()));
            }
        }
        if let Some(binary) = &config.lend_binary {
            mounts.push(AgentMount {
                source: MountSource::Bind(binary.clone()),
                target: AGENT_YARD_BINARY.to_owned(),
                read_only: true,
            });
        }
        AgentSpec {
            id: agent.id.clone(),
            image: agent.image.clone(),
            user,
            limits: config.limits,
            env,
            mounts,
            working_dir: AGENT_WORKSPACE.to_owned(),
            group_add: config
                .socket_group
                .map(|g| g.to_string())
                .into_iter()
                .collect(),
            tty: config.mode == AgentMode::Interactive,
        }
    }

    /// Waits for the agent's container to exit, then brings its branch back
    /// and records the exit.
    fn monitor(&self, id: AgentId) {
        let this = self.clone();
        let stopping = self.inner.stopping.clone();
        self.inner.monitors.spawn(async move {
            let exit = tokio::select! {
                exit = this.inner.runtime.wait_agent(&id) => exit,
                () = stopping.cancelled() => return,
            };
            let (code, message) = match exit {
                Ok(code) => (Some(code), None),
                Err(e) => (None, Some(format!("lost track of the container: {e}"))),
            };
            // Its branch comes back first: `exited` means the work is in
            // the source repository.
            this.bring_back(&id).await;
            let exited = this
                .transition(
                    &id,
                    &[AgentStatus::Running],
                    AgentStatus::Exited,
                    code,
                    message,
                )
                .await;
            match exited {
                Ok(true) => tracing::info!(agent = %id, exit_code = ?code, "agent exited"),
                Ok(false) => {}
                Err(e) => {
                    tracing::error!(agent = %id, error = %e, "cannot record the agent's exit")
                }
            }
        });
    }

    /// One agent, whoever asks: for the yard's own bookkeeping.
    async fn load(&self, id: &AgentId) -> Result<Agent, OrchestratorError> {
        self.inner
            .store
            .agent(id)
            .await?
            .ok_or_else(|| OrchestratorError::NoSuchAgent(id.to_string()))
    }

    /// One agent, if `by` may see it; one it may not see is "no such agent",
    /// exactly as one that does not exist.
    pub async fn agent(&self, by: &Actor, id: &AgentId) -> Result<Agent, OrchestratorError> {
        let agent = self.load(id).await?;
        if self.sees(by, &agent).await? {
            Ok(agent)
        } else {
            Err(OrchestratorError::NoSuchAgent(id.to_string()))
        }
    }

    /// Whether `by` may see `agent`: a person their own (an admin all), an
    /// agent itself and those it spawned, and they spawned.
    async fn sees(&self, by: &Actor, agent: &Agent) -> Result<bool, StoreError> {
        match by {
            Actor::Person(person) => Ok(person.may_manage(agent.owner.as_ref())),
            Actor::Agent(me) => Ok(agent.id == me.id || self.descends_from(agent, &me.id).await?),
        }
    }

    /// Whether `ancestor` spawned `agent`, or an agent that did.
    async fn descends_from(&self, agent: &Agent, ancestor: &AgentId) -> Result<bool, StoreError> {
        let mut parent = agent.parent.clone();
        for _ in 0..MAX_SPAWN_DEPTH {
            match parent {
                None => return Ok(false),
                Some(id) if id == *ancestor => return Ok(true),
                Some(id) => parent = self.inner.store.agent(&id).await?.and_then(|a| a.parent),
            }
        }
        Ok(false)
    }

    /// The agents `by` may see, newest first.
    pub async fn agents(&self, by: &Actor, limit: i64) -> Result<Vec<Agent>, OrchestratorError> {
        let store = &self.inner.store;
        Ok(match by {
            Actor::Person(person) if person.is_admin() => store.agents(limit).await?,
            Actor::Person(person) => store.agents_of_owner(&person.owner.id, limit).await?,
            Actor::Agent(me) => store.agent_tree(&me.id, limit).await?,
        })
    }

    /// The live agent a credential belongs to, if any and if its owner
    /// still has an active token.
    pub async fn authenticate(&self, token: &str) -> Result<Option<Agent>, StoreError> {
        if !token.starts_with(AGENT_TOKEN_PREFIX) {
            return Ok(None);
        }
        self.inner
            .store
            .live_agent_by_token_hash(&hash_token(token))
            .await
    }

    /// Stops an agent for `by` and removes its container; its checkout and
    /// branch stay. Stopping an agent that already ended only removes what
    /// is left of its container. An agent may stop only agents it spawned
    /// (or they did).
    pub async fn stop(&self, by: &Actor, id: &AgentId) -> Result<Agent, OrchestratorError> {
        let agent = self.agent(by, id).await?;
        let reason = match by {
            Actor::Agent(me) if agent.id == me.id => {
                return Err(OrchestratorError::Forbidden(
                    "an agent may stop only agents it spawned; to end, finish its task".to_owned(),
                ));
            }
            Actor::Agent(me) => format!("stopped by agent {}", me.id),
            Actor::Person(person) => format!("stopped by {}", person.owner.name),
        };
        self.stop_agent(id, reason).await
    }

    /// Stops the live agents of owner `owner`: their person's token was
    /// revoked. Returns the agents stopped.
    pub async fn stop_agents_of(&self, owner: &Owner) -> Result<Vec<Agent>, OrchestratorError> {
        let live = self
            .inner
            .store
            .agents_of_owner_with_status(&self.inner.config.instance, &owner.id, &AgentStatus::LIVE)
            .await?;
        let mut stopped = Vec::with_capacity(live.len());
        for agent in live {
            let reason = format!("the token of {} was revoked", owner.name);
            stopped.push(self.stop_agent(&agent.id, reason).await?);
        }
        Ok(stopped)
    }

    async fn stop_agent(&self, id: &AgentId, reason: String) -> Result<Agent, OrchestratorError> {
        // Recorded first, so the exit the removal causes is not mistaken
        // for the agent finishing on its own.
        let stopped = self
            .transition(
                id,
                &AgentStatus::LIVE,
                AgentStatus::Stopped,
                None,
                Some(reason),
            )
            .await?;
        self.inner
            .runtime
            .remove_agent(id, self.inner.config.stop_grace)
            .await?;
        if stopped {
            self.bring_back(id).await;
        }
        self.load(id).await
    }

    /// Stops every live agent of this instance and removes every agent
    /// container it has: the yard is stopping. Bounded by `within`.
    pub async fn stop_all(&self, within: Duration) {
        self.inner.stopping.cancel();
        let grace = self.inner.config.stop_grace.min(within / 2);
        let removal = async {
            let mut ids: Vec<AgentId> = self
                .inner
                .runtime
                .agent_containers()
                .await
                .unwrap_or_default();
            if let Ok(live) = self.live().await {
                ids.extend(live.into_iter().map(|a| a.id));
            }
            ids.sort();
            ids.dedup();
            let removals = ids
                .iter()
                .map(|id| self.inner.runtime.remove_agent(id, grace));
            futures::future::join_all(removals).await;
        };
        if tokio::time::timeout(within, removal).await.is_err() {
            tracing::error!("agent containers were not all removed in time");
        }
        self.settle_live("the yard stopped").await;
        self.inner.monitors.close();
        self.inner.monitors.wait().await;
    }

    /// On a first boot: builds the default agent image from the Dockerfile
    /// in `context` when the engine does not have it, so a fresh container
    /// can spawn agents without a registry. Calls `building` when it starts
    /// to build, and says whether it built.
    pub async fn ensure_agent_image(
        &self,
        context: &Path,
        building: impl FnOnce(),
    ) -> Result<bool, OrchestratorError> {
        let image = &self.inner.config.agent_image;
        if self.inner.runtime.image_exists(image).await? {
            return Ok(false);
        }
        building();
        tracing::info!(%image, context = %context.display(), "building the agent image");
        self.inner.runtime.build_image(image, context).await?;
        tracing::info!(%image, "agent image built");
        self.learn_agent_image().await;
        Ok(true)
    }

    /// At start: learns which user the default agent image runs as, so the
    /// first spawn does not wait for it. A missing image is only logged:
    /// spawns say so themselves.
    pub async fn learn_agent_image(&self) {
        let image = &self.inner.config.agent_image;
        match self.inner.runtime.image_user(image).await {
            Ok(Some(user)) => {
                tracing::info!(%image, uid = user.uid, gid = user.gid, "agents run as the image's user")
            }
            Ok(None) => tracing::info!(%image, "agents run as root: the image names no other user"),
            Err(e) => tracing::warn!(%image, error = %e, "cannot look at the agent image yet"),
        }
    }

    /// At start: removes agent containers an earlier run of this instance
    /// left behind, records their agents as stopped and keeps their work.
    pub async fn reap(&self) -> Result<usize, OrchestratorError> {
        let leftovers = self.inner.runtime.agent_containers().await?;
        for id in &leftovers {
            self.inner.runtime.remove_agent(id, Duration::ZERO).await?;
            tracing::warn!(agent = %id, "removed an agent container left by an earlier run");
        }
        self.settle_live("the yard restarted, and agents do not outlive it")
            .await;
        Ok(leftovers.len())
    }

    async fn live(&self) -> Result<Vec<Agent>, StoreError> {
        self.inner
            .store
            .agents_with_status(&self.inner.config.instance, &AgentStatus::LIVE)
            .await
    }

    /// Records every live agent as stopped for `reason` and brings its
    /// branch back.
    async fn settle_live(&self, reason: &str) {
        let Ok(live) = self.live().await else {
            tracing::error!("cannot list live agents");
            return;
        };
        for agent in live {
            let moved = self
                .transition(
                    &agent.id,
                    &AgentStatus::LIVE,
                    AgentStatus::Stopped,
                    None,
                    Some(reason.to_owned()),
                )
                .await;
            if matches!(moved, Ok(true)) {
                self.bring_back(&agent.id).await;
            }
        }
    }

    /// Fetches the agent's branch into its source repository and records
    /// its head. Failures are logged: the checkout still has the work.
    async fn bring_back(&self, id: &AgentId) {
        if let Err(e) = self.fetch(id).await {
            tracing::warn!(agent = %id, error = %e, "cannot bring the agent's branch back yet");
        }
    }

    async fn fetch(&self, id: &AgentId) -> Result<(Agent, Repo), OrchestratorError> {
        let agent = self.load(id).await?;
        let repo = Repo::open(Path::new(&agent.repo)).await?;
        let _turn = self.inner.repo_locks.lock(&agent.repo).await;
        if let Some(head) = repo
            .fetch_branch(
                Path::new(&agent.checkout),
                &agent.branch(),
                &agent.base_commit,
            )
            .await?
            && agent.head_commit.as_deref() != Some(head.as_str())
        {
            self.inner.store.set_agent_head(id, &head, now()).await?;
            self.publish(id).await;
        }
        Ok((self.load(id).await?, repo))
    }

    /// The agent's commits and changes against its base.
    pub async fn diff(&self, by: &Actor, id: &AgentId) -> Result<AgentDiff, OrchestratorError> {
        self.agent(by, id).await?;
        let (agent, repo) = self.fetch(id).await?;
        let commits = repo.commits(&agent.base_commit, &agent.branch()).await?;
        let patch = repo.diff(&agent.base_commit, &agent.branch()).await?;
        Ok(AgentDiff {
            agent,
            commits,
            patch,
        })
    }

    /// Merges the agent's branch into the branch checked out in its source
    /// repository, or changes nothing and names the conflicting files.
    pub async fn merge(&self, by: &Actor, id: &AgentId) -> Result<MergeOutcome, OrchestratorError> {
        self.agent(by, id).await?;
        let (agent, repo) = self.fetch(id).await?;
        let _turn = self.inner.repo_locks.lock(&agent.repo).await;
        let summary = agent.task.lines().next().unwrap_or_default();
        let summary: String = summary.chars().take(72).collect();
        let message = format!(
            "Merge agent {} ({})\n\nTask: {summary}",
            agent.id,
            agent.branch()
        );
        Ok(repo.merge(&agent.branch(), &message).await?)
    }

    /// The agent's output; with `follow`, until its container stops.
    pub async fn logs(
        &self,
        by: &Actor,
        id: &AgentId,
        follow: bool,
        tail: Option<u32>,
    ) -> Result<BoxStream<'static, Result<Bytes, EngineError>>, OrchestratorError> {
        let agent = self.agent(by, id).await?;
        let containers = self.inner.runtime.agent_containers().await?;
        if !containers.contains(id) {
            return Err(OrchestratorError::NoContainer(agent.id));
        }
        Ok(self.inner.runtime.agent_logs(id, follow, tail))
    }

    /// A live connection to a running agent's terminal.
    pub async fn attach(&self, by: &Actor, id: &AgentId) -> Result<AgentIo, OrchestratorError> {
        let agent = self.agent(by, id).await?;
        if agent.status != AgentStatus::Running {
            return Err(OrchestratorError::NotRunning {
                id: agent.id,
                status: agent.status,
            });
        }
        Ok(self.inner.runtime.attach_agent(id).await?)
    }

    /// Removes the checkouts and branches of the agents `by` may see that
    /// have ended, and what is left of their containers. Returns the agents
    /// pruned.
    pub async fn prune(&self, by: &Actor) -> Result<Vec<Agent>, OrchestratorError> {
        let ended = self
            .inner
            .store
            .agents_with_status(
                &self.inner.config.instance,
                &[
                    AgentStatus::Exited,
                    AgentStatus::Failed,
                    AgentStatus::Stopped,
                ],
            )
            .await?;
        let mut pruned = Vec::new();
        for agent in ended {
            if !self.sees(by, &agent).await? {
                continue;
            }
            self.inner
                .runtime
                .remove_agent(&agent.id, Duration::ZERO)
                .await?;
            if let Ok(repo) = Repo::open(Path::new(&agent.repo)).await {
                let _turn = self.inner.repo_locks.lock(&agent.repo).await;
                repo.delete_branch(&agent.branch()).await?;
            }
            match tokio::fs::remove_dir_all(&agent.checkout).await {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(OrchestratorError::Io {
                        context: "removing a checkout",
                        source,
                    });
                }
            }
            let from = [
                AgentStatus::Exited,
                AgentStatus::Failed,
                AgentStatus::Stopped,
            ];
            if self
                .transition(&agent.id, &from, AgentStatus::Pruned, None, None)
                .await?
            {
                pruned.push(self.load(&agent.id).await?);
            }
        }
        Ok(pruned)
    }

    async fn transition(
        &self,
        id: &AgentId,
        from: &[AgentStatus],
        to: AgentStatus,
        exit_code: Option<i64>,
        message: Option<String>,
    ) -> Result<bool, StoreError> {
        let moved = self
            .inner
            .store
            .transition_agent(
                id,
                AgentTransition {
                    from,
                    to,
                    exit_code,
                    message,
                    now: now(),
                },
            )
            .await?;
        if moved {
            self.publish(id).await;
        }
        Ok(moved)
    }

    async fn publish(&self, id: &AgentId) {
        if let Ok(Some(agent)) = self.inner.store.agent(id).await {
            self.inner.bus.publish(YardEvent::Agent(agent));
        }
    }
}

/// Makes `dir` a directory only the yard's user can enter (mode 0700).
async fn private_dir(dir: &Path) -> Result<(), OrchestratorError> {
    use std::os::unix::fs::PermissionsExt;
    let made = async {
        tokio::fs::create_dir_all(dir).await?;
        tokio::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).await
    };
    made.await.map_err(|source| OrchestratorError::Io {
        context: "making the checkouts directory private",
        source,
    })
}

/// Makes the checkout at `dir` private to the user the agent runs as:
/// directories 0700, files 0600 (0700 when executable), owned by `user`
/// (or the yard's own user). A secret in the repository is then never
/// readable by anyone else on the host. Links are not followed.
async fn make_private(dir: &Path, user: Option<UserIds>) -> Result<(), OrchestratorError> {
    use std::os::unix::fs::PermissionsExt;
    let dir = dir.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut pending = vec![dir];
        while let Some(path) = pending.pop() {
            let meta = std::fs::symlink_metadata(&path)?;
            if let Some(user) = user {
                std::os::unix::fs::lchown(&path, Some(user.uid), Some(user.gid))?;
            }
            if meta.file_type().is_symlink() {
                continue;
            }
            let mode = if meta.is_dir() || meta.permissions().mode() & 0o111 != 0 {
                0o700
            } else {
                0o600
            };
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))?;
            if meta.is_dir() {
                for entry in std::fs::read_dir(&path)? {
                    pending.push(entry?.path());
                }
            }
        }
        Ok::<(), std::io::Error>(())
    })
    .await
    .map_err(std::io::Error::other)
    .and_then(|done| done)
    .map_err(|source| OrchestratorError::Io {
        context: "making the checkout private to the agent's user",
        source,
    })
}

/// What a spawn makes each of its agents from.
#[derive(Debug)]
struct Planned {
    owner: Owner,
    parent: Option<AgentId>,
    repo: String,
    base_ref: String,
    base_commit: String,
    task: String,
    image: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_specs_parse_or_explain() {
        let cargo = CacheVolume::parse("agentyard-cargo-cache:/cache/cargo:CARGO_HOME").unwrap();
        assert_eq!(cargo.volume, "agentyard-cargo-cache");
        assert_eq!(cargo.target, "/cache/cargo");
        assert_eq!(cargo.env.as_deref(), Some("CARGO_HOME"));
        assert_eq!(CacheVolume::parse("v:/x").unwrap().env, None);
        for bad in ["", "v", "v:relative", "bad name:/x", ":/x"] {
            assert!(CacheVolume::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(CacheVolume::defaults().len(), 3);
    }
}
