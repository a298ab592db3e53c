//! Agents and their hook audit trail in the store.

use yard_core::{Agent, AgentId, AgentStatus, AuditEntry, Decision, Owner, Timestamp};

use crate::{Store, StoreError};

const COLUMNS: &str = "id, instance, owner_id, owner_name, parent_id, repo, base_ref, base_commit, \
                       task, image, status, exit_code, message, checkout, head_commit, created_at, updated_at";

#[derive(sqlx::FromRow)]
struct AgentRow {
    id: String,
    instance: String,
    owner_id: Option<String>,
    owner_name: Option<String>,
    parent_id: Option<String>,
    repo: String,
    base_ref: String,
    base_commit: String,
    task: String,
    image: String,
    status: String,
    exit_code: Option<i64>,
    message: Option<String>,
    checkout: String,
    head_commit: Option<String>,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<AgentRow> for Agent {
    type Error = StoreError;

    fn try_from(row: AgentRow) -> Result<Self, StoreError> {
        let status = row
            .status
            .parse::<AgentStatus>()
            .map_err(|e| StoreError::Corrupt(format!("agent {}: {e}", row.id)))?;
        Ok(Agent {
            id: AgentId::from_trusted(row.id),
            instance: row.instance,
            owner: row.owner_id.map(|id| Owner {
                id,
                name: row.owner_name.unwrap_or_default(),
            }),
            parent: row.parent_id.map(AgentId::from_trusted),
            repo: row.repo,
            base_ref: row.base_ref,
            base_commit: row.base_commit,
            task: row.task,
            image: row.image,
            status,
            exit_code: row.exit_code,
            message: row.message,
            checkout: row.checkout,
            head_commit: row.head_commit,
            created_at: Timestamp(row.created_at),
            updated_at: Timestamp(row.updated_at),
        })
    }
}

fn agents_from(rows: Vec<AgentRow>) -> Result<Vec<Agent>, StoreError> {
    rows.into_iter().map(Agent::try_from).collect()
}

/// `('a', 'b')` for a set of statuses; the values are our own constants.
fn status_list(statuses: &[AgentStatus]) -> String {
    let quoted: Vec<String> = statuses
        .iter()
        .map(|s| format!("'{}'", s.as_str()))
        .collect();
    format!("({})", quoted.join(", "))
}

/// A change of an agent's status, applied only from the statuses given.
#[derive(Debug, Clone)]
pub struct AgentTransition<'a> {
    pub from: &'a [AgentStatus],
    pub to: AgentStatus,
    pub exit_code: Option<i64>,
    pub message: Option<String>,
    pub now: Timestamp,
}

#[derive(sqlx::FromRow)]
struct AuditRow {
    id: String,
    agent_id: String,
    event: String,
    tool: Option<String>,
    subject: Option<String>,
    input: Option<String>,
    decision: String,
    asked: i64,
    rule: String,
    reason: String,
    created_at: i64,
}

impl TryFrom<AuditRow> for AuditEntry {
    type Error = StoreError;

    fn try_from(row: AuditRow) -> Result<Self, StoreError> {
        let decision = match row.decision.as_str() {
            "allow" => Decision::Allow,
            "deny" => Decision::Deny,
            "ask" => Decision::Ask,
            other => {
                return Err(StoreError::Corrupt(format!(
                    "audit {}: decision {other:?}",
                    row.id
                )));
            }
        };
        Ok(Self {
            id: row.id,
            agent_id: AgentId::from_trusted(row.agent_id),
            event: row.event,
            tool: row.tool,
            subject: row.subject,
            input: row.input,
            decision,
            asked: row.asked != 0,
            rule: row.rule,
            reason: row.reason,
            created_at: Timestamp(row.created_at),
        })
    }
}

