//! The forge's first rule: an issue assigned to the bot puts an agent on
//! it.
//!
//! The repository is fetched with the bot's token into
//! `<data-dir>/repos/OWNER/REPO` (a bare repository the yard owns; the
//! token goes to the one git process that needs it, never into the
//! repository's configuration or a URL), one agent is spawned on the
//! default branch with the issue's title and body as its task, and the
//! issue is told the agent's id and where to watch it. When the agent ends
//! with commits its branch is pushed as `issue-<number>` and a pull request
//! that closes the issue is opened; when it ends with none, the issue is
//! told why. An issue whose agent is still at work is not given a second
//! one, however often it is assigned again.
//!
//! The agents belong to the owner of the yard's admin token: the forge acts
//! through the yard's own identity, so its agents count against the
//! admin's caps, are seen (and stopped) by admins, and stay with the same
//! owner when the admin token is reissued.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;
use yard_core::{Actor, Agent, AgentId, AgentStatus, ConfigKey, Owner, Person, Role};
use yard_forge::{ClientError, ForgeClient, Secret};
use yard_git::{GitError, HttpAuth, Repo};
use yard_store::Store;

use crate::orchestrator::SpawnRequest;
use crate::settings::Settings;
use crate::{DataDir, EventBus, Orchestrator, YardEvent};

/// How long one call to the forge may take.
const FORGE_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest part of a repository's name the rule accepts.
const MAX_NAME: usize = 100;

/// An issue as a delivery describes it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IssueFacts {
    pub number: i64,
    pub title: String,
    pub body: String,
    /// Who is assigned: the delivery's `assignee` and the issue's
    /// `assignees`.
    pub assignees: Vec<String>,
}

