//! [`HybridPlatformBuilder`]: assembles a [`HybridPlatform`].

use std::sync::Arc;

use arc_swap::ArcSwap;
use hybrid_guard::{CommandPolicy, Guardrail, GuardrailEngine, RateLimits};
use hybrid_secrets::Redactor;
use hybrid_store::Store;
use hybrid_tools::ToolRegistry;

use super::facade::HybridPlatform;
use super::router::{DefaultRouter, Router};
use crate::PlatformError;
use crate::limits::Budgets;
use crate::platform::{Platform, PlatformRegistry};
use crate::services::{CustomAgents, Services};
use crate::workflow::cache::StageCache;

/// Builds a [`HybridPlatform`].
#[derive(Debug, Default)]
pub struct HybridPlatformBuilder {
    store: Option<Arc<dyn Store>>,
    router: Option<Arc<dyn Router>>,
    platforms: PlatformRegistry,
    policy: Option<CommandPolicy>,
    secrets: Vec<String>,
    guardrails: GuardrailEngine,
    budgets: Budgets,
    rates: Option<RateLimits>,
    tools: Option<ToolRegistry>,
}

impl HybridPlatformBuilder {
    /// Where tasks and events are kept (default: a private in-memory database).
    pub fn store(mut self, store: Arc<dyn Store>) -> Self {
        self.store = Some(store);
        self
    }

    /// Replaces the default router.
    pub fn router(mut self, router: Arc<dyn Router>) -> Self {
        self.router = Some(router);
        self
    }

    /// The command policy every tool call passes (default: the seed's).
    pub fn policy(mut self, policy: CommandPolicy) -> Self {
        self.policy = Some(policy);
        self
    }

    /// Values redacted from every audit record besides the built-in secret
    /// patterns: the configured API keys' values.
    pub fn secrets(mut self, secrets: Vec<String>) -> Self {
        self.secrets = secrets;
        self
    }

    /// Adds a guardrail.
    pub fn guardrail(mut self, guardrail: Guardrail) -> Self {
        self.guardrails.add_guardrail(guardrail);
        self
    }

    /// Spending limits every model call is held to (default: none).
    pub fn budgets(mut self, budgets: Budgets) -> Self {
        self.budgets = budgets;
        self
    }

    /// Rate limits for model calls (platform, agent, submitter) and tool
    /// calls (tool) (default: none).
    pub fn rate_limits(mut self, rates: RateLimits) -> Self {
        self.rates = Some(rates);
        self
    }

    /// The tools workflow `tool` and `runbook` stages may call (default: the
    /// built-in tools with the default `[tools]` settings).
    pub fn tools(mut self, tools: ToolRegistry) -> Self {
        self.tools = Some(tools);
        self
    }

    /// Adds a platform.
    pub fn platform(mut self, platform: Arc<dyn Platform>) -> Self {
        self.platforms.insert(platform);
        self
    }

    /// Finishes. Without a [`store`](Self::store), tasks are kept in a
    /// private in-memory SQLite database that goes with the platform; every
    /// store is written through the platform's redactor.
    pub async fn build(self) -> Result<HybridPlatform, PlatformError> {
        let redactor = Redactor::new(self.secrets);
        let store = match self.store {
            Some(store) => store,
            None => hybrid_store::connect_redacted("sqlite::memory:", redactor.clone()).await?,
        };
        let services =
            Services {
                store,
                router: self
                    .router
                    .unwrap_or_else(|| Arc::new(DefaultRouter::default())),
                platforms: ArcSwap::from_pointee(self.platforms),
                policy: Arc::new(self.policy.unwrap_or_else(CommandPolicy::seed_default)),
                redactor,
                guardrails: ArcSwap::from_pointee(self.guardrails),
                budgets: self.budgets,
                rates: self.rates.map(Arc::new),
                tools: Arc::new(self.tools.unwrap_or_else(|| {
                    ToolRegistry::builtin(&hybrid_tools::ToolsConfig::default())
                })),
                custom_agents: ArcSwap::from_pointee(CustomAgents::default()),
                stage_cache: StageCache::default(),
            };
        Ok(HybridPlatform {
            services: Arc::new(services),
        })
    }
}
