//! What differs between the SQL backends, and nothing else: the [`Dialect`]
//! trait, and the backend-neutral values ([`Arg`]) and rows ([`Row`]) that
//! cross it.
//!
//! The generic store ([`SqlStore`](super::SqlStore)) writes every statement
//! once, with `$1, $2 …` placeholders (SQLite reads them as named
//! parameters), standard SQL (`CAST`, `ON CONFLICT`, `RETURNING`, `->>`) and
//! no casts. A dialect turns [`Arg`]s into its driver's types (timestamps:
//! RFC 3339 text in SQLite, `TIMESTAMPTZ` in PostgreSQL; JSON: `TEXT` or
//! `JSON`), reads rows back into [`Cell`]s, and runs statements where its
//! backend wants them: reads on a pool, writes through
//! [`Dialect::write`] (SQLite: the one ordered writer; PostgreSQL: a pooled
//! connection, in a transaction when the write has more than one statement).

use std::future::Future;
use std::pin::Pin;

use chrono::{DateTime, Utc};

use crate::StoreError;
use crate::codec::micros;

/// A boxed, sendable future.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One write's work on a connection: its statements and the logic between
/// them. Owned (`'static`), because SQLite runs it on the writer's task.
pub type Job<C, T> =
    Box<dyn for<'c> FnOnce(&'c mut C) -> BoxFuture<'c, Result<Outcome<T>, StoreError>> + Send>;

/// Wraps a closure as a [`Job`] (the explicit bound lets the closure borrow
/// its connection argument).
pub fn job<C, T, F>(f: F) -> Job<C, T>
where
    F: for<'c> FnOnce(&'c mut C) -> BoxFuture<'c, Result<Outcome<T>, StoreError>> + Send + 'static,
{
    Box::new(f)
}

/// How a write ends when its job succeeds.
#[derive(Debug)]
pub enum Outcome<T> {
    /// Keep what it wrote.
    Commit(T),
    /// Undo what it wrote, and answer `T` all the same (a refused budget
    /// reservation).
    Rollback(T),
}

impl<T> Outcome<T> {
    /// The answer, committed or rolled back.
    pub fn into_inner(self) -> T {
        match self {
            Outcome::Commit(v) | Outcome::Rollback(v) => v,
        }
    }
}

/// How many statements a write runs, which decides whether it needs a
/// transaction of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Atomic {
    /// One statement: atomic by itself.
    Statement,
    /// Several statements that must all happen or none.
    Transaction,
}

/// A bind parameter, before the dialect encodes it.
#[derive(Debug, Clone, PartialEq)]
pub enum Arg {
    /// Text, or `NULL`.
    Text(Option<String>),
    /// A 64-bit integer, or `NULL`.
    Int(Option<i64>),
    /// A timestamp, cut to the microsecond, or `NULL`.
    Time(Option<DateTime<Utc>>),
    /// JSON text, stored as written (key order kept), or `NULL`.
    Json(Option<String>),
}

impl Arg {
    /// A timestamp, cut to the microsecond both backends store.
    pub fn time(at: DateTime<Utc>) -> Self {
        Arg::Time(Some(micros(at)))
    }

    /// An optional timestamp.
    pub fn opt_time(at: Option<DateTime<Utc>>) -> Self {
        Arg::Time(at.map(micros))
    }

    /// JSON text.
    pub fn json(text: String) -> Self {
        Arg::Json(Some(text))
    }
}

impl From<&str> for Arg {
    fn from(text: &str) -> Self {
        Arg::Text(Some(text.to_owned()))
    }
}

impl From<&String> for Arg {
    fn from(text: &String) -> Self {
        Arg::Text(Some(text.clone()))
    }
}

impl From<String> for Arg {
    fn from(text: String) -> Self {
        Arg::Text(Some(text))
    }
}

impl From<Option<&str>> for Arg {
    fn from(text: Option<&str>) -> Self {
        Arg::Text(text.map(str::to_owned))
    }
}

impl From<Option<String>> for Arg {
    fn from(text: Option<String>) -> Self {
        Arg::Text(text)
    }
}