impl Store {
    /// Records a new agent with its credential's hash.
    pub async fn insert_agent(&self, agent: &Agent, token_hash: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO agents (id, instance, owner_id, owner_name, parent_id, repo, base_ref, base_commit, \
             task, image, status, exit_code, message, checkout, head_commit, token_hash, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)",
        )
        .bind(agent.id.as_str())
        .bind(agent.instance.as_str())
        .bind(agent.owner.as_ref().map(|o| o.id.as_str()))
        .bind(agent.owner.as_ref().map(|o| o.name.as_str()))
        .bind(agent.parent.as_ref().map(AgentId::as_str))
        .bind(agent.repo.as_str())
        .bind(agent.base_ref.as_str())
        .bind(agent.base_commit.as_str())
        .bind(agent.task.as_str())
        .bind(agent.image.as_str())
        .bind(agent.status.as_str())
        .bind(agent.exit_code)
        .bind(agent.message.as_deref())
        .bind(agent.checkout.as_str())
        .bind(agent.head_commit.as_deref())
        .bind(token_hash)
        .bind(agent.created_at.0)
        .bind(agent.updated_at.0)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// One agent by id.
    pub async fn agent(&self, id: &AgentId) -> Result<Option<Agent>, StoreError> {
        let sql = sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM agents WHERE id = $1"));
        sqlx::query_as::<_, AgentRow>(sql)
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?
            .map(Agent::try_from)
            .transpose()
    }

