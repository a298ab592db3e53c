//! The forge's first-boot set-up through Gitea's API: the bot user, an API
//! token for the admin and for the bot, the organisation with the bot
//! among its owners, and the system webhook to the yard.
//!
//! Every step finds what exists, updates it and never makes a duplicate, so
//! a run may be repeated at any time, and a run that stopped part-way (a
//! crash, a forge that failed) is finished by the next one:
//!
//! - a user or organisation that exists answers 422; it is looked up and
//!   updated (the bot's password is set to the yard's, and
//!   `must_change_password` turned off: a user made through the API must
//!   otherwise change it before Gitea lets it use the API at all);
//! - a token the yard already holds is kept while it still signs in, so
//!   tokens stay valid across boots; a new one is made only without one,
//!   under a name not yet used (Gitea answers 400 for a used name: the
//!   next is `yard-2`, `yard-3`, …);
//! - the system webhook is the one whose URL is the yard's. Gitea's PATCH
//!   never changes a hook's secret, so a hook is updated in place only
//!   when its secret is the one the yard holds; one whose secret the yard
//!   lost is deleted and made again, and any second hook to the same URL
//!   is deleted.
//!
//! A step that fails with a 5xx, a 429 or no connection is tried again,
//! from its first look at what exists, with exponential backoff up to
//! [`SetupOptions::tries`]; any other refusal stops the run at once. Both
//! name the step. Secrets (passwords, tokens, the webhook secret) are
//! never logged, and are cut out of anything the forge says before it goes
//! into an error or a log line.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode, Url};
use serde_json::{Value, json};

use crate::api::{Answer, Api, Auth, shorten};
use crate::error::{SetupError, SetupFailed, Step, StepFailure};
use crate::secret::{Secret, generate_hex_secret, generate_password};

/// The events the yard's system webhook is sent for.
pub const WEBHOOK_EVENTS: [&str; 4] = ["issues", "issue_comment", "pull_request", "push"];

/// The scopes of the admin's token: users and system hooks
/// (`write:admin`), organisations and teams, repositories, and reading
/// who it is.
pub const ADMIN_TOKEN_SCOPES: [&str; 4] = [
    "write:admin",
    "write:organization",
    "write:repository",
    "read:user",
];

/// The scopes of the bot's token: cloning and pushing, pull requests,
/// issues and comments, its organisation's repositories, and reading who
/// it is.
pub const BOT_TOKEN_SCOPES: [&str; 4] = [
    "write:repository",
    "write:issue",
    "write:organization",
    "read:user",
];

/// The name of the tokens the set-up makes (then `yard-2`, …).
pub const TOKEN_NAME: &str = "yard";

/// Gitea answers lists in pages of at most 50.
const PAGE: usize = 50;
/// More pages than any forge the yard sets up has (a guard against a
/// forge that ignores `page`).
const MAX_PAGES: usize = 40;

/// How the set-up signs in as a site admin.
#[derive(Debug, Clone)]
pub enum AdminAuth {
    /// The admin's name and password: a forge the yard runs, whose first
    /// admin the caller made with `gitea admin user create
    /// --must-change-password=false`. The set-up makes the admin a token.
    Password { user: String, password: Secret },
    /// A site admin's token (`GITEA_ADMIN_TOKEN` for an external forge):
    /// used as it is, and the admin's name is read from the forge. It
    /// needs the scopes of [`ADMIN_TOKEN_SCOPES`] (or `all`).
    Token(Secret),
}

/// The secrets a caller keeps from one run to the next (in its encrypted
/// store) and hands back in the next run's [`Plan`]. A run uses each one
/// it is given as long as the forge still takes it, and makes or
/// generates the rest.
#[derive(Debug, Clone, Default)]
pub struct StoredSecrets {
    /// The admin's token the set-up made (for [`AdminAuth::Password`]).
    pub admin_token: Option<Secret>,
    pub bot_password: Option<Secret>,
    pub bot_token: Option<Secret>,
    pub webhook_secret: Option<Secret>,
}

