//! The forge's first-boot set-up, as a library: what the all-in-one
//! container (and `yard forge init`) needs to turn a bare Gitea into the
//! yard's forge, and nothing that runs or stores anything itself.
//!
//! Two parts:
//!
//! - [`app_ini`]: the `app.ini` of a Gitea the container runs, rendered by
//!   a pure function ([`render_app_ini`]) and written atomically with mode
//!   0600 ([`write_app_ini`]); Gitea's own secrets are kept from the
//!   previous file ([`load_ini_secrets`]).
//! - [`ForgeSetup`]: the steps through Gitea's API (the bot user, a token
//!   for the admin and for the bot, the organisation with the bot among
//!   its owners, the system webhook to the yard), each of which finds what
//!   exists and updates it, so a run may be repeated and finishes one
//!   that stopped part-way. An external forge (`GITEA_URL` with
//!   `GITEA_ADMIN_TOKEN`) takes the same steps with [`AdminAuth::Token`].
//!
//! API boundary: the caller makes the forge's first admin (Gitea's CLI),
//! starts and supervises the forge, and keeps the secrets a run hands
//! back ([`ForgeCredentials::stored`], or [`SetupFailed::stored`] after a
//! failure) in its encrypted store, to pass them in again next time.
//! Architecture invariant: no secret is logged or put in an error message
//! (`Secret` has no `Display` and a redacting `Debug`; what the forge says
//! is cleaned of the run's secrets); `tests/setup.rs` checks the messages.
//!
//! ```no_run
//! use yard_forge::{AdminAuth, ForgeSetup, Plan, Secret, SetupOptions};
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let setup = ForgeSetup::new("http://127.0.0.1:3000", SetupOptions::default())?;
//! let admin = AdminAuth::Password {
//!     user: "forge-admin".into(),
//!     password: Secret::new("the admin's password"),
//! };
//! let plan = Plan::new(admin, "yard-bot", "yard", "http://127.0.0.1:8080/webhook/gitea");
//! let credentials = setup.run(&plan).await?;
//! // Store credentials.stored() (and the forge URL) for the next run.
//! # let _ = credentials;
//! # Ok(())
//! # }
//! ```

mod api;
pub mod app_ini;
mod client;
mod error;
mod secret;
mod setup;

pub use app_ini::{
    AppIni, Database, FileOwner, IniError, IniSecrets, Postgres, SslMode, allowed_webhook_host,
    load_ini_secrets, render_app_ini, write_app_ini,
};
pub use client::{ClientError, ForgeClient, Permission, PullInfo, RepoInfo};
pub use error::{SetupError, SetupFailed, Step, StepFailure};
pub use secret::{Secret, generate_hex_secret, generate_password};
pub use setup::{
    ADMIN_TOKEN_SCOPES, AdminAuth, BOT_TOKEN_SCOPES, ForgeCredentials, ForgeSetup, Plan,
    SetupOptions, StoredSecrets, TOKEN_NAME, WEBHOOK_EVENTS,
};
