//! [`TestPlatform`]: the platform most platform tests need, built on one
//! [`MockLlmServer`]: `openai` (the reasoning layer, `gpt-4o`) and `claude`
//! (the execution layer, `claude-sonnet-4-5`), neither retrying, on an
//! in-memory store. (Enabled by this crate's `platform` feature.)
//!
//! | setter | what |
//! | --- | --- |
//! | [`claude_tools`](TestPlatform::claude_tools) | the built-in tools `claude`'s agents get (default: none) |
//! | [`notify_to`](TestPlatform::notify_to) | workflow `tool` stages may call `notify`, posting to a URL (a [`WebhookRecorder`](crate::WebhookRecorder)) |
//! | [`builder`](TestPlatform::builder) | the builder, for guardrails, budgets, a store of your own … |

use std::sync::Arc;

use hybrid_llm::{
    AnthropicClient, AnthropicConfig, LlmError, OpenAiClient, OpenAiConfig, RetryPolicy,
    TransportConfig,
};
use hybrid_platform::roles::PlatformKind;
use hybrid_platform::{HybridPlatform, HybridPlatformBuilder, LlmPlatform, PlatformError};
use hybrid_tools::{NotifyConfig, ToolRegistry, ToolsConfig};

use crate::MockLlmServer;

/// A transport that does not retry: a scripted fault reaches the test at once.
pub fn no_retries() -> TransportConfig {
    TransportConfig {
        retry: RetryPolicy::none(),
        ..TransportConfig::default()
    }
}

/// Builds the two-layer platform on a mock; see the [module docs](self).
#[derive(Debug)]
pub struct TestPlatform<'a> {
    mock: &'a MockLlmServer,
    claude_tools: Vec<String>,
    notify_url: Option<String>,
}

impl<'a> TestPlatform<'a> {
    /// `openai` and `claude` on `mock`, `claude` without tools.
    pub fn on(mock: &'a MockLlmServer) -> Self {
        TestPlatform {
            mock,
            claude_tools: Vec::new(),
            notify_url: None,
        }
    }

    /// Gives `claude`'s agents these built-in tools (`bash`, `read_file`, …).
    pub fn claude_tools(mut self, names: &[&str]) -> Self {
        self.claude_tools = names.iter().map(|n| (*n).to_owned()).collect();
        self
    }

    /// Lets workflow stages call `notify`, posting to `url`.
    pub fn notify_to(mut self, url: impl Into<String>) -> Self {
        self.notify_url = Some(url.into());
        self
    }

    /// The builder with both platforms and the tools registered.
    pub fn builder(self) -> Result<HybridPlatformBuilder, LlmError> {
        let openai = OpenAiClient::new(
            OpenAiConfig::new("sk-test", "gpt-4o")
                .with_base_url(self.mock.openai_base_url())
                .with_transport(no_retries()),
        )?;
        let claude = AnthropicClient::new(
            AnthropicConfig::new("sk-ant-test", "claude-sonnet-4-5")
                .with_base_url(self.mock.anthropic_base_url())
                .with_transport(no_retries()),
        )?;
        let builtin = ToolRegistry::builtin(&ToolsConfig::default());
        let claude_tools = self
            .claude_tools
            .iter()
            .filter_map(|name| builtin.get(name))
            .collect();
        let workflow_tools = ToolRegistry::builtin(&ToolsConfig {
            notify: self.notify_url.map(|webhook_url| NotifyConfig {
                webhook_url,
                headers: Vec::new(),
            }),
            ..ToolsConfig::default()
        });
        Ok(HybridPlatform::builder()
            .platform(Arc::new(LlmPlatform::new(
                "openai",
                PlatformKind::Reasoning,
                Arc::new(openai),
            )))
            .platform(Arc::new(
                LlmPlatform::new("claude", PlatformKind::Execution, Arc::new(claude))
                    .with_tools(claude_tools),
            ))
            .tools(workflow_tools))
    }

    /// The platform.
    pub async fn build(self) -> Result<HybridPlatform, PlatformError> {
        self.builder()?.build().await
    }
}
