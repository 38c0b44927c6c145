//! `hybrid.toml`: the platform's configuration, validated on load.
//!
//! Every key is checked: an unknown key, a wrong type or an impossible value is
//! a [`ConfigError`] that names the file, the line and the key. API keys never
//! come from this file, only from the environment (`OPENAI_API_KEY`,
//! `ANTHROPIC_API_KEY`, or the variable a platform names in `api_key_env`).
//!
//! | section | what it sets |
//! | --- | --- |
//! | `[router]` | `default_platform` for tasks no rule covers |
//! | `[platforms.NAME]` | `provider` (`openai`, `anthropic`), `model`, `base_url`, `api_key_env`, `max_tokens`, `temperature`, `stream`, `timeout_secs`, `max_attempts`, `tools`, `max_turns`, `instructions` |
//! | `[tools]` | `http_request = true` enables that tool; `[tools.notify] webhook_url` enables `notify`; `allow_network = true` lets commands use the network |
//! | `[agents.NAME]` | `platform`, `role`, `instructions`, `tools`, `max_turns`: when the role NAME (or `role`) runs on that platform, these replace the platform's |
//! | `[prices.MODEL]` | `input`, `output`, `cache_read`, `cache_write` in USD per million tokens |
//! | `[policy]` | the command policy's `allow`, `deny`, `approve` lists and `default` |
//! | `[[guardrails]]` | `name`, `kind`, `layer`, `when` (CEL), `message`, `hold_output` |
//! | `[budgets]`, `[rate_limits]` | spending and call-rate limits (see [`crate::limits::config`]) |
//! | `[platforms.NAME] fallback` | the platform that takes the calls when this one's provider answers 429 |
//! | `[mcp.servers.NAME]` | `command` + `args` + `env` (stdio) or `url` (streamable HTTP) |
//!
//! With no file, [`HybridConfig::default`] gives two platforms: `openai`
//! (provider `openai`) and `claude` (provider `anthropic`).

use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use serde::Deserialize;
use toml::Spanned;

pub use crate::limits::config::{BudgetsConfig, RateLimitsConfig, RateRuleConfig};

/// The default model of the `openai` platform.
pub const DEFAULT_OPENAI_MODEL: &str = "gpt-4.1-mini";
/// The default model of the `claude` platform.
pub const DEFAULT_ANTHROPIC_MODEL: &str = "claude-sonnet-4-5";

/// A configuration file that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{}: {key}: {message}", .file.display(), .line.map(|l| format!(":{l}")).unwrap_or_default())]
pub struct ConfigError {
    /// The file.
    pub file: PathBuf,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// Dotted key path (`platforms.openai.model`), or `-` for the whole file.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

/// The whole file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HybridConfig {
    /// Routing settings.
    #[serde(default)]
    pub router: RouterConfig,
    /// Platforms by name.
    #[serde(default)]
    pub platforms: IndexMap<String, PlatformConfig>,
    /// Agents by name.
    #[serde(default)]
    pub agents: IndexMap<String, AgentConfig>,
    /// Price overrides by model id (or id prefix).
    #[serde(default)]
    pub prices: IndexMap<String, PriceConfig>,
    /// The command policy.
    #[serde(default)]
    pub policy: Option<PolicyConfig>,
    /// Declarative guardrails.
    #[serde(default)]
    pub guardrails: Vec<GuardrailConfig>,
    /// Spending limits.
    #[serde(default)]
    pub budgets: Option<BudgetsConfig>,
    /// Call-rate limits.
    #[serde(default)]
    pub rate_limits: Option<RateLimitsConfig>,
    /// MCP servers.
    #[serde(default)]
    pub mcp: Option<McpConfig>,
    /// The file this was read from.
    #[serde(skip)]
    pub source: Option<PathBuf>,
    /// Optional tools: `http_request = true`, `[tools.notify] webhook_url = "…"`.
    #[serde(default)]
    pub tools: hybrid_tools::ToolsConfig,
}

/// `[router]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouterConfig {
    /// Where tasks go that no rule covers (default `openai`).
    pub default_platform: Option<Spanned<String>>,
}

