//! The forge's set-up as a service: [`Forge::init`] turns a bare Gitea into
//! the yard's forge (the bot, its token, the organisation, the system
//! webhook to the yard) through `yard-forge`, with the secrets kept in
//! [`Settings`], so that a run again (on first boot after a crash, or on
//! demand with `yard forge init`) makes nothing twice.
//!
//! What is read and kept, by setting: `forge.url`, `forge.admin_user`,
//! `forge.admin_password` and `forge.admin_token` (a forge the yard runs),
//! `forge.bot_user`, `forge.bot_password`, `forge.bot_token`, `forge.org`
//! and `forge.webhook_secret`. A run stores what it settled on failure too
//! (`SetupFailed::stored`), and writes the marker `<data-dir>/forge-ready`
//! only once every step is done.
//!
//! The admin is signed in either with a site admin's token
//! (`GITEA_ADMIN_TOKEN`, an external forge) or with a password (the forge
//! `yard aio` runs): `ADMIN_PASSWORD`, the stored one, or one generated
//! and stored before it is used. A forge the yard runs has no admin until
//! one is made with Gitea's own CLI; the binary does that behind
//! [`FirstAdmin`], so this service spawns no processes.
//!
//! No secret value reaches a log line or an error: only which secrets were
//! generated and which settings were written.

use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use yard_core::ConfigKey;
use yard_forge::{
    AdminAuth, ForgeCredentials, ForgeSetup, Plan, Secret, SetupError, SetupFailed, SetupOptions,
    StoredSecrets, generate_password,
};

use crate::DataDir;
use crate::settings::{Settings, SettingsError};

/// The marker file written once the forge is set up.
const READY_MARKER: &str = "forge-ready";

/// Makes (or updates) the forge's first site admin with the forge's own
/// tools, for a forge the yard runs: Gitea's API cannot be used before an
/// admin exists. The password must never reach a log line.
pub trait FirstAdmin: Send + Sync + fmt::Debug {
    /// Makes `user` a site admin with `password` (no change of password
    /// required), or sets the password of the user that exists. The error
    /// says what failed, without the password.
    fn ensure<'a>(
        &'a self,
        user: &'a str,
        password: &'a Secret,
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>>;
}

/// How the set-up signs in to the forge as a site admin.
#[derive(Debug, Clone)]
pub enum ForgeAdmin {
    /// An external forge's site admin token (`GITEA_ADMIN_TOKEN`).
    Token(Secret),
    /// A forge the yard runs: the admin `user` with `password`
    /// (`ADMIN_PASSWORD`) or, without one, the stored or a generated
    /// password; `first_admin` makes the user before the API is used.
    Password {
        user: String,
        password: Option<Secret>,
        first_admin: Option<Arc<dyn FirstAdmin>>,
    },
}

/// The forge the yard sets up.
#[derive(Debug, Clone)]
pub struct ForgeConfig {
    /// Where the forge answers, e.g. `http://127.0.0.1:3001`.
    pub url: String,
    pub admin: ForgeAdmin,
    /// `BOT_USER`.
    pub bot_user: String,
    /// `ORG_NAME`.
    pub org: String,
    /// The yard's own webhook address: `<base>/webhook/gitea`.
    pub webhook_url: String,
    /// How long to wait for the forge and how hard to try.
    pub options: SetupOptions,
    /// The forge's log, named when it does not answer.
    pub log: Option<PathBuf>,
}

/// What a finished set-up did; no secret values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForgeReport {
    pub forge_url: String,
    /// The forge's version.
    pub version: String,
    pub admin_user: String,
    pub bot_user: String,
    pub org: String,
    pub webhook_url: String,
    pub webhook_id: i64,
    /// The secrets this run generated: `admin password`, `bot password`,
    /// `webhook secret`.
    pub generated: Vec<String>,
    /// The settings this run wrote.
    pub stored: Vec<ConfigKey>,
}

