//! The SQLite dialect: the embedded default (`.hybrid/hybrid.db`). Only what
//! differs from PostgreSQL lives here; the store itself is
//! [`SqlStore`](crate::sql::SqlStore).
//!
//! A file database runs in WAL mode (readers never block the writer), foreign
//! keys on. SQLite lets one connection write at a time, and connections that
//! find the write lock taken sleep and re-poll (the busy timeout) in no
//! particular order, so under load one of many pooled writers could wait out
//! any timeout. So every write of this process goes through one dedicated
//! writer connection, driven by one writer task: writes queue in order
//! instead of polling, and reads use a separate pool of up to 8 connections
//! that WAL lets run while a write is in progress. The 10 s busy timeout now
//! only covers writers in *other* processes. A write waits at most 60 s for
//! its turn at the writer before failing; one whose caller went away before
//! its turn is dropped.
//!
//! **Group commit.** The writer task runs every write waiting in the queue
//! (up to 512) in one transaction, each in a savepoint of its own if it has
//! several statements, and answers each caller only after that transaction
//! has committed: one commit serves many concurrent callers, and every write
//! is still committed (visible to other processes) before its call returns.
//! A write that fails is undone alone and ends its batch.
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

use std::collections::VecDeque;
use std::str::FromStr;
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::Row as _;
use sqlx::sqlite::{
    SqliteArguments, SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool,
    SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use tokio::sync::{mpsc, oneshot};

use crate::StoreError;
use crate::sql::{Arg, Atomic, BoxFuture, Cell, Dialect, Job, Outcome, Row, SqlStore, row_cells};

const BACKEND: &str = "sqlite";
/// How long a write waits for another process's writer to let go.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a write waits for its turn at this process's writer connection.
const WRITE_QUEUE_TIMEOUT: Duration = Duration::from_secs(60);
/// Read connections of a file database.
const MAX_READ_CONNECTIONS: u32 = 8;
/// Writes committed together at most.
const MAX_BATCH: usize = 512;

/// A [`Store`](crate::Store) on a SQLite file or in memory.
pub type SqliteStore = SqlStore<Sqlite>;

/// The SQLite [`Dialect`]: its connections.
#[derive(Debug, Clone)]
pub struct Sqlite {
    /// Reads; in memory, the one connection that does everything.
    pool: SqlitePool,
    /// Where writes queue for the writer task, in order.
    queue: mpsc::UnboundedSender<Box<dyn Write>>,
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
        let conn_err = StoreError::connection(BACKEND);
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
            .map_err(StoreError::migration(BACKEND))?;
        drop(migrate_lock);
        let (queue, queued) = mpsc::unbounded_channel();
        // The writer connection is the writer task's alone (in memory it is
        // `pool`'s one connection, borrowed for each batch).
        tokio::spawn(write_loop(writer, queued));
        Ok(SqlStore::new(Sqlite { pool, queue }))
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
    row_cells(row, |row, i, stored| {
        Ok(match stored {
            "INTEGER" | "BOOLEAN" => Cell::Int(row.try_get_unchecked(i)?),
            "REAL" => Cell::Float(row.try_get_unchecked(i)?),
            _ => Cell::Text(row.try_get_unchecked(i)?),
        })
    })
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

    const SNAPSHOT: &'static str = "BEGIN";
    const DML_IN_CTE: bool = false;

    type Db = sqlx::Sqlite;
    type Conn = SqliteConnection;

    crate::sql::run_statements!(SqliteConnection);

    fn read_pool(&self) -> &SqlitePool {
        &self.pool
    }

    fn lease_clock(now: DateTime<Utc>, until: DateTime<Utc>, _ttl_micros: i64) -> Vec<Arg> {
        vec![Arg::time(now), Arg::time(until)]
    }

    fn write<T: Send + 'static>(
        &self,
        atomic: Atomic,
        context: String,
        job: Job<SqliteConnection, T>,
    ) -> BoxFuture<'_, Result<T, StoreError>> {
        Box::pin(async move {
            let (reply, answer) = oneshot::channel();
            let queued = Box::new(Queued {
                atomic,
                context: context.clone(),
                job,
                reply,
                deadline: Instant::now() + WRITE_QUEUE_TIMEOUT,
            });
            self.queue
                .send(queued)
                .map_err(|_| StoreError::query(&context, sqlx::Error::PoolClosed))?;
            answer
                .await
                .map_err(|_| StoreError::query(&context, sqlx::Error::WorkerCrashed))?
        })
    }
}

/// A write waiting for the writer, with where to send its answer.
struct Queued<T> {
    atomic: Atomic,
    context: String,
    job: Job<SqliteConnection, T>,
    reply: oneshot::Sender<Result<T, StoreError>>,
    /// When it stops waiting for its turn.
    deadline: Instant,
}

