//! `hybrid tasks list|show|cancel|resume`: what the store knows about tasks,
//! and continuing one that was interrupted or failed.

use std::fmt::Write as _;

use hybrid_core::{TaskId, TaskStatus};
use hybrid_store::TaskFilter;
use serde_json::json;

use crate::cli::TasksCommand;
use crate::commands::{print_json, write_stdout};
use crate::exit_code;
use crate::failure::Failure;
use crate::setup::Global;

/// Runs the command.
pub async fn tasks(global: &Global, cmd: TasksCommand) -> Result<u8, Failure> {
    if let TasksCommand::Resume {
        id,
        force,
        approve_as,
        approval_timeout,
        workdir,
        stream,
    } = cmd
    {
        if let Some(dir) = &workdir
            && !dir.is_dir()
        {
            return Err(Failure::new(
                exit_code::USAGE,
                format!("--workdir {}: not an existing directory", dir.display()),
            ));
        }
        let config = global.load_config()?;
        let platform = global.platform(&config).await?;
        let attempt = crate::commands::run::Attempt {
            platform: "auto".into(),
            workdir,
            approve_as,
            approval_timeout,
            stream,
            allow_network: config.tools.allow_network,
        };
        let work = crate::commands::run::Work::Resume(TaskId::from(id), force);
        return crate::commands::run::execute(global, &platform, attempt, work).await;
    }
    let store = global.open_store().await?;
    match cmd {
        TasksCommand::List { status, limit } => {
            let rows = store
                .list_tasks(&TaskFilter {
                    status,
                    limit: Some(limit),
                })
                .await?;
            if global.json {
                print_json(&rows)?;
            } else {
                let mut s = String::new();
                for r in &rows {
                    let desc: String = r.description.chars().take(60).collect();
                    let _ = writeln!(
                        s,
                        "{}  {:<17} {:<8} {}  {}",
                        r.id,
                        r.status.as_str(),
                        r.platform.as_deref().unwrap_or("-"),
                        r.created_at.format("%Y-%m-%d %H:%M:%S"),
                        desc
                    );
                }
                write_stdout(&s)?;
            }
            Ok(exit_code::OK)
        }
        TasksCommand::Show { id, events } => {
            let id = TaskId::from(id);
            let Some(rec) = store.get_task(&id).await? else {
                return Err(Failure::new(
                    exit_code::NOT_FOUND,
                    format!("no task with id {id}"),
                ));
            };
            let events = if events {
                Some(store.events(&id).await?)
            } else {
                None
            };
            if global.json {
                let mut doc = match &rec.result {
                    Some(r) => serde_json::to_value(r).unwrap_or_default(),
                    None => json!({
                        "task_id": rec.task.id,
                        "status": rec.status,
                        "platform": rec.route.as_ref().map(|r| r.platform.clone()),
                        "route": rec.route,
                        "task": rec.task,
                    }),
                };
                if let (Some(ev), Some(obj)) = (events, doc.as_object_mut()) {
                    obj.insert(
                        "events".into(),
                        serde_json::to_value(ev).unwrap_or_default(),
                    );
                }
                print_json(&doc)?;
            } else {
                let mut s = String::new();
                let _ = writeln!(s, "task     {}", rec.task.id);
                let _ = writeln!(s, "status   {}", rec.status);
                let _ = writeln!(s, "created  {}", rec.created_at.to_rfc3339());
                if let Some(route) = &rec.route {
                    let _ = writeln!(
                        s,
                        "route    {} (rule {}: {})",
                        route.platform, route.rule, route.reason
                    );
                }
                let _ = writeln!(s, "task     {}", rec.task.description);
                if let Some(r) = &rec.result {
                    let cost = r
                        .cost_usd
                        .map_or_else(|| "unknown".to_owned(), |c| c.to_string());
                    let _ = writeln!(
                        s,
                        "usage    {} in, {} out; cost {cost}; {} ms",
                        r.usage.input_tokens, r.usage.output_tokens, r.duration_ms
                    );
                    if let Some(e) = &r.error {
                        let _ = writeln!(s, "error    {e}");
                    }
                    let _ = writeln!(s, "\n{}", r.output);
                }
                for e in events.unwrap_or_default() {
                    let _ = writeln!(s, "{} #{} {}", e.at.to_rfc3339(), e.seq, e.kind.name());
                }
                write_stdout(&s)?;
            }
            Ok(exit_code::OK)
        }
        TasksCommand::Resume { .. } => Ok(exit_code::OK),
        TasksCommand::Cancel { id } => {
            let id = TaskId::from(id);
            if store.get_task(&id).await?.is_none() {
                return Err(Failure::new(
                    exit_code::NOT_FOUND,
                    format!("no task with id {id}"),
                ));
            }
            let from = store
                .transition(
                    &id,
                    TaskStatus::Cancelled,
                    Some("cancelled from the command line"),
                )
                .await
                .map_err(|e| {
                    Failure::new(exit_code::USAGE, format!("cannot cancel task {id}: {e}"))
                })?;
            if global.json {
                print_json(&json!({"task_id": id, "from": from, "status": "cancelled"}))?;
            } else {
                write_stdout(&format!("task {id}: {from} -> cancelled\n"))?;
            }
            Ok(exit_code::OK)
        }
    }
}
