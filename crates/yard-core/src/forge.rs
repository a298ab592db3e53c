//! The forge as the yard knows it: which webhook events it acts on, what
//! became of each delivery it recorded, the issues it has put agents on,
//! and the guidance people gave on those issues.

use std::fmt;

use crate::{AgentId, Timestamp};

/// An event the yard acts on, by the forge's name for it (the
/// `X-Gitea-Event` header).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ForgeEventKind {
    Issues,
    IssueComment,
    PullRequest,
    Push,
}

impl ForgeEventKind {
    pub const ALL: [Self; 4] = [
        Self::Issues,
        Self::IssueComment,
        Self::PullRequest,
        Self::Push,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Issues => "issues",
            Self::IssueComment => "issue_comment",
            Self::PullRequest => "pull_request",
            Self::Push => "push",
        }
    }

    /// The kind the forge's event name stands for; `None` for an event
    /// the yard does not act on.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == name)
    }
}

impl fmt::Display for ForgeEventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the yard did with a delivery it recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// An event the yard acts on.
    Accepted,
    /// An event the yard does not act on.
    Ignored,
}

impl DeliveryOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Ignored => "ignored",
        }
    }
}

/// An issue the yard works on, from the moment it takes it (before an
/// agent exists) until it has reported the agent's end on the issue. It is
/// kept in the store so that a restart finishes what it started: the
/// agent's branch still becomes a pull request, or the issue is told why
/// not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssueWork {
    /// `owner/repo#number`, lower case: one piece of work per issue.
    pub issue: String,
    /// `owner/repo` as the forge spells it.
    pub repository: String,
    pub number: i64,
    pub title: String,
    pub body: String,
    /// The yard instance that took it; only that one finishes it.
    pub instance: String,
    /// The agent on it, once spawned.
    pub agent: Option<AgentId>,
    pub started_at: Timestamp,
    /// When the issue was told how the work ended; `None` while at work.
    pub finished_at: Option<Timestamp>,
}

impl IssueWork {
    /// The key of issue `number` of `repository`.
    pub fn key(repository: &str, number: i64) -> String {
        format!("{repository}#{number}").to_lowercase()
    }
}

/// A comment addressed to the bot on an issue: guidance for the agent on
/// it, given to the agent's next question, or to the next agent's task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssueGuidance {
    /// The issue's key ([`IssueWork::key`]).
    pub issue: String,
    /// The forge's id of the comment: a comment is guidance once.
    pub comment_id: i64,
    /// The forge login of who wrote it.
    pub author: String,
    /// What it says, without the mention of the bot.
    pub text: String,
    pub received_at: Timestamp,
    /// Where it went: `question:<id>` or `task:<agent id>`; `None` while it
    /// waits.
    pub delivered_to: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_events_acted_on_are_known_by_the_forges_names() {
        for kind in ForgeEventKind::ALL {
            assert_eq!(ForgeEventKind::from_name(kind.as_str()), Some(kind));
        }
        assert_eq!(
            ForgeEventKind::from_name("issue_comment"),
            Some(ForgeEventKind::IssueComment)
        );
        assert_eq!(ForgeEventKind::from_name("release"), None);
        assert_eq!(ForgeEventKind::from_name("Issues"), None);
    }
}
