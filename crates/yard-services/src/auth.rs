//! API tokens: made here, shown once, stored only as SHA-256 hashes.
//!
//! Tokens are 256 random bits, so a fast hash is enough: there is nothing to
//! guess, and a lookup by hash costs one indexed query. A token's name says
//! whose it is, for people; what it makes is owned by its owner id, which is
//! its own id unless an admin made it to take over a revoked token's things
//! (see [`NewToken::takes_over`]). Names are unique among active tokens
//! whatever their case.

use sha2::{Digest, Sha256};
use yard_core::TokenRecord;
use yard_core::{Person, Role};
use yard_store::{Store, StoreError};

use crate::{DataDir, now};

/// Every token starts with this, so a leaked one is easy to recognise.
pub const TOKEN_PREFIX: &str = "yard_";

/// The name of the token made on first start.
pub const ADMIN_TOKEN_NAME: &str = "admin";

/// Longest token name.
const MAX_TOKEN_NAME: usize = 64;

/// 256 random bits, in hex: the secret part of tokens and sessions.
pub(crate) fn random_secret() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

/// A new random token.
pub fn generate_token() -> String {
    format!("{TOKEN_PREFIX}{}", random_secret())
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
/// that was replaced), any older admin token of this daemon is revoked and
/// a new one is made and written with mode 0600.
///
/// On a store several daemons share (PostgreSQL), each daemon's admin
/// token is its own, `admin-<instance>`, so one daemon starting never
/// revokes another's. Each is an admin, and so may act on all.
pub async fn ensure_admin_token(store: &Store, dir: &DataDir) -> Result<AdminToken, AuthError> {
    if let Some(token) = dir.read_admin_token()?
        && let Some(record) = store.active_token(&hash_token(&token)).await?
        && record.role == Role::Admin
    {
        return Ok(AdminToken::Existing(dir.admin_token_path()));
    }
    let name = if store.is_shared() {
        format!("{ADMIN_TOKEN_NAME}-{}", dir.instance_id()?)
    } else {
        ADMIN_TOKEN_NAME.to_owned()
    };
    let now = now();
    // The new admin token is the same owner as the one it replaces: what
    // the admin made stays theirs.
    let previous = match store.token_by_key(&name).await? {
        Some(previous) => Some(previous),
        None => store.token_by_key(ADMIN_TOKEN_NAME).await?,
    };
    store.revoke_token_named(&name, now).await?;
    let token = generate_token();
    let id = uuid::Uuid::now_v7().to_string();
    let record = TokenRecord {
        owner_id: previous.map_or_else(|| id.clone(), |p| p.owner_id),
        id,
        name,
        role: Role::Admin,
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

/// The person a token speaks for.
pub fn person(token: &TokenRecord) -> Person {
    Person {
        owner: token.owner(),
        role: token.role,
    }
}

/// Why a token could not be made or revoked.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error(
        "a token name is 1 to {MAX_TOKEN_NAME} letters, digits, '.', '_', '-' or '@'; {0:?} is not"
    )]
    InvalidName(String),
    #[error("{ADMIN_TOKEN_NAME:?} is the yard's own token; pick another name")]
    ReservedName,
    #[error("an active token is already named {0:?}; revoke it first or pick another name")]
    NameTaken(String),
    #[error("there is no active token with id or name {0:?}")]
    NoSuchToken(String),
    #[error("there is no token with id or name {0:?} to take over from")]
    NoTokenToTakeOver(String),
    #[error(
        "token {0:?} is still active; revoke it first (with --keep-agents to keep its agents running), then make the new token take over"
    )]
    TakeOverActive(String),
    #[error("the admin token's things cannot be taken over by a person's token")]
    TakeOverAdmin,
    #[error(
        "the admin token cannot be revoked through the API; delete the data directory's admin-token file and restart the daemon to replace it"
    )]
    AdminToken,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A token just made: the secret is shown once and never stored.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    pub record: TokenRecord,
    pub secret: String,
}

/// What an admin asks for when making a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewToken {
    /// Whose token it is.
    pub name: String,
    pub role: Role,
    /// The id or name of a revoked token whose stacks and agents the new
    /// one takes over (a reissue). Without it, a new token owns nothing it
    /// did not make, whatever its name.
    pub takes_over: Option<String>,
}

