//! The live view of `hybrid run` on stderr: route, stage, a spinner while the
//! model thinks, streamed text, and a closing summary.
//!
//! On a terminal the spinner animates and text streams to stdout as it comes;
//! when stderr is not a terminal the view prints plain progress lines instead.

use std::io::IsTerminal;
use std::time::Duration;

use hybrid_core::{Event, EventKind, TaskResult, TaskStatus};
use indicatif::{ProgressBar, ProgressStyle};

use crate::commands::write_stdout;
use crate::failure::Failure;

/// Shows a run's progress.
#[derive(Debug)]
pub struct LiveView {
    spinner: Option<ProgressBar>,
    stdout_tty: bool,
    streamed_text: bool,
}

impl LiveView {
    /// A view suited to where stderr and stdout go.
    pub fn new() -> Self {
        let spinner = std::io::stderr().is_terminal().then(|| {
            let pb = ProgressBar::new_spinner();
            if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} {elapsed}") {
                pb.set_style(style);
            }
            pb.enable_steady_tick(Duration::from_millis(100));
            pb.set_message("routing");
            pb
        });
        LiveView {
            spinner,
            stdout_tty: std::io::stdout().is_terminal(),
            streamed_text: false,
        }
    }

    fn line(&self, text: &str) {
        match &self.spinner {
            Some(pb) => pb.println(text),
            None => eprintln!("{text}"),
        }
    }

    /// Reacts to one event.
    pub fn on_event(&mut self, event: &Event) {
        match &event.kind {
            EventKind::Routed { route } => {
                self.line(&format!(
                    "→ {} (rule {}: {})",
                    route.platform, route.rule, route.reason
                ));
            }
            EventKind::StageStarted {
                stage,
                agent,
                platform,
                model,
            } => {
                let model = model
                    .as_deref()
                    .map(|m| format!(" · {m}"))
                    .unwrap_or_default();
                let msg = format!("{stage}: {agent} on {platform}{model}");
                match &self.spinner {
                    Some(pb) => pb.set_message(msg),
                    None => eprintln!("… {msg}"),
                }
            }
            EventKind::TextDelta { text, .. } if self.stdout_tty => {
                if let Some(pb) = self.spinner.take() {
                    pb.finish_and_clear();
                }
                self.streamed_text = true;
                let _ = write_stdout(text);
            }
            EventKind::StageCompleted { stage, result } => {
                if self.streamed_text {
                    let _ = write_stdout("\n");
                }
                let msg = format!(
                    "✓ {stage}: {} in / {} out tokens, {} ms",
                    result.usage.input_tokens, result.usage.output_tokens, result.duration_ms
                );
                if !self.streamed_text {
                    self.line(&msg);
                }
            }
            EventKind::Warning { message } => self.line(&format!("! {message}")),
            EventKind::ToolCall { name, arguments, .. } => {
                let shown = arguments
                    .get("command")
                    .and_then(|c| c.as_str())
                    .map_or_else(|| arguments.to_string(), str::to_owned);
                self.line(&format!("⚙ {name}: {shown}"));
            }
            EventKind::ApprovalRequested { approval_id, command, rule, .. } => self.line(&format!(
                "⏸ `{command}` needs approval ({rule}): hybrid approvals approve {approval_id} --by NAME"
            )),
            EventKind::ApprovalAnswered { approved, by, .. } => {
                self.line(&format!("{} by {by}", if *approved { "✓ approved" } else { "✗ rejected" }));
            }
            _ => {}
        }
    }

    /// Prints the output (unless it already streamed) and a summary.
    pub fn finish(&self, result: &TaskResult) -> Result<(), Failure> {
        if let Some(pb) = &self.spinner {
            pb.finish_and_clear();
        }
        if result.status == TaskStatus::Completed && !self.streamed_text {
            let out = result.output.trim_end();
            write_stdout(&format!("{out}\n"))?;
        }
        let cost = result
            .cost_usd
            .map_or_else(|| "cost unknown".to_owned(), |c| c.to_string());
        eprintln!(
            "{} {} · task {} · {:.1}s · {} in / {} out tokens · {cost}",
            if result.status == TaskStatus::Completed {
                "✓"
            } else {
                "✗"
            },
            result.status,
            result.task_id,
            result.duration_ms as f64 / 1000.0,
            result.usage.input_tokens,
            result.usage.output_tokens,
        );
        Ok(())
    }
}

/// Asks at the terminal whether a tool call may run.
#[derive(Debug, Clone, Copy)]
pub struct TerminalPrompt;

#[async_trait::async_trait]
impl hybrid_platform::LocalPrompt for TerminalPrompt {
    async fn prompt(&self, ask: &hybrid_platform::ApprovalAsk, approval_id: &str) -> Option<bool> {
        let question = format!(
            "\n? {} wants to run `{}` ({}: {}).\n  Approve? [y/N] (or answer {approval_id} with `hybrid approvals`) ",
            ask.agent, ask.command, ask.rule, ask.reason
        );
        tokio::task::spawn_blocking(move || {
            eprint!("{question}");
            let mut line = String::new();
            match std::io::stdin().read_line(&mut line) {
                Ok(0) | Err(_) => None,
                Ok(_) => Some(matches!(line.trim().to_lowercase().as_str(), "y" | "yes")),
            }
        })
        .await
        .ok()
        .flatten()
    }
}
