//! The forge's webhook: a delivery is believed only when its signature is
//! the HMAC-SHA256 of its body with the secret the yard shares with the
//! forge (`forge.webhook_secret`), compared in constant time. A signed
//! delivery is recorded by the forge's delivery id, once: a redelivery is
//! recognised and not acted on again.
//!
//! Receiving takes two steps, so that the body is read as the forge's JSON
//! (by the server, which knows the wire format) only once it is known to
//! come from the forge: [`ForgeWebhooks::verify`] checks the signature and
//! hands back a [`Verified`] body, which [`ForgeWebhooks::receive`] needs.
//!
//! The forge signs the body only, not its headers: a signed body sent again
//! under another delivery id is new to the yard. What acts on events must
//! therefore look at what the event is about, not only at the delivery.

use ring::hmac;
use yard_core::{ConfigKey, DeliveryOutcome, ForgeEventKind};
use yard_store::{Store, StoreError};

use crate::issue_rule::{CommentFacts, IssueFacts, IssueRule};
use crate::now;
use crate::settings::{Settings, SettingsError};

/// Longest delivery id or event name the yard records.
const MAX_HEADER_VALUE: usize = 128;

/// Why a delivery was refused.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error(
        "the forge's webhook secret is not set; set forge.webhook_secret (`yard config set forge.webhook_secret`) to the secret of the forge's webhook"
    )]
    NoSecret,
    #[error("the delivery is not signed: X-Gitea-Signature is missing")]
    MissingSignature,
    #[error("X-Gitea-Signature is not 64 hex digits (a hex HMAC-SHA256)")]
    MalformedSignature,
    #[error("X-Gitea-Signature does not match the body and the forge's webhook secret")]
    WrongSignature,
    #[error("the {what} is not 1 to {MAX_HEADER_VALUE} printable ASCII characters")]
    BadHeader { what: &'static str },
    #[error(transparent)]
    Settings(#[from] SettingsError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A body whose signature checked out. Only [`ForgeWebhooks::verify`] makes
/// one.
#[derive(Debug)]
pub struct Verified<'a> {
    body: &'a [u8],
}

impl<'a> Verified<'a> {
    /// The body, to read as the forge's JSON.
    pub fn body(&self) -> &'a [u8] {
        self.body
    }
}

/// A signed delivery, as the server read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The forge's id for it (`X-Gitea-Delivery`), the same on a redelivery.
    pub id: String,
    /// The forge's event name (`X-Gitea-Event`).
    pub event: String,
    /// What happened (`opened`, `assigned`, ...), when the event says.
    pub action: Option<String>,
    /// The repository's full name (`owner/repo`), when the event names one.
    pub repository: Option<String>,
    /// The issue, when the event is about one.
    pub issue: Option<IssueFacts>,
    /// The comment, in an `issue_comment` event.
    pub comment: Option<CommentFacts>,
    /// Whether the issue is a pull request.
    pub is_pull: bool,
}

/// An event the yard acts on, from a delivery seen for the first time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForgeEvent {
    pub delivery: String,
    pub kind: ForgeEventKind,
    pub action: Option<String>,
    pub repository: Option<String>,
    pub issue: Option<IssueFacts>,
    pub comment: Option<CommentFacts>,
    pub is_pull: bool,
}

/// What became of a signed delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Receipt {
    /// Recorded, and an event the yard acts on.
    Accepted,
    /// Recorded; an event the yard does not act on.
    Ignored,
    /// Recorded before: a redelivery, not acted on again.
    Duplicate,
}

/// The forge's webhook; cheap to clone.
#[derive(Debug, Clone)]
pub struct ForgeWebhooks {
    store: Store,
    settings: Settings,
    /// An issue assigned to the bot puts an agent on it.
    issue_rule: Option<IssueRule>,
}

impl ForgeWebhooks {
    /// Deliveries recorded in `store`, checked against the secret in
    /// `settings`.
    pub fn new(store: Store, settings: Settings) -> Self {
        Self {
            store,
            settings,
            issue_rule: None,
        }
    }

