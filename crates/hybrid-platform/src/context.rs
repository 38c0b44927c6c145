//! The run context a platform executes in: where its events go, and whether it
//! should stop.
//!
//! Events are redacted, numbered, sent at once to the run's subscriber
//! (streaming), and queued for the store with the run's other writes — its
//! audit records, status changes, route, stages and result — in the order
//! they happen. The queue is committed as one batch ([`Store::apply`]): before
//! every model call and every tool call (the gates flush it), before the run
//! waits for an approval, when a stage ends, when the run ends, and whenever
//! [`FLUSH_EVERY`] events wait. So every step is durable before the next one
//! starts, and a step costs one commit, not one per record (a stream of text
//! deltas is not a database write per delta).
//!
//! Redaction happens here, before anything leaves the run: every event passes
//! the run's [`Redactor`]; text deltas pass a [`StreamRedactor`] per stage,
//! which holds the word still arriving (a secret may be split across deltas)
//! and releases it when the word ends or the stage emits anything else. The
//! model still sees the raw tool output within its own turn; nothing else does.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::Utc;
use hybrid_agents::ToolGate;
use hybrid_core::{Event, EventKind, TaskId, TaskStatus};
use hybrid_secrets::{Redact, Redactor, StreamRedactor};
use hybrid_store::{AuditEntry, Store, StoreError, StoreWrite};
use tokio::sync::{Mutex, mpsc};
use tokio_util::sync::CancellationToken;

/// Buffered events are written once this many are waiting.
pub const FLUSH_EVERY: usize = 64;

/// Numbers, forwards and stores the events of one task.
#[derive(Debug)]
pub struct EventSink {
    task_id: TaskId,
    seq: AtomicU64,
    pending: Mutex<Pending>,
    status: Mutex<TaskStatus>,
    subscriber: Option<mpsc::Sender<Event>>,
    store: Arc<dyn Store>,
    audit: AuditWriter,
    /// Text deltas of each stage, held until their words end.
    deltas: Mutex<HashMap<String, StreamRedactor>>,
}

/// The run's writes not yet committed, in order.
#[derive(Debug, Default)]
struct Pending {
    writes: Vec<StoreWrite>,
    /// Events among them.
    events: usize,
}

impl Pending {
    fn push_event(&mut self, event: Event) {
        match self.writes.last_mut() {
            Some(StoreWrite::Events(events)) => events.push(event),
            _ => self.writes.push(StoreWrite::Events(vec![event])),
        }
        self.events += 1;
    }
}

/// Appends the run's audit records, redacted, and remembers who approved which call.
#[derive(Debug)]
struct AuditWriter {
    user: String,
    redactor: Redactor,
    approvals: Mutex<HashMap<String, String>>,
}

/// One audit record of a run, before redaction.
#[derive(Debug, Clone, Default)]
pub struct AuditNote {
    /// The agent that acted.
    pub agent: String,
    /// `model_call`, `bash_command`, `tool_call`, `policy_decision`, `approval`.
    pub action: String,
    /// The command or call.
    pub command: Option<String>,
    /// What came of it.
    pub output: Option<String>,
    /// Who approved it.
    pub approved_by: Option<String>,
    /// Anything else.
    pub detail: serde_json::Value,
}

impl EventSink {
    /// A sink for `task_id`, forwarding to `subscriber` when there is one.
    pub fn new(
        task_id: TaskId,
        store: Arc<dyn Store>,
        subscriber: Option<mpsc::Sender<Event>>,
    ) -> Self {
        Self::with_audit(
            task_id,
            store,
            subscriber,
            "system".into(),
            Redactor::default(),
        )
    }

    /// A sink that also writes audit records as `user`; events and records are
    /// redacted by `redactor`.
    pub fn with_audit(
        task_id: TaskId,
        store: Arc<dyn Store>,
        subscriber: Option<mpsc::Sender<Event>>,
        user: String,
        redactor: Redactor,
    ) -> Self {
        EventSink {
            task_id,
            seq: AtomicU64::new(0),
            pending: Mutex::new(Pending::default()),
            status: Mutex::new(TaskStatus::Pending),
            subscriber,
            store,
            audit: AuditWriter {
                user,
                redactor,
                approvals: Mutex::new(HashMap::new()),
            },
            deltas: Mutex::new(HashMap::new()),
        }
    }

