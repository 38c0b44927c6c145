//! [`SqlStore`]: the [`Store`] trait over any [`Dialect`], every statement
//! written once.
//!
//! Writes are jobs handed to [`Dialect::write`], which commits each before
//! its call returns. Status changes are a compare-and-set (`UPDATE … WHERE
//! status = $old`) retried while other writers win; leases one `UPDATE …
//! WHERE`; approvals one `UPDATE … WHERE status = 'pending' RETURNING`.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use hybrid_core::{Event, Money, RouteInfo, StageResult, Task, TaskId, TaskResult, TaskStatus};

use super::dialect::{Arg, Atomic, Dialect, EventRow, Outcome, Row, args, job, placeholders};
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
    StatusChange, Store, StoreError, StoreWrite, TaskFilter, TaskRecord, TaskSummary,
};
use hybrid_secrets::Redact;

/// A [`Store`] on the database a [`Dialect`] talks to.
#[derive(Debug, Clone)]
pub struct SqlStore<D: Dialect> {
    /// The backend: its pools and writer.
    pub(crate) d: D,
}

/// The outcome of one status compare-and-set.
enum Cas {
    /// The status moved (or, for `finish`, already was the target); holds
    /// the previous one.
    Done(TaskStatus),
    /// Another writer changed the status between the read and the update.
    Lost,
}

const INSERT_TASK: &str = "INSERT INTO tasks (id, description, task_type, priority, status, \
                           submitted_by, task, created_at, updated_at) \
                           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
const UPDATE_STATUS: &str =
    "UPDATE tasks SET status = $1, updated_at = $2 WHERE id = $3 AND status = $4";
const UPDATE_STATUS_AND_RESULT: &str = "UPDATE tasks SET status = $1, updated_at = $2, \
     result = $5, platform = $6, route = $7, output = $8, input_tokens = $9, \
     output_tokens = $10, cache_read_tokens = $11, cache_write_tokens = $12, cost_nanos = $13, \
     duration_ms = $14, error = $15, finished_at = $2 WHERE id = $3 AND status = $4";
const UPSERT_STAGE: &str = "INSERT INTO stages (task_id, position, name, agent, platform, body, \
     updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
     ON CONFLICT (task_id, position) DO UPDATE SET name = excluded.name, \
     agent = excluded.agent, platform = excluded.platform, body = excluded.body, \
     updated_at = excluded.updated_at";
/// The columns of an `audit_log` row, in [`raw_audit`] order.
const AUDIT_SELECT: &str = "SELECT seq, at, task_id, agent, action, command, output, user_name, \
                            approved_by, detail, prev_hash, hash FROM audit_log";
const INSERT_AUDIT: &str = "INSERT INTO audit_log (seq, at, task_id, agent, action, command, \
     output, user_name, approved_by, detail, prev_hash, hash) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)";
const INSERT_APPROVAL: &str = "INSERT INTO approvals (id, task_id, call_id, agent, tool, command, \
     rule, reason, status, requested_at, expires_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";
const TASK_EXISTS: &str = "SELECT id FROM tasks WHERE id = $1";
/// Drops owner `$1`'s lease on task `$2`.
const RELEASE_LEASE: &str =
    "UPDATE tasks SET lease_owner = NULL, lease_until = NULL WHERE id = $2 AND lease_owner = $1";

/// An audit entry as the chain may hash it: whatever redaction the store was
/// opened with, never a secret the built-in patterns know.
fn chain_safe(entry: &AuditEntry) -> AuditEntry {
    entry.clone().redacted(&Redactor::default())
}

/// A failed statement, with what was being done.
fn q(context: &str) -> impl Fn(sqlx::Error) -> StoreError + '_ {
    move |e| StoreError::query(context, e)
}

impl<D: Dialect> SqlStore<D> {
    /// How [`with_history`](Self::with_history) writes: one statement where
    /// the dialect chains writes in a `WITH`, else a transaction.
    const HISTORY_WRITE: Atomic = if D::DML_IN_CTE {
        Atomic::Statement
    } else {
        Atomic::Transaction
    };

    /// Runs `write` (an `INSERT` or `UPDATE` of at most one task row, whose
    /// id is the parameter `id`) and, if it changed a row, records the
    /// status change `(id, history)` (`from_status, to_status, reason, at`
    /// in terms of the same parameters); how many rows `write` changed.
    /// With [`Dialect::DML_IN_CTE`] one statement (`WITH done AS (… RETURNING
    /// id) INSERT … SELECT … FROM done`: one round trip, atomic by itself);
    /// else two, in the caller's transaction.
    async fn with_history(
        c: &mut D::Conn,
        write: &str,
        id: &str,
        history: &str,
        args: Vec<Arg>,
    ) -> Result<u64, sqlx::Error> {
        const INSERT: &str =
            "INSERT INTO status_changes (task_id, from_status, to_status, reason, at)";
        if D::DML_IN_CTE {
            let sql = format!(
                "WITH done AS ({write} RETURNING id) {INSERT} SELECT id, {history} FROM done"
            );
            return D::execute(c, &sql, args).await;
        }
        let changed = D::execute(c, write, args.clone()).await?;
        if changed == 1 {
            D::execute(c, &format!("{INSERT} VALUES ({id}, {history})"), args).await?;
        }
        Ok(changed)
    }

    /// The store on a connected, migrated backend.
    pub(crate) fn new(d: D) -> Self {
        SqlStore { d }
    }

    /// Runs one read statement; its rows.
    async fn rows(
        &self,
        context: String,
        sql: impl Into<Cow<'static, str>>,
        args: Vec<Arg>,
    ) -> Result<Vec<Row>, StoreError> {
        let sql = sql.into();
        let ctx = context.clone();
        self.d
            .read(
                context,
                job(move |c| {
                    Box::pin(async move {
                        D::fetch(c, &sql, args)
                            .await
                            .map(Outcome::Commit)
                            .map_err(q(&ctx))
                    })
                }),
            )
            .await
    }

    /// Runs [`Self::cas_status`] until it does not lose a race; with
    /// `result`, writes the result columns in the same statement (and then
    /// a task already in `to` is accepted as is).
    async fn change_status(
        &self,
        id: &TaskId,
        to: TaskStatus,
        reason: Option<String>,
        result: Option<ResultColumns>,
    ) -> Result<TaskStatus, StoreError> {
        let context = format!("moving task {id} to {to}");
        let result = result.map(Arc::new);
        for _ in 0..MAX_CAS_ATTEMPTS {
            let (tid, reason, result, ctx) =
                (id.clone(), reason.clone(), result.clone(), context.clone());
            let cas = self
                .d
                .write(
                    Self::HISTORY_WRITE,
                    context.clone(),
                    job(move |c| {
                        Box::pin(async move {
                            Self::cas_status(c, &tid, to, reason, result.as_deref(), &ctx, None)
                                .await
                        })
                    }),
                )
                .await?;
            match cas {
                Cas::Done(from) => return Ok(from),
                Cas::Lost => {
                    tracing::debug!(task = %id, %to, "status compare-and-set lost a race; retrying");
                }
            }
        }
        Err(StoreError::Contention {
            id: id.clone(),
            attempts: MAX_CAS_ATTEMPTS,
        })
    }

