//! OpenAI Chat Completions, and any OpenAI-compatible server (`base_url`):
//! llama.cpp's `llama-server`, vLLM, Ollama, LiteLLM, Gemini's compatible
//! endpoint…
//!
//! The client POSTs `{base_url}/chat/completions` with
//! `Authorization: Bearer {api_key}` (omitted when the key is empty, for
//! local servers), `OpenAI-Organization` when set, and any extra headers.
//!
//! Mapping, in brief (details in the `request`, `response`, `stream` and
//! `errors` submodules):
//!
//! * system messages stay `role: "system"`; assistant tool calls are
//!   `tool_calls` with `arguments` as a JSON text (`content: null` without
//!   text); tool results are `role: "tool"` messages, prefixed `Error: ` on
//!   failure; `tool_choice` is sent only with tools;
//! * the output cap goes in `max_completion_tokens` (the reference marks
//!   `max_tokens` deprecated); for a provider not named `openai` it is also
//!   sent as `max_tokens`, which older compatible servers (llama.cpp before
//!   2026, others) read instead;
//! * streams ask for `stream_options.include_usage`; tool-call deltas are
//!   assembled by `index`; `[DONE]` completes the turn;
//! * usage: `input = prompt_tokens − cached_tokens`, `cache_read = cached_tokens`;
//! * errors: 401/403 → `Authentication`, 429 → `RateLimited` (but
//!   `insufficient_quota` → `InvalidRequest`, not retried),
//!   `context_length_exceeded` → `ContextTooLong`, 503 overloaded/slow down
//!   and 529 → `Overloaded`, 5xx → `Server`, other 4xx → `InvalidRequest`.

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

use protocol::ChatCompletions;

/// Settings of an [`OpenAiClient`].
#[derive(Clone)]
pub struct OpenAiConfig {
    /// Name used in errors and events: `openai`, or e.g. `gemini`, `llama.cpp`
    /// for compatible endpoints. Only `openai` is assumed to follow the
    /// reference exactly (others also get `max_tokens`).
    pub provider_name: String,
    /// API key, sent as a bearer token; empty sends no `Authorization`.
    pub api_key: String,
    /// Base URL including `/v1`; the client POSTs `{base_url}/chat/completions`.
    /// A trailing slash is tolerated.
    pub base_url: String,
    /// Model used when a request does not name one.
    pub model: String,
    /// `OpenAI-Organization` header.
    pub organization: Option<String>,
    /// Further headers sent with every request.
    pub extra_headers: Vec<(String, String)>,
    /// Timeouts and retries.
    pub transport: TransportConfig,
    /// Prices used to fill [`ChatResponse::cost`](crate::ChatResponse::cost).
    pub prices: Arc<PriceTable>,
}

impl fmt::Debug for OpenAiConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAiConfig")
            .field("provider_name", &self.provider_name)
            .field("api_key", &redacted(&self.api_key))
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("organization", &self.organization)
            .field("extra_headers", &header_names(&self.extra_headers))
            .field("transport", &self.transport)
            .finish_non_exhaustive()
    }
}

impl OpenAiConfig {
    /// The official endpoint.
    pub const DEFAULT_BASE_URL: &'static str = "https://api.openai.com/v1";
    /// The variable holding the API key.
    pub const API_KEY_VAR: &'static str = "OPENAI_API_KEY";
    /// The variable overriding the base URL.
    pub const BASE_URL_VAR: &'static str = "OPENAI_BASE_URL";
    /// The variable holding the organization id (optional).
    pub const ORGANIZATION_VAR: &'static str = "OPENAI_ORG_ID";

    /// The official endpoint with this key and model, default transport and
    /// built-in prices.
    pub fn new(api_key: impl Into<String>, model: impl Into<String>) -> Self {
        OpenAiConfig {
            provider_name: "openai".to_string(),
            api_key: api_key.into(),
            base_url: Self::DEFAULT_BASE_URL.to_string(),
            model: model.into(),
            organization: None,
            extra_headers: Vec::new(),
            transport: TransportConfig::default(),
            prices: Arc::new(PriceTable::builtin()),
        }
    }

