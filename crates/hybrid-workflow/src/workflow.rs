//! The validated workflow an engine runs: stages with their dependencies
//! resolved, durations parsed, and helpers to render each stage's templates.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::WorkflowError;
use crate::spec::{OnReject, OutputKind, WorkflowSpec};
use crate::template::{self, TemplateError};

/// Where a workflow came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkflowSource {
    /// Shipped in the binary (`workflows/NAME.yaml` at build time).
    Builtin,
    /// A file on disk.
    File(PathBuf),
    /// Text passed to [`crate::load_str`], named by the caller.
    Inline(String),
}

impl std::fmt::Display for WorkflowSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WorkflowSource::Builtin => f.write_str("built-in"),
            WorkflowSource::File(p) => write!(f, "{}", p.display()),
            WorkflowSource::Inline(name) => f.write_str(name),
        }
    }
}

/// A loaded and validated workflow.
#[derive(Debug, Clone)]
pub struct Workflow {
    pub(crate) name: String,
    pub(crate) description: String,
    pub(crate) max_concurrency: usize,
    pub(crate) inputs: IndexMap<String, Input>,
    pub(crate) vars: Map<String, Value>,
    pub(crate) stages: Vec<Stage>,
    pub(crate) source: WorkflowSource,
    pub(crate) spec: WorkflowSpec,
}

/// One input of a workflow.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Input {
    /// The input's name.
    pub name: String,
    /// What it is.
    pub description: Option<String>,
    /// The value when the task's context has none; `None` = required.
    pub default: Option<Value>,
}

impl Input {
    /// `true` when the task must give a value.
    pub fn required(&self) -> bool {
        self.default.is_none()
    }
}

/// One stage, validated.
#[derive(Debug, Clone)]
pub struct Stage {
    /// Unique id in the workflow.
    pub id: String,
    /// What the stage is for.
    pub description: Option<String>,
    /// Stages of the same list that must finish first (defaults applied).
    pub needs: Vec<String>,
    /// Condition; false → the stage is skipped.
    pub when: Option<String>,
    /// What the stage does.
    pub kind: StageKind,
    /// 1-based line of the stage in its file.
    pub line: usize,
}

/// What a stage does.
#[derive(Debug, Clone)]
pub enum StageKind {
    /// A model answers a prompt (with tools).
    Agent(AgentStage),
    /// Listed commands run in parallel, no model.
    Runbook(RunbookStage),
    /// A person approves or rejects.
    Approval(ApprovalStage),
    /// One tool call, no model.
    Tool(ToolStage),
    /// Nested stages repeated until a condition holds.
    Loop(LoopStage),
    /// Deterministic guardrails on earlier results.
    Check(Vec<CheckRule>),
}

impl StageKind {
    /// `agent`, `runbook`, `approval`, `tool`, `loop` or `check`.
    pub fn name(&self) -> &'static str {
        match self {
            StageKind::Agent(_) => "agent",
            StageKind::Runbook(_) => "runbook",
            StageKind::Approval(_) => "approval",
            StageKind::Tool(_) => "tool",
            StageKind::Loop(_) => "loop",
            StageKind::Check(_) => "check",
        }
    }
}

/// An agent stage.
#[derive(Debug, Clone)]
pub struct AgentStage {
    /// The agent's name.
    pub agent: String,
    /// The platform, if the file names one.
    pub platform: Option<String>,
    /// The prompt template.
    pub prompt: String,
    /// What the answer is.
    pub output: OutputKind,
    /// JSON Schema for `output: json`.
    pub schema: Option<Value>,
    /// Caching, if any.
    pub cache: Option<CachePolicy>,
    /// Agents it may hand off to.
    pub handoffs: Vec<String>,
    /// Tools instead of the agent's own, if given.
    pub tools: Option<Vec<String>>,
}

/// How an agent stage's answer is cached.
#[derive(Debug, Clone)]
pub struct CachePolicy {
    /// How long an answer stays valid.
    pub ttl: Duration,
    /// Key template; `None` = agent, platform and rendered prompt.
    pub key: Option<String>,
}

/// A runbook stage.
#[derive(Debug, Clone)]
pub struct RunbookStage {
    /// Command-line templates.
    pub commands: Vec<String>,
    /// Commands at once.
    pub max_concurrency: usize,
    /// Whether a non-zero exit leaves the stage completed.
    pub continue_on_error: bool,
    /// Time limit per command, if given.
    pub timeout: Option<Duration>,
}

