//! The SQLite backend: the embedded default (`.hybrid/hybrid.db`).
//!
//! A file database runs in WAL mode (readers never block the writer) with
//! `synchronous = FULL`, foreign keys on and a 5 s busy timeout. Every write
//! transaction starts with `BEGIN IMMEDIATE`, so it takes the write lock up
//! front and waits for other writers (in this or another process) instead of
//! failing when it upgrades from reading to writing. `sqlite::memory:` gives
//! a private in-memory database on a single connection.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use hybrid_core::{Event, RouteInfo, StageResult, Task, TaskId, TaskResult, TaskStatus};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use sqlx::{Sqlite, Transaction};

use crate::codec::{self, MAX_CAS_ATTEMPTS, RawMetrics, ResultColumns};
use crate::error::{is_foreign_key_violation, is_unique_violation};
use crate::{
    MetricsSnapshot, StatusChange, Store, StoreError, TaskFilter, TaskRecord, TaskSummary,
};

const BACKEND: &str = "sqlite";
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_CONNECTIONS: u32 = 8;

/// A [`Store`] on a SQLite file or in memory.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
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

impl SqliteStore {
    /// Opens (creating the file and its parent directories if needed) and
    /// migrates the database at `url` (`sqlite://path`, `sqlite::memory:`).
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let conn_err = |error| StoreError::Connection {
            backend: BACKEND,
            error,
        };
        let options = SqliteConnectOptions::from_str(url)
            .map_err(conn_err)?
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        let pool = if is_memory(url) {
            // One connection that never closes: the database lives as long as it.
            SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
                .connect_with(options)
                .await
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
            let options = options
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Full);
            SqlitePoolOptions::new()
                .max_connections(MAX_CONNECTIONS)
                .connect_with(options)
                .await
        }
        .map_err(conn_err)?;
        sqlx::migrate!("./migrations/sqlite")
            .run(&pool)
            .await
            .map_err(|error| StoreError::Migration {
                backend: BACKEND,
                error,
            })?;
        Ok(SqliteStore { pool })
    }

    /// The connection pool, for callers that need SQL this trait does not offer.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// A write transaction holding the database write lock.
    async fn begin_write(&self, context: &str) -> Result<Transaction<'static, Sqlite>, StoreError> {
        self.pool
            .begin_with("BEGIN IMMEDIATE")
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

/// Inserts one event row.
async fn insert_event(conn: &mut SqliteConnection, event: &Event) -> Result<(), StoreError> {
    let id = &event.task_id;
    let what = format!("event {} of task {id}", event.seq);
    sqlx::query(
        "INSERT INTO events (task_id, seq, event_type, at, body) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id.as_str())
    .bind(codec::db_int(event.seq))
    .bind(event.kind.name())
    .bind(ts(event.at))
    .bind(codec::to_json(event, &what)?)
    .execute(&mut *conn)
    .await
    .map_err(|e| {
        if is_unique_violation(&e) {
            StoreError::AlreadyExists(what.clone())
        } else if is_foreign_key_violation(&e) {
            StoreError::NotFound(id.clone())
        } else {
            StoreError::query(format!("appending {what}"), e)
        }
    })?;
    Ok(())
}

type TaskRow = (
    String,
    String,
    Option<String>,
    Option<String>,
    String,
    String,
);
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
        .execute(&self.pool)
        .await
        .map_err(|e| StoreError::query(format!("setting the route of task {id}"), e))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(id.clone()));
        }
        Ok(())
    }

    async fn append_event(&self, event: &Event) -> Result<(), StoreError> {
        let mut conn = self.pool.acquire().await.map_err(|e| {
            StoreError::query(format!("appending an event of task {}", event.task_id), e)
        })?;
        insert_event(&mut conn, event).await
    }

    async fn append_events(&self, events: &[Event]) -> Result<(), StoreError> {
        let Some(first) = events.first() else {
            return Ok(());
        };
        let context = format!(
            "appending {} events of task {}",
            events.len(),
            first.task_id
        );
        let mut tx = self.begin_write(&context).await?;
        for event in events {
            insert_event(&mut tx, event).await?;
        }
        tx.commit()
            .await
            .map_err(|e| StoreError::query(&context, e))
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
        .bind(codec::to_json(stage, &what)?)
        .bind(ts(Utc::now()))
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
            "SELECT task, status, route, result, created_at, updated_at FROM tasks WHERE id = $1",
        )
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| StoreError::query(format!("reading task {id}"), e))?;
        let Some((task, status, route, result, created_at, updated_at)) = row else {
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
        }
        .into_snapshot()
    }
}
