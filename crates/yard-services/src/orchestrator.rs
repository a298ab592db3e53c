//! The orchestrator: puts agents on a task, each in its own container with
//! its own checkout, branch and credential, and brings their work back.
//!
//! An agent's row is written before anything is made for it, so after a
//! crash the store names every checkout and container that may exist.
//! Agents do not outlive the yard: sibling containers are not its children,
//! so [`Orchestrator::stop_all`] removes them on shutdown and
//! [`Orchestrator::reap`] removes what a crashed run left. Their branches
//! and checkouts stay for review until [`Orchestrator::prune`].

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::stream::BoxStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use yard_core::{Agent, AgentId, AgentStatus};
use yard_engine::{AgentIo, AgentMount, AgentRuntime, AgentSpec, EngineError, MountSource};
use yard_git::{Commit, GitError, MergeOutcome, Repo};
use yard_store::{AgentTransition, Store, StoreError};

use crate::auth::hash_token;
use crate::locks::NameLocks;
use crate::{EventBus, YardEvent, now};

/// Where the control socket appears in every agent container.
pub const AGENT_SOCKET: &str = "/run/agentyard/control.sock";
/// Where an agent's checkout appears in its container.
pub const AGENT_WORKSPACE: &str = "/workspace";
/// Where the yard's own binary appears, when it lends it to agents.
const AGENT_YARD_BINARY: &str = "/usr/local/bin/yard";

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
    /// The most agents one spawn may ask for.
    pub max_agents: u32,
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
}

