//! The [`Store`] trait and the records it reads and writes.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use hybrid_core::{
    Event, Money, RouteInfo, StageResult, Task, TaskId, TaskResult, TaskStatus, TaskType, Usage,
};
use serde::{Deserialize, Serialize};

use crate::StoreError;
use crate::approval::{Approval, ApprovalFilter, NewApproval};
use crate::audit::{AuditEntry, AuditFilter, AuditRecord, AuditVerification};
use crate::budget::{BudgetCharge, BudgetScope, ChargeOutcome, LedgerEntry};
use crate::journal::{JournalBegin, JournalEntry};

/// Durable task state, the same for every backend.
///
/// Every write is committed before the call returns, so another process (or
/// another worker on another machine, with PostgreSQL) sees it at once.
/// Status changes go through [`TaskStatus::can_transition`] inside one
/// transaction with a compare-and-set on the old status, so two writers racing
/// on one task cannot both win.
///
/// | table | one row per | key | holds |
/// | --- | --- | --- | --- |
/// | `tasks` | task | `id` | the task JSON; indexed columns `task_type`, `priority`, `status`, `submitted_by`, `created_at`, `updated_at`; `platform` and route JSON (from [`set_route`](Store::set_route) / [`finish`](Store::finish)); result JSON and its columns `output`, `input_tokens`, `output_tokens`, `cache_read_tokens`, `cache_write_tokens`, `cost_nanos` (NULL = unknown), `duration_ms`, `error`, `finished_at`; the lease `lease_owner`, `lease_until` (NULL = none) — see [`journal`](crate::journal) |
/// | `status_changes` | status change | `id` (insertion order) | `task_id`, `from_status` (NULL on creation), `to_status`, `reason`, `at` |
/// | `events` | [`Event`] | (`task_id`, `seq`) | `event_type`, `at`, the event JSON |
/// | `stages` | stage of a task | (`task_id`, `position`) | `name`, `agent`, `platform`, the [`StageResult`] JSON |
/// | `approvals` | approval request | `id` (`ap_…`) | `task_id` (foreign key), `call_id`, `agent`, `tool`, `command`, `rule`, `reason`, `status` (`pending`, `approved`, `rejected`, `expired`), `requested_at`, `expires_at`, `decided_by`, `decided_at`, `note` — see [`approval`](crate::approval) |
/// | `budgets` | budget scope | `scope` (`task:<id>`, `platform:<name>`, `submitter:<name>`, `day:<YYYY-MM-DD>`) | `spent_nanos`, `updated_at` — see [`budget`](crate::budget) |
/// | `budget_ledger` | reservation or settlement of one scope | `id` (insertion order) | `task_id` (no foreign key), `scope`, `kind` (`reserve`, `settle`), `delta_nanos`, `note`, `at` |
/// | `journal` | side effect of a task | (`task_id`, `key`) | `seq` (begin order), `state` (`started`, `finished`), `output` JSON (NULL until finished), `started_at`, `finished_at` — see [`journal`](crate::journal) |
/// | `audit_log` | audit record | `seq` (1, 2, 3 … without gaps) | `at`, `task_id` (no foreign key), `agent`, `action`, `command`, `output`, `user_name`, `approved_by`, `detail` (canonical JSON), `prev_hash`, `hash` — see [`audit`](crate::audit) |
///
/// Indexes: `tasks(status)`, `tasks(created_at)`, `status_changes(task_id, id)`,
/// `audit_log(task_id, seq)`, `budget_ledger(task_id, id)`, `budget_ledger(scope, id)`, `approvals(status, requested_at)`, `approvals(task_id)`, `journal(task_id, seq)`;
/// `events(task_id, seq)` and `stages(task_id, position)` are primary keys.
/// Money is stored as integer nano-dollars; JSON is `TEXT` in SQLite and
/// `JSON` in PostgreSQL (not `JSONB`, which would reorder keys and lose stage
/// order); timestamps are RFC 3339 `TEXT` with microseconds in SQLite and
/// `TIMESTAMPTZ` in PostgreSQL.
#[async_trait]
pub trait Store: Send + Sync + fmt::Debug {
    /// `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;

