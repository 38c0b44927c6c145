//! What every command needs: the configuration, the store, the platform.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use hybrid_platform::providers::{self, process_env};
use hybrid_platform::{DefaultRouter, HybridConfig, HybridPlatform};
use hybrid_secrets::Redactor;
use hybrid_store::Store;

use crate::exit_code;
use crate::failure::Failure;

/// The global flags.
#[derive(Debug, Clone)]
pub struct Global {
    /// `--config`.
    pub config: Option<PathBuf>,
    /// `--db`.
    pub db: Option<String>,
    /// `--json`.
    pub json: bool,
}

impl Global {
    /// The configuration: `--config FILE`, else `./hybrid.toml` if present, else defaults.
    pub fn load_config(&self) -> Result<HybridConfig, Failure> {
        match &self.config {
            Some(path) => {
                if !path.is_file() {
                    return Err(Failure::new(
                        exit_code::CONFIG,
                        format!("--config: no such file: {}", path.display()),
                    ));
                }
                Ok(HybridConfig::load(path)?)
            }
            None => {
                let default = Path::new("hybrid.toml");
                if default.is_file() {
                    Ok(HybridConfig::load(default)?)
                } else {
                    Ok(HybridConfig::default())
                }
            }
        }
    }

    /// The database URL: `--db`, else `HYBRID_DATABASE_URL`, else the embedded default.
    pub fn db_url(&self) -> String {
        self.db
            .clone()
            .or_else(|| process_env("HYBRID_DATABASE_URL"))
            .unwrap_or_else(|| "sqlite://.hybrid/hybrid.db".to_owned())
    }

    /// Opens the store (creating and migrating it if needed); whatever is
    /// written to it is redacted, the provider keys' values included.
    pub async fn open_store(&self) -> Result<Arc<dyn Store>, Failure> {
        self.open_store_redacted(Redactor::new(secret_values(&HybridConfig::default())))
            .await
    }

    async fn open_store_redacted(&self, redactor: Redactor) -> Result<Arc<dyn Store>, Failure> {
        let url = self.db_url();
        hybrid_store::connect_redacted(&url, redactor)
            .await
            .map_err(|e| {
                Failure::new(
                    exit_code::STORE,
                    format!("database {}: {e}", Redactor::default().redact(&url)),
                )
            })
    }

    /// The platform with every configured provider registered.
    pub async fn platform(&self, config: &HybridConfig) -> Result<HybridPlatform, Failure> {
        let store = self
            .open_store_redacted(Redactor::new(secret_values(config)))
            .await?;
        let policy = config.command_policy()?;
        let mut builder = HybridPlatform::builder()
            .store(store)
            .policy(policy)
            .secrets(secret_values(config))
            .budgets(config.budgets())
            .router(Arc::new(DefaultRouter::with_default(
                config.default_platform(),
            )));
        if let Some(rates) = config.rate_limits()? {
            builder = builder.rate_limits(rates);
        }
        let mcp_tools = hybrid_platform::mcp_servers::connect_used_servers(config)
            .await
            .map_err(|e| Failure::new(exit_code::UNAVAILABLE, e.to_string()))?;
        let guardrails = config.guardrails().map_err(|(_, key, message)| {
            Failure::new(exit_code::CONFIG, format!("{key}: {message}"))
        })?;
        for g in guardrails {
            builder = builder.guardrail(g);
        }
        let mut tools = hybrid_tools::ToolRegistry::builtin(&config.tools);
        for t in &mcp_tools {
            tools.register(t.clone());
        }
        builder = builder.tools(tools);
        for p in providers::build_platforms_with(config, &process_env, mcp_tools) {
            builder = builder.platform(p);
        }
        Ok(builder.build().await?)
    }
}

/// The values of every API key the configuration reads, to redact from the audit trail.
fn secret_values(config: &HybridConfig) -> Vec<String> {
    let mut vars = vec!["OPENAI_API_KEY".to_owned(), "ANTHROPIC_API_KEY".to_owned()];
    vars.extend(
        config
            .effective_platforms()
            .values()
            .filter_map(|p| p.api_key_env.clone()),
    );
    vars.iter().filter_map(|v| process_env(v)).collect()
}