/// A request for agents.
#[derive(Debug, Clone)]
pub struct SpawnRequest {
    pub repo: PathBuf,
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
    #[error("image {0:?} is not on the engine; build or load it there first")]
    NoImage(String),
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
    config: OrchestratorConfig,
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
        config: OrchestratorConfig,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                runtime,
                bus,
                config,
                repo_locks: NameLocks::default(),
                monitors: TaskTracker::new(),
                stopping: CancellationToken::new(),
            }),
        }
    }

    pub fn config(&self) -> &OrchestratorConfig {
        &self.inner.config
    }

    /// Starts `count` agents on `task`, all at once. Everything is checked
    /// before anything is made, so a bad request leaves nothing behind.
    pub async fn spawn(&self, request: SpawnRequest) -> Result<Vec<Agent>, OrchestratorError> {
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
        let repo = Repo::open(&request.repo).await?;
        let base_ref = request.base.clone().unwrap_or_else(|| "HEAD".to_owned());
        let base_commit = repo.resolve_commit(&base_ref).await?;
        let image = request
            .image
            .clone()
            .unwrap_or_else(|| config.agent_image.clone());
        if !self.inner.runtime.image_exists(&image).await? {
            return Err(OrchestratorError::NoImage(image));
        }
        for cache in &config.caches {
            self.inner
                .runtime
                .ensure_cache_volume(&cache.volume)
                .await?;
        }
        repo.protect_objects().await?;
        let owner = owner_of(repo.path()).await;
        let launches = (0..request.count)
            .map(|_| self.launch(&repo, owner, &base_ref, &base_commit, &image, &request.task));
        let agents = futures::future::join_all(launches).await;
        agents.into_iter().collect()
    }

    /// Records, checks out and starts one agent. A failure after the row
    /// exists is recorded on the agent (status `failed`), not returned.
    async fn launch(
        &self,
        repo: &Repo,
        owner: Option<(u32, u32)>,
        base_ref: &str,
        base_commit: &str,
        image: &str,
        task: &str,
    ) -> Result<Agent, OrchestratorError> {
        let config = &self.inner.config;
        let id = AgentId::generate();
        let token = format!("yard_agent_{}", hex::encode(rand::random::<[u8; 32]>()));
        let checkout = config.checkouts_dir.join(id.as_str());
        let created = now();
        let agent = Agent {
            id: id.clone(),
            instance: config.instance.clone(),
            repo: repo.path().display().to_string(),
            base_ref: base_ref.to_owned(),
            base_commit: base_commit.to_owned(),
            task: task.to_owned(),
            image: image.to_owned(),
            status: AgentStatus::Starting,
            exit_code: None,
            message: None,
            checkout: checkout.display().to_string(),
            head_commit: None,
            created_at: created,
            updated_at: created,
        };
        self.inner
            .store
            .insert_agent(&agent, &hash_token(&token))
            .await?;
        self.publish(&agent.id).await;
        let started = async {
            repo.create_checkout(&checkout, &id.branch(), base_commit)
                .await?;
            if let Some((uid, gid)) = owner {
                chown_tree(&checkout, uid, gid).await?;
            }
            let spec = self.spec(&agent, repo, &token);
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
                tracing::info!(agent = %id, repo = %agent.repo, base = %base_commit, %image, "agent running");
                self.monitor(id.clone());
            }
            Err(e) => {
                tracing::warn!(agent = %id, error = %e, "agent failed to start");
                let _ = tokio::fs::remove_dir_all(&checkout).await;
                self.transition(
                    &id,
                    &[AgentStatus::Starting],
                    AgentStatus::Failed,
                    None,
                    Some(e.to_string()),
                )
                .await?;
            }
        }
        self.agent(&id).await
    }

    fn spec(&self, agent: &Agent, repo: &Repo, token: &str) -> AgentSpec {
        let config = &self.inner.config;
        let identity = format!("agentyard agent {}", agent.id);
        let email = format!("agent-{}@agentyard.invalid", agent.id);
        let mut env = vec![
            ("YARD_AGENT_ID".to_owned(), agent.id.to_string()),
            ("YARD_TASK".to_owned(), agent.task.clone()),
            ("YARD_AGENT_TOKEN".to_owned(), token.to_owned()),
            ("YARD_SOCKET".to_owned(), AGENT_SOCKET.to_owned()),
            // The checkout may belong to another user than the agent runs as.
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
            env,
            mounts,
            working_dir: AGENT_WORKSPACE.to_owned(),
            group_add: config
                .socket_group
                .map(|g| g.to_string())
                .into_iter()
                .collect(),
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

    /// One agent.
    pub async fn agent(&self, id: &AgentId) -> Result<Agent, OrchestratorError> {
        self.inner
            .store
            .agent(id)
            .await?
            .ok_or_else(|| OrchestratorError::NoSuchAgent(id.to_string()))
    }

    /// Agents, newest first.
    pub async fn agents(&self, limit: i64) -> Result<Vec<Agent>, OrchestratorError> {
        Ok(self.inner.store.agents(limit).await?)
    }

    /// The live agent a credential belongs to, if any.
    pub async fn authenticate(&self, token: &str) -> Result<Option<Agent>, StoreError> {
        if !token.starts_with("yard_agent_") {
            return Ok(None);
        }
        let agent = self
            .inner
            .store
            .agent_by_token_hash(&hash_token(token))
            .await?;
        Ok(agent.filter(|a| a.status.is_live()))
    }

    /// Stops an agent and removes its container; its checkout and branch
    /// stay. Stopping an agent that already ended only removes what is left
    /// of its container.
    pub async fn stop(&self, id: &AgentId) -> Result<Agent, OrchestratorError> {
        self.agent(id).await?;
        // Recorded first, so the exit the removal causes is not mistaken
        // for the agent finishing on its own.
        let stopped = self
            .transition(
                id,
                &[AgentStatus::Starting, AgentStatus::Running],
                AgentStatus::Stopped,
                None,
                Some("stopped by a person".to_owned()),
            )
            .await?;
        self.inner
            .runtime
            .remove_agent(id, self.inner.config.stop_grace)
            .await?;
        if stopped {
            self.bring_back(id).await;
        }
        self.agent(id).await
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
            .agents_with_status(
                &self.inner.config.instance,
                &[AgentStatus::Starting, AgentStatus::Running],
            )
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
                    &[AgentStatus::Starting, AgentStatus::Running],
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
        let agent = self.agent(id).await?;
        let repo = Repo::open(Path::new(&agent.repo)).await?;
        let _turn = self.inner.repo_locks.lock(&agent.repo).await;
        if let Some(head) = repo
            .fetch_branch(Path::new(&agent.checkout), &agent.branch())
            .await?
            && agent.head_commit.as_deref() != Some(head.as_str())
        {
            self.inner.store.set_agent_head(id, &head, now()).await?;
            self.publish(id).await;
        }
        Ok((self.agent(id).await?, repo))
    }

    /// The agent's commits and changes against its base.
    pub async fn diff(&self, id: &AgentId) -> Result<AgentDiff, OrchestratorError> {
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
    pub async fn merge(&self, id: &AgentId) -> Result<MergeOutcome, OrchestratorError> {
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
        id: &AgentId,
        follow: bool,
        tail: Option<u32>,
    ) -> Result<BoxStream<'static, Result<Bytes, EngineError>>, OrchestratorError> {
        self.with_container(id).await?;
        Ok(self.inner.runtime.agent_logs(id, follow, tail))
    }

    /// A live connection to a running agent's terminal.
    pub async fn attach(&self, id: &AgentId) -> Result<AgentIo, OrchestratorError> {
        let agent = self.agent(id).await?;
        if agent.status != AgentStatus::Running {
            return Err(OrchestratorError::NotRunning {
                id: agent.id,
                status: agent.status,
            });
        }
        Ok(self.inner.runtime.attach_agent(id).await?)
    }

    /// Checks that the agent exists and still has a container.
    async fn with_container(&self, id: &AgentId) -> Result<Agent, OrchestratorError> {
        let agent = self.agent(id).await?;
        let containers = self.inner.runtime.agent_containers().await?;
        if !containers.contains(id) {
            return Err(OrchestratorError::NoContainer(agent.id));
        }
        Ok(agent)
    }

    /// Removes the checkouts and branches of agents that have ended, and
    /// what is left of their containers. Returns the agents pruned.
    pub async fn prune(&self) -> Result<Vec<Agent>, OrchestratorError> {
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
                pruned.push(self.agent(&agent.id).await?);
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

/// The owner of the source repository: checkouts are given to the same
/// user, so what agents write there belongs to the person whose repository
/// it is. `None` when that is who the yard runs as anyway.
async fn owner_of(path: &Path) -> Option<(u32, u32)> {
    use std::os::unix::fs::MetadataExt;
    let repo = tokio::fs::metadata(path).await.ok()?;
    let me = tokio::fs::metadata("/proc/self").await.ok()?;
    (repo.uid() != me.uid() || repo.gid() != me.gid()).then(|| (repo.uid(), repo.gid()))
}

/// `chown -R uid:gid dir`, without following links.
async fn chown_tree(dir: &Path, uid: u32, gid: u32) -> Result<(), OrchestratorError> {
    let dir = dir.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut pending = vec![dir];
        while let Some(path) = pending.pop() {
            std::os::unix::fs::lchown(&path, Some(uid), Some(gid))?;
            if std::fs::symlink_metadata(&path)?.is_dir() {
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
        context: "giving the checkout to the repository's owner",
        source,
    })
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
