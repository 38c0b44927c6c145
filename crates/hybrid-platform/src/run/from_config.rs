//! The platform `hybrid` builds from `hybrid.toml` and the environment, for
//! programs that embed it: [`HybridPlatform::from_config`],
//! [`HybridPlatform::from_env`] and, to change a piece before building,
//! [`HybridPlatformBuilder::from_config`].
//!
//! | piece | from |
//! | --- | --- |
//! | platforms | `[platforms.*]` (default: `openai` and `claude`); keys and base URLs from `OPENAI_*` / `ANTHROPIC_*` / `api_key_env` |
//! | router | its default platform from `[router]` |
//! | command policy | `[policy]` over the seed's lists |
//! | guardrails, budgets, rate limits | `[[guardrails]]`, `[budgets]`, `[rate_limits]` |
//! | tools | `[tools]`, and the tools of the `[mcp.servers.*]` a platform's `tools` names (connected now) |
//! | redaction | the built-in patterns and the values of every key the configuration reads |
//! | store | `HYBRID_DATABASE_URL`, else `sqlite://.hybrid/hybrid.db` under the current directory (the builder's default is in-memory) |
//!
//! ```no_run
//! # async fn demo() -> Result<(), hybrid_platform::PlatformError> {
//! use hybrid_core::Task;
//! let platform = hybrid_platform::HybridPlatform::from_env().await?;
//! let result = platform.run(Task::new("Explain quantum computing")).await?;
//! println!("{}", result.output);
//! # Ok(()) }
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;

use hybrid_secrets::Redactor;

use super::builder::HybridPlatformBuilder;
use super::facade::HybridPlatform;
use super::router::DefaultRouter;
use crate::config::{ConfigError, HybridConfig};
use crate::providers::{self, EnvLookup, process_env};
use crate::{PlatformError, mcp_servers};

/// The variable naming the database, as for `hybrid --db`.
pub const DATABASE_URL_ENV: &str = "HYBRID_DATABASE_URL";

/// The embedded default database, relative to the current directory.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://.hybrid/hybrid.db";

/// The database `hybrid` uses without `--db`: `HYBRID_DATABASE_URL`, else
/// [`DEFAULT_DATABASE_URL`].
pub fn database_url(env: EnvLookup<'_>) -> String {
    env(DATABASE_URL_ENV).unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned())
}

impl HybridConfig {
    /// The values of every API key the configuration reads (`OPENAI_API_KEY`,
    /// `ANTHROPIC_API_KEY`, each platform's `api_key_env`), to redact
    /// wherever they would show.
    pub fn secret_values(&self, env: EnvLookup<'_>) -> Vec<String> {
        let mut vars = vec!["OPENAI_API_KEY".to_owned(), "ANTHROPIC_API_KEY".to_owned()];
        vars.extend(
            self.effective_platforms()
                .values()
                .filter_map(|p| p.api_key_env.clone()),
        );
        vars.iter().filter_map(|v| env(v)).collect()
    }

    /// A redactor with the built-in patterns and [`secret_values`](Self::secret_values).
    pub fn redactor(&self, env: EnvLookup<'_>) -> Redactor {
        Redactor::new(self.secret_values(env))
    }
}

impl HybridPlatformBuilder {
    /// A builder with everything `config` sets (see the [module docs](self)),
    /// keys looked up with `env`; MCP servers the platforms use are connected
    /// now. The store is left to [`store`](Self::store) (default: in-memory).
    pub async fn from_config(
        config: &HybridConfig,
        env: EnvLookup<'_>,
    ) -> Result<Self, PlatformError> {
        let mut builder = HybridPlatformBuilder::default()
            .policy(config.command_policy()?)
            .secrets(config.secret_values(env))
            .budgets(config.budgets())
            .router(Arc::new(DefaultRouter::with_default(
                config.default_platform(),
            )));
        if let Some(rates) = config.rate_limits()? {
            builder = builder.rate_limits(rates);
        }
        let guardrails = config
            .guardrails()
            .map_err(|(_, key, message)| ConfigError {
                file: PathBuf::from("hybrid.toml"),
                line: None,
                key,
                message,
            })?;
        for guardrail in guardrails {
            builder = builder.guardrail(guardrail);
        }
        let mcp_tools = mcp_servers::connect_used_servers(config).await?;
        let mut tools = hybrid_tools::ToolRegistry::builtin(&config.tools);
        for tool in &mcp_tools {
            tools.register(tool.clone());
        }
        builder = builder.tools(tools);
        for platform in providers::build_platforms(config, env, mcp_tools) {
            builder = builder.platform(platform);
        }
        Ok(builder)
    }
}

impl HybridPlatform {
    /// The platform `hybrid` builds from the configuration file at `path`
    /// and the environment (see the [module docs](self)).
    pub async fn from_config(path: impl AsRef<Path>) -> Result<HybridPlatform, PlatformError> {
        let config = HybridConfig::load(path.as_ref())?;
        Self::from_config_and_env(&config, &process_env).await
    }

    /// The platform `hybrid` builds with no configuration file: the
    /// defaults, providers and the store from the environment.
    pub async fn from_env() -> Result<HybridPlatform, PlatformError> {
        Self::from_config_and_env(&HybridConfig::default(), &process_env).await
    }

    /// [`from_config`](Self::from_config) for a parsed configuration and an
    /// environment of your own (tests, or keys from a vault).
    pub async fn from_config_and_env(
        config: &HybridConfig,
        env: EnvLookup<'_>,
    ) -> Result<HybridPlatform, PlatformError> {
        let store =
            hybrid_store::connect_redacted(&database_url(env), config.redactor(env)).await?;
        HybridPlatformBuilder::from_config(config, env)
            .await?
            .store(store)
            .build()
            .await
    }
}
