//! `hybrid run`: route a task, run it, show it live, print the result.
//!
//! | flags | stdout | stderr |
//! | --- | --- | --- |
//! | (none) | the final output (streamed as it comes when stdout is a terminal) | live view: route, stage, spinner, summary |
//! | `--json` | the TaskResult document | errors only |
//! | `--stream` | every event as a JSON line; the last line is the TaskResult | errors only |
//!
//! Ctrl-C (or SIGTERM) cancels: the task is recorded `cancelled` and the exit code is 130.

use hybrid_core::{Event, EventKind, TaskResult, TaskStatus};
use std::sync::Arc;

use std::io::IsTerminal;

use hybrid_platform::{Approver, PlatformError, PreApproved, RunOptions, StoreApprover, router};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::cli::RunArgs;
use crate::commands::{print_json, task_from_flags, write_stdout};
use crate::exit_code;
use crate::failure::Failure;
use crate::live_view::LiveView;
use crate::setup::Global;

/// Runs the command.
pub async fn run(global: &Global, args: RunArgs) -> Result<u8, Failure> {
    if args.workflow.is_some() && !matches!(args.platform.as_str(), "auto" | router::HYBRID) {
        return Err(Failure::new(
            exit_code::USAGE,
            format!(
                "--workflow runs on the hybrid route; it cannot be combined with --platform {}",
                args.platform
            ),
        ));
    }
    if let Some(dir) = &args.workdir
        && !dir.is_dir()
    {
        return Err(Failure::new(
            exit_code::USAGE,
            format!("--workdir {}: not an existing directory", dir.display()),
        ));
    }
    let config = global.load_config()?;
    let mut task = task_from_flags(&args.task)?;
    task.workflow = args.workflow.clone();
    let platform = global.platform(&config).await?;
    if args.workflow.is_some() {
        // A workflow that cannot be loaded fails before the task is stored.
        let workdir = match &args.workdir {
            Some(dir) => dir.clone(),
            None => std::env::current_dir().unwrap_or_default(),
        };
        platform.workflow_for(&task, &workdir)?;
    }
    let names = platform.platform_names();
    if args.platform != "auto" && args.platform != router::HYBRID && !names.contains(&args.platform)
    {
        return Err(Failure::new(
            exit_code::USAGE,
            format!(
                "--platform: unknown platform `{}` (known: auto, {}, hybrid)",
                args.platform,
                names.join(", ")
            ),
        ));
    }

    if args.dry_run {
        let dry = platform.dry_run(&task, Some(&args.platform)).await;
        if global.json || args.stream {
            print_json(&dry)?;
        } else {
            write_stdout(&format!(
                "route     {} (rule {}: {})\ninput     {}\nplatform  {}\n",
                dry.route.platform,
                dry.route.rule,
                dry.route.reason,
                describe(&dry.input),
                describe(&dry.platform)
            ))?;
        }
        return if dry.is_blocked() {
            Err(Failure::new(
                exit_code::BLOCKED,
                "dry run: a guardrail would block this task",
            ))
        } else {
            Ok(exit_code::OK)
        };
    }
    let attempt = Attempt {
        platform: args.platform.clone(),
        workdir: args.workdir.clone(),
        approve_as: args.approve_as.clone(),
        approval_timeout: args.approval_timeout,
        stream: args.stream,
        allow_network: config.tools.allow_network,
    };
    execute(global, &platform, attempt, Work::New(task)).await
}

/// How to carry out a run or a resume, from the command line.
pub struct Attempt {
    /// `--platform`.
    pub platform: String,
    /// `--workdir`.
    pub workdir: Option<std::path::PathBuf>,
    /// `--approve-as`.
    pub approve_as: Option<String>,
    /// `--approval-timeout` in seconds.
    pub approval_timeout: u64,
    /// `--stream`.
    pub stream: bool,
    /// `[tools] allow_network`: commands may open network sockets.
    pub allow_network: bool,
}

/// A new task, or one to resume.
pub enum Work {
    /// Run this task.
    New(hybrid_core::Task),
    /// Resume this task (`force`: even if another process holds it).
    Resume(hybrid_core::TaskId, bool),
}

