//! API tokens in the store: only their SHA-256 hashes, never the tokens.

use yard_core::Timestamp;

use crate::{Store, StoreError};

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenRole {
    /// Everything, including managing other tokens.
    Admin,
    /// Deploy and manage stacks.
    User,
}

impl TokenRole {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::User => "user",
        }
    }

    fn parse(s: &str) -> Result<Self, StoreError> {
        match s {
            "admin" => Ok(Self::Admin),
            "user" => Ok(Self::User),
            other => Err(StoreError::Corrupt(format!("token role {other:?}"))),
        }
    }
}

/// A token as the store knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    pub id: String,
    pub name: String,
    pub role: TokenRole,
    pub created_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
}

#[derive(sqlx::FromRow)]
struct TokenRow {
    id: String,
    name: String,
    role: String,
    created_at: i64,
    revoked_at: Option<i64>,
}

impl TryFrom<TokenRow> for TokenRecord {
    type Error = StoreError;

    fn try_from(row: TokenRow) -> Result<Self, StoreError> {
        Ok(Self {
            role: TokenRole::parse(&row.role)?,
            id: row.id,
            name: row.name,
            created_at: Timestamp(row.created_at),
            revoked_at: row.revoked_at.map(Timestamp),
        })
    }
}

impl Store {
    /// Stores a new token under its hash.
    pub async fn insert_token(
        &self,
        token: &TokenRecord,
        token_hash: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO api_tokens (id, name, token_hash, role, created_at, revoked_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(token.id.as_str())
        .bind(token.name.as_str())
        .bind(token_hash)
        .bind(token.role.as_str())
        .bind(token.created_at.0)
        .bind(token.revoked_at.map(|t| t.0))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The unrevoked token with this hash.
    pub async fn active_token(&self, token_hash: &str) -> Result<Option<TokenRecord>, StoreError> {
        sqlx::query_as::<_, TokenRow>(
            "SELECT id, name, role, created_at, revoked_at FROM api_tokens \
             WHERE token_hash = $1 AND revoked_at IS NULL",
        )
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?
        .map(TokenRecord::try_from)
        .transpose()
    }

    /// Revokes every active token with `name`; returns how many.
    pub async fn revoke_tokens_named(&self, name: &str, now: Timestamp) -> Result<u64, StoreError> {
        let result = sqlx::query(
            "UPDATE api_tokens SET revoked_at = $2 WHERE name = $1 AND revoked_at IS NULL",
        )
        .bind(name)
        .bind(now.0)
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected())
    }
}
