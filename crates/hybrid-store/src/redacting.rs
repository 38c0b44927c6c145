//! [`RedactingStore`]: the one boundary where data enters the store, and the secrets stay
//! out.
//!
//! Every [`Store`] that [`connect`](crate::connect()) opens is wrapped in it: each write
//! passes its records through a [`Redactor`] (the built-in patterns plus, with
//! [`connect_redacted`](crate::connect_redacted), the configured secret values) before the
//! backend sees them, so no table — tasks, status history, stages, events, approvals,
//! budget ledger, journal, audit — holds a secret, whichever process or code path writes.
//! Reads pass through unchanged.
//!
//! | write | what is redacted |
//! | --- | --- |
//! | `create_task` | description, context, workflow, submitter |
//! | `transition` | the reason |
//! | `set_route` | the route |
//! | `append_event(s)` | every text of the event (tool arguments and output, deltas, messages, results …) |
//! | `put_stage`, `finish` | every text of the stage or task result |
//! | `append_audit` | agent, action, command, output, user, approver, detail |
//! | `create_approval`, `decide_approval`, `expire_approval` | agent, tool, command, rule, reason; the answer's name and note |
//! | `reserve_budget`, `settle_budget` | the ledger note |
//! | `journal_finish` | the recorded output |
//! | `apply` | each write as its own method |
//!
//! Ids (task ids, call ids, journal keys, lease owners) are identifiers and stay as given.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use hybrid_core::{Event, Money, RouteInfo, StageResult, Task, TaskId, TaskResult, TaskStatus};
use hybrid_secrets::{Redact, Redactor, redact_all};

use crate::StoreError;
use crate::approval::{Approval, ApprovalFilter, NewApproval};
use crate::audit::{AuditEntry, AuditFilter, AuditRecord, AuditVerification};
use crate::budget::{BudgetCharge, BudgetScope, ChargeOutcome, LedgerEntry};
use crate::journal::{JournalBegin, JournalEntry};
use crate::store::{
    MetricsSnapshot, StatusChange, Store, StoreWrite, TaskFilter, TaskRecord, TaskSummary,
};

impl Redact for AuditEntry {
    fn redact(&mut self, r: &Redactor) -> bool {
        redact_all!(r;
            self.agent, self.action, self.command, self.output, self.user, self.approved_by,
            self.detail)
    }
}

impl Redact for NewApproval {
    fn redact(&mut self, r: &Redactor) -> bool {
        redact_all!(r; self.agent, self.tool, self.command, self.rule, self.reason)
    }
}

/// A [`Store`] that redacts everything written to the one it wraps; see the
/// [module docs](self).
#[derive(Debug, Clone)]
pub struct RedactingStore {
    inner: Arc<dyn Store>,
    redactor: Redactor,
}

impl RedactingStore {
    /// Wraps `inner`: every write is redacted by `redactor` first.
    pub fn new(inner: Arc<dyn Store>, redactor: Redactor) -> Self {
        RedactingStore { inner, redactor }
    }

    /// The redactor every write passes.
    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    fn text(&self, text: &str) -> String {
        self.redactor.redact(text).into_owned()
    }

    fn opt_text(&self, text: Option<&str>) -> Option<String> {
        text.map(|t| self.text(t))
    }

    fn record<T: Redact + Clone>(&self, record: &T) -> T {
        record.clone().redacted(&self.redactor)
    }
}

