//! A platform that is one agent on one chat model: the `openai` and `claude`
//! platforms, and any custom provider registered the same way.
//!
//! It runs the [`hybrid_agents::Agent`] turn loop: the role's instructions and
//! the task go to the model; when the platform has tools, the model's tool
//! calls pass the run's gate and run in the task's workspace until it answers.
//! Every delta, model call, tool call and result becomes a task event.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use hybrid_agents::{Agent, AgentError, AgentEvent, AgentObserver, AgentRun};
use hybrid_core::{EventKind, StageResult, Task};
use hybrid_llm::{ChatModel, LlmError, Message};
use hybrid_tools::{Tool, ToolContext};

use crate::context::AuditNote;
use crate::platform::StageRequest;
use crate::roles::{self, PlatformKind};
use crate::{Capabilities, Platform, PlatformError, RunContext};

/// One agent on one model, with optional tools.
#[derive(Clone)]
pub struct LlmPlatform {
    id: String,
    kind: PlatformKind,
    model: ModelSlot,
    instructions: Option<String>,
    stream: bool,
    max_tokens: Option<u32>,
    temperature: Option<f32>,
    tools: Vec<Arc<dyn Tool>>,
    max_turns: u32,
    agents: std::collections::HashMap<String, AgentSettings>,
    fallback: Option<(String, Arc<dyn ChatModel>)>,
}

/// What `[agents.NAME]` changes for one role on this platform.
#[derive(Clone, Default)]
pub struct AgentSettings {
    /// System prompt.
    pub instructions: Option<String>,
    /// Tools instead of the platform's.
    pub tools: Option<Vec<Arc<dyn Tool>>>,
    /// Turn limit.
    pub max_turns: Option<u32>,
}

impl std::fmt::Debug for AgentSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let tools: Option<Vec<String>> = self
            .tools
            .as_ref()
            .map(|t| t.iter().map(|t| t.spec().name).collect());
        f.debug_struct("AgentSettings")
            .field("instructions", &self.instructions)
            .field("tools", &tools)
            .field("max_turns", &self.max_turns)
            .finish()
    }
}

impl std::fmt::Debug for LlmPlatform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlmPlatform")
            .field("id", &self.id)
            .field("model", &self.model)
            .field("tools", &self.tool_names())
            .field("agents", &self.agents.keys().collect::<Vec<_>>())
            .field("fallback", &self.fallback.as_ref().map(|(p, _)| p))
            .finish_non_exhaustive()
    }
}

/// The model, or why there is none (a missing API key is reported when the
/// platform is used, not when it is configured).
#[derive(Clone)]
enum ModelSlot {
    Ready(Arc<dyn ChatModel>),
    Unavailable(LlmError),
}

impl std::fmt::Debug for ModelSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ModelSlot::Ready(m) => write!(f, "Ready({}:{})", m.provider(), m.model()),
            ModelSlot::Unavailable(e) => write!(f, "Unavailable({e})"),
        }
    }
}

impl LlmPlatform {
    /// A platform named `id` of `kind` over `model`, without tools.
    pub fn new(id: impl Into<String>, kind: PlatformKind, model: Arc<dyn ChatModel>) -> Self {
        Self::with_slot(id.into(), kind, ModelSlot::Ready(model))
    }

    /// A platform that fails with `error` when used (e.g. its API key is missing).
    pub fn unavailable(id: impl Into<String>, kind: PlatformKind, error: LlmError) -> Self {
        Self::with_slot(id.into(), kind, ModelSlot::Unavailable(error))
    }

    fn with_slot(id: String, kind: PlatformKind, model: ModelSlot) -> Self {
        LlmPlatform {
            id,
            kind,
            model,
            instructions: None,
            stream: true,
            max_tokens: None,
            temperature: None,
            tools: Vec::new(),
            max_turns: hybrid_agents::agent::DEFAULT_MAX_TURNS,
            agents: std::collections::HashMap::new(),
            fallback: None,
        }
    }

    /// When the model's provider answers 429, the rest of the stage goes to
    /// `model`, the model of platform `platform` (see [`crate::limits::fallback`]).
    pub fn with_fallback(mut self, platform: impl Into<String>, model: Arc<dyn ChatModel>) -> Self {
        self.fallback = Some((platform.into(), model));
        self
    }

    /// The model of this platform, when it has one (to serve as another's fallback).
    pub fn chat_model(&self) -> Option<Arc<dyn ChatModel>> {
        match &self.model {
            ModelSlot::Ready(m) => Some(m.clone()),
            ModelSlot::Unavailable(_) => None,
        }
    }

