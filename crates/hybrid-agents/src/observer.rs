//! What the turn loop reports while it runs.

use async_trait::async_trait;
use hybrid_core::{Money, Usage};
use serde_json::Value;

/// One thing the loop did.
#[derive(Debug, Clone, PartialEq)]
pub enum AgentEvent {
    /// Streamed model text.
    TextDelta(String),
    /// A model call finished.
    ModelCall {
        /// Model that answered.
        model: String,
        /// Tokens.
        usage: Usage,
        /// Cost; `None` when unknown.
        cost: Option<Money>,
        /// Wall time.
        duration_ms: u64,
    },
    /// The model asked for a tool.
    ToolCall {
        /// Call id.
        id: String,
        /// Tool name.
        name: String,
        /// Arguments as sent.
        arguments: Value,
    },
    /// The gate decided against a call.
    ToolDenied {
        /// Call id.
        id: String,
        /// Rule.
        rule: String,
        /// Reason.
        reason: String,
    },
    /// A tool call ended (ran, failed, or was refused).
    ToolResult {
        /// Call id.
        id: String,
        /// Tool name.
        name: String,
        /// What goes back to the model.
        output: String,
        /// Whether it is an error.
        is_error: bool,
    },
}

/// Hears the loop's events (the platform turns them into task events).
#[async_trait]
pub trait AgentObserver: Send + Sync {
    /// One event; must not fail the run.
    async fn observe(&self, event: AgentEvent);
}

/// Hears nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoopObserver;

#[async_trait]
impl AgentObserver for NoopObserver {
    async fn observe(&self, _event: AgentEvent) {}
}
