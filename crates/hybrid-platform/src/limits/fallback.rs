//! A chat model that moves to another platform's model when its provider
//! says it is rate limited (HTTP 429), instead of fighting the limit.
//!
//! `[platforms.openai] fallback = "openai_backup"` makes the `openai`
//! platform's calls go to `openai_backup`'s model from the first 429 on, for
//! the rest of the stage (the primary is not retried on 429 when a fallback
//! exists). The switch is a `warning` event and an audit record. The
//! conversation carries over as it is: both models see the same normalized
//! messages, so tool calls already made are not made again.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use futures::StreamExt;
use hybrid_core::{EventKind, Usage};
use hybrid_llm::{ChatModel, ChatRequest, ChatResponse, ChatStream, CostEstimate, LlmError};

use crate::context::{AuditNote, EventSink};

/// The primary model, and where to go when it is rate limited.
#[derive(Clone)]
pub struct FallbackModel {
    inner: Arc<Inner>,
}

struct Inner {
    primary: Arc<dyn ChatModel>,
    fallback_platform: String,
    fallback: Arc<dyn ChatModel>,
    switched: AtomicBool,
    events: Option<Arc<EventSink>>,
}

impl std::fmt::Debug for FallbackModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FallbackModel")
            .field("primary", &self.inner.primary.model())
            .field("fallback_platform", &self.inner.fallback_platform)
            .field("switched", &self.inner.switched.load(Ordering::Relaxed))
            .finish()
    }
}

impl FallbackModel {
    /// `primary`, moving to `fallback` (the model of platform
    /// `fallback_platform`) on a 429; the switch is reported to `events`.
    pub fn new(
        primary: Arc<dyn ChatModel>,
        fallback_platform: impl Into<String>,
        fallback: Arc<dyn ChatModel>,
        events: Option<Arc<EventSink>>,
    ) -> Self {
        FallbackModel {
            inner: Arc::new(Inner {
                primary,
                fallback_platform: fallback_platform.into(),
                fallback,
                switched: AtomicBool::new(false),
                events,
            }),
        }
    }

    /// Whether calls now go to the fallback.
    pub fn switched(&self) -> bool {
        self.inner.switched.load(Ordering::Relaxed)
    }

    fn current(&self) -> &Arc<dyn ChatModel> {
        if self.switched() {
            &self.inner.fallback
        } else {
            &self.inner.primary
        }
    }

    async fn switch(&self, error: &LlmError) {
        if self.inner.switched.swap(true, Ordering::Relaxed) {
            return;
        }
        let message = format!(
            "{}; moving to fallback platform {} ({}) for the rest of this stage",
            error,
            self.inner.fallback_platform,
            self.inner.fallback.model()
        );
        tracing::warn!("{message}");
        if let Some(events) = &self.inner.events {
            if let Err(e) = events
                .emit(EventKind::Warning {
                    message: message.clone(),
                })
                .await
            {
                tracing::warn!(error = %e, "could not record the fallback warning");
            }
            events
                .audit(AuditNote {
                    agent: "platform".into(),
                    action: "fallback".into(),
                    command: Some(self.inner.fallback_platform.clone()),
                    output: Some(message),
                    detail: serde_json::json!({
                        "from_model": self.inner.primary.model(),
                        "to_platform": self.inner.fallback_platform,
                        "to_model": self.inner.fallback.model(),
                    }),
                    ..AuditNote::default()
                })
                .await;
        }
    }
}

#[async_trait]
impl ChatModel for FallbackModel {
    fn provider(&self) -> &str {
        self.current().provider()
    }

    fn model(&self) -> &str {
        self.current().model()
    }

    async fn complete(&self, request: ChatRequest) -> Result<ChatResponse, LlmError> {
        if self.switched() {
            return self.inner.fallback.complete(request).await;
        }
        match self.inner.primary.complete(request.clone()).await {
            Err(e @ LlmError::RateLimited { .. }) => {
                self.switch(&e).await;
                self.inner.fallback.complete(request).await
            }
            other => other,
        }
    }

    fn stream(&self, request: ChatRequest) -> ChatStream {
        let this = self.clone();
        futures::stream::once(async move {
            if this.switched() {
                return this.inner.fallback.stream(request);
            }
            let mut primary = this.inner.primary.stream(request.clone());
            match primary.next().await {
                Some(Err(e @ LlmError::RateLimited { .. })) => {
                    this.switch(&e).await;
                    this.inner.fallback.stream(request)
                }
                first => futures::stream::iter(first).chain(primary).boxed(),
            }
        })
        .flatten()
        .boxed()
    }

    fn estimate(&self, request: &ChatRequest) -> Option<CostEstimate> {
        self.current().estimate(request)
    }

    fn observe_usage(&self, estimate: &CostEstimate, usage: &Usage) {
        self.current().observe_usage(estimate, usage);
    }
}
