//! Deployments in the store.
//!
//! A row is written when a deployment is asked for and rewritten at every
//! step, so after a crash the row says exactly how far the deployment got.

use yard_core::{
    Deployment, DeploymentId, DeploymentStatus, HealthReport, Owner, StackName, Timestamp,
};

use crate::{Store, StoreError};

const COLUMNS: &str = "id, name, status, progress, current_step, message, url, image, owner, owner_id, health, health_reason, restarts, last_failure, seq, created_at, updated_at";

#[derive(sqlx::FromRow)]
struct DeploymentRow {
    id: String,
    name: String,
    status: String,
    progress: i64,
    current_step: String,
    message: Option<String>,
    url: String,
    image: String,
    owner: Option<String>,
    owner_id: Option<String>,
    health: String,
    health_reason: Option<String>,
    restarts: i64,
    last_failure: Option<String>,
    seq: i64,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<DeploymentRow> for Deployment {
    type Error = StoreError;

    fn try_from(row: DeploymentRow) -> Result<Self, StoreError> {
        let status: DeploymentStatus = row
            .status
            .parse()
            .map_err(|e| StoreError::Corrupt(format!("deployment {}: {e}", row.id)))?;
        let health = row
            .health
            .parse()
            .map_err(|e| StoreError::Corrupt(format!("deployment {}: {e}", row.id)))?;
        let progress = u8::try_from(row.progress).map_err(|_| {
            StoreError::Corrupt(format!("deployment {}: progress {}", row.id, row.progress))
        })?;
        Ok(Deployment {
            id: DeploymentId::from_trusted(row.id),
            name: StackName::from_trusted(row.name),
            status,
            progress,
            current_step: row.current_step,
            message: row.message,
            url: row.url,
            image: row.image,
            owner: row.owner_id.map(|id| Owner {
                id,
                name: row.owner.unwrap_or_default(),
            }),
            health: HealthReport {
                health,
                reason: row.health_reason,
                restarts: u32::try_from(row.restarts).unwrap_or(u32::MAX),
                last_failure: row.last_failure,
            },
            seq: row.seq,
            created_at: Timestamp(row.created_at),
            updated_at: Timestamp(row.updated_at),
        })
    }
}

fn select(tail: &'static str) -> sqlx::AssertSqlSafe<String> {
    sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM deployments {tail}"))
}

fn rows_into(rows: Vec<DeploymentRow>) -> Result<Vec<Deployment>, StoreError> {
    rows.into_iter().map(Deployment::try_from).collect()
}

/// The SQL list of statuses that hold a name, e.g. `('initializing', ...)`.
/// Built from the state machine so the store and the domain cannot disagree.
fn releasing_list() -> String {
    let quoted: Vec<String> = DeploymentStatus::NAME_RELEASING
        .iter()
        .map(|s| format!("'{}'", s.as_str()))
        .collect();
    format!("({})", quoted.join(", "))
}

impl Store {
    /// Records a new deployment. Fails with [`StoreError::NameTaken`] when a
    /// live deployment already holds the name; the unique index decides, so
    /// two racing requests cannot both win.
    pub async fn insert_deployment(&self, d: &Deployment) -> Result<(), StoreError> {
        self.insert_leased_deployment(d, None).await
    }

