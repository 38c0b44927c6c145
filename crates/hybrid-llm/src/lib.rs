//! One [`ChatModel`] trait over every provider's chat API.
//!
//! Requests, messages, tool definitions, tool calls and usage are normalized
//! here; each provider module translates them to and from its own wire format.
//!
//! | module | what it is |
//! | --- | --- |
//! | [`types`] | normalized [`ChatRequest`], [`Message`], [`ToolCall`], [`ChatResponse`], [`ChatEvent`] |
//! | [`error`] | [`LlmError`], the typed provider errors |
//! | [`openai`] | OpenAI Chat Completions (and any OpenAI-compatible `base_url`) |
//! | [`anthropic`] | Anthropic Messages |
//! | [`transport`] | shared HTTP: retries with backoff honouring `retry-after`, timeouts |
//! | [`retry`] | the retry policy: attempts, jittered backoff, `retry-after` parsing |
//! | [`sse`] | incremental server-sent-events decoding with an idle timeout |
//! | [`pricing`] | the price table: cost per call, `None` for unknown models |
//! | [`estimate`] | worst-case token count and cost of a request before sending it |
//!
//! ```no_run
//! use hybrid_llm::openai::{OpenAiClient, OpenAiConfig};
//! use hybrid_llm::{ChatModel, ChatRequest, Message};
//!
//! # async fn run() -> Result<(), hybrid_llm::LlmError> {
//! // OPENAI_API_KEY (and optionally OPENAI_BASE_URL) from the environment…
//! let client = OpenAiClient::new(OpenAiConfig::from_env("gpt-4o-mini")?)?;
//! // …or any OpenAI-compatible server, e.g. llama.cpp's llama-server:
//! let local = OpenAiClient::new(
//!     OpenAiConfig::new("", "qwen2.5")
//!         .with_provider_name("llama.cpp")
//!         .with_base_url("http://127.0.0.1:8080/v1"),
//! )?;
//! let request = ChatRequest::new(vec![Message::system("Be brief."), Message::user("Hello!")]);
//! let response = client.complete(request.clone()).await?;
//! println!("{} ({:?}, cost {:?})", response.text, response.usage, response.cost);
//! let _stream = local.stream(request);
//! # Ok(())
//! # }
//! ```

pub mod anthropic;
mod assemble;
mod client;
mod config;
mod endpoint;
pub mod error;
mod error_body;
pub mod estimate;
pub mod openai;
pub mod pricing;
pub mod retry;
pub mod sse;
pub mod transport;
pub mod types;

pub use anthropic::{AnthropicClient, AnthropicConfig};
pub use error::LlmError;
pub use estimate::{Calibration, CostEstimate, EstimateMethod, ProviderKind};
pub use openai::{OpenAiClient, OpenAiConfig};
pub use pricing::{ModelPrice, PriceTable};
pub use retry::RetryPolicy;
pub use transport::TransportConfig;
pub use types::{
    ChatEvent, ChatModel, ChatRequest, ChatResponse, ChatStream, FinishReason, Message, ToolCall,
    ToolChoice, ToolDefinition,
};
