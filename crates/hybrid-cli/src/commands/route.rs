//! `hybrid route`: the router's decision, rule and reason; no network, nothing stored.

use hybrid_platform::{DefaultRouter, Router};
use serde_json::json;

use crate::cli::RouteArgs;
use crate::commands::{print_json, task_from_flags, write_stdout};
use crate::exit_code;
use crate::failure::Failure;
use crate::setup::Global;

/// Runs the command.
pub fn route(global: &Global, args: RouteArgs) -> Result<u8, Failure> {
    let config = global.load_config()?;
    let task = task_from_flags(&args.task)?;
    let names = config.platform_names();
    let d = DefaultRouter::with_default(config.default_platform()).route(&task, &names);
    if global.json {
        print_json(&json!({"platform": d.platform, "rule": d.rule, "reason": d.reason}))?;
    } else {
        write_stdout(&format!("{}\trule {}: {}\n", d.platform, d.rule, d.reason))?;
    }
    Ok(exit_code::OK)
}
