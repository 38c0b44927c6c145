//! The run context a platform executes in: where its events go, and whether it
//! should stop.
//!
//! Events are numbered, sent at once to the run's subscriber (streaming), and
//! buffered for the store; the buffer is written in batches (at stage
//! boundaries, at the end, and whenever it grows past [`FLUSH_EVERY`]), so a
//! stream of text deltas does not cost one database write per delta.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::Utc;
use hybrid_core::{Event, EventKind, TaskId};
use hybrid_store::{Store, StoreError};
use tokio::sync::{Mutex, mpsc};
use tokio_util::sync::CancellationToken;

/// Buffered events are written once this many are waiting.
pub const FLUSH_EVERY: usize = 64;

/// Numbers, forwards and stores the events of one task.
#[derive(Debug)]
pub struct EventSink {
    task_id: TaskId,
    seq: AtomicU64,
    buffer: Mutex<Vec<Event>>,
    subscriber: Option<mpsc::Sender<Event>>,
    store: Arc<dyn Store>,
}

impl EventSink {
    /// A sink for `task_id`, forwarding to `subscriber` when there is one.
    pub fn new(
        task_id: TaskId,
        store: Arc<dyn Store>,
        subscriber: Option<mpsc::Sender<Event>>,
    ) -> Self {
        EventSink {
            task_id,
            seq: AtomicU64::new(0),
            buffer: Mutex::new(Vec::new()),
            subscriber,
            store,
        }
    }

    /// Records one event. A subscriber that went away is ignored.
    pub async fn emit(&self, kind: EventKind) -> Result<(), StoreError> {
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
            let mut buf = self.buffer.lock().await;
            buf.push(event);
            buf.len() >= FLUSH_EVERY
        };
        if full { self.flush().await } else { Ok(()) }
    }

    /// Writes every buffered event.
    pub async fn flush(&self) -> Result<(), StoreError> {
        let mut buf = self.buffer.lock().await;
        if buf.is_empty() {
            return Ok(());
        }
        self.store.append_events(&buf).await?;
        buf.clear();
        Ok(())
    }
}

/// What a platform gets to run one stage.
#[derive(Debug, Clone)]
pub struct RunContext {
    /// The stage name (`execution`, `planning`, …).
    pub stage: String,
    /// Where events go.
    pub events: Arc<EventSink>,
    /// Cancelled when the user stops the run.
    pub cancel: CancellationToken,
}

impl RunContext {
    /// Records an event.
    pub async fn emit(&self, kind: EventKind) -> Result<(), StoreError> {
        self.events.emit(kind).await
    }
}
