//! The gate every model call passes before it is sent, and hears how it went.
//!
//! The platform implements [`ModelGate`] with the rate limits (platform, agent,
//! submitter) and the budgets: before a call it estimates the call's
//! worst-case cost and reserves it against every budget, after the call it
//! charges what the provider reported. A refusal stops the run — unlike a
//! refused tool call, there is nothing the model could do differently.
//!
//! | step | what the gate gets | what it answers |
//! | --- | --- | --- |
//! | before | the agent, the model, the request about to be sent | [`ModelPermit`] or [`ModelRefusal`] |
//! | after | the permit and the response (`None` when the call failed) | nothing; the charge is recorded |

use async_trait::async_trait;
use hybrid_llm::{ChatModel, ChatRequest, ChatResponse};

/// One model call about to be sent.
#[derive(Clone, Copy)]
pub struct ModelCallRequest<'a> {
    /// The agent asking.
    pub agent: &'a str,
    /// The model it will go to.
    pub model: &'a dyn ChatModel,
    /// The request, exactly as it will be sent.
    pub request: &'a ChatRequest,
}

impl std::fmt::Debug for ModelCallRequest<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelCallRequest")
            .field("agent", &self.agent)
            .field("model", &self.model.model())
            .field("messages", &self.request.messages.len())
            .finish()
    }
}

/// Leave to send one call; handed back to [`ModelGate::after_call`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModelPermit {
    /// What was reserved before the call (nano-dollars), if anything.
    pub reserved: Option<hybrid_core::Money>,
    /// The estimate behind it, for calibration.
    pub estimate: Option<hybrid_llm::CostEstimate>,
    /// Where the reservation was booked (budget scope keys), to settle the same ones.
    pub booked: Vec<String>,
}

/// Why a call may not be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelRefusal {
    /// The guardrail or budget that refused (`budget:task`, `rate_limit:platform:openai`).
    pub rule: String,
    /// `cost_limit` or `rate_limit`.
    pub kind: String,
    /// Why, for the result, the event and the audit record.
    pub reason: String,
}

/// Decides whether a model call may be sent, and charges it afterwards.
#[async_trait]
pub trait ModelGate: Send + Sync {
    /// Before the call: a permit, or why not.
    async fn before_call(&self, call: ModelCallRequest<'_>) -> Result<ModelPermit, ModelRefusal>;

    /// After the call, also when it failed (`response` is then `None`).
    async fn after_call(
        &self,
        call: ModelCallRequest<'_>,
        permit: ModelPermit,
        response: Option<&ChatResponse>,
    );
}

/// Sends every call and charges nothing: for tests and unmetered use.
#[derive(Debug, Clone, Copy, Default)]
pub struct Unmetered;

#[async_trait]
impl ModelGate for Unmetered {
    async fn before_call(&self, _call: ModelCallRequest<'_>) -> Result<ModelPermit, ModelRefusal> {
        Ok(ModelPermit::default())
    }

    async fn after_call(
        &self,
        _call: ModelCallRequest<'_>,
        _permit: ModelPermit,
        _response: Option<&ChatResponse>,
    ) {
    }
}