    /// Overrides the role's default instructions.
    pub fn with_instructions(mut self, instructions: Option<String>) -> Self {
        self.instructions = instructions;
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

    /// Tools its agents may call.
    pub fn with_tools(mut self, tools: Vec<Arc<dyn Tool>>) -> Self {
        self.tools = tools;
        self
    }

    /// Model turns per run.
    pub fn with_max_turns(mut self, max_turns: u32) -> Self {
        self.max_turns = max_turns.max(1);
        self
    }

    /// Settings for one role (from `[agents.NAME]`).
    pub fn with_agent(mut self, role: impl Into<String>, settings: AgentSettings) -> Self {
        self.agents.insert(role.into(), settings);
        self
    }

    /// Every tool any of its agents has (the platform's and the roles').
    fn all_tools(&self) -> Vec<Arc<dyn Tool>> {
        let mut all = self.tools.clone();
        for t in self
            .agents
            .values()
            .filter_map(|a| a.tools.as_ref())
            .flatten()
        {
            if !all.iter().any(|have| have.spec().name == t.spec().name) {
                all.push(t.clone());
            }
        }
        all
    }

    /// Names of its tools.
    pub fn tool_names(&self) -> Vec<String> {
        self.tools.iter().map(|t| t.spec().name).collect()
    }
}

/// Turns the agent's events into the task's events and audit records for one stage.
struct StageObserver<'a> {
    ctx: &'a RunContext,
    agent: &'a str,
    /// Calls seen, by id: (tool, arguments), for the result's audit record.
    calls: tokio::sync::Mutex<std::collections::HashMap<String, (String, serde_json::Value)>>,
}

impl StageObserver<'_> {
    async fn audit(&self, event: &AgentEvent) {
        let note = match event {
            AgentEvent::ModelCall {
                model,
                usage,
                cost,
                duration_ms,
            } => AuditNote {
                agent: self.agent.to_owned(),
                action: "model_call".into(),
                command: Some(model.clone()),
                detail: serde_json::json!({
                    "stage": self.ctx.stage, "model": model, "usage": usage,
                    "cost_usd": cost.map(hybrid_core::Money::as_usd), "duration_ms": duration_ms,
                }),
                ..AuditNote::default()
            },
            AgentEvent::ToolCall {
                id,
                name,
                arguments,
            } => {
                self.calls
                    .lock()
                    .await
                    .insert(id.clone(), (name.clone(), arguments.clone()));
                return;
            }
            AgentEvent::ToolResult {
                id,
                name,
                output,
                is_error,
            } => {
                let arguments = self
                    .calls
                    .lock()
                    .await
                    .remove(id)
                    .map(|(_, a)| a)
                    .unwrap_or_default();
                let (action, command) = match (
                    name.as_str(),
                    arguments.get("command").and_then(|c| c.as_str()),
                ) {
                    ("bash", Some(c)) => ("bash_command", c.to_owned()),
                    _ => ("tool_call", format!("{name} {arguments}")),
                };
                AuditNote {
                    agent: self.agent.to_owned(),
                    action: action.into(),
                    command: Some(command),
                    output: Some(output.clone()),
                    detail: serde_json::json!({"stage": self.ctx.stage, "call_id": id, "tool": name, "is_error": is_error}),
                    ..AuditNote::default()
                }
            }
            AgentEvent::TextDelta(_) | AgentEvent::ToolDenied { .. } => return,
        };
        self.ctx.events.audit(note).await;
    }
}

#[async_trait]
impl AgentObserver for StageObserver<'_> {
    async fn observe(&self, event: AgentEvent) {
        self.audit(&event).await;
        let stage = self.ctx.stage.clone();
        let kind = match event {
            AgentEvent::TextDelta(text) => {
                if let Some(held) = &self.ctx.held_deltas {
                    held.lock().await.push(text);
                    return;
                }
                EventKind::TextDelta { stage, text }
            }
            AgentEvent::ModelCall {
                model,
                usage,
                cost,
                duration_ms,
            } => EventKind::ModelCall {
                stage,
                model,
                usage,
                cost_usd: cost,
                duration_ms,
            },
            AgentEvent::ToolCall {
                id,
                name,
                arguments,
            } => EventKind::ToolCall {
                stage,
                id,
                name,
                arguments,
            },
            AgentEvent::ToolDenied { id, rule, reason } => EventKind::Warning {
                message: format!("tool call {id} denied by {rule}: {reason}"),
            },
            AgentEvent::ToolResult {
                id,
                output,
                is_error,
                ..
            } => EventKind::ToolResult {
                stage,
                id,
                output,
                is_error,
            },
        };
        if let Err(e) = self.ctx.emit(kind).await {
            tracing::warn!(error = %e, "could not record an agent event");
        }
    }
}

