//! [`GuardContext`]: what a guardrail's condition sees at a layer.
//!
//! One struct with an optional part per layer; the platform fills what it
//! knows at that point. The CEL view of it ([`GuardContext::cel_variables`]):
//!
//! | variable | fields | filled at |
//! | --- | --- | --- |
//! | `task` | `id`, `description`, `type`, `priority` (int), `requires_system_access`, `requires_multi_step`, `estimated_cost` (USD float, `0.0` when not given), `has_estimated_cost`, `context` (map), `submitted_by`, `workflow` (strings, `""` when not given) | every layer |
//! | `route` | `platform`, `rule`, `reason` | L2 onwards |
//! | `stage` | `name`, `agent`, `platform` | L2 (stage), L3, L4 |
//! | `tool` | `name`, `arguments` (JSON), `command` (`""` unless bash) | L3 |
//! | `output` | `text`, `json` (parsed JSON or `null`) | L4 |
//! | `usage` | `input_tokens`, `output_tokens`, `cache_read_tokens`, `cache_write_tokens`, `total_tokens`, `spent_usd` | when known |
//!
//! A variable whose part is missing is not defined, so an expression that
//! reads it fails to evaluate, and the guardrail fails closed.

use std::collections::HashMap;

use hybrid_core::{Money, RouteInfo, StageResult, Task, ToolCallRecord, Usage};
use serde_json::{Value, json};

/// The CEL top-level variables and the fields each one has (`None`: any).
pub(crate) const CEL_VARIABLES: &[(&str, &[&str])] = &[
    (
        "task",
        &[
            "id",
            "description",
            "type",
            "priority",
            "requires_system_access",
            "requires_multi_step",
            "estimated_cost",
            "has_estimated_cost",
            "context",
            "submitted_by",
            "workflow",
        ],
    ),
    ("route", &["platform", "rule", "reason"]),
    ("stage", &["name", "agent", "platform"]),
    ("tool", &["name", "arguments", "command"]),
    ("output", &["text", "json"]),
    (
        "usage",
        &[
            "input_tokens",
            "output_tokens",
            "cache_read_tokens",
            "cache_write_tokens",
            "total_tokens",
            "spent_usd",
        ],
    ),
];

/// The stage about to run (L2) or that produced an output (L4).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StageInfo {
    /// Stage name in the workflow.
    pub name: String,
    /// Agent running it.
    pub agent: String,
    /// Platform it runs on.
    pub platform: String,
}

/// A tool call about to run (L3).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ToolCall {
    /// Tool name (`bash`, `read_file`, …).
    pub name: String,
    /// Arguments as JSON.
    pub arguments: Value,
    /// The command line, for bash-like tools (`arguments.command`).
    pub command: Option<String>,
}

impl ToolCall {
    /// A call; `command` is taken from `arguments.command` when it is a string.
    pub fn new(name: impl Into<String>, arguments: Value) -> Self {
        let command = arguments
            .get("command")
            .and_then(Value::as_str)
            .map(str::to_owned);
        ToolCall {
            name: name.into(),
            arguments,
            command,
        }
    }
}

impl From<&ToolCallRecord> for ToolCall {
    fn from(r: &ToolCallRecord) -> Self {
        ToolCall::new(r.name.clone(), r.arguments.clone())
    }
}

/// An output about to be released (L4).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OutputInfo {
    /// The text.
    pub text: String,
    /// The text parsed as JSON, when it parses.
    pub json: Option<Value>,
}

impl OutputInfo {
    /// Wraps text, parsing it as JSON when it is JSON (also inside a ```json fence).
    pub fn new(text: impl Into<String>) -> Self {
        let text = text.into();
        let json = parse_json(&text);
        OutputInfo { text, json }
    }
}

/// Token counts as CEL `int` (not `uint`), so `usage.total_tokens > 1000` compares.
fn int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn parse_json(text: &str) -> Option<Value> {
    let t = text.trim();
    if let Ok(v) = serde_json::from_str(t) {
        return Some(v);
    }
    let inner = t
        .strip_prefix("```json")
        .or_else(|| t.strip_prefix("```"))?
        .strip_suffix("```")?;
    serde_json::from_str(inner.trim()).ok()
}

