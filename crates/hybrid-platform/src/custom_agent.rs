//! Agents written in Rust: the seed's `CustomAgent.handle`, usable from any
//! workflow stage like a built-in role.
//!
//! `platform.register_agent("ticketing", MyAgent)` makes `agent: ticketing`
//! in a workflow call `MyAgent::handle` with the stage's rendered prompt —
//! deterministic code, another framework, a remote service. The stage's
//! result is what it returns; guardrails, the audit trail and the store treat
//! it like any other stage.
//!
//! ```
//! use async_trait::async_trait;
//! use hybrid_platform::{AgentInput, CustomAgent, CustomAgentError};
//!
//! struct Shout;
//!
//! #[async_trait]
//! impl CustomAgent for Shout {
//!     async fn handle(&self, input: AgentInput<'_>) -> Result<String, CustomAgentError> {
//!         Ok(input.prompt.to_uppercase())
//!     }
//! }
//! ```

use async_trait::async_trait;
use hybrid_core::Task;
use serde_json::Value;

/// What a custom agent may fail with: any error, kept as the cause.
pub type CustomAgentError = Box<dyn std::error::Error + Send + Sync>;

/// What a custom agent is asked.
#[derive(Debug, Clone, Copy)]
pub struct AgentInput<'a> {
    /// The task the workflow runs for.
    pub task: &'a Task,
    /// The stage's id.
    pub stage: &'a str,
    /// The stage's rendered prompt.
    pub prompt: &'a str,
    /// Everything templates see: `task`, `inputs`, `vars`, `stages`.
    pub context: &'a Value,
}

/// An agent implemented in code.
#[async_trait]
pub trait CustomAgent: Send + Sync {
    /// Answers one stage; the text becomes the stage's output.
    /// A failure ends the stage with [`PlatformError::CustomAgent`](crate::PlatformError::CustomAgent),
    /// which keeps it as its source.
    async fn handle(&self, input: AgentInput<'_>) -> Result<String, CustomAgentError>;
}
