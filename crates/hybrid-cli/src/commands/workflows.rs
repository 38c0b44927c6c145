//! `hybrid workflows list|show|validate`: the built-in workflows and the
//! `*.yaml`/`*.yml` files in `./workflows/` (a file named like a built-in
//! overrides it). A bad workflow file is a configuration error (exit 3); an
//! unknown name or a missing file is "not found" (exit 8).

use std::fmt::Write as _;
use std::path::Path;

use hybrid_workflow::{Catalog, Stage, StageKind, ValidateOptions, Workflow, WorkflowError};
use serde_json::{Value, json};

use crate::cli::WorkflowsCommand;
use crate::commands::{print_json, write_stdout};
use crate::exit_code;
use crate::failure::Failure;
use crate::setup::Global;

/// Where project workflow files live, relative to the working directory.
const WORKFLOWS_DIR: &str = "workflows";

impl From<WorkflowError> for Failure {
    fn from(e: WorkflowError) -> Self {
        let code = if e.is_not_found() {
            exit_code::NOT_FOUND
        } else {
            exit_code::CONFIG
        };
        Failure::new(code, e.to_string())
    }
}

/// Runs the command.
pub fn workflows(global: &Global, cmd: WorkflowsCommand) -> Result<u8, Failure> {
    let options = options(global)?;
    match cmd {
        WorkflowsCommand::List => list(global, &options),
        WorkflowsCommand::Show { workflow } => {
            let catalog = Catalog::discover(Path::new(WORKFLOWS_DIR), &options)?;
            let wf = catalog.resolve(&workflow)?;
            if global.json {
                print_json(&workflow_json(&wf))?;
            } else {
                write_stdout(&show_text(&wf))?;
            }
            Ok(exit_code::OK)
        }
        WorkflowsCommand::Validate { file } => {
            let wf = hybrid_workflow::load_file(&file, &options)?;
            if global.json {
                print_json(&json!({"ok": true, "name": wf.name(), "stages": wf.stage_count()}))?;
            } else {
                write_stdout(&format!(
                    "ok: {} ({} stages)\n",
                    wf.name(),
                    wf.stage_count()
                ))?;
            }
            Ok(exit_code::OK)
        }
    }
}

/// The six roles and two platforms, plus the agents and platforms of the
/// configuration file.
fn options(global: &Global) -> Result<ValidateOptions, Failure> {
    let config = global.load_config()?;
    let mut options = ValidateOptions::default();
    for name in config.agents.keys() {
        if !options.known_agents.contains(name) {
            options.known_agents.push(name.clone());
        }
    }
    for name in config.platforms.keys() {
        if !options.known_platforms.contains(name) {
            options.known_platforms.push(name.clone());
        }
    }
    Ok(options)
}

fn list(global: &Global, options: &ValidateOptions) -> Result<u8, Failure> {
    let catalog = Catalog::discover(Path::new(WORKFLOWS_DIR), options)?;
    for entry in catalog.entries() {
        if let Err(e) = &entry.workflow {
            eprintln!("hybrid: warning: {e}");
        }
    }
    if global.json {
        let rows: Vec<Value> = catalog
            .entries()
            .iter()
            .map(|e| {
                let mut row = json!({
                    "name": e.name,
                    "source": e.source.to_string(),
                    "overrides_builtin": e.overrides_builtin,
                });
                match &e.workflow {
                    Ok(wf) => {
                        row["stages"] = json!(wf.stage_count());
                        row["description"] = json!(wf.description());
                    }
                    Err(err) => row["error"] = json!(err.to_string()),
                }
                row
            })
            .collect();
        print_json(&rows)?;
        return Ok(exit_code::OK);
    }
    let width = catalog
        .entries()
        .iter()
        .map(|e| e.name.len())
        .max()
        .unwrap_or(4)
        .max(4);
    let mut s = format!(
        "{:<width$}  {:>6}  {}  ({})\n",
        "NAME", "STAGES", "DESCRIPTION", "SOURCE"
    );
    for e in catalog.entries() {
        let (stages, description) = match &e.workflow {
            Ok(wf) => (wf.stage_count().to_string(), wf.description().to_owned()),
            Err(_) => ("-".to_owned(), "INVALID (see the warning above)".to_owned()),
        };
        let _ = writeln!(
            s,
            "{:<width$}  {:>6}  {}  ({})",
            e.name,
            stages,
            description,
            e.source_label()
        );
    }
    write_stdout(&s)?;
    Ok(exit_code::OK)
}

