//! `runbook` stages: each command with the `bash` tool under the command
//! policy, no model, journaled, at most `max_concurrency` at once.

use futures::StreamExt;
use hybrid_core::{StageResult, ToolCallRecord};
use hybrid_workflow::{CommandOutcome, Stage, StageOutcome};
use serde_json::json;

use crate::PlatformError;

impl super::WorkflowRun<'_> {
    /// Runs commands under the policy, journaled, at most `limit` at once.
    pub(super) async fn runbook_stage(
        &self,
        stage: &Stage,
        commands: &[String],
        limit: usize,
        timeout: Option<std::time::Duration>,
        attempt: u32,
    ) -> Result<(StageOutcome, StageResult), PlatformError> {
        let gate = self.services.tool_gate(self.task, self.t);
        let runs: Vec<_> = commands
            .iter()
            .enumerate()
            .map(|(i, command)| {
                let key = format!("stage:{}/cmd:{i}/attempt:{attempt}", stage.id);
                let args = json!({ "command": command, "timeout_secs": timeout.map(|t| t.as_secs().max(1)) });
                let gate = &gate;
                async move {
                    let output = self.journaled_tool(&key, "bash", args.clone(), gate).await?;
                    Ok::<_, PlatformError>((key, command.clone(), args, output))
                }
            })
            .collect();
        let done: Vec<Result<_, PlatformError>> = futures::stream::iter(runs)
            .buffered(limit.max(1))
            .collect()
            .await;
        let mut outcomes = Vec::with_capacity(done.len());
        let mut calls = Vec::with_capacity(done.len());
        let mut text = String::new();
        for item in done {
            let (key, command, args, out) = item?;
            let exit_code = out.exit_code;
            text.push_str(&format!("$ {command}\n{}\n", out.content.trim_end()));
            calls.push(ToolCallRecord {
                id: key,
                name: "bash".into(),
                arguments: args,
                output: Some(out.content.clone()),
                is_error: exit_code != 0,
            });
            outcomes.push(CommandOutcome {
                command,
                exit_code,
                output: out.content,
            });
        }
        let ok = outcomes.iter().all(|c| c.exit_code == 0);
        let mut outcome = StageOutcome::completed(text.trim_end());
        outcome.ok = ok;
        outcome.commands = outcomes;
        outcome.attempt = attempt;
        let result = StageResult {
            agent: "runbook".into(),
            platform: "runbook".into(),
            output: text.trim_end().to_owned(),
            tools_used: vec!["bash".into()],
            tool_calls: calls,
            ..StageResult::default()
        };
        Ok((outcome, result))
    }
}
