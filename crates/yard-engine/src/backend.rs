//! The backend factory: `YARD_BACKEND` in, the stack engine and the agent
//! runtime out. The only place that knows which backends exist; everything
//! above it holds an `Arc<dyn Engine>` and an `Arc<dyn AgentRuntime>`.
//!
//! Agents always run on the local Docker engine, whatever runs the stacks:
//! an agent's checkout is a bind mount of a directory on the yard's own
//! machine, which a cluster node elsewhere cannot see.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use crate::{
    AgentRuntime, DockerConfig, DockerEngine, DokployConfig, DokployEngine, Engine, EngineError,
    SwarmConfig, SwarmEngine, SwarmReach, TraefikConfig,
};

/// Which backend runs the stacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    /// The local (or `DOCKER_HOST`) Docker engine: one container a stack.
    Docker,
    /// A Docker Swarm, through a manager's API: one service a stack.
    Swarm,
    /// Dokploy, through its public API: one application a stack.
    Dokploy,
}

impl BackendKind {
    pub const ALL: [Self; 3] = [Self::Docker, Self::Swarm, Self::Dokploy];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Docker => "docker",
            Self::Swarm => "swarm",
            Self::Dokploy => "dokploy",
        }
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for BackendKind {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.as_str().eq_ignore_ascii_case(raw.trim()))
            .ok_or_else(|| {
                format!("{raw:?} is not a backend; YARD_BACKEND is one of docker, swarm, dokploy")
            })
    }
}

/// What the factory needs to make a backend.
#[derive(Debug, Clone)]
pub struct BackendConfig {
    pub kind: BackendKind,
    /// The yard instance id, in every resource's name and labels.
    pub instance: String,
    /// The instance id stacks are named and labelled with, when it is not
    /// `instance`: several yards on one database share their stacks' id,
    /// while each keeps its own for the agents on its machine.
    pub stacks_instance: Option<String>,
    /// Extra labels on every resource the Docker-based backends make.
    pub extra_labels: BTreeMap<String, String>,
    /// `swarm`: how the yard reaches a stack's service.
    pub swarm_reach: SwarmReach,
    /// `swarm`: whether each stack gets a data volume. Without one, an
    /// update starts the new task before it stops the old, so the stack
    /// answers throughout; with one, the old stops first (two tasks must
    /// not write one volume).
    pub stack_volume: bool,
    /// `swarm`: Traefik labels on every service (`YARD_TRAEFIK=true`).
    pub traefik: Option<TraefikConfig>,
    /// `dokploy`: where its API is and the key to it (`DOKPLOY_URL`,
    /// `DOKPLOY_API_KEY`); `None` when `DOKPLOY_URL` is not set.
    pub dokploy: Option<DokployConfig>,
}

impl BackendConfig {
    /// The local docker backend for `instance`, with nothing else set.
    pub fn docker(instance: impl Into<String>) -> Self {
        Self {
            kind: BackendKind::Docker,
            instance: instance.into(),
            stacks_instance: None,
            extra_labels: BTreeMap::new(),
            swarm_reach: SwarmReach::default(),
            stack_volume: true,
            traefik: None,
            dokploy: None,
        }
    }
}

/// A connected backend: where stacks run and where agents run.
#[derive(Debug, Clone)]
pub struct Backend {
    pub kind: BackendKind,
    pub stacks: Arc<dyn Engine>,
    pub agents: Arc<dyn AgentRuntime>,
    /// The local engine agents run on, for diagnostics.
    pub local: Arc<DockerEngine>,
}

impl Backend {
    /// Makes the backend `config` names. Nothing is sent to it yet, so a
    /// yard can start while its engine is still coming up; `ping` says
    /// whether it answers (and, for `swarm`, whether the engine is a
    /// manager). Settings that cannot work are refused here.
    pub fn connect(config: &BackendConfig) -> Result<Self, EngineError> {
        let mut docker = DockerConfig::new(config.instance.clone());
        docker.extra_labels = config.extra_labels.clone();
        let local = Arc::new(DockerEngine::connect(docker)?);
        let instance = config
            .stacks_instance
            .clone()
            .unwrap_or_else(|| config.instance.clone());
        let stacks: Arc<dyn Engine> = match config.kind {
            BackendKind::Docker if instance == config.instance => local.clone(),
            BackendKind::Docker => {
                let mut docker = DockerConfig::new(instance);
                docker.extra_labels = config.extra_labels.clone();
                docker.network_owner = Some(config.instance.clone());
                Arc::new(DockerEngine::connect(docker)?)
            }
            BackendKind::Swarm => {
                let mut swarm = SwarmConfig::new(instance);
                swarm.extra_labels = config.extra_labels.clone();
                swarm.reach = config.swarm_reach.clone();
                swarm.traefik = config.traefik.clone();
                swarm.data_volume = config.stack_volume;
                Arc::new(SwarmEngine::connect(swarm)?)
            }
            BackendKind::Dokploy => {
                let mut dokploy = config.dokploy.clone().ok_or_else(|| {
                    EngineError::Config(
                        "YARD_BACKEND=dokploy needs DOKPLOY_URL (and DOKPLOY_API_KEY)".to_owned(),
                    )
                })?;
                dokploy.instance = instance;
                Arc::new(DokployEngine::connect(dokploy)?)
            }
        };
        Ok(Self {
            kind: config.kind,
            stacks,
            agents: local.clone(),
            local,
        })
    }

    /// A backend made elsewhere (a test's fake), with agents on `local`.
    pub fn from_parts(
        kind: BackendKind,
        stacks: Arc<dyn Engine>,
        local: Arc<DockerEngine>,
    ) -> Self {
        Self {
            kind,
            stacks,
            agents: local.clone(),
            local,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_names_parse_and_nonsense_is_refused_clearly() {
        assert_eq!("docker".parse(), Ok(BackendKind::Docker));
        assert_eq!(" Swarm ".parse(), Ok(BackendKind::Swarm));
        assert_eq!("dokploy".parse(), Ok(BackendKind::Dokploy));
        let error = "nonsense".parse::<BackendKind>().unwrap_err();
        assert!(error.contains("docker, swarm, dokploy"), "{error}");
    }
}
