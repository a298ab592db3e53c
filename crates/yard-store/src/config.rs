//! The yard's settings and the forge's webhook deliveries in the store.
//!
//! The store keeps what it is given: a secret arrives sealed by the
//! services and leaves the same way. A delivery is recorded in one
//! statement that does nothing when its id is already there, so two
//! daemons receiving the same redelivery act on it once between them.

use yard_core::{ConfigKey, ConfigRecord, DeliveryOutcome, Timestamp};

use crate::{Store, StoreError};

#[derive(sqlx::FromRow)]
struct ConfigRow {
    key: String,
    value: String,
    secret: i64,
    updated_at: i64,
}

impl ConfigRow {
    /// The record, if this version knows the key (a newer yard on the same
    /// database may know more).
    fn into_record(self) -> Option<ConfigRecord> {
        Some(ConfigRecord {
            key: self.key.parse().ok()?,
            value: self.value,
            secret: self.secret != 0,
            updated_at: Timestamp(self.updated_at),
        })
    }
}

impl Store {
    /// Stores a setting, replacing the one under the same key.
    pub async fn put_config(&self, record: &ConfigRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO config (key, value, secret, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value, secret = excluded.secret, \
             updated_at = excluded.updated_at",
        )
        .bind(record.key.as_str())
        .bind(record.value.as_str())
        .bind(i64::from(record.secret))
        .bind(record.updated_at.0)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The setting under `key`, if it is set.
    pub async fn config(&self, key: ConfigKey) -> Result<Option<ConfigRecord>, StoreError> {
        let row = sqlx::query_as::<_, ConfigRow>(
            "SELECT key, value, secret, updated_at FROM config WHERE key = $1",
        )
        .bind(key.as_str())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.and_then(ConfigRow::into_record))
    }

    /// Every setting that is set and whose key this version knows.
    pub async fn config_records(&self) -> Result<Vec<ConfigRecord>, StoreError> {
        let rows = sqlx::query_as::<_, ConfigRow>(
            "SELECT key, value, secret, updated_at FROM config ORDER BY key",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .filter_map(ConfigRow::into_record)
            .collect())
    }

    /// Clears the setting under `key`; returns whether it was set.
    pub async fn delete_config(&self, key: ConfigKey) -> Result<bool, StoreError> {
        let result = sqlx::query("DELETE FROM config WHERE key = $1")
            .bind(key.as_str())
            .execute(&self.pool)
            .await?;
        Ok(result.rows_affected() == 1)
    }

    /// Records the forge's delivery `id`, in one statement; returns `false`
    /// when it was recorded before (a redelivery), leaving that row as it
    /// was.
    pub async fn record_delivery(
        &self,
        id: &str,
        event: &str,
        outcome: DeliveryOutcome,
        received_at: Timestamp,
    ) -> Result<bool, StoreError> {
        let result = sqlx::query(
            "INSERT INTO webhook_deliveries (id, event, received_at, outcome) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO NOTHING",
        )
        .bind(id)
        .bind(event)
        .bind(received_at.0)
        .bind(outcome.as_str())
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() == 1)
    }
}