    /// The live agent a credential belongs to, while its owner has an
    /// active token: revoking the owner's token retires the credentials of
    /// all their agents in the same instant.
    pub async fn live_agent_by_token_hash(
        &self,
        token_hash: &str,
    ) -> Result<Option<Agent>, StoreError> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM agents WHERE token_hash = $1 AND status IN {} \
             AND EXISTS (SELECT 1 FROM api_tokens t \
                         WHERE t.owner_id = agents.owner_id AND t.revoked_at IS NULL)",
            status_list(&AgentStatus::LIVE)
        ));
        sqlx::query_as::<_, AgentRow>(sql)
            .bind(token_hash)
            .fetch_optional(&self.pool)
            .await?
            .map(Agent::try_from)
            .transpose()
    }

    /// Agents, newest first, at most `limit`.
    pub async fn agents(&self, limit: i64) -> Result<Vec<Agent>, StoreError> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM agents ORDER BY created_at DESC, id DESC LIMIT $1"
        ));
        let rows = sqlx::query_as::<_, AgentRow>(sql)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        agents_from(rows)
    }

    /// The agents of owner `owner_id`, newest first, at most `limit`.
    pub async fn agents_of_owner(
        &self,
        owner_id: &str,
        limit: i64,
    ) -> Result<Vec<Agent>, StoreError> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM agents WHERE owner_id = $1 \
             ORDER BY created_at DESC, id DESC LIMIT $2"
        ));
        let rows = sqlx::query_as::<_, AgentRow>(sql)
            .bind(owner_id)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        agents_from(rows)
    }

    /// Agent `root` and every agent it spawned, and they spawned, newest
    /// first, at most `limit`.
    pub async fn agent_tree(&self, root: &AgentId, limit: i64) -> Result<Vec<Agent>, StoreError> {
        let sql = sqlx::AssertSqlSafe(format!(
            "WITH RECURSIVE tree (id) AS ( \
                 SELECT id FROM agents WHERE id = $1 \
                 UNION SELECT a.id FROM agents a JOIN tree ON a.parent_id = tree.id) \
             SELECT {COLUMNS} FROM agents WHERE id IN (SELECT id FROM tree) \
             ORDER BY created_at DESC, id DESC LIMIT $2"
        ));
        let rows = sqlx::query_as::<_, AgentRow>(sql)
            .bind(root.as_str())
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        agents_from(rows)
    }

    /// How many agents `parent` has spawned, ever.
    pub async fn child_count(&self, parent: &AgentId) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM agents WHERE parent_id = $1")
                .bind(parent.as_str())
                .fetch_one(&self.pool)
                .await?,
        )
    }

    /// How many of this instance's agents are starting or running: all of
    /// them, and those of owner `owner_id`.
    pub async fn live_agent_counts(
        &self,
        instance: &str,
        owner_id: &str,
    ) -> Result<(i64, i64), StoreError> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*), COALESCE(SUM(CASE WHEN owner_id = $2 THEN 1 ELSE 0 END), 0) \
             FROM agents WHERE instance = $1 AND status IN {}",
            status_list(&AgentStatus::LIVE)
        ));
        Ok(sqlx::query_as::<_, (i64, i64)>(sql)
            .bind(instance)
            .bind(owner_id)
            .fetch_one(&self.pool)
            .await?)
    }

    /// This instance's agents of owner `owner_id` in any of `statuses`.
    pub async fn agents_of_owner_with_status(
        &self,
        instance: &str,
        owner_id: &str,
        statuses: &[AgentStatus],
    ) -> Result<Vec<Agent>, StoreError> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM agents WHERE instance = $1 AND owner_id = $2 \
             AND status IN {} ORDER BY created_at, id",
            status_list(statuses)
        ));
        let rows = sqlx::query_as::<_, AgentRow>(sql)
            .bind(instance)
            .bind(owner_id)
            .fetch_all(&self.pool)
            .await?;
        agents_from(rows)
    }

    /// This instance's agents in any of `statuses`, oldest first.
    pub async fn agents_with_status(
        &self,
        instance: &str,
        statuses: &[AgentStatus],
    ) -> Result<Vec<Agent>, StoreError> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM agents WHERE instance = $1 AND status IN {} ORDER BY created_at, id",
            status_list(statuses)
        ));
        let rows = sqlx::query_as::<_, AgentRow>(sql)
            .bind(instance)
            .fetch_all(&self.pool)
            .await?;
        agents_from(rows)
    }

    /// Moves an agent to a new status if it is in one of `change.from`;
    /// returns whether it moved. The condition makes racing writers (an exit
    /// seen while a person stops the agent) settle on exactly one outcome.
    pub async fn transition_agent(
        &self,
        id: &AgentId,
        change: AgentTransition<'_>,
    ) -> Result<bool, StoreError> {
        let sql = sqlx::AssertSqlSafe(format!(
            "UPDATE agents SET status = $2, exit_code = COALESCE($3, exit_code), \
             message = COALESCE($4, message), updated_at = $5 WHERE id = $1 AND status IN {}",
            status_list(change.from)
        ));
        let result = sqlx::query(sql)
            .bind(id.as_str())
            .bind(change.to.as_str())
            .bind(change.exit_code)
            .bind(change.message)
            .bind(change.now.0)
            .execute(&self.pool)
            .await?;
        Ok(result.rows_affected() == 1)
    }

    /// Records the last commit of an agent's branch.
    pub async fn set_agent_head(
        &self,
        id: &AgentId,
        commit: &str,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE agents SET head_commit = $2, updated_at = $3 WHERE id = $1")
            .bind(id.as_str())
            .bind(commit)
            .bind(now.0)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Records one hook call.
    pub async fn insert_audit(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO hook_audit (id, agent_id, event, tool, subject, input, decision, asked, rule, reason, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(entry.id.as_str())
        .bind(entry.agent_id.as_str())
        .bind(entry.event.as_str())
        .bind(entry.tool.as_deref())
        .bind(entry.subject.as_deref())
        .bind(entry.input.as_deref())
        .bind(entry.decision.as_str())
        .bind(i64::from(entry.asked))
        .bind(entry.rule.as_str())
        .bind(entry.reason.as_str())
        .bind(entry.created_at.0)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// An agent's hook calls, oldest first.
    pub async fn audit(&self, agent: &AgentId) -> Result<Vec<AuditEntry>, StoreError> {
        let rows = sqlx::query_as::<_, AuditRow>(
            "SELECT id, agent_id, event, tool, subject, input, decision, asked, rule, reason, created_at \
             FROM hook_audit WHERE agent_id = $1 ORDER BY created_at, id",
        )
        .bind(agent.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(AuditEntry::try_from).collect()
    }
}