/// What the forge should hold.
#[derive(Debug, Clone)]
pub struct Plan {
    pub admin: AdminAuth,
    /// The bot user agents work as (`BOT_USER`).
    pub bot_user: String,
    /// The bot's e-mail address; `<bot>@noreply.localhost` when `None`.
    pub bot_email: Option<String>,
    /// The organisation (`ORG_NAME`), with the bot among its owners.
    pub org: String,
    /// Where the system webhook goes: the yard's `…/webhook/gitea`.
    pub webhook_url: String,
    /// What an earlier run settled, if anything.
    pub stored: StoredSecrets,
}

impl Plan {
    /// A plan with nothing stored yet.
    pub fn new(
        admin: AdminAuth,
        bot_user: impl Into<String>,
        org: impl Into<String>,
        webhook_url: impl Into<String>,
    ) -> Self {
        Self {
            admin,
            bot_user: bot_user.into(),
            bot_email: None,
            org: org.into(),
            webhook_url: webhook_url.into(),
            stored: StoredSecrets::default(),
        }
    }
}

/// How long to wait and how hard to try.
#[derive(Debug, Clone)]
pub struct SetupOptions {
    /// How long [`ForgeSetup::wait_until_ready`] waits for the API.
    pub ready_timeout: Duration,
    /// How many times a step is tried while the forge answers 5xx or
    /// cannot be reached (at least 1).
    pub tries: u32,
    /// The pause after the first failed try; it doubles each time.
    pub first_backoff: Duration,
    /// The longest pause between tries.
    pub max_backoff: Duration,
    /// The longest one request may take.
    pub request_timeout: Duration,
}

