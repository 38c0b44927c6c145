//! [`Agent`]: a role, a model and tools; and what a run of it yields.

use std::sync::Arc;

use hybrid_core::{Money, ToolCallRecord, Usage};
use hybrid_llm::{ChatModel, LlmError};
use hybrid_tools::Tool;

/// Default turn limit.
pub const DEFAULT_MAX_TURNS: u32 = 10;
/// Default number of one turn's tool calls that run at once.
pub const DEFAULT_MAX_PARALLEL_TOOLS: usize = 4;

/// A role on a model with tools.
#[derive(Clone)]
pub struct Agent {
    /// Its name (the role, usually: `executor`).
    pub name: String,
    /// System prompt.
    pub instructions: String,
    /// The model.
    pub model: Arc<dyn ChatModel>,
    /// Tools it may ask for.
    pub tools: Vec<Arc<dyn Tool>>,
    /// Model turns before it must stop.
    pub max_turns: u32,
    /// Tool calls of one turn run at most this many at once.
    pub max_parallel_tools: usize,
    /// Stream model output (text deltas reach the observer).
    pub stream: bool,
    /// Output token cap per call.
    pub max_tokens: Option<u32>,
    /// Sampling temperature.
    pub temperature: Option<f32>,
    /// Mark the tools and system prompt for the provider's prompt cache.
    pub prompt_cache: bool,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("name", &self.name)
            .field(
                "model",
                &format_args!("{}:{}", self.model.provider(), self.model.model()),
            )
            .field(
                "tools",
                &self.tools.iter().map(|t| t.spec().name).collect::<Vec<_>>(),
            )
            .field("max_turns", &self.max_turns)
            .finish_non_exhaustive()
    }
}

impl Agent {
    /// An agent with the role's preset instructions, no tools, and default limits.
    pub fn new(role: impl Into<String>, model: Arc<dyn ChatModel>) -> Self {
        let name = role.into();
        Agent {
            instructions: crate::presets::instructions_for(&name).to_owned(),
            name,
            model,
            tools: Vec::new(),
            max_turns: DEFAULT_MAX_TURNS,
            max_parallel_tools: DEFAULT_MAX_PARALLEL_TOOLS,
            stream: true,
            max_tokens: None,
            temperature: None,
            prompt_cache: false,
        }
    }

    /// Marks the stable prefix (tools, system prompt) of every request for
    /// the provider's prompt cache: worth it when the same agent runs again.
    pub fn with_prompt_cache(mut self, cache: bool) -> Self {
        self.prompt_cache = cache;
        self
    }

    /// Replaces the instructions.
    pub fn with_instructions(mut self, instructions: impl Into<String>) -> Self {
        self.instructions = instructions.into();
        self
    }

    /// Gives it tools.
    pub fn with_tools(mut self, tools: Vec<Arc<dyn Tool>>) -> Self {
        self.tools = tools;
        self
    }

    /// Sets the turn limit (at least 1).
    pub fn with_max_turns(mut self, max_turns: u32) -> Self {
        self.max_turns = max_turns.max(1);
        self
    }

    /// Sets how many tool calls of a turn run at once (at least 1).
    pub fn with_max_parallel_tools(mut self, n: usize) -> Self {
        self.max_parallel_tools = n.max(1);
        self
    }

    /// Streams (default) or asks for whole answers.
    pub fn with_streaming(mut self, stream: bool) -> Self {
        self.stream = stream;
        self
    }

    /// Output token cap per call.
    pub fn with_max_tokens(mut self, max_tokens: Option<u32>) -> Self {
        self.max_tokens = max_tokens;
        self
    }

    /// Sampling temperature.
    pub fn with_temperature(mut self, temperature: Option<f32>) -> Self {
        self.temperature = temperature;
        self
    }
}

/// What a finished run yields.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AgentOutcome {
    /// The final answer.
    pub text: String,
    /// The model that gave it.
    pub model: String,
    /// Tokens over all turns.
    pub usage: Usage,
    /// Cost over all turns; `None` when any call could not be priced.
    pub cost: Option<Money>,
    /// Every tool call, in order.
    pub tool_calls: Vec<ToolCallRecord>,
    /// Distinct tools used, in first-use order.
    pub tools_used: Vec<String>,
    /// Model turns taken.
    pub turns: u32,
    /// The provider's last stop reason.
    pub finish_reason: Option<String>,
}

/// Why a run did not finish.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    /// The model provider failed.
    #[error(transparent)]
    Llm(#[from] LlmError),
    /// The model still wanted tools after `max_turns` turns.
    #[error("agent {agent} reached its limit of {turns} turns without a final answer")]
    MaxTurns {
        /// The agent.
        agent: String,
        /// The limit.
        turns: u32,
        /// What it had done so far.
        partial: Box<AgentOutcome>,
    },
    /// The run was cancelled.
    #[error("cancelled")]
    Cancelled,
    /// The model gate refused a call (a budget or a rate limit).
    #[error("{} refused a model call: {}", refusal.rule, refusal.reason)]
    Refused {
        /// Who refused and why.
        refusal: crate::ModelRefusal,
        /// What had been done before.
        partial: Box<AgentOutcome>,
    },
}
