//! Declarative workflow files for HybridPlatform: the format, loading with
//! precise one-line errors, validation, templating, and the built-in
//! workflows. The engine that runs workflows lives in `hybrid-platform`; this
//! crate gives it a validated [`Workflow`] whose stages it can schedule and
//! whose templates it can render.
//!
//! # The format
//!
//! ```yaml
//! name: incident-response            # [a-z0-9-]+
//! description: "Assess, diagnose, fix with approval, verify, report."
//! max_concurrency: 4                 # stages running at once (default 4)
//! inputs:                            # from the task's context (--context KEY=VALUE)
//!   service: { description: "the service", default: "web" }
//!   health_url: { description: "its health endpoint" }   # no default → required
//! vars: { coverage_threshold: 80 }   # constants for templates
//! stages:
//!   - id: assess
//!     agent: coordinator
//!     platform: openai
//!     prompt: "Incident: {{ task.description }} on {{ inputs.service }}"
//!   - id: disk
//!     needs: [assess]                # parallel branches: several stages needing the same one
//!     runbook: { commands: ["df -h"], continue_on_error: true }
//! ```
//!
//! Top-level keys:
//!
//! | key | type | meaning |
//! | --- | --- | --- |
//! | `name` | string `[a-z0-9-]+` | required; how `--workflow NAME` finds it |
//! | `description` | string | one sentence |
//! | `max_concurrency` | integer ≥ 1 | stages running at once (default 4) |
//! | `inputs` | map name → `{description, default}` | values from the task's context; no `default` = required |
//! | `vars` | map name → any | constants (`{{ vars.NAME }}`) |
//! | `stages` | list of stages | at least one |
//!
//! Every stage has `id` (unique in the file, `[a-z0-9_]+`) and exactly one of
//! the kinds below. Common keys: `description`; `needs` (ids of the same list;
//! **default: the previous stage of the list**, none for the first; `[]` = no
//! dependencies; stages whose needs are met run concurrently); `when` (an
//! expression; false → the stage is skipped).
//!
//! | kind | keys | what runs |
//! | --- | --- | --- |
//! | agent | `agent`, `prompt`, `platform`?, `output`? (`text` \| `json` \| `verdict`), `schema`? (with `json`), `cache`? `{ttl, key?}`, `handoffs`? `[agent…]`, `tools`? `[tool…]` | a model; `verdict` answers end in PASS/FAIL |
//! | runbook | `runbook: {commands, max_concurrency? (4), continue_on_error? (false), timeout?}` | the commands, in parallel, under the command policy, no model |
//! | approval | `approval: {message, timeout?, on_reject? (stop \\| continue)}` | a person says yes or no; a rejection ends the workflow unless `on_reject: continue` |
//! | tool | `tool: {name, arguments}` | one tool call (every string argument is a template), no model |
//! | loop | `loop: {max_attempts, until, delay?, stages}` | nested stages (sequential by default) until `until` holds |
//! | check | `check: [{name, expect, message}]` | guardrails: a false `expect` ends the workflow rejected with `message` |
//!
//! Durations (`ttl`, `timeout`, `delay`) are like `5s`, `15m`, `1h`, `7d`.
//!
//! # Templates
//!
//! Prompts, commands, messages, tool arguments and cache keys are
//! [minijinja](https://docs.rs/minijinja) templates; `when`, `until` and
//! `expect` are expressions. Undefined variables are errors. They see `task`
//! (`id, description, type, priority, context, submitted_by,
//! estimated_cost`), `inputs`, `vars`, `stages.<id>` (`output, status, verdict,
//! json, ok, commands[{command, exit_code, output}], attempt, error`; see
//! [`StageOutcome`]) and, inside a loop, `attempt` (1-based). A stage may read
//! only stages it depends on (directly or not) and their nested loop stages —
//! anything else could still be running, so validation refuses it. Inside a
//! loop a stage may also read a later sibling's result from the previous
//! attempt (guard it with `{% if attempt > 1 %}`). Extra filter:
//! `truncate(length, end)`.
//!
//! # Errors
//!
//! Every problem is one line, `FILE:LINE: KEY: problem`:
//!
//! ```
//! use hybrid_workflow::{load_str, ValidateOptions};
//!
//! let yaml = "\
//! name: demo
//! stages:
//!   - id: plan
//!     agent: coordinator
//!     prompt: \"Plan: {{ task.description }}\"
//!   - id: gate
//!     approval: { message: \"Go?\", timout: \"15m\" }
//! ";
//! let err = load_str("demo.yaml", yaml, &ValidateOptions::default()).unwrap_err();
//! assert_eq!(
//!     err.to_string(),
//!     "demo.yaml:7: stages[1].approval.timout: unknown key (expected one of: message, timeout, on_reject)"
//! );
//!
//! let ok = load_str("demo.yaml", &yaml.replace("timout", "timeout"), &ValidateOptions::default()).unwrap();
//! assert_eq!(ok.stages()[1].needs, ["plan"]);          // the default: the previous stage
//! ```
//!
//! # Running one (what an engine does)
//!
//! ```
//! use hybrid_workflow::{builtin, StageKind, StageOutcome, ValidateOptions};
//! use serde_json::{json, Map};
//!
//! let wf = builtin("plan-execute-verify").unwrap().load(&ValidateOptions::default()).unwrap();
//! let task = json!({"description": "Count the files in src/", "context": {}});
//! let inputs = wf.resolve_inputs(&Map::new()).unwrap();
//! let mut done = Map::new();
//! for stage in wf.topological_order() {
//!     let ctx = wf.context(&task, &inputs, &done);
//!     if !stage.should_run(&ctx).unwrap() {
//!         done.insert(stage.id.clone(), StageOutcome::skipped().to_value());
//!         continue;
//!     }
//!     if let StageKind::Agent(agent) = &stage.kind {
//!         let prompt = agent.render_prompt(&ctx).unwrap();
//!         assert!(!prompt.is_empty());
//!     }
//!     done.insert(stage.id.clone(), StageOutcome::completed("PASS").to_value());
//! }
//! assert_eq!(done.keys().collect::<Vec<_>>(), ["planning", "execution", "verification"]);
//! ```

mod builtin;
mod catalog;
mod error;
mod load;
mod spec;
mod template;
mod validate;
mod workflow;

pub use builtin::{BUILTINS, Builtin, builtin};
pub use catalog::{Catalog, CatalogEntry};
pub use error::WorkflowError;
pub use load::{Parsed, SpanIndex, load_file, load_str, parse};
pub use spec::{
    ApprovalSpec, CacheSpec, CheckSpec, InputSpec, LoopSpec, OnReject, OutputKind, RunbookSpec,
    StageSpec, ToolCallSpec, WorkflowSpec, json_schema,
};
pub use template::{
    TemplateError, build_context, eval, eval_condition, render, render_value, with_attempt,
};
pub use validate::{
    DEFAULT_AGENTS, DEFAULT_MAX_CONCURRENCY, DEFAULT_PLATFORMS, ValidateOptions, validate,
};
pub use workflow::{
    AgentStage, ApprovalStage, CachePolicy, CheckOutcome, CheckRule, CommandOutcome, Input,
    LoopStage, RunbookStage, STAGE_RESULT_FIELDS, Stage, StageKind, StageOutcome, StageStatus,
    TASK_FIELDS, ToolStage, Verdict, Workflow, WorkflowSource,
};