/// Why the forge could not be set up. No message carries a secret.
#[derive(Debug, thiserror::Error)]
pub enum ForgeError {
    #[error(
        "no forge is configured: set GITEA_URL and GITEA_ADMIN_TOKEN for an external forge, or run the yard with `yard aio`"
    )]
    NotConfigured,
    #[error("{error}{}", log.as_ref().map(|l| format!(" ({})", l.display())).unwrap_or_default())]
    NotReady {
        #[source]
        error: SetupError,
        log: Option<PathBuf>,
    },
    #[error("making the forge's first admin: {0}")]
    FirstAdmin(String),
    #[error(transparent)]
    Setup(SetupError),
    #[error(transparent)]
    Settings(#[from] SettingsError),
    #[error("cannot write the marker {}: {source}", path.display())]
    Marker {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The forge's set-up; cheap to clone.
#[derive(Debug, Clone)]
pub struct Forge {
    settings: Settings,
    marker: PathBuf,
    config: Option<Arc<ForgeConfig>>,
}

impl Forge {
    /// The set-up of the forge `config` names (`None`: there is none),
    /// keeping its secrets in `settings` and its marker in `data_dir`.
    pub fn new(settings: Settings, data_dir: &DataDir, config: Option<ForgeConfig>) -> Self {
        Self {
            settings,
            marker: data_dir.path().join(READY_MARKER),
            config: config.map(Arc::new),
        }
    }

    /// Whether a forge is configured.
    pub fn is_configured(&self) -> bool {
        self.config.is_some()
    }

    /// Whether a set-up has finished (the marker exists).
    pub fn is_ready(&self) -> bool {
        self.marker.exists()
    }

    /// Sets the forge up: waits for its API, makes its first admin where
    /// the yard runs it, runs every step, stores what was settled (also
    /// when a step failed) and writes the marker on success. Safe to run
    /// any number of times.
    pub async fn init(&self) -> Result<ForgeReport, ForgeError> {
        let config = self.config.as_deref().ok_or(ForgeError::NotConfigured)?;
        let setup =
            ForgeSetup::new(&config.url, config.options.clone()).map_err(ForgeError::Setup)?;
        let mut generated = Vec::new();
        let mut stored = Vec::new();
        let version = setup
            .wait_until_ready()
            .await
            .map_err(|error| ForgeError::NotReady {
                error,
                log: config.log.clone(),
            })?;
        let admin = match &config.admin {
            ForgeAdmin::Token(token) => AdminAuth::Token(token.clone()),
            ForgeAdmin::Password {
                user,
                password,
                first_admin,
            } => {
                let password = self
                    .admin_password(password.as_ref(), &mut generated, &mut stored)
                    .await?;
                self.put(ConfigKey::ForgeAdminUser, user, &mut stored)
                    .await?;
                if let Some(first_admin) = first_admin {
                    first_admin
                        .ensure(user, &password)
                        .await
                        .map_err(ForgeError::FirstAdmin)?;
                    tracing::info!(admin = %user, "the forge's first admin is in place");
                }
                AdminAuth::Password {
                    user: user.clone(),
                    password,
                }
            }
        };
        let mut plan = Plan::new(
            admin,
            config.bot_user.clone(),
            config.org.clone(),
            config.webhook_url.clone(),
        );
        plan.stored = self.stored_secrets().await?;
        tracing::info!(forge = %setup.forge_url(), %version, bot = %config.bot_user, org = %config.org, webhook = %config.webhook_url, "setting the forge up");
        match setup.run(&plan).await {
            Ok(credentials) => {
                self.keep(&credentials, &mut stored).await?;
                if credentials.bot_password_generated {
                    generated.push("bot password".to_owned());
                }
                if credentials.webhook_secret_generated {
                    generated.push("webhook secret".to_owned());
                }
                std::fs::write(&self.marker, format!("{}\n", credentials.forge_url)).map_err(
                    |source| ForgeError::Marker {
                        path: self.marker.clone(),
                        source,
                    },
                )?;
                tracing::info!(
                    forge = %credentials.forge_url,
                    bot = %credentials.bot_user,
                    org = %credentials.org,
                    webhook_id = credentials.webhook_id,
                    stored = stored.len(),
                    "the forge is set up"
                );
                Ok(ForgeReport {
                    forge_url: credentials.forge_url,
                    version: credentials.version,
                    admin_user: credentials.admin_user,
                    bot_user: credentials.bot_user,
                    org: credentials.org,
                    webhook_url: credentials.webhook_url,
                    webhook_id: credentials.webhook_id,
                    generated,
                    stored,
                })
            }
            Err(SetupFailed {
                error,
                stored: settled,
            }) => {
                // What was settled is kept, so the next run makes nothing twice.
                self.keep_secrets(&settled, &mut stored).await?;
                tracing::warn!(error = %error, stored = stored.len(), "the forge's set-up failed; run `yard forge init` to try again");
                Err(ForgeError::Setup(error))
            }
        }
    }

    /// The admin's password: the one given, the stored one, or a new one
    /// (stored before it is used).
    async fn admin_password(
        &self,
        given: Option<&Secret>,
        generated: &mut Vec<String>,
        stored: &mut Vec<ConfigKey>,
    ) -> Result<Secret, ForgeError> {
        let key = ConfigKey::ForgeAdminPassword;
        if let Some(password) = given.filter(|p| !p.is_empty()) {
            self.put(key, password.expose(), stored).await?;
            return Ok(password.clone());
        }
        if let Some(password) = self.settings.get(key).await?.filter(|p| !p.is_empty()) {
            return Ok(Secret::new(password));
        }
        let password = generate_password();
        self.put(key, password.expose(), stored).await?;
        generated.push("admin password".to_owned());
        tracing::info!(setting = %key, "generated the forge admin's password and stored it");
        Ok(password)
    }

    async fn stored_secrets(&self) -> Result<StoredSecrets, ForgeError> {
        let get = |key| async move {
            self.settings
                .get(key)
                .await
                .map(|value| value.map(Secret::new))
        };
        Ok(StoredSecrets {
            admin_token: get(ConfigKey::ForgeAdminToken).await?,
            bot_password: get(ConfigKey::ForgeBotPassword).await?,
            bot_token: get(ConfigKey::ForgeBotToken).await?,
            webhook_secret: get(ConfigKey::ForgeWebhookSecret).await?,
        })
    }

    async fn keep(
        &self,
        credentials: &ForgeCredentials,
        stored: &mut Vec<ConfigKey>,
    ) -> Result<(), ForgeError> {
        self.put(ConfigKey::ForgeUrl, &credentials.forge_url, stored)
            .await?;
        self.put(ConfigKey::ForgeAdminUser, &credentials.admin_user, stored)
            .await?;
        self.put(ConfigKey::ForgeBotUser, &credentials.bot_user, stored)
            .await?;
        self.put(ConfigKey::ForgeOrg, &credentials.org, stored)
            .await?;
        self.keep_secrets(&credentials.stored(), stored).await
    }

    async fn keep_secrets(
        &self,
        secrets: &StoredSecrets,
        stored: &mut Vec<ConfigKey>,
    ) -> Result<(), ForgeError> {
        for (key, secret) in [
            (ConfigKey::ForgeAdminToken, &secrets.admin_token),
            (ConfigKey::ForgeBotPassword, &secrets.bot_password),
            (ConfigKey::ForgeBotToken, &secrets.bot_token),
            (ConfigKey::ForgeWebhookSecret, &secrets.webhook_secret),
        ] {
            if let Some(secret) = secret.as_ref().filter(|s| !s.is_empty()) {
                self.put(key, secret.expose(), stored).await?;
            }
        }
        Ok(())
    }

    /// Sets `key` to `value` when it holds something else, noting it in
    /// `stored`.
    async fn put(
        &self,
        key: ConfigKey,
        value: &str,
        stored: &mut Vec<ConfigKey>,
    ) -> Result<(), ForgeError> {
        if self.settings.get(key).await?.as_deref() != Some(value) {
            self.settings.set(key, value).await?;
            if !stored.contains(&key) {
                stored.push(key);
            }
        }
        Ok(())
    }
}
