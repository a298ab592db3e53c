//! Questions an agent asks a person: what is asked, what counts as an
//! answer, and how a question ends. Checked here, before anything is
//! stored, so a bad question or a bad answer changes nothing.

use std::fmt;
use std::time::Duration;

use crate::{AgentId, Timestamp};

/// The longest message a question may carry.
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024;
/// The most options a `select` may offer.
pub const MAX_OPTIONS: usize = 50;
/// The longest option.
pub const MAX_OPTION_CHARS: usize = 200;
/// The longest a question may wait for a person.
pub const MAX_WAIT: Duration = Duration::from_secs(24 * 60 * 60);

/// What kind of answer a question wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuestionKind {
    /// Yes or no.
    Confirm,
    /// One of the offered options.
    Select { options: Vec<String> },
    /// Free text.
    Text,
    /// Allow or deny a tool call the policy says to ask about.
    Permission,
}

impl QuestionKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Confirm => "confirm",
            Self::Select { .. } => "select",
            Self::Text => "text",
            Self::Permission => "permission",
        }
    }

    /// The kind named `name`, with `options` for a select.
    pub fn from_parts(name: &str, options: Vec<String>) -> Option<Self> {
        Some(match name {
            "confirm" => Self::Confirm,
            "select" => Self::Select { options },
            "text" => Self::Text,
            "permission" => Self::Permission,
            _ => return None,
        })
    }

    /// The options offered: a select's, or the two a confirm or a
    /// permission takes; none for text.
    pub fn options(&self) -> Vec<String> {
        match self {
            Self::Confirm => vec!["yes".into(), "no".into()],
            Self::Permission => vec!["allow".into(), "deny".into()],
            Self::Select { options } => options.clone(),
            Self::Text => Vec::new(),
        }
    }
}

/// How a question ended, or that it has not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuestionOutcome {
    Pending,
    /// A person answered; `reason` is what they want the agent told.
    Answered {
        answer: String,
        by: String,
        reason: Option<String>,
    },
    /// Nobody answered by the deadline.
    TimedOut,
    /// The agent ended (or was stopped) before anyone answered.
    Cancelled,
}

impl QuestionOutcome {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Answered { .. } => "answered",
            Self::TimedOut => "timed_out",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn is_pending(&self) -> bool {
        matches!(self, Self::Pending)
    }
}

/// A question as the yard keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    pub id: String,
    pub agent_id: AgentId,
    /// The owner id of the asking agent: who (besides admins) may answer.
    pub owner_id: Option<String>,
    pub kind: QuestionKind,
    pub message: String,
    /// What the question is about (a tool call: its name and command or
    /// path), shown beside the message.
    pub context: Option<String>,
    pub deadline: Timestamp,
    pub created_at: Timestamp,
    pub outcome: QuestionOutcome,
    /// What the asker needs to turn the outcome into its reply (for a
    /// hook: the event and the tool call, as JSON), kept with the question
    /// so the reply can be made after a restart. Opaque here.
    pub origin: Option<String>,
    /// What the asking agent was put to do (the start of its task), shown
    /// beside the question.
    pub agent_task: Option<String>,
}

/// Why a question or an answer was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuestionError {
    #[error("a question needs a message")]
    EmptyMessage,
    #[error("the message is {0} bytes; at most {MAX_MESSAGE_BYTES} are allowed")]
    MessageTooLong(usize),
    #[error("a select needs between 2 and {MAX_OPTIONS} options, not {0}")]
    OptionCount(usize),
    #[error(
        "option {0:?} is not allowed: options are 1 to {MAX_OPTION_CHARS} characters, on one line, each different"
    )]
    BadOption(String),
    #[error("the time to wait must be between 1 second and 24 hours, not {0} seconds")]
    BadTimeout(i64),
    #[error("{answer:?} does not answer this {kind} question; the answer is one of: {allowed}")]
    NotAnOption {
        answer: String,
        kind: &'static str,
        allowed: String,
    },
    #[error("a text question needs a text answer of at most {MAX_MESSAGE_BYTES} bytes")]
    BadText,
}

