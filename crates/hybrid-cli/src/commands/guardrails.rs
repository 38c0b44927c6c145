//! `hybrid guardrails list`: the active guardrails and where each came from —
//! the file's `[[guardrails]]`, the command policy (which guards every tool
//! call at the execution layer), and the `[budgets]` and `[rate_limits]`
//! checked before every model call (tool rate limits: before every tool call).

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
    rows.extend(
        limit_rows(&config)?
            .into_iter()
            .map(|i| (i, source.clone())),
    );
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

/// The `[budgets]` and `[rate_limits]` as guardrail rows.
fn limit_rows(config: &hybrid_platform::HybridConfig) -> Result<Vec<GuardrailInfo>, Failure> {
    use hybrid_guard::{GuardrailKind, Layer};
    let mut rows = Vec::new();
    let b = config.budgets();
    for (scope, limit) in [
        ("task", b.per_task),
        ("platform", b.per_platform),
        ("submitter", b.per_submitter),
        ("day", b.per_day),
    ] {
        if let Some(limit) = limit {
            rows.push(GuardrailInfo {
                name: format!("budget:{scope}"),
                kind: GuardrailKind::CostLimit,
                layer: Layer::Platform,
                source: format!("budget: ${:.4} per {scope}", limit.as_usd()),
                message: format!(
                    "a model call whose estimate would take a {scope} past ${:.4} is not sent",
                    limit.as_usd()
                ),
                hold_output: false,
            });
        }
    }
    if let Some(rates) = config.rate_limits()? {
        for rule in rates.rules() {
            let layer = if rule.scope.kind() == "tool" {
                Layer::Execution
            } else {
                Layer::Platform
            };
            rows.push(GuardrailInfo {
                name: format!("rate_limit:{}", rule.scope),
                kind: GuardrailKind::RateLimit,
                layer,
                source: format!("rate limit: {}", rule.describe()),
                message: format!(
                    "a call over the limit waits up to {:.1}s, then is refused",
                    rates.max_wait().as_secs_f64()
                ),
                hold_output: false,
            });
        }
    }
    Ok(rows)
}
