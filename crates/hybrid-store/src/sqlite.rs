//! The SQLite backend: the embedded default (`.hybrid/hybrid.db`).
//!
//! A file database runs in WAL mode (readers never block the writer), foreign
//! keys on. SQLite lets one connection write at a time, and connections that
//! find the write lock taken sleep and re-poll (the busy timeout) in no
//! particular order, so under load one of many pooled writers could wait out
//! any timeout. So every write of this process goes through one dedicated
//! writer connection, handed out first come, first served: writes queue in
//! order instead of polling, and reads use a separate pool of up to
//! 8 connections that WAL lets run while a write is in progress. The 10 s
//! busy timeout now only covers writers in *other* processes. A write waits
//! at most 60 s for its turn at the writer before failing.
//!
//! Every write transaction starts with `BEGIN IMMEDIATE`, so it takes the
//! write lock up front instead of failing when it upgrades from reading to
//! writing (which another process's writer could make it do).
//!
//! `synchronous = NORMAL`: in WAL mode this is SQLite's recommended setting,
//! which never corrupts the database and loses nothing when the process
//! crashes (only a power loss or OS crash can lose the last commits), while
//! sparing an fsync on every commit.
//!
//! `sqlite::memory:` gives a private in-memory database on a single
//! connection (each connection would be a separate database), which then does
//! the reads and the writes.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use hybrid_core::{Event, Money, RouteInfo, StageResult, Task, TaskId, TaskResult, TaskStatus};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use sqlx::{QueryBuilder, Sqlite, Transaction};

use crate::approval::{
    self, Approval, ApprovalFilter, ApprovalParts, ApprovalStatus, ID_ATTEMPTS, NewApproval,
};
use crate::audit::{ChainVerifier, GENESIS_HASH, RawAudit, VERIFY_PAGE};
use crate::budget::{self, BudgetCharge, BudgetScope, ChargeOutcome, LedgerEntry, LedgerKind};
use crate::codec::{
    self, MAX_CAS_ATTEMPTS, RawMetrics, ResultColumns, describe_events, single_task,
};
use crate::error::{is_foreign_key_violation, is_unique_violation};
use crate::journal::{self, JournalBegin, JournalEntry, JournalState};
use crate::{
    AuditEntry, AuditFilter, AuditRecord, AuditVerification, MetricsSnapshot, Redactor,
    StatusChange, Store, StoreError, TaskFilter, TaskRecord, TaskSummary,
};

const BACKEND: &str = "sqlite";
/// How long a write waits for another process's writer to let go.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a write waits for its turn at this process's writer connection.
const WRITE_QUEUE_TIMEOUT: Duration = Duration::from_secs(60);
/// Read connections of a file database.
const MAX_READ_CONNECTIONS: u32 = 8;
/// Bind parameters per event row.
const EVENT_COLUMNS: usize = 5;
/// Event rows per `INSERT`: SQLite allows at most 32,766 bind parameters in
/// one statement (`SQLITE_MAX_VARIABLE_NUMBER`).
const EVENT_ROWS_PER_INSERT: usize = 32_766 / EVENT_COLUMNS;

/// A [`Store`] on a SQLite file or in memory.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    /// Reads; in memory, the one connection that does everything.
    pool: SqlitePool,
    /// Every write: one connection, handed out in FIFO order (sqlx's pool
    /// queues on a fair semaphore). The same pool as `pool` in memory.
    writer: SqlitePool,
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

/// One `events` row, encoded.
struct EventRow<'a> {
    task_id: &'a str,
    seq: i64,
    event_type: &'static str,
    at: String,
    body: String,
}

