//! The PostgreSQL backend: one database shared by several workers.
//!
//! Status changes use a compare-and-set (`UPDATE … WHERE status = $old`) in
//! a `READ COMMITTED` transaction: a writer that loses a race updates no row,
//! rolls back, re-reads and checks the state machine again. Metrics read in one
//! `REPEATABLE READ` snapshot.
//!
//! [`connect_postgres_in_schema`] puts every table in one schema (created if
//! missing), which is how tests isolate themselves in a shared database;
//! [`drop_postgres_schema`] removes it again.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use hybrid_core::{Event, Money, RouteInfo, StageResult, Task, TaskId, TaskResult, TaskStatus};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::{Connection, Postgres, QueryBuilder, Transaction};

use crate::approval::{
    self, Approval, ApprovalFilter, ApprovalParts, ApprovalStatus, ID_ATTEMPTS, NewApproval,
};
use crate::audit::{ChainVerifier, GENESIS_HASH, RawAudit, VERIFY_PAGE, timestamp_text};
use crate::budget::{self, BudgetCharge, BudgetScope, ChargeOutcome, LedgerEntry, LedgerKind};
use crate::codec::{
    self, MAX_CAS_ATTEMPTS, RawMetrics, ResultColumns, describe_events, micros, single_task,
};
use crate::error::{is_foreign_key_violation, is_unique_violation};
use crate::journal::{self, JournalBegin, JournalEntry, JournalState};
use crate::{
    AuditEntry, AuditFilter, AuditRecord, AuditVerification, MetricsSnapshot, Redactor,
    StatusChange, Store, StoreError, TaskFilter, TaskRecord, TaskSummary,
};

const BACKEND: &str = "postgres";
const MAX_CONNECTIONS: u32 = 10;

/// A [`Store`] on PostgreSQL.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
}

/// The outcome of one status compare-and-set.
enum Cas {
    /// The status moved; holds the previous one.
    Moved(TaskStatus),
    /// The task was already in the target status (allowed for `finish`).
    Already(TaskStatus),
    /// Another writer changed the status between the read and the update.
    Lost,
}

/// Connects to PostgreSQL at `url` with every table in `schema`: creates the
/// schema if it does not exist, sets `search_path` to it on every pooled
/// connection, and runs the migrations there.
///
/// For tests sharing one database: use a fresh schema per test (say
/// `hs_<random>`) and [`drop_postgres_schema`] it afterwards. `schema` must be
/// a plain lower-case identifier (`[a-z_][a-z0-9_]*`, at most 63 bytes), else
/// [`StoreError::InvalidSchema`].
pub async fn connect_postgres_in_schema(
    url: &str,
    schema: &str,
) -> Result<PostgresStore, StoreError> {
    check_schema_name(schema)?;
    let mut conn = admin_connection(url).await?;
    sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\""))
        .execute(&mut conn)
        .await
        .map_err(|e| StoreError::query(format!("creating schema {schema}"), e))?;
    // Closing is best effort: the schema exists either way.
    let _ = conn.close().await;
    PostgresStore::connect_with(options(url)?.options([("search_path", schema)])).await
}

