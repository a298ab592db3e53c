//! Sessions in the store: made from a token, found by the SHA-256 hash of
//! their secret, and only while both the session and its token are alive.

use yard_core::{SessionRecord, Timestamp, TokenRecord};

use crate::tokens::TokenRow;
use crate::{Store, StoreError};

#[derive(sqlx::FromRow)]
struct SessionRow {
    token_id: String,
    scope: String,
    csrf_token: String,
    created_at: i64,
    expires_at: i64,
    token_name: String,
    token_role: String,
    token_owner_id: Option<String>,
    token_created_at: i64,
}

impl SessionRow {
    fn split(self) -> Result<(SessionRecord, TokenRecord), StoreError> {
        let session = SessionRecord {
            token_id: self.token_id,
            scope: self.scope,
            csrf_token: self.csrf_token,
            created_at: Timestamp(self.created_at),
            expires_at: Timestamp(self.expires_at),
        };
        let token = TokenRow {
            id: session.token_id.clone(),
            name: self.token_name,
            role: self.token_role,
            owner_id: self.token_owner_id,
            created_at: self.token_created_at,
            revoked_at: None,
        };
        Ok((session, TokenRecord::try_from(token)?))
    }
}

const LIVE_SESSION: &str = "SELECT s.token_id, s.scope, s.csrf_token, s.created_at, s.expires_at, \
     t.name AS token_name, t.role AS token_role, t.owner_id AS token_owner_id, t.created_at AS token_created_at \
     FROM sessions s JOIN api_tokens t ON t.id = s.token_id \
     WHERE s.secret_hash = $1 AND s.scope = $2 AND s.expires_at > $3 AND t.revoked_at IS NULL";

impl Store {
    /// Stores a new session under the hash of its secret. Sessions that
    /// have expired are cleared out at the same time.
    pub async fn insert_session(
        &self,
        session: &SessionRecord,
        secret_hash: &str,
    ) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
            .bind(session.created_at.0)
            .execute(&self.pool)
            .await?;
        sqlx::query(
            "INSERT INTO sessions (secret_hash, token_id, scope, csrf_token, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(secret_hash)
        .bind(session.token_id.as_str())
        .bind(session.scope.as_str())
        .bind(session.csrf_token.as_str())
        .bind(session.created_at.0)
        .bind(session.expires_at.0)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The unexpired session with this secret hash and scope, and its
    /// token, if the token is still active.
    pub async fn live_session(
        &self,
        secret_hash: &str,
        scope: &str,
        now: Timestamp,
    ) -> Result<Option<(SessionRecord, TokenRecord)>, StoreError> {
        sqlx::query_as::<_, SessionRow>(LIVE_SESSION)
            .bind(secret_hash)
            .bind(scope)
            .bind(now.0)
            .fetch_optional(&self.pool)
            .await?
            .map(SessionRow::split)
            .transpose()
    }

    /// Removes a session and returns it as it was, if it was live: a
    /// one-time session (a ticket) can be taken by one caller only.
    pub async fn take_session(
        &self,
        secret_hash: &str,
        scope: &str,
        now: Timestamp,
    ) -> Result<Option<(SessionRecord, TokenRecord)>, StoreError> {
        let Some(found) = self.live_session(secret_hash, scope, now).await? else {
            return Ok(None);
        };
        let deleted = self.delete_session(secret_hash).await?;
        Ok(deleted.then_some(found))
    }

    /// Ends a session; returns whether there was one.
    pub async fn delete_session(&self, secret_hash: &str) -> Result<bool, StoreError> {
        let result = sqlx::query("DELETE FROM sessions WHERE secret_hash = $1")
            .bind(secret_hash)
            .execute(&self.pool)
            .await?;
        Ok(result.rows_affected() == 1)
    }
}
