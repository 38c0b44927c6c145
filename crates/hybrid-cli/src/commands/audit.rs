//! `hybrid audit list|verify|export`: the tamper-evident audit trail.
//!
//! `verify` re-computes every record's hash and chain link; it exits 0 when the
//! chain is intact, else [`exit_code::AUDIT_BROKEN`] with the first record that
//! fails. It prints the head hash: keep it elsewhere to detect a cut-off tail.

use std::fmt::Write as _;

use hybrid_core::TaskId;
use hybrid_store::{AuditFilter, AuditRecord};
use serde_json::json;

use crate::cli::AuditCommand;
use crate::commands::{print_json, write_stdout};
use crate::exit_code;
use crate::failure::Failure;
use crate::setup::Global;

/// Records per page when exporting.
const EXPORT_PAGE: u32 = 1000;

/// Runs the command.
pub async fn audit(global: &Global, cmd: AuditCommand) -> Result<u8, Failure> {
    let store = global.open_store().await?;
    match cmd {
        AuditCommand::List { task, limit } => {
            let filter = AuditFilter {
                task_id: task.map(TaskId::from),
                after_seq: None,
                limit: Some(limit),
            };
            let records = store.audit_records(&filter).await?;
            if global.json {
                print_json(&records)?;
            } else {
                let mut s = String::new();
                for r in &records {
                    let _ = writeln!(s, "{}", summary(r));
                }
                write_stdout(&s)?;
            }
            Ok(exit_code::OK)
        }
        AuditCommand::Verify => {
            let v = store.verify_audit().await?;
            if global.json {
                print_json(&json!({
                    "valid": v.is_valid(),
                    "records": v.records,
                    "head_hash": v.head_hash,
                    "first_bad": v.first_bad.as_ref().map(|b| json!({"seq": b.seq, "reason": b.reason})),
                }))?;
            }
            match &v.first_bad {
                None => {
                    if !global.json {
                        let head = v.head_hash.as_deref().unwrap_or("(empty)");
                        write_stdout(&format!(
                            "audit chain intact: {} records, head {head}\n",
                            v.records
                        ))?;
                    }
                    Ok(exit_code::OK)
                }
                Some(bad) => Err(Failure::new(
                    exit_code::AUDIT_BROKEN,
                    format!("audit chain broken at {bad}"),
                )),
            }
        }
        AuditCommand::Export { format: _ } => {
            let mut after = None;
            loop {
                let filter = AuditFilter {
                    task_id: None,
                    after_seq: after,
                    limit: Some(EXPORT_PAGE),
                };
                let page = store.audit_records(&filter).await?;
                let mut s = String::new();
                for r in &page {
                    let line = serde_json::to_string(r).map_err(|e| {
                        Failure::new(
                            exit_code::TASK_FAILED,
                            format!("cannot encode record {}: {e}", r.seq),
                        )
                    })?;
                    s.push_str(&line);
                    s.push('\n');
                }
                write_stdout(&s)?;
                match page.last() {
                    Some(last) if page.len() == EXPORT_PAGE as usize => after = Some(last.seq),
                    _ => break,
                }
            }
            Ok(exit_code::OK)
        }
    }
}

fn summary(r: &AuditRecord) -> String {
    let first_line = |s: &Option<String>| {
        s.as_deref()
            .and_then(|t| t.lines().next())
            .unwrap_or("")
            .chars()
            .take(80)
            .collect::<String>()
    };
    format!(
        "#{:<5} {} {:<12} {:<16} {:<15} {}{}{}",
        r.seq,
        r.timestamp.format("%Y-%m-%d %H:%M:%S"),
        r.task_id
            .as_ref()
            .map(|t| t.as_str().chars().take(12).collect::<String>())
            .unwrap_or_default(),
        r.agent,
        r.action,
        first_line(&r.command),
        r.output
            .as_ref()
            .map(|_| format!(" → {}", first_line(&r.output)))
            .unwrap_or_default(),
        r.approved_by
            .as_ref()
            .map(|a| format!(" (approved by {a})"))
            .unwrap_or_default(),
    )
}