/// Drops `schema` and everything in it (`DROP SCHEMA IF EXISTS … CASCADE`).
/// The counterpart of [`connect_postgres_in_schema`] for test clean-up.
pub async fn drop_postgres_schema(url: &str, schema: &str) -> Result<(), StoreError> {
    check_schema_name(schema)?;
    let mut conn = admin_connection(url).await?;
    sqlx::query(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
        .execute(&mut conn)
        .await
        .map_err(|e| StoreError::query(format!("dropping schema {schema}"), e))?;
    let _ = conn.close().await;
    Ok(())
}

/// Only plain lower-case identifiers: they need no quoting rules and cannot
/// smuggle SQL into the `CREATE SCHEMA` / `search_path` text.
fn check_schema_name(schema: &str) -> Result<(), StoreError> {
    let mut chars = schema.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_');
    let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if first_ok && rest_ok && schema.len() <= 63 {
        Ok(())
    } else {
        Err(StoreError::InvalidSchema(schema.to_owned()))
    }
}

fn options(url: &str) -> Result<PgConnectOptions, StoreError> {
    PgConnectOptions::from_str(url).map_err(|error| StoreError::Connection {
        backend: BACKEND,
        error,
    })
}

async fn admin_connection(url: &str) -> Result<PgConnection, StoreError> {
    PgConnection::connect_with(&options(url)?)
        .await
        .map_err(|error| StoreError::Connection {
            backend: BACKEND,
            error,
        })
}

impl PostgresStore {
    /// Connects to `url` (`postgres://…` or `postgresql://…`) and runs the migrations.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with(options(url)?).await
    }

    async fn connect_with(options: PgConnectOptions) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .connect_with(options)
            .await
            .map_err(|error| StoreError::Connection {
                backend: BACKEND,
                error,
            })?;
        sqlx::migrate!("./migrations/postgres")
            .run(&pool)
            .await
            .map_err(|error| StoreError::Migration {
                backend: BACKEND,
                error,
            })?;
        Ok(PostgresStore { pool })
    }

    /// The connection pool, for callers that need SQL this trait does not offer.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Moves a pending approval to `status` (compare-and-set on `pending`).
    async fn answer_approval(
        &self,
        id: &str,
        status: ApprovalStatus,
        by: &str,
        note: Option<&str>,
    ) -> Result<Approval, StoreError> {
        let id = approval::normalize_id(id);
        let sql = format!(
            "UPDATE approvals SET status = $1, decided_by = $2, decided_at = $3, note = $4 \
             WHERE id = $5 AND status = 'pending' RETURNING {}",
            approval::COLUMNS
        );
        let row: Option<ApprovalParts> = sqlx::query_as(&sql)
            .bind(status.as_str())
            .bind(by)
            .bind(micros(Utc::now()))
            .bind(note)
            .bind(&id)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| StoreError::query(format!("answering approval {id}"), e))?;
        if let Some(row) = row {
            return approval::from_parts(row);
        }
        match self.get_approval(&id).await? {
            Some(closed) => Err(closed.closed_error()),
            None => Err(StoreError::NotFound(id.into())),
        }
    }

    async fn begin(&self, context: &str) -> Result<Transaction<'static, Postgres>, StoreError> {
        self.pool
            .begin()
            .await
            .map_err(|e| StoreError::query(context, e))
    }

    /// Retries [`cas_status`] until it does not lose a race; with `result`,
    /// writes the result columns in the same transaction (and then a task
    /// already in `to` is accepted as is).
    async fn change_status(
        &self,
        id: &TaskId,
        to: TaskStatus,
        reason: Option<&str>,
        result: Option<&ResultColumns>,
    ) -> Result<TaskStatus, StoreError> {
        let context = format!("moving task {id} to {to}");
        for _ in 0..MAX_CAS_ATTEMPTS {
            let mut tx = self.begin(&context).await?;
            let now = micros(Utc::now());
            let previous = match cas_status(
                &mut tx,
                id,
                to,
                reason,
                result.is_some(),
                now,
                &context,
            )
            .await?
            {
                Cas::Lost => {
                    tracing::debug!(task = %id, %to, "status compare-and-set lost a race; retrying");
                    continue;
                }
                Cas::Moved(from) | Cas::Already(from) => from,
            };
            if let Some(r) = result {
                write_result(&mut tx, id, r, now).await?;
            }
            tx.commit()
                .await
                .map_err(|e| StoreError::query(&context, e))?;
            return Ok(previous);
        }
        Err(StoreError::Contention {
            id: id.clone(),
            attempts: MAX_CAS_ATTEMPTS,
        })
    }

    /// After a lease `UPDATE … WHERE`: `true` if it changed the row; else
    /// `false` if the task exists, [`StoreError::NotFound`] if not.
    async fn lease_changed(&self, task: &TaskId, rows: u64) -> Result<bool, StoreError> {
        if rows == 1 {
            return Ok(true);
        }
        let found: Option<(i32,)> = sqlx::query_as("SELECT 1 FROM tasks WHERE id = $1")
            .bind(task.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| StoreError::query(format!("reading the lease of task {task}"), e))?;
        match found {
            Some(_) => Ok(false),
            None => Err(StoreError::NotFound(task.clone())),
        }
    }
}

/// Reads the status and, if the move is legal, updates it only if it is still
/// the status read (compare-and-set) and records the change.
async fn cas_status(
    conn: &mut PgConnection,
    id: &TaskId,
    to: TaskStatus,
    reason: Option<&str>,
    allow_same: bool,
    now: DateTime<Utc>,
    context: &str,
) -> Result<Cas, StoreError> {
    let row: Option<(String,)> = sqlx::query_as("SELECT status FROM tasks WHERE id = $1")
        .bind(id.as_str())
        .fetch_optional(&mut *conn)
        .await
        .map_err(|e| StoreError::query(context, e))?;
    let Some((current,)) = row else {
        return Err(StoreError::NotFound(id.clone()));
    };
    let from = codec::status(&current, &format!("status of task {id}"))?;
    if allow_same && from == to {
        return Ok(Cas::Already(from));
    }
    from.transition(to)
        .map_err(|error| StoreError::IllegalTransition {
            id: id.clone(),
            error,
        })?;
    let updated =
        sqlx::query("UPDATE tasks SET status = $1, updated_at = $2 WHERE id = $3 AND status = $4")
            .bind(to.as_str())
            .bind(now)
            .bind(id.as_str())
            .bind(from.as_str())
            .execute(&mut *conn)
            .await
            .map_err(|e| StoreError::query(context, e))?;
    if updated.rows_affected() != 1 {
        return Ok(Cas::Lost);
    }
    sqlx::query(
        "INSERT INTO status_changes (task_id, from_status, to_status, reason, at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id.as_str())
    .bind(from.as_str())
    .bind(to.as_str())
    .bind(reason)
    .bind(now)
    .execute(&mut *conn)
    .await
    .map_err(|e| StoreError::query(context, e))?;
    Ok(Cas::Moved(from))
}

/// Writes the result columns of a task.
async fn write_result(
    conn: &mut PgConnection,
    id: &TaskId,
    r: &ResultColumns,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE tasks SET result = $1::json, platform = $2, route = $3::json, output = $4, \
         input_tokens = $5, output_tokens = $6, cache_read_tokens = $7, cache_write_tokens = $8, \
         cost_nanos = $9, duration_ms = $10, error = $11, finished_at = $12, updated_at = $12 \
         WHERE id = $13",
    )
    .bind(&r.json)
    .bind(&r.platform)
    .bind(&r.route_json)
    .bind(&r.output)
    .bind(r.input_tokens)
    .bind(r.output_tokens)
    .bind(r.cache_read_tokens)
    .bind(r.cache_write_tokens)
    .bind(r.cost_nanos)
    .bind(r.duration_ms)
    .bind(&r.error)
    .bind(now)
    .bind(id.as_str())
    .execute(&mut *conn)
    .await
    .map_err(|e| StoreError::query(format!("storing the result of task {id}"), e))?;
    Ok(())
}

