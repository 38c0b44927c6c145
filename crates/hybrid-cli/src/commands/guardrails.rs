//! `hybrid guardrails list`: the active guardrails and where each came from —
//! the file's `[[guardrails]]` and the command policy, which guards every tool
//! call at the execution layer.

use std::fmt::Write as _;

use hybrid_guard::GuardrailInfo;
use serde_json::json;

use crate::cli::GuardrailsCommand;
use crate::commands::{print_json, write_stdout};
use crate::exit_code;
use crate::failure::Failure;
use crate::setup::Global;

/// Runs the command.
pub async fn guardrails(global: &Global, cmd: GuardrailsCommand) -> Result<u8, Failure> {
    let GuardrailsCommand::List = cmd;
    let config = global.load_config()?;
    let source = config
        .source
        .as_ref()
        .map_or_else(|| "defaults".to_owned(), |p| p.display().to_string());
    let mut rows: Vec<(GuardrailInfo, String)> = config
        .guardrails()
        .map_err(|(_, key, message)| Failure::new(exit_code::CONFIG, format!("{key}: {message}")))?
        .iter()
        .map(|g| (g.info(), source.clone()))
        .collect();
    let policy_from = if config.policy.is_some() {
        source.clone()
    } else {
        "the seed's default policy".into()
    };
    let policy = hybrid_guard::Guardrail::command_policy(config.command_policy()?);
    rows.push((policy.info(), policy_from));
    if global.json {
        let list: Vec<_> = rows
            .iter()
            .map(|(info, from)| {
                let mut v = serde_json::to_value(info).unwrap_or_default();
                if let Some(obj) = v.as_object_mut() {
                    obj.insert("from".into(), json!(from));
                }
                v
            })
            .collect();
        print_json(&list)?;
    } else {
        let mut s = String::new();
        for (g, from) in &rows {
            let _ = writeln!(
                s,
                "{:<20} {:<18} {:<10} {}  ({})",
                g.name,
                g.kind.as_str(),
                g.layer.as_str(),
                g.source,
                from
            );
        }
        write_stdout(&s)?;
    }
    Ok(exit_code::OK)
}
