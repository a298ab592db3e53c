//! API tokens: made here, shown once, stored only as SHA-256 hashes.
//!
//! Tokens are 256 random bits, so a fast hash is enough: there is nothing to
//! guess, and a lookup by hash costs one indexed query.

use sha2::{Digest, Sha256};
use yard_store::{Store, StoreError, TokenRecord, TokenRole};

use crate::{DataDir, now};

/// Every token starts with this, so a leaked one is easy to recognise.
pub const TOKEN_PREFIX: &str = "yard_";

/// The name of the token made on first start.
const ADMIN_TOKEN_NAME: &str = "admin";

/// A new random token.
pub fn generate_token() -> String {
    format!("{TOKEN_PREFIX}{}", hex::encode(rand::random::<[u8; 32]>()))
}

/// The form a token is stored and looked up in.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// What [`ensure_admin_token`] found or did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminToken {
    /// The token file holds a valid admin token.
    Existing(std::path::PathBuf),
    /// A new admin token was made and written to this file.
    Created(std::path::PathBuf),
}

/// Why the admin token could not be ensured.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot write the admin token file: {0}")]
    File(#[from] std::io::Error),
}

/// Makes sure the data directory's `admin-token` file holds a token the
/// store accepts. When it does not (first start, a deleted file, a store
/// that was replaced), any older admin token is revoked and a new one is
/// made and written with mode 0600.
pub async fn ensure_admin_token(store: &Store, dir: &DataDir) -> Result<AdminToken, AuthError> {
    if let Some(token) = dir.read_admin_token()?
        && let Some(record) = store.active_token(&hash_token(&token)).await?
        && record.role == TokenRole::Admin
    {
        return Ok(AdminToken::Existing(dir.admin_token_path()));
    }
    let now = now();
    store.revoke_tokens_named(ADMIN_TOKEN_NAME, now).await?;
    let token = generate_token();
    let record = TokenRecord {
        id: uuid::Uuid::now_v7().to_string(),
        name: ADMIN_TOKEN_NAME.to_owned(),
        role: TokenRole::Admin,
        created_at: now,
        revoked_at: None,
    };
    store.insert_token(&record, &hash_token(&token)).await?;
    Ok(AdminToken::Created(dir.write_admin_token(&token)?))
}

/// The active token a caller presented, if it is one.
pub async fn authenticate(store: &Store, token: &str) -> Result<Option<TokenRecord>, StoreError> {
    if !token.starts_with(TOKEN_PREFIX) {
        return Ok(None);
    }
    store.active_token(&hash_token(token)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_hashes_stable() {
        let a = generate_token();
        assert!(a.starts_with(TOKEN_PREFIX) && a.len() == TOKEN_PREFIX.len() + 64);
        assert_ne!(a, generate_token());
        assert_eq!(hash_token(&a), hash_token(&a));
        assert_eq!(hash_token(&a).len(), 64);
    }

    #[tokio::test]
    async fn the_admin_token_is_made_once_and_replaced_when_lost() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::open(tmp.path()).unwrap();
        let store = Store::open(&Store::sqlite_url(tmp.path())).await.unwrap();

        assert!(matches!(
            ensure_admin_token(&store, &dir).await.unwrap(),
            AdminToken::Created(_)
        ));
        let first = dir.read_admin_token().unwrap().unwrap();
        assert!(authenticate(&store, &first).await.unwrap().is_some());
        assert!(matches!(
            ensure_admin_token(&store, &dir).await.unwrap(),
            AdminToken::Existing(_)
        ));
        assert_eq!(dir.read_admin_token().unwrap().unwrap(), first);

        std::fs::remove_file(dir.admin_token_path()).unwrap();
        assert!(matches!(
            ensure_admin_token(&store, &dir).await.unwrap(),
            AdminToken::Created(_)
        ));
        let second = dir.read_admin_token().unwrap().unwrap();
        assert_ne!(first, second);
        assert!(
            authenticate(&store, &first).await.unwrap().is_none(),
            "the lost token is revoked"
        );
        assert!(authenticate(&store, &second).await.unwrap().is_some());
        assert!(authenticate(&store, "not-a-token").await.unwrap().is_none());
    }
}