impl SqliteStore {
    /// Opens (creating the file and its parent directories if needed) and
    /// migrates the database at `url` (`sqlite://path`, `sqlite::memory:`).
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with_busy_timeout(url, BUSY_TIMEOUT).await
    }

    /// [`connect`](Self::connect) with another busy timeout (for tests).
    pub(crate) async fn connect_with_busy_timeout(
        url: &str,
        busy_timeout: Duration,
    ) -> Result<Self, StoreError> {
        let conn_err = |error| StoreError::Connection {
            backend: BACKEND,
            error,
        };
        let options = SqliteConnectOptions::from_str(url)
            .map_err(conn_err)?
            .foreign_keys(true)
            .busy_timeout(busy_timeout);
        let mut migrate_lock = None;
        let (pool, writer) = if is_memory(url) {
            // One connection that never closes: the database lives as long as it.
            let pool = SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
                .acquire_timeout(WRITE_QUEUE_TIMEOUT)
                .connect_with(options)
                .await
                .map_err(conn_err)?;
            (pool.clone(), pool)
        } else {
            if let Some(dir) = options
                .get_filename()
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
            {
                tokio::fs::create_dir_all(dir)
                    .await
                    .map_err(|error| StoreError::CreateDir {
                        path: dir.to_path_buf(),
                        error,
                    })?;
            }
            // Several processes may open a new database at once (a run and an
            // `approvals list` beside it). Switching it to WAL and migrating
            // need it to themselves, and SQLite gives sqlx no lock for that,
            // so openers take turns on a lock file next to the database.
            migrate_lock = Some(lock_file(lock_path(options.get_filename())).await?);
            let options = options
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal);
            // The writer first: it creates the file and switches it to WAL.
            let writer = SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
                .acquire_timeout(WRITE_QUEUE_TIMEOUT)
                .connect_with(options.clone())
                .await
                .map_err(conn_err)?;
            let pool = SqlitePoolOptions::new()
                .max_connections(MAX_READ_CONNECTIONS)
                .connect_with(options)
                .await
                .map_err(conn_err)?;
            (pool, writer)
        };
        sqlx::migrate!("./migrations/sqlite")
            .run(&writer)
            .await
            .map_err(|error| StoreError::Migration {
                backend: BACKEND,
                error,
            })?;
        drop(migrate_lock);
        Ok(SqliteStore { pool, writer })
    }

    /// The connection pool the store reads with, for callers that need SQL
    /// this trait does not offer. With a file database, writes through it do
    /// not queue with the store's own writes: like another process's, they
    /// wait for the write lock up to the busy timeout.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// A write transaction on the writer connection, holding the database
    /// write lock.
    async fn begin_write(&self, context: &str) -> Result<Transaction<'static, Sqlite>, StoreError> {
        self.writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(|e| StoreError::query(context, e))
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
        let row: Option<ApprovalRow> = sqlx::query_as(&sql)
            .bind(status.as_str())
            .bind(by)
            .bind(ts(Utc::now()))
            .bind(note)
            .bind(&id)
            .fetch_optional(&self.writer)
            .await
            .map_err(|e| StoreError::query(format!("answering approval {id}"), e))?;
        if let Some(row) = row {
            return approval_from_row(row);
        }
        match self.get_approval(&id).await? {
            Some(closed) => Err(closed.closed_error()),
            None => Err(StoreError::NotFound(id.into())),
        }
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
            let mut tx = self.begin_write(&context).await?;
            let now = ts(Utc::now());
            let previous = match cas_status(
                &mut tx,
                id,
                to,
                reason,
                result.is_some(),
                &now,
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
                write_result(&mut tx, id, r, &now).await?;
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
        let found: Option<(i64,)> = sqlx::query_as("SELECT 1 FROM tasks WHERE id = $1")
            .bind(task.as_str())
            .fetch_optional(&self.writer)
            .await
            .map_err(|e| StoreError::query(format!("reading the lease of task {task}"), e))?;
        match found {
            Some(_) => Ok(false),
            None => Err(StoreError::NotFound(task.clone())),
        }
    }
}

/// Whether a SQLite URL names an in-memory database.
fn is_memory(url: &str) -> bool {
    url.contains(":memory:") || url.contains("mode=memory")
}

/// A timestamp as stored: RFC 3339, UTC, microseconds, `Z` — fixed width, so
/// text order is time order.
fn ts(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// A stored timestamp.
fn parse_ts(text: &str, what: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| StoreError::decode(what, format!("timestamp `{text}`: {e}")))
}

