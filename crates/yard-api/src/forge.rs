//! The forge on the wire: what the yard reads of a Gitea webhook
//! delivery's JSON body, what it answers, and what `POST
//! /api/forge/init` reports (never a secret's value).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What the yard reads of a delivery's body; the rest of the forge's
/// payload is left as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct GiteaPayload {
    /// What happened (`opened`, `assigned`, `created`, ...); push events
    /// have none.
    #[serde(default)]
    pub action: Option<String>,
    #[serde(default)]
    pub repository: Option<GiteaRepository>,
    /// The issue an `issues` or `issue_comment` event is about.
    #[serde(default)]
    pub issue: Option<GiteaIssue>,
    /// Who was assigned, in an `assigned` event.
    #[serde(default)]
    pub assignee: Option<GiteaUser>,
    /// The comment an `issue_comment` event is about.
    #[serde(default)]
    pub comment: Option<GiteaComment>,
    /// Whether an `issue_comment` event's issue is a pull request.
    #[serde(default)]
    pub is_pull: bool,
}

/// What the yard reads of a comment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct GiteaComment {
    #[serde(default)]
    pub id: i64,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub body: String,
    #[serde(default)]
    pub user: Option<GiteaUser>,
}

/// What the yard reads of an issue.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct GiteaIssue {
    #[serde(default)]
    pub number: i64,
    #[serde(default)]
    pub title: String,
    /// Gitea sends `""` for an issue with no description; `null` reads as
    /// empty too.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub body: String,
    #[serde(default, deserialize_with = "null_as_empty_list")]
    pub assignees: Vec<GiteaUser>,
}

/// A user, by login.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct GiteaUser {
    #[serde(default)]
    pub login: String,
}

fn null_as_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(d)?.unwrap_or_default())
}

fn null_as_empty_list<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<GiteaUser>, D::Error> {
    Ok(Option::<Vec<GiteaUser>>::deserialize(d)?.unwrap_or_default())
}

/// The repository an event is about.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct GiteaRepository {
    /// `owner/name`.
    #[serde(default)]
    pub full_name: Option<String>,
}

/// What became of a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WebhookStatus {
    /// Recorded, and an event the yard acts on.
    Accepted,
    /// Recorded; an event the yard does not act on.
    Ignored,
    /// A redelivery of one recorded before: not acted on again.
    Duplicate,
}

/// `POST /webhook/gitea`'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WebhookReceipt {
    pub status: WebhookStatus,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_action_and_repository_are_read_and_the_rest_left() {
        let payload: GiteaPayload = serde_json::from_str(
            r#"{"action":"assigned","number":7,"repository":{"id":1,"full_name":"team/app"}}"#,
        )
        .unwrap();
        assert_eq!(payload.action.as_deref(), Some("assigned"));
        assert_eq!(
            payload.repository.and_then(|r| r.full_name).as_deref(),
            Some("team/app")
        );
        let push: GiteaPayload = serde_json::from_str(r#"{"ref":"refs/heads/main"}"#).unwrap();
        assert_eq!(push, GiteaPayload::default());
        assert!(serde_json::from_str::<GiteaPayload>("[1]").is_err());
        let assigned: GiteaPayload = serde_json::from_str(
            r#"{"action":"assigned","issue":{"number":7,"title":"Fix it","body":null,"assignees":[{"login":"a"},{"login":"yard-bot"}]},"assignee":{"login":"yard-bot"}}"#,
        )
        .unwrap();
        let issue = assigned.issue.unwrap();
        assert_eq!(
            (issue.number, issue.title.as_str(), issue.body.as_str()),
            (7, "Fix it", "")
        );
        assert_eq!(issue.assignees.len(), 2);
        assert_eq!(assigned.assignee.unwrap().login, "yard-bot");
        assert_eq!(
            serde_json::to_string(&WebhookReceipt {
                status: WebhookStatus::Duplicate
            })
            .unwrap(),
            r#"{"status":"duplicate"}"#
        );
    }
}

/// `POST /api/forge/init`: what the forge's set-up did. Secrets appear
/// only by name: which were generated, which settings were written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ForgeInitReport {
    /// The forge's root address.
    pub forge_url: String,
    /// The forge's version.
    pub version: String,
    pub admin_user: String,
    /// The user agents work as on the forge.
    pub bot_user: String,
    /// The organisation, with the bot among its owners.
    pub org: String,
    /// Where the forge's system webhook sends events: the yard's
    /// `/webhook/gitea`.
    pub webhook_url: String,
    /// The system webhook's id in the forge.
    pub webhook_id: i64,
    /// The secrets this run generated (`admin password`, `bot password`,
    /// `webhook secret`); their values are only in the yard's settings.
    pub generated: Vec<String>,
    /// The settings this run wrote (e.g. `forge.bot_token`); empty when
    /// everything was already in place.
    pub stored: Vec<String>,
}