impl fmt::Display for QuestionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Checks what an agent asks: a message of sensible size, a select's
/// options, and how long to wait (`timeout_seconds`).
pub fn check_question(
    kind: &QuestionKind,
    message: &str,
    timeout_seconds: i64,
) -> Result<Duration, QuestionError> {
    if message.trim().is_empty() {
        return Err(QuestionError::EmptyMessage);
    }
    if message.len() > MAX_MESSAGE_BYTES {
        return Err(QuestionError::MessageTooLong(message.len()));
    }
    if let QuestionKind::Select { options } = kind {
        if !(2..=MAX_OPTIONS).contains(&options.len()) {
            return Err(QuestionError::OptionCount(options.len()));
        }
        for (i, option) in options.iter().enumerate() {
            let chars = option.chars().count();
            let bad = chars == 0
                || chars > MAX_OPTION_CHARS
                || option.trim() != option
                || option.chars().any(char::is_control)
                || options[..i].contains(option);
            if bad {
                return Err(QuestionError::BadOption(option.chars().take(60).collect()));
            }
        }
    }
    match u64::try_from(timeout_seconds) {
        Ok(seconds) if seconds >= 1 && Duration::from_secs(seconds) <= MAX_WAIT => {
            Ok(Duration::from_secs(seconds))
        }
        _ => Err(QuestionError::BadTimeout(timeout_seconds)),
    }
}

impl Question {
    /// `answer` as this question takes it (trimmed; a confirm or a
    /// permission in any case), or why it does not answer it.
    pub fn check_answer(&self, answer: &str) -> Result<String, QuestionError> {
        let answer = answer.trim();
        if self.kind == QuestionKind::Text {
            return if answer.is_empty() || answer.len() > MAX_MESSAGE_BYTES {
                Err(QuestionError::BadText)
            } else {
                Ok(answer.to_owned())
            };
        }
        let options = self.kind.options();
        let exact = matches!(self.kind, QuestionKind::Select { .. });
        options
            .iter()
            .find(|o| {
                if exact {
                    o.as_str() == answer
                } else {
                    o.eq_ignore_ascii_case(answer)
                }
            })
            .cloned()
            .ok_or_else(|| QuestionError::NotAnOption {
                answer: answer.chars().take(60).collect(),
                kind: self.kind.as_str(),
                allowed: options.join(", "),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn question(kind: QuestionKind) -> Question {
        Question {
            agent_task: None,
            id: "q".into(),
            agent_id: AgentId::generate(),
            owner_id: None,
            kind,
            message: "may I?".into(),
            context: None,
            deadline: Timestamp(10),
            created_at: Timestamp(0),
            outcome: QuestionOutcome::Pending,
            origin: None,
        }
    }

    #[test]
    fn bad_questions_are_refused_with_the_reason() {
        let select = |n: usize| QuestionKind::Select {
            options: (0..n).map(|i| format!("option {i}")).collect(),
        };
        assert!(check_question(&select(2), "pick", 60).is_ok());
        assert_eq!(
            check_question(&select(0), "pick", 60),
            Err(QuestionError::OptionCount(0))
        );
        assert_eq!(
            check_question(&select(200), "pick", 60),
            Err(QuestionError::OptionCount(200))
        );
        let twice = QuestionKind::Select {
            options: vec!["a".into(), "a".into()],
        };
        assert!(matches!(
            check_question(&twice, "pick", 60),
            Err(QuestionError::BadOption(_))
        ));
        let big = "x".repeat(1 << 20);
        assert_eq!(
            check_question(&QuestionKind::Text, &big, 60),
            Err(QuestionError::MessageTooLong(1 << 20))
        );
        assert_eq!(
            check_question(&QuestionKind::Confirm, "  ", 60),
            Err(QuestionError::EmptyMessage)
        );
        for bad in [0, -5, 86_401] {
            assert_eq!(
                check_question(&QuestionKind::Confirm, "ok?", bad),
                Err(QuestionError::BadTimeout(bad))
            );
        }
    }

    #[test]
    fn answers_must_fit_the_question() {
        let confirm = question(QuestionKind::Confirm);
        assert_eq!(confirm.check_answer(" YES "), Ok("yes".into()));
        assert!(confirm.check_answer("maybe").is_err());
        let permission = question(QuestionKind::Permission);
        assert_eq!(permission.check_answer("deny"), Ok("deny".into()));
        let select = question(QuestionKind::Select {
            options: vec!["Red".into(), "Blue".into()],
        });
        assert_eq!(select.check_answer("Blue"), Ok("Blue".into()));
        let refused = select.check_answer("green").unwrap_err().to_string();
        assert!(refused.contains("Red, Blue"), "{refused}");
        let text = question(QuestionKind::Text);
        assert_eq!(
            text.check_answer(" use the cache "),
            Ok("use the cache".into())
        );
        assert_eq!(text.check_answer(""), Err(QuestionError::BadText));
    }
}
