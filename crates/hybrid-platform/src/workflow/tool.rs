//! `tool` stages: one tool call through the tool gate, no model; and the
//! journaled tool call that runbooks use too, run at most once per journal key.

use hybrid_agents::{GateDecision, ToolGate, ToolRequest};
use hybrid_core::{EventKind, StageResult, ToolCallRecord};
use hybrid_store::JournalBegin;
use hybrid_tools::ToolContext;
use hybrid_workflow::{Stage, StageOutcome, StageStatus};
use serde_json::{Value, json};

use crate::PlatformError;
use crate::context::AuditNote;
use crate::gates::tool_calls::PolicyGate;

impl super::WorkflowRun<'_> {
    pub(super) async fn tool_stage(
        &self,
        stage: &Stage,
        tool: &str,
        arguments: Value,
        attempt: u32,
    ) -> Result<(StageOutcome, StageResult), PlatformError> {
        let gate = self.services.tool_gate(self.task, self.t);
        let key = format!("stage:{}/tool/attempt:{attempt}", stage.id);
        let out = self
            .journaled_tool(&key, tool, arguments.clone(), &gate)
            .await?;
        let mut outcome = StageOutcome::completed(out.content.clone());
        outcome.ok = !out.is_error;
        outcome.json = serde_json::from_str(&out.content).ok();
        outcome.attempt = attempt;
        if out.is_error {
            outcome.status = StageStatus::Failed;
            outcome.error = Some(out.content.clone());
        }
        let result = StageResult {
            agent: "tool".into(),
            platform: "tool".into(),
            output: out.content.clone(),
            tools_used: vec![tool.to_owned()],
            tool_calls: vec![ToolCallRecord {
                id: key,
                name: tool.to_owned(),
                arguments,
                output: Some(out.content),
                is_error: out.is_error,
            }],
            ..StageResult::default()
        };
        Ok((outcome, result))
    }

    /// One tool call through the gate, run at most once per journal key.
    pub(super) async fn journaled_tool(
        &self,
        key: &str,
        tool: &str,
        arguments: Value,
        gate: &PolicyGate,
    ) -> Result<ToolRun, PlatformError> {
        match self.t.store.journal_begin(&self.task.id, key).await? {
            JournalBegin::Finished(recorded) => {
                self.t
                    .sink
                    .emit(EventKind::Warning {
                        message: format!("{key}: already ran; its recorded result is reused"),
                    })
                    .await?;
                return Ok(
                    serde_json::from_value(recorded).unwrap_or_else(|_| ToolRun {
                        content: "(recorded result unreadable)".into(),
                        exit_code: -1,
                        is_error: true,
                    }),
                );
            }
            JournalBegin::Interrupted { started_at } => {
                return Ok(ToolRun {
                    content: format!(
                        "not run again: an earlier attempt started it at {started_at} and \
                         was interrupted before it finished, so it may have run"
                    ),
                    exit_code: -1,
                    is_error: true,
                });
            }
            JournalBegin::Started => {}
        }
        let run = self.run_tool(key, tool, arguments, gate).await?;
        let value = serde_json::to_value(&run).unwrap_or(Value::Null);
        self.t
            .store
            .journal_finish(&self.task.id, key, &value)
            .await?;
        Ok(run)
    }

    async fn run_tool(
        &self,
        key: &str,
        tool: &str,
        arguments: Value,
        gate: &PolicyGate,
    ) -> Result<ToolRun, PlatformError> {
        let request = ToolRequest {
            agent: "workflow",
            call_id: key,
            tool,
            arguments: &arguments,
        };
        self.t
            .sink
            .emit(EventKind::ToolCall {
                stage: stage_of(key).to_owned(),
                id: key.to_owned(),
                name: tool.to_owned(),
                arguments: arguments.clone(),
            })
            .await?;
        let run = match gate.check(request).await {
            GateDecision::Deny { rule, reason } => ToolRun {
                content: format!("denied by {rule}: {reason}"),
                exit_code: -1,
                is_error: true,
            },
            GateDecision::Allow => match self.services.tool_named(tool) {
                None => ToolRun {
                    content: format!("unknown tool `{tool}`"),
                    exit_code: -1,
                    is_error: true,
                },
                Some(t) => {
                    let mut ctx = ToolContext::new(self.t.workdir());
                    ctx.cancel = self.t.options.cancel.clone();
                    ctx.limits = self.t.options.tool_limits.clone().unwrap_or_default();
                    ctx.sandbox = self.t.options.sandbox.clone();
                    let out = t.call(arguments.clone(), &ctx).await;
                    let exit_code = out
                        .metadata
                        .get("exit_code")
                        .and_then(Value::as_i64)
                        .and_then(|c| i32::try_from(c).ok())
                        .unwrap_or(if out.is_error { 1 } else { 0 });
                    ToolRun {
                        content: out.content,
                        exit_code,
                        is_error: out.is_error,
                    }
                }
            },
        };
        let command = arguments
            .get("command")
            .and_then(Value::as_str)
            .map_or_else(|| format!("{tool} {arguments}"), str::to_owned);
        self.t
            .sink
            .audit(AuditNote {
                agent: "workflow".into(),
                action: if tool == "bash" { "bash_command" } else { "tool_call" }.into(),
                command: Some(command),
                output: Some(run.content.clone()),
                detail: json!({"call_id": key, "tool": tool, "exit_code": run.exit_code, "is_error": run.is_error}),
                ..AuditNote::default()
            })
            .await;
        // Failing here leaves the journal entry begun, not finished: a resume
        // reports that the call may have run instead of running it again.
        self.t
            .sink
            .emit(EventKind::ToolResult {
                stage: stage_of(key).to_owned(),
                id: key.to_owned(),
                output: run.content.clone(),
                is_error: run.is_error,
            })
            .await?;
        Ok(run)
    }
}

/// A tool call's result as journaled.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(super) struct ToolRun {
    pub(super) content: String,
    pub(super) exit_code: i32,
    pub(super) is_error: bool,
}

/// The stage a journal key (`stage:<id>/…`) belongs to.
fn stage_of(key: &str) -> &str {
    key.split('/')
        .next()
        .unwrap_or(key)
        .trim_start_matches("stage:")
}