impl From<&Option<String>> for Arg {
    fn from(text: &Option<String>) -> Self {
        Arg::Text(text.clone())
    }
}

impl From<i64> for Arg {
    fn from(value: i64) -> Self {
        Arg::Int(Some(value))
    }
}

impl From<Option<i64>> for Arg {
    fn from(value: Option<i64>) -> Self {
        Arg::Int(value)
    }
}

/// `args![a, b, …]`: a `Vec<Arg>` of values converted with [`Arg::from`].
macro_rules! args {
    ($($arg:expr),* $(,)?) => {
        vec![$($crate::sql::Arg::from($arg)),*]
    };
}
pub(crate) use args;

/// One column value as read.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// `NULL`.
    Null,
    /// An integer.
    Int(i64),
    /// A floating-point number.
    Float(f64),
    /// Text (JSON columns read as their text).
    Text(String),
    /// A timestamp column of a backend with a timestamp type.
    Time(DateTime<Utc>),
}

impl Cell {
    fn kind(&self) -> &'static str {
        match self {
            Cell::Null => "NULL",
            Cell::Int(_) => "an integer",
            Cell::Float(_) => "a number",
            Cell::Text(_) => "text",
            Cell::Time(_) => "a timestamp",
        }
    }
}

/// One row as read: its cells, taken out by position as their Rust types.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Row(pub Vec<Cell>);

impl Row {
    fn take(&mut self, i: usize) -> Cell {
        self.0
            .get_mut(i)
            .map_or(Cell::Null, |c| std::mem::replace(c, Cell::Null))
    }

    fn mismatch(i: usize, want: &str, got: &Cell, what: &str) -> StoreError {
        StoreError::decode(
            what,
            format!("column {i}: expected {want}, found {}", got.kind()),
        )
    }

    /// Text that may be `NULL`.
    pub fn opt_text(&mut self, i: usize, what: &str) -> Result<Option<String>, StoreError> {
        match self.take(i) {
            Cell::Null => Ok(None),
            Cell::Text(t) => Ok(Some(t)),
            other => Err(Self::mismatch(i, "text", &other, what)),
        }
    }

    /// Text.
    pub fn text(&mut self, i: usize, what: &str) -> Result<String, StoreError> {
        self.opt_text(i, what)?
            .ok_or_else(|| StoreError::decode(what, format!("column {i}: unexpected NULL")))
    }

    /// An integer that may be `NULL`.
    pub fn opt_int(&mut self, i: usize, what: &str) -> Result<Option<i64>, StoreError> {
        match self.take(i) {
            Cell::Null => Ok(None),
            Cell::Int(n) => Ok(Some(n)),
            other => Err(Self::mismatch(i, "an integer", &other, what)),
        }
    }

    /// An integer.
    pub fn int(&mut self, i: usize, what: &str) -> Result<i64, StoreError> {
        self.opt_int(i, what)?
            .ok_or_else(|| StoreError::decode(what, format!("column {i}: unexpected NULL")))
    }

    /// A number that may be `NULL` (an integer is widened).
    #[allow(clippy::cast_precision_loss)]
    pub fn opt_float(&mut self, i: usize, what: &str) -> Result<Option<f64>, StoreError> {
        match self.take(i) {
            Cell::Null => Ok(None),
            Cell::Float(x) => Ok(Some(x)),
            Cell::Int(n) => Ok(Some(n as f64)),
            other => Err(Self::mismatch(i, "a number", &other, what)),
        }
    }

    /// A timestamp that may be `NULL`: a timestamp column, or RFC 3339 text.
    pub fn opt_time(&mut self, i: usize, what: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        match self.take(i) {
            Cell::Null => Ok(None),
            Cell::Time(t) => Ok(Some(t)),
            Cell::Text(t) => parse_ts(&t, what).map(Some),
            other => Err(Self::mismatch(i, "a timestamp", &other, what)),
        }
    }

