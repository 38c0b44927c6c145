//! The SQLite dialect: the embedded default (`.hybrid/hybrid.db`). Only what
//! differs from PostgreSQL lives here; the store itself is
//! [`SqlStore`](crate::sql::SqlStore).
//!
//! Statements run through `rusqlite` (SQLite's C API, prepared statements
//! cached per connection) on the calling thread: a statement of this store
//! takes microseconds, so a hop to a driver thread and back (what an async
//! driver does for every statement) would cost more than the statement.
//! Migrations of a file still run through `sqlx`'s migrator, so databases it
//! created keep their history.
//!
//! A file database runs in WAL mode (readers never block the writer), foreign
//! keys on. SQLite lets one connection write at a time, and connections that
//! find the write lock taken sleep and re-poll (the busy timeout) in no
//! particular order, so every write of this process goes through one writer
//! connection: writes queue in order instead of polling. Reads use pooled
//! read connections (WAL lets them run while a write is in progress). A write
//! waits at most 60 s for its turn before failing; one whose caller went away
//! before its turn is dropped.
//!
//! **Group commit.** Whoever finds the writer free takes it and runs every
//! write waiting in the queue (up to 512) in one transaction, each in a
//! savepoint of its own if it has several statements, and answers each caller
//! only after that transaction has committed: one commit serves many
//! concurrent callers, and every write is still committed (visible to other
//! processes) before its call returns. A write that fails is undone alone and
//! ends its batch. Writes that queued meanwhile go to a task of their own, so
//! no caller serves others for long.
//!
//! Every write transaction starts with `BEGIN IMMEDIATE`, so it takes the
//! write lock up front instead of failing when it upgrades from reading to
//! writing. The writer tries it without waiting; only when another process
//! holds the lock does the batch move to a blocking thread, which waits up to
//! the 10 s busy timeout, so the async runtime's threads never sleep on
//! another process.
//!
//! `synchronous = NORMAL`: in WAL mode this is SQLite's recommended setting,
//! which never corrupts the database and loses nothing when the process
//! crashes (only a power loss or OS crash can lose the last commits), while
//! sparing an fsync on every commit.
//!
//! `sqlite::memory:` gives a private in-memory database on a single
//! connection (each connection would be a separate database), the writer's,
//! which then does the reads as well.
//!
//! Values: timestamps are RFC 3339 `TEXT` in UTC with microseconds and `Z`
//! (fixed width, so text order is time order), JSON is `TEXT`. Leases use
//! the application's clock (see [`journal`](crate::journal)).

use std::borrow::Cow;
use std::collections::VecDeque;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use tokio::sync::oneshot;

use crate::StoreError;
use crate::sql::{Arg, Atomic, BoxFuture, Cell, Dialect, Job, Outcome, Row, SqlStore};

const BACKEND: &str = "sqlite";
/// How long a write waits for another process's writer to let go.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a write waits for its turn at this process's writer connection.
const WRITE_QUEUE_TIMEOUT: Duration = Duration::from_secs(60);
/// Idle read connections of a file database kept open.
const MAX_IDLE_READERS: usize = 8;
/// Writes committed together at most.
const MAX_BATCH: usize = 512;
/// Prepared statements each connection keeps.
const STATEMENT_CACHE: usize = 128;
/// Commits between two checkpoints of a file's WAL.
const CHECKPOINT_EVERY: u64 = 256;
/// The size a WAL is truncated to when it starts over, if it grew past it.
const WAL_SIZE_LIMIT: i64 = 64 << 20;

/// A [`Store`](crate::Store) on a SQLite file or in memory.
pub type SqliteStore = SqlStore<Sqlite>;

/// The SQLite [`Dialect`]: its connections.
#[derive(Debug, Clone)]
pub struct Sqlite {
    shared: Arc<Shared>,
}

/// The connections, shared by every handle of the store.
struct Shared {
    /// The database file; `None` in memory.
    file: Option<PathBuf>,
    /// How long a connection waits for another process's lock.
    busy_timeout: Duration,
    /// Idle read connections of a file database.
    readers: Mutex<Vec<Connection>>,
    /// The writer connection and the writes waiting for it.
    writer: Mutex<Writer>,
    /// Commits so far, which decide when to checkpoint.
    commits: AtomicU64,
    /// Wakes the checkpoint thread (a file database).
    checkpoint: Option<mpsc::SyncSender<()>>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("file", &self.file)
            .field("busy_timeout", &self.busy_timeout)
            .finish_non_exhaustive()
    }
}

