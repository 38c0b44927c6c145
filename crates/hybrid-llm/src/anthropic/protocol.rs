//! The Messages [`WireProtocol`]: `{base_url}/v1/messages`, `x-api-key` and
//! `anthropic-version`, and this module's request, response, error and
//! stream code.

use reqwest::header::HeaderMap;
use serde::Serialize;

use super::stream::AnthropicStream;
use super::{AnthropicConfig, errors, request, response};
use crate::assemble::CallContext;
use crate::client::WireProtocol;
use crate::endpoint::{endpoint, header_value};
use crate::estimate::ProviderKind;
use crate::{ChatRequest, ChatResponse, LlmError};

/// Anthropic Messages.
#[derive(Debug)]
pub(crate) struct Messages;

impl WireProtocol for Messages {
    type Config = AnthropicConfig;
    type Decoder = AnthropicStream;

    /// `{base_url}/v1/messages`, tolerating a base URL that ends in `/v1`.
    fn endpoint(config: &AnthropicConfig, provider: &str) -> Result<String, LlmError> {
        let base = config.base_url.trim().trim_end_matches('/');
        let base = base.strip_suffix("/v1").unwrap_or(base);
        endpoint(base, "v1/messages", provider)
    }

    fn auth_headers(
        config: &AnthropicConfig,
        provider: &str,
        headers: &mut HeaderMap,
    ) -> Result<(), LlmError> {
        if !config.api_key.is_empty() {
            let mut key = header_value(provider, "x-api-key", &config.api_key)?;
            key.set_sensitive(true);
            headers.insert("x-api-key", key);
        }
        headers.insert(
            "anthropic-version",
            header_value(provider, "anthropic-version", &config.version)?,
        );
        Ok(())
    }

    fn build_body<'a>(
        request: &'a ChatRequest,
        model: &'a str,
        config: &AnthropicConfig,
        stream: bool,
    ) -> impl Serialize {
        request::build(request, model, config.default_max_tokens, stream)
    }

    fn map_error(provider: &str, status: u16, headers: &HeaderMap, body: &str) -> LlmError {
        errors::map_error(provider, status, headers, body)
    }

    fn parse_response(body: &[u8], ctx: &CallContext) -> Result<ChatResponse, LlmError> {
        response::parse(body, ctx)
    }

    fn new_decoder(ctx: CallContext) -> AnthropicStream {
        AnthropicStream::new(ctx)
    }

    fn estimate_kind(_config: &AnthropicConfig) -> ProviderKind {
        ProviderKind::Anthropic
    }

    /// `default_max_tokens`: what the client sends when a request sets none.
    fn default_max_output_tokens(config: &AnthropicConfig) -> u64 {
        u64::from(config.default_max_tokens)
    }
}
