//! A mock LLM server for tests: it speaks the OpenAI Chat Completions and
//! Anthropic Messages wire formats (JSON and SSE streaming), answers from a
//! script, and records every request.
//!
//! - OpenAI clients use [`MockLlmServer::openai_base_url`] and POST
//!   `{base}/chat/completions` with `Authorization: Bearer KEY`.
//! - Anthropic clients use [`MockLlmServer::anthropic_base_url`] and POST
//!   `{base}/v1/messages` with `x-api-key` and `anthropic-version`.
//!
//! Each accepted request consumes one [`Reply`] from a FIFO queue (else the
//! default reply, else a 500 `mock: no scripted reply`). A request is streamed
//! when its body has `"stream": true`. Requests the real API would reject
//! (no key, wrong key, no `anthropic-version`, body not a JSON object,
//! missing `model` / `messages` / Anthropic `max_tokens`, a malformed
//! Anthropic `system` or `cache_control`, more than four cache breakpoints,
//! unknown path) get the provider's error and consume no reply. Every
//! response carries a request id header (`x-request-id` / `request-id`).
//!
//! # Replies
//!
//! | reply | OpenAI | Anthropic |
//! | --- | --- | --- |
//! | [`Turn::text`] | `message.content`; streamed as `delta.content` pieces | `text` block; `text_delta` events |
//! | [`Turn::tool_call`], [`Turn::and_tool_call`] | `tool_calls` (`call_…`); deltas with `index`, first with `id`/`type`/`function.name` | `tool_use` blocks (`toolu_…`); `input_json_delta` `partial_json` pieces |
//! | [`Turn::with_usage`], [`Turn::with_cache`] | `prompt_tokens` = input + cache read + write, `cached_tokens` = read; final `choices: []` chunk when `stream_options.include_usage` | `input_tokens`, `cache_read_input_tokens`, `cache_creation_input_tokens` in `message_start` and (cumulative, with `output_tokens`) in `message_delta`; without `with_cache`, the simulated prompt cache's reads and writes |
//! | [`Turn::with_stop`] | `stop` / `length` / `tool_calls` / `content_filter` | `end_turn` / `max_tokens` / `tool_use` / `stop_sequence` / `refusal` |
//! | [`Fault::RateLimited`] | 429 `rate_limit_exceeded` + `retry-after` / `retry-after-ms` | 429 `rate_limit_error` + same headers |
//! | [`Fault::ServerError`] | 500 `server_error` | 500 `api_error` |
//! | [`Fault::Overloaded`] | 503 `server_error` | 529 `overloaded_error` |
//! | [`Fault::ContextTooLong`] | 400 `context_length_exceeded` | 400 `prompt is too long: N tokens > 200000 maximum` |
//! | [`Fault::Unauthorized`] | 401 `invalid_api_key` | 401 `authentication_error` |
//! | [`Fault::BadRequest`] | 400 `invalid_request_error` | 400 `invalid_request_error` |
//! | [`Fault::MalformedJson`] | 200, body / 2nd `data:` line not JSON | same |
//! | [`Fault::CutStream`] | N events, connection dropped, no `[DONE]` | N events, dropped, no `message_stop` |
//! | [`Fault::MidStreamError`] | deltas, then `data: {"error": …}` | deltas, then `event: error` `overloaded_error` |
//! | [`Fault::Status`] | status, body and headers verbatim | same |
//!
//! Streamed text and arguments are cut into [`Turn::with_chunk_size`] pieces
//! (default [`DEFAULT_CHUNK_SIZE`]), so arguments arrive in several fragments.
//! Faults that stream partial output stream [`FAULT_TEXT`].
//!
//! # Anthropic prompt caching
//!
//! `cache_control` markers are checked like the real API does:
//! `{"type": "ephemeral"}` with an optional `"ttl"` of `"5m"` or `"1h"`, on
//! tools, `system` text blocks (`system` is a string or a list of text
//! blocks), message blocks or the top level, at most four per request. Each
//! server keeps a cache of the prompt prefixes marked on tools and system
//! blocks (the prompt renders tools → system → messages): the first request
//! marking a prefix reports it as `cache_creation_input_tokens`, later ones
//! with the same prefix as `cache_read_input_tokens`, and `input_tokens` is
//! the rest of the prompt. There is no minimum length and no expiry
//! ([`MockLlmServer::clear_prompt_cache`] forgets everything); an explicit
//! [`Turn::with_cache`] overrides what is reported.
//!
//! # Fixtures
//!
//! | module | what |
//! | --- | --- |
//! | [`webhook`] | [`WebhookRecorder`]: a webhook that records what is POSTed to it |
//! | `platform` (feature `platform`) | `TestPlatform`: `openai` and `claude` on one mock, for platform tests |
//! | `tool_call_eval` (feature `platform`) | the tool-call eval of a real model: twenty ops requests with the executor's tools, scored; the `hybrid-tool-call-eval` binary prints it |
//! | [`fixtures`] | real systems for workflow end-to-end tests: [`fixtures::ServiceFixture`] (a faulty local service and its restart script), [`fixtures::GitRepoFixture`] (a git repository with good and bad feature branches and test/lint/scan/coverage/deploy scripts) |
//!
//! # Example
//!
//! ```
//! use hybrid_testkit::{Fault, MockLlmServer, Protocol, Turn};
//! use serde_json::{Value, json};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let runtime = tokio::runtime::Runtime::new()?;
//! runtime.block_on(async {
//!     let server = MockLlmServer::start().await?;
//!     server.enqueue(Turn::text("hello world").with_usage(12, 2));
//!     server.enqueue(Fault::RateLimited { retry_after_secs: Some(2), retry_after_ms: None });
//!
//!     let client = reqwest::Client::new();
//!     let url = format!("{}/chat/completions", server.openai_base_url());
//!     let request = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]});
//!
//!     let first: Value = client.post(&url).bearer_auth("sk-test").json(&request).send().await?.json().await?;
//!     assert_eq!(first["choices"][0]["message"]["content"], "hello world");
//!     assert_eq!(first["usage"]["prompt_tokens"], 12);
//!
//!     let second = client.post(&url).bearer_auth("sk-test").json(&request).send().await?;
//!     assert_eq!(second.status(), 429);
//!     assert_eq!(second.headers()["retry-after"], "2");
//!
//!     let seen = server.requests();
//!     assert_eq!(seen.len(), 2);
//!     assert_eq!(seen[0].protocol, Protocol::OpenAi);
//!     assert_eq!(seen[0].headers["authorization"], "Bearer sk-test");
//!     assert_eq!(seen[0].body["model"], "gpt-4o");
//!     Ok::<(), Box<dyn std::error::Error>>(())
//! })
//! # }
//! ```

mod anthropic_wire;
mod completion;
mod failure;
mod faults;
pub mod fixtures;
mod handler;
mod ids;
pub mod mcp_server;
mod openai_wire;
#[cfg(feature = "platform")]
pub mod platform;
mod prompt_cache;
mod record;
mod respond;
mod script;
mod server;
mod sse;
mod state;
mod tokens;
#[cfg(feature = "platform")]
pub mod tool_call_eval;
mod validate;
pub mod webhook;
mod wire;

pub use faults::{FAULT_TEXT, Fault};
pub use mcp_server::McpTestServer;
pub use record::{Protocol, RecordedRequest};
pub use script::{DEFAULT_CHUNK_SIZE, Reply, StopKind, Turn};
pub use server::MockLlmServer;
pub use webhook::WebhookRecorder;
