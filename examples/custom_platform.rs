//! A third platform: Google Gemini through its OpenAI-compatible endpoint,
//! registered beside the built-in ones with `register_platform` (the seed's
//! `platform.register_platform("gemini", GeminiIntegration())`).
//!
//! ```sh
//! GEMINI_API_KEY=… cargo run -p hybrid-examples --example custom_platform -- "Explain quantum computing"
//! ```
//!
//! `GEMINI_BASE_URL` points it elsewhere (the tests point it at the mock server).
//! The same platform can be declared without code in `hybrid.toml`:
//!
//! ```toml
//! [platforms.gemini]
//! provider = "openai"
//! model = "gemini-2.5-flash"
//! base_url = "https://generativelanguage.googleapis.com/v1beta/openai"
//! api_key_env = "GEMINI_API_KEY"
//! ```

use std::sync::Arc;

use hybrid_core::{Task, TaskResult};
use hybrid_llm::{OpenAiClient, OpenAiConfig};
use hybrid_platform::roles::PlatformKind;
use hybrid_platform::{HybridPlatform, LlmPlatform, PlatformError, RunOptions};

/// Gemini's OpenAI-compatible endpoint.
pub const GEMINI_OPENAI_ENDPOINT: &str = "https://generativelanguage.googleapis.com/v1beta/openai";

/// Builds the Gemini platform from `GEMINI_API_KEY` / `GEMINI_BASE_URL` (read via `env`).
pub fn gemini_platform(env: impl Fn(&str) -> Option<String>) -> Result<LlmPlatform, PlatformError> {
    let key = env("GEMINI_API_KEY").ok_or_else(|| hybrid_llm::LlmError::MissingApiKey {
        provider: "gemini".into(),
        env_var: "GEMINI_API_KEY".into(),
    })?;
    let config = OpenAiConfig::new(key, "gemini-2.5-flash")
        .with_provider_name("gemini")
        .with_base_url(env("GEMINI_BASE_URL").unwrap_or_else(|| GEMINI_OPENAI_ENDPOINT.into()));
    let client = OpenAiClient::new(config)?;
    Ok(LlmPlatform::new(
        "gemini",
        PlatformKind::Reasoning,
        Arc::new(client),
    ))
}

/// Registers Gemini on a platform with an in-memory store and runs `description` on it.
pub async fn run_on_gemini(
    description: &str,
    env: impl Fn(&str) -> Option<String>,
) -> Result<(HybridPlatform, TaskResult), PlatformError> {
    let platform = HybridPlatform::builder().build().await?;
    platform.register_platform(Arc::new(gemini_platform(env)?));
    let options = RunOptions {
        platform: Some("gemini".into()),
        ..RunOptions::default()
    };
    let result = platform.run_with(Task::new(description), options).await?;
    Ok((platform, result))
}

#[allow(dead_code)] // `main` is unused when the tests include this file.
#[allow(clippy::print_stdout)] // printing the result is what the example is for.
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let description = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "Explain quantum computing".into());
    let (platform, result) = run_on_gemini(&description, |k| std::env::var(k).ok()).await?;
    println!("{}", serde_json::to_string_pretty(&result)?);
    println!(
        "{}",
        serde_json::to_string_pretty(&platform.get_metrics().await?)?
    );
    Ok(())
}