/// What a guardrail's condition sees. Build with [`GuardContext::for_task`]
/// and the `with_*` helpers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GuardContext {
    /// The task (every layer).
    pub task: Option<Task>,
    /// The routing decision (L2 onwards).
    pub route: Option<RouteInfo>,
    /// The stage (L2 for a stage, L3, L4).
    pub stage: Option<StageInfo>,
    /// The tool call (L3).
    pub tool: Option<ToolCall>,
    /// The output (L4).
    pub output: Option<OutputInfo>,
    /// Tokens used so far.
    pub usage: Option<Usage>,
    /// Money spent so far.
    pub spent: Option<Money>,
}

impl GuardContext {
    /// A context holding only the task (L1).
    pub fn for_task(task: &Task) -> Self {
        GuardContext {
            task: Some(task.clone()),
            ..GuardContext::default()
        }
    }

    /// Adds the routing decision.
    pub fn with_route(mut self, route: RouteInfo) -> Self {
        self.route = Some(route);
        self
    }

    /// Adds the stage.
    pub fn with_stage(
        mut self,
        name: impl Into<String>,
        agent: impl Into<String>,
        platform: impl Into<String>,
    ) -> Self {
        self.stage = Some(StageInfo {
            name: name.into(),
            agent: agent.into(),
            platform: platform.into(),
        });
        self
    }

    /// Adds a tool call.
    pub fn with_tool(mut self, tool: ToolCall) -> Self {
        self.tool = Some(tool);
        self
    }

    /// Adds a bash call running `command`.
    pub fn with_command(self, command: impl Into<String>) -> Self {
        self.with_tool(ToolCall::new("bash", json!({ "command": command.into() })))
    }

    /// Adds an output.
    pub fn with_output(mut self, text: impl Into<String>) -> Self {
        self.output = Some(OutputInfo::new(text));
        self
    }

    /// Adds a finished stage: its name, agent, platform, output and usage.
    pub fn with_stage_result(self, name: impl Into<String>, r: &StageResult) -> Self {
        let mut ctx = self
            .with_stage(name, r.agent.clone(), r.platform.clone())
            .with_output(r.output.clone())
            .with_usage(r.usage);
        if let Some(cost) = r.cost_usd {
            ctx.spent = Some(cost);
        }
        ctx
    }

    /// Adds usage so far.
    pub fn with_usage(mut self, usage: Usage) -> Self {
        self.usage = Some(usage);
        self
    }

    /// Adds money spent so far.
    pub fn with_spent(mut self, spent: Money) -> Self {
        self.spent = Some(spent);
        self
    }

    /// The CEL variables as JSON, one per part that is present.
    pub fn cel_variables(&self) -> HashMap<&'static str, Value> {
        let mut vars = HashMap::new();
        if let Some(t) = &self.task {
            vars.insert(
                "task",
                json!({
                    "id": t.id.as_str(),
                    "description": t.description,
                    "type": t.task_type.as_str(),
                    "priority": i64::from(t.priority.get()),
                    "requires_system_access": t.requires_system_access,
                    "requires_multi_step": t.requires_multi_step,
                    "estimated_cost": t.estimated_cost.map_or(0.0, Money::as_usd),
                    "has_estimated_cost": t.estimated_cost.is_some(),
                    "context": Value::Object(t.context.clone()),
                    "submitted_by": t.submitted_by.clone().unwrap_or_default(),
                    "workflow": t.workflow.clone().unwrap_or_default(),
                }),
            );
        }
        if let Some(r) = &self.route {
            vars.insert(
                "route",
                json!({ "platform": r.platform, "rule": r.rule, "reason": r.reason }),
            );
        }
        if let Some(s) = &self.stage {
            vars.insert(
                "stage",
                json!({ "name": s.name, "agent": s.agent, "platform": s.platform }),
            );
        }
        if let Some(c) = &self.tool {
            vars.insert(
                "tool",
                json!({
                    "name": c.name,
                    "arguments": c.arguments,
                    "command": c.command.clone().unwrap_or_default(),
                }),
            );
        }
        if let Some(o) = &self.output {
            vars.insert(
                "output",
                json!({ "text": o.text, "json": o.json.clone().unwrap_or(Value::Null) }),
            );
        }
        if self.usage.is_some() || self.spent.is_some() {
            let u = self.usage.unwrap_or_default();
            vars.insert(
                "usage",
                json!({
                    "input_tokens": int(u.input_tokens),
                    "output_tokens": int(u.output_tokens),
                    "cache_read_tokens": int(u.cache_read_tokens),
                    "cache_write_tokens": int(u.cache_write_tokens),
                    "total_tokens": int(u.total()),
                    "spent_usd": self.spent.map_or(0.0, Money::as_usd),
                }),
            );
        }
        vars
    }
}
