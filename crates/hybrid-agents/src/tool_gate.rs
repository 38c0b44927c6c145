//! The gate every tool call passes before it runs.
//!
//! The platform implements [`ToolGate`] with the command policy, the execution
//! guardrails and approvals (a gate may wait for a human before it answers).
//! The turn loop only obeys.

use async_trait::async_trait;
use serde_json::Value;

/// One tool call about to run.
#[derive(Debug, Clone, Copy)]
pub struct ToolRequest<'a> {
    /// The agent asking.
    pub agent: &'a str,
    /// The provider's call id.
    pub call_id: &'a str,
    /// The tool's name.
    pub tool: &'a str,
    /// Its arguments (already checked to be a JSON object).
    pub arguments: &'a Value,
}

/// What the gate says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GateDecision {
    /// Run it.
    Allow,
    /// Do not run it; the model is told why as a tool error.
    Deny {
        /// The rule that decided.
        rule: String,
        /// Why, for the model and the audit trail.
        reason: String,
    },
}

/// Decides whether a tool call may run.
#[async_trait]
pub trait ToolGate: Send + Sync {
    /// The decision for one call.
    async fn check(&self, request: ToolRequest<'_>) -> GateDecision;
}

/// A gate that allows everything: for tests and trusted tools only.
#[derive(Debug, Clone, Copy, Default)]
pub struct AllowAll;

#[async_trait]
impl ToolGate for AllowAll {
    async fn check(&self, _request: ToolRequest<'_>) -> GateDecision {
        GateDecision::Allow
    }
}