/// The writer's state.
struct Writer {
    /// The connection, when no one is writing on it.
    conn: Option<Connection>,
    /// Writes waiting for their turn, in order.
    queue: VecDeque<Box<dyn Write>>,
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
        let migrator = sqlx::migrate!("./migrations/sqlite");
        if is_memory(url) {
            let conn = Connection::open_in_memory()
                .and_then(|c| configure(c, None))
                .map_err(|e| conn_err(db_error(e)))?;
            for migration in migrator
                .iter()
                .filter(|m| !m.migration_type.is_down_migration())
            {
                conn.execute_batch(&migration.sql).map_err(|e| {
                    StoreError::migration(BACKEND)(sqlx::migrate::MigrateError::Execute(db_error(
                        e,
                    )))
                })?;
            }
            return Ok(SqlStore::new(Sqlite::new(None, busy_timeout, conn, None)));
        }
        let file = options.get_filename().to_path_buf();
        if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(dir)
                .await
                .map_err(|error| StoreError::CreateDir {
                    path: dir.to_path_buf(),
                    error,
                })?;
        }
        // Several processes may open a new database at once (a run and an
        // `approvals list` beside it). Switching it to WAL and migrating
        // need it to themselves, so openers take turns on a lock file next
        // to the database.
        let migrate_lock = lock_file(lock_path(&file)).await?;
        // sqlx's migrator on a one-connection pool (it records what it ran
        // in `_sqlx_migrations`), closed once done.
        let migrating = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(
                options
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal),
            )
            .await
            .map_err(conn_err)?;
        migrator
            .run(&migrating)
            .await
            .map_err(StoreError::migration(BACKEND))?;
        migrating.close().await;
        drop(migrate_lock);
        let writer = open(&file, busy_timeout).map_err(|e| conn_err(db_error(e)))?;
        // The writer tries for the write lock without waiting (see the module
        // docs), and leaves checkpoints to the checkpoint thread.
        writer
            .busy_timeout(Duration::ZERO)
            .and_then(|()| writer.pragma_update(None, "wal_autocheckpoint", 0))
            // A WAL a long reader let grow is cut back when it starts over.
            .and_then(|()| writer.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT))
            .map_err(|e| conn_err(db_error(e)))?;
        // A first reader now, so a bad file fails here rather than at the first read.
        let reader = open(&file, busy_timeout).map_err(|e| conn_err(db_error(e)))?;
        let checkpoint = open(&file, RESTART_WAIT)
            .map(start_checkpointer)
            .map_err(|e| conn_err(db_error(e)))?;
        let dialect = Sqlite::new(Some(file), busy_timeout, writer, Some(checkpoint));
        dialect.give_back_reader(reader);
        Ok(SqlStore::new(dialect))
    }

    /// Runs `f` on the writer connection, in a write transaction of its own
    /// (committed unless `f` fails), for callers that need SQL the
    /// [`Store`](crate::Store) trait does not offer.
    pub async fn with_writer<T, F>(&self, context: &str, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let ctx = context.to_owned();
        self.d
            .write(
                Atomic::Transaction,
                context.to_owned(),
                crate::sql::job(move |c: &mut Connection| {
                    let done = f(c)
                        .map(Outcome::Commit)
                        .map_err(|e| StoreError::query(&ctx, db_error(e)));
                    Box::pin(std::future::ready(done))
                }),
            )
            .await
    }
}

/// Whether a SQLite URL names an in-memory database.
fn is_memory(url: &str) -> bool {
    url.contains(":memory:") || url.contains("mode=memory")
}

/// Opens a connection to the database file (which must exist).
fn open(file: &std::path::Path, busy_timeout: Duration) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        file,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    configure(conn, Some(busy_timeout))
}

