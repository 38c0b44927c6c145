//! [`StoreError`]: everything that can go wrong talking to the database.
//!
//! Messages are one line and name what failed (the URL scheme, the task id, the
//! operation). The underlying `sqlx` error is kept in a public field and
//! printed inside the message, so it is not repeated as a `source()`.

use std::path::PathBuf;

use chrono::{DateTime, SecondsFormat, Utc};
use hybrid_core::{CoreError, TaskId};

use crate::ApprovalStatus;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database could not be opened or reached.
    #[error("cannot connect to the {backend} database: {error}")]
    Connection {
        /// `sqlite` or `postgres`.
        backend: &'static str,
        /// What the driver said.
        error: sqlx::Error,
    },
    /// The migration lock file of a SQLite database could not be taken.
    #[error("cannot lock {} for migrations: {error}", path.display())]
    Lock {
        /// The lock file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        error: std::io::Error,
    },
    /// The directory for a SQLite file could not be created.
    #[error("cannot create database directory {}: {error}", path.display())]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// What the OS said.
        error: std::io::Error,
    },
    /// Applying the schema migrations failed.
    #[error("cannot migrate the {backend} database: {error}")]
    Migration {
        /// `sqlite` or `postgres`.
        backend: &'static str,
        /// What the migrator said.
        error: sqlx::migrate::MigrateError,
    },
    /// A statement failed.
    #[error("database error while {context}: {error}")]
    Query {
        /// What was being done, e.g. `appending event 3 of task 0190…`.
        context: String,
        /// What the driver said.
        error: sqlx::Error,
    },
    /// No task has this id, or (an id starting `ap_`) no approval request.
    #[error("{kind} {0} not found", kind = not_found_kind(.0))]
    NotFound(TaskId),
    /// The approval request was already answered (or expired): the first
    /// answer stands.
    #[error(
        "approval {id} is already {status} (by {decided_by} at {})",
        decided_at.to_rfc3339_opts(SecondsFormat::Secs, true)
    )]
    ApprovalClosed {
        /// The approval request.
        id: String,
        /// Its status now, never `pending`.
        status: ApprovalStatus,
        /// Who answered it (`timeout` for an expired one).
        decided_by: String,
        /// When.
        decided_at: DateTime<Utc>,
    },
    /// A row with the same key is already stored.
    #[error("{0} already exists")]
    AlreadyExists(String),
    /// The state machine does not allow the requested status change.
    #[error("task {id}: {error}")]
    IllegalTransition {
        /// The task.
        id: TaskId,
        /// The core error, [`CoreError::IllegalTransition`], naming both statuses.
        error: CoreError,
    },
    /// Other writers kept changing the task's status; the compare-and-set gave up.
    #[error(
        "task {id}: status kept changing under concurrent writers, gave up after {attempts} attempts"
    )]
    Contention {
        /// The task.
        id: TaskId,
        /// How many times the compare-and-set was tried.
        attempts: u32,
    },
    /// [`journal_finish`](crate::Store::journal_finish) on an entry already
    /// finished: the first output stands.
    #[error("task {task}: journal entry `{key}` is already finished")]
    JournalFinished {
        /// The task.
        task: TaskId,
        /// The entry's key.
        key: String,
    },
    /// [`journal_finish`](crate::Store::journal_finish) on a key never
    /// begun with [`journal_begin`](crate::Store::journal_begin).
    #[error("task {task}: journal entry `{key}` was never begun")]
    JournalNotBegun {
        /// The task.
        task: TaskId,
        /// The key.
        key: String,
    },
    /// A lease length of zero or more than
    /// [`MAX_LEASE_TTL`](crate::journal::MAX_LEASE_TTL).
    #[error(
        "task {task}: lease ttl {ttl:?} out of range (more than zero, at most {max:?})",
        max = crate::journal::MAX_LEASE_TTL
    )]
    InvalidLeaseTtl {
        /// The task.
        task: TaskId,
        /// The ttl asked for.
        ttl: std::time::Duration,
    },
    /// A value could not be written as JSON.
    #[error("cannot encode {what} as JSON: {detail}")]
    Encode {
        /// What was written, e.g. `result of task 0190…`.
        what: String,
        /// Why it failed.
        detail: String,
    },
    /// A stored value could not be turned back into its type.
    #[error("cannot decode stored {what}: {detail}")]
    Decode {
        /// What was read, e.g. `result of task 0190…`.
        what: String,
        /// Why it failed.
        detail: String,
    },
    /// The URL names no backend this crate knows.
    #[error(
        "unsupported database URL scheme `{scheme}` (expected sqlite://, sqlite::memory:, postgres:// or postgresql://)"
    )]
    UnsupportedUrl {
        /// The scheme as written (the text before the first `:`), or the whole URL if it has none.
        scheme: String,
    },
    /// A PostgreSQL schema name that is not a plain lower-case identifier.
    #[error(
        "invalid postgres schema name `{0}` (use lower-case letters, digits and `_`, at most 63 bytes, not starting with a digit)"
    )]
    InvalidSchema(String),
}

impl StoreError {
    /// A failed statement, with what was being done.
    pub(crate) fn query(context: impl Into<String>, error: sqlx::Error) -> Self {
        StoreError::Query {
            context: context.into(),
            error,
        }
    }

    /// What a failed connect to `backend` becomes.
    pub(crate) fn connection(backend: &'static str) -> impl Fn(sqlx::Error) -> Self + Copy {
        move |error| StoreError::Connection { backend, error }
    }

    /// What a failed migration of `backend` becomes.
    pub(crate) fn migration(
        backend: &'static str,
    ) -> impl Fn(sqlx::migrate::MigrateError) -> Self + Copy {
        move |error| StoreError::Migration { backend, error }
    }

    /// A value that did not encode.
    pub(crate) fn encode(what: impl Into<String>, detail: impl ToString) -> Self {
        StoreError::Encode {
            what: what.into(),
            detail: detail.to_string(),
        }
    }

    /// A stored value that did not decode.
    pub(crate) fn decode(what: impl Into<String>, detail: impl ToString) -> Self {
        StoreError::Decode {
            what: what.into(),
            detail: detail.to_string(),
        }
    }
}

/// What a [`StoreError::NotFound`] id names: approval ids start with `ap_`.
fn not_found_kind(id: &TaskId) -> &'static str {
    if id.as_str().starts_with(crate::approval::ID_PREFIX) {
        "approval"
    } else {
        "task"
    }
}

/// Whether the error is a unique or primary-key violation.
pub(crate) fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(e) if e.is_unique_violation())
}

/// Whether the error is a foreign-key violation.
pub(crate) fn is_foreign_key_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(e) if e.is_foreign_key_violation())
}
