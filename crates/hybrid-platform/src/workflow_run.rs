//! The workflow engine: runs a [`Workflow`] for one task, stage by stage.
//!
//! Stages run in waves (every stage whose `needs` are done), each wave with at
//! most `max_concurrency` stages at once. Every stage — also a skipped one —
//! leaves a result that later templates read, and is committed to the store
//! (with its position in the workflow) before any stage that needs it starts.
//!
//! | stage | what runs | what decides |
//! | --- | --- | --- |
//! | `agent` | the agent on its platform (or a registered custom agent) | L2 guardrails before, the tool and model gates during, L4 after |
//! | `runbook` | each command with the `bash` tool, no model | the command policy (approvals included) per command |
//! | `tool` | one tool call, no model | the tool gate |
//! | `approval` | nothing: a person says yes or no | the run's approver |
//! | `loop` | its stages again until `until` holds or `max_attempts` | — |
//! | `check` | its rules over earlier results | a failing rule rejects the task |
//!
//! Side effects are journaled: a runbook command, a tool stage's call and an
//! approval's answer are recorded in the store before and after they happen
//! (key `stage:<id>/…/attempt:<n>`), so a resumed task reuses what already ran
//! and never runs it twice; one that started but never finished is reported,
//! not repeated.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use hybrid_agents::{GateDecision, ToolGate, ToolRequest};
use hybrid_core::{EventKind, StageResult, Stages, Task, TaskStatus, ToolCallRecord};
use hybrid_guard::{GuardContext, Layer};
use hybrid_store::JournalBegin;
use hybrid_tools::ToolContext;
use hybrid_workflow::{
    AgentStage, CommandOutcome, OnReject, OutputKind, Stage, StageKind, StageOutcome, StageStatus,
    Verdict, Workflow,
};
use serde_json::{Map, Value, json};
use tokio::sync::Mutex;

use crate::context::AuditNote;
use crate::custom_agent::AgentInput;
use crate::facade::{HybridPlatform, Run};
use crate::gate::{ApprovalAnswer, ApprovalAsk, ApprovalContext, NoApprover};
use crate::platform::StageRequest;
use crate::{PlatformError, router};

/// One workflow run.
pub(crate) struct WorkflowRun<'a> {
    hp: &'a HybridPlatform,
    task: &'a Task,
    t: &'a Run<'a>,
    workflow: &'a Workflow,
    /// Position of every stage (nested ones too) in the workflow, for the store.
    positions: HashMap<String, u32>,
    /// What templates read: `stages.<id>`.
    outcomes: Mutex<Map<String, Value>>,
    /// Results by stage id.
    results: Mutex<HashMap<String, StageResult>>,
    task_json: Value,
    inputs: Map<String, Value>,
}

/// Reasoning-layer roles run on `openai` unless a stage says otherwise.
const REASONING_ROLES: [&str; 4] = ["coordinator", "analyst", "validator", "communicator"];

impl<'a> WorkflowRun<'a> {
    /// Prepares a run; `done` are the stages a previous run committed.
    pub(crate) fn new(
        hp: &'a HybridPlatform,
        task: &'a Task,
        t: &'a Run<'a>,
        workflow: &'a Workflow,
        done: Vec<(String, StageResult)>,
    ) -> Result<Self, PlatformError> {
        let mut positions = HashMap::new();
        let mut next = 0u32;
        for stage in workflow.topological_order() {
            number(stage, &mut positions, &mut next);
        }
        let context: Map<String, Value> = task
            .context
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let inputs = workflow
            .resolve_inputs(&context)
            .map_err(|e| PlatformError::Workflow(e.to_string()))?;
        let mut outcomes = Map::new();
        let mut results = HashMap::new();
        for (name, result) in done {
            // Only stages that finished count; a failed one runs again.
            if let Some(detail) = &result.detail
                && detail.get("status").and_then(Value::as_str) != Some("failed")
            {
                outcomes.insert(name.clone(), detail.clone());
                results.insert(name, result);
            }
        }
        Ok(WorkflowRun {
            hp,
            task,
            t,
            workflow,
            positions,
            outcomes: Mutex::new(outcomes),
            results: Mutex::new(results),
            task_json: serde_json::to_value(task).unwrap_or(Value::Null),
            inputs,
        })
    }