/// Foreign keys on, `synchronous = NORMAL`, the busy timeout (a file), the
/// statement cache.
fn configure(conn: Connection, busy_timeout: Option<Duration>) -> rusqlite::Result<Connection> {
    conn.pragma_update(None, "foreign_keys", "ON")?;
    if let Some(timeout) = busy_timeout {
        conn.busy_timeout(timeout)?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
    }
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}

/// A timestamp as stored: RFC 3339, UTC, microseconds, `Z` — fixed width, so
/// text order is time order.
fn ts(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// A SQLite error as the store reports driver errors: a database error that
/// knows unique and foreign-key violations by their extended result codes.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct SqliteError {
    /// The extended result code, if SQLite gave one.
    code: Option<i32>,
    message: String,
}

impl sqlx::error::DatabaseError for SqliteError {
    fn message(&self) -> &str {
        &self.message
    }

    fn code(&self) -> Option<Cow<'_, str>> {
        self.code.map(|c| Cow::Owned(c.to_string()))
    }

    fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
        self
    }

    fn kind(&self) -> sqlx::error::ErrorKind {
        use rusqlite::ffi;
        use sqlx::error::ErrorKind;
        match self.code {
            Some(ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY) => {
                ErrorKind::UniqueViolation
            }
            Some(ffi::SQLITE_CONSTRAINT_FOREIGNKEY) => ErrorKind::ForeignKeyViolation,
            Some(ffi::SQLITE_CONSTRAINT_NOTNULL) => ErrorKind::NotNullViolation,
            Some(ffi::SQLITE_CONSTRAINT_CHECK) => ErrorKind::CheckViolation,
            _ => ErrorKind::Other,
        }
    }
}

impl From<rusqlite::Error> for SqliteError {
    fn from(error: rusqlite::Error) -> Self {
        let code = match &error {
            rusqlite::Error::SqliteFailure(e, _) => Some(e.extended_code),
            _ => None,
        };
        SqliteError {
            code,
            message: error.to_string(),
        }
    }
}

/// A `rusqlite` error as a driver error.
fn db_error(error: rusqlite::Error) -> sqlx::Error {
    sqlx::Error::Database(Box::new(SqliteError::from(error)))
}

/// Whether SQLite answered "busy": another connection holds the lock.
fn is_busy(error: &rusqlite::Error) -> bool {
    matches!(error, rusqlite::Error::SqliteFailure(e, _) if e.code == rusqlite::ErrorCode::DatabaseBusy)
}

/// Prepares (or takes from the cache) `sql` and binds `args`: `$n` (a named
/// parameter to SQLite) takes `args[n - 1]`, timestamps as text, JSON as text.
fn prepare<'c>(
    conn: &'c Connection,
    sql: &str,
    args: &[Arg],
) -> rusqlite::Result<rusqlite::CachedStatement<'c>> {
    let mut stmt = conn.prepare_cached(sql)?;
    for index in 1..=stmt.parameter_count() {
        let position = stmt
            .parameter_name(index)
            .and_then(|name| name.strip_prefix(['$', '?']))
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap_or(index);
        let arg = args
            .get(position.wrapping_sub(1))
            .ok_or(rusqlite::Error::InvalidParameterCount(position, args.len()))?;
        match arg {
            Arg::Text(t) | Arg::Json(t) => stmt.raw_bind_parameter(index, t.as_deref())?,
            Arg::Int(n) => stmt.raw_bind_parameter(index, n)?,
            Arg::Time(t) => stmt.raw_bind_parameter(index, t.map(ts))?,
        }
    }
    Ok(stmt)
}

/// Runs a statement to its end; how many rows it changed.
fn execute_now(conn: &Connection, sql: &str, args: &[Arg]) -> rusqlite::Result<u64> {
    let mut stmt = prepare(conn, sql, args)?;
    let mut rows = stmt.raw_query();
    while rows.next()?.is_some() {}
    drop(rows);
    drop(stmt);
    Ok(conn.changes())
}

