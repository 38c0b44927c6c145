//! `hybrid approvals list|approve|reject`: answer the tool calls that wait for a
//! person, from any process that shares the database.

use std::fmt::Write as _;

use hybrid_store::{ApprovalFilter, ApprovalStatus};

use crate::cli::ApprovalsCommand;
use crate::commands::{print_json, write_stdout};
use crate::exit_code;
use crate::failure::Failure;
use crate::setup::Global;

/// Runs the command.
pub async fn approvals(global: &Global, cmd: ApprovalsCommand) -> Result<u8, Failure> {
    let store = global.open_store().await?;
    match cmd {
        ApprovalsCommand::List { all } => {
            let filter = ApprovalFilter {
                status: (!all).then_some(ApprovalStatus::Pending),
                ..ApprovalFilter::default()
            };
            let list = store.list_approvals(&filter).await?;
            if global.json {
                print_json(&list)?;
            } else {
                let mut s = String::new();
                for a in &list {
                    let _ = writeln!(
                        s,
                        "{}  {:<8} task {}  {} `{}` (rule {}){}",
                        a.id,
                        serde_json::to_value(a.status)
                            .ok()
                            .and_then(|v| v.as_str().map(str::to_owned))
                            .unwrap_or_default(),
                        a.task_id,
                        a.tool,
                        a.command,
                        a.rule,
                        a.decided_by
                            .as_ref()
                            .map(|b| format!(" by {b}"))
                            .unwrap_or_default()
                    );
                }
                write_stdout(&s)?;
            }
            Ok(exit_code::OK)
        }
        ApprovalsCommand::Approve { id, by, note } => {
            decide(global, &store, &id, true, &by, note).await
        }
        ApprovalsCommand::Reject { id, by, reason } => {
            decide(global, &store, &id, false, &by, reason).await
        }
    }
}

async fn decide(
    global: &Global,
    store: &std::sync::Arc<dyn hybrid_store::Store>,
    id: &str,
    approve: bool,
    by: &str,
    note: Option<String>,
) -> Result<u8, Failure> {
    if by.trim().is_empty() {
        return Err(Failure::new(
            exit_code::USAGE,
            "--by: give the name of who answers",
        ));
    }
    if store.get_approval(id).await?.is_none() {
        return Err(Failure::new(
            exit_code::NOT_FOUND,
            format!("no approval with id {id}"),
        ));
    }
    let a = store
        .decide_approval(id, approve, by, note.as_deref())
        .await
        .map_err(|e| Failure::new(exit_code::USAGE, e.to_string()))?;
    if global.json {
        print_json(&a)?;
    } else {
        let verb = if approve { "approved" } else { "rejected" };
        write_stdout(&format!("{} {verb} by {by}: `{}`\n", a.id, a.command))?;
    }
    Ok(exit_code::OK)
}
