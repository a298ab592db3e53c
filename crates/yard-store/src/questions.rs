//! Questions in the store. An outcome is written only while the question
//! is pending, in one statement, so of two answers (or an answer and the
//! deadline) exactly one wins, whichever daemon writes it.

use yard_core::{AgentId, AgentStatus, Question, QuestionKind, QuestionOutcome, Timestamp};

use crate::{Store, StoreError};

#[derive(sqlx::FromRow)]
struct QuestionRow {
    id: String,
    agent_id: String,
    owner_id: Option<String>,
    kind: String,
    message: String,
    options: String,
    context: Option<String>,
    deadline: i64,
    created_at: i64,
    outcome: String,
    answer: Option<String>,
    answered_by: Option<String>,
    reason: Option<String>,
    origin: Option<String>,
    agent_task: Option<String>,
}

#[derive(sqlx::FromRow)]
struct QuestionWithAgentRow {
    #[sqlx(flatten)]
    question: QuestionRow,
    agent_status: Option<String>,
}

const COLUMNS: &str = "id, agent_id, owner_id, kind, message, options, context, deadline, \
     created_at, outcome, answer, answered_by, reason, origin, agent_task";

impl TryFrom<QuestionRow> for Question {
    type Error = StoreError;

    fn try_from(row: QuestionRow) -> Result<Self, StoreError> {
        let corrupt = |what: &str| StoreError::Corrupt(format!("question {}: {what}", row.id));
        let options = if row.options.is_empty() {
            Vec::new()
        } else {
            row.options.lines().map(str::to_owned).collect()
        };
        let kind = QuestionKind::from_parts(&row.kind, options)
            .ok_or_else(|| corrupt(&format!("kind {:?}", row.kind)))?;
        let outcome = match row.outcome.as_str() {
            "pending" => QuestionOutcome::Pending,
            "answered" => QuestionOutcome::Answered {
                answer: row.answer.clone().unwrap_or_default(),
                by: row.answered_by.clone().unwrap_or_default(),
                reason: row.reason.clone(),
            },
            "timed_out" => QuestionOutcome::TimedOut,
            "cancelled" => QuestionOutcome::Cancelled,
            other => return Err(corrupt(&format!("outcome {other:?}"))),
        };
        Ok(Self {
            agent_id: AgentId::from_trusted(row.agent_id),
            owner_id: row.owner_id,
            kind,
            message: row.message,
            context: row.context,
            deadline: Timestamp(row.deadline),
            created_at: Timestamp(row.created_at),
            outcome,
            origin: row.origin,
            agent_task: row.agent_task,
            id: row.id,
        })
    }
}

fn rows_into(rows: Vec<QuestionRow>) -> Result<Vec<Question>, StoreError> {
    rows.into_iter().map(Question::try_from).collect()
}