/// Runs a statement; its rows, each value by its stored type.
fn fetch_now(conn: &Connection, sql: &str, args: &[Arg]) -> rusqlite::Result<Vec<Row>> {
    let mut stmt = prepare(conn, sql, args)?;
    let columns = stmt.column_count();
    let mut rows = stmt.raw_query();
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let mut cells = Vec::with_capacity(columns);
        for i in 0..columns {
            cells.push(match row.get_ref(i)? {
                ValueRef::Null => Cell::Null,
                ValueRef::Integer(n) => Cell::Int(n),
                ValueRef::Real(x) => Cell::Float(x),
                ValueRef::Text(t) | ValueRef::Blob(t) => Cell::Text(
                    String::from_utf8(t.to_vec())
                        .map_err(|e| rusqlite::Error::Utf8Error(e.utf8_error()))?,
                ),
            });
        }
        out.push(Row(cells));
    }
    Ok(out)
}

/// Runs a job's future, which completes at once: every statement it awaits
/// runs synchronously. One that stays pending awaited something else, which
/// a job on a SQLite connection must not do.
fn run_now<T>(
    context: &str,
    mut future: BoxFuture<'_, Result<Outcome<T>, StoreError>>,
) -> Result<Outcome<T>, StoreError> {
    let mut cx = Context::from_waker(Waker::noop());
    match future.as_mut().poll(&mut cx) {
        Poll::Ready(done) => done,
        Poll::Pending => Err(StoreError::query(
            context,
            sqlx::Error::Protocol(
                "a SQLite job awaited something other than its statements".into(),
            ),
        )),
    }
}

impl Sqlite {
    fn new(
        file: Option<PathBuf>,
        busy_timeout: Duration,
        writer: Connection,
        checkpoint: Option<mpsc::SyncSender<()>>,
    ) -> Self {
        Sqlite {
            shared: Arc::new(Shared {
                file,
                busy_timeout,
                readers: Mutex::new(Vec::new()),
                writer: Mutex::new(Writer {
                    conn: Some(writer),
                    queue: VecDeque::new(),
                }),
                commits: AtomicU64::new(0),
                checkpoint,
            }),
        }
    }

    /// An idle read connection, or a new one.
    fn take_reader(&self, context: &str) -> Result<Connection, StoreError> {
        let idle = self
            .shared
            .readers
            .lock()
            .map_err(|_| poisoned(context))?
            .pop();
        match (idle, &self.shared.file) {
            (Some(conn), _) => Ok(conn),
            (None, Some(file)) => open(file, self.shared.busy_timeout)
                .map_err(|e| StoreError::query(context, db_error(e))),
            (None, None) => Err(StoreError::query(
                context,
                sqlx::Error::Protocol("an in-memory database has no read connections".into()),
            )),
        }
    }

    /// Keeps a read connection for the next read (up to [`MAX_IDLE_READERS`]).
    fn give_back_reader(&self, conn: Connection) {
        // The pool is a plain list: nothing a panic could have left half done.
        let mut idle = self
            .shared
            .readers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if idle.len() < MAX_IDLE_READERS {
            idle.push(conn);
        }
    }

    /// A read: on a read connection of a file; in memory, on the one
    /// connection, as a write (the writer's batch is a transaction, so one
    /// snapshot either way).
    fn read_job<T: Send + 'static>(
        &self,
        context: String,
        snapshot: bool,
        job: Job<Connection, T>,
    ) -> BoxFuture<'_, Result<T, StoreError>> {
        if self.shared.file.is_none() {
            return self.write(Atomic::Statement, context, job);
        }
        Box::pin(std::future::ready(self.read_now(&context, snapshot, job)))
    }

    /// Runs a read job on a read connection, inside `BEGIN`/`COMMIT` if `snapshot`.
    fn read_now<T>(
        &self,
        context: &str,
        snapshot: bool,
        job: Job<Connection, T>,
    ) -> Result<T, StoreError> {
        let mut conn = self.take_reader(context)?;
        let err = |e| StoreError::query(context, db_error(e));
        let result = (|| {
            if snapshot {
                run_cached(&conn, "BEGIN").map_err(err)?;
            }
            let value = run_now(context, job(&mut conn));
            if snapshot {
                run_cached(&conn, if value.is_ok() { "COMMIT" } else { "ROLLBACK" })
                    .map_err(err)?;
            }
            value.map(Outcome::into_inner)
        })();
        // A connection left inside a transaction (a failed COMMIT) is not reused.
        if conn.is_autocommit() {
            self.give_back_reader(conn);
        }
        result
    }
}