/// An approval gate.
#[derive(Debug, Clone)]
pub struct ApprovalStage {
    /// Message template.
    pub message: String,
    /// Wait at most this long, if given (else the engine's default).
    pub timeout: Option<Duration>,
    /// What a rejection does.
    pub on_reject: OnReject,
}

/// One tool call.
#[derive(Debug, Clone)]
pub struct ToolStage {
    /// Tool name.
    pub name: String,
    /// Arguments; strings are templates.
    pub arguments: Map<String, Value>,
}

/// A loop stage.
#[derive(Debug, Clone)]
pub struct LoopStage {
    /// Attempts at most.
    pub max_attempts: u32,
    /// Expression; true ends the loop as passed.
    pub until: String,
    /// Pause between attempts.
    pub delay: Option<Duration>,
    /// Nested stages (their `needs` name siblings only).
    pub stages: Vec<Stage>,
}

/// A guardrail rule of a check stage.
#[derive(Debug, Clone)]
pub struct CheckRule {
    /// The rule's name.
    pub name: String,
    /// Expression that must hold.
    pub expect: String,
    /// Message template used when it does not.
    pub message: String,
}

/// The outcome of evaluating one rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckOutcome {
    /// The rule's name.
    pub name: String,
    /// Whether `expect` held.
    pub passed: bool,
    /// The rendered message (only when it failed).
    pub message: Option<String>,
}

/// How a stage ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StageStatus {
    /// Finished.
    Completed,
    /// `when` was false (or a dependency was skipped/failed and the engine moved on).
    Skipped,
    /// Failed.
    Failed,
}

/// A verdict stage's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The answer ended in PASS.
    Pass,
    /// The answer ended in FAIL.
    Fail,
}

impl Verdict {
    /// Reads the verdict from an answer whose last word is PASS or FAIL
    /// (case-insensitive, punctuation and markdown around it ignored).
    ///
    /// ```
    /// use hybrid_workflow::Verdict;
    /// assert_eq!(Verdict::parse("All good.\n\n**PASS**"), Some(Verdict::Pass));
    /// assert_eq!(Verdict::parse("Verdict: fail."), Some(Verdict::Fail));
    /// assert_eq!(Verdict::parse("pass or fail? unsure"), None);
    /// ```
    pub fn parse(answer: &str) -> Option<Verdict> {
        let last = answer
            .split(|c: char| !c.is_alphanumeric())
            .rfind(|w| !w.is_empty())?;
        match last.to_ascii_lowercase().as_str() {
            "pass" | "passed" => Some(Verdict::Pass),
            "fail" | "failed" => Some(Verdict::Fail),
            _ => None,
        }
    }
}

/// One command of a runbook stage, as templates see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandOutcome {
    /// The rendered command line.
    pub command: String,
    /// Its exit code (`-1` when it did not run, e.g. denied by the policy).
    pub exit_code: i32,
    /// What it printed (stdout and stderr).
    pub output: String,
}

/// A finished stage as templates see it (`stages.<id>`). The engine fills one
/// per stage and passes [`StageOutcome::to_value`] to [`crate::build_context`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageOutcome {
    /// The text answer (runbook: each command's output under a `$ command` header).
    pub output: String,
    /// How it ended.
    pub status: StageStatus,
    /// For `output: verdict` stages.
    pub verdict: Option<Verdict>,
    /// For `output: json` agent stages, and tool stages whose output is JSON.
    pub json: Option<Value>,
    /// Completed and (runbook) every command exited 0, (verdict) pass,
    /// (approval) approved, (check) every rule held, (loop) `until` held.
    pub ok: bool,
    /// Runbook stages: each command.
    pub commands: Vec<CommandOutcome>,
    /// Which attempt produced it (1 outside loops; loops: attempts used).
    pub attempt: u32,
    /// Why it failed, if it did.
    pub error: Option<String>,
}

impl StageOutcome {
    /// A completed stage with this output and nothing else set.
    pub fn completed(output: impl Into<String>) -> Self {
        StageOutcome {
            output: output.into(),
            status: StageStatus::Completed,
            verdict: None,
            json: None,
            ok: true,
            commands: Vec::new(),
            attempt: 1,
            error: None,
        }
    }

