//! Quickstart: from the environment to a result. The platform is the one `hybrid` builds
//! (providers from `OPENAI_API_KEY` / `ANTHROPIC_API_KEY`, tasks in `.hybrid/hybrid.db` or
//! `HYBRID_DATABASE_URL`); the router picks the layer.
//!
//! ```sh
//! OPENAI_API_KEY=… cargo run -p hybrid-examples --example quickstart
//! ```

use hybrid_core::Task;
use hybrid_platform::{HybridPlatform, PlatformError};

#[allow(clippy::print_stdout)] // printing the result is what the example is for.
#[tokio::main]
pub async fn main() -> Result<(), PlatformError> {
    let platform = HybridPlatform::from_env().await?;
    let task = Task::new("Explain quantum computing in two sentences.");
    let result = platform.run(task).await?;
    println!(
        "{} ({}): {}",
        result.platform, result.route.rule, result.output
    );
    Ok(())
}
