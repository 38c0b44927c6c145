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
use crate::llm_platform::AgentSettings;
use crate::roles::PlatformKind;
use crate::{LlmPlatform, Platform, router};
use hybrid_tools::{Tool, ToolRegistry};

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

/// The built-in tools a platform may list, in the order they are offered.
pub const BUILTIN_TOOLS: [&str; 8] = [
    "bash",
    "read_file",
    "write_file",
    "edit_file",
    "glob",
    "grep",
    "http_request",
    "notify",
];

/// The tools the execution layer gets when its section names none.
pub const DEFAULT_SYSTEM_TOOLS: [&str; 6] = [
    "bash",
    "read_file",
    "write_file",
    "edit_file",
    "glob",
    "grep",
];

/// Whether `name` may appear in a `tools` list: a built-in, or an MCP pattern.
pub fn is_known_tool_name(name: &str) -> bool {
    BUILTIN_TOOLS.contains(&name)
        || name.strip_prefix("mcp:").is_some_and(|rest| {
            rest.split_once(':')
                .is_some_and(|(server, tool)| !server.is_empty() && !tool.is_empty())
        })
}

/// Every configured platform, with `extra` tools (e.g. connected MCP servers'
/// tools) available to the `tools` lists that name them.
pub fn build_platforms(
    config: &HybridConfig,
    env: EnvLookup<'_>,
    extra: Vec<Arc<dyn Tool>>,
) -> Vec<Arc<dyn Platform>> {
    let prices = Arc::new(price_table(config));
    let mut registry = ToolRegistry::builtin(&config.tools);
    for tool in extra {
        registry.register(tool);
    }
    let configs = config.effective_platforms();
    let built: Vec<(String, LlmPlatform)> = configs
        .iter()
        .map(|(name, p)| {
            let tools = tools_for(name, p, &registry);
            let mut platform = build_platform(name, p, prices.clone(), env).with_tools(tools);
            for (agent, a) in config
                .agents
                .iter()
                .filter(|(_, a)| a.platform.get_ref() == name)
            {
                let role = a.role.clone().unwrap_or_else(|| agent.clone());
                let settings = AgentSettings {
                    instructions: a.instructions.clone(),
                    tools: a
                        .tools
                        .as_ref()
                        .map(|t| resolve_tools(t.get_ref(), &registry)),
                    max_turns: a.max_turns,
                };
                platform = platform.with_agent(role, settings);
            }
            (name.clone(), platform)
        })
        .collect();
    // Fallbacks point at other platforms' models (checked on load to exist).
    let models: std::collections::HashMap<String, Arc<dyn ChatModel>> = built
        .iter()
        .filter_map(|(name, p)| p.chat_model().map(|m| (name.clone(), m)))
        .collect();
    built
        .into_iter()
        .map(|(name, mut platform)| {
            let fallback = configs
                .get(&name)
                .and_then(|p| p.fallback.as_ref())
                .map(|f| f.get_ref().clone());
            if let Some(target) = fallback
                && let Some(model) = models.get(&target)
            {
                platform = platform.with_fallback(target, model.clone());
            }
            Arc::new(platform) as Arc<dyn Platform>
        })
        .collect()
}

/// The tools of one platform: its `tools` list, else the system tools for the
/// execution layer and none for the reasoning layer. Names the registry does
/// not have (an optional tool left disabled, MCP tools not connected) are skipped.
pub fn tools_for(name: &str, p: &PlatformConfig, registry: &ToolRegistry) -> Vec<Arc<dyn Tool>> {
    let provider = p.provider.get_ref().as_str();
    let names: Vec<String> = match &p.tools {
        Some(list) => list.get_ref().clone(),
        None if kind_of(name, provider) == PlatformKind::Execution => DEFAULT_SYSTEM_TOOLS
            .iter()
            .map(|s| (*s).to_owned())
            .collect(),
        None => Vec::new(),
    };
    resolve_tools(&names, registry)
}

/// The registry's tools that `patterns` name (exact names or `mcp:server:*`), in list order.
pub fn resolve_tools(patterns: &[String], registry: &ToolRegistry) -> Vec<Arc<dyn Tool>> {
    let mut tools: Vec<Arc<dyn Tool>> = Vec::new();
    for pattern in patterns {
        for name in registry.names() {
            let taken = tools.iter().any(|t| t.spec().name == name);
            if !taken && hybrid_tools::mcp::tool_pattern_matches(pattern, &name) {
                tools.extend(registry.get(&name));
            }
        }
    }
    tools
}