/// Makes a token as `request` says.
pub async fn create_token(store: &Store, request: &NewToken) -> Result<IssuedToken, TokenError> {
    let name = request.name.trim();
    let valid = (1..=MAX_TOKEN_NAME).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    if !valid {
        return Err(TokenError::InvalidName(name.to_owned()));
    }
    if name.eq_ignore_ascii_case(ADMIN_TOKEN_NAME) {
        return Err(TokenError::ReservedName);
    }
    let id = uuid::Uuid::now_v7().to_string();
    let owner_id = match &request.takes_over {
        None => id.clone(),
        Some(key) => {
            let key = key.trim();
            let old = store
                .token_by_key(key)
                .await?
                .ok_or_else(|| TokenError::NoTokenToTakeOver(key.to_owned()))?;
            if old.name.eq_ignore_ascii_case(ADMIN_TOKEN_NAME) {
                return Err(TokenError::TakeOverAdmin);
            }
            if store.active_token_of_owner(&old.owner_id).await?.is_some() {
                return Err(TokenError::TakeOverActive(old.name));
            }
            old.owner_id
        }
    };
    let secret = generate_token();
    let record = TokenRecord {
        id,
        name: name.to_owned(),
        role: request.role,
        owner_id,
        created_at: now(),
        revoked_at: None,
    };
    match store.insert_token(&record, &hash_token(&secret)).await {
        Ok(()) => {}
        Err(StoreError::TokenNameTaken(name)) => return Err(TokenError::NameTaken(name)),
        Err(e) => return Err(e.into()),
    }
    tracing::info!(token = %record.name, id = %record.id, owner = %record.owner_id, role = record.role.as_str(), "token created");
    Ok(IssuedToken { record, secret })
}

/// Revokes the active token whose id or name is `key`, and ends its
/// sessions at once. Its agents' credentials stop working with it; the
/// caller decides whether the agents stop too.
pub async fn revoke_token(store: &Store, key: &str) -> Result<TokenRecord, TokenError> {
    let key = key.trim();
    let mut token = store
        .active_token_by_key(key)
        .await?
        .ok_or_else(|| TokenError::NoSuchToken(key.to_owned()))?;
    if token.name.eq_ignore_ascii_case(ADMIN_TOKEN_NAME) {
        return Err(TokenError::AdminToken);
    }
    let at = now();
    if !store.revoke_token(&token.id, at).await? {
        return Err(TokenError::NoSuchToken(key.to_owned()));
    }
    token.revoked_at = Some(at);
    tracing::info!(token = %token.name, id = %token.id, "token revoked");
    Ok(token)
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

    #[tokio::test]
    async fn tokens_are_made_and_revoked_by_name_with_reasons() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::open(tmp.path()).unwrap();
        let store = Store::open(&Store::sqlite_url(tmp.path())).await.unwrap();
        ensure_admin_token(&store, &dir).await.unwrap();

        let alice = create_token(&store, &user(" alice ")).await.unwrap();
        assert_eq!(alice.record.name, "alice");
        let found = authenticate(&store, &alice.secret).await.unwrap().unwrap();
        assert_eq!(found, alice.record);
        assert_eq!(found.owner_id, found.id, "a new token owns what it makes");

        for (name, want) in [
            ("", "not"),
            ("a b", "not"),
            ("Admin", "yard's own"),
            ("alice", "already named"),
            ("ALICE", "already named"),
        ] {
            let e = create_token(&store, &user(name)).await.unwrap_err();
            assert!(e.to_string().contains(want), "{name:?}: {e}");
        }
        assert!(matches!(
            revoke_token(&store, "admin").await,
            Err(TokenError::AdminToken)
        ));
        revoke_token(&store, "Alice").await.unwrap();
        assert!(authenticate(&store, &alice.secret).await.unwrap().is_none());
        assert!(matches!(
            revoke_token(&store, &alice.record.id).await,
            Err(TokenError::NoSuchToken(_))
        ));
    }

    fn user(name: &str) -> NewToken {
        NewToken {
            name: name.to_owned(),
            role: Role::User,
            takes_over: None,
        }
    }

    #[tokio::test]
    async fn a_reissue_owns_the_old_things_only_when_an_admin_says_so() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(&Store::sqlite_url(tmp.path())).await.unwrap();
        ensure_admin_token(&store, &DataDir::open(tmp.path()).unwrap())
            .await
            .unwrap();
        let bob = create_token(&store, &user("bob")).await.unwrap();
        let taking_over = NewToken {
            takes_over: Some("bob".to_owned()),
            ..user("robert")
        };
        assert!(matches!(
            create_token(&store, &taking_over).await,
            Err(TokenError::TakeOverActive(_))
        ));
        revoke_token(&store, "bob").await.unwrap();

        let new_bob = create_token(&store, &user("Bob")).await.unwrap();
        assert_ne!(
            new_bob.record.owner_id, bob.record.owner_id,
            "the same name is not the same owner"
        );
        revoke_token(&store, "bob").await.unwrap();
        let robert = create_token(&store, &taking_over).await.unwrap();
        assert_eq!(
            robert.record.owner_id, new_bob.record.owner_id,
            "the newest bob"
        );
        let by_id = NewToken {
            takes_over: Some(bob.record.id.clone()),
            ..user("bobby")
        };
        assert_eq!(
            create_token(&store, &by_id).await.unwrap().record.owner_id,
            bob.record.owner_id
        );
        for (key, want) in [("nobody", "no token"), ("admin", "admin token")] {
            let request = NewToken {
                takes_over: Some(key.to_owned()),
                ..user("eve")
            };
            let e = create_token(&store, &request).await.unwrap_err();
            assert!(e.to_string().contains(want), "{key}: {e}");
        }
    }
}
