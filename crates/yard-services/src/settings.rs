//! The yard's settings (the forge's address and credentials, the tokens of
//! the services it talks to), kept in the store: the one service everyone
//! else asks for them.
//!
//! Secret values are sealed before the store sees them: ChaCha20-Poly1305
//! with a random nonce per value and the key's name as associated data, so
//! a sealed value copied under another key does not open. The stored form
//! is `v1:<nonce hex>:<ciphertext hex>`. The sealing key is 32 random bytes
//! in `<data-dir>/config-key` (0600, made once), or `YARD_CONFIG_KEY` (hex)
//! for several yards sharing one PostgreSQL. Values are never logged, and
//! listings show a secret only as set or unset.

use std::fmt;

use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use yard_core::{ConfigKey, ConfigRecord, ConfigValueError, Timestamp};
use yard_store::{Store, StoreError};

use crate::{DataDir, now};

/// The version tag of the sealed form this yard writes.
const SEALED_V1: &str = "v1";
/// Bytes in a sealing key.
const KEY_LEN: usize = 32;

/// The key secret settings are sealed with. Its `Debug` shows nothing of it.
#[derive(Clone)]
pub struct EncryptionKey(LessSafeKey);

impl fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EncryptionKey(..)")
    }
}

/// Where the data directory's key came from, for the start-up log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// The data directory's file, which was there.
    File(std::path::PathBuf),
    /// The data directory's file, made just now.
    Made(std::path::PathBuf),
}

impl EncryptionKey {
    /// A key from 64 hex digits (`YARD_CONFIG_KEY`, or the key file). The
    /// error never repeats the text.
    pub fn from_hex(text: &str) -> Result<Self, KeyError> {
        let bytes = hex::decode(text.trim()).map_err(|_| KeyError::NotAKey)?;
        if bytes.len() != KEY_LEN {
            return Err(KeyError::NotAKey);
        }
        UnboundKey::new(&CHACHA20_POLY1305, &bytes)
            .map(|key| Self(LessSafeKey::new(key)))
            .map_err(|_| KeyError::NotAKey)
    }

    /// The data directory's key, made the first time (see
    /// [`DataDir::config_key`]).
    pub fn from_data_dir(dir: &DataDir) -> Result<(Self, KeySource), KeyError> {
        let path = dir.config_key_path();
        let existed = path.exists();
        let text = dir
            .config_key(|| hex::encode(rand::random::<[u8; KEY_LEN]>()))
            .map_err(|source| KeyError::File {
                path: path.clone(),
                source,
            })?;
        let key = Self::from_hex(&text).map_err(|_| KeyError::DamagedFile(path.clone()))?;
        Ok((
            key,
            if existed {
                KeySource::File(path)
            } else {
                KeySource::Made(path)
            },
        ))
    }

    /// `value` sealed for `key`: `v1:<nonce hex>:<ciphertext hex>`.
    fn seal(&self, key: ConfigKey, value: &str) -> Result<String, SettingsError> {
        let nonce = rand::random::<[u8; NONCE_LEN]>();
        let mut sealed = value.as_bytes().to_vec();
        self.0
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(key.as_str().as_bytes()),
                &mut sealed,
            )
            .map_err(|_| SettingsError::CannotSeal(key))?;
        Ok(format!(
            "{SEALED_V1}:{}:{}",
            hex::encode(nonce),
            hex::encode(sealed)
        ))
    }

    /// The value sealed for `key` in `stored`.
    fn open(&self, key: ConfigKey, stored: &str) -> Result<String, SettingsError> {
        let unreadable = || SettingsError::Unreadable(key);
        let mut parts = stored.split(':');
        let (Some(SEALED_V1), Some(nonce), Some(sealed), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(unreadable());
        };
        let nonce: [u8; NONCE_LEN] = hex::decode(nonce)
            .ok()
            .and_then(|n| n.try_into().ok())
            .ok_or_else(unreadable)?;
        let mut sealed = hex::decode(sealed).map_err(|_| unreadable())?;
        let plain = self
            .0
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(key.as_str().as_bytes()),
                &mut sealed,
            )
            .map_err(|_| SettingsError::WrongKey(key))?;
        String::from_utf8(plain.to_vec()).map_err(|_| unreadable())
    }
}

/// Why the sealing key could not be had.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(
        "YARD_CONFIG_KEY is not a config key: give 64 hex digits (32 random bytes, e.g. from `openssl rand -hex 32`, or the text of another yard's <data-dir>/config-key)"
    )]
    NotAKey,
    #[error(
        "{} does not hold a config key (64 hex digits); restore it from a backup, or set YARD_CONFIG_KEY to the key the store's secrets were sealed with",
        .0.display()
    )]
    DamagedFile(std::path::PathBuf),
    #[error("cannot read or make the config key file {}: {source}", path.display())]
    File {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Why a setting could not be set or read. No message carries a value or
/// a sealed value.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error(transparent)]
    Invalid(#[from] ConfigValueError),
    #[error(
        "the stored value of {0} does not open with this yard's config key: it was sealed with another one. Give this yard the key the others use (YARD_CONFIG_KEY), or set {0} again"
    )]
    WrongKey(ConfigKey),
    #[error("the stored value of {0} is not in a form this version reads; set {0} again")]
    Unreadable(ConfigKey),
    #[error("cannot seal the value of {0}")]
    CannotSeal(ConfigKey),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A setting as listings show it: a secret's value never.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigState {
    pub key: ConfigKey,
    pub secret: bool,
    /// When it was last set; `None` when it is not set.
    pub updated_at: Option<Timestamp>,
    /// The value, for a setting that is set and not secret.
    pub value: Option<String>,
}