    /// The same sink continuing a task that already has events up to
    /// `next_seq - 1` and is now `status` (for a resumed run).
    pub fn resuming(self, next_seq: u64, status: TaskStatus) -> Self {
        EventSink {
            seq: AtomicU64::new(next_seq),
            status: Mutex::new(status),
            ..self
        }
    }

    /// Records one event, redacted. A subscriber that went away is ignored.
    pub async fn emit(&self, kind: EventKind) -> Result<(), StoreError> {
        for kind in self.redact(kind).await {
            self.publish(kind).await?;
        }
        Ok(())
    }

    /// Emits a stage's text that is complete — held back until the output
    /// guardrails passed — as one delta, redacted as a whole.
    pub async fn emit_text_block(&self, stage: &str, text: &str) -> Result<(), StoreError> {
        let mut kinds = {
            let mut deltas = self.deltas.lock().await;
            release(&mut deltas, Some(stage))
        };
        kinds.push(EventKind::TextDelta {
            stage: stage.to_owned(),
            text: self.audit.redactor.redact(text).into_owned(),
        });
        for kind in kinds {
            self.publish(kind).await?;
        }
        Ok(())
    }

    /// What `kind` becomes once redacted: a text delta passes its stage's stream
    /// redactor (and may be held, for now); any other event first releases what
    /// its stage (or, naming none, every stage) still holds.
    async fn redact(&self, kind: EventKind) -> Vec<EventKind> {
        let redactor = &self.audit.redactor;
        let mut deltas = self.deltas.lock().await;
        if let EventKind::TextDelta { stage, text } = kind {
            let stream = deltas
                .entry(stage.clone())
                .or_insert_with(|| StreamRedactor::new(Redactor::clone(redactor)));
            return match stream.push(&text) {
                Some(text) if !text.is_empty() => vec![EventKind::TextDelta { stage, text }],
                _ => Vec::new(),
            };
        }
        let mut out = release(&mut deltas, kind.stage());
        if let Some(stage) = kind.stage()
            && matches!(kind, EventKind::StageCompleted { .. })
        {
            deltas.remove(stage);
        }
        out.push(kind.redacted(redactor));
        out
    }

    /// Numbers an event, sends it to the subscriber and queues it for the store.
    async fn publish(&self, kind: EventKind) -> Result<(), StoreError> {
        let event = Event {
            task_id: self.task_id.clone(),
            seq: self.seq.fetch_add(1, Ordering::Relaxed),
            at: Utc::now(),
            kind,
        };
        if let Some(tx) = &self.subscriber {
            let _ = tx.send(event.clone()).await;
        }
        let full = {
            let mut pending = self.pending.lock().await;
            pending.push_event(event);
            pending.events >= FLUSH_EVERY
        };
        if full { self.flush().await } else { Ok(()) }
    }

    /// Queues a write for the next commit ([`flush`](Self::flush)), after
    /// everything queued before it.
    pub async fn defer(&self, write: StoreWrite) {
        self.pending.lock().await.writes.push(write);
    }

    /// Queues a status change and records it as an event. The state machine
    /// is checked here, against the status this run last set, and again by
    /// the store when the batch commits (a change made meanwhile by another
    /// process fails that commit). A move to `awaiting_approval` is
    /// committed at once: whoever answers must see it.
    pub async fn transition(
        &self,
        to: TaskStatus,
        reason: Option<String>,
    ) -> Result<(), StoreError> {
        let mut status = self.status.lock().await;
        let from = *status;
        from.transition(to)
            .map_err(|error| StoreError::IllegalTransition {
                id: self.task_id.clone(),
                error,
            })?;
        self.defer(StoreWrite::Transition {
            id: self.task_id.clone(),
            to,
            reason: reason.clone(),
            from: Some(from),
        })
        .await;
        *status = to;
        drop(status);
        self.emit(EventKind::Status { from, to, reason }).await?;
        if to == TaskStatus::AwaitingApproval {
            self.flush().await?;
        }
        Ok(())
    }

