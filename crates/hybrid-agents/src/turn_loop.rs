//! The turn loop: model → tool calls → results → model, until a final answer.
//!
//! Per turn:
//! 1. ask the model (streamed or whole) with the conversation and tool specs;
//! 2. no tool calls → done;
//! 3. otherwise run the calls concurrently (at most `max_parallel_tools` at a
//!    time, results kept in call order). Each call is checked first — unknown
//!    tool, arguments that are not a JSON object, then the [`ToolGate`] — and any
//!    refusal becomes a tool error for the model, not a failure of the run;
//! 4. append the assistant turn and the results; next turn.

use std::time::Instant;

use futures::StreamExt;
use hybrid_core::{ToolCallRecord, add_costs};
use hybrid_llm::{
    ChatEvent, ChatRequest, ChatResponse, LlmError, Message, ToolCall, ToolDefinition,
};
use hybrid_tools::{ToolContext, ToolOutput};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::model_gate::{ModelCallRequest, ModelGate};
use crate::tool_names::WireNames;
use crate::{
    Agent, AgentError, AgentEvent, AgentObserver, AgentOutcome, GateDecision, ToolGate, ToolRequest,
};

/// How much of a malformed argument string is quoted back to the model.
const QUOTE_LIMIT: usize = 200;

/// What one run needs besides the agent.
#[derive(Clone, Copy)]
pub struct AgentRun<'a> {
    /// Workspace, limits and sandbox for tools.
    pub tools: &'a ToolContext,
    /// Asked before every tool call.
    pub gate: &'a dyn ToolGate,
    /// Asked before every model call, told after it.
    pub model_gate: &'a dyn ModelGate,
    /// Hears everything.
    pub observer: &'a dyn AgentObserver,
    /// Stops the run.
    pub cancel: &'a CancellationToken,
}

impl std::fmt::Debug for AgentRun<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentRun")
            .field("workspace", &self.tools.workspace)
            .finish_non_exhaustive()
    }
}

impl Agent {
    /// The request of the first turn on `messages`: the system prompt, the
    /// messages, the tools under their wire names, the output cap.
    pub fn first_request(&self, messages: Vec<Message>) -> ChatRequest {
        let mut conversation = Vec::with_capacity(messages.len() + 1);
        conversation.push(Message::system(self.instructions.clone()));
        conversation.extend(messages);
        let names = WireNames::new(self.tools.iter().map(|t| t.spec().name));
        let mut request = ChatRequest::new(conversation);
        request.tools = self
            .tools
            .iter()
            .map(|t| {
                let s = t.spec();
                ToolDefinition {
                    name: names.wire(&s.name).unwrap_or(&s.name).to_owned(),
                    description: s.description,
                    parameters: s.parameters,
                }
            })
            .collect();
        request.max_tokens = self.max_tokens;
        request.temperature = self.temperature;
        request.cache_prompt = self.prompt_cache;
        request
    }

    /// Runs the loop on `messages` (the system prompt is added first).
    pub async fn run(
        &self,
        messages: Vec<Message>,
        run: AgentRun<'_>,
    ) -> Result<AgentOutcome, AgentError> {
        let names = WireNames::new(self.tools.iter().map(|t| t.spec().name));
        let first = self.first_request(messages);
        let mut conversation = first.messages;
        let specs = first.tools;
        let mut outcome = AgentOutcome {
            cost: Some(hybrid_core::Money::ZERO),
            ..Default::default()
        };
        for turn in 1..=self.max_turns {
            let mut request = ChatRequest::new(conversation.clone());
            request.tools = specs.clone();
            request.max_tokens = self.max_tokens;
            request.temperature = self.temperature;
            request.cache_prompt = self.prompt_cache;
            let call = ModelCallRequest {
                agent: &self.name,
                model: self.model.as_ref(),
                request: &request,
            };
            let permit = match run.model_gate.before_call(call).await {
                Ok(permit) => permit,
                Err(refusal) => {
                    return Err(AgentError::Refused {
                        refusal,
                        partial: Box::new(outcome),
                    });
                }
            };
            // `None`: cancelled while the call was in flight.
            let response = tokio::select! {
                r = self.call_model(request.clone(), run.observer) => Some(r),
                () = run.cancel.cancelled() => None,
            };
            let call = ModelCallRequest {
                agent: &self.name,
                model: self.model.as_ref(),
                request: &request,
            };
            run.model_gate
                .after_call(
                    call,
                    permit,
                    response.as_ref().and_then(|r| r.as_ref().ok()),
                )
                .await;
            let response = match response {
                Some(r) => r?,
                None => return Err(AgentError::Cancelled),
            };
            outcome.turns = turn;
            outcome.usage += response.usage;
            outcome.cost = add_costs(outcome.cost, response.cost);
            outcome.model = response.model.clone();
            outcome.finish_reason = response.raw_finish_reason.clone();
            if response.tool_calls.is_empty() {
                outcome.text = response.text;
                return Ok(outcome);
            }
            // The model names tools by their wire names; the rest of the loop by ours.
            let calls: Vec<ToolCall> = response
                .tool_calls
                .iter()
                .map(|c| ToolCall {
                    name: names.internal(&c.name).unwrap_or(&c.name).to_owned(),
                    ..c.clone()
                })
                .collect();
            let results = tokio::select! {
                r = self.run_tools(&calls, run) => r,
                () = run.cancel.cancelled() => return Err(AgentError::Cancelled),
            };
            conversation.push(Message::Assistant {
                text: (!response.text.is_empty()).then(|| response.text.clone()),
                tool_calls: response.tool_calls.clone(),
            });
            for ((call, wire), output) in calls.iter().zip(&response.tool_calls).zip(results) {
                if !outcome.tools_used.contains(&call.name) {
                    outcome.tools_used.push(call.name.clone());
                }
                outcome.tool_calls.push(ToolCallRecord {
                    id: call.id.clone(),
                    name: call.name.clone(),
                    arguments: call.arguments.clone(),
                    output: Some(output.content.clone()),
                    is_error: output.is_error,
                });
                conversation.push(Message::ToolResult {
                    call_id: call.id.clone(),
                    name: wire.name.clone(),
                    content: output.content,
                    is_error: output.is_error,
                });
            }
        }
        Err(AgentError::MaxTurns {
            agent: self.name.clone(),
            turns: self.max_turns,
            partial: Box::new(outcome),
        })
    }