impl Default for SetupOptions {
    fn default() -> Self {
        Self {
            ready_timeout: Duration::from_secs(120),
            tries: 5,
            first_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(8),
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// What a finished set-up hands back. `Debug` shows no secret.
#[derive(Debug, Clone)]
pub struct ForgeCredentials {
    /// The forge's root address, e.g. `http://127.0.0.1:3000`.
    pub forge_url: String,
    /// What `GET /api/v1/version` said.
    pub version: String,
    pub admin_user: String,
    /// The admin's password, when the set-up signed in with one.
    pub admin_password: Option<Secret>,
    /// The admin's token: the one made (or kept) for a password admin,
    /// the one given for a token admin.
    pub admin_token: Secret,
    pub bot_user: String,
    pub bot_password: Secret,
    /// Whether this run generated the bot's password (the plan had none).
    pub bot_password_generated: bool,
    pub bot_token: Secret,
    pub org: String,
    pub webhook_url: String,
    /// The system webhook's id in the forge.
    pub webhook_id: i64,
    pub webhook_secret: Secret,
    /// Whether this run generated the webhook secret.
    pub webhook_secret_generated: bool,
}

impl ForgeCredentials {
    /// What to store for the next run.
    pub fn stored(&self) -> StoredSecrets {
        StoredSecrets {
            admin_token: self
                .admin_password
                .is_some()
                .then(|| self.admin_token.clone()),
            bot_password: Some(self.bot_password.clone()),
            bot_token: Some(self.bot_token.clone()),
            webhook_secret: Some(self.webhook_secret.clone()),
        }
    }
}

/// The set-up of one forge.
#[derive(Debug, Clone)]
pub struct ForgeSetup {
    api: Api,
    options: SetupOptions,
}

/// Why one try of a step did not succeed.
enum Failure {
    /// Worth another try: 5xx, 429, 408, or no connection.
    Transient(String),
    /// Not worth another.
    Fatal(StepFailure),
}

type Tried<T> = Result<T, Failure>;

/// An answer no step handles: transient or not by its status.
fn unhandled(answer: &Answer) -> Failure {
    let status = answer.status;
    if status.is_server_error()
        || status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
    {
        Failure::Transient(format!("the forge answered {status}: {}", answer.message()))
    } else {
        Failure::Fatal(StepFailure::Refused {
            status: status.as_u16(),
            message: answer.message(),
        })
    }
}

fn unexpected(what: &str) -> Failure {
    Failure::Fatal(StepFailure::Unexpected(what.to_owned()))
}

fn conflict(what: String) -> Failure {
    Failure::Fatal(StepFailure::Conflict(what))
}

/// A non-empty stored secret.
fn given(secret: Option<&Secret>) -> Option<&Secret> {
    secret.filter(|s| !s.is_empty())
}

impl ForgeSetup {
    /// The set-up of the forge at `forge_url`: its root (`http://host:3000`)
    /// or its API (`…/api/v1`).
    pub fn new(forge_url: &str, options: SetupOptions) -> Result<Self, SetupError> {
        let api = Api::new(forge_url, options.request_timeout)?;
        Ok(Self { api, options })
    }

    /// The forge's root address, without the trailing `/`.
    pub fn forge_url(&self) -> String {
        self.api.root()
    }

    /// Waits until `GET /api/v1/version` answers, at most
    /// [`SetupOptions::ready_timeout`]; the version. Call it before making
    /// the first admin with Gitea's CLI, so the database is ready.
    pub async fn wait_until_ready(&self) -> Result<String, SetupError> {
        let started = Instant::now();
        let deadline = started + self.options.ready_timeout;
        let mut pause = Duration::from_millis(100);
        loop {
            let last = match self
                .api
                .send(Method::GET, &["version"], &[], Auth::Anonymous, None)
                .await
            {
                Ok(answer) if answer.status == StatusCode::OK => match answer.text("version") {
                    Some(version) => {
                        tracing::info!(forge = %self.api.root(), version, "the forge's API answers");
                        return Ok(version.to_owned());
                    }
                    None => "an answer without a version".to_owned(),
                },
                Ok(answer) => format!("{}: {}", answer.status, answer.message()),
                Err(why) => why,
            };
            let now = Instant::now();
            if now >= deadline {
                return Err(SetupError::NotReady {
                    url: self.api.root(),
                    waited: now - started,
                    last: shorten(&last, 300),
                });
            }
            tracing::debug!(forge = %self.api.root(), last = %last, "waiting for the forge's API");
            tokio::time::sleep(pause.min(deadline - now)).await;
            pause = (pause * 2).min(Duration::from_secs(2));
        }
    }

    /// Sets the forge up as `plan` says; see the module's documentation
    /// for what each step does. On failure, the secrets settled so far
    /// come back with the error, to be stored like a finished run's.
    pub async fn run(&self, plan: &Plan) -> Result<ForgeCredentials, SetupFailed> {
        let bot_password_generated = given(plan.stored.bot_password.as_ref()).is_none();
        let bot_password = given(plan.stored.bot_password.as_ref())
            .cloned()
            .unwrap_or_else(generate_password);
        let webhook_secret_generated = given(plan.stored.webhook_secret.as_ref()).is_none();
        let webhook_secret = given(plan.stored.webhook_secret.as_ref())
            .cloned()
            .unwrap_or_else(|| generate_hex_secret(32));
        let mut run = Run {
            setup: self,
            plan,
            stored: StoredSecrets {
                admin_token: plan.stored.admin_token.clone(),
                bot_password: Some(bot_password.clone()),
                bot_token: plan.stored.bot_token.clone(),
                webhook_secret: Some(webhook_secret.clone()),
            },
            secrets: Vec::new(),
        };
        run.remember(&bot_password);
        run.remember(&webhook_secret);
        for secret in [&plan.stored.admin_token, &plan.stored.bot_token]
            .into_iter()
            .flatten()
        {
            run.remember(secret);
        }
        match &plan.admin {
            AdminAuth::Password { password, .. } => run.remember(password),
            AdminAuth::Token(token) => run.remember(token),
        }
        if bot_password_generated {
            tracing::info!(bot = %plan.bot_user, "generated a password for the bot user");
        }
        match run
            .all(
                bot_password,
                bot_password_generated,
                webhook_secret,
                webhook_secret_generated,
            )
            .await
        {
            Ok(credentials) => Ok(credentials),
            Err(error) => {
                tracing::warn!(error = %error, "the forge's set-up stopped");
                Err(SetupFailed {
                    error,
                    stored: run.stored,
                })
            }
        }
    }
}

/// One run of the set-up.
struct Run<'a> {
    setup: &'a ForgeSetup,
    plan: &'a Plan,
    /// What is settled so far.
    stored: StoredSecrets,
    /// Every secret value of the run, cut out of what the forge says.
    secrets: Vec<String>,
}

impl Run<'_> {
    fn remember(&mut self, secret: &Secret) {
        if secret.expose().len() >= 4 && !self.secrets.iter().any(|s| s == secret.expose()) {
            self.secrets.push(secret.expose().to_owned());
        }
    }

    /// `text` without any of the run's secrets.
    fn clean(&self, text: &str) -> String {
        let mut text = text.to_owned();
        for secret in &self.secrets {
            text = text.replace(secret.as_str(), "[redacted]");
        }
        text
    }

    fn fail(&self, step: Step, failure: StepFailure) -> SetupError {
        let failure = match failure {
            StepFailure::GaveUp { last, tries } => StepFailure::GaveUp {
                last: self.clean(&last),
                tries,
            },
            StepFailure::Refused { status, message } => StepFailure::Refused {
                status,
                message: self.clean(&message),
            },
            StepFailure::Unexpected(what) => StepFailure::Unexpected(self.clean(&what)),
            StepFailure::Conflict(what) => StepFailure::Conflict(self.clean(&what)),
        };
        SetupError::Step { step, failure }
    }

    /// Runs `attempt` until it succeeds, fails for good, or has failed
    /// transiently [`SetupOptions::tries`] times.
    async fn step<T, F, Fut>(&self, step: Step, mut attempt: F) -> Result<T, SetupError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Tried<T>>,
    {
        let options = &self.setup.options;
        let tries = options.tries.max(1);
        let mut pause = options.first_backoff;
        let mut tried = 0;
        loop {
            tried += 1;
            match attempt().await {
                Ok(value) => return Ok(value),
                Err(Failure::Fatal(failure)) => return Err(self.fail(step, failure)),
                Err(Failure::Transient(last)) if tried >= tries => {
                    return Err(self.fail(step, StepFailure::GaveUp { last, tries: tried }));
                }
                Err(Failure::Transient(last)) => {
                    tracing::warn!(
                        step = %step,
                        tried,
                        tries,
                        retry_in_ms = u64::try_from(pause.as_millis()).unwrap_or(u64::MAX),
                        error = %self.clean(&last),
                        "the forge failed; trying the step again"
                    );
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(options.max_backoff.max(options.first_backoff));
                }
            }
        }
    }

    async fn send(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, String)],
        auth: Auth<'_>,
        body: Option<&Value>,
    ) -> Tried<Answer> {
        self.setup
            .api
            .send(method, segments, query, auth, body)
            .await
            .map_err(Failure::Transient)
    }

    /// Every item of a paged list.
    async fn list(
        &self,
        segments: &[&str],
        extra: &[(&str, String)],
        auth: Auth<'_>,
    ) -> Tried<Vec<Value>> {
        let mut items = Vec::new();
        let mut seen = BTreeSet::new();
        for page in 1..=MAX_PAGES {
            let mut query = extra.to_vec();
            query.push(("page", page.to_string()));
            query.push(("limit", PAGE.to_string()));
            let answer = self.send(Method::GET, segments, &query, auth, None).await?;
            if answer.status != StatusCode::OK {
                return Err(unhandled(&answer));
            }
            let Value::Array(got) = answer.body else {
                return Err(unexpected("a list that is not a JSON array"));
            };
            let count = got.len();
            let mut fresh = 0;
            for item in got {
                let key = item
                    .get("id")
                    .map_or_else(|| item.to_string(), Value::to_string);
                if seen.insert(key) {
                    items.push(item);
                    fresh += 1;
                }
            }
            if count < PAGE || fresh == 0 {
                break;
            }
        }
        Ok(items)
    }

    fn check_plan(&self) -> Result<(), SetupError> {
        let plan = self.plan;
        let bad = |why: String| Err(SetupError::Plan(why));
        for (what, name) in [("bot user", &plan.bot_user), ("organisation", &plan.org)] {
            if name.trim().is_empty() || name.trim() != name.as_str() {
                return bad(format!(
                    "the {what}'s name is empty or has surrounding spaces"
                ));
            }
        }
        if let AdminAuth::Password { user, password } = &plan.admin {
            if user.trim().is_empty() || password.is_empty() {
                return bad("the admin's name or password is empty".to_owned());
            }
            if user.eq_ignore_ascii_case(&plan.bot_user) {
                return bad("the bot user must not be the admin; give it its own name".to_owned());
            }
        }
        if let AdminAuth::Token(token) = &plan.admin
            && token.is_empty()
        {
            return bad("the admin token is empty".to_owned());
        }
        let url = Url::parse(plan.webhook_url.trim()).ok().filter(|u| {
            matches!(u.scheme(), "http" | "https")
                && u.host_str().is_some()
                && u.username().is_empty()
                && u.password().is_none()
        });
        if url.is_none() {
            return bad(
                "the yard's webhook URL must be an absolute http:// or https:// address without credentials"
                    .to_owned(),
            );
        }
        Ok(())
    }

    /// Every step, in order.
    async fn all(
        &mut self,
        bot_password: Secret,
        bot_password_generated: bool,
        webhook_secret: Secret,
        webhook_secret_generated: bool,
    ) -> Result<ForgeCredentials, SetupError> {
        self.check_plan()?;
        let plan = self.plan;
        let version = self.setup.wait_until_ready().await?;

        let (admin_user, admin_password, admin_token) = match &plan.admin {
            AdminAuth::Password { user, password } => {
                let basic = Auth::Basic { user, password };
                let login = self
                    .step(Step::CheckAdmin, || self.check_admin(basic, Some(user)))
                    .await?;
                let (token, made) = self
                    .step(Step::AdminToken, || {
                        self.ensure_token(
                            &login,
                            basic,
                            plan.stored.admin_token.as_ref(),
                            &ADMIN_TOKEN_SCOPES,
                        )
                    })
                    .await?;
                self.remember(&token);
                self.stored.admin_token = Some(token.clone());
                tracing::info!(admin = %login, made, "the admin's API token is ready");
                (login, Some(password.clone()), token)
            }
            AdminAuth::Token(token) => {
                let login = self
                    .step(Step::CheckAdmin, || {
                        self.check_admin(Auth::Token(token), None)
                    })
                    .await?;
                (login, None, token.clone())
            }
        };
        let admin = Auth::Token(&admin_token);

        let created = self
            .step(Step::BotUser, || self.ensure_bot(admin, &bot_password))
            .await?;
        tracing::info!(bot = %plan.bot_user, created, "the bot user is ready");

        let bot_basic = Auth::Basic {
            user: &plan.bot_user,
            password: &bot_password,
        };
        let (bot_token, made) = self
            .step(Step::BotToken, || {
                self.ensure_token(
                    &plan.bot_user,
                    bot_basic,
                    plan.stored.bot_token.as_ref(),
                    &BOT_TOKEN_SCOPES,
                )
            })
            .await?;
        self.remember(&bot_token);
        self.stored.bot_token = Some(bot_token.clone());
        tracing::info!(bot = %plan.bot_user, made, "the bot's API token is ready");

        let created = self
            .step(Step::Organisation, || self.ensure_org(admin))
            .await?;
        tracing::info!(org = %plan.org, created, "the organisation is ready");
        self.step(Step::OrgOwners, || self.ensure_owner(admin))
            .await?;
        tracing::info!(org = %plan.org, bot = %plan.bot_user, "the bot is among the organisation's owners");

        // Atomic rather than a `Cell`, so a run's future is `Send`.
        let sent = AtomicBool::new(!webhook_secret_generated);
        let webhook_id = self
            .step(Step::Webhook, || {
                self.ensure_hook(admin, &webhook_secret, &sent)
            })
            .await?;
        tracing::info!(
            url = %plan.webhook_url,
            hook = webhook_id,
            secret_generated = webhook_secret_generated,
            "the system webhook is ready"
        );

        Ok(ForgeCredentials {
            forge_url: self.setup.api.root(),
            version,
            admin_user,
            admin_password,
            admin_token,
            bot_user: plan.bot_user.clone(),
            bot_password,
            bot_password_generated,
            bot_token,
            org: plan.org.clone(),
            webhook_url: plan.webhook_url.trim().to_owned(),
            webhook_id,
            webhook_secret,
            webhook_secret_generated,
        })
    }

    /// Signs in as the admin; the admin's login. `user` is the name the
    /// plan gave, if any.
    async fn check_admin(&self, auth: Auth<'_>, user: Option<&str>) -> Tried<String> {
        let answer = self.send(Method::GET, &["user"], &[], auth, None).await?;
        match answer.status {
            StatusCode::OK => {}
            StatusCode::UNAUTHORIZED => {
                return Err(conflict(format!(
                    "the forge refused the admin credential (401: {}); check the admin user's name and password, or the admin token",
                    answer.message()
                )));
            }
            StatusCode::FORBIDDEN => {
                return Err(conflict(format!(
                    "the forge refused the admin (403: {}); an admin made with `gitea admin user create` needs `--must-change-password=false`, and an admin token needs the scopes {}",
                    answer.message(),
                    ADMIN_TOKEN_SCOPES.join(", ")
                )));
            }
            _ => return Err(unhandled(&answer)),
        }
        let Some(login) = answer.text("login").map(str::to_owned) else {
            return Err(unexpected("the signed-in user has no login"));
        };
        if let Some(user) = user
            && !login.eq_ignore_ascii_case(user)
            && !answer
                .text("email")
                .is_some_and(|e| e.eq_ignore_ascii_case(user))
        {
            return Err(unexpected("the forge signed in a different user"));
        }
        if answer.body.get("is_admin").and_then(Value::as_bool) != Some(true) {
            return Err(conflict(format!(
                "{login} is not a site administrator of the forge; the set-up needs one"
            )));
        }
        Ok(login)
    }

    /// A working token of `user`: `stored` while it signs in as `user`,
    /// else a new one made with `basic` (the user's own password).
    /// Whether one was made.
    async fn ensure_token(
        &self,
        user: &str,
        basic: Auth<'_>,
        stored: Option<&Secret>,
        scopes: &[&str],
    ) -> Tried<(Secret, bool)> {
        if let Some(token) = given(stored) {
            let answer = self
                .send(Method::GET, &["user"], &[], Auth::Token(token), None)
                .await?;
            match answer.status {
                StatusCode::OK
                    if answer
                        .text("login")
                        .is_some_and(|l| l.eq_ignore_ascii_case(user)) =>
                {
                    return Ok((token.clone(), false));
                }
                StatusCode::OK | StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                    tracing::info!(
                        user,
                        status = answer.status.as_u16(),
                        "the stored token no longer works; making a new one"
                    );
                }
                _ => return Err(unhandled(&answer)),
            }
        }
        let mut name = TOKEN_NAME.to_owned();
        for _ in 0..5 {
            let body = json!({ "name": name, "scopes": scopes });
            let answer = self
                .send(
                    Method::POST,
                    &["users", user, "tokens"],
                    &[],
                    basic,
                    Some(&body),
                )
                .await?;
            match answer.status {
                StatusCode::CREATED => {
                    return match answer.text("sha1").filter(|s| !s.is_empty()) {
                        Some(sha1) => {
                            tracing::info!(user, token_name = %name, "made an API token");
                            Ok((Secret::new(sha1), true))
                        }
                        None => Err(unexpected("a new token without its sha1")),
                    };
                }
                StatusCode::BAD_REQUEST => {
                    // A used name answers 400, and so does a bad scope:
                    // look which it was.
                    let names: BTreeSet<String> = self
                        .list(&["users", user, "tokens"], &[], basic)
                        .await?
                        .iter()
                        .filter_map(|t| t.get("name").and_then(Value::as_str))
                        .map(str::to_owned)
                        .collect();
                    if !names.contains(&name) {
                        return Err(unhandled(&answer));
                    }
                    name = (2..)
                        .map(|n| format!("{TOKEN_NAME}-{n}"))
                        .find(|n| !names.contains(n))
                        .unwrap_or_default();
                }
                _ => return Err(unhandled(&answer)),
            }
        }
        Err(conflict(format!(
            "no free token name for {user}; delete the unused \"{TOKEN_NAME}-…\" tokens in the forge"
        )))
    }

    /// The bot user with the yard's password and no password change
    /// pending; whether it was made now.
    async fn ensure_bot(&self, admin: Auth<'_>, password: &Secret) -> Tried<bool> {
        let bot = self.plan.bot_user.as_str();
        let email = self
            .plan
            .bot_email
            .clone()
            .unwrap_or_else(|| format!("{bot}@noreply.localhost"));
        let body = json!({
            "username": bot,
            "email": email,
            "password": password.expose(),
            "must_change_password": false,
            "send_notify": false,
        });
        let answer = self
            .send(Method::POST, &["admin", "users"], &[], admin, Some(&body))
            .await?;
        match answer.status {
            StatusCode::CREATED => return Ok(true),
            StatusCode::UNPROCESSABLE_ENTITY | StatusCode::CONFLICT => {}
            _ => return Err(unhandled(&answer)),
        }
        // 422 for a user that exists, and for a reserved name or an
        // e-mail address in use: look.
        let found = self
            .send(Method::GET, &["users", bot], &[], admin, None)
            .await?;
        match found.status {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND => {
                return Err(conflict(format!(
                    "the forge will not make the user {bot}: {}",
                    answer.message()
                )));
            }
            _ => return Err(unhandled(&found)),
        }
        let edit = json!({
            "source_id": 0,
            "password": password.expose(),
            "must_change_password": false,
        });
        let edited = self
            .send(
                Method::PATCH,
                &["admin", "users", bot],
                &[],
                admin,
                Some(&edit),
            )
            .await?;
        match edited.status {
            StatusCode::OK => Ok(false),
            _ => Err(unhandled(&edited)),
        }
    }

    /// The organisation; whether it was made now.
    async fn ensure_org(&self, admin: Auth<'_>) -> Tried<bool> {
        let org = self.plan.org.as_str();
        let body = json!({ "username": org });
        let answer = self
            .send(Method::POST, &["orgs"], &[], admin, Some(&body))
            .await?;
        match answer.status {
            StatusCode::CREATED => return Ok(true),
            StatusCode::UNPROCESSABLE_ENTITY | StatusCode::CONFLICT => {}
            _ => return Err(unhandled(&answer)),
        }
        let found = self
            .send(Method::GET, &["orgs", org], &[], admin, None)
            .await?;
        match found.status {
            StatusCode::OK => Ok(false),
            StatusCode::NOT_FOUND => Err(conflict(format!(
                "the forge will not make the organisation {org} (a user may have that name): {}",
                answer.message()
            ))),
            _ => Err(unhandled(&found)),
        }
    }

    /// The bot in the organisation's `Owners` team.
    async fn ensure_owner(&self, admin: Auth<'_>) -> Tried<()> {
        let org = self.plan.org.as_str();
        let teams = self.list(&["orgs", org, "teams"], &[], admin).await?;
        let owners = teams
            .iter()
            .find(|t| t.get("name").and_then(Value::as_str) == Some("Owners"))
            .or_else(|| {
                teams
                    .iter()
                    .find(|t| t.get("permission").and_then(Value::as_str) == Some("owner"))
            });
        let Some(id) = owners.and_then(|t| t.get("id")).and_then(Value::as_i64) else {
            return Err(conflict(format!(
                "the organisation {org} has no Owners team; make one with owner permission"
            )));
        };
        let id = id.to_string();
        let answer = self
            .send(
                Method::PUT,
                &["teams", &id, "members", &self.plan.bot_user],
                &[],
                admin,
                None,
            )
            .await?;
        match answer.status {
            StatusCode::NO_CONTENT | StatusCode::OK => Ok(()),
            _ => Err(unhandled(&answer)),
        }
    }

    /// The one system webhook to the yard; its id. `sent` says whether
    /// the forge holds `secret` for a hook to this URL (the plan had it,
    /// or this run already sent it).
    async fn ensure_hook(&self, admin: Auth<'_>, secret: &Secret, sent: &AtomicBool) -> Tried<i64> {
        let url = self.plan.webhook_url.trim();
        let hooks = self
            .list(&["admin", "hooks"], &[("type", "system".to_owned())], admin)
            .await?;
        let ours: Vec<(i64, bool)> = hooks
            .iter()
            .filter(|h| {
                h.get("config")
                    .and_then(|c| c.get("url"))
                    .and_then(Value::as_str)
                    .is_some_and(|u| same_url(u, url))
            })
            .filter_map(|h| {
                let id = h.get("id").and_then(Value::as_i64)?;
                Some((id, h.get("type").and_then(Value::as_str) == Some("gitea")))
            })
            .collect();
        let keep = if sent.load(Ordering::Relaxed) {
            ours.iter().find(|(_, gitea)| *gitea).map(|(id, _)| *id)
        } else {
            None
        };
        for (id, _) in ours.iter().filter(|(id, _)| Some(*id) != keep) {
            let id = id.to_string();
            let answer = self
                .send(Method::DELETE, &["admin", "hooks", &id], &[], admin, None)
                .await?;
            match answer.status {
                StatusCode::NO_CONTENT | StatusCode::OK | StatusCode::NOT_FOUND => {
                    tracing::info!(hook = %id, "deleted a system webhook to the yard whose secret the yard does not hold, or a second one");
                }
                _ => return Err(unhandled(&answer)),
            }
        }
        let events = WEBHOOK_EVENTS;
        if let Some(id) = keep {
            // Gitea keeps a hook's secret on PATCH; it is sent all the
            // same, for a forge that takes it.
            let body = json!({
                "config": { "url": url, "content_type": "json", "secret": secret.expose() },
                "events": events,
                "active": true,
            });
            let id_text = id.to_string();
            let answer = self
                .send(
                    Method::PATCH,
                    &["admin", "hooks", &id_text],
                    &[],
                    admin,
                    Some(&body),
                )
                .await?;
            return match answer.status {
                StatusCode::OK => Ok(id),
                _ => Err(unhandled(&answer)),
            };
        }
        let body = json!({
            "type": "gitea",
            "config": {
                "url": url,
                "content_type": "json",
                "secret": secret.expose(),
                "is_system_webhook": "true",
            },
            "events": events,
            "active": true,
        });
        sent.store(true, Ordering::Relaxed);
        let answer = self
            .send(Method::POST, &["admin", "hooks"], &[], admin, Some(&body))
            .await?;
        match answer.status {
            StatusCode::CREATED | StatusCode::OK => answer
                .body
                .get("id")
                .and_then(Value::as_i64)
                .ok_or_else(|| unexpected("a new hook without its id")),
            _ => Err(unhandled(&answer)),
        }
    }
}