    /// A skipped stage.
    pub fn skipped() -> Self {
        StageOutcome {
            status: StageStatus::Skipped,
            ok: false,
            ..StageOutcome::completed("")
        }
    }

    /// As JSON for the template context.
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// The keys of `stages.<id>` templates may read.
pub const STAGE_RESULT_FIELDS: &[&str] = &[
    "output", "status", "verdict", "json", "ok", "commands", "attempt", "error",
];

/// The keys of `task` templates may read.
pub const TASK_FIELDS: &[&str] = &[
    "id",
    "description",
    "type",
    "priority",
    "context",
    "submitted_by",
    "estimated_cost",
    "requires_system_access",
    "requires_multi_step",
    "workflow",
];

impl Workflow {
    /// The workflow's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its description ("" when the file has none).
    pub fn description(&self) -> &str {
        &self.description
    }

    /// Stages running at once, at most.
    pub fn max_concurrency(&self) -> usize {
        self.max_concurrency
    }

    /// Declared inputs, in file order.
    pub fn inputs(&self) -> &IndexMap<String, Input> {
        &self.inputs
    }

    /// The `vars` constants.
    pub fn vars(&self) -> &Map<String, Value> {
        &self.vars
    }

    /// Top-level stages in file order (loops hold their own).
    pub fn stages(&self) -> &[Stage] {
        &self.stages
    }

    /// Where it came from.
    pub fn source(&self) -> &WorkflowSource {
        &self.source
    }

    /// The file as parsed (e.g. for `show --json`).
    pub fn spec(&self) -> &WorkflowSpec {
        &self.spec
    }

    /// The stage with this id, at any depth.
    pub fn stage(&self, id: &str) -> Option<&Stage> {
        fn find<'a>(stages: &'a [Stage], id: &str) -> Option<&'a Stage> {
            stages.iter().find_map(|s| {
                if s.id == id {
                    Some(s)
                } else if let StageKind::Loop(l) = &s.kind {
                    find(&l.stages, id)
                } else {
                    None
                }
            })
        }
        find(&self.stages, id)
    }

    /// Number of stages at any depth.
    pub fn stage_count(&self) -> usize {
        fn count(stages: &[Stage]) -> usize {
            stages
                .iter()
                .map(|s| match &s.kind {
                    StageKind::Loop(l) => 1 + count(&l.stages),
                    _ => 1,
                })
                .sum()
        }
        count(&self.stages)
    }

    /// Top-level stages ordered so each comes after its `needs`; ties keep
    /// file order.
    pub fn topological_order(&self) -> Vec<&Stage> {
        topological_order(&self.stages)
    }

    /// Top-level stages in waves: every stage of a wave depends only on
    /// earlier waves, so a wave's stages may run concurrently.
    pub fn waves(&self) -> Vec<Vec<&Stage>> {
        waves(&self.stages)
    }

    /// Resolves the inputs against a task's context: the context's value,
    /// else the default (a string default rendered as a template over `vars`
    /// and earlier inputs); a required input with no value is an error naming it.
    /// Context keys that are not inputs are ignored.
    pub fn resolve_inputs(
        &self,
        context: &Map<String, Value>,
    ) -> Result<Map<String, Value>, WorkflowError> {
        let mut out = Map::new();
        for (name, input) in &self.inputs {
            let value = match (context.get(name), &input.default) {
                (Some(v), _) => v.clone(),
                (None, Some(Value::String(d))) => {
                    let ctx = serde_json::json!({"inputs": out.clone(), "vars": self.vars.clone()});
                    let rendered = template::render(d, &ctx).map_err(|e| {
                        WorkflowError::Template(TemplateError {
                            message: format!("input `{name}` default: {}", e.message),
                            line: e.line,
                        })
                    })?;
                    Value::String(rendered)
                }
                (None, Some(d)) => d.clone(),
                (None, None) => {
                    return Err(WorkflowError::MissingInput {
                        workflow: self.name.clone(),
                        input: name.clone(),
                    });
                }
            };
            out.insert(name.clone(), value);
        }
        Ok(out)
    }

    /// The template context for this workflow: the task JSON, the task's
    /// inputs resolved, this workflow's vars, and the finished stages.
    pub fn context(
        &self,
        task: &Value,
        inputs: &Map<String, Value>,
        stages: &Map<String, Value>,
    ) -> Value {
        template::build_context(task, inputs, &self.vars, stages)
    }
}