    /// Acts on issues assigned to the bot with `rule`.
    pub fn with_issue_rule(mut self, rule: IssueRule) -> Self {
        self.issue_rule = Some(rule);
        self
    }

    /// Checks that `signature` (hex) is the HMAC-SHA256 of `body` with the
    /// forge's webhook secret.
    pub async fn verify<'a>(
        &self,
        signature: Option<&str>,
        body: &'a [u8],
    ) -> Result<Verified<'a>, WebhookError> {
        let Some(secret) = self.settings.get(ConfigKey::ForgeWebhookSecret).await? else {
            tracing::warn!("a webhook delivery came, but forge.webhook_secret is not set");
            return Err(WebhookError::NoSecret);
        };
        let signature = signature.ok_or(WebhookError::MissingSignature)?;
        let tag = hex::decode(signature.trim())
            .ok()
            .filter(|tag| tag.len() == 32)
            .ok_or(WebhookError::MalformedSignature)?;
        let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
        hmac::verify(&key, body, &tag).map_err(|_| WebhookError::WrongSignature)?;
        Ok(Verified { body })
    }

    /// Records a verified delivery once; acts on it if it is new and an
    /// event the yard acts on.
    pub async fn receive(
        &self,
        _verified: Verified<'_>,
        delivery: Delivery,
    ) -> Result<Receipt, WebhookError> {
        check_header(&delivery.id, "delivery id (X-Gitea-Delivery)")?;
        check_header(&delivery.event, "event name (X-Gitea-Event)")?;
        let kind = ForgeEventKind::from_name(&delivery.event);
        let outcome = match kind {
            Some(_) => DeliveryOutcome::Accepted,
            None => DeliveryOutcome::Ignored,
        };
        let new = self
            .store
            .record_delivery(&delivery.id, &delivery.event, outcome, now())
            .await?;
        if !new {
            tracing::info!(delivery = %delivery.id, event = %delivery.event, "a redelivery; not acted on again");
            return Ok(Receipt::Duplicate);
        }
        let Some(kind) = kind else {
            tracing::debug!(delivery = %delivery.id, event = %delivery.event, "an event the yard does not act on");
            return Ok(Receipt::Ignored);
        };
        self.act(ForgeEvent {
            delivery: delivery.id,
            kind,
            action: delivery.action,
            repository: delivery.repository,
            issue: delivery.issue,
            comment: delivery.comment,
            is_pull: delivery.is_pull,
        });
        Ok(Receipt::Accepted)
    }

    /// The one place a new event is acted on: where the rules go. Every
    /// event is logged; an issue assigned (to the bot, the rule checks) and
    /// a new comment on an issue (addressed to the bot, the rule checks) go
    /// to the issue rule, which works in the background.
    fn act(&self, event: ForgeEvent) {
        tracing::info!(
            delivery = %event.delivery,
            event = %event.kind,
            action = event.action.as_deref().unwrap_or(""),
            repository = event.repository.as_deref().unwrap_or(""),
            "forge event received"
        );
        let (Some(rule), Some(repository), Some(issue)) =
            (&self.issue_rule, event.repository.as_deref(), event.issue)
        else {
            return;
        };
        match (event.kind, event.action.as_deref(), event.comment) {
            (ForgeEventKind::Issues, Some("assigned"), _) => rule.assigned(repository, issue),
            (ForgeEventKind::IssueComment, Some("created"), Some(comment)) if !event.is_pull => {
                rule.commented(repository, issue.number, comment);
            }
            _ => {}
        }
    }
}

fn check_header(value: &str, what: &'static str) -> Result<(), WebhookError> {
    let fits = (1..=MAX_HEADER_VALUE).contains(&value.len())
        && value.bytes().all(|b| b.is_ascii_graphic());
    if fits {
        Ok(())
    } else {
        Err(WebhookError::BadHeader { what })
    }
}
