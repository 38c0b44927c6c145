//! Normalized chat types and the [`ChatModel`] trait.
//!
//! A conversation is a list of [`Message`]s: system, user, assistant (text
//! and/or tool calls) and tool results. Providers translate these to their
//! wire formats: OpenAI puts the system prompt first in `messages` and tool
//! results in `role: "tool"` messages; Anthropic lifts the system prompt to the
//! top-level `system` field and sends tool results as `tool_result` blocks in a
//! user message (consecutive results merged into one message).

use std::sync::Arc;

use async_trait::async_trait;
use futures::stream::BoxStream;
use hybrid_core::{Money, Usage};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::LlmError;
use crate::estimate::CostEstimate;

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "snake_case")]
pub enum Message {
    /// Instructions for the model.
    System {
        /// The instructions.
        text: String,
    },
    /// What the user says.
    User {
        /// The text.
        text: String,
    },
    /// What the model said before: text, tool calls, or both.
    Assistant {
        /// Text part, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        text: Option<String>,
        /// Tool calls, in order.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        tool_calls: Vec<ToolCall>,
    },
    /// The result of one tool call.
    ToolResult {
        /// The id of the call this answers.
        call_id: String,
        /// The tool's name (OpenAI-compatible servers sometimes want it).
        name: String,
        /// The result text.
        content: String,
        /// Whether the tool failed (Anthropic `is_error`; OpenAI gets an `Error:` prefix).
        #[serde(default)]
        is_error: bool,
    },
}

impl Message {
    /// A system message.
    pub fn system(text: impl Into<String>) -> Self {
        Message::System { text: text.into() }
    }

    /// A user message.
    pub fn user(text: impl Into<String>) -> Self {
        Message::User { text: text.into() }
    }

    /// An assistant text message.
    pub fn assistant(text: impl Into<String>) -> Self {
        Message::Assistant {
            text: Some(text.into()),
            tool_calls: Vec::new(),
        }
    }
}

/// A tool the model may call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolDefinition {
    /// Name, unique in the request.
    pub name: String,
    /// What it does, for the model.
    pub description: String,
    /// JSON Schema of the arguments object.
    pub parameters: Value,
}

/// How the model may use tools.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolChoice {
    /// The model decides.
    #[default]
    Auto,
    /// The model must not call tools.
    None,
    /// The model must call some tool.
    Required,
    /// The model must call this tool.
    Tool(String),
}

/// A tool call the model asked for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// Provider-assigned id (`call_…`, `toolu_…`).
    pub id: String,
    /// Tool name.
    pub name: String,
    /// Parsed arguments. When the model sent text that is not JSON, this is
    /// `Value::String` holding the raw text, so the caller can report it back.
    pub arguments: Value,
}

/// A request for one model turn.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    /// Model override; `None` uses the client's configured model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The conversation so far.
    pub messages: Vec<Message>,
    /// Tools the model may call.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<ToolDefinition>,
    /// How tools may be used (ignored when `tools` is empty).
    #[serde(default)]
    pub tool_choice: ToolChoice,
    /// Output token cap (Anthropic requires one; the client supplies a default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// Sampling temperature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    /// Stop sequences.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stop: Vec<String>,
    /// Mark the stable prefix (tools and system prompt) for the provider's
    /// prompt cache, so later calls that repeat it read it at the cheaper
    /// cache-read price.
    ///
    /// * **Anthropic**: the client sends `cache_control: {"type":
    ///   "ephemeral"}` (5-minute TTL) on the last tool definition and on the
    ///   system prompt, sent as one text block holding the same text as
    ///   without caching. The first such call pays the cache-write price for
    ///   the prefix (1.25 × input), later calls within the TTL the cache-read
    ///   price (0.1 × input). Prefixes shorter than the model's minimum
    ///   (1 024–4 096 tokens) are silently not cached by the server. A
    ///   request with neither tools nor a system prompt sends no marker.
    /// * **OpenAI and compatible servers**: nothing changes in the request;
    ///   OpenAI caches long prompts automatically and reports the hits as
    ///   `prompt_tokens_details.cached_tokens`.
    ///
    /// Default `false`; cost estimates of a marked Anthropic request price
    /// its input at the cache-write price (see [`estimate`](crate::estimate)).
    #[serde(default, skip_serializing_if = "is_false")]
    pub cache_prompt: bool,
}

#[allow(clippy::trivially_copy_pass_by_ref)]
fn is_false(value: &bool) -> bool {
    !*value
}

impl ChatRequest {
    /// A request with these messages and defaults for the rest.
    pub fn new(messages: Vec<Message>) -> Self {
        ChatRequest {
            messages,
            ..Default::default()
        }
    }
}