    /// Stores a new task in status `pending` and records the creation in the
    /// status history. [`StoreError::AlreadyExists`] if the id is taken.
    async fn create_task(&self, task: &Task) -> Result<(), StoreError>;

    /// Moves a task to `to` if the state machine allows it from the status it
    /// is in now, records the change, and returns the previous status.
    ///
    /// [`StoreError::IllegalTransition`] (status unchanged) if not allowed,
    /// [`StoreError::NotFound`] if there is no such task.
    async fn transition(
        &self,
        id: &TaskId,
        to: TaskStatus,
        reason: Option<&str>,
    ) -> Result<TaskStatus, StoreError>;

    /// Records the routing decision (the `platform` column and the route JSON).
    async fn set_route(&self, id: &TaskId, route: &RouteInfo) -> Result<(), StoreError>;

    /// Appends one event. [`StoreError::AlreadyExists`] if its `(task_id, seq)`
    /// is taken, [`StoreError::NotFound`] if the task is unknown.
    async fn append_event(&self, event: &Event) -> Result<(), StoreError>;

    /// Appends several events in one transaction: all or none.
    async fn append_events(&self, events: &[Event]) -> Result<(), StoreError>;

    /// Inserts or replaces the stage at `position` of a task.
    async fn put_stage(
        &self,
        id: &TaskId,
        position: u32,
        name: &str,
        stage: &StageResult,
    ) -> Result<(), StoreError>;

    /// Stores the final result and moves the task to `result.status`, in one
    /// transaction. The status change is checked like [`transition`](Store::transition);
    /// a task already in `result.status` (say, blocked earlier by a guardrail)
    /// keeps it and just gets the result.
    async fn finish(&self, result: &TaskResult) -> Result<(), StoreError>;

    /// The task and everything known about it, `None` if there is no such task.
    async fn get_task(&self, id: &TaskId) -> Result<Option<TaskRecord>, StoreError>;

    /// Tasks, newest first, filtered by status, at most `limit` (default 50).
    async fn list_tasks(&self, filter: &TaskFilter) -> Result<Vec<TaskSummary>, StoreError>;

    /// A task's events, by `seq`.
    async fn events(&self, id: &TaskId) -> Result<Vec<Event>, StoreError>;

    /// A task's stages (name and result), by position.
    async fn stages(&self, id: &TaskId) -> Result<Vec<(String, StageResult)>, StoreError>;

    /// Every status a task has been in, oldest first; the first entry is the
    /// creation (`from: None, to: pending`).
    async fn status_history(&self, id: &TaskId) -> Result<Vec<StatusChange>, StoreError>;

    /// Counters over all tasks, computed with SQL aggregates.
    async fn metrics(&self) -> Result<MetricsSnapshot, StoreError>;

    /// Appends one record to the audit trail and returns it as stored.
    ///
    /// The built-in secret patterns of [`Redactor`](crate::Redactor) are
    /// applied first (secrets only the caller knows are the caller's to
    /// redact, see [`audit`](crate::audit)); then the head of the chain is
    /// read and the record written as `seq` = head + 1 with `prev_hash` = the
    /// head's hash, atomically: SQLite does both in one `BEGIN IMMEDIATE`
    /// transaction; PostgreSQL tries without a lock (the primary key on `seq`
    /// lets one appender per position win) and, having lost a race, retries
    /// once under `LOCK TABLE audit_log IN SHARE ROW EXCLUSIVE MODE`. Safe
    /// with many concurrent appenders in many processes: the chain stays
    /// gapless and linear.
    async fn append_audit(&self, entry: &AuditEntry) -> Result<AuditRecord, StoreError>;

    /// Audit records by ascending `seq`, filtered by task and `after_seq`, at
    /// most `limit` (none: all of them — page with `after_seq` for big trails).
    async fn audit_records(&self, filter: &AuditFilter) -> Result<Vec<AuditRecord>, StoreError>;

    /// Walks the whole audit chain, [`VERIFY_PAGE`](crate::audit::VERIFY_PAGE)
    /// records per query, and names the first record that is edited, missing,
    /// inserted or out of order. An `Err` means the database could not be
    /// read, not that the chain is broken.
    async fn verify_audit(&self) -> Result<AuditVerification, StoreError>;