/// `[platforms.NAME]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlatformConfig {
    /// Wire protocol: `openai` or `anthropic`.
    pub provider: Spanned<String>,
    /// Model id.
    pub model: Option<String>,
    /// Endpoint; default from `OPENAI_BASE_URL` / `ANTHROPIC_BASE_URL`, else the official one.
    pub base_url: Option<Spanned<String>>,
    /// The environment variable holding the API key (default by provider).
    pub api_key_env: Option<String>,
    /// Output token cap per call.
    pub max_tokens: Option<u32>,
    /// Sampling temperature.
    pub temperature: Option<Spanned<f64>>,
    /// Stream responses (default true).
    pub stream: Option<bool>,
    /// Request timeout in seconds.
    pub timeout_secs: Option<Spanned<u64>>,
    /// Attempts per call including retries.
    pub max_attempts: Option<Spanned<u32>>,
    /// Tools its agents get; default: the system tools for the execution layer
    /// (`claude`, or provider `anthropic`), none for the reasoning layer.
    pub tools: Option<Spanned<Vec<String>>>,
    /// Model turns per run (default 10).
    pub max_turns: Option<u32>,
    /// System prompt for its single-agent runs.
    pub instructions: Option<String>,
    /// Another platform that takes its calls when its provider answers 429.
    pub fallback: Option<Spanned<String>>,
}

/// `[agents.NAME]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// The platform it runs on.
    pub platform: Spanned<String>,
    /// Role preset.
    pub role: Option<String>,
    /// System prompt.
    pub instructions: Option<String>,
    /// Model override.
    pub model: Option<String>,
    /// Tools (default: the platform's).
    pub tools: Option<Spanned<Vec<String>>>,
    /// Turn limit.
    pub max_turns: Option<u32>,
}

/// `[prices.MODEL]`, USD per million tokens.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceConfig {
    /// Input.
    pub input: Spanned<f64>,
    /// Output.
    pub output: Spanned<f64>,
    /// Cache reads (default: input).
    pub cache_read: Option<Spanned<f64>>,
    /// Cache writes (default: input).
    pub cache_write: Option<Spanned<f64>>,
}

/// `[policy]`. A list left out keeps the seed's (so a file that only adds to
/// `allow` still forbids `rm -rf`); `deny = []` empties it on purpose.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// Allowed commands.
    pub allow: Option<Vec<String>>,
    /// Forbidden commands.
    pub deny: Option<Vec<String>>,
    /// Commands that need approval.
    pub approve: Option<Vec<String>>,
    /// What no rule covers: `allow`, `deny` or `approve`.
    pub default: Option<Spanned<String>>,
}

/// `[[guardrails]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuardrailConfig {
    /// Name.
    pub name: String,
    /// validation | block | approval_required | rate_limit | cost_limit.
    pub kind: Spanned<String>,
    /// input | platform | execution | output.
    pub layer: Option<Spanned<String>>,
    /// CEL condition.
    pub when: Option<Spanned<String>>,
    /// Message when it fires.
    pub message: Option<String>,
    /// Output layer only: a streaming run keeps text back until it passes.
    pub hold_output: Option<Spanned<bool>>,
}

/// `[mcp]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpConfig {
    /// Servers by name.
    #[serde(default)]
    pub servers: IndexMap<String, McpServerConfig>,
}

/// `[mcp.servers.NAME]`: `command` (stdio) or `url` (streamable HTTP).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpServerConfig {
    /// Program to start.
    pub command: Option<String>,
    /// Its arguments.
    #[serde(default)]
    pub args: Vec<String>,
    /// Environment for it.
    #[serde(default)]
    pub env: IndexMap<String, String>,
    /// Streamable HTTP endpoint.
    pub url: Option<String>,
}

/// The providers this build speaks.
pub const KNOWN_PROVIDERS: [&str; 2] = ["openai", "anthropic"];

