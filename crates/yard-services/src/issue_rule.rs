//! The forge's first rule: an issue assigned to the bot puts an agent on
//! it, and comments addressed to the bot guide that agent.
//!
//! The repository is fetched with the bot's token into
//! `<data-dir>/repos/OWNER/REPO` (a bare repository the yard owns; the
//! token goes to the one git process that needs it, never into the
//! repository's configuration or a URL), one agent is spawned on the
//! default branch with the issue's title and body as its task, and the
//! issue is told the agent's id and where to watch it. When the agent ends
//! with commits its branch is pushed as `issue-<number>` and a pull request
//! that closes the issue is opened; when it ends with none, the issue is
//! told why.
//!
//! The work is kept in the store from the moment the issue is taken
//! ([`IssueWork`]): an issue whose agent is still at work is not given a
//! second one, however often it is assigned again, and after a restart the
//! yard finishes what it started (the agent does not outlive the yard, but
//! its branch does, and becomes the pull request).
//!
//! While the agent works, its questions for a person are also put on the
//! issue, and a comment that starts with `@BOT` from someone who may push
//! to the repository is guidance: it answers the agent's oldest pending
//! question it fits (any text for `request_guidance`, `yes`/`no`, an
//! option, `allow`/`deny`), or waits in the store for the agent's next
//! question, or, when no agent is at work, goes with the task of the next
//! agent on the issue. Guidance from people who may only read is not
//! taken: on a public repository anyone may comment.
//!
//! The agents belong to the owner of the yard's admin token: the forge acts
//! through the yard's own identity, so its agents count against the
//! admin's caps, are seen (and stopped) by admins, and stay with the same
//! owner when the admin token is reissued.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;
use yard_core::{
    Actor, Agent, AgentId, AgentStatus, ConfigKey, IssueGuidance, IssueWork, Owner, Person,
    Question, QuestionKind, Role,
};
use yard_forge::{ClientError, ForgeClient, Secret};
use yard_git::{GitError, HttpAuth, Repo};
use yard_store::Store;

use crate::orchestrator::SpawnRequest;
use crate::settings::Settings;
use crate::{DataDir, EventBus, Orchestrator, Questions, YardEvent, now};

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

/// A comment on an issue as a delivery describes it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CommentFacts {
    /// The forge's id of the comment.
    pub id: i64,
    /// Who wrote it (their login).
    pub author: String,
    pub body: String,
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
    Questions(#[from] crate::QuestionsError),
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

/// What the rule works with.
#[derive(Debug, Clone)]
pub struct IssueRuleParts {
    pub store: Store,
    pub settings: Settings,
    pub orchestrator: Orchestrator,
    pub questions: Questions,
    pub bus: EventBus,
    pub data_dir: DataDir,
    /// Where the portal answers, for links to an agent.
    pub portal_url: String,
    /// This yard's instance id: it finishes the work it took.
    pub instance: String,
}

/// The rule; cheap to clone.
#[derive(Debug, Clone)]
pub struct IssueRule {
    parts: Arc<IssueRuleParts>,
}

/// The bot's side of the forge, from the settings.
#[derive(Clone)]
struct Bot {
    user: String,
    token: String,
    client: ForgeClient,
}

/// An issue of a repository, checked as names the yard uses.
#[derive(Debug, Clone, Copy)]
struct Place<'a> {
    owner: &'a str,
    repo: &'a str,
    number: i64,
}

impl IssueRule {
    pub fn new(mut parts: IssueRuleParts) -> Self {
        parts.portal_url = parts.portal_url.trim_end_matches('/').to_owned();
        Self {
            parts: Arc::new(parts),
        }
    }

    /// Acts on an `issues` delivery with `action == "assigned"` in
    /// `repository`, in the background. Anything else is left.
    pub fn assigned(&self, repository: &str, issue: IssueFacts) {
        let this = self.clone();
        let repository = repository.to_owned();
        tokio::spawn(async move { this.take(&repository, issue).await });
    }

