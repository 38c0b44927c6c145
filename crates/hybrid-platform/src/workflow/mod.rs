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
//!
//! | module | stage kind |
//! | --- | --- |
//! | this one | the scheduler: waves, templates, skipping, committing |
//! | [`agent`] | `agent` (custom agents, handoffs, the stage cache, JSON schemas) |
//! | [`runbook`] | `runbook` |
//! | [`tool`] | `tool`, and the journaled tool call runbooks use too |
//! | [`approval`] | `approval` |
//! | [`loops`] | `loop` |
//! | [`check`] | `check` |
//! | [`cache`] | the stage cache |

mod agent;
mod approval;
pub(crate) mod cache;
mod check;
mod loops;
mod runbook;
mod tool;

use std::collections::HashMap;
use std::time::Instant;

use futures::StreamExt;
use hybrid_core::{EventKind, StageResult, Stages, Task};
use hybrid_workflow::{
    CommandOutcome, OnReject, Stage, StageKind, StageOutcome, StageStatus, TemplateError, Verdict,
    Workflow,
};
use serde_json::{Map, Value};
use tokio::sync::Mutex;

use crate::PlatformError;
use crate::run::router;
use crate::services::{Run, Services};

/// One workflow run.
pub(crate) struct WorkflowRun<'a> {
    services: &'a Services,
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
        services: &'a Services,
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
        let inputs = workflow.resolve_inputs(&context)?;
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
            services,
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
                return Err(PlatformError::StageFailed {
                    stage: stage.id.clone(),
                    message: error.unwrap_or_default(),
                });
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

    fn template_error(&self, stage: &Stage, source: TemplateError) -> PlatformError {
        PlatformError::Template {
            workflow: self.workflow.name().to_owned(),
            stage: stage.id.clone(),
            line: stage.line,
            source,
        }
    }

    /// Commits a stage's result and tells subscribers.
    async fn record(
        &self,
        stage: &Stage,
        outcome: StageOutcome,
        mut result: StageResult,
    ) -> Result<(), PlatformError> {
        let value = self.services.redactor.redact_json(outcome.to_value());
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
            .services
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
