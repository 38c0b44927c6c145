//! Anthropic Messages API.
//!
//! The client POSTs `{base_url}/v1/messages` with `x-api-key`,
//! `anthropic-version` and `content-type: application/json` headers (plus any
//! extra headers).
//!
//! Mapping, in brief (details in the `request`, `response`, `stream` and
//! `errors` submodules):
//!
//! * system messages are joined into the top-level `system`; consecutive
//!   same-role messages are merged (the API requires alternation), so the
//!   tool results of a turn share one user message as `tool_result` blocks
//!   (`is_error: true` on failure);
//! * `tool_use.input` must be an object: arguments held as `Value::String`
//!   (a model's non-JSON text) are sent as the object they parse to, else
//!   as `{}`;
//! * `max_tokens` is required: the request's, else `default_max_tokens`;
//! * `cache_prompt`: `cache_control: {"type": "ephemeral"}` on the last tool
//!   and on the system prompt (sent as a one-block list);
//! * streams: `input_json_delta` fragments are assembled per block and parsed
//!   at `content_block_stop`; thinking/signature deltas and `ping` are
//!   ignored; `message_stop` completes the turn;
//! * usage: `cache_creation_input_tokens` → cache writes,
//!   `cache_read_input_tokens` → cache reads;
//! * errors: `authentication_error`/`permission_error` → `Authentication`,
//!   `rate_limit_error` → `RateLimited`, `overloaded_error`/529 →
//!   `Overloaded`, "prompt is too long" → `ContextTooLong`, 5xx → `Server`,
//!   other 4xx (`request_too_large`, `not_found_error`, …) → `InvalidRequest`.

mod errors;
mod protocol;
mod request;
mod response;
mod stream;
mod wire;

use std::fmt;
use std::sync::Arc;

use crate::LlmError;
use crate::client::{ClientCore, forward_chat_model};
use crate::config::{header_names, non_blank, redacted, required_api_key, shared_config_methods};
use crate::pricing::PriceTable;
use crate::transport::TransportConfig;

use protocol::Messages;

/// Settings of an [`AnthropicClient`].
#[derive(Clone)]
pub struct AnthropicConfig {
    /// Name used in errors and events (`anthropic`).
    pub provider_name: String,
    /// API key, sent as `x-api-key`; empty sends none (compatible servers).
    pub api_key: String,
    /// Base URL without `/v1` (a trailing `/v1` or slash is tolerated); the
    /// client POSTs `{base_url}/v1/messages`.
    pub base_url: String,
    /// Model used when a request does not name one.
    pub model: String,
    /// `anthropic-version` header.
    pub version: String,
    /// `max_tokens` when a request sets none (the API requires it).
    pub default_max_tokens: u32,
    /// Further headers sent with every request (e.g. `anthropic-beta`).
    pub extra_headers: Vec<(String, String)>,
    /// Timeouts and retries.
    pub transport: TransportConfig,
    /// Prices used to fill [`ChatResponse::cost`](crate::ChatResponse::cost).
    pub prices: Arc<PriceTable>,
}

impl fmt::Debug for AnthropicConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AnthropicConfig")
            .field("provider_name", &self.provider_name)
            .field("api_key", &redacted(&self.api_key))
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("version", &self.version)
            .field("default_max_tokens", &self.default_max_tokens)
            .field("extra_headers", &header_names(&self.extra_headers))
            .field("transport", &self.transport)
            .finish_non_exhaustive()
    }
}

impl AnthropicConfig {
    /// The official endpoint.
    pub const DEFAULT_BASE_URL: &'static str = "https://api.anthropic.com";
    /// The API version this client speaks.
    pub const DEFAULT_VERSION: &'static str = "2023-06-01";
    /// `max_tokens` when a request sets none.
    pub const DEFAULT_MAX_TOKENS: u32 = 4096;
    /// The variable holding the API key.
    pub const API_KEY_VAR: &'static str = "ANTHROPIC_API_KEY";
    /// The variable overriding the base URL.
    pub const BASE_URL_VAR: &'static str = "ANTHROPIC_BASE_URL";

    /// The official endpoint with this key and model, default transport and
    /// built-in prices.
    pub fn new(api_key: impl Into<String>, model: impl Into<String>) -> Self {
        AnthropicConfig {
            provider_name: "anthropic".to_string(),
            api_key: api_key.into(),
            base_url: Self::DEFAULT_BASE_URL.to_string(),
            model: model.into(),
            version: Self::DEFAULT_VERSION.to_string(),
            default_max_tokens: Self::DEFAULT_MAX_TOKENS,
            extra_headers: Vec::new(),
            transport: TransportConfig::default(),
            prices: Arc::new(PriceTable::builtin()),
        }
    }

    /// From `ANTHROPIC_API_KEY` (required, non-empty) and `ANTHROPIC_BASE_URL`
    /// (default: the official endpoint).
    pub fn from_env(model: impl Into<String>) -> Result<Self, LlmError> {
        Self::from_lookup(model, |name| std::env::var(name).ok())
    }

    /// Like [`from_env`](Self::from_env), reading variables through `lookup`.
    pub fn from_lookup(
        model: impl Into<String>,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, LlmError> {
        let api_key = required_api_key(&lookup, Self::API_KEY_VAR, "anthropic")?;
        let mut config = AnthropicConfig::new(api_key, model);
        if let Some(base_url) = non_blank(&lookup, Self::BASE_URL_VAR) {
            config.base_url = base_url;
        }
        Ok(config)
    }
}

shared_config_methods!(AnthropicConfig, "With another base URL.");

/// A [`ChatModel`](crate::ChatModel) over the Messages API. Cheap to clone:
/// clones share one pooled HTTP client.
#[derive(Debug, Clone)]
pub struct AnthropicClient {
    inner: Arc<ClientCore<Messages>>,
}

impl AnthropicClient {
    /// A client for `config`; fails on a base URL or header that cannot work.
    pub fn new(config: AnthropicConfig) -> Result<Self, LlmError> {
        let inner = Arc::new(ClientCore::new(config)?);
        Ok(AnthropicClient { inner })
    }

    /// The configuration.
    pub fn config(&self) -> &AnthropicConfig {
        self.inner.config()
    }

    /// The URL requests go to.
    pub fn endpoint(&self) -> &str {
        self.inner.endpoint()
    }
}

forward_chat_model!(AnthropicClient);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_lookup_requires_a_key() {
        let err = AnthropicConfig::from_lookup("claude-sonnet-4-5", |_| None).unwrap_err();
        assert_eq!(
            err,
            LlmError::MissingApiKey {
                provider: "anthropic".into(),
                env_var: "ANTHROPIC_API_KEY".into()
            }
        );
        assert!(err.to_string().contains("ANTHROPIC_API_KEY"));
    }

    #[test]
    fn endpoint_tolerates_v1_and_slashes() {
        for base in [
            "http://h:1",
            "http://h:1/",
            "http://h:1/v1",
            "http://h:1/v1/",
        ] {
            let client =
                AnthropicClient::new(AnthropicConfig::new("k", "m").with_base_url(base)).unwrap();
            assert_eq!(client.endpoint(), "http://h:1/v1/messages");
        }
        let config = AnthropicConfig::from_lookup("m", |k| {
            (k == "ANTHROPIC_API_KEY").then(|| "sk-ant".into())
        })
        .unwrap();
        assert_eq!(config.base_url, AnthropicConfig::DEFAULT_BASE_URL);
        assert!(!format!("{config:?}").contains("sk-ant"));
    }
}