    async fn call_model(
        &self,
        request: ChatRequest,
        observer: &dyn AgentObserver,
    ) -> Result<ChatResponse, LlmError> {
        let started = Instant::now();
        let response = if self.stream {
            let mut stream = self.model.stream(request);
            let mut done = None;
            while let Some(item) = stream.next().await {
                match item? {
                    ChatEvent::TextDelta(t) if !t.is_empty() => {
                        observer.observe(AgentEvent::TextDelta(t)).await
                    }
                    ChatEvent::Completed(r) => {
                        done = Some(r);
                        break;
                    }
                    _ => {}
                }
            }
            done.ok_or_else(|| LlmError::StreamInterrupted {
                provider: self.model.provider().to_owned(),
                message: "the stream ended without a final response".into(),
            })?
        } else {
            self.model.complete(request).await?
        };
        observer
            .observe(AgentEvent::ModelCall {
                model: response.model.clone(),
                usage: response.usage,
                cost: response.cost,
                duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            })
            .await;
        Ok(response)
    }

    /// Runs one turn's calls, at most `max_parallel_tools` at once, results in call order.
    async fn run_tools(&self, calls: &[ToolCall], run: AgentRun<'_>) -> Vec<ToolOutput> {
        // Build the futures first: a closure inside `map` would make the future
        // lifetime-generic and no longer `Send` for async_trait callers.
        let pending: Vec<_> = calls.iter().map(|call| self.run_tool(call, run)).collect();
        futures::stream::iter(pending)
            .buffered(self.max_parallel_tools)
            .collect()
            .await
    }

    async fn run_tool(&self, call: &ToolCall, run: AgentRun<'_>) -> ToolOutput {
        run.observer
            .observe(AgentEvent::ToolCall {
                id: call.id.clone(),
                name: call.name.clone(),
                arguments: call.arguments.clone(),
            })
            .await;
        let output = self.checked_call(call, run).await;
        run.observer
            .observe(AgentEvent::ToolResult {
                id: call.id.clone(),
                name: call.name.clone(),
                output: output.content.clone(),
                is_error: output.is_error,
            })
            .await;
        output
    }

    async fn checked_call(&self, call: &ToolCall, run: AgentRun<'_>) -> ToolOutput {
        let Some(tool) = self.tools.iter().find(|t| t.spec().name == call.name) else {
            let names: Vec<String> = self.tools.iter().map(|t| t.spec().name).collect();
            return tool_error(format!(
                "unknown tool `{}` (available: {})",
                call.name,
                if names.is_empty() {
                    "none".to_owned()
                } else {
                    names.join(", ")
                }
            ));
        };
        match &call.arguments {
            Value::Object(_) => {}
            Value::String(raw) => {
                let quoted: String = raw.chars().take(QUOTE_LIMIT).collect();
                return tool_error(format!(
                    "arguments for `{}` are not valid JSON: {quoted}{}",
                    call.name,
                    if raw.chars().count() > QUOTE_LIMIT {
                        "…"
                    } else {
                        ""
                    }
                ));
            }
            other => {
                return tool_error(format!(
                    "arguments for `{}` must be a JSON object, got {}",
                    call.name,
                    json_kind(other)
                ));
            }
        }
        let request = ToolRequest {
            agent: &self.name,
            call_id: &call.id,
            tool: &call.name,
            arguments: &call.arguments,
        };
        match run.gate.check(request).await {
            GateDecision::Allow => tool.call(call.arguments.clone(), run.tools).await,
            GateDecision::Deny { rule, reason } => {
                run.observer
                    .observe(AgentEvent::ToolDenied {
                        id: call.id.clone(),
                        rule: rule.clone(),
                        reason: reason.clone(),
                    })
                    .await;
                tool_error(format!("denied by {rule}: {reason}"))
            }
        }
    }
}

fn tool_error(message: String) -> ToolOutput {
    ToolOutput {
        content: message,
        is_error: true,
        truncated: false,
        metadata: Value::Null,
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