/// Why the rule could not act on an issue.
#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    #[error("{0} is not set; run POST /api/forge/init (or `yard config set {0}`)")]
    NotConfigured(&'static str),
    #[error("the repository name {0:?} is not OWNER/REPO of letters, digits, '-', '_' and '.'")]
    BadRepository(String),
    #[error("the default branch {0:?} is not a branch name the yard uses")]
    BadBranch(String),
    #[error("the bot ({bot}) cannot read {repo} on the forge: {source}")]
    CannotRead {
        bot: String,
        repo: String,
        source: ClientError,
    },
    #[error("the yard has no admin token to act for")]
    NoIdentity,
    #[error(transparent)]
    Forge(#[from] ClientError),
    #[error("git: {0}")]
    Git(#[from] GitError),
    #[error(transparent)]
    Spawn(#[from] crate::OrchestratorError),
    #[error(transparent)]
    Settings(#[from] crate::SettingsError),
    #[error(transparent)]
    Store(#[from] yard_store::StoreError),
    #[error("{context}: {source}")]
    Io {
        context: &'static str,
        source: std::io::Error,
    },
}

/// The rule; cheap to clone.
#[derive(Debug, Clone)]
pub struct IssueRule {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Store,
    settings: Settings,
    orchestrator: Orchestrator,
    bus: EventBus,
    data_dir: DataDir,
    /// Where the portal answers, for links to an agent.
    portal_url: String,
    /// Issues (`owner/repo#number`, lower case) being worked on now.
    active: Mutex<HashSet<String>>,
}

/// The bot's side of the forge, from the settings.
struct Bot {
    user: String,
    token: String,
    client: ForgeClient,
}

impl IssueRule {
    pub fn new(
        store: Store,
        settings: Settings,
        orchestrator: Orchestrator,
        bus: EventBus,
        data_dir: DataDir,
        portal_url: String,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                settings,
                orchestrator,
                bus,
                data_dir,
                portal_url: portal_url.trim_end_matches('/').to_owned(),
                active: Mutex::new(HashSet::new()),
            }),
        }
    }

    /// Acts on an `issues` delivery with `action == "assigned"` in
    /// `repository`, in the background. Anything else is left.
    pub fn assigned(&self, repository: &str, issue: IssueFacts) {
        let this = self.clone();
        let repository = repository.to_owned();
        tokio::spawn(async move { this.run(&repository, issue).await });
    }

    async fn bot(&self) -> Result<Bot, RuleError> {
        let settings = &self.inner.settings;
        let get = async |key: ConfigKey| {
            settings
                .get(key)
                .await?
                .filter(|v| !v.trim().is_empty())
                .ok_or(RuleError::NotConfigured(key.as_str()))
        };
        let url = get(ConfigKey::ForgeUrl).await?;
        let user = get(ConfigKey::ForgeBotUser).await?;
        let token = get(ConfigKey::ForgeBotToken).await?;
        let client = ForgeClient::new(&url, Secret::new(token.clone()), FORGE_TIMEOUT)?;
        Ok(Bot {
            user,
            token,
            client,
        })
    }

    async fn run(&self, repository: &str, issue: IssueFacts) {
        let bot = match self.bot().await {
            Ok(bot) => bot,
            Err(e) => {
                tracing::warn!(repository, issue = issue.number, error = %e, "an issue was assigned, but the forge is not set up");
                return;
            }
        };
        if !issue
            .assignees
            .iter()
            .any(|a| a.eq_ignore_ascii_case(&bot.user))
        {
            tracing::debug!(
                repository,
                issue = issue.number,
                "assigned to someone else than the bot"
            );
            return;
        }
        let Some((owner, repo)) = split_repository(repository) else {
            tracing::warn!(repository, issue = issue.number, error = %RuleError::BadRepository(repository.to_owned()), "an issue assigned to the bot is not acted on");
            return;
        };
        let key = format!("{owner}/{repo}#{}", issue.number).to_lowercase();
        if !self.active().insert(key.clone()) {
            tracing::info!(issue = %key, "assigned again while its agent is at work; no second agent");
            return;
        }
        if let Err(e) = self.work(&bot, owner, repo, &issue).await {
            tracing::warn!(issue = %key, error = %e, "the issue assigned to the bot could not be worked on");
            let text = format!("The yard could not put an agent on this issue: {e}");
            if let Err(comment) = bot.client.comment(owner, repo, issue.number, &text).await {
                tracing::warn!(issue = %key, error = %comment, "and the issue cannot be told so");
            }
        }
        self.active().remove(&key);
    }

    fn active(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.inner
            .active
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Who the forge's agents belong to: the admin token's owner.
    async fn actor(&self) -> Result<Actor, RuleError> {
        let token = self
            .inner
            .data_dir
            .read_admin_token()
            .map_err(|source| RuleError::Io {
                context: "reading the admin token",
                source,
            })?
            .ok_or(RuleError::NoIdentity)?;
        let record = crate::auth::authenticate(&self.inner.store, &token)
            .await?
            .ok_or(RuleError::NoIdentity)?;
        Ok(Actor::Person(Person {
            owner: Owner {
                id: record.owner_id,
                name: record.name,
            },
            role: Role::Admin,
        }))
    }

    async fn work(
        &self,
        bot: &Bot,
        owner: &str,
        repo: &str,
        issue: &IssueFacts,
    ) -> Result<(), RuleError> {
        let full = format!("{owner}/{repo}");
        let info =
            bot.client
                .repository(owner, repo)
                .await
                .map_err(|source| RuleError::CannotRead {
                    bot: bot.user.clone(),
                    repo: full.clone(),
                    source,
                })?;
        if !branch_name_ok(&info.default_branch) {
            return Err(RuleError::BadBranch(info.default_branch));
        }
        let actor = self.actor().await?;
        let url = format!("{}/{owner}/{repo}.git", bot.client.root());
        let auth = HttpAuth {
            user: bot.user.clone(),
            password: bot.token.clone(),
        };
        let path = self
            .fetch(owner, repo, &url, &auth, &info.default_branch)
            .await?;
        let base = format!("refs/heads/{}", info.default_branch);
        let mut task = issue.title.trim().to_owned();
        if !issue.body.trim().is_empty() {
            task.push_str("\n\n");
            task.push_str(issue.body.trim());
        }
        // Subscribed before the spawn, so the agent's end cannot be missed.
        let mut events = self.inner.bus.subscribe();
        let agents = self
            .inner
            .orchestrator
            .spawn(
                &actor,
                SpawnRequest {
                    repo: Some(path),
                    count: 1,
                    task,
                    image: None,
                    base: Some(base),
                },
            )
            .await?;
        let Some(agent) = agents.into_iter().next() else {
            return Ok(());
        };
        let link = format!("{}/#agents", self.inner.portal_url);
        let started = if agent.status == AgentStatus::Running {
            format!(
                "Agent `{}` is working on this issue on branch `issue-{}`. Watch it on the portal: {link}",
                agent.id, issue.number
            )
        } else {
            format!(
                "Agent `{}` could not start ({}): {}. See {link}",
                agent.id,
                agent.status,
                agent.message.as_deref().unwrap_or("no reason recorded")
            )
        };
        tracing::info!(issue = %format!("{full}#{}", issue.number), agent = %agent.id, status = %agent.status, "an agent was put on an issue assigned to the bot");
        if let Err(e) = bot
            .client
            .comment(owner, repo, issue.number, &started)
            .await
        {
            tracing::warn!(agent = %agent.id, error = %e, "cannot tell the issue about its agent");
        }
        if agent.status != AgentStatus::Running {
            return Ok(());
        }
        let ended = self.until_ended(&actor, &agent.id, &mut events).await?;
        self.finish(
            bot,
            owner,
            repo,
            issue,
            &actor,
            &ended,
            &url,
            &auth,
            &info.default_branch,
        )
        .await
    }

    /// Fetches the default branch into `<data-dir>/repos/OWNER/REPO`,
    /// made the first time (and removed again if that first fetch fails).
    async fn fetch(
        &self,
        owner: &str,
        repo: &str,
        url: &str,
        auth: &HttpAuth,
        branch: &str,
    ) -> Result<PathBuf, RuleError> {
        let parent = self.inner.data_dir.path().join("repos").join(owner);
        let path = parent.join(repo);
        let fresh = !tokio::fs::try_exists(&path).await.unwrap_or(false);
        tokio::fs::create_dir_all(&parent)
            .await
            .map_err(|source| RuleError::Io {
                context: "making the repositories' directory",
                source,
            })?;
        let fetched = async {
            let local = Repo::init_bare(&path, branch).await?;
            local.fetch_from(url, auth, branch).await?;
            Ok::<(), GitError>(())
        }
        .await;
        if let Err(e) = fetched {
            if fresh {
                let _ = tokio::fs::remove_dir_all(&path).await;
                let _ = tokio::fs::remove_dir(&parent).await;
            }
            return Err(e.into());
        }
        Ok(path)
    }

    /// Waits on the bus until agent `id` is no longer live; its last state.
    async fn until_ended(
        &self,
        actor: &Actor,
        id: &AgentId,
        events: &mut tokio::sync::broadcast::Receiver<YardEvent>,
    ) -> Result<Agent, RuleError> {
        let orchestrator = &self.inner.orchestrator;
        let mut current = orchestrator.agent(actor, id).await?;
        while AgentStatus::LIVE.contains(&current.status) {
            match events.recv().await {
                Ok(YardEvent::Agent(agent)) if agent.id == *id => current = agent,
                Ok(_) => {}
                // Fell behind the bus: what the store holds now.
                Err(RecvError::Lagged(_)) => current = orchestrator.agent(actor, id).await?,
                Err(RecvError::Closed) => break,
            }
        }
        Ok(current)
    }

    #[allow(clippy::too_many_arguments)]
    async fn finish(
        &self,
        bot: &Bot,
        owner: &str,
        repo: &str,
        issue: &IssueFacts,
        actor: &Actor,
        agent: &Agent,
        url: &str,
        auth: &HttpAuth,
        default_branch: &str,
    ) -> Result<(), RuleError> {
        let diff = self.inner.orchestrator.diff(actor, &agent.id).await?;
        if diff.commits.is_empty() {
            let how = match (agent.status, agent.exit_code, agent.message.as_deref()) {
                (AgentStatus::Exited, Some(code), _) => format!("exited with code {code}"),
                (status, _, Some(message)) => format!("ended {status}: {message}"),
                (status, _, None) => format!("ended {status}"),
            };
            let text = format!(
                "Agent `{}` {how} without committing anything, so there is no pull request for this issue.",
                agent.id
            );
            bot.client.comment(owner, repo, issue.number, &text).await?;
            return Ok(());
        }
        let source = Repo::open(Path::new(&agent.repo)).await?;
        let head = format!("issue-{}", issue.number);
        source.push_to(url, auth, &agent.branch(), &head).await?;
        let title = if issue.title.trim().is_empty() {
            format!("Issue #{}", issue.number)
        } else {
            issue.title.trim().to_owned()
        };
        let body = format!(
            "Closes #{}\n\nThe work of agent `{}` ({} commit{}).",
            issue.number,
            agent.id,
            diff.commits.len(),
            if diff.commits.len() == 1 { "" } else { "s" }
        );
        let pull = bot
            .client
            .create_pull(owner, repo, &head, default_branch, &title, &body)
            .await?;
        tracing::info!(repository = %format!("{owner}/{repo}"), issue = issue.number, pull = pull.number, agent = %agent.id, "pull request opened for the issue");
        Ok(())
    }
}

/// `owner/repo`, each part a name the forge allows and safe as a path.
pub fn split_repository(full: &str) -> Option<(&str, &str)> {
    let (owner, repo) = full.split_once('/')?;
    (name_ok(owner) && name_ok(repo)).then_some((owner, repo))
}

fn name_ok(name: &str) -> bool {
    (1..=MAX_NAME).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && !name.starts_with('.')
        && !name.starts_with('-')
}

/// A default branch the yard will name in a refspec: path segments of
/// name characters, none starting with `.` or `-`.
fn branch_name_ok(branch: &str) -> bool {
    branch.len() <= 200
        && !branch.contains("..")
        && !branch.ends_with(".lock")
        && branch.split('/').all(name_ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_repository_names_are_refused() {
        assert_eq!(split_repository("team/app"), Some(("team", "app")));
        assert_eq!(split_repository("a-b_c.d/e.f"), Some(("a-b_c.d", "e.f")));
        for bad in [
            "team",
            "team/",
            "/app",
            "../app",
            "team/..",
            "team/a/b",
            "team/.git",
            "te am/app",
            "team/app\n",
            "-x/app",
            "team/ä",
        ] {
            assert_eq!(split_repository(bad), None, "{bad:?}");
        }
        assert!(branch_name_ok("main"));
        assert!(branch_name_ok("release/1.0"));
        for bad in ["", "a..b/../c", "-x", "a b", "x.lock", "a//b", ":x"] {
            assert!(!branch_name_ok(bad), "{bad:?}");
        }
    }
}