#[async_trait]
impl Store for RedactingStore {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }

    async fn create_task(&self, task: &Task) -> Result<(), StoreError> {
        self.inner.create_task(&self.record(task)).await
    }

    async fn transition(
        &self,
        id: &TaskId,
        to: TaskStatus,
        reason: Option<&str>,
    ) -> Result<TaskStatus, StoreError> {
        let reason = self.opt_text(reason);
        self.inner.transition(id, to, reason.as_deref()).await
    }

    async fn set_route(&self, id: &TaskId, route: &RouteInfo) -> Result<(), StoreError> {
        self.inner.set_route(id, &self.record(route)).await
    }

    async fn append_event(&self, event: &Event) -> Result<(), StoreError> {
        self.inner.append_event(&self.record(event)).await
    }

    async fn append_events(&self, events: &[Event]) -> Result<(), StoreError> {
        let events: Vec<Event> = events.iter().map(|e| self.record(e)).collect();
        self.inner.append_events(&events).await
    }

    async fn put_stage(
        &self,
        id: &TaskId,
        position: u32,
        name: &str,
        stage: &StageResult,
    ) -> Result<(), StoreError> {
        self.inner
            .put_stage(id, position, name, &self.record(stage))
            .await
    }

    async fn finish(&self, result: &TaskResult) -> Result<(), StoreError> {
        self.inner.finish(&self.record(result)).await
    }

    async fn get_task(&self, id: &TaskId) -> Result<Option<TaskRecord>, StoreError> {
        self.inner.get_task(id).await
    }

    async fn list_tasks(&self, filter: &TaskFilter) -> Result<Vec<TaskSummary>, StoreError> {
        self.inner.list_tasks(filter).await
    }

    async fn events(&self, id: &TaskId) -> Result<Vec<Event>, StoreError> {
        self.inner.events(id).await
    }

    async fn stages(&self, id: &TaskId) -> Result<Vec<(String, StageResult)>, StoreError> {
        self.inner.stages(id).await
    }

    async fn status_history(&self, id: &TaskId) -> Result<Vec<StatusChange>, StoreError> {
        self.inner.status_history(id).await
    }

    async fn metrics(&self) -> Result<MetricsSnapshot, StoreError> {
        self.inner.metrics().await
    }

    async fn append_audit(&self, entry: &AuditEntry) -> Result<AuditRecord, StoreError> {
        self.inner.append_audit(&self.record(entry)).await
    }

    async fn audit_records(&self, filter: &AuditFilter) -> Result<Vec<AuditRecord>, StoreError> {
        self.inner.audit_records(filter).await
    }

    async fn verify_audit(&self) -> Result<AuditVerification, StoreError> {
        self.inner.verify_audit().await
    }

    async fn create_approval(&self, new: &NewApproval) -> Result<Approval, StoreError> {
        self.inner.create_approval(&self.record(new)).await
    }

    async fn get_approval(&self, id: &str) -> Result<Option<Approval>, StoreError> {
        self.inner.get_approval(id).await
    }

    async fn list_approvals(&self, filter: &ApprovalFilter) -> Result<Vec<Approval>, StoreError> {
        self.inner.list_approvals(filter).await
    }

    async fn decide_approval(
        &self,
        id: &str,
        approve: bool,
        by: &str,
        note: Option<&str>,
    ) -> Result<Approval, StoreError> {
        let note = self.opt_text(note);
        self.inner
            .decide_approval(id, approve, &self.text(by), note.as_deref())
            .await
    }

    async fn expire_approval(&self, id: &str, note: &str) -> Result<Approval, StoreError> {
        self.inner.expire_approval(id, &self.text(note)).await
    }

    async fn reserve_budget(&self, charge: &BudgetCharge) -> Result<ChargeOutcome, StoreError> {
        let mut charge = charge.clone();
        charge.note.redact(&self.redactor);
        self.inner.reserve_budget(&charge).await
    }

    async fn settle_budget(
        &self,
        scopes: &[BudgetScope],
        reserved: Money,
        actual: Money,
        task_id: &TaskId,
        note: &str,
    ) -> Result<(), StoreError> {
        self.inner
            .settle_budget(scopes, reserved, actual, task_id, &self.text(note))
            .await
    }

    async fn budget_spent(&self, scope: &BudgetScope) -> Result<Money, StoreError> {
        self.inner.budget_spent(scope).await
    }

    async fn budget_ledger(&self, task: Option<&TaskId>) -> Result<Vec<LedgerEntry>, StoreError> {
        self.inner.budget_ledger(task).await
    }

    async fn journal_begin(&self, task: &TaskId, key: &str) -> Result<JournalBegin, StoreError> {
        self.inner.journal_begin(task, key).await
    }

    async fn journal_finish(
        &self,
        task: &TaskId,
        key: &str,
        output: &serde_json::Value,
    ) -> Result<(), StoreError> {
        let output = self.redactor.redact_json(output.clone());
        self.inner.journal_finish(task, key, &output).await
    }

    async fn journal(&self, task: &TaskId) -> Result<Vec<JournalEntry>, StoreError> {
        self.inner.journal(task).await
    }

    async fn claim_task(
        &self,
        task: &TaskId,
        owner: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        self.inner.claim_task(task, owner, ttl).await
    }

    async fn renew_lease(
        &self,
        task: &TaskId,
        owner: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        self.inner.renew_lease(task, owner, ttl).await
    }

    async fn release_task(&self, task: &TaskId, owner: &str) -> Result<(), StoreError> {
        self.inner.release_task(task, owner).await
    }

    async fn apply(&self, mut writes: Vec<StoreWrite>) -> Result<(), StoreError> {
        for write in &mut writes {
            self.redact_write(write);
        }
        self.inner.apply(writes).await
    }
}

