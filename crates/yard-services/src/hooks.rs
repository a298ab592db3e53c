//! Hook decisions: the policy in force, kept fresh from its file, and the
//! audit trail of every decision.
//!
//! The policy file is re-read when its modification time or size changes.
//! A file that no longer parses leaves the previous policy in force; the
//! error is logged and reported by [`PolicyWatch::status`] until the file
//! is fixed. At start there is no previous policy, so a broken file is an
//! error: the yard does not start with rules other than the ones written.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;
use yard_core::{AgentId, HookFacts, Policy, PolicyError, Verdict};
use yard_store::{AuditEntry, Store, StoreError};

use crate::now;

/// The longest command or path kept in the audit trail.
const SUBJECT_LIMIT: usize = 500;

/// Why a policy file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum PolicyLoadError {
    #[error("cannot read the policy file {}: {source}", .path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the policy file {} is not valid: {source}", .path.display())]
    Invalid { path: PathBuf, source: PolicyError },
}

/// The policy in force and where it comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyStatus {
    pub path: PathBuf,
    /// Whether the file exists; without it the built-in policy (allow
    /// everything, `ask` falls back to deny) is in force.
    pub from_file: bool,
    pub rules: usize,
    /// Why the latest version of the file was not taken, if it was not.
    pub error: Option<String>,
}

#[derive(Debug)]
struct Loaded {
    policy: Arc<Policy>,
    /// Modification time and size of the file the policy came from.
    stamp: Option<(SystemTime, u64)>,
    error: Option<String>,
}

/// A policy file, watched for changes.
#[derive(Debug)]
pub struct PolicyWatch {
    path: PathBuf,
    loaded: RwLock<Loaded>,
}