impl Store {
    /// Records a new, pending question.
    pub async fn insert_question(&self, q: &Question) -> Result<(), StoreError> {
        let options = match &q.kind {
            QuestionKind::Select { options } => options.join("\n"),
            _ => String::new(),
        };
        sqlx::query(
            "INSERT INTO questions (id, agent_id, owner_id, kind, message, options, context, deadline, created_at, origin, agent_task) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(q.id.as_str())
        .bind(q.agent_id.as_str())
        .bind(q.owner_id.as_deref())
        .bind(q.kind.as_str())
        .bind(q.message.as_str())
        .bind(options)
        .bind(q.context.as_deref())
        .bind(q.deadline.0)
        .bind(q.created_at.0)
        .bind(q.origin.as_deref())
        .bind(q.agent_task.as_deref())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The question `id`, whatever its outcome.
    pub async fn question(&self, id: &str) -> Result<Option<Question>, StoreError> {
        let sql = sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM questions WHERE id = $1"));
        let row = sqlx::query_as::<_, QuestionRow>(sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(Question::try_from).transpose()
    }

    /// The question `id` and the status of the agent that asked it (`None`
    /// when the agent is not in the store), in one query: answering needs
    /// both, and an answer is on the path an agent waits on.
    pub async fn question_and_agent_status(
        &self,
        id: &str,
    ) -> Result<Option<(Question, Option<AgentStatus>)>, StoreError> {
        let columns = COLUMNS
            .split(", ")
            .map(|c| format!("q.{}", c.trim()))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {columns}, a.status AS agent_status FROM questions q \
             LEFT JOIN agents a ON a.id = q.agent_id WHERE q.id = $1"
        ));
        let row = sqlx::query_as::<_, QuestionWithAgentRow>(sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let status = row
            .agent_status
            .map(|s| {
                s.parse::<AgentStatus>()
                    .map_err(|e| StoreError::Corrupt(format!("question {id}: {e}")))
            })
            .transpose()?;
        Ok(Some((Question::try_from(row.question)?, status)))
    }

    /// The pending questions, oldest first.
    pub async fn pending_questions(&self) -> Result<Vec<Question>, StoreError> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM questions WHERE outcome = 'pending' ORDER BY created_at, id"
        ));
        let rows = sqlx::query_as::<_, QuestionRow>(sql)
            .fetch_all(&self.pool)
            .await?;
        rows_into(rows)
    }

    /// Writes how question `id` ended, if it is still pending; returns
    /// whether this write was the one that settled it.
    pub async fn settle_question(
        &self,
        id: &str,
        outcome: &QuestionOutcome,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let result = settle_query(id, outcome, now).execute(&self.pool).await?;
        Ok(result.rows_affected() == 1)
    }

    /// Writes how each question ended, as [`Store::settle_question`] does,
    /// in one transaction (one commit for a burst of answers); returns how
    /// many of them this settled.
    pub async fn settle_questions(
        &self,
        settled: &[(&str, &QuestionOutcome, Timestamp)],
    ) -> Result<usize, StoreError> {
        // Every start asks with an empty answer log: no transaction then.
        if settled.is_empty() {
            return Ok(0);
        }
        let mut transaction = self.pool.begin().await?;
        let mut count = 0;
        for (id, outcome, at) in settled {
            let result = settle_query(id, outcome, *at)
                .execute(&mut *transaction)
                .await?;
            if result.rows_affected() == 1 {
                count += 1;
            }
        }
        transaction.commit().await?;
        Ok(count)
    }

    /// Writes `answer` to question `id` if it is still pending and its
    /// agent still live (starting or running), in one statement; returns
    /// whether this write settled it. The answer's fast path: it needs no
    /// read before it, and a `false` sends the caller to look why.
    pub async fn answer_question(
        &self,
        id: &str,
        answer: &str,
        by: &str,
        reason: Option<&str>,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let result = sqlx::query(
            "UPDATE questions SET outcome = 'answered', answer = $2, answered_by = $3, \
             reason = $4, settled_at = $5 WHERE id = $1 AND outcome = 'pending' AND EXISTS \
             (SELECT 1 FROM agents WHERE agents.id = questions.agent_id \
             AND agents.status IN ('starting', 'running'))",
        )
        .bind(id)
        .bind(answer)
        .bind(by)
        .bind(reason)
        .bind(now.0)
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    /// Cancels every pending question of `agent`; returns their ids.
    pub async fn cancel_questions_of(
        &self,
        agent: &AgentId,
        now: Timestamp,
    ) -> Result<Vec<String>, StoreError> {
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM questions WHERE agent_id = $1 AND outcome = 'pending'",
        )
        .bind(agent.as_str())
        .fetch_all(&self.pool)
        .await?;
        let mut cancelled = Vec::new();
        for id in ids {
            if self
                .settle_question(&id, &QuestionOutcome::Cancelled, now)
                .await?
            {
                cancelled.push(id);
            }
        }
        Ok(cancelled)
    }
}

/// The conditional write that settles question `id` as `outcome`: it
/// changes only a question still pending.
fn settle_query<'q>(
    id: &'q str,
    outcome: &'q QuestionOutcome,
    now: Timestamp,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    let (answer, by, reason) = match outcome {
        QuestionOutcome::Answered { answer, by, reason } => {
            (Some(answer.as_str()), Some(by.as_str()), reason.as_deref())
        }
        _ => (None, None, None),
    };
    sqlx::query(
        "UPDATE questions SET outcome = $2, answer = $3, answered_by = $4, reason = $5, settled_at = $6 \
         WHERE id = $1 AND outcome = 'pending'",
    )
    .bind(id)
    .bind(outcome.as_str())
    .bind(answer)
    .bind(by)
    .bind(reason)
    .bind(now.0)
}