    /// A timestamp.
    pub fn time(&mut self, i: usize, what: &str) -> Result<DateTime<Utc>, StoreError> {
        self.opt_time(i, what)?
            .ok_or_else(|| StoreError::decode(what, format!("column {i}: unexpected NULL")))
    }

    /// A timestamp as the audit chain hashes it: stored text exactly as
    /// stored (an edit to it must show), a timestamp column as
    /// [`timestamp_text`](crate::audit::timestamp_text).
    pub fn time_text(&mut self, i: usize, what: &str) -> Result<String, StoreError> {
        match self.take(i) {
            Cell::Text(t) => Ok(t),
            Cell::Time(t) => Ok(crate::audit::timestamp_text(t)),
            other => Err(Self::mismatch(i, "a timestamp", &other, what)),
        }
    }
}

/// A row's values: `NULL`s as [`Cell::Null`], the rest by `cell(row,
/// index, type name)` (the value's type in SQLite, the column's in
/// PostgreSQL).
pub fn row_cells<R>(
    row: &R,
    cell: impl Fn(&R, usize, &str) -> Result<Cell, sqlx::Error>,
) -> Result<Row, sqlx::Error>
where
    R: sqlx::Row,
    usize: sqlx::ColumnIndex<R>,
{
    use sqlx::{TypeInfo as _, ValueRef as _};
    (0..row.len())
        .map(|i| {
            let raw = row.try_get_raw(i)?;
            if raw.is_null() {
                return Ok(Cell::Null);
            }
            let type_name = raw.type_info().name().to_owned();
            drop(raw);
            cell(row, i, &type_name)
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Row)
}

/// RFC 3339 text as a timestamp.
pub fn parse_ts(text: &str, what: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| StoreError::decode(what, format!("timestamp `{text}`: {e}")))
}