    /// Reads the status and, if the move is legal, updates it (and the
    /// result columns) only if it is still the status read, and records the
    /// change. With `expected` (the status the caller believes the task is
    /// in, and a legal move from it) the read is skipped: the update's own
    /// compare-and-set checks the belief, and only a wrong one costs the read.
    async fn cas_status(
        c: &mut D::Conn,
        id: &TaskId,
        to: TaskStatus,
        reason: Option<String>,
        result: Option<&ResultColumns>,
        context: &str,
        expected: Option<TaskStatus>,
    ) -> Result<Outcome<Cas>, StoreError> {
        let what = format!("status of task {id}");
        let mut guess = expected.filter(|from| from.can_transition(to));
        loop {
            let guessed = guess.is_some();
            let from = match guess.take() {
                Some(from) => from,
                None => {
                    let mut rows = D::fetch(
                        c,
                        "SELECT status FROM tasks WHERE id = $1",
                        args![id.as_str()],
                    )
                    .await
                    .map_err(q(context))?;
                    let Some(mut row) = rows.pop() else {
                        return Err(StoreError::NotFound(id.clone()));
                    };
                    codec::status(&row.text(0, &what)?, &what)?
                }
            };
            let already = result.is_some() && from == to;
            if !already {
                from.transition(to)
                    .map_err(|error| StoreError::IllegalTransition {
                        id: id.clone(),
                        error,
                    })?;
            }
            let now = Utc::now();
            let mut update = args![to.as_str(), Arg::time(now), id.as_str(), from.as_str()];
            let sql = match result {
                None => UPDATE_STATUS,
                Some(r) => {
                    update.extend(args![
                        Arg::json(r.json.clone()),
                        &r.platform,
                        Arg::json(r.route_json.clone()),
                        &r.output,
                        r.input_tokens,
                        r.output_tokens,
                        r.cache_read_tokens,
                        r.cache_write_tokens,
                        r.cost_nanos,
                        r.duration_ms,
                        &r.error,
                    ]);
                    UPDATE_STATUS_AND_RESULT
                }
            };
            let updated = if already {
                D::execute(c, sql, update).await
            } else {
                // The change: from $4 to $1, why, at $2.
                let why = format!("${}", update.len() + 1);
                update.push(Arg::from(reason.clone()));
                Self::with_history(c, sql, "$3", &format!("$4, $1, {why}, $2"), update).await
            }
            .map_err(q(context))?;
            match (updated, guessed) {
                (1, _) => return Ok(Outcome::Commit(Cas::Done(from))),
                // The belief was wrong (nothing was written): read it.
                (_, true) => continue,
                _ => return Ok(Outcome::Rollback(Cas::Lost)),
            }
        }
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
        let context = format!("answering approval {id}");
        let sql = format!(
            "UPDATE approvals SET status = $1, decided_by = $2, decided_at = $3, note = $4 \
             WHERE id = $5 AND status = 'pending' RETURNING {}",
            approval::COLUMNS
        );
        let update = args![
            status.as_str(),
            by,
            Arg::time(Utc::now()),
            note,
            id.as_str()
        ];
        let ctx = context.clone();
        self.d
            .write(
                Atomic::Statement,
                context,
                job(move |c| {
                    Box::pin(async move {
                        let rows = D::fetch(c, &sql, update).await.map_err(q(&ctx))?;
                        if let Some(row) = rows.into_iter().next() {
                            return approval_from_row(row).map(Outcome::Commit);
                        }
                        let sql =
                            format!("SELECT {} FROM approvals WHERE id = $1", approval::COLUMNS);
                        let rows = D::fetch(c, &sql, args![id.as_str()])
                            .await
                            .map_err(q(&ctx))?;
                        match rows.into_iter().next() {
                            Some(row) => Err(approval_from_row(row)?.closed_error()),
                            None => Err(StoreError::NotFound(id.into())),
                        }
                    })
                }),
            )
            .await
    }

    /// A lease `UPDATE … WHERE` (`$1` owner, `$2` task, the clock from
    /// `$3`): `true` if it changed the row; else `false` if the task exists,
    /// [`StoreError::NotFound`] if not.
    async fn lease_update(
        &self,
        task: &TaskId,
        owner: &str,
        sql: String,
        clock: Vec<Arg>,
        context: String,
    ) -> Result<bool, StoreError> {
        let mut update = args![owner, task.as_str()];
        update.extend(clock);
        let task = task.clone();
        let ctx = context.clone();
        self.d
            .write(
                Atomic::Statement,
                context,
                job(move |c| {
                    Box::pin(async move {
                        if D::execute(c, &sql, update).await.map_err(q(&ctx))? == 1 {
                            return Ok(Outcome::Commit(true));
                        }
                        let found = D::fetch(c, TASK_EXISTS, args![task.as_str()])
                            .await
                            .map_err(q(&ctx))?;
                        if found.is_empty() {
                            Err(StoreError::NotFound(task))
                        } else {
                            Ok(Outcome::Commit(false))
                        }
                    })
                }),
            )
            .await
    }

    /// The parameters of [`set_route_in`](Self::set_route_in).
    fn route_args(id: &TaskId, route: &RouteInfo) -> Result<Vec<Arg>, StoreError> {
        let json = codec::to_json(route, &format!("route of task {id}"))?;
        Ok(args![
            &route.platform,
            Arg::json(json),
            Arg::time(Utc::now()),
            id.as_str()
        ])
    }

    /// [`Store::set_route`]'s statement.
    async fn set_route_in(
        c: &mut D::Conn,
        id: &TaskId,
        update: Vec<Arg>,
    ) -> Result<(), StoreError> {
        let sql = "UPDATE tasks SET platform = $1, route = $2, updated_at = $3 WHERE id = $4";
        let context = format!("setting the route of task {id}");
        match D::execute(c, sql, update).await.map_err(q(&context))? {
            0 => Err(StoreError::NotFound(id.clone())),
            _ => Ok(()),
        }
    }

    /// [`Store::append_events`]'s statements.
    async fn events_in(c: &mut D::Conn, rows: EventRows) -> Result<(), StoreError> {
        let EventRows {
            rows,
            described,
            single,
        } = rows;
        D::insert_events(c, rows).await.map_err(|e| {
            if is_unique_violation(&e) {
                StoreError::AlreadyExists(described)
            } else if let (true, Some(task)) = (is_foreign_key_violation(&e), single) {
                StoreError::NotFound(task)
            } else {
                StoreError::query(format!("appending {described}"), e)
            }
        })
    }

