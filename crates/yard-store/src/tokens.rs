//! API tokens in the store: only their SHA-256 hashes, never the tokens.
//! One active token per name: the database refuses a second.

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
}

impl std::str::FromStr for TokenRole {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "admin" => Ok(Self::Admin),
            "user" => Ok(Self::User),
            other => Err(format!("{other:?} is not a role (admin or user)")),
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
pub(crate) struct TokenRow {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) role: String,
    pub(crate) created_at: i64,
    pub(crate) revoked_at: Option<i64>,
}

impl TryFrom<TokenRow> for TokenRecord {
    type Error = StoreError;

    fn try_from(row: TokenRow) -> Result<Self, StoreError> {
        Ok(Self {
            role: row
                .role
                .parse()
                .map_err(|e| StoreError::Corrupt(format!("token {}: {e}", row.id)))?,
            id: row.id,
            name: row.name,
            created_at: Timestamp(row.created_at),
            revoked_at: row.revoked_at.map(Timestamp),
        })
    }
}

impl Store {
    /// Stores a new token under its hash. Fails with
    /// [`StoreError::TokenNameTaken`] when an active token has the name.
    pub async fn insert_token(
        &self,
        token: &TokenRecord,
        token_hash: &str,
    ) -> Result<(), StoreError> {
        let result = sqlx::query(
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
        .await;
        match result {
            Ok(_) => Ok(()),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                Err(StoreError::TokenNameTaken(token.name.clone()))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The active tokens, oldest first.
    pub async fn active_tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        sqlx::query_as::<_, TokenRow>(
            "SELECT id, name, role, created_at, revoked_at FROM api_tokens \
             WHERE revoked_at IS NULL ORDER BY created_at, id",
        )
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(TokenRecord::try_from)
        .collect()
    }

    /// The active token whose id is `key`, else the one named `key`.
    pub async fn active_token_by_key(&self, key: &str) -> Result<Option<TokenRecord>, StoreError> {
        for column in ["id", "name"] {
            let sql = sqlx::AssertSqlSafe(format!(
                "SELECT id, name, role, created_at, revoked_at FROM api_tokens \
                 WHERE {column} = $1 AND revoked_at IS NULL"
            ));
            if let Some(row) = sqlx::query_as::<_, TokenRow>(sql)
                .bind(key)
                .fetch_optional(&self.pool)
                .await?
            {
                return TokenRecord::try_from(row).map(Some);
            }
        }
        Ok(None)
    }

    /// Revokes the token `id` and ends its sessions, in one transaction;
    /// returns whether an active token was revoked.
    pub async fn revoke_token(&self, id: &str, now: Timestamp) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let revoked = sqlx::query(
            "UPDATE api_tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
        )
        .bind(id)
        .bind(now.0)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        sqlx::query("DELETE FROM sessions WHERE token_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(revoked == 1)
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

    /// Revokes the active token named `name`, if there is one, and ends
    /// its sessions; returns whether there was one.
    pub async fn revoke_token_named(&self, name: &str, now: Timestamp) -> Result<bool, StoreError> {
        let id: Option<String> =
            sqlx::query_scalar("SELECT id FROM api_tokens WHERE name = $1 AND revoked_at IS NULL")
                .bind(name)
                .fetch_optional(&self.pool)
                .await?;
        match id {
            Some(id) => self.revoke_token(&id, now).await,
            None => Ok(false),
        }
    }
}