    /// Runs every stage not yet done; the stages in workflow order.
    pub(crate) async fn run(&self) -> Result<Stages, (Stages, PlatformError)> {
        let limit = self.workflow.max_concurrency().max(1);
        for wave in self.workflow.waves() {
            let pending: Vec<&Stage> = {
                let done = self.outcomes.lock().await;
                wave.into_iter()
                    .filter(|s| !done.contains_key(&s.id))
                    .collect()
            };
            let runs: Vec<_> = pending.iter().map(|s| self.run_stage(s, None)).collect();
            let finished: Vec<Result<(), PlatformError>> = futures::stream::iter(runs)
                .buffer_unordered(limit)
                .collect()
                .await;
            if let Some(e) = finished.into_iter().find_map(Result::err) {
                return Err((self.stages().await, e));
            }
        }
        Ok(self.stages().await)
    }

    /// The results so far, in workflow order.
    async fn stages(&self) -> Stages {
        let results = self.results.lock().await;
        let mut ordered: Vec<(&String, &StageResult)> = results.iter().collect();
        ordered.sort_by_key(|(id, _)| self.positions.get(*id).copied().unwrap_or(u32::MAX));
        ordered
            .into_iter()
            .map(|(id, r)| (id.clone(), r.clone()))
            .collect()
    }

    /// The template context now (inside a loop: with `attempt`).
    async fn context(&self, attempt: Option<u32>) -> Value {
        let stages = self.outcomes.lock().await.clone();
        let ctx = self
            .workflow
            .context(&self.task_json, &self.inputs, &stages);
        match attempt {
            Some(n) => hybrid_workflow::with_attempt(&ctx, n),
            None => ctx,
        }
    }