impl ConfigState {
    pub fn is_set(&self) -> bool {
        self.updated_at.is_some()
    }

    fn of(key: ConfigKey, record: Option<ConfigRecord>) -> Self {
        Self {
            key,
            secret: key.is_secret(),
            updated_at: record.as_ref().map(|r| r.updated_at),
            value: record.filter(|r| !r.secret).map(|r| r.value),
        }
    }
}

/// The yard's settings; cheap to clone.
#[derive(Debug, Clone)]
pub struct Settings {
    store: Store,
    key: EncryptionKey,
}

impl Settings {
    /// Settings kept in `store`, secrets sealed with `key`.
    pub fn new(store: Store, key: EncryptionKey) -> Self {
        Self { store, key }
    }

    /// Sets `key` to `value` (sealed first if the key is secret).
    pub async fn set(&self, key: ConfigKey, value: &str) -> Result<ConfigState, SettingsError> {
        key.check(value)?;
        let secret = key.is_secret();
        let record = ConfigRecord {
            key,
            value: if secret {
                self.key.seal(key, value)?
            } else {
                value.to_owned()
            },
            secret,
            updated_at: now(),
        };
        self.store.put_config(&record).await?;
        tracing::debug!(%key, secret, "setting set");
        Ok(ConfigState::of(key, Some(record)))
    }

    /// The value of `key`, opened if it is sealed; `None` when it is not
    /// set.
    pub async fn get(&self, key: ConfigKey) -> Result<Option<String>, SettingsError> {
        match self.store.config(key).await? {
            Some(record) if record.secret => self.key.open(key, &record.value).map(Some),
            Some(record) => Ok(Some(record.value)),
            None => Ok(None),
        }
    }

    /// Clears `key`; what it is now (unset) either way.
    pub async fn unset(&self, key: ConfigKey) -> Result<ConfigState, SettingsError> {
        if self.store.delete_config(key).await? {
            tracing::debug!(%key, "setting unset");
        }
        Ok(ConfigState::of(key, None))
    }

    /// Every setting the yard knows, set or not, in [`ConfigKey::ALL`]'s
    /// order. Opens nothing: a secret is only said to be set.
    pub async fn list(&self) -> Result<Vec<ConfigState>, SettingsError> {
        let mut records = self.store.config_records().await?;
        Ok(ConfigKey::ALL
            .into_iter()
            .map(|key| {
                let record = records
                    .iter()
                    .position(|r| r.key == key)
                    .map(|i| records.swap_remove(i));
                ConfigState::of(key, record)
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> EncryptionKey {
        EncryptionKey::from_hex(&hex::encode([byte; KEY_LEN])).unwrap()
    }

    #[test]
    fn a_sealed_value_opens_only_with_its_key_under_its_name() {
        let sealed = key(1).seal(ConfigKey::ForgeBotToken, "s3cret").unwrap();
        assert!(sealed.starts_with("v1:"), "{sealed}");
        assert!(!sealed.contains("s3cret"));
        assert_eq!(
            key(1).open(ConfigKey::ForgeBotToken, &sealed).unwrap(),
            "s3cret"
        );
        assert_ne!(
            sealed,
            key(1).seal(ConfigKey::ForgeBotToken, "s3cret").unwrap(),
            "a new nonce each time"
        );
        assert!(matches!(
            key(2).open(ConfigKey::ForgeBotToken, &sealed),
            Err(SettingsError::WrongKey(ConfigKey::ForgeBotToken))
        ));
        assert!(matches!(
            key(1).open(ConfigKey::ClaudeToken, &sealed),
            Err(SettingsError::WrongKey(ConfigKey::ClaudeToken))
        ));
        for damaged in ["", "s3cret", "v2:00:00", "v1:zz:00", "v1:00:00:00"] {
            assert!(matches!(
                key(1).open(ConfigKey::ForgeBotToken, damaged),
                Err(SettingsError::Unreadable(_))
            ));
        }
    }

    #[test]
    fn a_key_is_64_hex_digits_and_never_shows() {
        for bad in ["", "abc", &"0".repeat(62), &"g".repeat(64)] {
            let err = EncryptionKey::from_hex(bad).unwrap_err().to_string();
            assert!(err.contains("64 hex digits"), "{err}");
        }
        let text = "ab".repeat(32);
        let shown = format!("{:?}", EncryptionKey::from_hex(&text).unwrap());
        assert!(!shown.contains("ab"), "{shown}");
    }
}