    /// Whether a subscriber hears the events as they happen.
    pub fn has_subscriber(&self) -> bool {
        self.subscriber.is_some()
    }

    /// The task this sink records.
    pub fn task_id(&self) -> &TaskId {
        &self.task_id
    }

    /// The store it writes to.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The last status this sink committed.
    pub async fn status(&self) -> TaskStatus {
        *self.status.lock().await
    }

    /// Records that the store moved the task to `to` by other means (e.g. `finish`).
    pub async fn record_status(
        &self,
        to: TaskStatus,
        reason: Option<String>,
    ) -> Result<(), StoreError> {
        let from = std::mem::replace(&mut *self.status.lock().await, to);
        self.emit(EventKind::Status { from, to, reason }).await
    }

    /// Queues an audit record (redacted; the store chains it when the batch
    /// commits, before the run's next step).
    pub async fn audit(&self, note: AuditNote) {
        let approved_by = match note.approved_by {
            Some(by) => Some(by),
            None => match note.detail.get("call_id").and_then(|c| c.as_str()) {
                Some(call) => self.audit.approvals.lock().await.get(call).cloned(),
                None => None,
            },
        };
        let entry = AuditEntry {
            task_id: Some(self.task_id.clone()),
            agent: note.agent,
            action: note.action,
            command: note.command,
            output: note.output,
            user: self.audit.user.clone(),
            approved_by,
            detail: note.detail,
        };
        let entry = entry.redacted(&self.audit.redactor);
        self.defer(StoreWrite::Audit(entry)).await;
    }

    /// Remembers who approved a tool call, for the call's audit record.
    pub async fn note_approval(&self, call_id: &str, by: &str) {
        self.audit
            .approvals
            .lock()
            .await
            .insert(call_id.to_owned(), by.to_owned());
    }

    /// Commits every queued write, in one batch. On failure none of them
    /// stands and they are dropped: the run fails with the error, and its
    /// end is recorded by the writes queued after.
    pub async fn flush(&self) -> Result<(), StoreError> {
        let mut pending = self.pending.lock().await;
        if pending.writes.is_empty() {
            return Ok(());
        }
        let writes = std::mem::take(&mut *pending);
        self.store.apply(writes.writes).await
    }
}

/// The text the stream redactors of `stage` (or, `None`, of every stage) still
/// hold, as deltas.
fn release(deltas: &mut HashMap<String, StreamRedactor>, stage: Option<&str>) -> Vec<EventKind> {
    let mut out = Vec::new();
    for (name, stream) in deltas.iter_mut() {
        if stage.is_none_or(|s| s == name)
            && let Some(text) = stream.finish()
            && !text.is_empty()
        {
            out.push(EventKind::TextDelta {
                stage: name.clone(),
                text,
            });
        }
    }
    out
}

/// What a platform gets to run one stage.
#[derive(Clone)]
pub struct RunContext {
    /// The stage name (`execution`, `planning`, …).
    pub stage: String,
    /// Where events go.
    pub events: Arc<EventSink>,
    /// Cancelled when the user stops the run.
    pub cancel: CancellationToken,
    /// The task's workspace: tools run here.
    pub workdir: PathBuf,
    /// Asked before every tool call.
    pub gate: Arc<dyn ToolGate>,
    /// Asked before every model call (rate limits, budgets), told its usage after.
    pub model_gate: Arc<dyn hybrid_agents::ModelGate>,
    /// Bounds on each tool call.
    pub tool_limits: hybrid_tools::Limits,
    /// What commands may do beyond the workspace (network, extra writable paths).
    pub sandbox: hybrid_tools::SandboxPolicy,
    /// Text deltas of this stage, kept back until the output guardrails pass;
    /// `None` when deltas go out as they come.
    pub held_deltas: Option<Arc<Mutex<Vec<String>>>>,
}

impl std::fmt::Debug for RunContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunContext")
            .field("stage", &self.stage)
            .field("workdir", &self.workdir)
            .finish_non_exhaustive()
    }
}

impl RunContext {
    /// Records an event.
    pub async fn emit(&self, kind: EventKind) -> Result<(), StoreError> {
        self.events.emit(kind).await
    }
}