    /// Stores a new approval request in status `pending` under a fresh id
    /// (`ap_` + 10 base32 characters) and returns it as stored.
    /// [`StoreError::NotFound`] if the task is unknown.
    async fn create_approval(&self, new: &NewApproval) -> Result<Approval, StoreError>;

    /// One approval request, `None` if there is no such id. The id may be
    /// typed in any case, with surrounding blanks.
    async fn get_approval(&self, id: &str) -> Result<Option<Approval>, StoreError>;

    /// Approval requests filtered by status and task, at most `limit`
    /// (default 50): oldest first when listing `pending` ones (the queue to
    /// answer), newest first otherwise.
    async fn list_approvals(&self, filter: &ApprovalFilter) -> Result<Vec<Approval>, StoreError>;

    /// Answers a pending request: `approve` → `approved`, else `rejected`,
    /// recording `by`, the time and `note`; returns it as stored.
    ///
    /// A compare-and-set (`UPDATE … WHERE status = 'pending'`): of several
    /// answers racing, from any number of processes, exactly one wins.
    /// [`StoreError::ApprovalClosed`] (naming the first answer) if it is no
    /// longer pending, [`StoreError::NotFound`] naming the id if unknown.
    async fn decide_approval(
        &self,
        id: &str,
        approve: bool,
        by: &str,
        note: Option<&str>,
    ) -> Result<Approval, StoreError>;

    /// Times a pending request out: `expired`, decided by `timeout`, with
    /// `note`. Same compare-and-set and errors as
    /// [`decide_approval`](Store::decide_approval).
    async fn expire_approval(&self, id: &str, note: &str) -> Result<Approval, StoreError>;

    /// Charges `charge.amount` (an estimate, before a model call) to every
    /// scope of the charge if none of them would then have spent more than
    /// its limit, and writes one `reserve` ledger row per scope; else changes
    /// nothing and reports the first scope (in key order) that would go over.
    ///
    /// Atomic across processes: SQLite reads and writes in one `BEGIN
    /// IMMEDIATE` transaction; PostgreSQL inserts missing scope rows (`ON
    /// CONFLICT DO NOTHING`) and locks them with `SELECT … FOR UPDATE` in key
    /// order, so concurrent reservations never take a scope past its limit.
    /// A negative amount is an [`StoreError::Encode`].
    async fn reserve_budget(&self, charge: &BudgetCharge) -> Result<ChargeOutcome, StoreError>;

    /// After the call: moves every scope by `actual − reserved` (past its
    /// limit if need be — actual usage is always recorded) and writes one
    /// `settle` ledger row per scope, in one transaction.
    async fn settle_budget(
        &self,
        scopes: &[BudgetScope],
        reserved: Money,
        actual: Money,
        task_id: &TaskId,
        note: &str,
    ) -> Result<(), StoreError>;

    /// What a scope has spent (zero if never charged).
    async fn budget_spent(&self, scope: &BudgetScope) -> Result<Money, StoreError>;

    /// The ledger, oldest first: one task's rows, or all of them.
    async fn budget_ledger(&self, task: Option<&TaskId>) -> Result<Vec<LedgerEntry>, StoreError>;

    /// Begins the journal entry `key` of a task, before its side effect
    /// runs: inserts it as `started` ([`JournalBegin::Started`]: run it now)
    /// unless the key exists, in which case nothing changes and the answer is
    /// [`JournalBegin::Finished`] with the recorded output (do not run it
    /// again) or [`JournalBegin::Interrupted`] (begun, never finished: it may
    /// have run).
    ///
    /// Atomic across processes (`INSERT … ON CONFLICT DO NOTHING` and a read
    /// back in one transaction): of callers racing on one key exactly one
    /// gets `Started`. [`StoreError::NotFound`] if the task is unknown. See
    /// [`journal`](crate::journal).
    async fn journal_begin(&self, task: &TaskId, key: &str) -> Result<JournalBegin, StoreError>;

