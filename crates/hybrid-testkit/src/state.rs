//! The state shared between [`MockLlmServer`](crate::MockLlmServer) and its
//! request handler: the reply queue, the default reply, the required key,
//! the recorded requests, and the Anthropic prompt cache.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::watch;

use serde_json::Value;

use crate::prompt_cache::{CacheUsage, PromptCache};
use crate::record::RecordedRequest;
use crate::script::Reply;

/// A reply computed from the request's body (see [`MockLlmServer::set_responder`](crate::MockLlmServer::set_responder)).
pub(crate) type Responder = Arc<dyn Fn(&Value) -> Option<Reply> + Send + Sync>;

#[derive(Default)]
struct Inner {
    queue: VecDeque<Reply>,
    default: Option<Reply>,
    responder: Option<Responder>,
    api_key: Option<String>,
    requests: Vec<RecordedRequest>,
    /// Requests seen; equal to `requests.len()` unless recording is off.
    seen: usize,
    keep_requests: bool,
    prompt_cache: PromptCache,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inner")
            .field("queue", &self.queue.len())
            .field("default", &self.default.is_some())
            .field("responder", &self.responder.is_some())
            .field("seen", &self.seen)
            .finish_non_exhaustive()
    }
}

/// Shared, lock-protected server state.
#[derive(Debug)]
pub(crate) struct SharedState {
    inner: Mutex<Inner>,
    /// Becomes true when the server is dropped.
    pub(crate) shutdown: watch::Receiver<bool>,
}

impl SharedState {
    pub(crate) fn new(shutdown: watch::Receiver<bool>) -> Self {
        SharedState {
            inner: Mutex::new(Inner {
                keep_requests: true,
                ..Inner::default()
            }),
            shutdown,
        }
    }

    /// The lock; a panic while holding it (only possible in a test) does not
    /// make the state unusable.
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn enqueue(&self, reply: Reply) {
        self.lock().queue.push_back(reply);
    }

    pub(crate) fn set_default(&self, reply: Option<Reply>) {
        self.lock().default = reply;
    }

    pub(crate) fn set_responder(&self, responder: Option<Responder>) {
        self.lock().responder = responder;
    }

    pub(crate) fn keep_requests(&self, keep: bool) {
        self.lock().keep_requests = keep;
    }

    pub(crate) fn require_api_key(&self, key: Option<String>) {
        self.lock().api_key = key;
    }

    /// Records a request; returns the key required at that moment.
    pub(crate) fn record(&self, request: RecordedRequest) -> Option<String> {
        let mut inner = self.lock();
        inner.seen += 1;
        if inner.keep_requests {
            inner.requests.push(request);
        }
        inner.api_key.clone()
    }

    /// The next queued reply, else the responder's for `body`, else the default.
    pub(crate) fn next_reply(&self, body: &Value) -> Option<Reply> {
        let (responder, default) = {
            let mut inner = self.lock();
            if let Some(reply) = inner.queue.pop_front() {
                return Some(reply);
            }
            (inner.responder.clone(), inner.default.clone())
        };
        responder.and_then(|r| r(body)).or(default)
    }

    pub(crate) fn requests(&self) -> Vec<RecordedRequest> {
        self.lock().requests.clone()
    }

    pub(crate) fn request_count(&self) -> usize {
        self.lock().seen
    }

    pub(crate) fn queued(&self) -> usize {
        self.lock().queue.len()
    }

    /// Runs an Anthropic request body through the prompt cache.
    pub(crate) fn prompt_cache(&self, body: &Value) -> Option<CacheUsage> {
        self.lock().prompt_cache.answer(body)
    }

    pub(crate) fn clear_prompt_cache(&self) {
        self.lock().prompt_cache.clear();
    }
}