fn kind_of(name: &str, provider: &str) -> PlatformKind {
    match name {
        router::OPENAI => PlatformKind::Reasoning,
        router::CLAUDE => PlatformKind::Execution,
        _ if provider == "anthropic" => PlatformKind::Execution,
        _ => PlatformKind::Reasoning,
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
    let kind = kind_of(name, provider);
    let mut transport = TransportConfig::default();
    if let Some(t) = &p.timeout_secs {
        transport.request_timeout = Duration::from_secs(*t.get_ref());
    }
    if let Some(a) = &p.max_attempts {
        transport.retry.max_attempts = *a.get_ref();
    }
    // With somewhere else to go, a 429 is not waited out.
    transport.retry.retry_rate_limited = p.fallback.is_none();
    let model = match build_model(name, provider, p, prices, transport, env) {
        Ok(m) => LlmPlatform::new(name, kind, m),
        Err(e) => LlmPlatform::unavailable(name, kind, e),
    };
    #[allow(clippy::cast_possible_truncation)]
    let temperature = p.temperature.as_ref().map(|t| *t.get_ref() as f32);
    model
        .with_max_turns(
            p.max_turns
                .unwrap_or(hybrid_agents::agent::DEFAULT_MAX_TURNS),
        )
        .with_instructions(p.instructions.clone())
        .with_streaming(p.stream.unwrap_or(true))
        .with_max_tokens(p.max_tokens)
        .with_temperature(temperature)
}

/// Where a provider's settings default from.
struct ProviderDefaults {
    key_var: &'static str,
    base_url_var: &'static str,
    base_url: &'static str,
    model: &'static str,
}

const ANTHROPIC: ProviderDefaults = ProviderDefaults {
    key_var: AnthropicConfig::API_KEY_VAR,
    base_url_var: AnthropicConfig::BASE_URL_VAR,
    base_url: AnthropicConfig::DEFAULT_BASE_URL,
    model: DEFAULT_ANTHROPIC_MODEL,
};

const OPENAI: ProviderDefaults = ProviderDefaults {
    key_var: OpenAiConfig::API_KEY_VAR,
    base_url_var: OpenAiConfig::BASE_URL_VAR,
    base_url: OpenAiConfig::DEFAULT_BASE_URL,
    model: DEFAULT_OPENAI_MODEL,
};

fn build_model(
    name: &str,
    provider: &str,
    p: &PlatformConfig,
    prices: Arc<PriceTable>,
    transport: TransportConfig,
    env: EnvLookup<'_>,
) -> Result<Arc<dyn ChatModel>, LlmError> {
    let defaults = if provider == "anthropic" {
        &ANTHROPIC
    } else {
        &OPENAI
    };
    let key_var = p
        .api_key_env
        .clone()
        .unwrap_or_else(|| defaults.key_var.to_owned());
    let api_key = env(&key_var).ok_or_else(|| LlmError::MissingApiKey {
        provider: name.to_owned(),
        env_var: key_var,
    })?;
    let model = p.model.clone().unwrap_or_else(|| defaults.model.to_owned());
    let base_url = p
        .base_url
        .as_ref()
        .map(|u| u.get_ref().clone())
        .or_else(|| env(defaults.base_url_var))
        .unwrap_or_else(|| defaults.base_url.to_owned());
    if provider == "anthropic" {
        let config = AnthropicConfig::new(api_key, model)
            .with_provider_name(name)
            .with_base_url(base_url)
            .with_transport(transport)
            .with_prices(prices);
        Ok(Arc::new(AnthropicClient::new(config)?))
    } else {
        let config = OpenAiConfig::new(api_key, model)
            .with_provider_name(name)
            .with_base_url(base_url)
            .with_transport(transport)
            .with_prices(prices);
        Ok(Arc::new(OpenAiClient::new(config)?))
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn platforms(toml: &str, vars: &[(&str, &str)]) -> Vec<Arc<dyn Platform>> {
        let config = HybridConfig::parse(toml, Path::new("hybrid.toml")).unwrap();
        let env = |k: &str| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_owned())
        };
        build_platforms(&config, &env, Vec::new())
    }

    #[test]
    fn defaults_give_openai_and_claude_with_default_models() {
        let ps = platforms("", &[("OPENAI_API_KEY", "k"), ("ANTHROPIC_API_KEY", "k")]);
        let got: Vec<(&str, Option<&str>)> = ps.iter().map(|p| (p.id(), p.model())).collect();
        assert_eq!(
            got,
            vec![
                ("openai", Some(DEFAULT_OPENAI_MODEL)),
                ("claude", Some(DEFAULT_ANTHROPIC_MODEL))
            ]
        );
    }

    #[test]
    fn a_missing_key_leaves_the_platform_registered_but_unavailable() {
        let ps = platforms("", &[("OPENAI_API_KEY", "k")]);
        assert_eq!(ps.len(), 2);
        assert_eq!(ps[0].model(), Some(DEFAULT_OPENAI_MODEL));
        assert_eq!(ps[1].model(), None, "claude has no ANTHROPIC_API_KEY");
    }

    #[test]
    fn api_key_env_names_another_variable() {
        let toml = "[platforms.gemini]\nprovider = \"openai\"\nmodel = \"gemini-2.5-flash\"\napi_key_env = \"GEMINI_API_KEY\"\n";
        assert_eq!(platforms(toml, &[("OPENAI_API_KEY", "k")])[0].model(), None);
        let ps = platforms(toml, &[("GEMINI_API_KEY", "g")]);
        assert_eq!(
            (ps[0].id(), ps[0].model()),
            ("gemini", Some("gemini-2.5-flash"))
        );
    }

    #[test]
    fn the_execution_layer_gets_system_tools_by_default_and_lists_override() {
        let caps = |ps: &[Arc<dyn Platform>]| -> Vec<(String, bool)> {
            ps.iter()
                .map(|p| (p.id().to_owned(), p.capabilities().system_access))
                .collect()
        };
        let ps = platforms("", &[]);
        assert_eq!(
            caps(&ps),
            vec![("openai".into(), false), ("claude".into(), true)]
        );
        let toml = "[platforms.openai]\nprovider = \"openai\"\ntools = [\"bash\"]\n\n[platforms.claude]\nprovider = \"anthropic\"\ntools = []\n";
        assert_eq!(
            caps(&platforms(toml, &[])),
            vec![("openai".into(), true), ("claude".into(), false)]
        );
    }

    #[test]
    fn agent_sections_override_the_platform_for_their_role() {
        let toml =
            "[agents.executor]\nplatform = \"claude\"\ntools = [\"read_file\"]\nmax_turns = 3\n";
        let ps = platforms(toml, &[("ANTHROPIC_API_KEY", "k")]);
        let dbg = format!("{:?}", ps[1]);
        assert!(dbg.contains("executor"), "{dbg}");
        let e = HybridConfig::parse(
            "[agents.x]\nplatform = \"claude\"\ntools = [\"rm\"]\n",
            Path::new("hybrid.toml"),
        )
        .unwrap_err();
        assert_eq!(e.key, "agents.x.tools", "{e}");
    }

    #[test]
    fn tool_names_are_checked() {
        assert!(is_known_tool_name("bash") && is_known_tool_name("mcp:github:*"));
        assert!(
            !is_known_tool_name("bsh")
                && !is_known_tool_name("mcp:github")
                && !is_known_tool_name("mcp::x")
        );
        let e = HybridConfig::parse(
            "[platforms.claude]\nprovider = \"anthropic\"\ntools = [\"bash\", \"rm\"]\n",
            Path::new("hybrid.toml"),
        )
        .unwrap_err();
        assert_eq!(
            (e.line, e.key.as_str()),
            (Some(3), "platforms.claude.tools"),
            "{e}"
        );
        assert!(e.message.contains("unknown tool `rm`"), "{e}");
    }

    #[test]
    fn configured_prices_override_the_builtin_table() {
        let toml = "[prices.\"smollm2-135m-instruct\"]\ninput = 1.0\noutput = 2.0\n";
        let config = HybridConfig::parse(toml, Path::new("hybrid.toml")).unwrap();
        let usage = hybrid_core::Usage {
            input_tokens: 1_000_000,
            output_tokens: 1_000_000,
            ..Default::default()
        };
        let table = price_table(&config);
        assert_eq!(
            table.cost("smollm2-135m-instruct", &usage),
            Some(hybrid_core::usd(3.0))
        );
        assert_eq!(table.cost("some-unknown-model", &usage), None);
    }
}
