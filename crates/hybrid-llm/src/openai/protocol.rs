//! The Chat Completions [`WireProtocol`]: `{base_url}/chat/completions`,
//! bearer auth and `OpenAI-Organization`, and this module's request,
//! response, error and stream code.

use reqwest::header::{AUTHORIZATION, HeaderMap};
use serde::Serialize;

use super::stream::OpenAiStream;
use super::{OpenAiConfig, errors, request, response};
use crate::assemble::CallContext;
use crate::client::WireProtocol;
use crate::endpoint::{endpoint, header_value};
use crate::estimate::{DEFAULT_ESTIMATE_MAX_OUTPUT_TOKENS, ProviderKind};
use crate::{ChatRequest, ChatResponse, LlmError};

/// OpenAI Chat Completions, and compatible servers.
#[derive(Debug)]
pub(crate) struct ChatCompletions;

impl WireProtocol for ChatCompletions {
    type Config = OpenAiConfig;
    type Decoder = OpenAiStream;

    fn endpoint(config: &OpenAiConfig, provider: &str) -> Result<String, LlmError> {
        endpoint(&config.base_url, "chat/completions", provider)
    }

    fn auth_headers(
        config: &OpenAiConfig,
        provider: &str,
        headers: &mut HeaderMap,
    ) -> Result<(), LlmError> {
        if !config.api_key.is_empty() {
            let mut auth = header_value(
                provider,
                "authorization",
                &format!("Bearer {}", config.api_key),
            )?;
            auth.set_sensitive(true);
            headers.insert(AUTHORIZATION, auth);
        }
        if let Some(organization) = &config.organization {
            headers.insert(
                "openai-organization",
                header_value(provider, "OpenAI-Organization", organization)?,
            );
        }
        Ok(())
    }

    fn build_body<'a>(
        request: &'a ChatRequest,
        model: &'a str,
        config: &OpenAiConfig,
        stream: bool,
    ) -> impl Serialize {
        request::build(request, model, &config.provider_name, stream)
    }

    fn map_error(provider: &str, status: u16, headers: &HeaderMap, body: &str) -> LlmError {
        errors::map_error(provider, status, headers, body)
    }

    fn parse_response(body: &[u8], ctx: &CallContext) -> Result<ChatResponse, LlmError> {
        response::parse(body, ctx)
    }

    fn new_decoder(ctx: CallContext) -> OpenAiStream {
        OpenAiStream::new(ctx)
    }

    /// OpenAI's tokenizers for the provider named `openai`; for any other
    /// (a compatible server) only when the model is an OpenAI model.
    fn estimate_kind(config: &OpenAiConfig) -> ProviderKind {
        if config.provider_name == "openai" {
            ProviderKind::OpenAi
        } else {
            ProviderKind::OpenAiCompatible
        }
    }

    /// The API has no fixed output cap, so a documented stand-in.
    fn default_max_output_tokens(_config: &OpenAiConfig) -> u64 {
        DEFAULT_ESTIMATE_MAX_OUTPUT_TOKENS
    }
}