    /// Acts on a new comment on issue `number` of `repository`, in the
    /// background: guidance when it is addressed to the bot.
    pub fn commented(&self, repository: &str, number: i64, comment: CommentFacts) {
        let this = self.clone();
        let repository = repository.to_owned();
        tokio::spawn(async move {
            if let Err(e) = this.guide(&repository, number, &comment).await {
                tracing::warn!(repository, issue = number, comment = comment.id, error = %e, "a comment to the bot could not be taken as guidance");
            }
        });
    }

    /// Finishes, in the background, the work this yard took and had not
    /// finished when it stopped; returns how much there is. Call it after
    /// the orchestrator has settled the agents of the earlier run.
    pub async fn resume(&self) -> Result<usize, RuleError> {
        let unfinished = self
            .parts
            .store
            .unfinished_issue_work(&self.parts.instance)
            .await?;
        if unfinished.is_empty() {
            return Ok(0);
        }
        let bot = self.bot().await?;
        let count = unfinished.len();
        for work in unfinished {
            let this = self.clone();
            let bot = bot.clone();
            tokio::spawn(async move {
                tracing::info!(issue = %work.issue, agent = ?work.agent.as_ref().map(AgentId::as_str), "finishing the work on an issue an earlier run started");
                match split_repository(&work.repository) {
                    Some((owner, repo)) => {
                        let place = Place {
                            owner,
                            repo,
                            number: work.number,
                        };
                        this.work_on(&bot, place, &work).await;
                    }
                    // Taken only with a checked name: not from this yard.
                    None => {
                        let _ = this.parts.store.finish_issue(&work.issue, now()).await;
                    }
                }
            });
        }
        Ok(count)
    }