/// Inserts events with one statement (arrays unnested into rows). The five
/// arrays are five bind parameters whatever the batch size, so PostgreSQL's
/// limit of 65,535 parameters per statement never needs a chunked batch.
async fn insert_events(conn: &mut PgConnection, events: &[Event]) -> Result<(), StoreError> {
    let mut task_ids = Vec::with_capacity(events.len());
    let mut seqs = Vec::with_capacity(events.len());
    let mut types = Vec::with_capacity(events.len());
    let mut ats = Vec::with_capacity(events.len());
    let mut bodies = Vec::with_capacity(events.len());
    for e in events {
        let what = format!("event {} of task {}", e.seq, e.task_id);
        bodies.push(codec::to_json(e, &what)?);
        task_ids.push(e.task_id.as_str().to_owned());
        seqs.push(codec::db_int(e.seq));
        types.push(e.kind.name().to_owned());
        ats.push(micros(e.at));
    }
    sqlx::query(
        "INSERT INTO events (task_id, seq, event_type, at, body) \
         SELECT t, s, k, a, b::json \
         FROM UNNEST($1::text[], $2::bigint[], $3::text[], $4::timestamptz[], $5::text[]) \
         AS u(t, s, k, a, b)",
    )
    .bind(task_ids)
    .bind(seqs)
    .bind(types)
    .bind(ats)
    .bind(bodies)
    .execute(&mut *conn)
    .await
    .map_err(|e| {
        if is_unique_violation(&e) {
            StoreError::AlreadyExists(describe_events(events))
        } else if let (true, Some(task)) = (is_foreign_key_violation(&e), single_task(events)) {
            StoreError::NotFound(task.clone())
        } else {
            StoreError::query(format!("appending {}", describe_events(events)), e)
        }
    })?;
    Ok(())
}

type TaskRow = (
    String,
    String,
    Option<String>,
    Option<String>,
    DateTime<Utc>,
    DateTime<Utc>,
    Option<String>,
    Option<DateTime<Utc>>,
);
/// A `journal` row: key, state, output, `started_at`, `finished_at`.
type JournalRow = (
    String,
    String,
    Option<String>,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
);
type SummaryRow = (
    String,
    String,
    String,
    String,
    Option<String>,
    DateTime<Utc>,
    Option<i64>,
    Option<i64>,
);

/// The columns of an `audit_log` row, in [`AuditRow`] order.
const AUDIT_COLUMNS: &str = "SELECT seq, at, task_id, agent, action, command, output, user_name, \
                             approved_by, detail::text, prev_hash, hash FROM audit_log";

type AuditRow = (
    i64,
    DateTime<Utc>,
    Option<String>,
    String,
    String,
    Option<String>,
    Option<String>,
    String,
    Option<String>,
    String,
    String,
    String,
);

fn raw_audit(row: AuditRow) -> RawAudit {
    let (
        seq,
        at,
        task_id,
        agent,
        action,
        command,
        output,
        user,
        approved_by,
        detail,
        prev_hash,
        hash,
    ) = row;
    RawAudit {
        seq,
        timestamp: timestamp_text(at),
        task_id,
        agent,
        action,
        command,
        output,
        user,
        approved_by,
        detail,
        prev_hash,
        hash,
    }
}

/// `entry` sealed as the record after the chain's current head, and the
/// timestamp it was sealed with.
async fn seal_after_head(
    conn: &mut PgConnection,
    entry: &AuditEntry,
) -> Result<(RawAudit, DateTime<Utc>), StoreError> {
    let head: Option<(i64, String)> =
        sqlx::query_as("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&mut *conn)
            .await
            .map_err(|e| StoreError::query("reading the head of the audit chain", e))?;
    let (seq, prev_hash) = match head {
        Some((seq, hash)) => (seq.saturating_add(1), hash),
        None => (1, GENESIS_HASH.to_owned()),
    };
    let now = micros(Utc::now());
    Ok((RawAudit::seal(entry, seq, now, prev_hash)?, now))
}

/// Inserts a sealed audit record.
async fn insert_audit(
    conn: &mut PgConnection,
    raw: &RawAudit,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO audit_log (seq, at, task_id, agent, action, command, output, user_name, \
         approved_by, detail, prev_hash, hash) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::json, $11, $12)",
    )
    .bind(raw.seq)
    .bind(at)
    .bind(&raw.task_id)
    .bind(&raw.agent)
    .bind(&raw.action)
    .bind(&raw.command)
    .bind(&raw.output)
    .bind(&raw.user)
    .bind(&raw.approved_by)
    .bind(&raw.detail)
    .bind(&raw.prev_hash)
    .bind(&raw.hash)
    .execute(conn)
    .await?;
    Ok(())
}

