//! Streaming: every event of a run as it happens — the route, status changes, stage
//! boundaries, text deltas, tool calls, approvals — the result last (the seed's
//! `platform.run_streaming(task)`). Every event is redacted before it reaches you.
//!
//! ```sh
//! OPENAI_API_KEY=… cargo run -p hybrid-examples --example streaming -- "Explain quantum computing"
//! ```

use std::io::Write;

use futures::StreamExt;
use hybrid_core::{EventKind, Task, TaskResult};
use hybrid_platform::{HybridPlatform, RunOptions};

/// Runs `description`, writing streamed text to `out` as it arrives; the result.
pub async fn stream_to(
    platform: &HybridPlatform,
    description: &str,
    out: &mut impl Write,
) -> std::io::Result<Option<TaskResult>> {
    let mut events =
        Box::pin(platform.run_streaming(Task::new(description), RunOptions::default()));
    while let Some(event) = events.next().await {
        match event.kind {
            EventKind::Routed { route } => writeln!(out, "→ {} ({})", route.platform, route.rule)?,
            EventKind::TextDelta { text, .. } => write!(out, "{text}")?,
            EventKind::ToolCall { name, .. } => writeln!(out, "\n⚙ {name}")?,
            EventKind::Warning { message } => writeln!(out, "\n! {message}")?,
            EventKind::Finished { result } => {
                writeln!(out, "\n✓ {} in {} ms", result.status, result.duration_ms)?;
                return Ok(Some(*result));
            }
            _ => {}
        }
        out.flush()?;
    }
    Ok(None)
}

#[allow(dead_code)] // `main` is unused when the tests include this file.
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let description = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "Explain quantum computing".into());
    let platform = HybridPlatform::from_env().await?;
    stream_to(&platform, &description, &mut std::io::stdout()).await?;
    Ok(())
}
