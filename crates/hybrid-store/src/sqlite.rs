//! The SQLite dialect: the embedded default (`.hybrid/hybrid.db`). Only what
//! differs from PostgreSQL lives here; the store itself is
//! [`SqlStore`](crate::sql::SqlStore).
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
//!
//! Values: timestamps are RFC 3339 `TEXT` in UTC with microseconds and `Z`
//! (fixed width, so text order is time order), JSON is `TEXT`. Leases use
//! the application's clock (see [`journal`](crate::journal)).

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::sqlite::{
    SqliteArguments, SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool,
    SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Row as _, TypeInfo as _, ValueRef as _};

use crate::StoreError;
use crate::sql::{Arg, Atomic, BoxFuture, Cell, Dialect, Job, Outcome, Row, SqlStore};

const BACKEND: &str = "sqlite";
/// How long a write waits for another process's writer to let go.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a write waits for its turn at this process's writer connection.
const WRITE_QUEUE_TIMEOUT: Duration = Duration::from_secs(60);
/// Read connections of a file database.
const MAX_READ_CONNECTIONS: u32 = 8;

/// A [`Store`](crate::Store) on a SQLite file or in memory.
pub type SqliteStore = SqlStore<Sqlite>;

/// The SQLite [`Dialect`]: its connections.
#[derive(Debug, Clone)]
pub struct Sqlite {
    /// Reads; in memory, the one connection that does everything.
    pool: SqlitePool,
    /// Every write: one connection, handed out in FIFO order (sqlx's pool
    /// queues on a fair semaphore). The same pool as `pool` in memory.
    writer: SqlitePool,
}

impl SqlStore<Sqlite> {
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
        Ok(SqlStore::new(Sqlite { pool, writer }))
    }

    /// The connection pool the store reads with, for callers that need SQL
    /// this trait does not offer. With a file database, writes through it do
    /// not queue with the store's own writes: like another process's, they
    /// wait for the write lock up to the busy timeout.
    pub fn pool(&self) -> &SqlitePool {
        &self.d.pool
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

/// `sql` with `args` bound: timestamps as text, JSON as text.
fn query<'q>(
    sql: &'q str,
    args: &'q [Arg],
) -> sqlx::query::Query<'q, sqlx::Sqlite, SqliteArguments<'q>> {
    args.iter().fold(sqlx::query(sql), |q, arg| match arg {
        Arg::Text(t) | Arg::Json(t) => q.bind(t.as_deref()),
        Arg::Int(n) => q.bind(*n),
        Arg::Time(t) => q.bind(t.map(ts)),
    })
}

/// A row's values by their stored type.
fn cells(row: &SqliteRow) -> Result<Row, sqlx::Error> {
    let mut cells = Vec::with_capacity(row.len());
    for i in 0..row.len() {
        let raw = row.try_get_raw(i)?;
        let cell = if raw.is_null() {
            Cell::Null
        } else {
            match raw.type_info().name() {
                "INTEGER" | "BOOLEAN" => Cell::Int(row.try_get_unchecked(i)?),
                "REAL" => Cell::Float(row.try_get_unchecked(i)?),
                _ => Cell::Text(row.try_get_unchecked(i)?),
            }
        };
        cells.push(cell);
    }
    Ok(Row(cells))
}

impl Dialect for Sqlite {
    const BACKEND: &'static str = BACKEND;
    // `seq`: the task's next begin position. The write lock is held, so no
    // other writer can compute the same one.
    const JOURNAL_BEGIN: &'static str = "INSERT INTO journal (task_id, key, seq, state, started_at) \
         SELECT $1, $2, COALESCE(MAX(seq), 0) + 1, 'started', $3 FROM journal WHERE task_id = $1 \
         ON CONFLICT (task_id, key) DO NOTHING";
    const FOR_UPDATE: &'static str = "";
    const AUDIT_LOCK: Option<&'static str> = None;
    const LEASE_NOW: &'static str = "$3";
    const LEASE_UNTIL: &'static str = "$4";
    const MAX_BIND_PARAMS: usize = 32_766;

    type Conn = SqliteConnection;

    fn lease_clock(now: DateTime<Utc>, until: DateTime<Utc>, _ttl_micros: i64) -> Vec<Arg> {
        vec![Arg::time(now), Arg::time(until)]
    }

    fn execute<'a>(
        conn: &'a mut SqliteConnection,
        sql: &'a str,
        args: Vec<Arg>,
    ) -> BoxFuture<'a, Result<u64, sqlx::Error>> {
        Box::pin(async move {
            let done = query(sql, &args).execute(&mut *conn).await?;
            Ok(done.rows_affected())
        })
    }

    fn fetch<'a>(
        conn: &'a mut SqliteConnection,
        sql: &'a str,
        args: Vec<Arg>,
    ) -> BoxFuture<'a, Result<Vec<Row>, sqlx::Error>> {
        Box::pin(async move {
            let rows = query(sql, &args).fetch_all(&mut *conn).await?;
            rows.iter().map(cells).collect()
        })
    }

    fn read<T: Send + 'static>(
        &self,
        context: String,
        job: Job<SqliteConnection, T>,
    ) -> BoxFuture<'_, Result<T, StoreError>> {
        Box::pin(async move {
            let mut conn = self
                .pool
                .acquire()
                .await
                .map_err(|e| StoreError::query(&context, e))?;
            match job(&mut conn).await? {
                Outcome::Commit(v) | Outcome::Rollback(v) => Ok(v),
            }
        })
    }

    fn read_snapshot<T: Send + 'static>(
        &self,
        context: String,
        job: Job<SqliteConnection, T>,
    ) -> BoxFuture<'_, Result<T, StoreError>> {
        Box::pin(async move {
            let err = |e| StoreError::query(&context, e);
            // One read transaction: every query sees the same snapshot.
            let mut tx = self.pool.begin().await.map_err(err)?;
            let value = match job(&mut tx).await? {
                Outcome::Commit(v) | Outcome::Rollback(v) => v,
            };
            tx.commit().await.map_err(err)?;
            Ok(value)
        })
    }

    fn write<T: Send + 'static>(
        &self,
        _atomic: Atomic,
        context: String,
        job: Job<SqliteConnection, T>,
    ) -> BoxFuture<'_, Result<T, StoreError>> {
        Box::pin(async move {
            let err = |e| StoreError::query(&context, e);
            let mut tx = self
                .writer
                .begin_with("BEGIN IMMEDIATE")
                .await
                .map_err(err)?;
            match job(&mut tx).await? {
                Outcome::Commit(v) => {
                    tx.commit().await.map_err(err)?;
                    Ok(v)
                }
                Outcome::Rollback(v) => {
                    tx.rollback().await.map_err(err)?;
                    Ok(v)
                }
            }
        })
    }
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

    use hybrid_core::{
        Event, EventKind, RouteInfo, StageResult, Stages, Task, TaskId, TaskResult, TaskStatus::*,
        Usage,
    };

    use super::*;
    use crate::{Store, TaskFilter};

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
        let held = store.d.writer.acquire().await.unwrap();
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
        for pool in [&store.d.writer, &store.d.pool] {
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
