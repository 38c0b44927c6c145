//! One [`ChatModel`] trait over every provider's chat API.
//!
//! Requests, messages, tool definitions, tool calls and usage are normalized
//! here; each provider module translates them to and from its own wire format.
//!
//! | module | what it is |
//! | --- | --- |
//! | [`types`] | normalized [`ChatRequest`], [`Message`], [`ToolCall`], [`ChatResponse`], [`ChatEvent`] |
//! | [`error`] | [`LlmError`], the typed provider errors |
//! | `openai` | OpenAI Chat Completions (and any OpenAI-compatible `base_url`) |
//! | `anthropic` | Anthropic Messages |
//! | `transport` | shared HTTP: retries with backoff honouring `retry-after`, timeouts |
//! | `sse` | incremental server-sent-events decoding with an idle timeout |
//! | `pricing` | the price table: cost per call, `None` for unknown models |

pub mod error;
pub mod types;

pub use error::LlmError;
pub use types::{
    ChatEvent, ChatModel, ChatRequest, ChatResponse, ChatStream, FinishReason, Message, ToolCall,
    ToolChoice, ToolDefinition,
};
