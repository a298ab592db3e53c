//! The yard's own settings: a small, fixed vocabulary of keys (the forge's
//! address and credentials, the tokens of the services the yard talks to),
//! which of them are secrets, and what a value must look like.
//!
//! A key the yard does not know is refused, naming the known ones, so a
//! typo never stores a setting nothing reads. Secrets are sealed by the
//! services before the store sees them; this module only says which keys
//! are secret.

use std::fmt;
use std::str::FromStr;

use crate::Timestamp;

/// Longest value a setting takes, in bytes.
pub const MAX_CONFIG_VALUE: usize = 16 * 1024;

/// One of the yard's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConfigKey {
    /// Where the forge answers, e.g. `http://127.0.0.1:3001`.
    ForgeUrl,
    /// The forge's admin user.
    ForgeAdminUser,
    /// The forge's admin password.
    ForgeAdminPassword,
    /// The API token the set-up made for the forge's admin.
    ForgeAdminToken,
    /// The user the yard acts as on the forge.
    ForgeBotUser,
    /// The bot's password on the forge.
    ForgeBotPassword,
    /// The bot's API token on the forge.
    ForgeBotToken,
    /// The forge's organisation, with the bot among its owners.
    ForgeOrg,
    /// The secret the forge signs its webhook deliveries with.
    ForgeWebhookSecret,
    /// The Telegram bot's token.
    TelegramToken,
    /// The token agents use for Claude.
    ClaudeToken,
}

impl ConfigKey {
    /// Every key, in the order listings show them.
    pub const ALL: [Self; 11] = [
        Self::ForgeUrl,
        Self::ForgeAdminUser,
        Self::ForgeAdminPassword,
        Self::ForgeAdminToken,
        Self::ForgeBotUser,
        Self::ForgeBotPassword,
        Self::ForgeBotToken,
        Self::ForgeOrg,
        Self::ForgeWebhookSecret,
        Self::TelegramToken,
        Self::ClaudeToken,
    ];

    /// The key's name, as people type it and the store keeps it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ForgeUrl => "forge.url",
            Self::ForgeAdminUser => "forge.admin_user",
            Self::ForgeAdminPassword => "forge.admin_password",
            Self::ForgeAdminToken => "forge.admin_token",
            Self::ForgeBotUser => "forge.bot_user",
            Self::ForgeBotPassword => "forge.bot_password",
            Self::ForgeBotToken => "forge.bot_token",
            Self::ForgeOrg => "forge.org",
            Self::ForgeWebhookSecret => "forge.webhook_secret",
            Self::TelegramToken => "telegram.token",
            Self::ClaudeToken => "claude.token",
        }
    }

    /// Whether the value is a secret: stored encrypted, never logged, and
    /// listed only as set or unset.
    pub fn is_secret(self) -> bool {
        !matches!(
            self,
            Self::ForgeUrl | Self::ForgeAdminUser | Self::ForgeBotUser | Self::ForgeOrg
        )
    }

    /// Refuses a value this key cannot hold. The message never repeats the
    /// value: it may be a secret.
    pub fn check(self, value: &str) -> Result<(), ConfigValueError> {
        let problem = if value.is_empty() {
            Some("it is empty; to clear a setting, unset it")
        } else if value.len() > MAX_CONFIG_VALUE {
            Some("it is longer than 16 KiB")
        } else if value.contains('\0') {
            Some("it contains a NUL character")
        } else if self == Self::ForgeUrl
            && !(value.starts_with("http://") || value.starts_with("https://"))
        {
            Some("it is not an http:// or https:// URL")
        } else if self == Self::ForgeUrl && value.chars().any(char::is_whitespace) {
            Some("a URL has no spaces or line breaks")
        } else {
            None
        };
        match problem {
            Some(reason) => Err(ConfigValueError { key: self, reason }),
            None => Ok(()),
        }
    }
}

impl fmt::Display for ConfigKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ConfigKey {
    type Err = UnknownConfigKey;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|key| key.as_str() == s)
            .ok_or_else(|| UnknownConfigKey(s.to_owned()))
    }
}

/// A key that is not one of [`ConfigKey::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("there is no setting {0:?}; the settings are {known}", known = known_keys())]
pub struct UnknownConfigKey(pub String);

fn known_keys() -> String {
    ConfigKey::ALL.map(ConfigKey::as_str).join(", ")
}

/// A value a key cannot hold, and why (never the value itself).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key} cannot be set to that value: {reason}")]
pub struct ConfigValueError {
    pub key: ConfigKey,
    pub reason: &'static str,
}

/// A setting as the store keeps it: for a secret, `value` is the sealed
/// form the services made, never the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigRecord {
    pub key: ConfigKey,
    pub value: String,
    /// Whether `value` is sealed.
    pub secret: bool,
    pub updated_at: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_reads_back_from_its_name() {
        for key in ConfigKey::ALL {
            assert_eq!(key.as_str().parse::<ConfigKey>(), Ok(key));
        }
        assert!(ConfigKey::ForgeBotToken.is_secret());
        assert!(!ConfigKey::ForgeUrl.is_secret());
        for secret in [ConfigKey::ForgeAdminToken, ConfigKey::ForgeBotPassword] {
            assert!(secret.is_secret(), "{secret}");
        }
        assert!(!ConfigKey::ForgeOrg.is_secret());
    }

    #[test]
    fn an_unknown_key_is_refused_naming_the_known_ones() {
        let err = "forge.token".parse::<ConfigKey>().unwrap_err().to_string();
        assert!(err.contains("\"forge.token\""), "{err}");
        for key in ConfigKey::ALL {
            assert!(err.contains(key.as_str()), "{err}");
        }
    }

    #[test]
    fn values_are_checked_without_being_repeated() {
        let key = ConfigKey::ForgeBotToken;
        assert!(key.check("it's; \"quoted\"\nand ünïcode").is_ok());
        for bad in ["", "a\0b"] {
            let err = key.check(bad).unwrap_err().to_string();
            assert!(err.starts_with("forge.bot_token"), "{err}");
        }
        assert!(key.check(&"x".repeat(MAX_CONFIG_VALUE + 1)).is_err());
        assert!(ConfigKey::ForgeUrl.check("ftp://forge").is_err());
        assert!(ConfigKey::ForgeUrl.check("http://forge :3000").is_err());
        assert!(
            ConfigKey::ForgeUrl
                .check("https://forge.example.com")
                .is_ok()
        );
    }
}
