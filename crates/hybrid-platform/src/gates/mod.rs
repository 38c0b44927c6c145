//! The gates every stage passes: what stands between a model and its tools,
//! between a run and its next model call, and around each step.
//!
//! | module | gate | in front of | decided by |
//! | --- | --- | --- | --- |
//! | [`tool_calls`] | [`PolicyGate`](tool_calls::PolicyGate) (a [`ToolGate`](hybrid_agents::ToolGate)) | every tool call | L3 guardrails, the command policy, approvals, `tool:` rate limits |
//! | [`model_calls`] | [`MeteredModelGate`](model_calls::MeteredModelGate) (a [`ModelGate`](hybrid_agents::ModelGate)) | every model call | rate limits per platform, agent and submitter; budgets in the store |
//! | [`guardrail_layers`] | [`check_layer`](guardrail_layers::check_layer) | the task (L1), each stage (L2), each stage's output (L4) | the guardrail engine |

pub(crate) mod guardrail_layers;
pub(crate) mod model_calls;
pub(crate) mod tool_calls;