#[async_trait]
impl Store for PostgresStore {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    async fn create_task(&self, task: &Task) -> Result<(), StoreError> {
        let id = &task.id;
        let context = format!("creating task {id}");
        let json = codec::to_json(task, &format!("task {id}"))?;
        let now = micros(Utc::now());
        let mut tx = self.begin(&context).await?;
        sqlx::query(
            "INSERT INTO tasks (id, description, task_type, priority, status, submitted_by, task, \
             created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7::json, $8, $9)",
        )
        .bind(id.as_str())
        .bind(&task.description)
        .bind(task.task_type.as_str())
        .bind(i16::from(task.priority.get()))
        .bind(TaskStatus::Pending.as_str())
        .bind(&task.submitted_by)
        .bind(&json)
        .bind(micros(task.created_at))
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                StoreError::AlreadyExists(format!("task {id}"))
            } else {
                StoreError::query(&context, e)
            }
        })?;
        sqlx::query(
            "INSERT INTO status_changes (task_id, from_status, to_status, reason, at) \
             VALUES ($1, NULL, $2, NULL, $3)",
        )
        .bind(id.as_str())
        .bind(TaskStatus::Pending.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(|e| StoreError::query(&context, e))?;
        tx.commit()
            .await
            .map_err(|e| StoreError::query(&context, e))
    }

    async fn transition(
        &self,
        id: &TaskId,
        to: TaskStatus,
        reason: Option<&str>,
    ) -> Result<TaskStatus, StoreError> {
        self.change_status(id, to, reason, None).await
    }

    async fn set_route(&self, id: &TaskId, route: &RouteInfo) -> Result<(), StoreError> {
        let json = codec::to_json(route, &format!("route of task {id}"))?;
        let done = sqlx::query(
            "UPDATE tasks SET platform = $1, route = $2::json, updated_at = $3 WHERE id = $4",
        )
        .bind(&route.platform)
        .bind(json)
        .bind(micros(Utc::now()))
        .bind(id.as_str())
        .execute(&self.pool)
        .await
        .map_err(|e| StoreError::query(format!("setting the route of task {id}"), e))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(id.clone()));
        }
        Ok(())
    }

    async fn append_event(&self, event: &Event) -> Result<(), StoreError> {
        self.append_events(std::slice::from_ref(event)).await
    }

    async fn append_events(&self, events: &[Event]) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        // One statement is one transaction: all rows or none.
        let mut conn =
            self.pool.acquire().await.map_err(|e| {
                StoreError::query(format!("appending {}", describe_events(events)), e)
            })?;
        insert_events(&mut conn, events).await
    }

    async fn put_stage(
        &self,
        id: &TaskId,
        position: u32,
        name: &str,
        stage: &StageResult,
    ) -> Result<(), StoreError> {
        let what = format!("stage {position} ({name}) of task {id}");
        sqlx::query(
            "INSERT INTO stages (task_id, position, name, agent, platform, body, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6::json, $7) \
             ON CONFLICT (task_id, position) DO UPDATE SET name = excluded.name, \
             agent = excluded.agent, platform = excluded.platform, body = excluded.body, \
             updated_at = excluded.updated_at",
        )
        .bind(id.as_str())
        .bind(i64::from(position))
        .bind(name)
        .bind(&stage.agent)
        .bind(&stage.platform)
        .bind(codec::to_json(stage, &what)?)
        .bind(micros(Utc::now()))
        .execute(&self.pool)
        .await
        .map_err(|e| {
            if is_foreign_key_violation(&e) {
                StoreError::NotFound(id.clone())
            } else {
                StoreError::query(format!("storing {what}"), e)
            }
        })?;
        Ok(())
    }

    async fn finish(&self, result: &TaskResult) -> Result<(), StoreError> {
        let columns = ResultColumns::new(result)?;
        let reason = result.error.as_deref();
        self.change_status(&result.task_id, result.status, reason, Some(&columns))
            .await?;
        Ok(())
    }

    async fn get_task(&self, id: &TaskId) -> Result<Option<TaskRecord>, StoreError> {
        let row: Option<TaskRow> = sqlx::query_as(
            "SELECT task::text, status, route::text, result::text, created_at, updated_at, \
             lease_owner, lease_until FROM tasks WHERE id = $1",
        )
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| StoreError::query(format!("reading task {id}"), e))?;
        let Some((task, status, route, result, created_at, updated_at, lease_owner, lease_until)) =
            row
        else {
            return Ok(None);
        };
        let what = format!("task {id}");
        Ok(Some(TaskRecord {
            task: codec::from_json(&task, &what)?,
            status: codec::status(&status, &what)?,
            route: route.map(|r| codec::from_json(&r, &what)).transpose()?,
            result: result.map(|r| codec::from_json(&r, &what)).transpose()?,
            created_at,
            updated_at,
            lease_owner,
            lease_until,
        }))
    }

    async fn list_tasks(&self, filter: &TaskFilter) -> Result<Vec<TaskSummary>, StoreError> {
        const COLUMNS: &str = "SELECT id, description, task_type, status, platform, created_at, \
                               duration_ms, cost_nanos FROM tasks";
        const ORDER: &str = "ORDER BY created_at DESC, id DESC LIMIT";
        let limit = i64::from(filter.effective_limit());
        let sql = match filter.status {
            Some(_) => format!("{COLUMNS} WHERE status = $1 {ORDER} $2"),
            None => format!("{COLUMNS} {ORDER} $1"),
        };
        let mut query = sqlx::query_as(&sql);
        if let Some(status) = filter.status {
            query = query.bind(status.as_str());
        }
        let query = query.bind(limit);
        let rows: Vec<SummaryRow> = query
            .fetch_all(&self.pool)
            .await
            .map_err(|e| StoreError::query("listing tasks", e))?;
        rows.into_iter()
            .map(
                |(id, description, task_type, status, platform, created_at, duration, cost)| {
                    let what = format!("task {id}");
                    Ok(TaskSummary {
                        task_type: codec::task_type(&task_type, &what)?,
                        status: codec::status(&status, &what)?,
                        duration_ms: duration.map(|d| codec::from_db_int(d, &what)).transpose()?,
                        cost: cost.map(Money::from_nanos),
                        id: id.into(),
                        description,
                        platform,
                        created_at,
                    })
                },
            )
            .collect()
    }

    async fn events(&self, id: &TaskId) -> Result<Vec<Event>, StoreError> {
        let rows: Vec<(i64, String)> =
            sqlx::query_as("SELECT seq, body::text FROM events WHERE task_id = $1 ORDER BY seq")
                .bind(id.as_str())
                .fetch_all(&self.pool)
                .await
                .map_err(|e| StoreError::query(format!("reading the events of task {id}"), e))?;
        rows.into_iter()
            .map(|(seq, body)| codec::from_json(&body, &format!("event {seq} of task {id}")))
            .collect()
    }

    async fn stages(&self, id: &TaskId) -> Result<Vec<(String, StageResult)>, StoreError> {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT name, body::text FROM stages WHERE task_id = $1 ORDER BY position",
        )
        .bind(id.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(|e| StoreError::query(format!("reading the stages of task {id}"), e))?;
        rows.into_iter()
            .map(|(name, body)| {
                let stage = codec::from_json(&body, &format!("stage {name} of task {id}"))?;
                Ok((name, stage))
            })
            .collect()
    }

    async fn status_history(&self, id: &TaskId) -> Result<Vec<StatusChange>, StoreError> {
        let rows: Vec<(Option<String>, String, Option<String>, DateTime<Utc>)> = sqlx::query_as(
            "SELECT from_status, to_status, reason, at FROM status_changes \
             WHERE task_id = $1 ORDER BY id",
        )
        .bind(id.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(|e| StoreError::query(format!("reading the status history of task {id}"), e))?;
        let what = format!("status history of task {id}");
        rows.into_iter()
            .map(|(from, to, reason, at)| {
                Ok(StatusChange {
                    from: from.map(|f| codec::status(&f, &what)).transpose()?,
                    to: codec::status(&to, &what)?,
                    reason,
                    at,
                })
            })
            .collect()
    }

    async fn metrics(&self) -> Result<MetricsSnapshot, StoreError> {
        let err = |e| StoreError::query("computing metrics", e);
        // One snapshot for all three queries.
        let mut tx = self
            .pool
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await
            .map_err(err)?;
        let status_counts: Vec<(String, i64)> =
            sqlx::query_as("SELECT status, COUNT(*) FROM tasks GROUP BY status")
                .fetch_all(&mut *tx)
                .await
                .map_err(err)?;
        let platform_counts: Vec<(String, i64)> = sqlx::query_as(&format!(
            "SELECT platform, COUNT(*) FROM tasks \
             WHERE status IN ({}) AND platform IS NOT NULL GROUP BY platform",
            codec::terminal_status_sql_list()
        ))
        .fetch_all(&mut *tx)
        .await
        .map_err(err)?;
        #[allow(clippy::type_complexity)]
        let sums: (
            Option<f64>,
            Option<i64>,
            Option<i64>,
            Option<i64>,
            Option<i64>,
            Option<i64>,
            i64,
        ) = sqlx::query_as(
            "SELECT AVG(duration_ms)::DOUBLE PRECISION, SUM(input_tokens)::BIGINT, \
             SUM(output_tokens)::BIGINT, SUM(cache_read_tokens)::BIGINT, \
             SUM(cache_write_tokens)::BIGINT, SUM(cost_nanos)::BIGINT, \
             COUNT(*) - COUNT(cost_nanos) FROM tasks WHERE result IS NOT NULL",
        )
        .fetch_one(&mut *tx)
        .await
        .map_err(err)?;
        let guardrail_triggers: Vec<(String, i64)> = sqlx::query_as(
            "SELECT COALESCE(command, ''), COUNT(*) FROM audit_log \
             WHERE action = 'guardrail' GROUP BY 1",
        )
        .fetch_all(&mut *tx)
        .await
        .map_err(err)?;
        let guardrail_kinds: Vec<(String, i64)> = sqlx::query_as(
            "SELECT COALESCE(COALESCE(detail->>'kind', detail->>'outcome'), 'unknown'), COUNT(*) \
             FROM audit_log WHERE action = 'guardrail' GROUP BY 1",
        )
        .fetch_all(&mut *tx)
        .await
        .map_err(err)?;
        tx.commit().await.map_err(err)?;
        let (avg_duration_ms, input, output, cache_read, cache_write, cost_nanos, unpriced) = sums;
        RawMetrics {
            status_counts,
            platform_counts,
            avg_duration_ms,
            input_tokens: input,
            output_tokens: output,
            cache_read_tokens: cache_read,
            cache_write_tokens: cache_write,
            cost_nanos,
            unpriced,
            guardrail_triggers,
            guardrail_kinds,
        }
        .into_snapshot()
    }

    async fn append_audit(&self, entry: &AuditEntry) -> Result<AuditRecord, StoreError> {
        const CONTEXT: &str = "appending an audit record";
        let entry = Redactor::default().redact_entry(entry.clone());
        let err = |e| StoreError::query(CONTEXT, e);

        // Fast path, no lock: read the head, insert head + 1. The primary key
        // on `seq` lets only one appender per position win; an insert racing
        // an uncommitted one waits for it and then fails.
        let mut conn = self.pool.acquire().await.map_err(err)?;
        let (raw, now) = seal_after_head(&mut conn, &entry).await?;
        match insert_audit(&mut conn, &raw, now).await {
            Ok(()) => return raw.into_record(),
            Err(e) if is_unique_violation(&e) => {
                tracing::debug!(
                    seq = raw.seq,
                    "audit append lost a race; retrying under the lock"
                );
            }
            Err(e) => {
                return Err(StoreError::query(
                    format!("appending audit record {}", raw.seq),
                    e,
                ));
            }
        }

        // Slow path: hold a lock that every other writer of the table waits
        // for (self-conflicting, and conflicting with plain INSERTs), so the
        // head cannot move between the read and the insert. Plain reads do
        // not wait.
        let mut tx = conn.begin().await.map_err(err)?;
        sqlx::query("LOCK TABLE audit_log IN SHARE ROW EXCLUSIVE MODE")
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        let (raw, now) = seal_after_head(&mut tx, &entry).await?;
        let what = format!("appending audit record {}", raw.seq);
        insert_audit(&mut tx, &raw, now)
            .await
            .map_err(|e| StoreError::query(&what, e))?;
        tx.commit().await.map_err(|e| StoreError::query(&what, e))?;
        raw.into_record()
    }

    async fn audit_records(&self, filter: &AuditFilter) -> Result<Vec<AuditRecord>, StoreError> {
        let mut query = QueryBuilder::<Postgres>::new(AUDIT_COLUMNS);
        query.push(" WHERE TRUE");
        if let Some(task) = &filter.task_id {
            query.push(" AND task_id = ").push_bind(task.as_str());
        }
        if let Some(after) = filter.after_seq {
            query.push(" AND seq > ").push_bind(codec::db_int(after));
        }
        query.push(" ORDER BY seq");
        if let Some(limit) = filter.limit {
            query.push(" LIMIT ").push_bind(i64::from(limit));
        }
        let rows: Vec<AuditRow> = query
            .build_query_as()
            .fetch_all(&self.pool)
            .await
            .map_err(|e| StoreError::query("reading audit records", e))?;
        rows.into_iter()
            .map(|row| raw_audit(row).into_record())
            .collect()
    }

    async fn verify_audit(&self) -> Result<AuditVerification, StoreError> {
        let sql = format!("{AUDIT_COLUMNS} WHERE seq > $1 ORDER BY seq LIMIT $2");
        let mut verifier = ChainVerifier::default();
        let mut after = i64::MIN;
        loop {
            let rows: Vec<AuditRow> = sqlx::query_as(&sql)
                .bind(after)
                .bind(i64::from(VERIFY_PAGE))
                .fetch_all(&self.pool)
                .await
                .map_err(|e| StoreError::query("verifying the audit trail", e))?;
            let full = rows.len() >= VERIFY_PAGE as usize;
            for row in rows {
                let raw = raw_audit(row);
                after = raw.seq;
                verifier.push(&raw);
            }
            if !full {
                return Ok(verifier.finish());
            }
        }
    }

    async fn create_approval(&self, new: &NewApproval) -> Result<Approval, StoreError> {
        let task = &new.task_id;
        let context = format!("storing an approval request for task {task}");
        for _ in 0..ID_ATTEMPTS {
            let stored = approval::pending(new, approval::new_id(), Utc::now());
            let inserted = sqlx::query(
                "INSERT INTO approvals (id, task_id, call_id, agent, tool, command, rule, reason, \
                 status, requested_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            )
            .bind(&stored.id)
            .bind(task.as_str())
            .bind(&stored.call_id)
            .bind(&stored.agent)
            .bind(&stored.tool)
            .bind(&stored.command)
            .bind(&stored.rule)
            .bind(&stored.reason)
            .bind(stored.status.as_str())
            .bind(stored.requested_at)
            .bind(stored.expires_at)
            .execute(&self.pool)
            .await;
            match inserted {
                Ok(_) => return Ok(stored),
                Err(e) if is_unique_violation(&e) => {
                    tracing::debug!(id = %stored.id, "approval id taken; drawing another");
                }
                Err(e) if is_foreign_key_violation(&e) => {
                    return Err(StoreError::NotFound(task.clone()));
                }
                Err(e) => return Err(StoreError::query(&context, e)),
            }
        }
        Err(StoreError::AlreadyExists(format!(
            "every approval id drawn ({ID_ATTEMPTS} attempts)"
        )))
    }

    async fn get_approval(&self, id: &str) -> Result<Option<Approval>, StoreError> {
        let id = approval::normalize_id(id);
        let sql = format!("SELECT {} FROM approvals WHERE id = $1", approval::COLUMNS);
        let row: Option<ApprovalParts> = sqlx::query_as(&sql)
            .bind(&id)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| StoreError::query(format!("reading approval {id}"), e))?;
        row.map(approval::from_parts).transpose()
    }

    async fn list_approvals(&self, filter: &ApprovalFilter) -> Result<Vec<Approval>, StoreError> {
        let mut query = QueryBuilder::<Postgres>::new(format!(
            "SELECT {} FROM approvals WHERE TRUE",
            approval::COLUMNS
        ));
        if let Some(status) = filter.status {
            query.push(" AND status = ").push_bind(status.as_str());
        }
        if let Some(task) = &filter.task_id {
            query.push(" AND task_id = ").push_bind(task.as_str());
        }
        query.push(if filter.oldest_first() {
            " ORDER BY requested_at, id"
        } else {
            " ORDER BY requested_at DESC, id DESC"
        });
        query
            .push(" LIMIT ")
            .push_bind(i64::from(filter.effective_limit()));
        let rows: Vec<ApprovalParts> = query
            .build_query_as()
            .fetch_all(&self.pool)
            .await
            .map_err(|e| StoreError::query("listing approvals", e))?;
        rows.into_iter().map(approval::from_parts).collect()
    }

    async fn decide_approval(
        &self,
        id: &str,
        approve: bool,
        by: &str,
        note: Option<&str>,
    ) -> Result<Approval, StoreError> {
        let status = if approve {
            ApprovalStatus::Approved
        } else {
            ApprovalStatus::Rejected
        };
        self.answer_approval(id, status, by, note).await
    }

    async fn expire_approval(&self, id: &str, note: &str) -> Result<Approval, StoreError> {
        self.answer_approval(
            id,
            ApprovalStatus::Expired,
            approval::TIMEOUT_DECIDER,
            Some(note),
        )
        .await
    }

    async fn reserve_budget(&self, charge: &BudgetCharge) -> Result<ChargeOutcome, StoreError> {
        let context = format!("reserving budget for task {}", charge.task_id);
        let plan = budget::charge_plan(charge)?;
        let keys: Vec<String> = plan.keys().cloned().collect();
        let mut tx = self.begin(&context).await?;
        let now = micros(Utc::now());
        // Missing rows first (in key order), so that every scope has a row
        // to lock; then lock them all, in key order.
        for key in &keys {
            sqlx::query(
                "INSERT INTO budgets (scope, spent_nanos, updated_at) VALUES ($1, 0, $2) \
                 ON CONFLICT (scope) DO NOTHING",
            )
            .bind(key)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(|e| StoreError::query(&context, e))?;
        }
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT scope, spent_nanos FROM budgets WHERE scope = ANY($1) ORDER BY scope FOR UPDATE",
        )
        .bind(&keys)
        .fetch_all(&mut *tx)
        .await
        .map_err(|e| StoreError::query(&context, e))?;
        let spent: BTreeMap<String, i64> = rows.into_iter().collect();
        let outcome = budget::decide(&plan, &spent, charge.amount);
        if !outcome.is_charged() {
            // Rolled back on drop: the rows inserted above go too.
            return Ok(outcome);
        }
        for key in &keys {
            add_to_budget(
                &mut tx,
                key,
                charge.amount.nanos(),
                LedgerKind::Reserve,
                &charge.task_id,
                &charge.note,
                now,
                &context,
            )
            .await?;
        }
        tx.commit()
            .await
            .map_err(|e| StoreError::query(&context, e))?;
        Ok(outcome)
    }

    async fn settle_budget(
        &self,
        scopes: &[BudgetScope],
        reserved: Money,
        actual: Money,
        task_id: &TaskId,
        note: &str,
    ) -> Result<(), StoreError> {
        let context = format!("settling budget for task {task_id}");
        let delta = actual.nanos().saturating_sub(reserved.nanos());
        let mut tx = self.begin(&context).await?;
        let now = micros(Utc::now());
        for key in budget::settle_keys(scopes) {
            add_to_budget(
                &mut tx,
                &key,
                delta,
                LedgerKind::Settle,
                task_id,
                note,
                now,
                &context,
            )
            .await?;
        }
        tx.commit()
            .await
            .map_err(|e| StoreError::query(&context, e))
    }

    async fn budget_spent(&self, scope: &BudgetScope) -> Result<Money, StoreError> {
        let key = scope.key();
        let row: Option<(i64,)> =
            sqlx::query_as("SELECT spent_nanos FROM budgets WHERE scope = $1")
                .bind(&key)
                .fetch_optional(&self.pool)
                .await
                .map_err(|e| StoreError::query(format!("reading budget {key}"), e))?;
        Ok(Money::from_nanos(row.map_or(0, |(n,)| n)))
    }

    async fn budget_ledger(&self, task: Option<&TaskId>) -> Result<Vec<LedgerEntry>, StoreError> {
        let mut query = QueryBuilder::<Postgres>::new(
            "SELECT id, task_id, scope, kind, delta_nanos, note, at FROM budget_ledger WHERE 1 = 1",
        );
        if let Some(task) = task {
            query
                .push(" AND task_id = ")
                .push_bind(task.as_str().to_owned());
        }
        query.push(" ORDER BY id");
        let rows: Vec<LedgerRow> = query
            .build_query_as()
            .fetch_all(&self.pool)
            .await
            .map_err(|e| StoreError::query("reading the budget ledger", e))?;
        rows.into_iter()
            .map(|(id, task_id, scope, kind, delta, note, at)| {
                Ok(LedgerEntry {
                    id,
                    task_id: TaskId::from(task_id),
                    scope: BudgetScope::parse(&scope)?,
                    kind: LedgerKind::parse(&kind)?,
                    delta: Money::from_nanos(delta),
                    note,
                    at,
                })
            })
            .collect()
    }

    async fn journal_begin(&self, task: &TaskId, key: &str) -> Result<JournalBegin, StoreError> {
        let context = format!("beginning {}", journal::journal_what(task, key));
        let mut tx = self.begin(&context).await?;
        // An insert racing another writer's uncommitted insert of the same
        // key waits for it, then does nothing; the read after it (a new
        // snapshot under READ COMMITTED) sees the winner's row.
        let inserted = sqlx::query(
            "INSERT INTO journal (task_id, key, state, started_at) VALUES ($1, $2, 'started', $3) \
             ON CONFLICT (task_id, key) DO NOTHING",
        )
        .bind(task.as_str())
        .bind(key)
        .bind(micros(Utc::now()))
        .execute(&mut *tx)
        .await
        .map_err(|e| {
            if is_foreign_key_violation(&e) {
                StoreError::NotFound(task.clone())
            } else {
                StoreError::query(&context, e)
            }
        })?;
        let outcome = if inserted.rows_affected() == 1 {
            JournalBegin::Started
        } else {
            let row: Option<(String, Option<String>, DateTime<Utc>)> = sqlx::query_as(
                "SELECT state, output::text, started_at FROM journal \
                 WHERE task_id = $1 AND key = $2",
            )
            .bind(task.as_str())
            .bind(key)
            .fetch_optional(&mut *tx)
            .await
            .map_err(|e| StoreError::query(&context, e))?;
            // Gone again: deleted with its task since the insert.
            let Some((state, output, started_at)) = row else {
                return Err(StoreError::NotFound(task.clone()));
            };
            journal::begin_outcome(task, key, &state, output, started_at)?
        };
        tx.commit()
            .await
            .map_err(|e| StoreError::query(&context, e))?;
        Ok(outcome)
    }

    async fn journal_finish(
        &self,
        task: &TaskId,
        key: &str,
        output: &serde_json::Value,
    ) -> Result<(), StoreError> {
        let what = journal::journal_what(task, key);
        let context = format!("finishing {what}");
        let json = codec::to_json(output, &format!("output of {what}"))?;
        for _ in 0..journal::FINISH_ATTEMPTS {
            let updated = sqlx::query(
                "UPDATE journal SET state = 'finished', output = $1::json, finished_at = $2 \
                 WHERE task_id = $3 AND key = $4 AND state = 'started'",
            )
            .bind(&json)
            .bind(micros(Utc::now()))
            .bind(task.as_str())
            .bind(key)
            .execute(&self.pool)
            .await
            .map_err(|e| StoreError::query(&context, e))?;
            if updated.rows_affected() == 1 {
                return Ok(());
            }
            let row: Option<(String,)> =
                sqlx::query_as("SELECT state FROM journal WHERE task_id = $1 AND key = $2")
                    .bind(task.as_str())
                    .bind(key)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(|e| StoreError::query(&context, e))?;
            // `started` now: begun by another writer after the update; again.
            if let Some(error) =
                journal::finish_error(task, key, row.as_ref().map(|(s,)| s.as_str()))?
            {
                return Err(error);
            }
        }
        Err(journal::finish_gave_up(task, key))
    }

    async fn journal(&self, task: &TaskId) -> Result<Vec<JournalEntry>, StoreError> {
        let rows: Vec<JournalRow> = sqlx::query_as(
            "SELECT key, state, output::text, started_at, finished_at FROM journal \
             WHERE task_id = $1 ORDER BY seq",
        )
        .bind(task.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(|e| StoreError::query(format!("reading the journal of task {task}"), e))?;
        rows.into_iter()
            .map(|(key, state, output, started_at, finished_at)| {
                let what = journal::journal_what(task, &key);
                Ok(JournalEntry {
                    task_id: task.clone(),
                    state: JournalState::parse(&state, &what)?,
                    output: journal::decode_output(output, &what)?,
                    started_at,
                    finished_at,
                    key,
                })
            })
            .collect()
    }

    async fn claim_task(
        &self,
        task: &TaskId,
        owner: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let ttl = journal::ttl_micros(task, ttl)?;
        // The database's clock, for every worker alike.
        let done = sqlx::query(
            "UPDATE tasks SET lease_owner = $1, \
             lease_until = now() + $2 * INTERVAL '1 microsecond' \
             WHERE id = $3 AND (lease_owner IS NULL OR lease_owner = $1 \
             OR lease_until IS NULL OR lease_until <= now())",
        )
        .bind(owner)
        .bind(ttl)
        .bind(task.as_str())
        .execute(&self.pool)
        .await
        .map_err(|e| StoreError::query(format!("claiming task {task} for {owner}"), e))?;
        self.lease_changed(task, done.rows_affected()).await
    }

    async fn renew_lease(
        &self,
        task: &TaskId,
        owner: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let ttl = journal::ttl_micros(task, ttl)?;
        let done = sqlx::query(
            "UPDATE tasks \
             SET lease_until = now() + $1 * INTERVAL '1 microsecond' \
             WHERE id = $2 AND lease_owner = $3",
        )
        .bind(ttl)
        .bind(task.as_str())
        .bind(owner)
        .execute(&self.pool)
        .await
        .map_err(|e| {
            StoreError::query(format!("renewing the lease of task {task} for {owner}"), e)
        })?;
        self.lease_changed(task, done.rows_affected()).await
    }

    async fn release_task(&self, task: &TaskId, owner: &str) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE tasks SET lease_owner = NULL, lease_until = NULL \
             WHERE id = $1 AND lease_owner = $2",
        )
        .bind(task.as_str())
        .bind(owner)
        .execute(&self.pool)
        .await
        .map_err(|e| StoreError::query(format!("releasing task {task} for {owner}"), e))?;
        self.lease_changed(task, done.rows_affected()).await?;
        Ok(())
    }
}

