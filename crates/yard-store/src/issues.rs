//! The issues the forge's rule works on, and the guidance given on them.
//!
//! Taking an issue is one conditional statement: it succeeds when the issue
//! has no row or only finished work, so of two assignments (or two daemons
//! receiving one) exactly one takes it. Guidance is recorded once per
//! forge comment and handed on once: marking it delivered is conditional on
//! it still waiting.

use yard_core::{AgentId, IssueGuidance, IssueWork, Timestamp};

use crate::{Store, StoreError};

#[derive(sqlx::FromRow)]
struct IssueWorkRow {
    issue: String,
    repository: String,
    number: i64,
    title: String,
    body: String,
    instance: String,
    agent_id: Option<String>,
    started_at: i64,
    finished_at: Option<i64>,
}

impl From<IssueWorkRow> for IssueWork {
    fn from(row: IssueWorkRow) -> Self {
        Self {
            issue: row.issue,
            repository: row.repository,
            number: row.number,
            title: row.title,
            body: row.body,
            instance: row.instance,
            agent: row.agent_id.map(AgentId::from_trusted),
            started_at: Timestamp(row.started_at),
            finished_at: row.finished_at.map(Timestamp),
        }
    }
}

/// Every column, in [`IssueWorkRow`]'s order; a constant, so the queries
/// that splice it in stay free of input.
const WORK_COLUMNS: &str =
    "issue, repository, number, title, body, instance, agent_id, started_at, finished_at";

#[derive(sqlx::FromRow)]
struct GuidanceRow {
    issue: String,
    comment_id: i64,
    author: String,
    text: String,
    received_at: i64,
    delivered_to: Option<String>,
}

impl From<GuidanceRow> for IssueGuidance {
    fn from(row: GuidanceRow) -> Self {
        Self {
            issue: row.issue,
            comment_id: row.comment_id,
            author: row.author,
            text: row.text,
            received_at: Timestamp(row.received_at),
            delivered_to: row.delivered_to,
        }
    }
}

impl Store {
    /// Takes `work.issue` for `work` (its agent and end are not read);
    /// returns `false`, changing nothing, when the issue is being worked
    /// on already.
    pub async fn take_issue(&self, work: &IssueWork) -> Result<bool, StoreError> {
        let result = sqlx::query(
            "INSERT INTO issue_work (issue, repository, number, title, body, instance, agent_id, \
             started_at, finished_at) VALUES ($1, $2, $3, $4, $5, $6, NULL, $7, NULL) \
             ON CONFLICT (issue) DO UPDATE SET repository = excluded.repository, \
             number = excluded.number, title = excluded.title, body = excluded.body, \
             instance = excluded.instance, agent_id = NULL, started_at = excluded.started_at, \
             finished_at = NULL WHERE issue_work.finished_at IS NOT NULL",
        )
        .bind(&work.issue)
        .bind(&work.repository)
        .bind(work.number)
        .bind(&work.title)
        .bind(&work.body)
        .bind(&work.instance)
        .bind(work.started_at.0)
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    /// Records the agent put on unfinished work `issue`.
    pub async fn set_issue_agent(&self, issue: &str, agent: &AgentId) -> Result<(), StoreError> {
        sqlx::query("UPDATE issue_work SET agent_id = $1 WHERE issue = $2 AND finished_at IS NULL")
            .bind(agent.as_str())
            .bind(issue)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Marks the work on `issue` finished; returns whether it was unfinished.
    pub async fn finish_issue(&self, issue: &str, at: Timestamp) -> Result<bool, StoreError> {
        let result = sqlx::query(
            "UPDATE issue_work SET finished_at = $1 WHERE issue = $2 AND finished_at IS NULL",
        )
        .bind(at.0)
        .bind(issue)
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    /// The work on `issue`, finished or not.
    pub async fn issue_work(&self, issue: &str) -> Result<Option<IssueWork>, StoreError> {
        let row = sqlx::query_as::<_, IssueWorkRow>(sqlx::AssertSqlSafe(format!(
            "SELECT {WORK_COLUMNS} FROM issue_work WHERE issue = $1"
        )))
        .bind(issue)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(IssueWork::from))
    }

    /// The unfinished work `instance` took, oldest first.
    pub async fn unfinished_issue_work(
        &self,
        instance: &str,
    ) -> Result<Vec<IssueWork>, StoreError> {
        let rows = sqlx::query_as::<_, IssueWorkRow>(sqlx::AssertSqlSafe(format!(
            "SELECT {WORK_COLUMNS} FROM issue_work WHERE instance = $1 AND finished_at IS NULL \
             ORDER BY started_at, issue"
        )))
        .bind(instance)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(IssueWork::from).collect())
    }

    /// Records guidance once per comment; returns `false` when that comment
    /// was recorded before.
    pub async fn add_guidance(&self, guidance: &IssueGuidance) -> Result<bool, StoreError> {
        let result = sqlx::query(
            "INSERT INTO issue_guidance (issue, comment_id, author, text, received_at, \
             delivered_to) VALUES ($1, $2, $3, $4, $5, NULL) \
             ON CONFLICT (issue, comment_id) DO NOTHING",
        )
        .bind(&guidance.issue)
        .bind(guidance.comment_id)
        .bind(&guidance.author)
        .bind(&guidance.text)
        .bind(guidance.received_at.0)
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    /// The guidance on `issue` that has not reached an agent, oldest first.
    pub async fn waiting_guidance(&self, issue: &str) -> Result<Vec<IssueGuidance>, StoreError> {
        let rows = sqlx::query_as::<_, GuidanceRow>(
            "SELECT issue, comment_id, author, text, received_at, delivered_to \
             FROM issue_guidance WHERE issue = $1 AND delivered_to IS NULL \
             ORDER BY received_at, comment_id",
        )
        .bind(issue)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(IssueGuidance::from).collect())
    }

    /// Marks comment `comment_id`'s guidance on `issue` as delivered to
    /// `to`; returns `false` when it had been delivered already.
    pub async fn deliver_guidance(
        &self,
        issue: &str,
        comment_id: i64,
        to: &str,
    ) -> Result<bool, StoreError> {
        let result = sqlx::query(
            "UPDATE issue_guidance SET delivered_to = $1 \
             WHERE issue = $2 AND comment_id = $3 AND delivered_to IS NULL",
        )
        .bind(to)
        .bind(issue)
        .bind(comment_id)
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() == 1)
    }
}