/// Starts the thread that checkpoints the WAL on `conn` whenever the
/// writer asks (every [`CHECKPOINT_EVERY`] commits), so no write waits for
/// the bulk of one: SQLite would otherwise run it inside the commit that
/// crosses its threshold. The thread ends with the store.
///
/// A checkpoint is two steps. `PASSIVE` copies the WAL into the database
/// without waiting for anyone; under steady writes it never finishes, since
/// the writer appends while it copies, and SQLite starts the WAL over only
/// when a write begins with every frame copied: the WAL would grow without
/// end (it reached 900 MB in 7 s of the agent-run bench), and every commit
/// would extend the file. So when the WAL holds [`RESTART_FRAMES`] or more,
/// `RESTART` follows: it holds off writers while it copies the few frames
/// written since, waits for readers of the WAL to finish (at most
/// [`RESTART_WAIT`]; a busy one is tried again next time), and the next write
/// starts the WAL from its beginning, over pages already in the file.
fn start_checkpointer(conn: Connection) -> mpsc::SyncSender<()> {
    let (wake, woken) = mpsc::sync_channel::<()>(1);
    let spawned = std::thread::Builder::new()
        .name("sqlite-checkpoint".into())
        .spawn(move || {
            for () in woken {
                if let Err(error) = checkpoint(&conn) {
                    tracing::warn!(%error, "SQLite WAL checkpoint failed; the next one retries");
                }
            }
        });
    if let Err(error) = spawned {
        // Without the thread the WAL grows until the next open's checkpoint;
        // writes still succeed.
        tracing::warn!(%error, "cannot start the SQLite checkpoint thread");
    }
    wake
}

/// Frames in the WAL past which a checkpoint ends with `RESTART` (16 MiB of pages):
/// writers wait for one every few hundred commits (an agent run's commit
/// writes 5–10 frames), not at every checkpoint.
const RESTART_FRAMES: i64 = 4096;
/// How long `RESTART` waits for the write lock and for readers.
const RESTART_WAIT: Duration = Duration::from_millis(100);

/// One checkpoint (see [`start_checkpointer`]); whether the WAL was started over.
fn checkpoint(conn: &Connection) -> rusqlite::Result<bool> {
    // The pragma's row: busy (1 if it could not finish), frames in the WAL, frames copied.
    let pragma = |mode: &str| {
        conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |row| {
            Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?))
        })
    };
    let (_, frames) = pragma("PASSIVE")?;
    if frames < RESTART_FRAMES {
        return Ok(false);
    }
    let (busy, _) = pragma("RESTART")?;
    Ok(busy == 0)
}

/// The error of a lock a panic poisoned.
fn poisoned(context: &str) -> StoreError {
    StoreError::query(
        context,
        sqlx::Error::Protocol("a panic poisoned the SQLite connection lock".into()),
    )
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

    type Conn = Connection;

    fn execute<'a>(
        conn: &'a mut Connection,
        sql: &'a str,
        args: Vec<Arg>,
    ) -> BoxFuture<'a, Result<u64, sqlx::Error>> {
        Box::pin(std::future::ready(
            execute_now(conn, sql, &args).map_err(db_error),
        ))
    }

    fn fetch<'a>(
        conn: &'a mut Connection,
        sql: &'a str,
        args: Vec<Arg>,
    ) -> BoxFuture<'a, Result<Vec<Row>, sqlx::Error>> {
        Box::pin(std::future::ready(
            fetch_now(conn, sql, &args).map_err(db_error),
        ))
    }

    fn read<T: Send + 'static>(
        &self,
        context: String,
        job: Job<Connection, T>,
    ) -> BoxFuture<'_, Result<T, StoreError>> {
        self.read_job(context, false, job)
    }

    fn read_snapshot<T: Send + 'static>(
        &self,
        context: String,
        job: Job<Connection, T>,
    ) -> BoxFuture<'_, Result<T, StoreError>> {
        self.read_job(context, true, job)
    }

    fn lease_clock(now: DateTime<Utc>, until: DateTime<Utc>, _ttl_micros: i64) -> Vec<Arg> {
        vec![Arg::time(now), Arg::time(until)]
    }

    fn write<T: Send + 'static>(
        &self,
        atomic: Atomic,
        context: String,
        job: Job<Connection, T>,
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
            let turn = {
                let mut writer = self.shared.writer.lock().map_err(|_| poisoned(&context))?;
                writer.queue.push_back(queued);
                writer
                    .conn
                    .take()
                    .map(|conn| (conn, take_batch(&mut writer.queue)))
            };
            if let Some((conn, batch)) = turn {
                // The writer was free: this call runs the batch (its own
                // write and any that queued with it) here and now.
                Arc::clone(&self.shared).serve(conn, batch);
            }
            answer
                .await
                .map_err(|_| StoreError::query(&context, sqlx::Error::WorkerCrashed))?
        })
    }
}