/// A `budget_ledger` row as read.
type LedgerRow = (i64, String, String, String, i64, String, DateTime<Utc>);

/// Adds `delta` to a budget row (creating it) and writes the ledger row.
#[allow(clippy::too_many_arguments)]
async fn add_to_budget(
    conn: &mut PgConnection,
    key: &str,
    delta: i64,
    kind: LedgerKind,
    task_id: &TaskId,
    note: &str,
    at: DateTime<Utc>,
    context: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO budgets (scope, spent_nanos, updated_at) VALUES ($1, $2, $3) \
         ON CONFLICT (scope) DO UPDATE SET spent_nanos = budgets.spent_nanos + EXCLUDED.spent_nanos, \
         updated_at = EXCLUDED.updated_at",
    )
    .bind(key)
    .bind(delta)
    .bind(at)
    .execute(&mut *conn)
    .await
    .map_err(|e| StoreError::query(context, e))?;
    sqlx::query(
        "INSERT INTO budget_ledger (task_id, scope, kind, delta_nanos, note, at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(task_id.as_str())
    .bind(key)
    .bind(kind.as_str())
    .bind(delta)
    .bind(note)
    .bind(at)
    .execute(&mut *conn)
    .await
    .map_err(|e| StoreError::query(context, e))?;
    Ok(())
}
