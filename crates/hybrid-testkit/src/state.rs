//! The state shared between [`MockLlmServer`](crate::MockLlmServer) and its
//! request handler: the reply queue, the default reply, the required key,
//! the recorded requests, and the Anthropic prompt cache.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};

use tokio::sync::watch;

use serde_json::Value;

use crate::prompt_cache::{CacheUsage, PromptCache};
use crate::record::RecordedRequest;
use crate::script::Reply;

#[derive(Debug, Default)]
struct Inner {
    queue: VecDeque<Reply>,
    default: Option<Reply>,
    api_key: Option<String>,
    requests: Vec<RecordedRequest>,
    prompt_cache: PromptCache,
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
            inner: Mutex::new(Inner::default()),
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

    pub(crate) fn require_api_key(&self, key: Option<String>) {
        self.lock().api_key = key;
    }

    /// Records a request; returns the key required at that moment.
    pub(crate) fn record(&self, request: RecordedRequest) -> Option<String> {
        let mut inner = self.lock();
        inner.requests.push(request);
        inner.api_key.clone()
    }

    /// The next queued reply, else the default.
    pub(crate) fn next_reply(&self) -> Option<Reply> {
        let mut inner = self.lock();
        inner.queue.pop_front().or_else(|| inner.default.clone())
    }

    pub(crate) fn requests(&self) -> Vec<RecordedRequest> {
        self.lock().requests.clone()
    }

    pub(crate) fn request_count(&self) -> usize {
        self.lock().requests.len()
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
