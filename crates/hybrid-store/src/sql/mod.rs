//! The one SQL implementation of [`Store`](crate::Store), for every backend.
//!
//! [`SqlStore<D>`](SqlStore) holds the logic and every statement, written
//! once; a [`Dialect`] holds only what differs between SQLite and
//! PostgreSQL (see its table): how values are encoded, where statements
//! run, and the few clauses whose syntax or meaning differ.
//!
//! | file | holds |
//! | --- | --- |
//! | `sql/store.rs` | [`SqlStore`]: `impl Store`, every query, the row decoding |
//! | `sql/dialect.rs` | [`Dialect`], [`Arg`] (bind values), [`Row`] / [`Cell`] (read values), [`Job`] / [`Outcome`] (a unit of work) |
//! | `sqlite.rs` | the SQLite dialect: WAL file or memory, the single ordered writer with group commit, the lock file, TEXT timestamps |
//! | `postgres.rs` | the PostgreSQL dialect: the pool, per-test schemas, `TIMESTAMPTZ` / `JSON` encoding, `now()` for leases |
//! | `codec.rs` | conversions shared by both: JSON text, integers, status names, metrics |
//! | `migrations/{sqlite,postgres}` | the schema, one file per change and dialect |
//!
//! # Adding a table (say API tokens)
//!
//! 1. A migration in each of `migrations/sqlite` and `migrations/postgres`
//!    (`TEXT` timestamps and JSON in SQLite, `TIMESTAMPTZ` / `JSON` in
//!    PostgreSQL; never `JSONB`).
//! 2. The `Store` methods, in `sql/store.rs` only: each statement once, with
//!    `$n` placeholders and [`Arg`]s (`Arg::time` for timestamps,
//!    `Arg::json` for JSON), writes through `self.d.write(…)` (one
//!    statement: [`Atomic::Statement`], more: [`Atomic::Transaction`]),
//!    reads through `self.rows(…)`, rows decoded with [`Row::text`],
//!    [`Row::time`] ….
//! 3. Only if the two databases really need different SQL (a lock, a clock,
//!    a sequence), a constant or method on [`Dialect`], implemented in
//!    `sqlite.rs` and `postgres.rs`.
//!
//! The shared suite (`tests/store/suite.rs`) then runs the new cases on both.

mod dialect;
mod store;

pub(crate) use dialect::run_statements;
pub use dialect::{
    Arg, Atomic, BoxFuture, Cell, Dialect, EventRow, Job, Outcome, Row, job, parse_ts,
    placeholders, row_cells, values_insert,
};
pub use store::SqlStore;
