//! A custom agent: Rust code registered with `register_agent` and used from a
//! workflow stage like a built-in role (the seed's `CustomAgent.handle`).
//!
//! ```sh
//! cargo run -p hybrid-examples --example custom_agent
//! ```
//!
//! The agent here is deterministic: it triages an alert by its severity
//! keywords, with no model. The workflow runs a runbook (no model either),
//! hands its output to the agent, and checks the agent's decision — so the
//! whole example runs offline.

use async_trait::async_trait;
use hybrid_core::{Task, TaskResult};
use hybrid_platform::{AgentInput, CustomAgent, CustomAgentError, HybridPlatform, RunOptions};

/// Triage by keywords: `page` for outages, `ticket` for the rest.
#[derive(Debug, Clone, Copy)]
pub struct Triage;

#[async_trait]
impl CustomAgent for Triage {
    async fn handle(&self, input: AgentInput<'_>) -> Result<String, CustomAgentError> {
        let text = input.prompt.to_ascii_lowercase();
        let decision = if ["outage", "down", "503"].iter().any(|w| text.contains(w)) {
            "page"
        } else {
            "ticket"
        };
        Ok(format!("{{\"action\": \"{decision}\"}}"))
    }
}

/// The workflow: read the alert, triage it with the custom agent, check.
pub const TRIAGE_WORKFLOW: &str = r#"
name: triage
stages:
  - id: read_alert
    runbook:
      commands: ["cat alert.txt"]
  - id: triage
    agent: triage
    output: json
    prompt: "Alert: {{ stages.read_alert.output }}"
  - id: decided
    check:
      - { name: has_action, expect: "stages.triage.json.action in ['page', 'ticket']", message: "no decision" }
"#;

/// Writes the alert and the workflow into `dir`, registers the agent and runs.
pub async fn triage(
    dir: &std::path::Path,
    alert: &str,
) -> Result<TaskResult, Box<dyn std::error::Error + Send + Sync>> {
    std::fs::write(dir.join("alert.txt"), alert)?;
    let file = dir.join("triage.yaml");
    std::fs::write(&file, TRIAGE_WORKFLOW)?;
    // No store given: the builder keeps tasks in memory.
    let platform = HybridPlatform::builder().build().await?;
    platform.register_agent("triage", Triage);
    let task = Task::new("Triage the alert").with_workflow(file.display().to_string());
    let options = RunOptions {
        workdir: Some(dir.to_path_buf()),
        ..RunOptions::default()
    };
    Ok(platform.run_with(task, options).await?)
}

#[allow(dead_code)] // `main` is unused when the tests include this file.
#[allow(clippy::print_stdout)] // printing the result is what the example is for.
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let dir = std::env::temp_dir().join(format!("hybrid-triage-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = triage(&dir, "checkout-api is down: 503 on every request").await?;
    println!("{}", serde_json::to_string_pretty(&result)?);
    Ok(())
}
