//! `hybrid metrics`: the seed's `get_metrics()`, from the store.

use std::fmt::Write as _;

use crate::commands::{print_json, write_stdout};
use crate::exit_code;
use crate::failure::Failure;
use crate::setup::Global;

/// Runs the command.
pub async fn metrics(global: &Global) -> Result<u8, Failure> {
    let store = global.open_store().await?;
    let m = store.metrics().await?;
    if global.json {
        print_json(&m)?;
        return Ok(exit_code::OK);
    }
    let mut s = String::new();
    let _ = writeln!(s, "tasks_executed       {}", m.tasks_executed);
    let _ = writeln!(s, "tasks_in_flight      {}", m.tasks_in_flight);
    let _ = writeln!(s, "avg_execution_time   {:.3}s", m.avg_execution_time);
    let _ = writeln!(s, "success_rate         {:.1}%", m.success_rate);
    let _ = writeln!(s, "platform_distribution");
    for (p, pct) in &m.platform_distribution {
        let n = m.platform_counts.get(p).copied().unwrap_or(0);
        let _ = writeln!(s, "  {p:<18} {pct:5.1}%  ({n})");
    }
    let _ = writeln!(
        s,
        "tokens               {} in, {} out, {} cache read, {} cache write",
        m.tokens.input_tokens,
        m.tokens.output_tokens,
        m.tokens.cache_read_tokens,
        m.tokens.cache_write_tokens
    );
    let _ = writeln!(
        s,
        "cost                 {} ({} tasks unpriced)",
        m.cost_usd, m.unpriced_tasks
    );
    if !m.guardrail_triggers.is_empty() {
        let _ = writeln!(s, "guardrail_triggers");
        for (name, n) in &m.guardrail_triggers {
            let _ = writeln!(s, "  {name:<18} {n}");
        }
        let kinds: Vec<String> = m
            .guardrail_kinds
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        let _ = writeln!(s, "  by outcome: {}", kinds.join(", "));
    }
    write_stdout(&s)?;
    Ok(exit_code::OK)
}