fn show_text(wf: &Workflow) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{} — {}", wf.name(), wf.description());
    let _ = writeln!(
        s,
        "source: {}; at most {} stages at once",
        wf.source(),
        wf.max_concurrency()
    );
    if !wf.inputs().is_empty() {
        let _ = writeln!(s, "inputs:");
        for input in wf.inputs().values() {
            let need = match &input.default {
                None => "required".to_owned(),
                Some(d) => format!("default {d}"),
            };
            let _ = writeln!(
                s,
                "  {:<20} {:<28} {}",
                input.name,
                need,
                input.description.as_deref().unwrap_or("")
            );
        }
    }
    let _ = writeln!(s, "stages:");
    stages_text(&mut s, wf.stages(), 1);
    s
}

fn stages_text(s: &mut String, stages: &[Stage], depth: usize) {
    let indent = "  ".repeat(depth);
    for stage in stages {
        let needs = if stage.needs.is_empty() {
            String::new()
        } else {
            format!(" ← {}", stage.needs.join(", "))
        };
        let when = stage
            .when
            .as_deref()
            .map(|w| format!(" when {w}"))
            .unwrap_or_default();
        let line = format!(
            "{indent}{:<20} {:<34}{needs}{when}",
            stage.id,
            kind_summary(&stage.kind)
        );
        let _ = writeln!(s, "{}", line.trim_end());
        if let StageKind::Loop(l) = &stage.kind {
            stages_text(s, &l.stages, depth + 1);
        }
    }
}

fn kind_summary(kind: &StageKind) -> String {
    match kind {
        StageKind::Agent(a) => {
            let mut t = format!(
                "agent {}@{} ({})",
                a.agent,
                a.platform.as_deref().unwrap_or("auto"),
                a.output.as_str()
            );
            if a.cache.is_some() {
                t.push_str(" cached");
            }
            t
        }
        StageKind::Runbook(r) => format!("runbook, {} command(s)", r.commands.len()),
        StageKind::Approval(_) => "approval".to_owned(),
        StageKind::Tool(t) => format!("tool {}", t.name),
        StageKind::Loop(l) => format!("loop, up to {} attempts", l.max_attempts),
        StageKind::Check(rules) => format!("check, {} rule(s)", rules.len()),
    }
}

fn workflow_json(wf: &Workflow) -> Value {
    json!({
        "name": wf.name(),
        "description": wf.description(),
        "source": wf.source().to_string(),
        "max_concurrency": wf.max_concurrency(),
        "inputs": wf.inputs().values().collect::<Vec<_>>(),
        "vars": wf.vars(),
        "stages": wf.stages().iter().map(stage_json).collect::<Vec<_>>(),
    })
}

fn stage_json(stage: &Stage) -> Value {
    let mut v = json!({
        "id": stage.id,
        "kind": stage.kind.name(),
        "needs": stage.needs,
        "line": stage.line,
    });
    if let Some(d) = &stage.description {
        v["description"] = json!(d);
    }
    if let Some(w) = &stage.when {
        v["when"] = json!(w);
    }
    match &stage.kind {
        StageKind::Agent(a) => {
            v["agent"] = json!(a.agent);
            v["platform"] = json!(a.platform);
            v["output"] = json!(a.output.as_str());
            v["cached"] = json!(a.cache.is_some());
            if !a.handoffs.is_empty() {
                v["handoffs"] = json!(a.handoffs);
            }
            if let Some(t) = &a.tools {
                v["tools"] = json!(t);
            }
        }
        StageKind::Runbook(r) => {
            v["commands"] = json!(r.commands);
            v["continue_on_error"] = json!(r.continue_on_error);
        }
        StageKind::Approval(a) => {
            v["message"] = json!(a.message);
            v["timeout_secs"] = json!(a.timeout.map(|t| t.as_secs()));
        }
        StageKind::Tool(t) => {
            v["tool"] = json!(t.name);
            v["arguments"] = json!(t.arguments);
        }
        StageKind::Loop(l) => {
            v["max_attempts"] = json!(l.max_attempts);
            v["until"] = json!(l.until);
            v["stages"] = json!(l.stages.iter().map(stage_json).collect::<Vec<_>>());
        }
        StageKind::Check(rules) => {
            v["rules"] = json!(
                rules
                    .iter()
                    .map(|r| json!({"name": r.name, "expect": r.expect}))
                    .collect::<Vec<_>>()
            );
        }
    }
    v
}