/// Whether two webhook URLs are the same address.
fn same_url(a: &str, b: &str) -> bool {
    match (Url::parse(a.trim()), Url::parse(b.trim())) {
        (Ok(a), Ok(b)) => a == b,
        _ => a.trim() == b.trim(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_urls_compare_as_addresses() {
        assert!(same_url(
            "http://Yard:80/webhook/gitea",
            "http://yard/webhook/gitea"
        ));
        assert!(!same_url(
            "http://yard/webhook/gitea",
            "http://yard/webhook/other"
        ));
    }

    #[test]
    fn stored_secrets_leave_out_an_admin_token_that_was_given() {
        let credentials = ForgeCredentials {
            forge_url: "http://forge".into(),
            version: "1".into(),
            admin_user: "root".into(),
            admin_password: None,
            admin_token: Secret::new("given-token"),
            bot_user: "bot".into(),
            bot_password: Secret::new("bot-password"),
            bot_password_generated: true,
            bot_token: Secret::new("bot-token"),
            org: "yard".into(),
            webhook_url: "http://yard/webhook/gitea".into(),
            webhook_id: 1,
            webhook_secret: Secret::new("hook-secret"),
            webhook_secret_generated: true,
        };
        let stored = credentials.stored();
        assert!(stored.admin_token.is_none());
        assert_eq!(
            stored.bot_token.map(|t| t.expose().to_owned()).as_deref(),
            Some("bot-token")
        );
        let shown = format!("{credentials:?}");
        for secret in ["given-token", "bot-password", "bot-token", "hook-secret"] {
            assert!(!shown.contains(secret), "{shown}");
        }
    }
}