    /// The parameters of [`stage_in`](Self::stage_in).
    fn stage_args(
        id: &TaskId,
        position: u32,
        name: &str,
        stage: &StageResult,
    ) -> Result<Vec<Arg>, StoreError> {
        let what = format!("stage {position} ({name}) of task {id}");
        let body = codec::to_json(stage, &what)?;
        Ok(args![
            id.as_str(),
            i64::from(position),
            name,
            &stage.agent,
            &stage.platform,
            Arg::json(body),
            Arg::time(Utc::now()),
        ])
    }

    /// [`Store::put_stage`]'s statement.
    async fn stage_in(
        c: &mut D::Conn,
        id: &TaskId,
        upsert: Vec<Arg>,
        context: &str,
    ) -> Result<(), StoreError> {
        D::execute(c, UPSERT_STAGE, upsert).await.map_err(|e| {
            if is_foreign_key_violation(&e) {
                StoreError::NotFound(id.clone())
            } else {
                StoreError::query(context, e)
            }
        })?;
        Ok(())
    }

    /// Appends `entry` after the head of the audit chain; `None` if another
    /// appender took the position first and `may_lose` (the caller retries
    /// under the dialect's lock), else that is an error.
    async fn audit_in(
        c: &mut D::Conn,
        entry: &AuditEntry,
        may_lose: bool,
    ) -> Result<Option<RawAudit>, StoreError> {
        let head = D::fetch(
            c,
            "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1",
            Vec::new(),
        )
        .await
        .map_err(q("reading the head of the audit chain"))?;
        let (seq, prev_hash) = match head.into_iter().next() {
            Some(mut row) => (
                row.int(0, "audit head")?.saturating_add(1),
                row.text(1, "audit head")?,
            ),
            None => (1, GENESIS_HASH.to_owned()),
        };
        let now = codec::micros(Utc::now());
        let raw = RawAudit::seal(entry, seq, now, prev_hash)?;
        let insert = args![
            raw.seq,
            Arg::time(now),
            &raw.task_id,
            &raw.agent,
            &raw.action,
            &raw.command,
            &raw.output,
            &raw.user,
            &raw.approved_by,
            Arg::json(raw.detail.clone()),
            &raw.prev_hash,
            &raw.hash,
        ];
        match D::execute(c, INSERT_AUDIT, insert).await {
            Ok(_) => Ok(Some(raw)),
            Err(e) if may_lose && is_unique_violation(&e) => {
                tracing::debug!(seq, "audit append lost a race; retrying under the lock");
                Ok(None)
            }
            Err(e) => Err(StoreError::query(
                format!("appending audit record {seq}"),
                e,
            )),
        }
    }

    /// Runs the writes of an [`apply`](Store::apply) batch on one
    /// connection, in the caller's transaction. `Rollback` (the caller
    /// retries the whole batch) if a status compare-and-set lost a race, or
    /// if an audit record lost its position in the chain to another appender
    /// (the retry takes the dialect's audit lock first, as
    /// [`append_audit`](Store::append_audit) does).
    async fn apply_in(
        c: &mut D::Conn,
        writes: &[Prepared],
        audit_lock: bool,
    ) -> Result<Outcome<Applied>, StoreError> {
        if audit_lock && let Some(lock) = D::AUDIT_LOCK {
            // Under the lock the chain's head cannot move before the insert.
            D::execute(c, lock, Vec::new())
                .await
                .map_err(q("locking the audit chain"))?;
        }
        for write in writes {
            match write {
                Prepared::Status {
                    id,
                    to,
                    reason,
                    result,
                    from,
                } => {
                    let context = format!("moving task {id} to {to}");
                    let cas = Self::cas_status(
                        c,
                        id,
                        *to,
                        reason.clone(),
                        result.as_ref(),
                        &context,
                        *from,
                    )
                    .await?;
                    if !matches!(cas, Outcome::Commit(Cas::Done(_))) {
                        return Ok(Outcome::Rollback(Applied::LostStatus));
                    }
                }
                Prepared::Route { id, update } => Self::set_route_in(c, id, update.clone()).await?,
                Prepared::Events(rows) => Self::events_in(c, rows.clone()).await?,
                Prepared::Audit(entry) => {
                    if Self::audit_in(c, entry, !audit_lock).await?.is_none() {
                        return Ok(Outcome::Rollback(Applied::LostAudit));
                    }
                }
                Prepared::Stage {
                    id,
                    upsert,
                    context,
                } => Self::stage_in(c, id, upsert.clone(), context).await?,
                Prepared::Release { id, owner, check } => {
                    let context = format!("releasing task {id} for {owner}");
                    let update = args![owner.as_str(), id.as_str()];
                    if D::execute(c, RELEASE_LEASE, update)
                        .await
                        .map_err(q(&context))?
                        == 0
                        && *check
                        && D::fetch(c, TASK_EXISTS, args![id.as_str()])
                            .await
                            .map_err(q(&context))?
                            .is_empty()
                    {
                        return Err(StoreError::NotFound(id.clone()));
                    }
                }
            }
        }
        Ok(Outcome::Commit(Applied::Done))
    }

    /// `now + ttl` on both clocks, the ttl checked, as lease clock parameters.
    fn lease_clock(task: &TaskId, ttl: Duration) -> Result<Vec<Arg>, StoreError> {
        let ttl_micros = journal::ttl_micros(task, ttl)?;
        let now = Utc::now();
        let until = journal::lease_until(task, now, ttl)?;
        Ok(D::lease_clock(now, until, ttl_micros))
    }
}

/// `(scope, spent)` rows, or `budgets` keys, as bind parameters after `skip` others.
fn key_args(keys: &[String]) -> Vec<Arg> {
    keys.iter().map(Arg::from).collect()
}

/// One `budget_ledger` row per key: `$1` task, `$2` kind, `$3` delta,
/// `$4` note, `$5` at, then the keys.
fn ledger_insert(keys: &[String]) -> String {
    let mut sql = String::from(
        "INSERT INTO budget_ledger (task_id, scope, kind, delta_nanos, note, at) VALUES ",
    );
    for i in 0..keys.len() {
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&format!("($1, ${}, $2, $3, $4, $5)", i + 6));
    }
    sql
}

/// Adds `delta` to every key's budget row (creating it) and writes one
/// ledger row per key, in key order: two statements whatever the number of
/// scopes.
#[allow(clippy::too_many_arguments)]
async fn add_to_budgets<D: Dialect>(
    c: &mut D::Conn,
    keys: &[String],
    delta: i64,
    kind: LedgerKind,
    task_id: &TaskId,
    note: &str,
    at: chrono::DateTime<Utc>,
    context: &str,
) -> Result<(), StoreError> {
    let mut upsert = String::from("INSERT INTO budgets (scope, spent_nanos, updated_at) VALUES ");
    for i in 0..keys.len() {
        if i > 0 {
            upsert.push_str(", ");
        }
        upsert.push_str(&format!("(${}, $1, $2)", i + 3));
    }
    upsert.push_str(
        " ON CONFLICT (scope) DO UPDATE SET spent_nanos = budgets.spent_nanos + \
         excluded.spent_nanos, updated_at = excluded.updated_at",
    );
    let mut args = args![delta, Arg::time(at)];
    args.extend(key_args(keys));
    D::execute(c, &upsert, args).await.map_err(q(context))?;
    let mut args = args![task_id.as_str(), kind.as_str(), delta, note, Arg::time(at)];
    args.extend(key_args(keys));
    D::execute(c, &ledger_insert(keys), args)
        .await
        .map_err(q(context))?;
    Ok(())
}