    /// Runs one stage (of any kind) and records it.
    fn run_stage<'s>(
        &'s self,
        stage: &'s Stage,
        attempt: Option<u32>,
    ) -> futures::future::BoxFuture<'s, Result<(), PlatformError>> {
        Box::pin(async move {
            if self.t.options.cancel.is_cancelled() {
                return Err(PlatformError::Cancelled);
            }
            let ctx = self.context(attempt).await;
            let run = stage
                .should_run(&ctx)
                .map_err(|e| self.template_error(stage, e))?;
            if !run {
                self.skip(stage).await?;
                return Ok(());
            }
            let started = Instant::now();
            let (agent, platform) = stage_labels(stage);
            self.t
                .sink
                .emit(EventKind::StageStarted {
                    stage: stage.id.clone(),
                    agent: agent.clone(),
                    platform: platform.clone(),
                    model: None,
                })
                .await?;
            let attempt_n = attempt.unwrap_or(1);
            let outcome = match &stage.kind {
                StageKind::Agent(a) => self.agent_stage(stage, a, &ctx).await,
                StageKind::Runbook(r) => {
                    let commands = r
                        .render_commands(&ctx)
                        .map_err(|e| self.template_error(stage, e))?;
                    self.runbook_stage(stage, &commands, r.max_concurrency, r.timeout, attempt_n)
                        .await
                        .map(|(outcome, result)| {
                            let failed = !outcome.ok && !r.continue_on_error;
                            (outcome, result, failed)
                        })
                        .map(|(mut outcome, result, failed)| {
                            if failed {
                                outcome.status = StageStatus::Failed;
                                outcome.error = Some(first_failure(&outcome.commands));
                            }
                            (outcome, result)
                        })
                }
                StageKind::Tool(tool) => {
                    let arguments = tool
                        .render_arguments(&ctx)
                        .map_err(|e| self.template_error(stage, e))?;
                    self.tool_stage(stage, &tool.name, arguments, attempt_n)
                        .await
                }
                StageKind::Approval(a) => {
                    let message = a
                        .render_message(&ctx)
                        .map_err(|e| self.template_error(stage, e))?;
                    self.approval_stage(stage, &message, a.timeout, attempt_n)
                        .await
                }
                StageKind::Loop(l) => self.loop_stage(stage, l).await,
                StageKind::Check(rules) => self.check_stage(stage, rules, &ctx),
            };
            let (outcome, mut result) = outcome?;
            result.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
            if result.agent.is_empty() {
                result.agent = agent;
            }
            if result.platform.is_empty() {
                result.platform = platform;
            }
            let failed = outcome.status == StageStatus::Failed;
            let error = outcome.error.clone();
            let rejected = outcome.ok.then_some(()).is_none()
                && matches!(stage.kind, StageKind::Check(_) | StageKind::Approval(_));
            self.record(stage, outcome, result).await?;
            if failed {
                return Err(PlatformError::Workflow(format!(
                    "stage `{}` failed: {}",
                    stage.id,
                    error.unwrap_or_default()
                )));
            }
            if rejected && self.stops_on_rejection(stage) {
                return Err(PlatformError::Rejected {
                    stage: stage.id.clone(),
                    message: self
                        .results
                        .lock()
                        .await
                        .get(&stage.id)
                        .map(|r| r.output.clone())
                        .unwrap_or_default(),
                });
            }
            Ok(())
        })
    }

    fn stops_on_rejection(&self, stage: &Stage) -> bool {
        match &stage.kind {
            StageKind::Check(_) => true,
            StageKind::Approval(a) => a.on_reject == OnReject::Stop,
            _ => false,
        }
    }

    fn template_error(&self, stage: &Stage, e: impl std::fmt::Display) -> PlatformError {
        PlatformError::Workflow(format!(
            "{}: stage `{}` (line {}): {e}",
            self.workflow.name(),
            stage.id,
            stage.line
        ))
    }

    /// Commits a stage's result and tells subscribers.
    async fn record(
        &self,
        stage: &Stage,
        outcome: StageOutcome,
        mut result: StageResult,
    ) -> Result<(), PlatformError> {
        let value = self.hp.redactor().redact_json(outcome.to_value());
        result.detail = Some(value.clone());
        if result.verdict.is_none() {
            result.verdict = outcome.verdict.map(|v| {
                match v {
                    Verdict::Pass => "pass",
                    Verdict::Fail => "fail",
                }
                .to_owned()
            });
        }
        let position = self.positions.get(&stage.id).copied().unwrap_or(0);
        let result = self
            .hp
            .commit_stage(self.task, &stage.id, position, result, self.t)
            .await?;
        self.outcomes.lock().await.insert(stage.id.clone(), value);
        self.results.lock().await.insert(stage.id.clone(), result);
        Ok(())
    }

    /// Records `stage` (and, for a loop, its stages) as skipped.
    fn skip<'s>(
        &'s self,
        stage: &'s Stage,
    ) -> futures::future::BoxFuture<'s, Result<(), PlatformError>> {
        Box::pin(async move {
            if let StageKind::Loop(l) = &stage.kind {
                for nested in &l.stages {
                    self.skip(nested).await?;
                }
            }
            let (agent, platform) = stage_labels(stage);
            let result = StageResult {
                agent,
                platform,
                output: String::new(),
                ..StageResult::default()
            };
            self.record(stage, StageOutcome::skipped(), result).await
        })
    }

    async fn agent_stage(
        &self,
        stage: &Stage,
        a: &AgentStage,
        ctx: &Value,
    ) -> Result<(StageOutcome, StageResult), PlatformError> {
        let mut prompt = a
            .render_prompt(ctx)
            .map_err(|e| self.template_error(stage, e))?;
        if !a.handoffs.is_empty() {
            prompt.push_str(&format!(
                "\n\nIf one of these agents should take over from you, end your answer \
                 with a line `HANDOFF: <name>` after a short note for them: {}.",
                a.handoffs.join(", ")
            ));
        }
        if let Some(custom) = self.hp.custom_agent(&a.agent) {
            let output = custom
                .handle(AgentInput {
                    task: self.task,
                    stage: &stage.id,
                    prompt: &prompt,
                    context: ctx,
                })
                .await?;
            let result = StageResult {
                agent: a.agent.clone(),
                platform: "custom".into(),
                output: output.clone(),
                ..StageResult::default()
            };
            return Ok((outcome_of(a, &output)?, result));
        }
        let platform_name = a
            .platform
            .clone()
            .unwrap_or_else(|| default_platform(&a.agent).to_owned());
        let platform = self.hp.platform_named(&platform_name)?;
        let cache_key = match (&a.cache, a.render_cache_key(ctx)) {
            (Some(policy), Ok(Some(key))) => Some((
                format!(
                    "{}/{}/{platform_name}/{key}",
                    self.workflow.name(),
                    stage.id
                ),
                policy.ttl,
            )),
            (_, Err(e)) => return Err(self.template_error(stage, e)),
            _ => None,
        };
        if let Some((key, _)) = &cache_key
            && let Some(mut hit) = self.hp.stage_cache().get(key).await
        {
            let _ = self
                .t
                .sink
                .emit(EventKind::Warning {
                    message: format!("stage {}: cached result reused (key {key})", stage.id),
                })
                .await;
            hit.usage = hybrid_core::Usage::default();
            hit.cost_usd = Some(hybrid_core::Money::ZERO);
            let outcome = outcome_of(a, &hit.output)?;
            return Ok((outcome, hit));
        }
        let guard =
            GuardContext::for_task(self.task).with_stage(&stage.id, a.agent.clone(), platform.id());
        self.hp.check(Layer::Platform, &guard, self.t).await?;
        let request = StageRequest {
            task: self.task,
            agent: &a.agent,
            prompt: &prompt,
            tools: a.tools.as_deref(),
            cache_prompt: a.cache.is_some(),
        };
        let mut result = self
            .hp
            .execute_on_platform(
                self.task,
                platform.as_ref(),
                &stage.id,
                Some(request),
                self.t,
            )
            .await?;
        let mut chain = vec![a.agent.clone()];
        while let Some(next) = handoff_target(&result.output, &a.handoffs, &chain) {
            let from = chain.last().cloned().unwrap_or_default();
            let _ = self
                .t
                .sink
                .emit(EventKind::Warning {
                    message: format!("stage {}: {from} hands off to {next}", stage.id),
                })
                .await;
            let handed = format!(
                "{prompt}\n\nHanded over to you by {from} with this note:\n{}",
                result.output
            );
            let next_platform = self.hp.platform_named(default_platform(&next))?;
            let request = StageRequest {
                task: self.task,
                agent: &next,
                prompt: &handed,
                tools: None,
                cache_prompt: false,
            };
            let later = self
                .hp
                .execute_on_platform(
                    self.task,
                    next_platform.as_ref(),
                    &stage.id,
                    Some(request),
                    self.t,
                )
                .await?;
            result = merge_handoff(result, later);
            chain.push(next);
        }
        if chain.len() > 1 {
            result.finish_reason = Some(format!("handoffs: {}", chain.join(" → ")));
        }
        let mut outcome = outcome_of(a, &result.output)?;
        if let (Some(schema), Some(json)) = (&a.schema, &outcome.json)
            && let Some(why) = self.schema_violation(stage, schema, json).await
        {
            outcome.status = StageStatus::Failed;
            outcome.ok = false;
            outcome.error = Some(why);
        }
        // Only a good answer is worth reusing.
        if let Some((key, ttl)) = cache_key
            && outcome.status != StageStatus::Failed
        {
            self.hp.stage_cache().insert(key, result.clone(), ttl).await;
        }
        Ok((outcome, result))
    }

    /// Why `json` does not match the stage's `schema` (the same validator
    /// as the `json_schema` output guardrail), or `None` when it does.
    async fn schema_violation(
        &self,
        stage: &Stage,
        schema: &Value,
        json: &Value,
    ) -> Option<String> {
        let rule = match hybrid_guard::Guardrail::json_schema(
            format!("{}.schema", stage.id),
            schema.clone(),
        ) {
            Ok(rule) => rule,
            Err(e) => return Some(e.to_string()),
        };
        let mut engine = hybrid_guard::GuardrailEngine::default();
        engine.add_guardrail(rule);
        let ctx = GuardContext::for_task(self.task).with_output(json.to_string());
        let decision = engine.evaluate(Layer::Output, &ctx).await;
        match decision.outcome {
            hybrid_guard::Outcome::Pass => None,
            hybrid_guard::Outcome::Block { message, .. }
            | hybrid_guard::Outcome::NeedsApproval { message, .. } => Some(format!(
                "the agent's JSON does not match the stage's schema: {message}"
            )),
        }
    }

    /// Runs commands under the policy, journaled, at most `limit` at once.
    async fn runbook_stage(
        &self,
        stage: &Stage,
        commands: &[String],
        limit: usize,
        timeout: Option<std::time::Duration>,
        attempt: u32,
    ) -> Result<(StageOutcome, StageResult), PlatformError> {
        let gate = self.hp.tool_gate(self.task, self.t);
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

    async fn tool_stage(
        &self,
        stage: &Stage,
        tool: &str,
        arguments: Value,
        attempt: u32,
    ) -> Result<(StageOutcome, StageResult), PlatformError> {
        let gate = self.hp.tool_gate(self.task, self.t);
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
    async fn journaled_tool(
        &self,
        key: &str,
        tool: &str,
        arguments: Value,
        gate: &crate::gate::PolicyGate,
    ) -> Result<ToolRun, PlatformError> {
        match self.t.store.journal_begin(&self.task.id, key).await? {
            JournalBegin::Finished(recorded) => {
                let _ = self
                    .t
                    .sink
                    .emit(EventKind::Warning {
                        message: format!("{key}: already ran; its recorded result is reused"),
                    })
                    .await;
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
        let run = self.run_tool(key, tool, arguments, gate).await;
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
        gate: &crate::gate::PolicyGate,
    ) -> ToolRun {
        let request = ToolRequest {
            agent: "workflow",
            call_id: key,
            tool,
            arguments: &arguments,
        };
        let _ = self
            .t
            .sink
            .emit(EventKind::ToolCall {
                stage: key
                    .split('/')
                    .next()
                    .unwrap_or(key)
                    .trim_start_matches("stage:")
                    .to_owned(),
                id: key.to_owned(),
                name: tool.to_owned(),
                arguments: arguments.clone(),
            })
            .await;
        let run = match gate.check(request).await {
            GateDecision::Deny { rule, reason } => ToolRun {
                content: format!("denied by {rule}: {reason}"),
                exit_code: -1,
                is_error: true,
            },
            GateDecision::Allow => match self.hp.tool_named(tool) {
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
        let _ = self
            .t
            .sink
            .emit(EventKind::ToolResult {
                stage: key
                    .split('/')
                    .next()
                    .unwrap_or(key)
                    .trim_start_matches("stage:")
                    .to_owned(),
                id: key.to_owned(),
                output: run.content.clone(),
                is_error: run.is_error,
            })
            .await;
        run
    }

    async fn approval_stage(
        &self,
        stage: &Stage,
        message: &str,
        timeout: Option<std::time::Duration>,
        attempt: u32,
    ) -> Result<(StageOutcome, StageResult), PlatformError> {
        let key = format!("stage:{}/approval/attempt:{attempt}", stage.id);
        let answer = match self.t.store.journal_begin(&self.task.id, &key).await? {
            JournalBegin::Finished(v) => serde_json::from_value::<Answer>(v).ok(),
            JournalBegin::Interrupted { .. } | JournalBegin::Started => None,
        };
        let answer = match answer {
            Some(a) => a,
            None => {
                let answer = self.ask(stage, message, &key, timeout).await?;
                let value = serde_json::to_value(&answer).unwrap_or(Value::Null);
                // An interrupted ask has no row to finish: begin again is a no-op.
                if self
                    .t
                    .store
                    .journal_finish(&self.task.id, &key, &value)
                    .await
                    .is_err()
                {
                    tracing::debug!(key, "approval answer not journaled (already finished)");
                }
                answer
            }
        };
        let text = if answer.approved {
            format!("approved by {}{}", answer.by, note(&answer.note))
        } else {
            format!("rejected by {}{}", answer.by, note(&answer.note))
        };
        let mut outcome = StageOutcome::completed(text.clone());
        outcome.ok = answer.approved;
        outcome.attempt = attempt;
        let result = StageResult {
            agent: "approval".into(),
            platform: "approval".into(),
            output: format!("{message}\n{text}"),
            verdict: Some(
                if answer.approved {
                    "approved"
                } else {
                    "rejected"
                }
                .into(),
            ),
            ..StageResult::default()
        };
        Ok((outcome, result))
    }

    /// Asks the run's approver; no answer within `timeout` is a rejection
    /// by `timeout` (the approver is cancelled, so a stored ask expires).
    async fn ask(
        &self,
        stage: &Stage,
        message: &str,
        key: &str,
        timeout: Option<std::time::Duration>,
    ) -> Result<Answer, PlatformError> {
        let approver = self
            .t
            .options
            .approver
            .clone()
            .unwrap_or_else(|| Arc::new(NoApprover));
        let ask = ApprovalAsk {
            agent: "workflow".into(),
            call_id: key.to_owned(),
            tool: "approval".into(),
            command: message.to_owned(),
            rule: format!("workflow:{}:{}", self.workflow.name(), stage.id),
            reason: format!(
                "stage `{}` of workflow {} asks for approval",
                stage.id,
                self.workflow.name()
            ),
        };
        let waiting = self.t.sink.status().await == TaskStatus::InProgress;
        if waiting {
            self.t
                .go(TaskStatus::AwaitingApproval, Some(message.to_owned()))
                .await?;
        }
        let cancel = self.t.options.cancel.child_token();
        let ctx = ApprovalContext {
            events: self.t.sink.clone(),
            cancel: cancel.clone(),
        };
        let answer = match timeout {
            None => approver.ask(&ask, &ctx).await,
            Some(limit) => match tokio::time::timeout(limit, approver.ask(&ask, &ctx)).await {
                Ok(answer) => answer,
                Err(_) => {
                    cancel.cancel();
                    ApprovalAnswer::Rejected {
                        by: "timeout".into(),
                        reason: Some(format!("no answer within {}", humantime_secs(limit))),
                    }
                }
            },
        };
        if waiting {
            self.t.go(TaskStatus::InProgress, None).await?;
        }
        let answer = match answer {
            ApprovalAnswer::Approved { by, note } => Answer {
                approved: true,
                by,
                note,
            },
            ApprovalAnswer::Rejected { by, reason } => Answer {
                approved: false,
                by,
                note: reason,
            },
        };
        self.t
            .sink
            .audit(AuditNote {
                agent: "workflow".into(),
                action: "approval".into(),
                command: Some(message.to_owned()),
                output: Some(format!(
                    "{} by {}{}",
                    if answer.approved {
                        "approved"
                    } else {
                        "rejected"
                    },
                    answer.by,
                    note(&answer.note)
                )),
                approved_by: answer.approved.then(|| answer.by.clone()),
                detail: json!({"stage": stage.id, "call_id": key}),
            })
            .await;
        Ok(answer)
    }

    async fn loop_stage(
        &self,
        stage: &Stage,
        l: &hybrid_workflow::LoopStage,
    ) -> Result<(StageOutcome, StageResult), PlatformError> {
        let mut attempt = 0;
        let mut done = false;
        let order = l.topological_order();
        while attempt < l.max_attempts {
            attempt += 1;
            if attempt > 1
                && let Some(delay) = l.delay
            {
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = self.t.options.cancel.cancelled() => return Err(PlatformError::Cancelled),
                }
            }
            for nested in &order {
                self.run_stage(nested, Some(attempt)).await?;
            }
            let ctx = self.context(Some(attempt)).await;
            done = l.is_done(&ctx).map_err(|e| self.template_error(stage, e))?;
            if done {
                break;
            }
        }
        let last = order.last().map(|s| s.id.clone()).unwrap_or_default();
        let last_output = self
            .results
            .lock()
            .await
            .get(&last)
            .map(|r| r.output.clone())
            .unwrap_or_default();
        let summary = format!(
            "{} after {attempt} attempt{} (until: {})",
            if done { "done" } else { "not done" },
            if attempt == 1 { "" } else { "s" },
            l.until
        );
        let mut outcome = StageOutcome::completed(last_output.clone());
        outcome.ok = done;
        outcome.attempt = attempt;
        let result = StageResult {
            agent: "loop".into(),
            platform: "loop".into(),
            output: format!("{summary}\n{last_output}"),
            ..StageResult::default()
        };
        Ok((outcome, result))
    }

    fn check_stage(
        &self,
        stage: &Stage,
        rules: &[hybrid_workflow::CheckRule],
        ctx: &Value,
    ) -> Result<(StageOutcome, StageResult), PlatformError> {
        let mut lines = Vec::with_capacity(rules.len());
        let mut failures = Vec::new();
        for rule in rules {
            let checked = rule
                .evaluate(ctx)
                .map_err(|e| self.template_error(stage, e))?;
            if checked.passed {
                lines.push(format!("PASS {}", checked.name));
            } else {
                let why = checked.message.unwrap_or_default();
                lines.push(format!("FAIL {}: {why}", checked.name));
                failures.push(format!("{}: {why}", checked.name));
            }
        }
        let ok = failures.is_empty();
        let mut outcome = StageOutcome::completed(lines.join("\n"));
        outcome.ok = ok;
        outcome.verdict = Some(if ok { Verdict::Pass } else { Verdict::Fail });
        let result = StageResult {
            agent: "check".into(),
            platform: "check".into(),
            output: if ok {
                lines.join("\n")
            } else {
                failures.join("; ")
            },
            ..StageResult::default()
        };
        Ok((outcome, result))
    }
}

/// A tool call's result as journaled.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct ToolRun {
    content: String,
    exit_code: i32,
    is_error: bool,
}

/// An approval's answer as journaled.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Answer {
    approved: bool,
    by: String,
    note: Option<String>,
}

fn humantime_secs(d: std::time::Duration) -> String {
    format!("{}s", d.as_secs())
}

fn note(n: &Option<String>) -> String {
    n.as_ref().map(|n| format!(": {n}")).unwrap_or_default()
}

fn number(stage: &Stage, positions: &mut HashMap<String, u32>, next: &mut u32) {
    if let StageKind::Loop(l) = &stage.kind {
        for nested in l.topological_order() {
            number(nested, positions, next);
        }
    }
    positions.insert(stage.id.clone(), *next);
    *next += 1;
}

/// The platform an agent runs on when its stage names none.
fn default_platform(agent: &str) -> &'static str {
    if REASONING_ROLES.contains(&agent) {
        router::OPENAI
    } else {
        router::CLAUDE
    }
}

/// (agent, platform) shown for a stage before it runs.
fn stage_labels(stage: &Stage) -> (String, String) {
    match &stage.kind {
        StageKind::Agent(a) => (
            a.agent.clone(),
            a.platform
                .clone()
                .unwrap_or_else(|| default_platform(&a.agent).to_owned()),
        ),
        other => (other.name().to_owned(), other.name().to_owned()),
    }
}

/// An agent's answer as the stage's outcome: its verdict or JSON when the
/// stage asks for one.
fn outcome_of(a: &AgentStage, output: &str) -> Result<StageOutcome, PlatformError> {
    let mut outcome = StageOutcome::completed(output);
    match a.output {
        OutputKind::Text => {}
        OutputKind::Verdict => {
            outcome.verdict = Verdict::parse(output);
            outcome.ok = outcome.verdict == Some(Verdict::Pass);
        }
        OutputKind::Json => match parse_json_answer(output) {
            Some(v) => outcome.json = Some(v),
            None => {
                outcome.status = StageStatus::Failed;
                outcome.ok = false;
                outcome.error = Some("the agent's answer is not JSON".into());
            }
        },
    }
    Ok(outcome)
}

/// The JSON in an answer: the whole text, or a fenced ```json block.
fn parse_json_answer(text: &str) -> Option<Value> {
    let trimmed = text.trim();
    if let Ok(v) = serde_json::from_str(trimmed) {
        return Some(v);
    }
    let start = trimmed.find("```")?;
    let rest = &trimmed[start + 3..];
    let rest = rest.strip_prefix("json").unwrap_or(rest);
    let end = rest.find("```")?;
    serde_json::from_str(rest[..end].trim()).ok()
}

/// The agent an answer hands off to: its last line `HANDOFF: name`, when
/// `name` is allowed and has not had the stage yet.
fn handoff_target(answer: &str, allowed: &[String], chain: &[String]) -> Option<String> {
    let last = answer.lines().rev().find(|l| !l.trim().is_empty())?;
    let name = last
        .trim()
        .trim_matches(|c| c == '*' || c == '`')
        .strip_prefix("HANDOFF:")?
        .trim()
        .trim_matches(|c| c == '*' || c == '`' || c == '.');
    (allowed.iter().any(|a| a == name) && !chain.iter().any(|c| c == name)).then(|| name.to_owned())
}

/// The stage result after a handoff: the later agent's answer, everyone's usage and calls.
fn merge_handoff(earlier: StageResult, later: StageResult) -> StageResult {
    let mut tools_used = earlier.tools_used;
    for t in later.tools_used {
        if !tools_used.contains(&t) {
            tools_used.push(t);
        }
    }
    let mut tool_calls = earlier.tool_calls;
    tool_calls.extend(later.tool_calls);
    StageResult {
        usage: earlier.usage + later.usage,
        cost_usd: hybrid_core::add_costs(earlier.cost_usd, later.cost_usd),
        tools_used,
        tool_calls,
        ..later
    }
}

fn first_failure(commands: &[CommandOutcome]) -> String {
    commands
        .iter()
        .find(|c| c.exit_code != 0)
        .map(|c| {
            let first_line = c.output.lines().next().unwrap_or_default();
            format!("`{}` exited with {}: {first_line}", c.command, c.exit_code)
        })
        .unwrap_or_default()
}
