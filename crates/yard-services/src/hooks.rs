//! Hook decisions: the policy in force, kept fresh from its file, and the
//! audit trail of every decision.
//!
//! The policy file is re-read when its modification time or size changes.
//! A file that no longer parses, or that disappears, leaves the previous
//! policy in force (the yard fails closed: losing the file must not open
//! everything up); the error is logged and reported by
//! [`PolicyWatch::status`] until the file is back. At start there is no
//! previous policy, so a broken file is an error: the yard does not start
//! with rules other than the ones written, and with `required` it does not
//! start without a file at all.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;
use yard_core::AuditEntry;
use yard_core::{AgentId, HookFacts, Policy, PolicyError, Verdict};
use yard_store::{Store, StoreError};

use crate::now;

/// The longest command or path kept in the audit trail, in characters.
const SUBJECT_LIMIT: usize = 500;
/// How much of a tool call's input the audit trail keeps, in bytes: enough
/// to see what was done, never a whole file an agent wrote.
pub const AUDIT_INPUT_LIMIT: usize = 4096;

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
    #[error(
        "the policy file {} does not exist, and YARD_POLICY_REQUIRED says the yard must not run without one; write it (an empty file allows everything)",
        .0.display()
    )]
    Required(PathBuf),
}

/// The policy in force and where it comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyStatus {
    pub path: PathBuf,
    /// Whether the policy in force came from the file; if not, the
    /// built-in policy (allow everything, `ask` falls back to deny) is.
    pub from_file: bool,
    pub rules: usize,
    /// Why the latest version of the file was not taken, if it was not.
    pub error: Option<String>,
}

#[derive(Debug)]
struct Loaded {
    policy: Arc<Policy>,
    /// Whether `policy` was read from the file.
    from_file: bool,
    /// Modification time and size of the file as last seen.
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
    /// Loads the policy at `path`; a missing file means the built-in
    /// policy, unless the file is `required`.
    pub fn load(path: PathBuf, required: bool) -> Result<Self, PolicyLoadError> {
        let (policy, stamp) = read(&path)?;
        if required && stamp.is_none() {
            return Err(PolicyLoadError::Required(path));
        }
        Ok(Self {
            path,
            loaded: RwLock::new(Loaded {
                policy: Arc::new(policy),
                from_file: stamp.is_some(),
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
            from_file: loaded.from_file,
            rules: loaded.policy.rule_count(),
            error: loaded.error.clone(),
        }
    }

    /// Re-reads the file if it changed. A broken or vanished file leaves
    /// the policy in force and records the error.
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
        if current.is_none() && loaded.from_file {
            let error = format!(
                "the policy file {} is gone; the policy last read from it stays in force until it is back",
                self.path.display()
            );
            if loaded.error.as_deref() != Some(error.as_str()) {
                tracing::error!(path = %self.path.display(), "policy file gone; the previous policy stays in force");
            }
            loaded.stamp = None;
            loaded.error = Some(error);
            return;
        }
        match read(&self.path) {
            Ok((policy, stamp)) => {
                tracing::info!(path = %self.path.display(), rules = policy.rule_count(), "policy loaded");
                *loaded = Loaded {
                    policy: Arc::new(policy),
                    from_file: stamp.is_some(),
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
    /// `tool_input` is the call's input as JSON; the audit keeps its first
    /// [`AUDIT_INPUT_LIMIT`] bytes.
    pub async fn decide(
        &self,
        agent: &AgentId,
        facts: &HookFacts<'_>,
        tool_input: Option<&str>,
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
                input: tool_input.map(|input| prefix(input, AUDIT_INPUT_LIMIT).to_owned()),
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

/// The longest start of `text` that fits in `limit` bytes.
fn prefix(text: &str, limit: usize) -> &str {
    if text.len() <= limit {
        return text;
    }
    let mut end = limit;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
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
        let watch = PolicyWatch::load(path.clone(), false).unwrap();
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

        // A file that disappears does not open everything up.
        std::fs::remove_file(&path).unwrap();
        watch.reload_if_changed();
        watch.reload_if_changed();
        assert_eq!(
            watch.policy().evaluate(&bash("ls")).decision,
            Decision::Deny
        );
        let status = watch.status();
        assert!(status.from_file, "{status:?}");
        assert!(status.error.unwrap_or_default().contains("is gone"));

        write_policy(&path, "default = \"allow\"\n");
        watch.reload_if_changed();
        assert_eq!(watch.status().error, None);
        assert_eq!(
            watch.policy().evaluate(&bash("ls")).decision,
            Decision::Allow
        );
    }

    #[test]
    fn a_required_policy_must_exist_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy.toml");
        let err = PolicyWatch::load(path.clone(), true)
            .unwrap_err()
            .to_string();
        assert!(err.contains("YARD_POLICY_REQUIRED"), "{err}");
        std::fs::write(&path, "").unwrap();
        assert!(PolicyWatch::load(path, true).unwrap().status().from_file);
    }

    #[test]
    fn input_prefixes_end_on_a_character() {
        assert_eq!(prefix("héllo", 2), "h");
        assert_eq!(prefix("héllo", 3), "hé");
        assert_eq!(prefix("hi", 10), "hi");
    }

    #[test]
    fn a_broken_file_at_start_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy.toml");
        std::fs::write(&path, "default = ").unwrap();
        let err = PolicyWatch::load(path, false).unwrap_err().to_string();
        assert!(err.contains("not valid"), "{err}");
    }
}