/// An `audit_log` row, in [`AUDIT_SELECT`] order.
fn raw_audit(mut row: Row) -> Result<RawAudit, StoreError> {
    let what = "audit record";
    Ok(RawAudit {
        seq: row.int(0, what)?,
        timestamp: row.time_text(1, what)?,
        task_id: row.opt_text(2, what)?,
        agent: row.text(3, what)?,
        action: row.text(4, what)?,
        command: row.opt_text(5, what)?,
        output: row.opt_text(6, what)?,
        user: row.text(7, what)?,
        approved_by: row.opt_text(8, what)?,
        detail: row.text(9, what)?,
        prev_hash: row.text(10, what)?,
        hash: row.text(11, what)?,
    })
}

/// An `approvals` row, in [`approval::COLUMNS`] order.
fn approval_from_row(mut row: Row) -> Result<Approval, StoreError> {
    let id = row.text(0, "approval")?;
    let what = format!("approval {id}");
    let parts: ApprovalParts = (
        id,
        row.text(1, &what)?,
        row.text(2, &what)?,
        row.text(3, &what)?,
        row.text(4, &what)?,
        row.text(5, &what)?,
        row.text(6, &what)?,
        row.text(7, &what)?,
        row.text(8, &what)?,
        row.time(9, &what)?,
        row.opt_time(10, &what)?,
        row.opt_text(11, &what)?,
        row.opt_time(12, &what)?,
        row.opt_text(13, &what)?,
    );
    approval::from_parts(parts)
}

/// `(text, count)` rows.
fn counts(rows: Vec<Row>, what: &str) -> Result<Vec<(String, i64)>, StoreError> {
    rows.into_iter()
        .map(|mut r| Ok((r.text(0, what)?, r.int(1, what)?)))
        .collect()
}

