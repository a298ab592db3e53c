//! Stack names and the rules they follow.
//!
//! A stack name ends up in a URL host label, a container name and a volume
//! name, so the rules are the intersection of what all three accept, kept
//! short enough to read in `docker ps`. Every refusal carries its reason, so
//! the page, the CLI and the API can all say *why* a name is refused.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

/// Fewest characters a name may have.
pub const MIN_LEN: usize = 3;
/// Most characters a name may have.
pub const MAX_LEN: usize = 20;
/// Names refused unless the operator says otherwise; they collide with
/// addresses people expect to belong to the yard itself.
pub const DEFAULT_RESERVED: [&str; 8] = [
    "admin", "api", "www", "root", "system", "test", "demo", "portal",
];

/// A validated, normalised stack name. Only [`NamePolicy::parse`] makes one
/// from user input; [`StackName::from_trusted`] is for names read back from
/// the store or from engine labels, which were validated when written.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct StackName(String);

impl StackName {
    /// Wraps a name that was validated before it was stored.
    pub fn from_trusted(name: impl Into<String>) -> Self {
        Self(name.into())
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StackName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a name was refused. The messages are shown to people as they are.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("name is empty")]
    Empty,
    #[error("name is too short: {len} characters, at least {MIN_LEN} are needed")]
    TooShort { len: usize },
    #[error("name is too long: {len} characters, at most {MAX_LEN} are allowed")]
    TooLong { len: usize },
    #[error(
        "name contains {ch:?} at position {position}; only lowercase letters a-z, digits 0-9 and '-' are allowed"
    )]
    InvalidChar { ch: char, position: usize },
    #[error("name must not start with '-'")]
    LeadingHyphen,
    #[error("name must not end with '-'")]
    TrailingHyphen,
    #[error("name {name:?} is reserved")]
    Reserved { name: String },
}

/// The rules for names, including the operator's reserved list.
#[derive(Debug, Clone)]
pub struct NamePolicy {
    reserved: BTreeSet<String>,
}

impl Default for NamePolicy {
    fn default() -> Self {
        Self::new(std::iter::empty::<&str>())
    }
}

impl NamePolicy {
    /// The default reserved names plus `extra_reserved` (normalised the same
    /// way as input, so `" Staging "` reserves `staging`).
    pub fn new<S: AsRef<str>>(extra_reserved: impl IntoIterator<Item = S>) -> Self {
        let mut reserved: BTreeSet<String> =
            DEFAULT_RESERVED.iter().map(|s| (*s).to_owned()).collect();
        reserved.extend(
            extra_reserved
                .into_iter()
                .map(|s| s.as_ref().trim().to_lowercase())
                .filter(|s| !s.is_empty()),
        );
        Self { reserved }
    }

    /// The reserved names, sorted.
    pub fn reserved(&self) -> impl Iterator<Item = &str> {
        self.reserved.iter().map(String::as_str)
    }

    /// Trims and lowercases `raw`, then checks every rule. The first rule
    /// broken is the one reported.
    pub fn parse(&self, raw: &str) -> Result<StackName, NameError> {
        let name = raw.trim().to_lowercase();
        if name.is_empty() {
            return Err(NameError::Empty);
        }
        if let Some((index, ch)) = name
            .chars()
            .enumerate()
            .find(|(_, c)| !matches!(c, 'a'..='z' | '0'..='9' | '-'))
        {
            return Err(NameError::InvalidChar {
                ch,
                position: index + 1,
            });
        }
        // Only ASCII is left, so bytes and characters agree from here on.
        let len = name.len();
        if len < MIN_LEN {
            return Err(NameError::TooShort { len });
        }
        if len > MAX_LEN {
            return Err(NameError::TooLong { len });
        }
        if name.starts_with('-') {
            return Err(NameError::LeadingHyphen);
        }
        if name.ends_with('-') {
            return Err(NameError::TrailingHyphen);
        }
        if self.reserved.contains(&name) {
            return Err(NameError::Reserved { name });
        }
        Ok(StackName(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str) -> Result<String, NameError> {
        NamePolicy::default()
            .parse(raw)
            .map(|n| n.as_str().to_owned())
    }

    #[test]
    fn accepts_and_normalises_good_names() {
        assert_eq!(parse("alice").as_deref(), Ok("alice"));
        assert_eq!(parse("  Alice-2 \n").as_deref(), Ok("alice-2"));
        assert_eq!(parse("abc").as_deref(), Ok("abc"));
        assert_eq!(
            parse(&"a".repeat(20)).as_deref(),
            Ok("a".repeat(20).as_str())
        );
        assert_eq!(parse("a-b-c").as_deref(), Ok("a-b-c"));
        assert_eq!(parse("123").as_deref(), Ok("123"));
    }

    #[test]
    fn refuses_bad_names_with_the_reason() {
        assert_eq!(parse(""), Err(NameError::Empty));
        assert_eq!(parse("   "), Err(NameError::Empty));
        assert_eq!(parse("ab"), Err(NameError::TooShort { len: 2 }));
        assert_eq!(parse(&"a".repeat(21)), Err(NameError::TooLong { len: 21 }));
        assert_eq!(parse("-abc"), Err(NameError::LeadingHyphen));
        assert_eq!(parse("abc-"), Err(NameError::TrailingHyphen));
        assert_eq!(
            parse("a_b"),
            Err(NameError::InvalidChar {
                ch: '_',
                position: 2
            })
        );
        assert_eq!(
            parse("ABC DEF"),
            Err(NameError::InvalidChar {
                ch: ' ',
                position: 4
            })
        );
        assert_eq!(
            parse("café"),
            Err(NameError::InvalidChar {
                ch: 'é',
                position: 4
            })
        );
        assert_eq!(
            parse("API"),
            Err(NameError::Reserved { name: "api".into() })
        );
    }

    #[test]
    fn every_refusal_explains_itself() {
        for bad in ["ab", "-abc", "abc-", "a_b", "ABC DEF", "api", "日本語"] {
            let message = parse(bad).expect_err(bad).to_string();
            assert!(message.len() > 10, "{bad}: {message}");
        }
    }

    #[test]
    fn extra_reserved_names_are_normalised() {
        let policy = NamePolicy::new([" Staging ", "", "prod"]);
        assert!(matches!(
            policy.parse("staging"),
            Err(NameError::Reserved { .. })
        ));
        assert!(matches!(
            policy.parse("prod"),
            Err(NameError::Reserved { .. })
        ));
        assert!(matches!(
            policy.parse("admin"),
            Err(NameError::Reserved { .. })
        ));
        assert!(policy.parse("alice").is_ok());
        assert!(policy.reserved().any(|n| n == "staging"));
    }
}