/// Up to [`MAX_BATCH`] writes from the front of the queue.
fn take_batch(queue: &mut VecDeque<Box<dyn Write>>) -> VecDeque<Box<dyn Write>> {
    let n = queue.len().min(MAX_BATCH);
    queue.drain(..n).collect()
}

impl Shared {
    /// Runs `batch` on the writer connection — here, unless another process
    /// holds the write lock (then on a blocking thread that waits for it) —
    /// then hands the writer on.
    fn serve(self: Arc<Self>, mut conn: Connection, mut batch: VecDeque<Box<dyn Write>>) {
        let Ok(committed) = run_batch(&mut conn, &mut batch, false) else {
            let wait = move || {
                let waited = conn
                    .busy_timeout(self.busy_timeout)
                    .map(|()| run_batch(&mut conn, &mut batch, true));
                match waited.and_then(|ran| conn.busy_timeout(Duration::ZERO).map(|()| ran)) {
                    Ok(ran) => self.committed(ran.unwrap_or(false)),
                    Err(e) => {
                        let e = SqliteError::from(e);
                        for write in batch.drain(..) {
                            write.fail(sqlx::Error::Database(Box::new(e.clone())));
                        }
                    }
                }
                self.hand_on(conn, batch);
            };
            // Off the runtime's threads; polled by another executor, here.
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => drop(runtime.spawn_blocking(wait)),
                Err(_) => wait(),
            }
            return;
        };
        self.committed(committed);
        self.hand_on(conn, batch);
    }

    /// Counts a batch that committed, waking the checkpoint thread every
    /// [`CHECKPOINT_EVERY`] commits.
    fn committed(&self, committed: bool) {
        if !committed {
            return;
        }
        let n = self.commits.fetch_add(1, Ordering::Relaxed) + 1;
        if n.is_multiple_of(CHECKPOINT_EVERY)
            && let Some(wake) = &self.checkpoint
        {
            // Full: a checkpoint is already due, which covers this one.
            let _ = wake.try_send(());
        }
    }

    /// Gives the writer back, or — if writes are waiting (`left`, what a
    /// failed write left of its batch, first) — a task of its own to run
    /// them.
    fn hand_on(self: Arc<Self>, conn: Connection, mut left: VecDeque<Box<dyn Write>>) {
        // A queue and a connection slot: nothing a panic could have left half done.
        let mut writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        while let Some(write) = left.pop_back() {
            writer.queue.push_front(write);
        }
        if writer.queue.is_empty() {
            writer.conn = Some(conn);
            return;
        }
        let batch = take_batch(&mut writer.queue);
        drop(writer);
        let shared = Arc::clone(&self);
        // A task of its own, so no caller serves others for long; polled by
        // another executor, here.
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn(async move { shared.serve(conn, batch) })),
            Err(_) => shared.serve(conn, batch),
        }
    }
}

/// A write waiting for the writer, with where to send its answer.
struct Queued<T> {
    atomic: Atomic,
    context: String,
    job: Job<Connection, T>,
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
    fn run(self: Box<Self>, conn: &mut Connection, alone: bool) -> Box<dyn Answer>;
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
    fn send(self: Box<Self>, commit: Result<(), &SqliteError>);
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

