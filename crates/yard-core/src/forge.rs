//! The forge's webhook deliveries as the yard knows them: which events it
//! acts on, and what became of each delivery it recorded.

use std::fmt;

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