/// Reads the status and, if the move is legal, updates it only if it is still
/// the status read (compare-and-set) and records the change.
async fn cas_status(
    conn: &mut SqliteConnection,
    id: &TaskId,
    to: TaskStatus,
    reason: Option<&str>,
    allow_same: bool,
    now: &str,
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
    conn: &mut SqliteConnection,
    id: &TaskId,
    r: &ResultColumns,
    now: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE tasks SET result = $1, platform = $2, route = $3, output = $4, \
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

/// Encodes events as rows, before any lock is taken.
fn event_rows(events: &[Event]) -> Result<Vec<EventRow<'_>>, StoreError> {
    events
        .iter()
        .map(|event| {
            let what = format!("event {} of task {}", event.seq, event.task_id);
            Ok(EventRow {
                task_id: event.task_id.as_str(),
                seq: codec::db_int(event.seq),
                event_type: event.kind.name(),
                at: ts(event.at),
                body: codec::to_json(event, &what)?,
            })
        })
        .collect()
}

/// Inserts `rows` (at most [`EVENT_ROWS_PER_INSERT`]) with one multi-row
/// `INSERT`; `events` are the events they encode, for error messages.
async fn insert_event_rows(
    conn: &mut SqliteConnection,
    rows: &[EventRow<'_>],
    events: &[Event],
) -> Result<(), StoreError> {
    let mut insert =
        QueryBuilder::<Sqlite>::new("INSERT INTO events (task_id, seq, event_type, at, body) ");
    insert.push_values(rows, |mut row, e| {
        row.push_bind(e.task_id)
            .push_bind(e.seq)
            .push_bind(e.event_type)
            .push_bind(&e.at)
            .push_bind(&e.body);
    });
    insert.build().execute(&mut *conn).await.map_err(|e| {
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

/// The columns of an `audit_log` row, in [`AuditRow`] order.
const AUDIT_COLUMNS: &str = "SELECT seq, at, task_id, agent, action, command, output, user_name, \
                             approved_by, detail, prev_hash, hash FROM audit_log";

type AuditRow = (
    i64,
    String,
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
        timestamp,
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
        timestamp,
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

/// An `approvals` row, in [`approval::COLUMNS`] order, timestamps as text.
type ApprovalRow = (
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

fn approval_from_row(row: ApprovalRow) -> Result<Approval, StoreError> {
    let (
        id,
        task_id,
        call_id,
        agent,
        tool,
        command,
        rule,
        reason,
        status,
        requested_at,
        expires_at,
        decided_by,
        decided_at,
        note,
    ) = row;
    let what = format!("approval {id}");
    let optional_ts = |t: Option<String>| t.map(|t| parse_ts(&t, &what)).transpose();
    let parts: ApprovalParts = (
        id.clone(),
        task_id,
        call_id,
        agent,
        tool,
        command,
        rule,
        reason,
        status,
        parse_ts(&requested_at, &what)?,
        optional_ts(expires_at)?,
        decided_by,
        optional_ts(decided_at)?,
        note,
    );
    approval::from_parts(parts)
}

type TaskRow = (
    String,
    String,
    Option<String>,
    Option<String>,
    String,
    String,
    Option<String>,
    Option<String>,
);
/// A `journal` row: key, state, output, `started_at`, `finished_at`.
type JournalRow = (String, String, Option<String>, String, Option<String>);
type SummaryRow = (
    String,
    String,
    String,
    String,
    Option<String>,
    String,
    Option<i64>,
    Option<i64>,
);

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    async fn create_task(&self, task: &Task) -> Result<(), StoreError> {
        let id = &task.id;
        let context = format!("creating task {id}");
        let json = codec::to_json(task, &format!("task {id}"))?;
        let now = ts(Utc::now());
        let mut tx = self.begin_write(&context).await?;
        sqlx::query(
            "INSERT INTO tasks (id, description, task_type, priority, status, submitted_by, task, \
             created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(id.as_str())
        .bind(&task.description)
        .bind(task.task_type.as_str())
        .bind(i64::from(task.priority.get()))
        .bind(TaskStatus::Pending.as_str())
        .bind(&task.submitted_by)
        .bind(&json)
        .bind(ts(task.created_at))
        .bind(&now)
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
        .bind(&now)
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
            "UPDATE tasks SET platform = $1, route = $2, updated_at = $3 WHERE id = $4",
        )
        .bind(&route.platform)
        .bind(json)
        .bind(ts(Utc::now()))
        .bind(id.as_str())
        .execute(&self.writer)
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
        let rows = event_rows(events)?;
        let context = || format!("appending {}", describe_events(events));
        match rows.len() {
            0 => Ok(()),
            // One statement is one transaction: all rows or none.
            n if n <= EVENT_ROWS_PER_INSERT => {
                let mut conn = self
                    .writer
                    .acquire()
                    .await
                    .map_err(|e| StoreError::query(context(), e))?;
                insert_event_rows(&mut conn, &rows, events).await
            }
            _ => {
                let mut tx = self.begin_write(&context()).await?;
                for (rows, events) in rows
                    .chunks(EVENT_ROWS_PER_INSERT)
                    .zip(events.chunks(EVENT_ROWS_PER_INSERT))
                {
                    insert_event_rows(&mut tx, rows, events).await?;
                }
                tx.commit()
                    .await
                    .map_err(|e| StoreError::query(context(), e))
            }
        }
    }

    async fn put_stage(
        &self,
        id: &TaskId,
        position: u32,
        name: &str,
        stage: &StageResult,
    ) -> Result<(), StoreError> {
        let what = format!("stage {position} ({name}) of task {id}");
        let body = codec::to_json(stage, &what)?;
        sqlx::query(
            "INSERT INTO stages (task_id, position, name, agent, platform, body, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (task_id, position) DO UPDATE SET name = excluded.name, \
             agent = excluded.agent, platform = excluded.platform, body = excluded.body, \
             updated_at = excluded.updated_at",
        )
        .bind(id.as_str())
        .bind(i64::from(position))
        .bind(name)
        .bind(&stage.agent)
        .bind(&stage.platform)
        .bind(body)
        .bind(ts(Utc::now()))
        .execute(&self.writer)
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
            "SELECT task, status, route, result, created_at, updated_at, lease_owner, lease_until \
             FROM tasks WHERE id = $1",
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
            created_at: parse_ts(&created_at, &what)?,
            updated_at: parse_ts(&updated_at, &what)?,
            lease_owner,
            lease_until: lease_until.map(|t| parse_ts(&t, &what)).transpose()?,
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
                        created_at: parse_ts(&created_at, &what)?,
                        duration_ms: duration.map(|d| codec::from_db_int(d, &what)).transpose()?,
                        cost: cost.map(hybrid_core::Money::from_nanos),
                        id: id.into(),
                        description,
                        platform,
                    })
                },
            )
            .collect()
    }

    async fn events(&self, id: &TaskId) -> Result<Vec<Event>, StoreError> {
        let rows: Vec<(i64, String)> =
            sqlx::query_as("SELECT seq, body FROM events WHERE task_id = $1 ORDER BY seq")
                .bind(id.as_str())
                .fetch_all(&self.pool)
                .await
                .map_err(|e| StoreError::query(format!("reading the events of task {id}"), e))?;
        rows.into_iter()
            .map(|(seq, body)| codec::from_json(&body, &format!("event {seq} of task {id}")))
            .collect()
    }

    async fn stages(&self, id: &TaskId) -> Result<Vec<(String, StageResult)>, StoreError> {
        let rows: Vec<(String, String)> =
            sqlx::query_as("SELECT name, body FROM stages WHERE task_id = $1 ORDER BY position")
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
        let rows: Vec<(Option<String>, String, Option<String>, String)> = sqlx::query_as(
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
                    at: parse_ts(&at, &what)?,
                })
            })
            .collect()
    }

    async fn metrics(&self) -> Result<MetricsSnapshot, StoreError> {
        let err = |e| StoreError::query("computing metrics", e);
        // One read transaction: all three queries see the same snapshot.
        let mut tx = self.pool.begin().await.map_err(err)?;
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
            "SELECT AVG(duration_ms), SUM(input_tokens), SUM(output_tokens), \
             SUM(cache_read_tokens), SUM(cache_write_tokens), SUM(cost_nanos), \
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
            "SELECT COALESCE(COALESCE(json_extract(detail, '$.kind'), json_extract(detail, '$.outcome')), 'unknown'), COUNT(*) \
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
        let mut tx = self.begin_write(CONTEXT).await?;
        let head: Option<(i64, String)> =
            sqlx::query_as("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
                .fetch_optional(&mut *tx)
                .await
                .map_err(|e| StoreError::query(CONTEXT, e))?;
        let (seq, prev_hash) = match head {
            Some((seq, hash)) => (seq.saturating_add(1), hash),
            None => (1, GENESIS_HASH.to_owned()),
        };
        let raw = RawAudit::seal(&entry, seq, codec::micros(Utc::now()), prev_hash)?;
        sqlx::query(
            "INSERT INTO audit_log (seq, at, task_id, agent, action, command, output, user_name, \
             approved_by, detail, prev_hash, hash) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(raw.seq)
        .bind(&raw.timestamp)
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
        .execute(&mut *tx)
        .await
        .map_err(|e| StoreError::query(format!("appending audit record {seq}"), e))?;
        tx.commit()
            .await
            .map_err(|e| StoreError::query(format!("appending audit record {seq}"), e))?;
        raw.into_record()
    }

    async fn audit_records(&self, filter: &AuditFilter) -> Result<Vec<AuditRecord>, StoreError> {
        let mut query = QueryBuilder::<Sqlite>::new(AUDIT_COLUMNS);
        query.push(" WHERE 1 = 1");
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
            .bind(ts(stored.requested_at))
            .bind(stored.expires_at.map(ts))
            .execute(&self.writer)
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
        let row: Option<ApprovalRow> = sqlx::query_as(&sql)
            .bind(&id)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| StoreError::query(format!("reading approval {id}"), e))?;
        row.map(approval_from_row).transpose()
    }

    async fn list_approvals(&self, filter: &ApprovalFilter) -> Result<Vec<Approval>, StoreError> {
        let mut query = QueryBuilder::<Sqlite>::new(format!(
            "SELECT {} FROM approvals WHERE 1 = 1",
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
        let rows: Vec<ApprovalRow> = query
            .build_query_as()
            .fetch_all(&self.pool)
            .await
            .map_err(|e| StoreError::query("listing approvals", e))?;
        rows.into_iter().map(approval_from_row).collect()
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
        let mut tx = self.begin_write(&context).await?;
        let mut spent = BTreeMap::new();
        for key in plan.keys() {
            let row: Option<(i64,)> =
                sqlx::query_as("SELECT spent_nanos FROM budgets WHERE scope = $1")
                    .bind(key)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(|e| StoreError::query(&context, e))?;
            if let Some((nanos,)) = row {
                spent.insert(key.clone(), nanos);
            }
        }
        let outcome = budget::decide(&plan, &spent, charge.amount);
        if !outcome.is_charged() {
            // Dropping the transaction rolls it back: nothing changed.
            return Ok(outcome);
        }
        let at = ts(Utc::now());
        for key in plan.keys() {
            add_to_budget(
                &mut tx,
                key,
                charge.amount.nanos(),
                LedgerKind::Reserve,
                &charge.task_id,
                &charge.note,
                &at,
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
        let mut tx = self.begin_write(&context).await?;
        let at = ts(Utc::now());
        for key in budget::settle_keys(scopes) {
            add_to_budget(
                &mut tx,
                &key,
                delta,
                LedgerKind::Settle,
                task_id,
                note,
                &at,
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
        let mut query = QueryBuilder::<Sqlite>::new(
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
                    at: parse_ts(&at, "budget ledger row")?,
                })
            })
            .collect()
    }

    async fn journal_begin(&self, task: &TaskId, key: &str) -> Result<JournalBegin, StoreError> {
        let context = format!("beginning {}", journal::journal_what(task, key));
        let mut tx = self.begin_write(&context).await?;
        // `seq`: the task's next begin position. The write lock is held, so
        // no other writer can compute the same one.
        let inserted = sqlx::query(
            "INSERT INTO journal (task_id, key, seq, state, started_at) \
             SELECT $1, $2, COALESCE(MAX(seq), 0) + 1, 'started', $3 FROM journal \
             WHERE task_id = $1 \
             ON CONFLICT (task_id, key) DO NOTHING",
        )
        .bind(task.as_str())
        .bind(key)
        .bind(ts(Utc::now()))
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
            let row: Option<(String, Option<String>, String)> = sqlx::query_as(
                "SELECT state, output, started_at FROM journal WHERE task_id = $1 AND key = $2",
            )
            .bind(task.as_str())
            .bind(key)
            .fetch_optional(&mut *tx)
            .await
            .map_err(|e| StoreError::query(&context, e))?;
            let Some((state, output, started_at)) = row else {
                return Err(StoreError::decode(
                    journal::journal_what(task, key),
                    "neither inserted nor found",
                ));
            };
            let started_at = parse_ts(&started_at, &journal::journal_what(task, key))?;
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
        // Update and read back under the write lock: the row cannot change
        // in between, so one attempt settles it.
        let mut tx = self.begin_write(&context).await?;
        let updated = sqlx::query(
            "UPDATE journal SET state = 'finished', output = $1, finished_at = $2 \
             WHERE task_id = $3 AND key = $4 AND state = 'started'",
        )
        .bind(&json)
        .bind(ts(Utc::now()))
        .bind(task.as_str())
        .bind(key)
        .execute(&mut *tx)
        .await
        .map_err(|e| StoreError::query(&context, e))?;
        if updated.rows_affected() == 1 {
            return tx
                .commit()
                .await
                .map_err(|e| StoreError::query(&context, e));
        }
        let row: Option<(String,)> =
            sqlx::query_as("SELECT state FROM journal WHERE task_id = $1 AND key = $2")
                .bind(task.as_str())
                .bind(key)
                .fetch_optional(&mut *tx)
                .await
                .map_err(|e| StoreError::query(&context, e))?;
        Err(
            journal::finish_error(task, key, row.as_ref().map(|(s,)| s.as_str()))?
                .unwrap_or_else(|| journal::finish_gave_up(task, key)),
        )
    }

    async fn journal(&self, task: &TaskId) -> Result<Vec<JournalEntry>, StoreError> {
        let rows: Vec<JournalRow> = sqlx::query_as(
            "SELECT key, state, output, started_at, finished_at FROM journal \
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
                    started_at: parse_ts(&started_at, &what)?,
                    finished_at: finished_at.map(|t| parse_ts(&t, &what)).transpose()?,
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
        let now = Utc::now();
        let until = journal::lease_until(task, now, ttl)?;
        let done = sqlx::query(
            "UPDATE tasks SET lease_owner = $1, lease_until = $2 \
             WHERE id = $3 AND (lease_owner IS NULL OR lease_owner = $1 \
             OR lease_until IS NULL OR lease_until <= $4)",
        )
        .bind(owner)
        .bind(ts(until))
        .bind(task.as_str())
        .bind(ts(now))
        .execute(&self.writer)
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
        let until = journal::lease_until(task, Utc::now(), ttl)?;
        let done =
            sqlx::query("UPDATE tasks SET lease_until = $1 WHERE id = $2 AND lease_owner = $3")
                .bind(ts(until))
                .bind(task.as_str())
                .bind(owner)
                .execute(&self.writer)
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
        .execute(&self.writer)
        .await
        .map_err(|e| StoreError::query(format!("releasing task {task} for {owner}"), e))?;
        self.lease_changed(task, done.rows_affected()).await?;
        Ok(())
    }
}

/// A `budget_ledger` row as read.
type LedgerRow = (i64, String, String, String, i64, String, String);

/// Adds `delta` to a budget row (creating it) and writes the ledger row.
#[allow(clippy::too_many_arguments)]
async fn add_to_budget(
    conn: &mut SqliteConnection,
    key: &str,
    delta: i64,
    kind: LedgerKind,
    task_id: &TaskId,
    note: &str,
    at: &str,
    context: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO budgets (scope, spent_nanos, updated_at) VALUES ($1, $2, $3) \
         ON CONFLICT (scope) DO UPDATE SET spent_nanos = budgets.spent_nanos + excluded.spent_nanos, \
         updated_at = excluded.updated_at",
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

/// The file locked while migrating `db`: `db` with `-migrate.lock` appended.
fn lock_path(db: &std::path::Path) -> std::path::PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push("-migrate.lock");
    std::path::PathBuf::from(name)
}

/// Takes an exclusive lock on `path` (created if missing), waiting off the runtime's threads.
async fn lock_file(path: std::path::PathBuf) -> Result<std::fs::File, StoreError> {
    let lock_display = path.clone();
    tokio::task::spawn_blocking(move || {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)?;
        rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)?;
        Ok::<_, std::io::Error>(file)
    })
    .await
    .map_err(|e| std::io::Error::other(e.to_string()))
    .and_then(|r| r)
    .map_err(|error| StoreError::Lock {
        path: lock_display,
        error,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use hybrid_core::{EventKind, Stages, TaskStatus::*, Usage};

    use super::*;

    /// Far shorter than a burst of writers keeps the write lock busy: when
    /// pooled connections polled for the lock, some ran out of it and failed
    /// with `database is locked`; queued at the one writer, none do.
    const SHORT_BUSY_TIMEOUT: Duration = Duration::from_millis(20);

    async fn file_store(dir: &tempfile::TempDir, busy_timeout: Duration) -> SqliteStore {
        let url = format!("sqlite://{}", dir.path().join("store.db").display());
        SqliteStore::connect_with_busy_timeout(&url, busy_timeout)
            .await
            .unwrap()
    }

    fn route() -> RouteInfo {
        RouteInfo {
            platform: "openai".into(),
            rule: "default".into(),
            reason: "test".into(),
        }
    }

    fn warning(id: &TaskId, seq: u64) -> Event {
        Event {
            task_id: id.clone(),
            seq,
            at: Utc::now(),
            kind: EventKind::Warning {
                message: format!("event {seq}"),
            },
        }
    }

    fn stage() -> StageResult {
        StageResult {
            agent: "executor".into(),
            platform: "openai".into(),
            model: Some("m".into()),
            output: "done".into(),
            usage: Usage::default(),
            cost_usd: None,
            tools_used: Vec::new(),
            tool_calls: Vec::new(),
            verdict: None,
            detail: None,
            finish_reason: None,
            duration_ms: 1,
        }
    }

    /// What a platform run writes, with a few reads in between: 9 writes.
    async fn run_task(store: &SqliteStore, n: usize) -> Result<(), StoreError> {
        let task = Task::new(format!("task {n}"));
        let id = &task.id;
        store.create_task(&task).await?;
        store.append_event(&warning(id, 0)).await?;
        store.transition(id, Routing, Some("routing")).await?;
        store.set_route(id, &route()).await?;
        store.transition(id, InProgress, None).await?;
        store
            .append_events(&(1..5).map(|s| warning(id, s)).collect::<Vec<_>>())
            .await?;
        store.put_stage(id, 0, "answer", &stage()).await?;
        store.get_task(id).await?;
        store
            .append_events(&(5..9).map(|s| warning(id, s)).collect::<Vec<_>>())
            .await?;
        store.events(id).await?;
        store
            .finish(&TaskResult {
                task_id: id.clone(),
                status: Completed,
                platform: "openai".into(),
                route: route(),
                stages: Stages::new(),
                output: "done".into(),
                usage: Usage::default(),
                cost_usd: None,
                duration_ms: 1,
                error: None,
            })
            .await
    }

    /// Runs `tasks` concurrent [`run_task`]s and checks they all succeeded.
    async fn run_concurrently(store: SqliteStore, tasks: usize) {
        let store = Arc::new(store);
        let handles: Vec<_> = (0..tasks)
            .map(|n| {
                let store = store.clone();
                tokio::spawn(async move { run_task(&store, n).await })
            })
            .collect();
        let mut failures = Vec::new();
        for handle in handles {
            if let Err(e) = handle.await.unwrap() {
                failures.push(e.to_string());
            }
        }
        assert!(
            failures.is_empty(),
            "{} of {tasks} runs failed, the first: {}",
            failures.len(),
            failures[0]
        );
        let metrics = store.metrics().await.unwrap();
        assert_eq!(
            metrics.status_counts.get("completed"),
            Some(&(tasks as u64))
        );
        let (events,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM events")
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(events, 9 * tasks as i64);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writers_queue_instead_of_timing_out() {
        let dir = tempfile::tempdir().unwrap();
        run_concurrently(file_store(&dir, SHORT_BUSY_TIMEOUT).await, 200).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_tasks_in_memory() {
        let store = SqliteStore::connect("sqlite::memory:").await.unwrap();
        run_concurrently(store, 50).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reads_do_not_wait_for_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let store = file_store(&dir, BUSY_TIMEOUT).await;
        let task = Task::new("read me");
        let id = &task.id;
        store.create_task(&task).await.unwrap();
        store.append_event(&warning(id, 0)).await.unwrap();
        store.put_stage(id, 0, "answer", &stage()).await.unwrap();

        // The writer busy, as if in a long write: every read still answers.
        let held = store.writer.acquire().await.unwrap();
        let reads = async {
            assert!(store.get_task(id).await.unwrap().is_some());
            assert_eq!(
                store
                    .list_tasks(&TaskFilter::default())
                    .await
                    .unwrap()
                    .len(),
                1
            );
            assert_eq!(store.events(id).await.unwrap().len(), 1);
            assert_eq!(store.stages(id).await.unwrap().len(), 1);
            assert_eq!(store.status_history(id).await.unwrap().len(), 1);
            assert_eq!(store.metrics().await.unwrap().tasks_in_flight, 1);
        };
        tokio::time::timeout(Duration::from_secs(5), reads)
            .await
            .expect("a read waited for the writer connection");
        // …while every write waits its turn.
        let short = Duration::from_millis(200);
        assert!(
            tokio::time::timeout(short, store.set_route(id, &route()))
                .await
                .is_err()
        );
        assert!(
            tokio::time::timeout(short, store.transition(id, Routing, None))
                .await
                .is_err()
        );
        assert!(
            tokio::time::timeout(short, store.append_event(&warning(id, 1)))
                .await
                .is_err()
        );
        drop(held);
        store.transition(id, Routing, None).await.unwrap();
        store.set_route(id, &route()).await.unwrap();
    }

    #[tokio::test]
    async fn writer_and_readers_use_wal_normal_sync_and_the_busy_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let store =
            SqliteStore::connect(&format!("sqlite://{}", dir.path().join("p.db").display()))
                .await
                .unwrap();
        for pool in [&store.writer, &store.pool] {
            let (mode,): (String,) = sqlx::query_as("PRAGMA journal_mode")
                .fetch_one(pool)
                .await
                .unwrap();
            assert_eq!(mode, "wal");
            // 1 = NORMAL.
            let (sync,): (i64,) = sqlx::query_as("PRAGMA synchronous")
                .fetch_one(pool)
                .await
                .unwrap();
            assert_eq!(sync, 1);
            let (timeout,): (i64,) = sqlx::query_as("PRAGMA busy_timeout")
                .fetch_one(pool)
                .await
                .unwrap();
            assert_eq!(timeout, 10_000);
        }
    }
}