impl Stage {
    /// Evaluates `when`; a stage without one always runs.
    pub fn should_run(&self, context: &Value) -> Result<bool, TemplateError> {
        match &self.when {
            Some(expr) => template::eval_condition(expr, context),
            None => Ok(true),
        }
    }
}

impl AgentStage {
    /// The rendered prompt.
    pub fn render_prompt(&self, context: &Value) -> Result<String, TemplateError> {
        template::render(&self.prompt, context)
    }

    /// The rendered cache key, if the stage is cached (see [`CachePolicy::key`]).
    pub fn render_cache_key(&self, context: &Value) -> Result<Option<String>, TemplateError> {
        let Some(cache) = &self.cache else {
            return Ok(None);
        };
        Ok(Some(match &cache.key {
            Some(key) => template::render(key, context)?,
            None => format!(
                "{}|{}|{}",
                self.agent,
                self.platform.as_deref().unwrap_or(""),
                self.render_prompt(context)?
            ),
        }))
    }
}

impl RunbookStage {
    /// The rendered commands.
    pub fn render_commands(&self, context: &Value) -> Result<Vec<String>, TemplateError> {
        self.commands
            .iter()
            .map(|c| template::render(c, context))
            .collect()
    }
}

impl ApprovalStage {
    /// The rendered message.
    pub fn render_message(&self, context: &Value) -> Result<String, TemplateError> {
        template::render(&self.message, context)
    }
}

impl ToolStage {
    /// The arguments with every string rendered.
    pub fn render_arguments(&self, context: &Value) -> Result<Value, TemplateError> {
        template::render_value(&Value::Object(self.arguments.clone()), context)
    }
}

impl LoopStage {
    /// Whether the loop is done after an attempt (`until`); give a context
    /// holding that attempt's nested results.
    pub fn is_done(&self, context: &Value) -> Result<bool, TemplateError> {
        template::eval_condition(&self.until, context)
    }

    /// Nested stages in dependency order.
    pub fn topological_order(&self) -> Vec<&Stage> {
        topological_order(&self.stages)
    }
}

impl CheckRule {
    /// Evaluates the rule; the message is rendered only when it fails.
    pub fn evaluate(&self, context: &Value) -> Result<CheckOutcome, TemplateError> {
        let passed = template::eval_condition(&self.expect, context)?;
        let message = if passed {
            None
        } else {
            Some(template::render(&self.message, context)?)
        };
        Ok(CheckOutcome {
            name: self.name.clone(),
            passed,
            message,
        })
    }
}

/// Kahn's algorithm over one list (validation guarantees no cycle and that
/// every `needs` names a sibling); ties keep file order.
pub(crate) fn topological_order(stages: &[Stage]) -> Vec<&Stage> {
    waves(stages).into_iter().flatten().collect()
}

fn waves(stages: &[Stage]) -> Vec<Vec<&Stage>> {
    let ids: HashSet<&str> = stages.iter().map(|s| s.id.as_str()).collect();
    let mut done: HashSet<&str> = HashSet::new();
    let mut remaining: Vec<&Stage> = stages.iter().collect();
    let mut out = Vec::new();
    while !remaining.is_empty() {
        let (ready, rest): (Vec<&Stage>, Vec<&Stage>) = remaining.into_iter().partition(|s| {
            s.needs
                .iter()
                .all(|n| done.contains(n.as_str()) || !ids.contains(n.as_str()))
        });
        if ready.is_empty() {
            // A cycle (validation rejects these): keep file order for the rest.
            out.push(rest);
            break;
        }
        done.extend(ready.iter().map(|s| s.id.as_str()));
        out.push(ready);
        remaining = rest;
    }
    out
}

/// Every stage `id` depends on, directly or not, within one list.
pub(crate) fn transitive_needs<'a>(
    by_id: &HashMap<&'a str, &'a Stage>,
    id: &str,
) -> HashSet<&'a str> {
    let mut seen = HashSet::new();
    let mut todo: Vec<&str> = by_id
        .get(id)
        .map(|s| s.needs.iter().map(String::as_str).collect())
        .unwrap_or_default();
    while let Some(next) = todo.pop() {
        if let Some((key, stage)) = by_id.get_key_value(next)
            && seen.insert(*key)
        {
            todo.extend(stage.needs.iter().map(String::as_str));
        }
    }
    seen
}
