//! The HybridPlatform facade: route a task, run it on the right platform or
//! workflow, stream its events, record everything, count it.
//!
//! | folder / module | what it is |
//! | --- | --- |
//! | [`run`] | [`HybridPlatform`] and its builder, [`RunOptions`], single-platform runs, the [`router`] |
//! | `workflow` | the workflow engine: the scheduler and one file per stage kind (agent, runbook, tool, approval, loop, check), the stage cache |
//! | [`approval`] | [`Approver`]s: nobody, `--approve-as`, requests in the store answered from any process |
//! | [`limits`] | [`Budgets`], `[budgets]` / `[rate_limits]`, fallback on 429 |
//! | `gates` | what every stage passes: the tool gate (policy, L3, approvals, tool rate limits), the model gate (rate limits, budgets), the guardrail layers L1/L2/L4 |
//! | `services` | what runs and workflows share (store, redactor, platforms, gates' rules) and the steps both take |
//! | [`platform`] | the [`Platform`] trait and the registry |
//! | [`llm_platform`] | [`LlmPlatform`]: one agent on one chat model |
//! | [`roles`] | the seed's agent roles, [`PlatformKind`](roles::PlatformKind) |
//! | [`custom_agent`] | [`CustomAgent`]: agents written in Rust, usable from workflow stages |
//! | [`context`] | [`RunContext`] and the [`EventSink`] that redacts, numbers and records events |
//! | [`config`] | `hybrid.toml`, validated with errors naming key and line |
//! | `providers` | builds the configured platforms from `hybrid.toml` and the environment ([`HybridPlatform::from_config`] uses it) |
//! | `mcp_servers` | the configured MCP servers, connected, as tools |
//! | `lease` | which process runs a task, so only a dead one's task is resumed |
//! | [`error`] | [`PlatformError`] |

pub mod approval;
pub mod config;
pub mod context;
pub mod custom_agent;
pub mod error;
mod gates;
mod lease;
pub mod limits;
pub mod llm_platform;
mod mcp_servers;
pub mod platform;
mod providers;
pub mod roles;
pub mod run;
mod services;
mod workflow;

pub use approval::{
    ApprovalAnswer, ApprovalAsk, ApprovalContext, Approver, LocalPrompt, NoApprover, PreApproved,
    StoreApprover,
};
pub use config::{ConfigError, HybridConfig};
pub use context::{AuditNote, EventSink, RunContext};
pub use custom_agent::{AgentInput, CustomAgent, CustomAgentError};
pub use error::{NotResumable, PlatformError};
pub use hybrid_store::MetricsSnapshot;
pub use limits::Budgets;
pub use llm_platform::LlmPlatform;
pub use platform::{Capabilities, Platform, PlatformRegistry, StageRequest};
pub use providers::{EnvLookup, process_env};
pub use run::{
    DefaultRouter, DryRun, HybridPlatform, HybridPlatformBuilder, RouteDecision, Router,
    RunOptions, SINGLE_STAGE, router,
};