/// A [`Queued`] write of any answer type.
trait Write: Send {
    /// Whether the caller still waits for it: a write whose caller went
    /// away before its turn never happens.
    fn is_wanted(&self) -> bool;
    /// Whether it has waited too long for its turn.
    fn is_late(&self, now: Instant) -> bool;
    /// Runs it in the batch's transaction — in a savepoint of its own if it
    /// has several statements and shares the batch (`alone` is false); its
    /// answer, to send after the commit.
    fn run<'c>(
        self: Box<Self>,
        conn: &'c mut SqliteConnection,
        alone: bool,
    ) -> BoxFuture<'c, Box<dyn Answer>>;
    /// Answers with `error` without running it.
    fn fail(self: Box<Self>, error: sqlx::Error);
}

/// The answer of a write that ran, held until its batch commits.
trait Answer: Send {
    /// Whether the write failed (which may have ended the transaction).
    fn failed(&self) -> bool;
    /// Whether the transaction must be rolled back rather than committed: a
    /// write alone in its batch (so without a savepoint) that failed or
    /// answered [`Outcome::Rollback`].
    fn wants_rollback(&self) -> bool;
    /// Sends the answer: the write's own error, else the commit's.
    fn send(self: Box<Self>, commit: Result<(), &sqlx::Error>);
}

struct Ran<T> {
    result: Result<T, StoreError>,
    rollback: bool,
    reply: oneshot::Sender<Result<T, StoreError>>,
    context: String,
}

impl<T: Send + 'static> Write for Queued<T> {
    fn is_wanted(&self) -> bool {
        !self.reply.is_closed()
    }

    fn is_late(&self, now: Instant) -> bool {
        now > self.deadline
    }

    fn run<'c>(
        self: Box<Self>,
        conn: &'c mut SqliteConnection,
        alone: bool,
    ) -> BoxFuture<'c, Box<dyn Answer>> {
        Box::pin(async move {
            let Queued {
                atomic,
                context,
                job,
                reply,
                ..
            } = *self;
            let (result, rollback) = run_job(conn, atomic, &context, job, alone).await;
            Box::new(Ran {
                result,
                rollback,
                reply,
                context,
            }) as Box<dyn Answer>
        })
    }

    fn fail(self: Box<Self>, error: sqlx::Error) {
        let _ = self
            .reply
            .send(Err(StoreError::query(&self.context, error)));
    }
}

impl<T: Send + 'static> Answer for Ran<T> {
    fn failed(&self) -> bool {
        self.result.is_err()
    }

    fn wants_rollback(&self) -> bool {
        self.rollback
    }

    fn send(self: Box<Self>, commit: Result<(), &sqlx::Error>) {
        let answer = match (self.result, commit) {
            (Ok(_), Err(e)) => Err(StoreError::query(&self.context, copy_error(e))),
            (result, _) => result,
        };
        // A caller that went away after its write ran gets no answer; the
        // write stands.
        let _ = self.reply.send(answer);
    }
}

/// Runs one job. Sharing its batch with others, a job of several statements
/// runs inside a savepoint, so that its failure or [`Outcome::Rollback`]
/// undoes only its own writes; alone, it needs none (two statements fewer):
/// the answer's second part says the whole transaction must roll back.
async fn run_job<T>(
    conn: &mut SqliteConnection,
    atomic: Atomic,
    context: &str,
    job: Job<SqliteConnection, T>,
    alone: bool,
) -> (Result<T, StoreError>, bool) {
    if alone {
        return match job(conn).await {
            Ok(Outcome::Commit(v)) => (Ok(v), false),
            Ok(Outcome::Rollback(v)) => (Ok(v), true),
            Err(e) => (Err(e), true),
        };
    }
    let result = run_in_savepoint(conn, atomic, context, job).await;
    (result, false)
}

async fn run_in_savepoint<T>(
    conn: &mut SqliteConnection,
    atomic: Atomic,
    context: &str,
    job: Job<SqliteConnection, T>,
) -> Result<T, StoreError> {
    let err = |e| StoreError::query(context, e);
    let savepoint = atomic == Atomic::Transaction;
    if savepoint {
        Sqlite::execute(conn, "SAVEPOINT write_job", Vec::new())
            .await
            .map_err(err)?;
    }
    let outcome = job(conn).await;
    if savepoint {
        if !matches!(outcome, Ok(Outcome::Commit(_))) {
            Sqlite::execute(conn, "ROLLBACK TO write_job", Vec::new())
                .await
                .map_err(err)?;
        }
        Sqlite::execute(conn, "RELEASE write_job", Vec::new())
            .await
            .map_err(err)?;
    }
    match outcome? {
        Outcome::Commit(v) | Outcome::Rollback(v) => Ok(v),
    }
}

