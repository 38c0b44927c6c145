//! Agents and their turn loop.
//!
//! An [`Agent`] is a role (instructions), a chat model and a set of tools. Its
//! [turn loop](Agent::run) asks the model, runs the tool calls of that turn
//! concurrently (bounded), hands the results back in the provider's own format
//! (the clients translate [`hybrid_llm::Message::ToolResult`] into OpenAI `tool`
//! messages or Anthropic `tool_result` blocks, errors flagged), and repeats until
//! the model answers without tools or `max_turns` is reached.
//!
//! The loop never decides what may run: every call passes a [`ToolGate`] first
//! (the command policy, guardrails and approvals live behind it), and a denied
//! call goes back to the model as a tool error, so the run goes on.
//!
//! | module | what it is |
//! | --- | --- |
//! | [`agent`] | [`Agent`] and its settings |
//! | [`turn_loop`] | the loop itself |
//! | [`tool_gate`] | [`ToolGate`]: asked before every tool call |
//! | [`model_gate`] | [`ModelGate`]: asked before every model call (budgets, rate limits), told its usage after |
//! | [`observer`] | [`AgentObserver`]: hears every delta, model call, tool call and result |
//! | [`presets`] | the seed's roles and their instructions |
//! | [`tool_names`] | MCP-style names mapped to names the providers accept |

pub mod agent;
pub mod model_gate;
pub mod observer;
pub mod presets;
pub mod tool_gate;
pub mod tool_names;
pub mod turn_loop;

pub use agent::{Agent, AgentError, AgentOutcome};
pub use model_gate::{ModelCallRequest, ModelGate, ModelPermit, ModelRefusal, Unmetered};
pub use observer::{AgentEvent, AgentObserver, NoopObserver};
pub use tool_gate::{AllowAll, GateDecision, ToolGate, ToolRequest};
pub use turn_loop::AgentRun;
