//! The file format as serde types: exactly what a workflow file may say, with
//! unknown keys refused (`deny_unknown_fields`) and a JSON Schema derived from
//! the same types (see `workflows/workflow.schema.json`).
//!
//! These types are the raw file. [`crate::Workflow`] is the validated form an
//! engine runs: defaults applied, durations parsed, references checked.

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A workflow file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "HybridPlatform workflow")]
pub struct WorkflowSpec {
    /// The workflow's name: lowercase letters, digits and `-`.
    #[schemars(regex(pattern = r"^[a-z0-9-]+$"))]
    pub name: String,
    /// What the workflow does, in a sentence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// How many stages may run at once (default 4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_concurrency: Option<usize>,
    /// Values taken from the task's context (`--context KEY=VALUE`); an input
    /// without `default` is required.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub inputs: IndexMap<String, InputSpec>,
    /// Constants for templates (`{{ vars.NAME }}`).
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub vars: IndexMap<String, Value>,
    /// The stages, in file order.
    pub stages: Vec<StageSpec>,
}

/// One input of a workflow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    /// What the value is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The value when the task's context has none; without it the input is
    /// required. A string default is a template that may read `vars` and
    /// earlier inputs (a value from the task is used as given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
}

/// One stage as written. Exactly one of `agent`, `runbook`, `approval`,
/// `tool`, `loop`, `check` must be given (checked by validation).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StageSpec {
    /// Unique in the whole file: lowercase letters, digits and `_`.
    #[schemars(regex(pattern = r"^[a-z0-9_]+$"))]
    pub id: String,
    /// What the stage is for (shown in progress output).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Stages that must finish first. Default: the previous stage of the same
    /// list (none for the first). `[]` means "no dependencies".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub needs: Option<Vec<String>>,
    /// A minijinja expression; when false the stage is skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<String>,

    /// Agent stage: the agent (a role or a registered agent name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// Agent stage: the platform to run the agent on (default: the engine's choice).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// Agent stage: the prompt template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    /// Agent stage: what the answer is (default `text`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<OutputKind>,
    /// Agent stage with `output: json`: a JSON Schema the answer must satisfy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<Value>,
    /// Agent stage: cache the answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<CacheSpec>,
    /// Agent stage: agents this one may hand the conversation to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handoffs: Option<Vec<String>>,
    /// Agent stage: the tools it may use, instead of the agent's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<String>>,

    /// Runbook stage: commands run in parallel, no model in the loop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runbook: Option<RunbookSpec>,
    /// Approval gate: a person says yes or no.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<ApprovalSpec>,
    /// One tool call, no model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<ToolCallSpec>,
    /// Repeat nested stages until a condition holds.
    #[serde(default, rename = "loop", skip_serializing_if = "Option::is_none")]
    pub loop_: Option<LoopSpec>,
    /// Deterministic guardrails on earlier results.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<Vec<CheckSpec>>,
}

/// What an agent stage's answer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OutputKind {
    /// Free text (`stages.X.output`).
    #[default]
    Text,
    /// A JSON value (`stages.X.json`), optionally checked against `schema`.
    Json,
    /// Text ending in PASS or FAIL (`stages.X.verdict` is `pass` or `fail`).
    Verdict,
}

impl OutputKind {
    /// The name used in files.
    pub fn as_str(self) -> &'static str {
        match self {
            OutputKind::Text => "text",
            OutputKind::Json => "json",
            OutputKind::Verdict => "verdict",
        }
    }
}

/// Cache settings of an agent stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CacheSpec {
    /// How long an answer stays valid, e.g. `1h`, `30m`, `7d`.
    pub ttl: String,
    /// Template for the cache key (default: the agent, platform and rendered prompt).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// A runbook: listed commands run in parallel under the command policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunbookSpec {
    /// Command-line templates.
    pub commands: Vec<String>,
    /// How many commands run at once (default 4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_concurrency: Option<usize>,
    /// When false (default) a non-zero exit fails the stage.
    #[serde(default)]
    pub continue_on_error: bool,
    /// Time limit per command, e.g. `2m` (default: the sandbox's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
}

/// An approval gate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApprovalSpec {
    /// What the person is asked (template).
    pub message: String,
    /// How long to wait before the gate counts as rejected, e.g. `15m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// What a rejection (or timeout) does: `stop` (default) ends the workflow
    /// as rejected; `continue` records the stage with `ok: false` and goes on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_reject: Option<OnReject>,
}

/// What a rejected approval does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OnReject {
    /// End the workflow as rejected.
    #[default]
    Stop,
    /// Record `ok: false` and go on (later stages can test `stages.X.ok`).
    Continue,
}

/// One tool call without a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ToolCallSpec {
    /// The tool's name, e.g. `bash`, `http_request`, `notify`.
    pub name: String,
    /// The arguments; every string in it is a template.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub arguments: IndexMap<String, Value>,
}

/// A loop: nested stages repeated until `until` holds or attempts run out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LoopSpec {
    /// Attempts at most (at least 1).
    #[schemars(range(min = 1))]
    pub max_attempts: u32,
    /// Expression evaluated after each attempt; true ends the loop as passed.
    pub until: String,
    /// Pause between attempts, e.g. `5s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<String>,
    /// The nested stages (same schema; sequential by default).
    pub stages: Vec<StageSpec>,
}

/// One guardrail rule of a check stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckSpec {
    /// The rule's name.
    pub name: String,
    /// Expression that must be true.
    pub expect: String,
    /// Why the workflow is rejected when it is false (template).
    pub message: String,
}

/// The JSON Schema of a workflow file, as pretty JSON with a trailing newline.
pub fn json_schema() -> String {
    let schema = schemars::schema_for!(WorkflowSpec);
    let mut text = serde_json::to_string_pretty(&schema).unwrap_or_default();
    text.push('\n');
    text
}
