//! The HybridPlatform facade: route a task, run it on the right platform,
//! stream its events, record everything, count it.
//!
//! | module | what it is |
//! | --- | --- |
//! | [`facade`] | [`HybridPlatform`], its builder, `run`, `run_streaming`, `get_metrics` |
//! | [`router`] | [`Router`] and DESIGN.md's decision tree, [`DefaultRouter`] |
//! | [`platform`] | the [`Platform`] trait and the registry |
//! | [`llm_platform`] | [`LlmPlatform`]: one agent on one chat model |
//! | [`mcp_servers`] | the configured MCP servers, connected, as tools |
//! | [`providers`] | builds the configured platforms from `hybrid.toml` and the environment |
//! | [`config`] | `hybrid.toml`, validated with errors naming key and line |
//! | [`roles`] | the seed's agent roles and their instructions |
//! | [`context`] | [`RunContext`] and the batched event sink |
//! | [`approvals`] | approvals kept in the store and answered from any process |
//! | [`guardrail_layers`] | the guardrail engine at L1 input, L2 platform and L4 output |
//! | [`workflow_run`] | the workflow engine: stages in waves, runbooks, approvals, loops, checks, journal |
//! | [`custom_agent`] | [`CustomAgent`]: agents written in Rust, usable from workflow stages |
//! | [`lease`] | which process runs a task, so only a dead one's task is resumed |
//! | [`stage_cache`] | results of cached workflow stages, per-entry TTL |
//! | [`gate`] | the command policy, approvals and tool rate limits in front of every tool call |
//! | [`model_call_gate`] | rate limits and budgets in front of every model call |
//! | [`budgets`] | spending limits per task, platform, submitter and day |
//! | [`limits_config`] | `[budgets]` and `[rate_limits]` of `hybrid.toml` |
//! | [`fallback`] | a model that moves to another platform's model when the first is rate limited |

pub mod approvals;
pub mod budgets;
pub mod config;
pub mod context;
pub mod custom_agent;
pub mod error;
pub mod facade;
pub mod fallback;
pub mod gate;
pub mod guardrail_layers;
pub mod lease;
pub mod limits_config;
pub mod llm_platform;
pub mod mcp_servers;
pub mod model_call_gate;
pub mod platform;
pub mod providers;
pub mod roles;
pub mod router;
pub mod stage_cache;
pub mod workflow_run;

pub use approvals::{LocalPrompt, StoreApprover};
pub use budgets::Budgets;
pub use config::{ConfigError, HybridConfig};
pub use context::{EventSink, RunContext};
pub use custom_agent::{AgentInput, CustomAgent};
pub use error::PlatformError;
pub use facade::{DryRun, HybridPlatform, HybridPlatformBuilder, RunOptions, SINGLE_STAGE};
pub use gate::{
    ApprovalAnswer, ApprovalAsk, ApprovalContext, Approver, NoApprover, PolicyGate, PreApproved,
};
pub use hybrid_store::MetricsSnapshot;
pub use llm_platform::LlmPlatform;
pub use platform::{Capabilities, Platform, PlatformRegistry, StageRequest};
pub use router::{DefaultRouter, RouteDecision, Router};