/// A SQL backend: how it encodes values, runs statements, and the few
/// statements and clauses whose syntax or semantics differ. Everything else
/// is written once in [`SqlStore`](super::SqlStore).
///
/// | member | SQLite | PostgreSQL |
/// | --- | --- | --- |
/// | [`BACKEND`](Self::BACKEND) | `sqlite` | `postgres` |
/// | [`execute`](Self::execute), [`fetch`](Self::fetch) | [`Arg::Time`] as RFC 3339 µs text, [`Arg::Json`] as `TEXT` | `TIMESTAMPTZ`, `JSON` |
/// | [`read`](Self::read), [`read_snapshot`](Self::read_snapshot) | a pooled read connection, on the caller's thread (in memory: the one connection, through the writer) | the pool |
/// | [`SNAPSHOT`](Self::SNAPSHOT) | `BEGIN` (a WAL snapshot) | `REPEATABLE READ READ ONLY` |
/// | [`write`](Self::write) | the one writer connection, group commit, `BEGIN IMMEDIATE` | a pooled connection; `BEGIN` only for [`Atomic::Transaction`] |
/// | [`JOURNAL_BEGIN`](Self::JOURNAL_BEGIN) | begin order = the task's `MAX(seq) + 1` under the write lock | an identity column |
/// | [`FOR_UPDATE`](Self::FOR_UPDATE) | nothing (the write lock is held) | `FOR UPDATE` |
/// | [`AUDIT_LOCK`](Self::AUDIT_LOCK) | none (the write lock is held) | `LOCK TABLE audit_log IN SHARE ROW EXCLUSIVE MODE` |
/// | [`LEASE_NOW`](Self::LEASE_NOW), [`LEASE_UNTIL`](Self::LEASE_UNTIL), [`lease_clock`](Self::lease_clock) | the application's clock, bound | the database's `now()` |
/// | [`MAX_BIND_PARAMS`](Self::MAX_BIND_PARAMS) | 32,766 | 65,535 |
/// | [`DML_IN_CTE`](Self::DML_IN_CTE) | no: a status change is two statements in the batch | yes: one statement, no `BEGIN`/`COMMIT` |
/// | [`insert_events`](Self::insert_events) | multi-row `VALUES` (the default) | one `UNNEST` of arrays |
pub trait Dialect: Clone + Send + Sync + std::fmt::Debug + 'static {
    /// `sqlite` or `postgres`, as [`Store::backend`](crate::Store::backend) says.
    const BACKEND: &'static str;

    /// `INSERT` of a new `started` journal entry, doing nothing if the key
    /// exists. `$1` task id, `$2` key, `$3` `started_at`; the dialect fills
    /// in `seq`, the begin order within the task.
    const JOURNAL_BEGIN: &'static str;

    /// What ends a `SELECT` that must lock the rows it reads until the write
    /// commits.
    const FOR_UPDATE: &'static str;

    /// Taken before reading the head of the audit chain when an append lost
    /// the race for its position (see [`Store::append_audit`](crate::Store::append_audit)).
    const AUDIT_LOCK: Option<&'static str>;

    /// The lease clock's "now" in a lease statement whose own parameters
    /// are `$1` and `$2` (clock parameters from `$3`, see [`lease_clock`](Self::lease_clock)).
    const LEASE_NOW: &'static str;

    /// "now + ttl", likewise.
    const LEASE_UNTIL: &'static str;

    /// Bind parameters one statement may have.
    const MAX_BIND_PARAMS: usize;

    /// Whether a write can feed another in one statement (`WITH done AS
    /// (UPDATE … RETURNING id) INSERT … SELECT … FROM done`), which saves a
    /// transaction's round trips.
    const DML_IN_CTE: bool;

    /// `BEGIN` of a read-only transaction whose statements all see one
    /// snapshot.
    const SNAPSHOT: &'static str;

    /// A connection statements run on (in a transaction or not).
    type Conn: Send + 'static;

    /// The parameters from `$3` that [`LEASE_NOW`](Self::LEASE_NOW) and
    /// [`LEASE_UNTIL`](Self::LEASE_UNTIL) use, for a lease of `ttl_micros`
    /// from `now` (the application's clock).
    fn lease_clock(now: DateTime<Utc>, until: DateTime<Utc>, ttl_micros: i64) -> Vec<Arg>;

    /// Runs one statement; how many rows it changed.
    fn execute<'a>(
        conn: &'a mut Self::Conn,
        sql: &'a str,
        args: Vec<Arg>,
    ) -> BoxFuture<'a, Result<u64, sqlx::Error>>;

    /// Runs one statement; the rows it returned.
    fn fetch<'a>(
        conn: &'a mut Self::Conn,
        sql: &'a str,
        args: Vec<Arg>,
    ) -> BoxFuture<'a, Result<Vec<Row>, sqlx::Error>>;

    /// Runs a read-only job on a read connection.
    fn read<T: Send + 'static>(
        &self,
        context: String,
        job: Job<Self::Conn, T>,
    ) -> BoxFuture<'_, Result<T, StoreError>>;

    /// Runs a read-only job whose statements all see one snapshot
    /// ([`SNAPSHOT`](Self::SNAPSHOT)).
    fn read_snapshot<T: Send + 'static>(
        &self,
        context: String,
        job: Job<Self::Conn, T>,
    ) -> BoxFuture<'_, Result<T, StoreError>>;

    /// Runs a write job, all of it or none, and returns once it is committed
    /// (durable: another process sees it at once).
    fn write<T: Send + 'static>(
        &self,
        atomic: Atomic,
        context: String,
        job: Job<Self::Conn, T>,
    ) -> BoxFuture<'_, Result<T, StoreError>>;

    /// Inserts event rows (`task_id`, `seq`, `event_type`, `at`, body JSON)
    /// in one write's connection: by default multi-row `INSERT`s of at most
    /// [`MAX_BIND_PARAMS`](Self::MAX_BIND_PARAMS) parameters each.
    fn insert_events<'a>(
        conn: &'a mut Self::Conn,
        rows: Vec<EventRow>,
    ) -> BoxFuture<'a, Result<(), sqlx::Error>> {
        Box::pin(async move {
            const COLUMNS: usize = 5;
            let per = (Self::MAX_BIND_PARAMS / COLUMNS).max(1);
            let mut rows = rows.into_iter().peekable();
            while rows.peek().is_some() {
                let chunk: Vec<EventRow> = rows.by_ref().take(per).collect();
                let sql = values_insert(
                    "INSERT INTO events (task_id, seq, event_type, at, body) VALUES ",
                    COLUMNS,
                    chunk.len(),
                );
                let args = chunk
                    .into_iter()
                    .flat_map(|r| {
                        [
                            Arg::from(r.task_id),
                            Arg::from(r.seq),
                            Arg::from(r.event_type),
                            Arg::time(r.at),
                            Arg::json(r.body),
                        ]
                    })
                    .collect();
                Self::execute(conn, &sql, args).await?;
            }
            Ok(())
        })
    }
}