    /// Records a new deployment already leased to `lease` (holder, expiry
    /// in milliseconds), so no other daemon can take it before its first
    /// step.
    pub async fn insert_leased_deployment(
        &self,
        d: &Deployment,
        lease: Option<(&str, i64)>,
    ) -> Result<(), StoreError> {
        let result = sqlx::query(
            "INSERT INTO deployments (id, name, status, progress, current_step, message, url, image, owner, owner_id, seq, created_at, updated_at, lease_holder, lease_until) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
        )
        .bind(d.id.as_str())
        .bind(d.name.as_str())
        .bind(d.status.as_str())
        .bind(i64::from(d.progress))
        .bind(d.current_step.as_str())
        .bind(d.message.as_deref())
        .bind(d.url.as_str())
        .bind(d.image.as_str())
        .bind(d.owner.as_ref().map(|o| o.name.as_str()))
        .bind(d.owner.as_ref().map(|o| o.id.as_str()))
        .bind(d.seq)
        .bind(d.created_at.0)
        .bind(d.updated_at.0)
        .bind(lease.map(|(holder, _)| holder))
        .bind(lease.map(|(_, until)| until))
        .execute(&self.pool)
        .await;
        match result {
            Ok(_) => Ok(()),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                Err(StoreError::NameTaken(d.name.to_string()))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Writes a deployment's new state (its image too, which a rolling
    /// update changes). A write carrying an older `seq` than the stored one
    /// is ignored, so a late writer can never roll a deployment back;
    /// returns whether the row changed.
    pub async fn save_deployment(&self, d: &Deployment) -> Result<bool, StoreError> {
        let result = sqlx::query(
            "UPDATE deployments SET status = $2, progress = $3, current_step = $4, message = $5, \
             seq = $6, updated_at = $7, image = $8 WHERE id = $1 AND seq < $6",
        )
        .bind(d.id.as_str())
        .bind(d.status.as_str())
        .bind(i64::from(d.progress))
        .bind(d.current_step.as_str())
        .bind(d.message.as_deref())
        .bind(d.seq)
        .bind(d.updated_at.0)
        .bind(d.image.as_str())
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    /// Records how deployment `id`'s stack is doing. Only the health
    /// columns change (the deployment's steps never write them), and the
    /// time of the change.
    pub async fn set_health(
        &self,
        id: &DeploymentId,
        report: &HealthReport,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE deployments SET health = $2, health_reason = $3, restarts = $4, \
             last_failure = $5, updated_at = $6 WHERE id = $1",
        )
        .bind(id.as_str())
        .bind(report.health.as_str())
        .bind(report.reason.as_deref())
        .bind(i64::from(report.restarts))
        .bind(report.last_failure.as_deref())
        .bind(now.0)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// One deployment by id.
    pub async fn deployment(&self, id: &str) -> Result<Option<Deployment>, StoreError> {
        sqlx::query_as::<_, DeploymentRow>(select("WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .map(Deployment::try_from)
            .transpose()
    }

    /// Every deployment, newest first, at most `limit`.
    pub async fn deployments(&self, limit: i64) -> Result<Vec<Deployment>, StoreError> {
        let rows = sqlx::query_as::<_, DeploymentRow>(select(
            "ORDER BY created_at DESC, id DESC LIMIT $1",
        ))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows_into(rows)
    }

    /// The deployment holding `name`, if any.
    pub async fn live_deployment(
        &self,
        name: &StackName,
    ) -> Result<Option<Deployment>, StoreError> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM deployments WHERE name = $1 AND status NOT IN {}",
            releasing_list()
        ));
        sqlx::query_as::<_, DeploymentRow>(sql)
            .bind(name.as_str())
            .fetch_optional(&self.pool)
            .await?
            .map(Deployment::try_from)
            .transpose()
    }

    /// Every deployment that holds a name (the live stacks), by name.
    pub async fn live_deployments(&self) -> Result<Vec<Deployment>, StoreError> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM deployments WHERE status NOT IN {} ORDER BY name",
            releasing_list()
        ));
        let rows = sqlx::query_as::<_, DeploymentRow>(sql)
            .fetch_all(&self.pool)
            .await?;
        rows_into(rows)
    }

    /// Deployments with work under way: the ones to resume after a restart.
    pub async fn active_deployments(&self) -> Result<Vec<Deployment>, StoreError> {
        let mut active = self.live_deployments().await?;
        active.retain(|d| d.status.is_active());
        Ok(active)
    }

    /// Takes the lease of deployment `id` for `holder` until `until`
    /// (milliseconds), when nobody holds it or its holder let it expire by
    /// `now`; with `force`, whoever holds it. Returns whether `holder` has
    /// it now. One statement, so two daemons cannot both win.
    pub async fn claim_deployment(
        &self,
        id: &DeploymentId,
        holder: &str,
        until: i64,
        now: i64,
        force: bool,
    ) -> Result<bool, StoreError> {
        let result = sqlx::query(
            "UPDATE deployments SET lease_holder = $2, lease_until = $3 \
             WHERE id = $1 AND ($5 = 1 OR lease_holder IS NULL OR lease_until < $4)",
        )
        .bind(id.as_str())
        .bind(holder)
        .bind(until)
        .bind(now)
        .bind(i64::from(force))
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    /// Extends `holder`'s lease of deployment `id` to `until`; `false` when
    /// it is no longer `holder`'s (another daemon took it over).
    pub async fn renew_lease(
        &self,
        id: &DeploymentId,
        holder: &str,
        until: i64,
    ) -> Result<bool, StoreError> {
        let result = sqlx::query(
            "UPDATE deployments SET lease_until = $3 WHERE id = $1 AND lease_holder = $2",
        )
        .bind(id.as_str())
        .bind(holder)
        .bind(until)
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    /// Gives up `holder`'s lease of deployment `id`, if it still has it.
    pub async fn release_lease(&self, id: &DeploymentId, holder: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE deployments SET lease_holder = NULL, lease_until = NULL \
             WHERE id = $1 AND lease_holder = $2",
        )
        .bind(id.as_str())
        .bind(holder)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Deployments with work under way whose lease nobody holds as of
    /// `now`: what a dead daemon left for another to take over.
    pub async fn unleased_active_deployments(
        &self,
        now: i64,
    ) -> Result<Vec<Deployment>, StoreError> {
        let active: Vec<String> = DeploymentStatus::ALL
            .iter()
            .filter(|s| s.is_active())
            .map(|s| format!("'{}'", s.as_str()))
            .collect();
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM deployments WHERE status IN ({}) \
             AND (lease_holder IS NULL OR lease_until < $1) ORDER BY name",
            active.join(", ")
        ));
        let rows = sqlx::query_as::<_, DeploymentRow>(sql)
            .bind(now)
            .fetch_all(&self.pool)
            .await?;
        rows_into(rows)
    }

    /// How many deployments have work under way.
    pub async fn count_active(&self) -> Result<u64, StoreError> {
        let active: Vec<String> = DeploymentStatus::ALL
            .iter()
            .filter(|s| s.is_active())
            .map(|s| format!("'{}'", s.as_str()))
            .collect();
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM deployments WHERE status IN ({})",
            active.join(", ")
        ));
        let count: i64 = sqlx::query_scalar(sql).fetch_one(&self.pool).await?;
        Ok(u64::try_from(count).unwrap_or(0))
    }
}
