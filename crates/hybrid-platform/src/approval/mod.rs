//! Approvals: who says yes to a step that needs a person.
//!
//! A tool call the command policy marks `approve`, an L1/L2/L3 guardrail that
//! needs approval, and a workflow's `approval` stage all ask the run's
//! [`Approver`] and wait for its [`ApprovalAnswer`].
//!
//! | approver | answers |
//! | --- | --- |
//! | [`NoApprover`] (the default) | no: the run has no way to ask |
//! | [`PreApproved`] | yes, in a given name (`hybrid run --approve-as NAME`) |
//! | [`StoreApprover`] | whoever answers the request stored in the database first — `hybrid approvals approve` from any process, a [`LocalPrompt`] on the terminal, later the API — or `timeout` |

mod store;

use std::sync::Arc;

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use crate::context::EventSink;

pub use store::{LocalPrompt, StoreApprover};

/// A tool call that needs a person's yes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalAsk {
    /// The agent asking.
    pub agent: String,
    /// The provider's call id.
    pub call_id: String,
    /// The tool.
    pub tool: String,
    /// What would run (the command line, or the tool name).
    pub command: String,
    /// The rule that asked for approval.
    pub rule: String,
    /// Why.
    pub reason: String,
}

/// A person's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApprovalAnswer {
    /// Yes.
    Approved {
        /// Who.
        by: String,
        /// Their note.
        note: Option<String>,
    },
    /// No.
    Rejected {
        /// Who (or `timeout`).
        by: String,
        /// Why.
        reason: Option<String>,
    },
}

/// What an approver may use: the run's events (and through them the store).
#[derive(Debug, Clone)]
pub struct ApprovalContext {
    /// The run's event sink.
    pub events: Arc<EventSink>,
    /// Cancelled when the run is.
    pub cancel: CancellationToken,
}

/// Asks for and waits for approvals.
#[async_trait]
pub trait Approver: Send + Sync {
    /// Waits for the answer to one ask.
    async fn ask(&self, ask: &ApprovalAsk, ctx: &ApprovalContext) -> ApprovalAnswer;
}

/// Answers no: for runs that nobody can approve.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoApprover;

#[async_trait]
impl Approver for NoApprover {
    async fn ask(&self, _ask: &ApprovalAsk, _ctx: &ApprovalContext) -> ApprovalAnswer {
        ApprovalAnswer::Rejected {
            by: "platform".into(),
            reason: Some("approval is required and this run has no way to ask for it".into()),
        }
    }
}

/// Answers yes in a given name (`hybrid run --approve-as NAME`).
#[derive(Debug, Clone)]
pub struct PreApproved {
    /// Recorded as the approver.
    pub name: String,
}

#[async_trait]
impl Approver for PreApproved {
    async fn ask(&self, _ask: &ApprovalAsk, _ctx: &ApprovalContext) -> ApprovalAnswer {
        ApprovalAnswer::Approved {
            by: self.name.clone(),
            note: Some("--approve-as".into()),
        }
    }
}