/// The [`Dialect::execute`] and [`Dialect::fetch`] of a dialect whose
/// module has `query(sql, &args)` (binds the [`Arg`]s) and `cells(&row)`
/// (reads a row), for connection type `$conn`: written once for both.
macro_rules! run_statements {
    ($conn:ty) => {
        fn execute<'a>(
            conn: &'a mut $conn,
            sql: &'a str,
            args: Vec<$crate::sql::Arg>,
        ) -> $crate::sql::BoxFuture<'a, Result<u64, sqlx::Error>> {
            Box::pin(async move {
                let done = query(sql, &args).execute(&mut *conn).await?;
                Ok(done.rows_affected())
            })
        }

        fn fetch<'a>(
            conn: &'a mut $conn,
            sql: &'a str,
            args: Vec<$crate::sql::Arg>,
        ) -> $crate::sql::BoxFuture<'a, Result<Vec<$crate::sql::Row>, sqlx::Error>> {
            Box::pin(async move {
                let rows = query(sql, &args).fetch_all(&mut *conn).await?;
                rows.iter().map(cells).collect()
            })
        }
    };
}
pub(crate) use run_statements;

/// One `events` row, encoded.
#[derive(Debug, Clone)]
pub struct EventRow {
    /// The task.
    pub task_id: String,
    /// Its position in the task's events.
    pub seq: i64,
    /// The event's kind.
    pub event_type: String,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// The event as JSON.
    pub body: String,
}

/// `head` followed by `rows` groups of `columns` placeholders:
/// `($1, $2), ($3, $4)`.
pub fn values_insert(head: &str, columns: usize, rows: usize) -> String {
    let mut sql = String::with_capacity(head.len() + rows * columns * 5);
    sql.push_str(head);
    let mut n = 0;
    for r in 0..rows {
        sql.push_str(if r == 0 { "(" } else { ", (" });
        for c in 0..columns {
            n += 1;
            if c > 0 {
                sql.push_str(", ");
            }
            sql.push('$');
            sql.push_str(&n.to_string());
        }
        sql.push(')');
    }
    sql
}

/// `$first, $first+1, …` (`count` of them), for an `IN (…)` list.
pub fn placeholders(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|n| format!("${n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholder_lists() {
        assert_eq!(
            values_insert("INSERT INTO t (a, b) VALUES ", 2, 2),
            "INSERT INTO t (a, b) VALUES ($1, $2), ($3, $4)"
        );
        assert_eq!(placeholders(3, 3), "$3, $4, $5");
    }

    #[test]
    fn cells_decode_or_name_the_mismatch() {
        let mut row = Row(vec![
            Cell::Text("2025-10-15T23:47:00.000001Z".into()),
            Cell::Null,
            Cell::Int(3),
            Cell::Text("x".into()),
        ]);
        let at = row.time(0, "r").unwrap();
        assert_eq!(
            crate::audit::timestamp_text(at),
            "2025-10-15T23:47:00.000001Z"
        );
        assert_eq!(row.opt_text(1, "r").unwrap(), None);
        assert_eq!(row.opt_float(2, "r").unwrap(), Some(3.0));
        let err = row.int(3, "thing").unwrap_err();
        assert!(
            err.to_string().contains("expected an integer, found text"),
            "{err}"
        );
    }
}