    /// From `OPENAI_API_KEY` (required, non-empty), `OPENAI_BASE_URL`
    /// (default: the official endpoint) and `OPENAI_ORG_ID` (optional).
    pub fn from_env(model: impl Into<String>) -> Result<Self, LlmError> {
        Self::from_lookup(model, |name| std::env::var(name).ok())
    }

    /// Like [`from_env`](Self::from_env), reading variables through `lookup`.
    pub fn from_lookup(
        model: impl Into<String>,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, LlmError> {
        let api_key = required_api_key(&lookup, Self::API_KEY_VAR, "openai")?;
        let mut config = OpenAiConfig::new(api_key, model);
        if let Some(base_url) = non_blank(&lookup, Self::BASE_URL_VAR) {
            config.base_url = base_url;
        }
        config.organization = non_blank(&lookup, Self::ORGANIZATION_VAR);
        Ok(config)
    }
}

shared_config_methods!(
    OpenAiConfig,
    "With another base URL (an OpenAI-compatible server)."
);

/// A [`ChatModel`](crate::ChatModel) over the Chat Completions API. Cheap
/// to clone: clones share one pooled HTTP client.
#[derive(Debug, Clone)]
pub struct OpenAiClient {
    inner: Arc<ClientCore<ChatCompletions>>,
}

impl OpenAiClient {
    /// A client for `config`; fails on a base URL or header that cannot work.
    pub fn new(config: OpenAiConfig) -> Result<Self, LlmError> {
        let inner = Arc::new(ClientCore::new(config)?);
        Ok(OpenAiClient { inner })
    }

    /// The configuration.
    pub fn config(&self) -> &OpenAiConfig {
        self.inner.config()
    }

    /// The URL requests go to.
    pub fn endpoint(&self) -> &str {
        self.inner.endpoint()
    }
}

forward_chat_model!(OpenAiClient);

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn from_lookup_requires_a_key() {
        let vars: HashMap<&str, &str> = HashMap::from([("OPENAI_API_KEY", "  ")]);
        let err = OpenAiConfig::from_lookup("gpt-4o", |k| vars.get(k).map(|v| v.to_string()))
            .unwrap_err();
        assert_eq!(
            err,
            LlmError::MissingApiKey {
                provider: "openai".into(),
                env_var: "OPENAI_API_KEY".into()
            }
        );
        assert!(err.to_string().contains("OPENAI_API_KEY"));
    }

    #[test]
    fn from_lookup_reads_base_url_and_org() {
        let vars: HashMap<&str, &str> = HashMap::from([
            ("OPENAI_API_KEY", "sk-test"),
            ("OPENAI_BASE_URL", "http://localhost:8080/v1/"),
            ("OPENAI_ORG_ID", "org-1"),
        ]);
        let config =
            OpenAiConfig::from_lookup("gpt-4o", |k| vars.get(k).map(|v| v.to_string())).unwrap();
        assert_eq!(config.base_url, "http://localhost:8080/v1/");
        assert_eq!(config.organization.as_deref(), Some("org-1"));
        assert!(!format!("{config:?}").contains("sk-test"));
        let client = OpenAiClient::new(config).unwrap();
        assert_eq!(
            client.endpoint(),
            "http://localhost:8080/v1/chat/completions"
        );
        let defaults = OpenAiConfig::from_lookup("gpt-4o", |k| {
            (k == "OPENAI_API_KEY").then(|| "k".to_string())
        })
        .unwrap();
        assert_eq!(defaults.base_url, OpenAiConfig::DEFAULT_BASE_URL);
    }

    #[test]
    fn bad_config_is_a_config_error() {
        let bad_url = OpenAiClient::new(OpenAiConfig::new("k", "m").with_base_url("not a url"));
        assert!(matches!(bad_url, Err(LlmError::Config { .. })));
        let bad_header =
            OpenAiClient::new(OpenAiConfig::new("k", "m").with_header("bad header", "v"));
        assert!(matches!(bad_header, Err(LlmError::Config { .. })));
    }
}