impl LlmPlatform {
    /// The agent for `role` on `model`, with this platform's and the role's settings.
    fn agent(&self, role: &str, model: Arc<dyn ChatModel>) -> Agent {
        let settings = self.agents.get(role).cloned().unwrap_or_default();
        let mut agent = Agent::new(role, model)
            .with_tools(settings.tools.unwrap_or_else(|| self.tools.clone()))
            .with_max_turns(settings.max_turns.unwrap_or(self.max_turns))
            .with_streaming(self.stream)
            .with_max_tokens(self.max_tokens)
            .with_temperature(self.temperature);
        if let Some(instructions) = settings
            .instructions
            .as_ref()
            .or(self.instructions.as_ref())
        {
            agent = agent.with_instructions(instructions.clone());
        }
        agent
    }
}

#[async_trait]
impl Platform for LlmPlatform {
    fn id(&self) -> &str {
        &self.id
    }

    fn capabilities(&self) -> Capabilities {
        let system = self.tools.iter().any(|t| t.spec().name == "bash");
        Capabilities {
            system_access: system,
            tools: !self.tools.is_empty(),
            streaming: self.stream,
        }
    }

    fn model(&self) -> Option<&str> {
        match &self.model {
            ModelSlot::Ready(m) => Some(m.model()),
            ModelSlot::Unavailable(_) => None,
        }
    }

    fn agent_for(&self, task: &Task) -> String {
        roles::role_for(self.kind, task).to_owned()
    }

    fn estimate_cost(&self, task: &Task) -> Option<hybrid_core::Money> {
        let model = self.chat_model()?;
        let agent = self.agent(roles::role_for(self.kind, task), model.clone());
        let request = agent.first_request(vec![Message::user(roles::user_prompt(task))]);
        model.estimate(&request)?.cost
    }

    async fn execute(&self, task: &Task, ctx: &RunContext) -> Result<StageResult, PlatformError> {
        let role = roles::role_for(self.kind, task);
        self.run_agent(role, roles::user_prompt(task), None, false, ctx)
            .await
    }

    async fn execute_stage(
        &self,
        request: StageRequest<'_>,
        ctx: &RunContext,
    ) -> Result<StageResult, PlatformError> {
        self.run_agent(
            request.agent,
            request.prompt.to_owned(),
            request.tools,
            request.cache_prompt,
            ctx,
        )
        .await
    }
}

impl LlmPlatform {
    /// Runs `role` on `prompt` with the run's gates, as one stage.
    async fn run_agent(
        &self,
        role: &str,
        prompt: String,
        tools: Option<&[String]>,
        cache_prompt: bool,
        ctx: &RunContext,
    ) -> Result<StageResult, PlatformError> {
        let model = match &self.model {
            ModelSlot::Ready(m) => m.clone(),
            ModelSlot::Unavailable(e) => return Err(e.clone().into()),
        };
        let model: Arc<dyn ChatModel> = match &self.fallback {
            Some((platform, fallback)) => Arc::new(crate::limits::fallback::FallbackModel::new(
                model,
                platform.clone(),
                fallback.clone(),
                Some(ctx.events.clone()),
            )),
            None => model,
        };
        let mut agent = self.agent(role, model).with_prompt_cache(cache_prompt);
        if let Some(names) = tools {
            // Only tools this platform has can be narrowed to.
            let chosen = self
                .all_tools()
                .into_iter()
                .filter(|t| {
                    let name = t.spec().name;
                    names
                        .iter()
                        .any(|p| hybrid_tools::mcp::tool_pattern_matches(p, &name))
                })
                .collect();
            agent = agent.with_tools(chosen);
        }
        let mut tools = ToolContext::new(ctx.workdir.clone());
        tools.cancel = ctx.cancel.clone();
        tools.limits = ctx.tool_limits.clone();
        tools.sandbox = ctx.sandbox.clone();
        let observer = StageObserver {
            ctx,
            agent: role,
            calls: Default::default(),
        };
        let run = AgentRun {
            tools: &tools,
            gate: ctx.gate.as_ref(),
            model_gate: ctx.model_gate.as_ref(),
            observer: &observer,
            cancel: &ctx.cancel,
        };
        let started = Instant::now();
        let outcome = match agent.run(vec![Message::user(prompt)], run).await {
            Ok(outcome) => outcome,
            Err(AgentError::Llm(e)) => return Err(e.into()),
            Err(AgentError::Cancelled) => return Err(PlatformError::Cancelled),
            Err(AgentError::Refused { refusal, .. }) => {
                return Err(PlatformError::Blocked {
                    guardrail: refusal.rule,
                    layer: "platform".into(),
                    message: refusal.reason,
                });
            }
            // The turn limit, and whatever a later version adds.
            Err(e) => return Err(PlatformError::Agent(e)),
        };
        Ok(StageResult {
            agent: role.to_owned(),
            platform: self.id.clone(),
            model: Some(outcome.model),
            output: outcome.text,
            usage: outcome.usage,
            cost_usd: outcome.cost,
            tools_used: outcome.tools_used,
            tool_calls: outcome.tool_calls,
            finish_reason: outcome.finish_reason,
            duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            ..Default::default()
        })
    }
}
