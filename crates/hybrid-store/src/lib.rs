//! Durable state for HybridPlatform: tasks, their status history, stage
//! results, events and the tamper-evident audit trail, in SQLite (the embedded default) or PostgreSQL (several
//! workers sharing one database).
//!
//! Open a store with [`connect()`]; every backend implements the same [`Store`]
//! trait (its docs list the tables), runs its migrations on connect, and
//! passes the same test suite.
//!
//! | module | what it holds |
//! | --- | --- |
//! | [`store`] | the [`Store`] trait and its records ([`TaskRecord`], [`TaskSummary`], [`TaskFilter`], [`StatusChange`], [`MetricsSnapshot`]) |
//! | [`approval`] | approval requests: [`NewApproval`], [`Approval`], [`ApprovalStatus`], [`ApprovalFilter`] |
//! | [`audit`] | the audit chain: [`AuditEntry`], [`AuditRecord`], [`AuditFilter`], [`AuditVerification`], the hash encoding |
//! | [`budget`] | budgets per task, platform, submitter and day: [`BudgetScope`], [`BudgetCharge`], [`ChargeOutcome`], the ledger ([`LedgerEntry`]) |
//! | [`journal`] | resumable tasks: the journal of side effects ([`JournalBegin`], [`JournalEntry`], [`JournalState`]) and task leases |
//! | [`redacting`] | [`RedactingStore`]: every write redacted; what [`connect()`] returns |
//! | [`connect`](mod@connect) | [`connect()`] and [`connect_redacted`] by URL, [`default_sqlite_url`] |
//! | [`sql`] | [`SqlStore`]: the one implementation of [`Store`], every query written once, over a [`Dialect`](sql::Dialect) |
//! | [`sqlite`] | the SQLite dialect and [`SqliteStore`] (`SqlStore<Sqlite>`) |
//! | [`postgres`] | the PostgreSQL dialect and [`PostgresStore`] (`SqlStore<Postgres>`), [`connect_postgres_in_schema`] for isolated tests |
//! | [`error`] | [`StoreError`] |
//!
//! ```no_run
//! # async fn demo() -> Result<(), hybrid_store::StoreError> {
//! use hybrid_core::{Task, TaskStatus};
//! let store = hybrid_store::connect("sqlite::memory:").await?;
//! let task = Task::new("Explain quantum computing");
//! store.create_task(&task).await?;
//! store.transition(&task.id, TaskStatus::Routing, None).await?;
//! assert!(store.transition(&task.id, TaskStatus::Completed, None).await.is_err());
//! # Ok(()) }
//! ```

pub mod approval;
pub mod audit;
pub mod budget;
mod codec;
pub mod connect;
pub mod error;
pub mod journal;
pub mod postgres;
pub mod redacting;
pub mod sql;
pub mod sqlite;
pub mod store;

pub use approval::{Approval, ApprovalFilter, ApprovalStatus, NewApproval};
pub use audit::{AuditEntry, AuditFilter, AuditRecord, AuditVerification, BadRecord};
pub use budget::{BudgetCharge, BudgetScope, ChargeOutcome, LedgerEntry, LedgerKind};
pub use connect::{connect, connect_redacted, default_sqlite_url};
pub use error::StoreError;
/// The secrets module's redactor, which every store write passes (see [`redacting`]).
pub use hybrid_secrets::Redactor;
pub use journal::{JournalBegin, JournalEntry, JournalState};
pub use postgres::{PostgresStore, connect_postgres_in_schema, drop_postgres_schema};
pub use redacting::RedactingStore;
pub use sql::SqlStore;
pub use sqlite::SqliteStore;
pub use store::{
    MetricsSnapshot, StatusChange, Store, StoreWrite, TaskFilter, TaskRecord, TaskSummary,
};
