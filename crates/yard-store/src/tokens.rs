//! API tokens in the store: only their SHA-256 hashes, never the tokens.
//! One active token per name: the database refuses a second.

use yard_core::{Timestamp, TokenRecord};

use crate::{Store, StoreError};

#[derive(sqlx::FromRow)]
pub(crate) struct TokenRow {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) role: String,
    pub(crate) owner_id: Option<String>,
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
            owner_id: row.owner_id.unwrap_or_else(|| row.id.clone()),
            id: row.id,
            name: row.name,
            created_at: Timestamp(row.created_at),
            revoked_at: row.revoked_at.map(Timestamp),
        })
    }
}

/// The columns a [`TokenRow`] reads, for queries here and in sessions.
pub(crate) const TOKEN_COLUMNS: &str = "id, name, role, owner_id, created_at, revoked_at";

impl Store {
    /// Stores a new token under its hash. Fails with
    /// [`StoreError::TokenNameTaken`] when an active token has the name, in
    /// any case.
    pub async fn insert_token(
        &self,
        token: &TokenRecord,
        token_hash: &str,
    ) -> Result<(), StoreError> {
        let result = sqlx::query(
            "INSERT INTO api_tokens (id, name, token_hash, role, owner_id, created_at, revoked_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(token.id.as_str())
        .bind(token.name.as_str())
        .bind(token_hash)
        .bind(token.role.as_str())
        .bind(token.owner_id.as_str())
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
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE revoked_at IS NULL ORDER BY created_at, id"
        ));
        sqlx::query_as::<_, TokenRow>(sql)
            .fetch_all(&self.pool)
            .await?
            .into_iter()
            .map(TokenRecord::try_from)
            .collect()
    }

    /// The active token whose id is `key`, else the one named `key` (in
    /// any case).
    pub async fn active_token_by_key(&self, key: &str) -> Result<Option<TokenRecord>, StoreError> {
        self.token_by_id_or_name(key, "AND revoked_at IS NULL")
            .await
    }

    /// The first token whose id is `key`, else whose name is `key` in any
    /// case, with `tail` (our own SQL) narrowing or ordering the rows.
    async fn token_by_id_or_name(
        &self,
        key: &str,
        tail: &'static str,
    ) -> Result<Option<TokenRecord>, StoreError> {
        for condition in ["id = $1", "lower(name) = lower($1)"] {
            let sql = sqlx::AssertSqlSafe(format!(
                "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE {condition} {tail}"
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

    /// The token, active or revoked, whose id is `key`, else the newest
    /// one named `key` (in any case).
    pub async fn token_by_key(&self, key: &str) -> Result<Option<TokenRecord>, StoreError> {
        self.token_by_id_or_name(key, "ORDER BY created_at DESC, id DESC LIMIT 1")
            .await
    }

    /// The active token that carries owner id `owner_id`, if any.
    pub async fn active_token_of_owner(
        &self,
        owner_id: &str,
    ) -> Result<Option<TokenRecord>, StoreError> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE owner_id = $1 AND revoked_at IS NULL"
        ));
        sqlx::query_as::<_, TokenRow>(sql)
            .bind(owner_id)
            .fetch_optional(&self.pool)
            .await?
            .map(TokenRecord::try_from)
            .transpose()
    }

    /// The unrevoked token with this hash.
    pub async fn active_token(&self, token_hash: &str) -> Result<Option<TokenRecord>, StoreError> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE token_hash = $1 AND revoked_at IS NULL"
        ));
        sqlx::query_as::<_, TokenRow>(sql)
            .bind(token_hash)
            .fetch_optional(&self.pool)
            .await?
            .map(TokenRecord::try_from)
            .transpose()
    }

    /// Revokes the active token named `name`, if there is one, and ends
    /// its sessions; returns whether there was one.
    pub async fn revoke_token_named(&self, name: &str, now: Timestamp) -> Result<bool, StoreError> {
        let id: Option<String> = sqlx::query_scalar(
            "SELECT id FROM api_tokens WHERE lower(name) = lower($1) AND revoked_at IS NULL",
        )
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        match id {
            Some(id) => self.revoke_token(&id, now).await,
            None => Ok(false),
        }
    }
}