/// Why the model stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// Natural end (`stop`, `end_turn`, `stop_sequence`).
    Stop,
    /// Hit the output cap (`length`, `max_tokens`).
    Length,
    /// Wants tool results (`tool_calls`, `tool_use`).
    ToolCalls,
    /// Filtered (`content_filter`, `refusal`).
    ContentFilter,
    /// Anything else, verbatim.
    Other(String),
}

/// A whole model turn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatResponse {
    /// Provider's response id.
    pub id: String,
    /// The model that answered (as the provider reports it).
    pub model: String,
    /// Text of the turn (concatenated text blocks; may be empty).
    pub text: String,
    /// Tool calls of the turn, in order.
    pub tool_calls: Vec<ToolCall>,
    /// Why it stopped.
    pub finish_reason: FinishReason,
    /// The provider's raw stop reason string.
    pub raw_finish_reason: Option<String>,
    /// Tokens used.
    pub usage: Usage,
    /// Cost from the price table; `None` when the model is not in it.
    pub cost: Option<Money>,
}

/// One streamed piece of a model turn. A stream ends with exactly one
/// [`ChatEvent::Completed`] carrying the assembled response, or an error.
#[derive(Debug, Clone, PartialEq)]
pub enum ChatEvent {
    /// The provider accepted the request.
    Started {
        /// Response id.
        id: String,
        /// Model.
        model: String,
    },
    /// Text was generated.
    TextDelta(String),
    /// A tool call began.
    ToolCallStarted {
        /// Position among this turn's tool calls.
        index: usize,
        /// Call id.
        id: String,
        /// Tool name.
        name: String,
    },
    /// A fragment of a tool call's JSON arguments.
    ToolCallDelta {
        /// Position among this turn's tool calls.
        index: usize,
        /// The raw fragment.
        fragment: String,
    },
    /// The assembled turn.
    Completed(ChatResponse),
}

/// A stream of [`ChatEvent`]s.
pub type ChatStream = BoxStream<'static, Result<ChatEvent, LlmError>>;

/// A chat model behind some provider's API.
#[async_trait]
pub trait ChatModel: Send + Sync {
    /// The provider's name (`openai`, `anthropic`, …), used in errors.
    fn provider(&self) -> &str;

    /// The configured model.
    fn model(&self) -> &str;

    /// One turn, whole.
    async fn complete(&self, request: ChatRequest) -> Result<ChatResponse, LlmError>;

    /// One turn, streamed. Errors before the first byte are retried like
    /// `complete`; once output has been yielded, a failure ends the stream.
    fn stream(&self, request: ChatRequest) -> ChatStream;

    /// The worst-case size and cost of `request` before it is sent: its
    /// whole input and the most output it may produce (see
    /// [`estimate`](crate::estimate)). `None` when this model cannot be
    /// estimated; a model that can but has no price gives an estimate with
    /// `cost: None`.
    fn estimate(&self, request: &ChatRequest) -> Option<CostEstimate> {
        let _ = request;
        None
    }

    /// Reports the usage of a call made after `estimate`, so later
    /// estimates of the same model can be calibrated. Does nothing by default.
    fn observe_usage(&self, estimate: &CostEstimate, usage: &Usage) {
        let _ = (estimate, usage);
    }
}

#[async_trait]
impl<M: ChatModel + ?Sized> ChatModel for Arc<M> {
    fn provider(&self) -> &str {
        (**self).provider()
    }

    fn model(&self) -> &str {
        (**self).model()
    }

    async fn complete(&self, request: ChatRequest) -> Result<ChatResponse, LlmError> {
        (**self).complete(request).await
    }

    fn stream(&self, request: ChatRequest) -> ChatStream {
        (**self).stream(request)
    }

    fn estimate(&self, request: &ChatRequest) -> Option<CostEstimate> {
        (**self).estimate(request)
    }

    fn observe_usage(&self, estimate: &CostEstimate, usage: &Usage) {
        (**self).observe_usage(estimate, usage);
    }
}

#[async_trait]
impl<M: ChatModel + ?Sized> ChatModel for Box<M> {
    fn provider(&self) -> &str {
        (**self).provider()
    }

    fn model(&self) -> &str {
        (**self).model()
    }

    async fn complete(&self, request: ChatRequest) -> Result<ChatResponse, LlmError> {
        (**self).complete(request).await
    }

    fn stream(&self, request: ChatRequest) -> ChatStream {
        (**self).stream(request)
    }

    fn estimate(&self, request: &ChatRequest) -> Option<CostEstimate> {
        (**self).estimate(request)
    }

    fn observe_usage(&self, estimate: &CostEstimate, usage: &Usage) {
        (**self).observe_usage(estimate, usage);
    }
}