    /// Finishes a started journal entry with the effect's output.
    /// [`StoreError::JournalFinished`] if it is already finished (the first
    /// output stands), [`StoreError::JournalNotBegun`] if the key was never
    /// begun; both name the key.
    async fn journal_finish(
        &self,
        task: &TaskId,
        key: &str,
        output: &serde_json::Value,
    ) -> Result<(), StoreError>;

    /// A task's journal entries in the order they were begun (none for an
    /// unknown task).
    async fn journal(&self, task: &TaskId) -> Result<Vec<JournalEntry>, StoreError>;

    /// Takes the task's lease for `owner` until now + `ttl`, if it has none,
    /// an expired one, or one `owner` holds already (then it is renewed):
    /// `true`. `false` if another owner holds an unexpired lease.
    ///
    /// One compare-and-set `UPDATE … WHERE`: of claimers racing, one wins.
    /// PostgreSQL uses the database's clock, SQLite the application's (see
    /// [`journal`](crate::journal)). [`StoreError::NotFound`] if the task is
    /// unknown, [`StoreError::InvalidLeaseTtl`] for a `ttl` of zero or over
    /// [`MAX_LEASE_TTL`](crate::journal::MAX_LEASE_TTL).
    async fn claim_task(
        &self,
        task: &TaskId,
        owner: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError>;

    /// Extends `owner`'s lease to now + `ttl`: `true`; `false` if `owner`
    /// no longer holds it (taken over after it expired, or released). An
    /// expired lease nobody took is still `owner`'s and is renewed. Errors as
    /// [`claim_task`](Store::claim_task).
    async fn renew_lease(
        &self,
        task: &TaskId,
        owner: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError>;

    /// Drops `owner`'s lease, so another process may claim the task at once.
    /// A lease held by another owner (or none) is left as it is.
    /// [`StoreError::NotFound`] if the task is unknown.
    async fn release_task(&self, task: &TaskId, owner: &str) -> Result<(), StoreError>;

    /// Makes `writes`, in order, each as its own method would, and commits
    /// them together: all or none, one commit. What a run writes between two
    /// steps (its events, audit records, status changes, the stage and the
    /// result) goes through here, so each step costs one commit, not one per
    /// record. An error is the first write's that failed; then none stands.
    ///
    /// The default makes them one after another (not atomically); the SQL
    /// store overrides it.
    async fn apply(&self, writes: Vec<StoreWrite>) -> Result<(), StoreError> {
        for write in &writes {
            match write {
                StoreWrite::Transition { id, to, reason, .. } => {
                    self.transition(id, *to, reason.as_deref()).await?;
                }
                StoreWrite::SetRoute { id, route } => self.set_route(id, route).await?,
                StoreWrite::Events(events) => self.append_events(events).await?,
                StoreWrite::Audit(entry) => {
                    self.append_audit(entry).await?;
                }
                StoreWrite::Stage {
                    id,
                    position,
                    name,
                    stage,
                } => self.put_stage(id, *position, name, stage).await?,
                StoreWrite::Finish { result, .. } => self.finish(result).await?,
                StoreWrite::Release { id, owner } => self.release_task(id, owner).await?,
            }
        }
        Ok(())
    }
}

/// One write of a batch for [`Store::apply`]; each is what the method it
/// names does.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum StoreWrite {
    /// [`Store::transition`].
    Transition {
        /// The task.
        id: TaskId,
        /// The new status.
        to: TaskStatus,
        /// Why.
        reason: Option<String>,
        /// The status the writer believes the task is in now, if it knows:
        /// the store then skips reading it (the update checks it), and reads
        /// it only when the belief is wrong. Either way the move must be
        /// legal from the status the task is really in.
        from: Option<TaskStatus>,
    },
    /// [`Store::set_route`].
    SetRoute {
        /// The task.
        id: TaskId,
        /// The routing decision.
        route: RouteInfo,
    },
    /// [`Store::append_events`].
    Events(Vec<Event>),
    /// [`Store::append_audit`].
    Audit(AuditEntry),
    /// [`Store::put_stage`].
    Stage {
        /// The task.
        id: TaskId,
        /// The stage's position.
        position: u32,
        /// The stage's name.
        name: String,
        /// What it did.
        stage: StageResult,
    },
    /// [`Store::finish`].
    Finish {
        /// The result, with the status the task ends in.
        result: TaskResult,
        /// The status the caller believes the task is in, as for `Transition`.
        from: Option<TaskStatus>,
    },
    /// [`Store::release_task`].
    Release {
        /// The task.
        id: TaskId,
        /// Whose lease to drop.
        owner: String,
    },
}

/// A task as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskRecord {
    /// The task as submitted.
    pub task: Task,
    /// Where it is now.
    pub status: TaskStatus,
    /// The routing decision, once made.
    pub route: Option<RouteInfo>,
    /// The final result, once finished.
    pub result: Option<TaskResult>,
    /// When it was created (the task's own `created_at`, to the microsecond).
    pub created_at: DateTime<Utc>,
    /// When the row last changed (lease changes do not count).
    pub updated_at: DateTime<Utc>,
    /// Who holds the task's lease (see [`journal`](crate::journal)), if
    /// anyone; it may have expired.
    #[serde(default)]
    pub lease_owner: Option<String>,
    /// Until when, to the microsecond.
    #[serde(default)]
    pub lease_until: Option<DateTime<Utc>>,
}

