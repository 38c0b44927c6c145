//! What every command needs: the configuration, the store, the platform.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use hybrid_platform::run::from_config::database_url;
use hybrid_platform::{HybridConfig, HybridPlatform, HybridPlatformBuilder, process_env};
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
            .unwrap_or_else(|| database_url(&process_env))
    }

    /// Opens the store (creating and migrating it if needed); whatever is
    /// written to it is redacted, the provider keys' values included.
    pub async fn open_store(&self) -> Result<Arc<dyn Store>, Failure> {
        self.open_store_redacted(HybridConfig::default().redactor(&process_env))
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

    /// The platform with everything the configuration sets, on the store of
    /// `--db` (the same one `HybridPlatform::from_config` builds).
    pub async fn platform(&self, config: &HybridConfig) -> Result<HybridPlatform, Failure> {
        let store = self
            .open_store_redacted(config.redactor(&process_env))
            .await?;
        Ok(HybridPlatformBuilder::from_config(config, &process_env)
            .await?
            .store(store)
            .build()
            .await?)
    }
}