    async fn bot(&self) -> Result<Bot, RuleError> {
        let settings = &self.parts.settings;
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

    /// Takes an assigned issue, if it is the bot's and not taken, and
    /// works on it to the end.
    async fn take(&self, repository: &str, issue: IssueFacts) {
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
        let work = IssueWork {
            issue: IssueWork::key(repository, issue.number),
            repository: repository.to_owned(),
            number: issue.number,
            title: issue.title,
            body: issue.body,
            instance: self.parts.instance.clone(),
            agent: None,
            started_at: now(),
            finished_at: None,
        };
        match self.parts.store.take_issue(&work).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::info!(issue = %work.issue, "assigned again while its agent is at work; no second agent");
                return;
            }
            Err(e) => {
                tracing::warn!(issue = %work.issue, error = %e, "cannot record the work on an issue; not acted on");
                return;
            }
        }
        let place = Place {
            owner,
            repo,
            number: work.number,
        };
        self.work_on(&bot, place, &work).await;
    }

    /// Puts an agent on taken `work` (unless it has one), follows it to
    /// its end and reports that on the issue; the work is then finished,
    /// whatever happened.
    async fn work_on(&self, bot: &Bot, place: Place<'_>, work: &IssueWork) {
        let outcome = async {
            let actor = self.actor().await?;
            let agent = match &work.agent {
                Some(id) => Some(id.clone()),
                None => self.start(bot, place, work, &actor).await?,
            };
            if let Some(agent) = agent {
                let ended = self.follow(bot, place, work, &actor, &agent).await?;
                self.finish(bot, place, work, &actor, &ended).await?;
            }
            Ok::<(), RuleError>(())
        }
        .await;
        if let Err(e) = outcome {
            tracing::warn!(issue = %work.issue, error = %e, "the issue assigned to the bot could not be worked on");
            let text = format!("The yard could not put an agent on this issue: {e}");
            if let Err(comment) = self.tell(bot, place, &text).await {
                tracing::warn!(issue = %work.issue, error = %comment, "and the issue cannot be told so");
            }
        }
        if let Err(e) = self.parts.store.finish_issue(&work.issue, now()).await {
            tracing::warn!(issue = %work.issue, error = %e, "cannot record that the work on an issue ended");
        }
    }

    async fn tell(&self, bot: &Bot, place: Place<'_>, text: &str) -> Result<(), ClientError> {
        bot.client
            .comment(place.owner, place.repo, place.number, text)
            .await
    }

    /// Who the forge's agents belong to: the admin token's owner.
    async fn actor(&self) -> Result<Actor, RuleError> {
        Ok(Actor::Person(self.admin().await?))
    }

    async fn admin(&self) -> Result<Person, RuleError> {
        let token = self
            .parts
            .data_dir
            .read_admin_token()
            .map_err(|source| RuleError::Io {
                context: "reading the admin token",
                source,
            })?
            .ok_or(RuleError::NoIdentity)?;
        let record = crate::auth::authenticate(&self.parts.store, &token)
            .await?
            .ok_or(RuleError::NoIdentity)?;
        Ok(Person {
            owner: Owner {
                id: record.owner_id,
                name: record.name,
            },
            role: Role::Admin,
        })
    }

    /// The bot's address for the repository's git, and its credential.
    fn git_remote(bot: &Bot, place: Place<'_>) -> (String, HttpAuth) {
        let url = format!("{}/{}/{}.git", bot.client.root(), place.owner, place.repo);
        let auth = HttpAuth {
            user: bot.user.clone(),
            password: bot.token.clone(),
        };
        (url, auth)
    }

    /// The repository's default branch, read by the bot.
    async fn default_branch(&self, bot: &Bot, place: Place<'_>) -> Result<String, RuleError> {
        let info = bot
            .client
            .repository(place.owner, place.repo)
            .await
            .map_err(|source| RuleError::CannotRead {
                bot: bot.user.clone(),
                repo: format!("{}/{}", place.owner, place.repo),
                source,
            })?;
        if !branch_name_ok(&info.default_branch) {
            return Err(RuleError::BadBranch(info.default_branch));
        }
        Ok(info.default_branch)
    }

    /// Fetches the repository and spawns the agent, with the guidance
    /// waiting on the issue in its task; the agent, if it runs.
    async fn start(
        &self,
        bot: &Bot,
        place: Place<'_>,
        work: &IssueWork,
        actor: &Actor,
    ) -> Result<Option<AgentId>, RuleError> {
        let parts = &self.parts;
        let default_branch = self.default_branch(bot, place).await?;
        let (url, auth) = Self::git_remote(bot, place);
        let path = self.fetch(place, &url, &auth, &default_branch).await?;
        let mut task = work.title.trim().to_owned();
        if !work.body.trim().is_empty() {
            task.push_str("\n\n");
            task.push_str(work.body.trim());
        }
        let guidance = parts.store.waiting_guidance(&work.issue).await?;
        if !guidance.is_empty() {
            task.push_str("\n\nGuidance given on the issue:");
            for given in &guidance {
                task.push_str(&format!("\n- {} wrote: {}", given.author, given.text));
            }
        }
        let agents = parts
            .orchestrator
            .spawn(
                actor,
                SpawnRequest {
                    repo: Some(path),
                    count: 1,
                    task,
                    image: None,
                    base: Some(format!("refs/heads/{default_branch}")),
                },
            )
            .await?;
        let Some(agent) = agents.into_iter().next() else {
            return Ok(None);
        };
        // A crash between the spawn and this line leaves work with no
        // agent, which the next start begins again: the agent spawned
        // before it was removed with the rest of that run's.
        parts.store.set_issue_agent(&work.issue, &agent.id).await?;
        let to = format!("task:{}", agent.id);
        for given in &guidance {
            parts
                .store
                .deliver_guidance(&work.issue, given.comment_id, &to)
                .await?;
        }
        let link = format!("{}/#agents", parts.portal_url);
        let started = if agent.status == AgentStatus::Running {
            format!(
                "Agent `{}` is working on this issue on branch `issue-{}`. Watch it on the portal: {link}\n\nIts questions for a person appear here; answer with a comment that starts with `@{}`.",
                agent.id, place.number, bot.user
            )
        } else {
            format!(
                "Agent `{}` could not start ({}): {}. See {link}",
                agent.id,
                agent.status,
                agent.message.as_deref().unwrap_or("no reason recorded")
            )
        };
        tracing::info!(issue = %work.issue, agent = %agent.id, status = %agent.status, "an agent was put on an issue assigned to the bot");
        if let Err(e) = self.tell(bot, place, &started).await {
            tracing::warn!(agent = %agent.id, error = %e, "cannot tell the issue about its agent");
        }
        Ok((agent.status == AgentStatus::Running).then_some(agent.id))
    }

    /// Fetches the default branch into `<data-dir>/repos/OWNER/REPO`,
    /// made the first time (and removed again if that first fetch fails).
    async fn fetch(
        &self,
        place: Place<'_>,
        url: &str,
        auth: &HttpAuth,
        branch: &str,
    ) -> Result<PathBuf, RuleError> {
        let parent = self.parts.data_dir.path().join("repos").join(place.owner);
        let path = parent.join(place.repo);
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

    /// Follows agent `id` until it is no longer live, putting each of its
    /// questions to the guidance waiting on the issue or, with none that
    /// fits, on the issue; its last state.
    async fn follow(
        &self,
        bot: &Bot,
        place: Place<'_>,
        work: &IssueWork,
        actor: &Actor,
        id: &AgentId,
    ) -> Result<Agent, RuleError> {
        let parts = &self.parts;
        // Subscribed before the first look: neither the end nor a question
        // can come unseen.
        let mut events = parts.bus.subscribe();
        let mut current = parts.orchestrator.agent(actor, id).await?;
        let mut seen = HashSet::new();
        for question in parts.questions.pending_of(id).await? {
            self.on_question(bot, place, work, &question, &mut seen)
                .await;
        }
        while AgentStatus::LIVE.contains(&current.status) {
            match events.recv().await {
                Ok(YardEvent::Agent(agent)) if agent.id == *id => current = agent,
                Ok(YardEvent::Question(question))
                    if question.agent_id == *id && question.outcome.is_pending() =>
                {
                    self.on_question(bot, place, work, &question, &mut seen)
                        .await;
                }
                Ok(_) => {}
                // Fell behind the bus: what the store holds now.
                Err(RecvError::Lagged(_)) => {
                    current = parts.orchestrator.agent(actor, id).await?;
                    for question in parts.questions.pending_of(id).await? {
                        self.on_question(bot, place, work, &question, &mut seen)
                            .await;
                    }
                }
                Err(RecvError::Closed) => break,
            }
        }
        Ok(current)
    }

    /// A question of the issue's agent: answered with the guidance waiting
    /// on the issue if some fits, otherwise put on the issue. Once per
    /// question.
    async fn on_question(
        &self,
        bot: &Bot,
        place: Place<'_>,
        work: &IssueWork,
        question: &Question,
        seen: &mut HashSet<String>,
    ) {
        if !seen.insert(question.id.clone()) {
            return;
        }
        let answered = async {
            let waiting = self.parts.store.waiting_guidance(&work.issue).await?;
            self.answer_with(question, &waiting).await
        }
        .await;
        match answered {
            Ok(true) => return,
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(question = %question.id, error = %e, "cannot answer a question with the guidance on its issue");
            }
        }
        let text = ask_on_issue(question, &bot.user);
        if let Err(e) = self.tell(bot, place, &text).await {
            tracing::warn!(question = %question.id, error = %e, "cannot put an agent's question on its issue");
        }
    }

    /// Answers `question` with the first of `guidance` that fits it (all
    /// of it, for free text); whether it did.
    async fn answer_with(
        &self,
        question: &Question,
        guidance: &[IssueGuidance],
    ) -> Result<bool, RuleError> {
        let chosen: Vec<&IssueGuidance> = if question.kind == QuestionKind::Text {
            guidance.iter().collect()
        } else {
            guidance
                .iter()
                .find(|g| question.check_answer(&g.text).is_ok())
                .into_iter()
                .collect()
        };
        if chosen.is_empty() {
            return Ok(false);
        }
        let answer = chosen
            .iter()
            .map(|g| g.text.as_str())
            .collect::<Vec<_>>()
            .join("\n\n");
        let mut authors: Vec<&str> = chosen.iter().map(|g| g.author.as_str()).collect();
        authors.dedup();
        // Recorded as the yard's own identity (which may answer every
        // question), named after the forge users who wrote the guidance.
        let mut by = self.admin().await?;
        by.owner.name = format!("{} (on the forge)", authors.join(", "));
        match self
            .parts
            .questions
            .answer(&by, &question.id, &answer, None)
            .await
        {
            Ok(_) => {}
            // Answered, or its agent ended, meanwhile: the guidance waits.
            Err(crate::QuestionsError::Settled { .. }) => return Ok(false),
            Err(e) => return Err(e.into()),
        }
        let to = format!("question:{}", question.id);
        for given in &chosen {
            self.parts
                .store
                .deliver_guidance(&given.issue, given.comment_id, &to)
                .await?;
        }
        tracing::info!(question = %question.id, agent = %question.agent_id, "a question answered with guidance from the forge");
        Ok(true)
    }

    /// A new comment on an issue: guidance if it is addressed to the bot by
    /// someone who may push to the repository.
    async fn guide(
        &self,
        repository: &str,
        number: i64,
        comment: &CommentFacts,
    ) -> Result<(), RuleError> {
        let bot = self.bot().await?;
        if comment.author.eq_ignore_ascii_case(&bot.user) {
            return Ok(());
        }
        let Some(text) = addressed_to(&comment.body, &bot.user) else {
            return Ok(());
        };
        let (owner, repo) = split_repository(repository)
            .ok_or_else(|| RuleError::BadRepository(repository.to_owned()))?;
        let place = Place {
            owner,
            repo,
            number,
        };
        let permission = bot.client.permission(owner, repo, &comment.author).await;
        if !permission.as_ref().is_ok_and(|p| p.can_write()) {
            tracing::warn!(repository, issue = number, author = %comment.author, permission = ?permission, "guidance from someone who may not push to the repository is not taken");
            return Ok(());
        }
        let issue = IssueWork::key(repository, number);
        let guidance = IssueGuidance {
            issue: issue.clone(),
            comment_id: comment.id,
            author: comment.author.clone(),
            text: text.to_owned(),
            received_at: now(),
            delivered_to: None,
        };
        let store = &self.parts.store;
        if !store.add_guidance(&guidance).await? {
            return Ok(());
        }
        tracing::info!(issue = %issue, comment = comment.id, author = %comment.author, "guidance for the bot");
        let work = store
            .issue_work(&issue)
            .await?
            .filter(|w| w.finished_at.is_none());
        let reply = match work.as_ref().and_then(|w| w.agent.as_ref()) {
            Some(agent) => {
                let mut answered = false;
                for question in self.parts.questions.pending_of(agent).await? {
                    if self
                        .answer_with(&question, std::slice::from_ref(&guidance))
                        .await?
                    {
                        answered = true;
                        break;
                    }
                }
                if answered {
                    format!("Given to agent `{agent}` as the answer to its question.")
                } else {
                    format!("Noted: agent `{agent}` gets this when it next asks for guidance.")
                }
            }
            None if work.is_some() => {
                "Noted: the agent being put on this issue gets this when it asks for guidance."
                    .to_owned()
            }
            None => format!(
                "Noted: the next agent on this issue gets this with its task (assign the issue to @{}).",
                bot.user
            ),
        };
        self.tell(&bot, place, &reply).await?;
        Ok(())
    }

    /// Pushes the agent's commits and opens the pull request, or says on
    /// the issue that there is nothing to pull.
    async fn finish(
        &self,
        bot: &Bot,
        place: Place<'_>,
        work: &IssueWork,
        actor: &Actor,
        agent: &Agent,
    ) -> Result<(), RuleError> {
        let diff = self.parts.orchestrator.diff(actor, &agent.id).await?;
        let how = match (agent.status, agent.exit_code, agent.message.as_deref()) {
            (AgentStatus::Exited, Some(code), _) => format!("exited with code {code}"),
            (status, _, Some(message)) => format!("ended {status}: {message}"),
            (status, _, None) => format!("ended {status}"),
        };
        if diff.commits.is_empty() {
            let text = format!(
                "Agent `{}` {how} without committing anything, so there is no pull request for this issue.",
                agent.id
            );
            self.tell(bot, place, &text).await?;
            return Ok(());
        }
        let default_branch = self.default_branch(bot, place).await?;
        let (url, auth) = Self::git_remote(bot, place);
        let source = Repo::open(Path::new(&agent.repo)).await?;
        let head = format!("issue-{}", place.number);
        source.push_to(&url, &auth, &agent.branch(), &head).await?;
        let title = match work.title.trim() {
            "" => format!("Issue #{}", place.number),
            title => title.to_owned(),
        };
        let body = format!(
            "Closes #{}\n\nThe work of agent `{}` ({} commit{}); it {how}.",
            place.number,
            agent.id,
            diff.commits.len(),
            if diff.commits.len() == 1 { "" } else { "s" }
        );
        let pull = bot
            .client
            .create_pull(
                place.owner,
                place.repo,
                &head,
                &default_branch,
                &title,
                &body,
            )
            .await?;
        tracing::info!(issue = %work.issue, pull = pull.number, agent = %agent.id, "pull request opened for the issue");
        Ok(())
    }
}