/// One line of a task listing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskSummary {
    /// The task id.
    pub id: TaskId,
    /// What to do, in words.
    pub description: String,
    /// Category of work.
    pub task_type: TaskType,
    /// Where it is now.
    pub status: TaskStatus,
    /// The platform it was routed to, once routed.
    pub platform: Option<String>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// Wall time, once finished.
    pub duration_ms: Option<u64>,
    /// Cost, once finished and if it could be priced.
    pub cost: Option<Money>,
}

/// Which tasks [`Store::list_tasks`] returns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskFilter {
    /// Only tasks in this status.
    pub status: Option<TaskStatus>,
    /// At most this many (default [`TaskFilter::DEFAULT_LIMIT`]).
    pub limit: Option<u32>,
}

impl TaskFilter {
    /// How many tasks a listing returns when no limit is given.
    pub const DEFAULT_LIMIT: u32 = 50;

    /// The limit to apply.
    pub fn effective_limit(&self) -> u32 {
        self.limit.unwrap_or(Self::DEFAULT_LIMIT)
    }
}

/// One entry of a task's status history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusChange {
    /// The status before; `None` for the creation entry.
    pub from: Option<TaskStatus>,
    /// The status after.
    pub to: TaskStatus,
    /// Why, when given.
    pub reason: Option<String>,
    /// When (to the microsecond).
    pub at: DateTime<Utc>,
}

/// Counters over every stored task (the seed's `get_metrics`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MetricsSnapshot {
    /// Tasks in a terminal status (completed, failed, blocked, cancelled).
    pub tasks_executed: u64,
    /// Tasks pending, routing, in progress or awaiting approval.
    pub tasks_in_flight: u64,
    /// Mean `duration_ms` of tasks with a stored result, in seconds; 0.0 if none.
    pub avg_execution_time: f64,
    /// Percent of executed tasks per platform, e.g. `{"openai": 45.0}`.
    /// Executed tasks that never got a platform (blocked before routing) count
    /// in the denominator but under no platform.
    pub platform_distribution: BTreeMap<String, f64>,
    /// Executed tasks per platform.
    pub platform_counts: BTreeMap<String, u64>,
    /// Percent of executed tasks that completed; 0.0 if none.
    pub success_rate: f64,
    /// Tasks per status (`in_progress` → 2); statuses with no task are absent.
    pub status_counts: BTreeMap<String, u64>,
    /// Tokens summed over stored results.
    pub tokens: Usage,
    /// Sum of the known costs of stored results.
    pub cost_usd: Money,
    /// Tasks with a stored result whose cost was unknown.
    pub unpriced_tasks: u64,
    /// Guardrail triggers by guardrail name (from the audit trail).
    #[serde(default)]
    pub guardrail_triggers: BTreeMap<String, u64>,
    /// Guardrail triggers by outcome: the kind that blocked (`block`,
    /// `cost_limit`, …) or `needs_approval`.
    #[serde(default)]
    pub guardrail_kinds: BTreeMap<String, u64>,
}