/// An error for every write of a batch (sqlx errors do not clone).
fn copy_error(error: &sqlx::Error) -> sqlx::Error {
    match error {
        sqlx::Error::PoolTimedOut => sqlx::Error::PoolTimedOut,
        sqlx::Error::PoolClosed => sqlx::Error::PoolClosed,
        other => sqlx::Error::Protocol(format!("the batch of writes did not commit: {other}")),
    }
}

/// The writer: takes the queued writes in order and runs as many as are
/// waiting (up to [`MAX_BATCH`]) in one `BEGIN IMMEDIATE` transaction on the
/// writer connection, then answers each once that transaction has committed
/// (group commit: one commit for many callers, each still durable when
/// answered). A write that fails ends its batch early (its error may have
/// ended the transaction); the rest go into the next. Ends when every handle
/// of the store is dropped.
async fn write_loop(writer: SqlitePool, mut queue: mpsc::UnboundedReceiver<Box<dyn Write>>) {
    let mut backlog: VecDeque<Box<dyn Write>> = VecDeque::new();
    loop {
        if backlog.is_empty() {
            match queue.recv().await {
                Some(first) => backlog.push_back(first),
                None => return,
            }
        }
        while backlog.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(next) => backlog.push_back(next),
                Err(_) => break,
            }
        }
        run_batch(&writer, &mut backlog).await;
    }
}

/// Runs writes from the front of `backlog` in one transaction, until it is
/// empty or one fails.
async fn run_batch(writer: &SqlitePool, backlog: &mut VecDeque<Box<dyn Write>>) {
    let mut tx = match writer.begin_with("BEGIN IMMEDIATE").await {
        Ok(tx) => tx,
        Err(e) => {
            for write in backlog.drain(..) {
                write.fail(copy_error(&e));
            }
            return;
        }
    };
    let alone = backlog.len() == 1;
    let mut ran: Vec<Box<dyn Answer>> = Vec::with_capacity(backlog.len());
    while let Some(write) = backlog.pop_front() {
        if !write.is_wanted() {
            continue;
        }
        if write.is_late(Instant::now()) {
            write.fail(sqlx::Error::PoolTimedOut);
            continue;
        }
        let answer = write.run(&mut tx, alone).await;
        let failed = answer.failed();
        ran.push(answer);
        if failed {
            break;
        }
    }
    if ran.is_empty() {
        return;
    }
    if ran.iter().any(|a| a.wants_rollback()) {
        // Alone in its batch: its own writes are undone by ending the transaction.
        let rolled_back = tx.rollback().await;
        for answer in ran {
            answer.send(rolled_back.as_ref().map(|_| ()));
        }
        return;
    }
    let commit = tx.commit().await;
    for answer in ran {
        answer.send(commit.as_ref().map(|_| ()));
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
        let (release, held) = tokio::sync::oneshot::channel::<()>();
        let (entered, inside) = tokio::sync::oneshot::channel::<()>();
        let holder = {
            let store = store.clone();
            tokio::spawn(async move {
                let hold = crate::sql::job(move |_: &mut SqliteConnection| {
                    Box::pin(async move {
                        let _ = entered.send(());
                        let _ = held.await;
                        Ok(Outcome::Commit(()))
                    })
                });
                store
                    .d
                    .write(Atomic::Statement, "holding the writer".into(), hold)
                    .await
            })
        };
        inside.await.unwrap();
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
        release.send(()).unwrap();
        holder.await.unwrap().unwrap();
        store.transition(id, Routing, None).await.unwrap();
        store.set_route(id, &route()).await.unwrap();
    }

    /// `journal_mode`, `synchronous` and `busy_timeout` of a connection.
    fn pragmas(c: &mut SqliteConnection) -> BoxFuture<'_, Result<Outcome<Vec<Cell>>, StoreError>> {
        Box::pin(async move {
            let mut values = Vec::new();
            for pragma in ["journal_mode", "synchronous", "busy_timeout"] {
                let mut rows = Sqlite::fetch(c, &format!("PRAGMA {pragma}"), Vec::new())
                    .await
                    .unwrap();
                values.push(rows.remove(0).0.remove(0));
            }
            Ok(Outcome::Commit(values))
        })
    }

    #[tokio::test]
    async fn writer_and_readers_use_wal_normal_sync_and_the_busy_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let store =
            SqliteStore::connect(&format!("sqlite://{}", dir.path().join("p.db").display()))
                .await
                .unwrap();
        // The writer, through a write; a reader, through a read.
        let on_writer = store
            .d
            .write(
                Atomic::Statement,
                "pragmas".into(),
                crate::sql::job(pragmas),
            )
            .await
            .unwrap();
        let on_reader = store
            .d
            .read("pragmas".into(), crate::sql::job(pragmas))
            .await
            .unwrap();
        for values in [on_writer, on_reader] {
            // WAL, 1 = NORMAL, 10 s.
            assert_eq!(
                values,
                [Cell::Text("wal".into()), Cell::Int(1), Cell::Int(10_000)]
            );
        }
    }
}