    fn run(self: Box<Self>, conn: &mut Connection, alone: bool) -> Box<dyn Answer> {
        let Queued {
            atomic,
            context,
            job,
            reply,
            ..
        } = *self;
        let (result, rollback) = run_job(conn, atomic, &context, job, alone);
        Box::new(Ran {
            result,
            rollback,
            reply,
            context,
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

    fn send(self: Box<Self>, commit: Result<(), &SqliteError>) {
        let answer = match (self.result, commit) {
            (Ok(_), Err(e)) => Err(StoreError::query(
                &self.context,
                sqlx::Error::Database(Box::new(SqliteError {
                    code: e.code,
                    message: format!("the batch of writes did not commit: {}", e.message),
                })),
            )),
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
fn run_job<T>(
    conn: &mut Connection,
    atomic: Atomic,
    context: &str,
    job: Job<Connection, T>,
    alone: bool,
) -> (Result<T, StoreError>, bool) {
    if alone {
        return match run_now(context, job(conn)) {
            Ok(Outcome::Commit(v)) => (Ok(v), false),
            Ok(Outcome::Rollback(v)) => (Ok(v), true),
            Err(e) => (Err(e), true),
        };
    }
    (run_in_savepoint(conn, atomic, context, job), false)
}

fn run_in_savepoint<T>(
    conn: &mut Connection,
    atomic: Atomic,
    context: &str,
    job: Job<Connection, T>,
) -> Result<T, StoreError> {
    let err = |e| StoreError::query(context, db_error(e));
    let savepoint = atomic == Atomic::Transaction;
    if savepoint {
        run_cached(conn, "SAVEPOINT write_job").map_err(err)?;
    }
    let outcome = run_now(context, job(conn));
    if savepoint {
        if !matches!(outcome, Ok(Outcome::Commit(_))) {
            run_cached(conn, "ROLLBACK TO write_job").map_err(err)?;
        }
        run_cached(conn, "RELEASE write_job").map_err(err)?;
    }
    outcome.map(Outcome::into_inner)
}

/// Runs writes from the front of `batch` in one transaction, until it is
/// empty or one fails (the rest stay in `batch`); whether it committed.
/// `Err` if another process holds the write lock and `wait` is false:
/// nothing ran.
fn run_batch(
    conn: &mut Connection,
    batch: &mut VecDeque<Box<dyn Write>>,
    wait: bool,
) -> Result<bool, Busy> {
    if let Err(e) = run_cached(conn, "BEGIN IMMEDIATE") {
        if !wait && is_busy(&e) {
            return Err(Busy);
        }
        let e = SqliteError::from(e);
        for write in batch.drain(..) {
            write.fail(sqlx::Error::Database(Box::new(e.clone())));
        }
        return Ok(false);
    }
    let alone = batch.len() == 1;
    let mut ran: Vec<Box<dyn Answer>> = Vec::with_capacity(batch.len());
    while let Some(write) = batch.pop_front() {
        if !write.is_wanted() {
            continue;
        }
        if write.is_late(Instant::now()) {
            write.fail(sqlx::Error::PoolTimedOut);
            continue;
        }
        let answer = write.run(conn, alone);
        let failed = answer.failed();
        ran.push(answer);
        if failed {
            break;
        }
    }
    let end = if ran.iter().any(|a| a.wants_rollback()) {
        // Alone in its batch: its own writes are undone by ending the transaction.
        "ROLLBACK"
    } else {
        "COMMIT"
    };
    // An error may already have ended the transaction (SQLite rolls back
    // on some); then there is nothing to end.
    let ended = if conn.is_autocommit() {
        Ok(())
    } else {
        run_cached(conn, end).map_err(SqliteError::from)
    };
    if ended.is_err() && !conn.is_autocommit() {
        // A failed COMMIT leaves the transaction open: undo it, so the next
        // batch starts clean.
        let _ = conn.execute_batch("ROLLBACK");
    }
    let committed = ended.is_ok() && end == "COMMIT" && !ran.is_empty();
    for answer in ran {
        answer.send(ended.as_ref().map(|_| ()));
    }
    Ok(committed)
}

/// Runs a statement without parameters or rows (`BEGIN`, `COMMIT`,
/// `SAVEPOINT` …), prepared once per connection.
fn run_cached(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.raw_execute().map(|_| ())
}

/// [`run_batch`] found the write lock held by another process.
struct Busy;

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
        let events = store
            .with_writer("counting events", |c| {
                c.query_row("SELECT COUNT(*) FROM events", [], |r| r.get::<_, i64>(0))
            })
            .await
            .unwrap();
        assert_eq!(events, 9 * tasks as i64);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writers_queue_instead_of_timing_out() {
        let dir = tempfile::tempdir().unwrap();
        run_concurrently(file_store(&dir, SHORT_BUSY_TIMEOUT).await, 200).await;
    }

    /// Another process's connection holding the write lock for `hold`.
    fn hold_write_lock(dir: &tempfile::TempDir, hold: Duration) -> std::thread::JoinHandle<()> {
        let other = Connection::open(dir.path().join("store.db")).unwrap();
        other.execute_batch("BEGIN IMMEDIATE").unwrap();
        std::thread::spawn(move || {
            std::thread::sleep(hold);
            other.execute_batch("COMMIT").unwrap();
        })
    }

    /// With another process holding the write lock, a write waits for it
    /// (on a blocking thread, never on the runtime's) and then commits;
    /// reads answer meanwhile.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_write_waits_for_another_processs_lock() {
        let dir = tempfile::tempdir().unwrap();
        let store = file_store(&dir, BUSY_TIMEOUT).await;
        let task = Task::new("locked out");
        store.create_task(&task).await.unwrap();
        let holder = hold_write_lock(&dir, Duration::from_millis(300));
        let started = Instant::now();
        let write = {
            let (store, id) = (store.clone(), task.id.clone());
            tokio::spawn(async move { store.transition(&id, Routing, None).await })
        };
        // The runtime is free while the write waits: reads still answer.
        let pending = store.get_task(&task.id).await.unwrap().unwrap().status;
        assert_eq!(pending, Pending);
        assert_eq!(write.await.unwrap().unwrap(), Pending);
        assert!(started.elapsed() >= Duration::from_millis(250));
        assert_eq!(
            store.get_task(&task.id).await.unwrap().unwrap().status,
            Routing
        );
        holder.join().unwrap();
    }

    /// Outside any Tokio runtime (another executor polls), writes still work,
    /// even one that must wait for another process's lock: the wait happens
    /// on the caller's thread.
    #[test]
    fn works_without_a_tokio_runtime() {
        let dir = tempfile::tempdir().unwrap();
        let store = tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(file_store(&dir, BUSY_TIMEOUT));
        let task = Task::new("no runtime");
        futures::executor::block_on(store.create_task(&task)).unwrap();
        let holder = hold_write_lock(&dir, Duration::from_millis(100));
        std::thread::spawn(move || {
            futures::executor::block_on(async {
                store.transition(&task.id, Routing, None).await.unwrap();
                assert_eq!(
                    store.get_task(&task.id).await.unwrap().unwrap().status,
                    Routing
                );
            });
        })
        .join()
        .unwrap();
        holder.join().unwrap();
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
        let conn = store.d.shared.writer.lock().unwrap().conn.take().unwrap();
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
        // The write done: the writer serves the queue (the writes above,
        // whose callers gave up, are dropped).
        Arc::clone(&store.d.shared).hand_on(conn, VecDeque::new());
        store.transition(id, Routing, None).await.unwrap();
        store.set_route(id, &route()).await.unwrap();
    }

    /// `journal_mode`, `synchronous` and `busy_timeout` of a connection.
    fn pragmas(c: &mut Connection) -> BoxFuture<'_, Result<Outcome<Vec<Cell>>, StoreError>> {
        let mut values = Vec::new();
        for pragma in ["journal_mode", "synchronous", "busy_timeout"] {
            let mut rows = fetch_now(c, &format!("PRAGMA {pragma}"), &[]).unwrap();
            values.push(rows.remove(0).0.remove(0));
        }
        Box::pin(std::future::ready(Ok(Outcome::Commit(values))))
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
        // WAL, 1 = NORMAL; readers wait 10 s for a lock, the writer never
        // sleeps on the runtime's thread (a busy batch moves to a blocking one).
        assert_eq!(
            on_reader,
            [Cell::Text("wal".into()), Cell::Int(1), Cell::Int(10_000)]
        );
        assert_eq!(
            on_writer,
            [Cell::Text("wal".into()), Cell::Int(1), Cell::Int(0)]
        );
    }
}
