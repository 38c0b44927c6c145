//! One module per subcommand.

pub mod approvals;
pub mod audit;
pub mod guardrails;
pub mod metrics;
pub mod policy;
pub mod route;
pub mod run;
pub mod tasks;
pub mod workflows;

use std::io::Write;

use hybrid_core::{Money, Task};
use serde::Serialize;

use crate::cli::TaskFlags;
use crate::exit_code;
use crate::failure::Failure;

/// Builds the task from its flags, reading `--context-file` if given.
pub fn task_from_flags(flags: &TaskFlags) -> Result<Task, Failure> {
    let mut task = Task::new(flags.description.clone())
        .with_system_access(flags.system_access)
        .with_multi_step(flags.multi_step);
    if flags.description.trim().is_empty() {
        return Err(Failure::new(exit_code::USAGE, "DESCRIPTION is empty"));
    }
    if let Some(t) = flags.task_type {
        task = task.with_type(t);
    }
    if let Some(p) = flags.priority {
        task = task.with_priority(p);
    }
    if let Some(path) = &flags.context_file {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Failure::new(
                exit_code::USAGE,
                format!("--context-file {}: {e}", path.display()),
            )
        })?;
        let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
            Failure::new(
                exit_code::USAGE,
                format!("--context-file {}: not valid JSON: {e}", path.display()),
            )
        })?;
        let serde_json::Value::Object(map) = value else {
            return Err(Failure::new(
                exit_code::USAGE,
                format!("--context-file {}: must hold a JSON object", path.display()),
            ));
        };
        task.context.extend(map);
    }
    for (k, v) in &flags.context {
        task.context.insert(k.clone(), v.clone());
    }
    if let Some(usd) = flags.estimated_cost {
        let cost = Money::try_from_usd(usd)
            .map_err(|e| Failure::new(exit_code::USAGE, format!("--estimated-cost: {e}")))?;
        task = task.with_estimated_cost(cost);
    }
    if let Ok(user) = std::env::var("USER") {
        task = task.with_submitter(user);
    }
    Ok(task)
}

/// Writes one JSON document (pretty) and a newline to stdout.
pub fn print_json<T: Serialize>(value: &T) -> Result<(), Failure> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| Failure::new(exit_code::TASK_FAILED, format!("cannot encode JSON: {e}")))?;
    write_stdout(&format!("{text}\n"))
}

/// Writes text to stdout; a closed pipe is not an error worth a panic.
pub fn write_stdout(text: &str) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .or_else(|e| {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                Ok(())
            } else {
                Err(e)
            }
        })
        .map_err(|e| {
            Failure::new(
                exit_code::TASK_FAILED,
                format!("cannot write to stdout: {e}"),
            )
        })
}
