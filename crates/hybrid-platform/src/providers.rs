//! Builds the configured platforms: each `[platforms.NAME]` becomes an
//! [`LlmPlatform`] over an OpenAI or Anthropic client.
//!
//! | setting | from, in order |
//! | --- | --- |
//! | API key | the variable named by `api_key_env`, else `OPENAI_API_KEY` / `ANTHROPIC_API_KEY` |
//! | base URL | `base_url`, else `OPENAI_BASE_URL` / `ANTHROPIC_BASE_URL`, else the official endpoint |
//! | model | `model`, else [`DEFAULT_OPENAI_MODEL`] / [`DEFAULT_ANTHROPIC_MODEL`] |
//!
//! A platform whose key is missing is still registered; using it fails with
//! an error naming the variable to set.

use std::sync::Arc;
use std::time::Duration;

use hybrid_llm::pricing::{ModelPrice, PriceTable};
use hybrid_llm::transport::TransportConfig;
use hybrid_llm::{
    AnthropicClient, AnthropicConfig, ChatModel, LlmError, OpenAiClient, OpenAiConfig,
};

use crate::config::{DEFAULT_ANTHROPIC_MODEL, DEFAULT_OPENAI_MODEL, HybridConfig, PlatformConfig};
use crate::roles::Layer;
use crate::{LlmPlatform, Platform, router};

/// Looks up an environment variable (injectable for tests).
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The process environment, with empty values treated as unset.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// The price table: built-in prices with the file's `[prices]` on top.
pub fn price_table(config: &HybridConfig) -> PriceTable {
    config
        .prices
        .iter()
        .fold(PriceTable::builtin(), |table, (model, p)| {
            let input = *p.input.get_ref();
            let price = ModelPrice::per_million_usd(
                input,
                *p.output.get_ref(),
                p.cache_read.as_ref().map_or(input, |v| *v.get_ref()),
                p.cache_write.as_ref().map_or(input, |v| *v.get_ref()),
            );
            match price {
                Some(price) => table.with(model, price),
                None => table,
            }
        })
}

/// Every configured platform, ready to register.
pub fn build_platforms(config: &HybridConfig, env: EnvLookup<'_>) -> Vec<Arc<dyn Platform>> {
    let prices = Arc::new(price_table(config));
    config
        .effective_platforms()
        .iter()
        .map(|(name, p)| {
            Arc::new(build_platform(name, p, prices.clone(), env)) as Arc<dyn Platform>
        })
        .collect()
}

fn layer_of(name: &str, provider: &str) -> Layer {
    match name {
        router::OPENAI => Layer::Reasoning,
        router::CLAUDE => Layer::Execution,
        _ if provider == "anthropic" => Layer::Execution,
        _ => Layer::Reasoning,
    }
}

/// One platform from its section.
pub fn build_platform(
    name: &str,
    p: &PlatformConfig,
    prices: Arc<PriceTable>,
    env: EnvLookup<'_>,
) -> LlmPlatform {
    let provider = p.provider.get_ref().as_str();
    let layer = layer_of(name, provider);
    let mut transport = TransportConfig::default();
    if let Some(t) = &p.timeout_secs {
        transport.request_timeout = Duration::from_secs(*t.get_ref());
    }
    if let Some(a) = &p.max_attempts {
        transport.retry.max_attempts = *a.get_ref();
    }
    let model = match build_model(name, provider, p, prices, transport, env) {
        Ok(m) => LlmPlatform::new(name, layer, m),
        Err(e) => LlmPlatform::unavailable(name, layer, e),
    };
    #[allow(clippy::cast_possible_truncation)]
    let temperature = p.temperature.as_ref().map(|t| *t.get_ref() as f32);
    model
        .with_instructions(p.instructions.clone())
        .with_streaming(p.stream.unwrap_or(true))
        .with_max_tokens(p.max_tokens)
        .with_temperature(temperature)
}

fn build_model(
    name: &str,
    provider: &str,
    p: &PlatformConfig,
    prices: Arc<PriceTable>,
    transport: TransportConfig,
    env: EnvLookup<'_>,
) -> Result<Arc<dyn ChatModel>, LlmError> {
    let base_url = p.base_url.as_ref().map(|u| u.get_ref().clone());
    if provider == "anthropic" {
        let key_var = p
            .api_key_env
            .clone()
            .unwrap_or_else(|| AnthropicConfig::API_KEY_VAR.into());
        let api_key = env(&key_var).ok_or_else(|| LlmError::MissingApiKey {
            provider: name.to_owned(),
            env_var: key_var.clone(),
        })?;
        let model = p
            .model
            .clone()
            .unwrap_or_else(|| DEFAULT_ANTHROPIC_MODEL.to_owned());
        let mut config = AnthropicConfig::new(api_key, model);
        config.provider_name = name.to_owned();
        config.base_url = base_url
            .or_else(|| env(AnthropicConfig::BASE_URL_VAR))
            .unwrap_or_else(|| AnthropicConfig::DEFAULT_BASE_URL.to_owned());
        config.transport = transport;
        config.prices = prices;
        Ok(Arc::new(AnthropicClient::new(config)?))
    } else {
        let key_var = p
            .api_key_env
            .clone()
            .unwrap_or_else(|| OpenAiConfig::API_KEY_VAR.into());
        let api_key = env(&key_var).ok_or_else(|| LlmError::MissingApiKey {
            provider: name.to_owned(),
            env_var: key_var.clone(),
        })?;
        let model = p
            .model
            .clone()
            .unwrap_or_else(|| DEFAULT_OPENAI_MODEL.to_owned());
        let mut config = OpenAiConfig::new(api_key, model);
        config.provider_name = name.to_owned();
        config.base_url = base_url
            .or_else(|| env(OpenAiConfig::BASE_URL_VAR))
            .unwrap_or_else(|| OpenAiConfig::DEFAULT_BASE_URL.to_owned());
        config.transport = transport;
        config.prices = prices;
        Ok(Arc::new(OpenAiClient::new(config)?))
    }
}