fn stamp(path: &Path) -> Result<Option<(SystemTime, u64)>, std::io::Error> {
    match std::fs::metadata(path) {
        Ok(meta) => Ok(Some((meta.modified()?, meta.len()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn read(path: &Path) -> Result<(Policy, Option<(SystemTime, u64)>), PolicyLoadError> {
    let read_error = |source| PolicyLoadError::Read {
        path: path.to_owned(),
        source,
    };
    let Some(stamped) = stamp(path).map_err(read_error)? else {
        return Ok((Policy::default(), None));
    };
    let text = std::fs::read_to_string(path).map_err(read_error)?;
    let policy = Policy::parse(&text).map_err(|source| PolicyLoadError::Invalid {
        path: path.to_owned(),
        source,
    })?;
    Ok((policy, Some(stamped)))
}

impl PolicyWatch {
    /// Loads the policy at `path`; a missing file means the built-in policy.
    pub fn load(path: PathBuf) -> Result<Self, PolicyLoadError> {
        let (policy, stamp) = read(&path)?;
        Ok(Self {
            path,
            loaded: RwLock::new(Loaded {
                policy: Arc::new(policy),
                stamp,
                error: None,
            }),
        })
    }

    /// The policy in force.
    pub fn policy(&self) -> Arc<Policy> {
        Arc::clone(&self.loaded.read().unwrap_or_else(|p| p.into_inner()).policy)
    }

    pub fn status(&self) -> PolicyStatus {
        let loaded = self.loaded.read().unwrap_or_else(|p| p.into_inner());
        PolicyStatus {
            path: self.path.clone(),
            from_file: loaded.stamp.is_some(),
            rules: loaded.policy.rule_count(),
            error: loaded.error.clone(),
        }
    }

    /// Re-reads the file if it changed. A broken file leaves the policy in
    /// force and records the error.
    pub fn reload_if_changed(&self) {
        let current = match stamp(&self.path) {
            Ok(current) => current,
            Err(e) => {
                tracing::warn!(path = %self.path.display(), error = %e, "cannot check the policy file");
                return;
            }
        };
        let mut loaded = self.loaded.write().unwrap_or_else(|p| p.into_inner());
        if current == loaded.stamp && (loaded.error.is_none() || current.is_none()) {
            return;
        }
        match read(&self.path) {
            Ok((policy, stamp)) => {
                tracing::info!(path = %self.path.display(), rules = policy.rule_count(), "policy loaded");
                *loaded = Loaded {
                    policy: Arc::new(policy),
                    stamp,
                    error: None,
                };
            }
            Err(e) => {
                if loaded.error.as_deref() != Some(e.to_string().as_str()) {
                    tracing::error!(error = %e, "policy file rejected; the previous policy stays in force");
                }
                loaded.stamp = current;
                loaded.error = Some(e.to_string());
            }
        }
    }

    /// Checks the file every `every` until `stop`.
    pub async fn watch(self: Arc<Self>, every: Duration, stop: CancellationToken) {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => self.reload_if_changed(),
                () = stop.cancelled() => return,
            }
        }
    }
}

/// Decides hook events by the policy and records every decision.
#[derive(Debug, Clone)]
pub struct Gatekeeper {
    store: Store,
    policy: Arc<PolicyWatch>,
}

impl Gatekeeper {
    pub fn new(store: Store, policy: Arc<PolicyWatch>) -> Self {
        Self { store, policy }
    }

    pub fn policy_status(&self) -> PolicyStatus {
        self.policy.status()
    }

    /// The verdict on one event of `agent`, recorded before it is returned:
    /// an agent is never told something the audit trail does not show.
    pub async fn decide(
        &self,
        agent: &AgentId,
        facts: &HookFacts<'_>,
    ) -> Result<Verdict, StoreError> {
        let verdict = self.policy.policy().evaluate(facts);
        let subject = facts
            .command
            .or(facts.path)
            .map(|s| s.chars().take(SUBJECT_LIMIT).collect());
        self.store
            .insert_audit(&AuditEntry {
                id: uuid::Uuid::now_v7().to_string(),
                agent_id: agent.clone(),
                event: facts.event.to_string(),
                tool: facts.tool.map(str::to_owned),
                subject,
                decision: verdict.decision,
                asked: verdict.asked,
                rule: verdict.rule.clone(),
                reason: verdict.reason.clone(),
                created_at: now(),
            })
            .await?;
        tracing::debug!(agent = %agent, event = %facts.event, tool = ?facts.tool, decision = %verdict.decision, rule = %verdict.rule, "hook decided");
        Ok(verdict)
    }

    /// An agent's recorded decisions, oldest first.
    pub async fn audit(&self, agent: &AgentId) -> Result<Vec<AuditEntry>, StoreError> {
        self.store.audit(agent).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use yard_core::{Decision, HookEvent};

    fn bash(command: &str) -> HookFacts<'_> {
        HookFacts {
            event: HookEvent::PreToolUse,
            tool: Some("Bash"),
            command: Some(command),
            path: None,
        }
    }

    fn write_policy(path: &Path, text: &str) {
        // A different size guarantees the change is seen even within one
        // tick of the file system's clock.
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn edits_take_effect_and_broken_edits_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy.toml");
        let watch = PolicyWatch::load(path.clone()).unwrap();
        assert!(!watch.status().from_file);
        assert_eq!(
            watch.policy().evaluate(&bash("rm -rf /")).decision,
            Decision::Allow
        );

        write_policy(
            &path,
            "[[rules]]\ncommand = \"rm *\"\ndecision = \"deny\"\n",
        );
        watch.reload_if_changed();
        assert_eq!(
            watch.policy().evaluate(&bash("rm -rf /")).decision,
            Decision::Deny
        );
        assert_eq!(watch.status().rules, 1);

        write_policy(
            &path,
            "[[rules]]\ncommand = \"rm *\"\ndecision = \"nope\"\n# broken\n",
        );
        watch.reload_if_changed();
        let status = watch.status();
        assert!(
            status
                .error
                .as_deref()
                .unwrap_or_default()
                .contains("not valid"),
            "{status:?}"
        );
        assert_eq!(
            watch.policy().evaluate(&bash("rm -rf /")).decision,
            Decision::Deny,
            "old policy stays"
        );

        write_policy(&path, "default = \"deny\"\n");
        watch.reload_if_changed();
        assert_eq!(watch.status().error, None);
        assert_eq!(
            watch.policy().evaluate(&bash("ls")).decision,
            Decision::Deny
        );

        std::fs::remove_file(&path).unwrap();
        watch.reload_if_changed();
        assert_eq!(
            watch.policy().evaluate(&bash("ls")).decision,
            Decision::Allow
        );
    }

    #[test]
    fn a_broken_file_at_start_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy.toml");
        std::fs::write(&path, "default = ").unwrap();
        let err = PolicyWatch::load(path).unwrap_err().to_string();
        assert!(err.contains("not valid"), "{err}");
    }
}