/// Runs or resumes, showing it live (or as JSON), and maps the end to an exit code.
pub async fn execute(
    global: &Global,
    platform: &hybrid_platform::HybridPlatform,
    attempt: Attempt,
    work: Work,
) -> Result<u8, Failure> {
    let cancel = CancellationToken::new();
    let watcher = tokio::spawn(cancel_on_signal(cancel.clone()));
    let approver: Arc<dyn Approver> = match &attempt.approve_as {
        Some(name) => Arc::new(PreApproved { name: name.clone() }),
        None => {
            let mut a = StoreApprover {
                timeout: std::time::Duration::from_secs(attempt.approval_timeout),
                ..StoreApprover::default()
            };
            if std::io::stdin().is_terminal() && std::io::stderr().is_terminal() {
                let who = std::env::var("USER").unwrap_or_else(|_| "terminal".into());
                a = a.with_prompt(Arc::new(crate::live_view::TerminalPrompt), who);
            }
            Arc::new(a)
        }
    };
    let (tx, rx) = mpsc::channel::<Event>(256);
    let options = RunOptions {
        platform: Some(attempt.platform.clone()),
        cancel,
        workdir: attempt.workdir.clone(),
        approver: Some(approver),
        tool_limits: None,
        sandbox: hybrid_tools::SandboxPolicy {
            allow_network: attempt.allow_network,
            ..hybrid_tools::SandboxPolicy::default()
        },
        events: Some(tx),
    };
    let mode = if attempt.stream {
        Mode::Stream
    } else if global.json {
        Mode::Json
    } else {
        Mode::Human(LiveView::new())
    };
    let running = async {
        match work {
            Work::New(task) => platform.run_with(task, options).await,
            Work::Resume(id, force) => platform.resume(&id, options, force).await,
        }
    };
    let (outcome, (mode, result)) = tokio::join!(running, consume(rx, mode));
    watcher.abort();

    let result = match (&outcome, result) {
        (Ok(r), _) => Some(r.clone()),
        (Err(_), r) => r,
    };
    match (&mode, &result) {
        (Mode::Json, Some(r)) => print_json(r)?,
        (Mode::Stream, Some(r)) => {
            let line = serde_json::to_string(r).unwrap_or_default();
            write_stdout(&format!("{line}\n"))?;
        }
        (Mode::Human(view), Some(r)) => view.finish(r)?,
        _ => {}
    }
    match outcome {
        Ok(_) => Ok(exit_code::OK),
        Err(e) => {
            let code = exit_code::for_platform_error(&e);
            let message = match (&e, &result) {
                (
                    PlatformError::Task {
                        status: TaskStatus::Cancelled,
                        task_id,
                        ..
                    },
                    _,
                ) => {
                    format!("task {task_id} cancelled")
                }
                _ => e.to_string(),
            };
            Err(Failure::new(code, message))
        }
    }
}

/// One line for a layer's decision.
fn describe(d: &hybrid_guard::Decision) -> String {
    use hybrid_guard::Outcome;
    match &d.outcome {
        Outcome::Pass => "pass".to_owned(),
        Outcome::Block {
            guardrail, message, ..
        } => format!("block by {guardrail}: {message}"),
        Outcome::NeedsApproval { guardrail, message } => {
            format!("needs approval ({guardrail}): {message}")
        }
    }
}

enum Mode {
    Json,
    Stream,
    Human(LiveView),
}

async fn consume(mut rx: mpsc::Receiver<Event>, mut mode: Mode) -> (Mode, Option<TaskResult>) {
    let mut result = None;
    while let Some(event) = rx.recv().await {
        if let EventKind::Finished { result: r } = &event.kind {
            result = Some((**r).clone());
        }
        match &mut mode {
            Mode::Stream => {
                if !matches!(event.kind, EventKind::Finished { .. })
                    && let Ok(line) = serde_json::to_string(&event)
                {
                    let _ = write_stdout(&format!("{line}\n"));
                }
            }
            Mode::Human(view) => view.on_event(&event),
            Mode::Json => {}
        }
    }
    (mode, result)
}

async fn cancel_on_signal(cancel: CancellationToken) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let term = signal(SignalKind::terminate());
        match term {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    cancel.cancel();
}