impl RedactingStore {
    /// Redacts a batch write in place, as its own method redacts it (ids stay).
    fn redact_write(&self, write: &mut StoreWrite) {
        let r = &self.redactor;
        match write {
            StoreWrite::Transition { reason, .. } => {
                if let Some(reason) = reason {
                    reason.redact(r);
                }
            }
            StoreWrite::SetRoute { route, .. } => {
                route.redact(r);
            }
            StoreWrite::Events(events) => {
                for event in events {
                    event.redact(r);
                }
            }
            StoreWrite::Audit(entry) => {
                entry.redact(r);
            }
            StoreWrite::Stage { stage, .. } => {
                stage.redact(r);
            }
            StoreWrite::Finish { result, .. } => {
                result.redact(r);
            }
            StoreWrite::Release { .. } => {}
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use hybrid_core::{EventKind, Stages, Usage};
    use serde_json::json;

    use super::*;
    use crate::SqliteStore;

    const SECRET: &str = "ghp_0123456789abcdefghijABCDEFGHIJ012345";
    const VALUE: &str = "configured-value-77aa";

    fn said(what: &str) -> String {
        format!("{what}: token={SECRET} and {VALUE}")
    }

    /// Every write method, each given secrets; then every read, and none holds one.
    #[tokio::test]
    async fn no_write_reaches_the_backend_with_a_secret() {
        let backend: Arc<dyn Store> =
            Arc::new(SqliteStore::connect("sqlite::memory:").await.unwrap());
        let store = RedactingStore::new(backend, Redactor::new([VALUE]));
        let mut task = Task::new(said("description"));
        task.context.insert("note".into(), json!(said("context")));
        task.submitted_by = Some(said("submitter"));
        let id = task.id.clone();
        store.create_task(&task).await.unwrap();
        store
            .transition(&id, TaskStatus::Routing, Some(&said("reason")))
            .await
            .unwrap();
        let route = RouteInfo {
            platform: "claude".into(),
            rule: "explicit".into(),
            reason: said("route"),
        };
        store.set_route(&id, &route).await.unwrap();
        let event = |seq, kind| Event {
            task_id: id.clone(),
            seq,
            at: chrono::Utc::now(),
            kind,
        };
        store
            .append_event(&event(
                0,
                EventKind::Warning {
                    message: said("warning"),
                },
            ))
            .await
            .unwrap();
        store
            .append_events(&[
                event(
                    1,
                    EventKind::ToolResult {
                        stage: "s".into(),
                        id: "c".into(),
                        output: said("output"),
                        is_error: false,
                    },
                ),
                event(
                    2,
                    EventKind::ToolCall {
                        stage: "s".into(),
                        id: "c".into(),
                        name: "bash".into(),
                        arguments: json!({"command": said("command")}),
                    },
                ),
            ])
            .await
            .unwrap();
        let stage = StageResult {
            agent: "executor".into(),
            platform: "claude".into(),
            model: None,
            output: said("stage"),
            usage: Usage::default(),
            cost_usd: None,
            tools_used: vec![],
            tool_calls: vec![],
            verdict: None,
            detail: Some(json!({"stdout": said("detail")})),
            finish_reason: None,
            duration_ms: 1,
        };
        store.put_stage(&id, 0, "execution", &stage).await.unwrap();
        store
            .transition(&id, TaskStatus::InProgress, None)
            .await
            .unwrap();
        let mut stages = Stages::new();
        stages.insert("execution".into(), stage.clone());
        let result = TaskResult {
            task_id: id.clone(),
            status: TaskStatus::Completed,
            platform: "claude".into(),
            route: route.clone(),
            stages,
            output: said("result"),
            usage: Usage::default(),
            cost_usd: None,
            duration_ms: 2,
            error: Some(said("error")),
        };
        let mut entry = AuditEntry::new("executor", "bash_command", "system");
        entry.task_id = Some(id.clone());
        entry.command = Some(said("audited command"));
        entry.output = Some(said("audited output"));
        entry.detail = json!({"password": "hunter2-hunter2", "note": said("detail")});
        store.append_audit(&entry).await.unwrap();
        let new = NewApproval {
            task_id: id.clone(),
            call_id: "call_1".into(),
            agent: "executor".into(),
            tool: "bash".into(),
            command: said("approve this"),
            rule: "default".into(),
            reason: said("because"),
            expires_at: None,
        };
        let first = store.create_approval(&new).await.unwrap();
        store
            .decide_approval(&first.id, true, "alice", Some(&said("note")))
            .await
            .unwrap();
        let second = store.create_approval(&new).await.unwrap();
        store
            .expire_approval(&second.id, &said("expired"))
            .await
            .unwrap();
        let scope = BudgetScope::Task(id.clone());
        let charge = BudgetCharge {
            scopes: vec![(scope.clone(), Money::from_nanos(10_000_000_000))],
            amount: Money::from_nanos(500_000_000),
            task_id: id.clone(),
            note: said("estimate"),
        };
        store.reserve_budget(&charge).await.unwrap();
        store
            .settle_budget(&[scope], charge.amount, Money::ZERO, &id, &said("settle"))
            .await
            .unwrap();
        assert!(matches!(
            store.journal_begin(&id, "runbook:0").await.unwrap(),
            JournalBegin::Started
        ));
        store
            .journal_finish(&id, "runbook:0", &json!({"stdout": said("journal")}))
            .await
            .unwrap();
        store.finish(&result).await.unwrap();

        let everything = format!(
            "{:?}{:?}{:?}{:?}{:?}{:?}{:?}{:?}",
            store.get_task(&id).await.unwrap(),
            store.events(&id).await.unwrap(),
            store.stages(&id).await.unwrap(),
            store.status_history(&id).await.unwrap(),
            store.audit_records(&AuditFilter::default()).await.unwrap(),
            store
                .list_approvals(&ApprovalFilter::default())
                .await
                .unwrap(),
            store.budget_ledger(Some(&id)).await.unwrap(),
            store.journal(&id).await.unwrap(),
        );
        for secret in [SECRET, VALUE, "hunter2-hunter2"] {
            assert!(
                !everything.contains(secret),
                "{secret} was stored: {everything}"
            );
        }
        for what in [
            "description",
            "context",
            "submitter",
            "reason",
            "route",
            "warning",
            "output",
            "command",
            "stage",
            "detail",
            "result",
            "error",
            "audited command",
            "audited output",
            "approve this",
            "because",
            "note",
            "expired",
            "estimate",
            "settle",
            "journal",
        ] {
            assert!(
                everything.contains(&format!("{what}: token=[REDACTED] and [REDACTED]")),
                "{what} missing: {everything}"
            );
        }
    }

    /// A batch passes the same redaction as the methods it stands for.
    #[tokio::test]
    async fn a_batch_reaches_the_backend_without_a_secret() {
        let backend: Arc<dyn Store> =
            Arc::new(SqliteStore::connect("sqlite::memory:").await.unwrap());
        let store = RedactingStore::new(backend, Redactor::new([VALUE]));
        let task = Task::new("batched");
        let id = task.id.clone();
        store.create_task(&task).await.unwrap();
        let route = RouteInfo {
            platform: "claude".into(),
            rule: "explicit".into(),
            reason: said("route"),
        };
        let mut entry = AuditEntry::new("executor", "bash_command", "system");
        entry.task_id = Some(id.clone());
        entry.output = Some(said("audited output"));
        let stage = StageResult {
            agent: "executor".into(),
            platform: "claude".into(),
            model: None,
            output: said("stage"),
            usage: Usage::default(),
            cost_usd: None,
            tools_used: vec![],
            tool_calls: vec![],
            verdict: None,
            detail: None,
            finish_reason: None,
            duration_ms: 1,
        };
        let mut stages = Stages::new();
        stages.insert("execution".into(), stage.clone());
        store
            .apply(vec![
                StoreWrite::Transition {
                    id: id.clone(),
                    to: TaskStatus::Routing,
                    reason: Some(said("reason")),
                    from: Some(TaskStatus::Pending),
                },
                StoreWrite::SetRoute {
                    id: id.clone(),
                    route: route.clone(),
                },
                StoreWrite::Transition {
                    id: id.clone(),
                    to: TaskStatus::InProgress,
                    reason: None,
                    from: None,
                },
                StoreWrite::Events(vec![Event {
                    task_id: id.clone(),
                    seq: 0,
                    at: chrono::Utc::now(),
                    kind: EventKind::Warning {
                        message: said("warning"),
                    },
                }]),
                StoreWrite::Audit(entry),
                StoreWrite::Stage {
                    id: id.clone(),
                    position: 0,
                    name: "execution".into(),
                    stage,
                },
                StoreWrite::Finish {
                    from: None,
                    result: TaskResult {
                        task_id: id.clone(),
                        status: TaskStatus::Completed,
                        platform: "claude".into(),
                        route,
                        stages,
                        output: said("result"),
                        usage: Usage::default(),
                        cost_usd: None,
                        duration_ms: 2,
                        error: None,
                    },
                },
            ])
            .await
            .unwrap();
        let everything = format!(
            "{:?}{:?}{:?}{:?}{:?}",
            store.get_task(&id).await.unwrap(),
            store.events(&id).await.unwrap(),
            store.stages(&id).await.unwrap(),
            store.status_history(&id).await.unwrap(),
            store.audit_records(&AuditFilter::default()).await.unwrap(),
        );
        for secret in [SECRET, VALUE] {
            assert!(
                !everything.contains(secret),
                "{secret} was stored: {everything}"
            );
        }
        for what in [
            "reason",
            "route",
            "warning",
            "audited output",
            "stage",
            "result",
        ] {
            assert!(
                everything.contains(&format!("{what}: token=[REDACTED] and [REDACTED]")),
                "{what} missing: {everything}"
            );
        }
    }
}