/// What a comment addressed to `bot` says: its text after a leading
/// `@bot` (any case; then a space, `:` or `,`, or nothing), if there is
/// any. A mention further on does not address the bot.
fn addressed_to<'a>(body: &'a str, bot: &str) -> Option<&'a str> {
    let rest = body.trim_start().strip_prefix('@')?;
    let name = rest.get(..bot.len())?;
    if !name.eq_ignore_ascii_case(bot) {
        return None;
    }
    let rest = &rest[bot.len()..];
    let separator = |c: char| c.is_whitespace() || c == ':' || c == ',';
    if !rest.is_empty() && !rest.starts_with(separator) {
        return None;
    }
    let text = rest.trim_start_matches(separator).trim_end();
    (!text.is_empty()).then_some(text)
}

/// A question put on the issue, with how to answer it there.
fn ask_on_issue(question: &Question, bot: &str) -> String {
    let how = match &question.kind {
        QuestionKind::Confirm => format!("`@{bot} yes` or `@{bot} no`"),
        QuestionKind::Permission => format!("`@{bot} allow` or `@{bot} deny`"),
        QuestionKind::Select { options } => {
            let options: Vec<String> = options.iter().map(|o| format!("`{o}`")).collect();
            format!("`@{bot}` and one of {}", options.join(", "))
        }
        QuestionKind::Text => format!("`@{bot}` and your guidance"),
    };
    let quote = |text: &str| format!("> {}", text.trim().replace('\n', "\n> "));
    let context = question
        .context
        .as_deref()
        .map(|c| format!("\n{}", quote(c)))
        .unwrap_or_default();
    format!(
        "Agent `{}` asks:\n\n{}{context}\n\nAnswer with a comment: {how}.",
        question.agent_id,
        quote(&question.message)
    )
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
    fn only_a_comment_that_starts_with_the_bots_name_addresses_it() {
        let bot = "yard-bot";
        assert_eq!(
            addressed_to("@yard-bot use the cache", bot),
            Some("use the cache")
        );
        assert_eq!(addressed_to("  @Yard-Bot: yes\n", bot), Some("yes"));
        assert_eq!(
            addressed_to("@yard-bot,\nline one\nline two", bot),
            Some("line one\nline two")
        );
        for not in [
            "",
            "@yard-bot",
            "@yard-bot   ",
            "@yard-bots do it",
            "@yard-bo",
            "thanks @yard-bot do it",
            "yard-bot do it",
            "@other do it",
            "@yard-b\u{f6}t x",
            "@yard-b\u{f6}",
        ] {
            assert_eq!(addressed_to(not, bot), None, "{not:?}");
        }
    }

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