impl HybridConfig {
    /// Reads and validates a file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.to_path_buf(),
            line: None,
            key: "-".into(),
            message: format!("cannot read the file: {e}"),
        })?;
        Self::parse(&text, path)
    }

    /// Parses and validates text; `path` only names the source in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let err_at =
            |span: Option<std::ops::Range<usize>>, key: String, message: String| ConfigError {
                file: path.to_path_buf(),
                line: span.map(|s| line_of(text, s.start)),
                key,
                message,
            };
        let de = toml::Deserializer::new(text);
        let config: HybridConfig = serde_path_to_error::deserialize(de).map_err(|e| {
            let key = e.path().to_string();
            let inner = e.into_inner();
            let key = if key == "." || key.is_empty() {
                "-".to_owned()
            } else {
                key
            };
            err_at(
                inner.span(),
                key,
                inner.message().replace('\n', " ").trim().to_owned(),
            )
        })?;
        config
            .validate()
            .map_err(|(span, key, message)| err_at(Some(span), key, message))?;
        let mut config = config;
        config.source = Some(path.to_path_buf());
        // Compile the policy and the guardrails now, so a rule either cannot
        // understand fails the load, naming the rule.
        config.command_policy()?;
        config
            .guardrails()
            .map_err(|(span, key, message)| err_at(span, key, message))?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), (std::ops::Range<usize>, String, String)> {
        for (name, p) in &self.platforms {
            let provider = p.provider.get_ref();
            if !KNOWN_PROVIDERS.contains(&provider.as_str()) {
                return Err((
                    p.provider.span(),
                    format!("platforms.{name}.provider"),
                    format!("unknown provider `{provider}` (expected one of: openai, anthropic)"),
                ));
            }
            if let Some(url) = &p.base_url {
                let u = url.get_ref();
                if !(u.starts_with("http://") || u.starts_with("https://")) {
                    return Err((
                        url.span(),
                        format!("platforms.{name}.base_url"),
                        format!("`{u}` is not an http:// or https:// URL"),
                    ));
                }
            }
            if let Some(t) = &p.temperature
                && !(0.0..=2.0).contains(t.get_ref())
            {
                return Err((
                    t.span(),
                    format!("platforms.{name}.temperature"),
                    format!("must be between 0 and 2, got {}", t.get_ref()),
                ));
            }
            if let Some(t) = &p.timeout_secs
                && *t.get_ref() == 0
            {
                return Err((
                    t.span(),
                    format!("platforms.{name}.timeout_secs"),
                    "must be at least 1".into(),
                ));
            }
            if let Some(tools) = &p.tools {
                for t in tools.get_ref() {
                    if !crate::providers::is_known_tool_name(t) {
                        return Err((
                            tools.span(),
                            format!("platforms.{name}.tools"),
                            format!(
                                "unknown tool `{t}` (built-in: {}; MCP tools as mcp:SERVER:TOOL or mcp:SERVER:*)",
                                crate::providers::BUILTIN_TOOLS.join(", ")
                            ),
                        ));
                    }
                }
            }
            if let Some(a) = &p.max_attempts
                && *a.get_ref() == 0
            {
                return Err((
                    a.span(),
                    format!("platforms.{name}.max_attempts"),
                    "must be at least 1".into(),
                ));
            }
        }
        let platform_names: Vec<&str> = self.platform_names();
        for (name, a) in &self.agents {
            if let Some(tools) = &a.tools
                && let Some(t) = tools
                    .get_ref()
                    .iter()
                    .find(|t| !crate::providers::is_known_tool_name(t))
            {
                return Err((
                    tools.span(),
                    format!("agents.{name}.tools"),
                    format!(
                        "unknown tool `{t}` (built-in: {})",
                        crate::providers::BUILTIN_TOOLS.join(", ")
                    ),
                ));
            }
            let p = a.platform.get_ref();
            if !platform_names.contains(&p.as_str()) {
                return Err((
                    a.platform.span(),
                    format!("agents.{name}.platform"),
                    format!(
                        "no platform named `{p}` (known: {})",
                        platform_names.join(", ")
                    ),
                ));
            }
        }
        if let Some(d) = &self.router.default_platform {
            let p = d.get_ref();
            if !platform_names.contains(&p.as_str()) {
                return Err((
                    d.span(),
                    "router.default_platform".into(),
                    format!(
                        "no platform named `{p}` (known: {})",
                        platform_names.join(", ")
                    ),
                ));
            }
        }
        for (model, price) in &self.prices {
            let fields = [
                ("input", Some(&price.input)),
                ("output", Some(&price.output)),
                ("cache_read", price.cache_read.as_ref()),
                ("cache_write", price.cache_write.as_ref()),
            ];
            for (field, value) in fields {
                if let Some(v) = value
                    && (!v.get_ref().is_finite() || *v.get_ref() < 0.0)
                {
                    return Err((
                        v.span(),
                        format!("prices.{model}.{field}"),
                        format!("must be a non-negative number, got {}", v.get_ref()),
                    ));
                }
            }
        }
        if let Some(policy) = &self.policy
            && let Some(d) = &policy.default
            && !["allow", "deny", "approve"].contains(&d.get_ref().as_str())
        {
            return Err((
                d.span(),
                "policy.default".into(),
                format!("`{}` is not one of: allow, deny, approve", d.get_ref()),
            ));
        }
        for (i, g) in self.guardrails.iter().enumerate() {
            const KINDS: [&str; 5] = [
                "validation",
                "block",
                "approval_required",
                "rate_limit",
                "cost_limit",
            ];
            if !KINDS.contains(&g.kind.get_ref().as_str()) {
                return Err((
                    g.kind.span(),
                    format!("guardrails[{i}].kind"),
                    format!(
                        "guardrail `{}`: unknown kind `{}` (expected one of: {})",
                        g.name,
                        g.kind.get_ref(),
                        KINDS.join(", ")
                    ),
                ));
            }
            if let Some(layer) = &g.layer {
                const LAYERS: [&str; 4] = ["input", "platform", "execution", "output"];
                if !LAYERS.contains(&layer.get_ref().as_str()) {
                    return Err((
                        layer.span(),
                        format!("guardrails[{i}].layer"),
                        format!(
                            "guardrail `{}`: unknown layer `{}` (expected one of: {})",
                            g.name,
                            layer.get_ref(),
                            LAYERS.join(", ")
                        ),
                    ));
                }
            }
        }
        if let Some(b) = &self.budgets {
            b.validate()?;
        }
        if let Some(r) = &self.rate_limits {
            r.build()?;
        }
        for (name, p) in &self.platforms {
            if let Some(f) = &p.fallback {
                let target = f.get_ref();
                if target == name {
                    return Err((
                        f.span(),
                        format!("platforms.{name}.fallback"),
                        "a platform cannot be its own fallback".into(),
                    ));
                }
                if !platform_names.contains(&target.as_str()) {
                    return Err((
                        f.span(),
                        format!("platforms.{name}.fallback"),
                        format!(
                            "no platform named `{target}` (known: {})",
                            platform_names.join(", ")
                        ),
                    ));
                }
            }
        }
        for (i, g) in self.guardrails.iter().enumerate() {
            if let Some(h) = &g.hold_output
                && *h.get_ref()
                && g.layer.as_ref().map(|l| l.get_ref().as_str()) != Some("output")
            {
                return Err((
                    h.span(),
                    format!("guardrails[{i}].hold_output"),
                    format!(
                        "guardrail `{}`: hold_output only applies at layer = \"output\"",
                        g.name
                    ),
                ));
            }
        }
        if let Some(mcp) = &self.mcp {
            for (name, s) in &mcp.servers {
                if s.command.is_some() == s.url.is_some() {
                    return Err((
                        0..0,
                        format!("mcp.servers.{name}"),
                        "set exactly one of `command` (stdio) or `url` (streamable HTTP)".into(),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Platform names after defaults: the file's, or `openai` and `claude`.
    pub fn platform_names(&self) -> Vec<&str> {
        if self.platforms.is_empty() {
            vec![crate::router::OPENAI, crate::router::CLAUDE]
        } else {
            self.platforms.keys().map(String::as_str).collect()
        }
    }

    /// The platforms to build: the file's, or the two defaults.
    pub fn effective_platforms(&self) -> IndexMap<String, PlatformConfig> {
        if !self.platforms.is_empty() {
            return self.platforms.clone();
        }
        let mut m = IndexMap::new();
        m.insert(
            crate::router::OPENAI.to_owned(),
            PlatformConfig::new("openai"),
        );
        m.insert(
            crate::router::CLAUDE.to_owned(),
            PlatformConfig::new("anthropic"),
        );
        m
    }

    /// The router's default platform.
    pub fn default_platform(&self) -> String {
        self.router
            .default_platform
            .as_ref()
            .map(|s| s.get_ref().clone())
            .unwrap_or_else(|| crate::router::OPENAI.to_owned())
    }
}

impl HybridConfig {
    /// The command policy: `[policy]` over the seed's lists, or the seed's.
    /// A rule the policy cannot understand is an error naming it.
    pub fn command_policy(&self) -> Result<hybrid_guard::CommandPolicy, ConfigError> {
        let Some(p) = &self.policy else {
            return Ok(hybrid_guard::CommandPolicy::seed_default());
        };
        let seed = hybrid_guard::PolicyRules::default();
        let default = match &p.default {
            // Checked on load to be one of allow, deny, approve.
            Some(d) => d
                .get_ref()
                .parse()
                .unwrap_or(hybrid_guard::PolicyVerdict::Approve),
            None => seed.default,
        };
        let rules = hybrid_guard::PolicyRules {
            allow: p.allow.clone().unwrap_or(seed.allow),
            deny: p.deny.clone().unwrap_or(seed.deny),
            approve: p.approve.clone().unwrap_or(seed.approve),
            default,
        };
        hybrid_guard::CommandPolicy::new(rules).map_err(|e| ConfigError {
            file: self
                .source
                .clone()
                .unwrap_or_else(|| PathBuf::from("hybrid.toml")),
            line: None,
            key: "policy".into(),
            message: e.to_string(),
        })
    }
}

impl HybridConfig {
    /// The `[[guardrails]]` rules, compiled (CEL conditions parsed and checked).
    #[allow(clippy::type_complexity)]
    pub fn guardrails(
        &self,
    ) -> Result<Vec<hybrid_guard::Guardrail>, (Option<std::ops::Range<usize>>, String, String)>
    {
        self.guardrails
            .iter()
            .enumerate()
            .map(|(i, g)| {
                let when = g.when.as_ref().map(|w| w.get_ref().as_str());
                hybrid_guard::Guardrail::from_rule(
                    &g.name,
                    g.kind.get_ref(),
                    g.layer.as_ref().map(|l| l.get_ref().as_str()),
                    when,
                    g.message.as_deref(),
                )
                .map_err(|e| {
                    let span = g
                        .when
                        .as_ref()
                        .map(|w| w.span())
                        .unwrap_or_else(|| g.kind.span());
                    (Some(span), format!("guardrails[{i}]"), e.to_string())
                })
                .map(|rule| rule.hold_output(g.hold_output.as_ref().is_some_and(|h| *h.get_ref())))
            })
            .collect()
    }

    /// The `[budgets]` limits (none when the section is absent).
    pub fn budgets(&self) -> crate::Budgets {
        self.budgets
            .as_ref()
            .map(BudgetsConfig::budgets)
            .unwrap_or_default()
    }

    /// The `[rate_limits]` rules, built (none when the section is absent).
    pub fn rate_limits(&self) -> Result<Option<hybrid_guard::RateLimits>, ConfigError> {
        let Some(r) = &self.rate_limits else {
            return Ok(None);
        };
        r.build()
            .map(Some)
            .map_err(|(_, key, message)| ConfigError {
                file: self
                    .source
                    .clone()
                    .unwrap_or_else(|| PathBuf::from("hybrid.toml")),
                line: None,
                key,
                message,
            })
    }
}

impl PlatformConfig {
    /// A platform on `provider` with every other setting defaulted.
    pub fn new(provider: &str) -> Self {
        PlatformConfig {
            provider: Spanned::new(0..0, provider.to_owned()),
            model: None,
            base_url: None,
            api_key_env: None,
            max_tokens: None,
            temperature: None,
            stream: None,
            timeout_secs: None,
            max_attempts: None,
            tools: None,
            max_turns: None,
            instructions: None,
            fallback: None,
        }
    }
}

/// 1-based line of byte offset `pos` in `text`.
fn line_of(text: &str, pos: usize) -> usize {
    text.as_bytes()
        .iter()
        .take(pos)
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<HybridConfig, ConfigError> {
        HybridConfig::parse(text, Path::new("hybrid.toml"))
    }

    #[test]
    fn design_example_parses() {
        let c = parse(
            r#"
[platforms.openai]
provider = "openai"
model = "gpt-4.1-mini"
base_url = "http://127.0.0.1:9/v1"

[platforms.claude]
provider = "anthropic"
model = "claude-sonnet-4-5"
tools = ["bash", "read_file", "grep", "mcp:github:*"]

[agents.coordinator]
platform = "openai"
instructions = "plan"

[policy]
allow   = ["ls", "cat"]
deny    = ["rm -rf"]
approve = ["git push"]
default = "approve"

[[guardrails]]
name    = "cost_limit"
kind    = "block"
layer   = "platform"
when    = "task.estimated_cost > 10.0"
message = "Task exceeds $10 cost limit"

[budgets]
per_task_usd = 5.0
per_day_usd  = 50.0

[mcp.servers.github]
command = "github-mcp"
"#,
        )
        .unwrap();
        assert_eq!(c.platform_names(), vec!["openai", "claude"]);
        assert_eq!(c.guardrails.len(), 1);
    }

    #[test]
    fn budgets_and_rate_limits_parse_and_bad_ones_name_the_key() {
        let c = parse(
            "[budgets]\nper_task_usd = 1.5\nper_platform_usd = 10.0\nper_submitter_usd = 3.0\n\
             [rate_limits]\nmax_wait_secs = 0.5\n\
             [[rate_limits.rules]]\nscope = \"tool:bash\"\nlimit = 5\n\
             [[rate_limits.rules]]\nscope = \"submitter:*\"\nlimit = 100\nper_secs = 3600\nburst = 10\n",
        )
        .unwrap();
        let b = c.budgets();
        assert_eq!(b.per_task, Some(hybrid_core::usd(1.5)));
        assert_eq!(b.per_platform, Some(hybrid_core::usd(10.0)));
        assert_eq!(b.per_submitter, Some(hybrid_core::usd(3.0)));
        assert_eq!(b.per_day, None);
        let rates = c.rate_limits().unwrap().unwrap();
        assert_eq!(rates.rules().count(), 2);
        assert_eq!(rates.max_wait(), std::time::Duration::from_millis(500));

        for (text, want) in [
            (
                "[budgets]\nper_platform_usd = -2.0\n",
                "hybrid.toml:2: budgets.per_platform_usd: must be a non-negative number of dollars, got -2",
            ),
            (
                "[rate_limits]\n[[rate_limits.rules]]\nscope = \"toool:bash\"\nlimit = 5\n",
                "hybrid.toml:3: rate_limits.rules[0].scope: unknown scope kind `toool` (expected one of: platform, agent, tool, submitter)",
            ),
            (
                "[rate_limits]\n[[rate_limits.rules]]\nscope = \"tool:bash\"\nlimit = 0\n",
                "hybrid.toml:4: rate_limits.rules[0]: rate limit tool:bash: count must be at least 1",
            ),
            (
                "[rate_limits]\nmax_wait_secs = -1.0\n",
                "hybrid.toml:2: rate_limits.max_wait_secs: must be a non-negative number of seconds, got -1",
            ),
        ] {
            assert_eq!(parse(text).unwrap_err().to_string(), want);
        }
    }

    #[test]
    fn unknown_key_names_key_and_line() {
        let e = parse("[platforms.openai]\nprovider = \"openai\"\nmodle = \"x\"\n").unwrap_err();
        assert_eq!(e.line, Some(3), "{e}");
        assert!(e.key.contains("platforms.openai"), "{e}");
        assert!(e.message.contains("modle"), "{e}");
        let text = e.to_string();
        assert!(text.starts_with("hybrid.toml:3: "), "{text}");
        assert!(!text.contains('\n'), "{text}");
    }

    #[test]
    fn unknown_top_level_section() {
        let e = parse("\n\n[platfroms.openai]\nprovider = \"openai\"\n").unwrap_err();
        assert_eq!(e.line, Some(3), "{e}");
        assert!(e.message.contains("platfroms"), "{e}");
    }

    #[test]
    fn wrong_type_names_key() {
        let e = parse("[platforms.openai]\nprovider = \"openai\"\nmax_tokens = \"many\"\n")
            .unwrap_err();
        assert_eq!(e.line, Some(3), "{e}");
        assert!(e.key.contains("max_tokens"), "{e}");
    }

    #[test]
    fn semantic_errors_name_key_and_line() {
        let e = parse("[platforms.x]\nprovider = \"gemini\"\n").unwrap_err();
        assert_eq!(
            (e.line, e.key.as_str()),
            (Some(2), "platforms.x.provider"),
            "{e}"
        );
        let e = parse("[agents.a]\nplatform = \"nope\"\n").unwrap_err();
        assert_eq!(
            (e.line, e.key.as_str()),
            (Some(2), "agents.a.platform"),
            "{e}"
        );
        let e = parse("[[guardrails]]\nname = \"g\"\nkind = \"stop\"\n").unwrap_err();
        assert_eq!(
            (e.line, e.key.as_str()),
            (Some(3), "guardrails[0].kind"),
            "{e}"
        );
        let e = parse("[budgets]\nper_day_usd = -1.0\n").unwrap_err();
        assert_eq!(
            (e.line, e.key.as_str()),
            (Some(2), "budgets.per_day_usd"),
            "{e}"
        );
        let e =
            parse("[platforms.o]\nprovider = \"openai\"\nbase_url = \"ftp://x\"\n").unwrap_err();
        assert_eq!(
            (e.line, e.key.as_str()),
            (Some(3), "platforms.o.base_url"),
            "{e}"
        );
    }

    #[test]
    fn policy_lists_left_out_keep_the_seeds() {
        use hybrid_guard::PolicyVerdict as Verdict;
        let c = parse("[policy]\nallow = [\"ls\", \"make\"]\n").unwrap();
        let p = c.command_policy().unwrap();
        assert_eq!(p.check("make build").decision, Verdict::Allow);
        assert_eq!(
            p.check("rm -rf /").decision,
            Verdict::Deny,
            "the seed's deny list stays"
        );
        assert_eq!(p.check("git push").decision, Verdict::Approve);
        let c = parse("[policy]\ndeny = []\ndefault = \"allow\"\n").unwrap();
        assert_eq!(
            c.command_policy().unwrap().check("rm -rf /tmp/x").decision,
            Verdict::Allow
        );
        let e = parse("[policy]\ndeny = [\"ls | sh\"]\n").unwrap_err();
        assert_eq!(e.key, "policy", "{e}");
        assert!(e.to_string().starts_with("hybrid.toml: policy: "), "{e}");
    }

    #[test]
    fn guardrail_rules_compile_on_load_and_errors_name_the_rule() {
        let ok = "[[guardrails]]\nname = \"cost_limit\"\nkind = \"block\"\nlayer = \"platform\"\nwhen = \"task.estimated_cost > 10.0\"\nmessage = \"Task exceeds $10 cost limit\"\n";
        assert_eq!(parse(ok).unwrap().guardrails().unwrap().len(), 1);
        let bad =
            "[[guardrails]]\nname = \"g\"\nkind = \"block\"\nwhen = \"task.nosuchfield > 1\"\n";
        let e = parse(bad).unwrap_err();
        assert_eq!((e.line, e.key.as_str()), (Some(4), "guardrails[0]"), "{e}");
        assert!(e.message.contains("nosuchfield"), "{e}");
        let bad = "[[guardrails]]\nname = \"g\"\nkind = \"block\"\nwhen = \"task.priority >\"\n";
        assert_eq!(parse(bad).unwrap_err().line, Some(4));
    }

    #[test]
    fn syntax_error_has_line() {
        let e = parse("[platforms.openai\n").unwrap_err();
        assert_eq!(e.line, Some(1), "{e}");
        assert!(!e.to_string().contains('\n'));
    }

    #[test]
    fn empty_file_gives_two_default_platforms() {
        let c = parse("").unwrap();
        let p = c.effective_platforms();
        assert_eq!(p["openai"].provider.get_ref(), "openai");
        assert_eq!(p["claude"].provider.get_ref(), "anthropic");
        assert_eq!(c.default_platform(), "openai");
    }
}