#[async_trait]
impl<D: Dialect> Store for SqlStore<D> {
    fn backend(&self) -> &'static str {
        D::BACKEND
    }

    async fn create_task(&self, task: &Task) -> Result<(), StoreError> {
        let id = task.id.clone();
        let context = format!("creating task {id}");
        let json = codec::to_json(task, &format!("task {id}"))?;
        let now = Utc::now();
        let insert = args![
            id.as_str(),
            &task.description,
            task.task_type.as_str(),
            i64::from(task.priority.get()),
            TaskStatus::Pending.as_str(),
            &task.submitted_by,
            Arg::json(json),
            Arg::time(task.created_at),
            Arg::time(now),
        ];
        let ctx = context.clone();
        self.d
            .write(
                Self::HISTORY_WRITE,
                context,
                job(move |c| {
                    Box::pin(async move {
                        // The creation entry: from NULL to `pending` ($5) at $9.
                        Self::with_history(c, INSERT_TASK, "$1", "NULL, $5, NULL, $9", insert)
                            .await
                            .map_err(|e| {
                                if is_unique_violation(&e) {
                                    StoreError::AlreadyExists(format!("task {id}"))
                                } else {
                                    StoreError::query(&ctx, e)
                                }
                            })?;
                        Ok(Outcome::Commit(()))
                    })
                }),
            )
            .await
    }

    async fn transition(
        &self,
        id: &TaskId,
        to: TaskStatus,
        reason: Option<&str>,
    ) -> Result<TaskStatus, StoreError> {
        self.change_status(id, to, reason.map(str::to_owned), None)
            .await
    }

    async fn set_route(&self, id: &TaskId, route: &RouteInfo) -> Result<(), StoreError> {
        let update = Self::route_args(id, route)?;
        let context = format!("setting the route of task {id}");
        let id = id.clone();
        self.d
            .write(
                Atomic::Statement,
                context,
                job(move |c| {
                    Box::pin(async move {
                        Self::set_route_in(c, &id, update).await?;
                        Ok(Outcome::Commit(()))
                    })
                }),
            )
            .await
    }

    async fn append_event(&self, event: &Event) -> Result<(), StoreError> {
        self.append_events(std::slice::from_ref(event)).await
    }

    async fn append_events(&self, events: &[Event]) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        let rows = EventRows::new(events)?;
        // One statement is one transaction: all rows or none; more need one.
        let atomic = if rows.rows.len() * 5 <= D::MAX_BIND_PARAMS {
            Atomic::Statement
        } else {
            Atomic::Transaction
        };
        self.d
            .write(
                atomic,
                format!("appending {}", rows.described),
                job(move |c| {
                    Box::pin(async move {
                        Self::events_in(c, rows).await?;
                        Ok(Outcome::Commit(()))
                    })
                }),
            )
            .await
    }

    async fn put_stage(
        &self,
        id: &TaskId,
        position: u32,
        name: &str,
        stage: &StageResult,
    ) -> Result<(), StoreError> {
        let upsert = Self::stage_args(id, position, name, stage)?;
        let context = format!("storing stage {position} ({name}) of task {id}");
        let id = id.clone();
        self.d
            .write(
                Atomic::Statement,
                context.clone(),
                job(move |c| {
                    Box::pin(async move {
                        Self::stage_in(c, &id, upsert, &context).await?;
                        Ok(Outcome::Commit(()))
                    })
                }),
            )
            .await
    }

    async fn finish(&self, result: &TaskResult) -> Result<(), StoreError> {
        let columns = ResultColumns::new(result)?;
        let reason = result.error.clone();
        self.change_status(&result.task_id, result.status, reason, Some(columns))
            .await?;
        Ok(())
    }

    async fn get_task(&self, id: &TaskId) -> Result<Option<TaskRecord>, StoreError> {
        let rows = self
            .rows(
                format!("reading task {id}"),
                "SELECT task, status, route, result, created_at, updated_at, lease_owner, \
                 lease_until FROM tasks WHERE id = $1",
                args![id.as_str()],
            )
            .await?;
        let Some(mut row) = rows.into_iter().next() else {
            return Ok(None);
        };
        let what = format!("task {id}");
        let route = row.opt_text(2, &what)?;
        let result = row.opt_text(3, &what)?;
        Ok(Some(TaskRecord {
            task: codec::from_json(&row.text(0, &what)?, &what)?,
            status: codec::status(&row.text(1, &what)?, &what)?,
            route: route.map(|r| codec::from_json(&r, &what)).transpose()?,
            result: result.map(|r| codec::from_json(&r, &what)).transpose()?,
            created_at: row.time(4, &what)?,
            updated_at: row.time(5, &what)?,
            lease_owner: row.opt_text(6, &what)?,
            lease_until: row.opt_time(7, &what)?,
        }))
    }

    async fn list_tasks(&self, filter: &TaskFilter) -> Result<Vec<TaskSummary>, StoreError> {
        const COLUMNS: &str = "SELECT id, description, task_type, status, platform, created_at, \
                               duration_ms, cost_nanos FROM tasks";
        const ORDER: &str = "ORDER BY created_at DESC, id DESC LIMIT";
        let limit = i64::from(filter.effective_limit());
        let (sql, args) = match filter.status {
            Some(status) => (
                format!("{COLUMNS} WHERE status = $1 {ORDER} $2"),
                args![status.as_str(), limit],
            ),
            None => (format!("{COLUMNS} {ORDER} $1"), args![limit]),
        };
        let rows = self.rows("listing tasks".into(), sql, args).await?;
        rows.into_iter()
            .map(|mut row| {
                let id = row.text(0, "task")?;
                let what = format!("task {id}");
                Ok(TaskSummary {
                    description: row.text(1, &what)?,
                    task_type: codec::task_type(&row.text(2, &what)?, &what)?,
                    status: codec::status(&row.text(3, &what)?, &what)?,
                    platform: row.opt_text(4, &what)?,
                    created_at: row.time(5, &what)?,
                    duration_ms: row
                        .opt_int(6, &what)?
                        .map(|d| codec::from_db_int(d, &what))
                        .transpose()?,
                    cost: row.opt_int(7, &what)?.map(Money::from_nanos),
                    id: id.into(),
                })
            })
            .collect()
    }

    async fn events(&self, id: &TaskId) -> Result<Vec<Event>, StoreError> {
        let rows = self
            .rows(
                format!("reading the events of task {id}"),
                "SELECT seq, body FROM events WHERE task_id = $1 ORDER BY seq",
                args![id.as_str()],
            )
            .await?;
        rows.into_iter()
            .map(|mut row| {
                let what = format!("event of task {id}");
                let seq = row.int(0, &what)?;
                codec::from_json(&row.text(1, &what)?, &format!("event {seq} of task {id}"))
            })
            .collect()
    }

    async fn stages(&self, id: &TaskId) -> Result<Vec<(String, StageResult)>, StoreError> {
        let rows = self
            .rows(
                format!("reading the stages of task {id}"),
                "SELECT name, body FROM stages WHERE task_id = $1 ORDER BY position",
                args![id.as_str()],
            )
            .await?;
        rows.into_iter()
            .map(|mut row| {
                let name = row.text(0, &format!("stage of task {id}"))?;
                let what = format!("stage {name} of task {id}");
                let stage = codec::from_json(&row.text(1, &what)?, &what)?;
                Ok((name, stage))
            })
            .collect()
    }

    async fn status_history(&self, id: &TaskId) -> Result<Vec<StatusChange>, StoreError> {
        let rows = self
            .rows(
                format!("reading the status history of task {id}"),
                "SELECT from_status, to_status, reason, at FROM status_changes \
                 WHERE task_id = $1 ORDER BY id",
                args![id.as_str()],
            )
            .await?;
        let what = format!("status history of task {id}");
        rows.into_iter()
            .map(|mut row| {
                Ok(StatusChange {
                    from: row
                        .opt_text(0, &what)?
                        .map(|f| codec::status(&f, &what))
                        .transpose()?,
                    to: codec::status(&row.text(1, &what)?, &what)?,
                    reason: row.opt_text(2, &what)?,
                    at: row.time(3, &what)?,
                })
            })
            .collect()
    }

    async fn metrics(&self) -> Result<MetricsSnapshot, StoreError> {
        const CONTEXT: &str = "computing metrics";
        let platforms = format!(
            "SELECT platform, COUNT(*) FROM tasks \
             WHERE status IN ({}) AND platform IS NOT NULL GROUP BY platform",
            codec::terminal_status_sql_list()
        );
        // One snapshot for all the queries.
        self.d
            .read_snapshot(
                CONTEXT.into(),
                job(move |c| {
                    Box::pin(async move {
                        let err = q(CONTEXT);
                        let status_counts = D::fetch(
                            c,
                            "SELECT status, COUNT(*) FROM tasks GROUP BY status",
                            Vec::new(),
                        )
                        .await
                        .map_err(&err)?;
                        let platform_counts =
                            D::fetch(c, &platforms, Vec::new()).await.map_err(&err)?;
                        let sums = D::fetch(
                            c,
                            "SELECT CAST(AVG(duration_ms) AS DOUBLE PRECISION), \
                             CAST(SUM(input_tokens) AS BIGINT), CAST(SUM(output_tokens) AS BIGINT), \
                             CAST(SUM(cache_read_tokens) AS BIGINT), \
                             CAST(SUM(cache_write_tokens) AS BIGINT), \
                             CAST(SUM(cost_nanos) AS BIGINT), COUNT(*) - COUNT(cost_nanos) \
                             FROM tasks WHERE result IS NOT NULL",
                            Vec::new(),
                        )
                        .await
                        .map_err(&err)?;
                        let triggers = D::fetch(
                            c,
                            "SELECT COALESCE(command, ''), COUNT(*) FROM audit_log \
                             WHERE action = 'guardrail' GROUP BY 1",
                            Vec::new(),
                        )
                        .await
                        .map_err(&err)?;
                        let kinds = D::fetch(
                            c,
                            "SELECT COALESCE(COALESCE(detail->>'kind', detail->>'outcome'), \
                             'unknown'), COUNT(*) FROM audit_log WHERE action = 'guardrail' \
                             GROUP BY 1",
                            Vec::new(),
                        )
                        .await
                        .map_err(&err)?;
                        let what = "metrics";
                        let mut sums = sums.into_iter().next().unwrap_or_default();
                        Ok(Outcome::Commit(RawMetrics {
                            status_counts: counts(status_counts, what)?,
                            platform_counts: counts(platform_counts, what)?,
                            avg_duration_ms: sums.opt_float(0, what)?,
                            input_tokens: sums.opt_int(1, what)?,
                            output_tokens: sums.opt_int(2, what)?,
                            cache_read_tokens: sums.opt_int(3, what)?,
                            cache_write_tokens: sums.opt_int(4, what)?,
                            cost_nanos: sums.opt_int(5, what)?,
                            unpriced: sums.opt_int(6, what)?.unwrap_or(0),
                            guardrail_triggers: counts(triggers, what)?,
                            guardrail_kinds: counts(kinds, what)?,
                        }))
                    })
                }),
            )
            .await?
            .into_snapshot()
    }

    async fn append_audit(&self, entry: &AuditEntry) -> Result<AuditRecord, StoreError> {
        const CONTEXT: &str = "appending an audit record";
        let entry = Arc::new(chain_safe(entry));
        // First without a lock: the primary key on `seq` lets one appender
        // per position win (SQLite holds the write lock anyway). Having
        // lost, once more under the dialect's lock, which every other writer
        // of the table waits for, so the head cannot move between the read
        // and the insert.
        for (attempt, lock) in [(0, None), (1, D::AUDIT_LOCK)] {
            let entry = entry.clone();
            let atomic = match lock {
                None => Atomic::Statement,
                Some(_) => Atomic::Transaction,
            };
            let appended = self
                .d
                .write(
                    atomic,
                    CONTEXT.into(),
                    job(move |c| {
                        Box::pin(async move {
                            if let Some(lock) = lock {
                                D::execute(c, lock, Vec::new()).await.map_err(q(CONTEXT))?;
                            }
                            match Self::audit_in(c, &entry, attempt == 0).await? {
                                Some(raw) => Ok(Outcome::Commit(Some(raw))),
                                None => Ok(Outcome::Rollback(None)),
                            }
                        })
                    }),
                )
                .await?;
            if let Some(raw) = appended {
                return raw.into_record();
            }
        }
        // The second attempt either appends or fails.
        Err(StoreError::decode(
            "audit record",
            "lost the race for its position twice",
        ))
    }

    async fn audit_records(&self, filter: &AuditFilter) -> Result<Vec<AuditRecord>, StoreError> {
        let mut sql = format!("{AUDIT_SELECT} WHERE 1 = 1");
        let mut args = Vec::new();
        if let Some(task) = &filter.task_id {
            args.push(Arg::from(task.as_str()));
            sql.push_str(&format!(" AND task_id = ${}", args.len()));
        }
        if let Some(after) = filter.after_seq {
            args.push(Arg::from(codec::db_int(after)));
            sql.push_str(&format!(" AND seq > ${}", args.len()));
        }
        sql.push_str(" ORDER BY seq");
        if let Some(limit) = filter.limit {
            args.push(Arg::from(i64::from(limit)));
            sql.push_str(&format!(" LIMIT ${}", args.len()));
        }
        let rows = self.rows("reading audit records".into(), sql, args).await?;
        rows.into_iter()
            .map(|row| raw_audit(row)?.into_record())
            .collect()
    }

    async fn verify_audit(&self) -> Result<AuditVerification, StoreError> {
        let sql = format!("{AUDIT_SELECT} WHERE seq > $1 ORDER BY seq LIMIT $2");
        let mut verifier = ChainVerifier::default();
        let mut after = i64::MIN;
        loop {
            let rows = self
                .rows(
                    "verifying the audit trail".into(),
                    sql.clone(),
                    args![after, i64::from(VERIFY_PAGE)],
                )
                .await?;
            let full = rows.len() >= VERIFY_PAGE as usize;
            for row in rows {
                let raw = raw_audit(row)?;
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
            let insert = args![
                &stored.id,
                task.as_str(),
                &stored.call_id,
                &stored.agent,
                &stored.tool,
                &stored.command,
                &stored.rule,
                &stored.reason,
                stored.status.as_str(),
                Arg::time(stored.requested_at),
                Arg::opt_time(stored.expires_at),
            ];
            let inserted = self
                .d
                .write(
                    Atomic::Statement,
                    context.clone(),
                    job(move |c| {
                        Box::pin(async move {
                            Ok(Outcome::Commit(
                                D::execute(c, INSERT_APPROVAL, insert).await,
                            ))
                        })
                    }),
                )
                .await?;
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
        let rows = self
            .rows(format!("reading approval {id}"), sql, args![id.as_str()])
            .await?;
        rows.into_iter().next().map(approval_from_row).transpose()
    }

    async fn list_approvals(&self, filter: &ApprovalFilter) -> Result<Vec<Approval>, StoreError> {
        let mut sql = format!("SELECT {} FROM approvals WHERE 1 = 1", approval::COLUMNS);
        let mut args = Vec::new();
        if let Some(status) = filter.status {
            args.push(Arg::from(status.as_str()));
            sql.push_str(&format!(" AND status = ${}", args.len()));
        }
        if let Some(task) = &filter.task_id {
            args.push(Arg::from(task.as_str()));
            sql.push_str(&format!(" AND task_id = ${}", args.len()));
        }
        sql.push_str(if filter.oldest_first() {
            " ORDER BY requested_at, id"
        } else {
            " ORDER BY requested_at DESC, id DESC"
        });
        args.push(Arg::from(i64::from(filter.effective_limit())));
        sql.push_str(&format!(" LIMIT ${}", args.len()));
        let rows = self.rows("listing approvals".into(), sql, args).await?;
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
        let keys: Vec<String> = plan.keys().cloned().collect();
        let (amount, task, note) = (charge.amount, charge.task_id.clone(), charge.note.clone());
        let ctx = context.clone();
        self.d
            .write(
                Atomic::Transaction,
                context,
                job(move |c| {
                    Box::pin(async move {
                        let now = Utc::now();
                        let n = keys.len();
                        // Missing rows first (in key order), so that every
                        // scope has a row to lock; then lock them all, in key
                        // order. A refused reservation rolls the new rows back.
                        let mut missing = String::from(
                            "INSERT INTO budgets (scope, spent_nanos, updated_at) VALUES ",
                        );
                        for i in 1..=n {
                            if i > 1 {
                                missing.push_str(", ");
                            }
                            missing.push_str(&format!("(${i}, 0, ${})", n + 1));
                        }
                        missing.push_str(" ON CONFLICT (scope) DO NOTHING");
                        let mut args = key_args(&keys);
                        args.push(Arg::time(now));
                        D::execute(c, &missing, args).await.map_err(q(&ctx))?;
                        let select = format!(
                            "SELECT scope, spent_nanos FROM budgets WHERE scope IN ({}) \
                             ORDER BY scope{}",
                            placeholders(1, n),
                            D::FOR_UPDATE
                        );
                        let rows = D::fetch(c, &select, key_args(&keys))
                            .await
                            .map_err(q(&ctx))?;
                        let spent: BTreeMap<String, i64> =
                            counts(rows, "budget")?.into_iter().collect();
                        let outcome = budget::decide(&plan, &spent, amount);
                        if !outcome.is_charged() {
                            return Ok(Outcome::Rollback(outcome));
                        }
                        add_to_budgets::<D>(
                            c,
                            &keys,
                            amount.nanos(),
                            LedgerKind::Reserve,
                            &task,
                            &note,
                            now,
                            &ctx,
                        )
                        .await?;
                        Ok(Outcome::Commit(outcome))
                    })
                }),
            )
            .await
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
        let keys = budget::settle_keys(scopes);
        if keys.is_empty() {
            return Ok(());
        }
        let (task, note, ctx) = (task_id.clone(), note.to_owned(), context.clone());
        self.d
            .write(
                Atomic::Transaction,
                context,
                job(move |c| {
                    Box::pin(async move {
                        add_to_budgets::<D>(
                            c,
                            &keys,
                            delta,
                            LedgerKind::Settle,
                            &task,
                            &note,
                            Utc::now(),
                            &ctx,
                        )
                        .await
                        .map(Outcome::Commit)
                    })
                }),
            )
            .await
    }

    async fn budget_spent(&self, scope: &BudgetScope) -> Result<Money, StoreError> {
        let key = scope.key();
        let rows = self
            .rows(
                format!("reading budget {key}"),
                "SELECT spent_nanos FROM budgets WHERE scope = $1",
                args![key.as_str()],
            )
            .await?;
        let nanos = match rows.into_iter().next() {
            Some(mut row) => row.int(0, "budget")?,
            None => 0,
        };
        Ok(Money::from_nanos(nanos))
    }

    async fn budget_ledger(&self, task: Option<&TaskId>) -> Result<Vec<LedgerEntry>, StoreError> {
        let mut sql = String::from(
            "SELECT id, task_id, scope, kind, delta_nanos, note, at FROM budget_ledger WHERE 1 = 1",
        );
        let mut args = Vec::new();
        if let Some(task) = task {
            sql.push_str(" AND task_id = $1");
            args.push(Arg::from(task.as_str()));
        }
        sql.push_str(" ORDER BY id");
        let rows = self
            .rows("reading the budget ledger".into(), sql, args)
            .await?;
        let what = "budget ledger row";
        rows.into_iter()
            .map(|mut row| {
                Ok(LedgerEntry {
                    id: row.int(0, what)?,
                    task_id: TaskId::from(row.text(1, what)?),
                    scope: BudgetScope::parse(&row.text(2, what)?)?,
                    kind: LedgerKind::parse(&row.text(3, what)?)?,
                    delta: Money::from_nanos(row.int(4, what)?),
                    note: row.text(5, what)?,
                    at: row.time(6, what)?,
                })
            })
            .collect()
    }

    async fn journal_begin(&self, task: &TaskId, key: &str) -> Result<JournalBegin, StoreError> {
        let context = format!("beginning {}", journal::journal_what(task, key));
        let (task, key, ctx) = (task.clone(), key.to_owned(), context.clone());
        self.d
            .write(
                Atomic::Statement,
                context,
                job(move |c| {
                    Box::pin(async move {
                        let insert = args![task.as_str(), key.as_str(), Arg::time(Utc::now())];
                        let inserted =
                            D::execute(c, D::JOURNAL_BEGIN, insert).await.map_err(|e| {
                                if is_foreign_key_violation(&e) {
                                    StoreError::NotFound(task.clone())
                                } else {
                                    StoreError::query(&ctx, e)
                                }
                            })?;
                        if inserted == 1 {
                            return Ok(Outcome::Commit(JournalBegin::Started));
                        }
                        // An insert racing another writer's uncommitted
                        // insert of the same key waits for it, then does
                        // nothing; this read (a new snapshot) sees the
                        // winner's row.
                        let rows = D::fetch(
                            c,
                            "SELECT state, output, started_at FROM journal \
                             WHERE task_id = $1 AND key = $2",
                            args![task.as_str(), key.as_str()],
                        )
                        .await
                        .map_err(q(&ctx))?;
                        // Gone again: deleted with its task since the insert.
                        let Some(mut row) = rows.into_iter().next() else {
                            return Err(StoreError::NotFound(task));
                        };
                        let what = journal::journal_what(&task, &key);
                        let state = row.text(0, &what)?;
                        let output = row.opt_text(1, &what)?;
                        let started_at = row.time(2, &what)?;
                        journal::begin_outcome(&task, &key, &state, output, started_at)
                            .map(Outcome::Commit)
                    })
                }),
            )
            .await
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
        let (task, key, ctx) = (task.clone(), key.to_owned(), context.clone());
        self.d
            .write(
                Atomic::Statement,
                context,
                job(move |c| {
                    Box::pin(async move {
                        for _ in 0..journal::FINISH_ATTEMPTS {
                            let update = args![
                                Arg::json(json.clone()),
                                Arg::time(Utc::now()),
                                task.as_str(),
                                key.as_str()
                            ];
                            let updated = D::execute(
                                c,
                                "UPDATE journal SET state = 'finished', output = $1, \
                                 finished_at = $2 WHERE task_id = $3 AND key = $4 \
                                 AND state = 'started'",
                                update,
                            )
                            .await
                            .map_err(q(&ctx))?;
                            if updated == 1 {
                                return Ok(Outcome::Commit(()));
                            }
                            let rows = D::fetch(
                                c,
                                "SELECT state FROM journal WHERE task_id = $1 AND key = $2",
                                args![task.as_str(), key.as_str()],
                            )
                            .await
                            .map_err(q(&ctx))?;
                            let state = match rows.into_iter().next() {
                                Some(mut row) => Some(row.text(0, &ctx)?),
                                None => None,
                            };
                            // `started` now: begun by another writer after
                            // the update; again.
                            if let Some(error) =
                                journal::finish_error(&task, &key, state.as_deref())?
                            {
                                return Err(error);
                            }
                        }
                        Err(journal::finish_gave_up(&task, &key))
                    })
                }),
            )
            .await
    }

    async fn journal(&self, task: &TaskId) -> Result<Vec<JournalEntry>, StoreError> {
        let rows = self
            .rows(
                format!("reading the journal of task {task}"),
                "SELECT key, state, output, started_at, finished_at FROM journal \
                 WHERE task_id = $1 ORDER BY seq",
                args![task.as_str()],
            )
            .await?;
        rows.into_iter()
            .map(|mut row| {
                let key = row.text(0, "journal entry")?;
                let what = journal::journal_what(task, &key);
                Ok(JournalEntry {
                    task_id: task.clone(),
                    state: JournalState::parse(&row.text(1, &what)?, &what)?,
                    output: journal::decode_output(row.opt_text(2, &what)?, &what)?,
                    started_at: row.time(3, &what)?,
                    finished_at: row.opt_time(4, &what)?,
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
        let clock = Self::lease_clock(task, ttl)?;
        let sql = format!(
            "UPDATE tasks SET lease_owner = $1, lease_until = {} \
             WHERE id = $2 AND (lease_owner IS NULL OR lease_owner = $1 \
             OR lease_until IS NULL OR lease_until <= {})",
            D::LEASE_UNTIL,
            D::LEASE_NOW
        );
        let context = format!("claiming task {task} for {owner}");
        self.lease_update(task, owner, sql, clock, context).await
    }

    async fn renew_lease(
        &self,
        task: &TaskId,
        owner: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let clock = Self::lease_clock(task, ttl)?;
        let sql = format!(
            "UPDATE tasks SET lease_until = {} WHERE id = $2 AND lease_owner = $1",
            D::LEASE_UNTIL
        );
        let context = format!("renewing the lease of task {task} for {owner}");
        self.lease_update(task, owner, sql, clock, context).await
    }

    async fn release_task(&self, task: &TaskId, owner: &str) -> Result<(), StoreError> {
        let context = format!("releasing task {task} for {owner}");
        self.lease_update(task, owner, RELEASE_LEASE.to_owned(), Vec::new(), context)
            .await?;
        Ok(())
    }

    async fn apply(&self, writes: Vec<StoreWrite>) -> Result<(), StoreError> {
        if writes.is_empty() {
            return Ok(());
        }
        let prepared = Arc::new(Prepared::batch::<D>(&writes)?);
        let context = match writes.len() {
            1 => "applying a write".to_owned(),
            n => format!("applying {n} writes together"),
        };
        let mut audit_lock = false;
        for _ in 0..MAX_CAS_ATTEMPTS {
            let prepared = prepared.clone();
            let applied = self
                .d
                .write(
                    Atomic::Transaction,
                    context.clone(),
                    job(move |c| {
                        Box::pin(async move { Self::apply_in(c, &prepared, audit_lock).await })
                    }),
                )
                .await?;
            match applied {
                Applied::Done => return Ok(()),
                Applied::LostStatus => tracing::debug!(
                    "a status compare-and-set in a batch lost a race; retrying the batch"
                ),
                Applied::LostAudit => {
                    tracing::debug!(
                        "an audit append in a batch lost a race; retrying under the lock"
                    );
                    audit_lock = true;
                }
            }
        }
        let id = writes
            .iter()
            .find_map(|w| match w {
                StoreWrite::Transition { id, .. } => Some(id.clone()),
                StoreWrite::Finish { result, .. } => Some(result.task_id.clone()),
                _ => None,
            })
            .unwrap_or_else(|| TaskId::from(String::new()));
        Err(StoreError::Contention {
            id,
            attempts: MAX_CAS_ATTEMPTS,
        })
    }
}

/// How an [`apply`](Store::apply) attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Applied {
    /// Every write made.
    Done,
    /// A status compare-and-set lost a race: retry.
    LostStatus,
    /// An audit record lost its position: retry under the audit lock.
    LostAudit,
}

/// Encoded event rows, with how to name them in errors.
#[derive(Debug, Clone)]
struct EventRows {
    rows: Vec<EventRow>,
    /// `event 3 of task …`, `events 3..9 of task …`.
    described: String,
    /// The task, when they all belong to one.
    single: Option<TaskId>,
}

impl EventRows {
    fn new<E: std::borrow::Borrow<Event>>(events: &[E]) -> Result<Self, StoreError> {
        let rows = events
            .iter()
            .map(|event| {
                let event = event.borrow();
                let what = format!("event {} of task {}", event.seq, event.task_id);
                Ok(EventRow {
                    task_id: event.task_id.as_str().to_owned(),
                    seq: codec::db_int(event.seq),
                    event_type: event.kind.name().to_owned(),
                    at: event.at,
                    body: codec::to_json(event, &what)?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(EventRows {
            rows,
            described: describe_events(events),
            single: single_task(events).cloned(),
        })
    }
}

/// A [`StoreWrite`] encoded for its statements (JSON written once, before
/// the transaction, and kept for a retry).
#[derive(Debug)]
enum Prepared {
    /// A transition, or (with `result`) a finish.
    Status {
        id: TaskId,
        to: TaskStatus,
        reason: Option<String>,
        result: Option<ResultColumns>,
        /// The status the writer believes the task is in.
        from: Option<TaskStatus>,
    },
    Route {
        id: TaskId,
        update: Vec<Arg>,
    },
    Events(EventRows),
    Audit(AuditEntry),
    Stage {
        id: TaskId,
        upsert: Vec<Arg>,
        context: String,
    },
    Release {
        id: TaskId,
        owner: String,
        /// Whether a release that changed no row looks for the task (to
        /// answer `NotFound`).
        check: bool,
    },
}

impl Prepared {
    /// A batch's writes, encoded, with fewer statements: all its events in
    /// one insert (where its first events were: the rows are keyed by their
    /// own sequence numbers, so their place among the other writes does not
    /// matter), and no existence check for a lease release of a task whose
    /// status the batch also changes (that write finds a missing task).
    fn batch<D: Dialect>(writes: &[StoreWrite]) -> Result<Vec<Self>, StoreError> {
        let mut events: Vec<&Event> = Vec::new();
        let mut events_at = None;
        let mut prepared = Vec::with_capacity(writes.len());
        for write in writes {
            if let StoreWrite::Events(batch) = write {
                events_at.get_or_insert(prepared.len());
                events.extend(batch);
            } else {
                prepared.push(Prepared::new::<D>(write)?);
            }
        }
        if let Some(at) = events_at
            && !events.is_empty()
        {
            prepared.insert(at, Prepared::Events(EventRows::new(&events)?));
        }
        let changed: Vec<TaskId> = prepared
            .iter()
            .filter_map(|p| match p {
                Prepared::Status { id, .. } => Some(id.clone()),
                _ => None,
            })
            .collect();
        for p in &mut prepared {
            if let Prepared::Release { id, check, .. } = p {
                *check = !changed.contains(id);
            }
        }
        Ok(prepared)
    }

    fn new<D: Dialect>(write: &StoreWrite) -> Result<Self, StoreError> {
        Ok(match write {
            StoreWrite::Transition {
                id,
                to,
                reason,
                from,
            } => Prepared::Status {
                id: id.clone(),
                to: *to,
                reason: reason.clone(),
                result: None,
                from: *from,
            },
            StoreWrite::Finish { result, from } => Prepared::Status {
                id: result.task_id.clone(),
                to: result.status,
                reason: result.error.clone(),
                result: Some(ResultColumns::new(result)?),
                from: *from,
            },
            StoreWrite::SetRoute { id, route } => Prepared::Route {
                id: id.clone(),
                update: SqlStore::<D>::route_args(id, route)?,
            },
            StoreWrite::Events(events) => Prepared::Events(EventRows::new(events)?),
            StoreWrite::Audit(entry) => Prepared::Audit(chain_safe(entry)),
            StoreWrite::Stage {
                id,
                position,
                name,
                stage,
            } => Prepared::Stage {
                id: id.clone(),
                upsert: SqlStore::<D>::stage_args(id, *position, name, stage)?,
                context: format!("storing stage {position} ({name}) of task {id}"),
            },
            StoreWrite::Release { id, owner } => Prepared::Release {
                id: id.clone(),
                owner: owner.clone(),
                check: true,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::values_insert;

    #[test]
    fn ledger_rows_share_all_but_the_scope() {
        let keys = vec!["a".to_owned(), "b".to_owned()];
        assert_eq!(
            ledger_insert(&keys),
            "INSERT INTO budget_ledger (task_id, scope, kind, delta_nanos, note, at) \
             VALUES ($1, $6, $2, $3, $4, $5), ($1, $7, $2, $3, $4, $5)"
        );
        assert_eq!(values_insert("V ", 1, 2), "V ($1), ($2)");
    }
}
