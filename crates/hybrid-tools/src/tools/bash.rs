//! `bash`: runs a command with `bash -c` through the sandboxed runner.

use std::time::Duration;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::Deserialize;

use crate::args::{parse_args, schema_of};
use crate::output::{cap_text, describe_bytes};
use crate::sandbox::{self, Captured};
use crate::{Tool, ToolContext, ToolOutput, ToolSpec};

/// Arguments of `bash`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct BashArgs {
    /// The command line, run with `bash -c` in the workspace.
    command: String,
    /// Time limit in seconds (at most the configured limit, which is also the default).
    #[serde(default)]
    timeout_secs: Option<u64>,
}

/// Runs shell commands in the sandbox.
#[derive(Debug, Clone, Copy, Default)]
pub struct BashTool;

#[async_trait]
impl Tool for BashTool {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "bash".to_owned(),
            description: "Run a shell command with `bash -c` in the task's workspace. The \
                environment is minimal, stdin is empty, there is a time limit, output is capped, \
                writes outside the workspace fail and the network is usually off. Background \
                processes are killed when the command ends."
                .to_owned(),
            parameters: schema_of::<BashArgs>(),
        }
    }

    async fn call(&self, args: serde_json::Value, ctx: &ToolContext) -> ToolOutput {
        let args: BashArgs = match parse_args("bash", args) {
            Ok(a) => a,
            Err(e) => return e,
        };
        if args.command.trim().is_empty() {
            return ToolOutput::error(
                "invalid arguments for bash: field `command`: must not be empty",
            );
        }
        if args.command.len() > ctx.limits.max_command_bytes {
            return ToolOutput::error(format!(
                "command too long: {} bytes; the limit is {} bytes",
                args.command.len(),
                ctx.limits.max_command_bytes
            ))
            .with_meta("bytes", args.command.len());
        }
        if args.command.contains('\0') {
            return ToolOutput::error(
                "invalid arguments for bash: field `command`: must not contain NUL bytes",
            );
        }
        let timeout = match args.timeout_secs {
            Some(0) => {
                return ToolOutput::error(
                    "invalid arguments for bash: field `timeout_secs`: must be at least 1",
                );
            }
            Some(secs) => Duration::from_secs(secs).min(ctx.limits.timeout),
            None => ctx.limits.timeout,
        };
        let argv = ["-c".to_owned(), args.command];
        match sandbox::run("bash", &argv, timeout, ctx).await {
            Ok(outcome) => render(&outcome, timeout, ctx.limits.max_output_bytes),
            Err(e) => ToolOutput::error(e.to_string()),
        }
    }
}

fn render(outcome: &sandbox::RunOutcome, timeout: Duration, max: usize) -> ToolOutput {
    let (stdout, stdout_binary) = stream_text(&outcome.stdout);
    let (stderr, stderr_binary) = stream_text(&outcome.stderr);
    let binary = stdout_binary || stderr_binary;

    let mut head = Vec::new();
    if outcome.timed_out {
        head.push(format!(
            "timed out after {}; the command's process group was killed",
            human(timeout)
        ));
    } else if outcome.cancelled {
        head.push("cancelled; the command's process group was killed".to_owned());
    } else if let Some(code) = outcome.exit_code.filter(|c| *c != 0) {
        head.push(format!("command exited with code {code}"));
    } else if let Some(sig) = outcome.signal {
        head.push(format!("command was killed by signal {sig}"));
    }
    if binary {
        let which = match (stdout_binary, stderr_binary) {
            (true, true) => "stdout and stderr",
            (true, false) => "stdout",
            _ => "stderr",
        };
        head.push(format!(
            "binary output on {which} omitted; pipe it through a text tool (e.g. `xxd`, `base64`, `strings`)"
        ));
    }
    let mut body = head.join("\n");
    if !stdout.is_empty() {
        if !body.is_empty() {
            body.push('\n');
        }
        body.push_str(&stdout);
    }
    if !stderr.is_empty() {
        if !body.is_empty() && !body.ends_with('\n') {
            body.push('\n');
        }
        body.push_str("[stderr]\n");
        body.push_str(&stderr);
    }
    if body.is_empty() {
        body.push_str("(no output)");
    }
    let total = body.len() as u64
        + (outcome.stdout.total - outcome.stdout.bytes.len() as u64)
        + (outcome.stderr.total - outcome.stderr.bytes.len() as u64);
    let (content, truncated) = cap_text(&body, total, max);
    let is_error = outcome.timed_out || outcome.cancelled || binary || outcome.exit_code != Some(0);
    ToolOutput {
        content,
        is_error,
        truncated,
        metadata: serde_json::json!({
            "exit_code": outcome.exit_code,
            "signal": outcome.signal,
            "timed_out": outcome.timed_out,
            "cancelled": outcome.cancelled,
            "duration_ms": u64::try_from(outcome.duration.as_millis()).unwrap_or(u64::MAX),
            "stdout_bytes": outcome.stdout.total,
            "stderr_bytes": outcome.stderr.total,
            "binary": binary,
            "sandbox": outcome.confinement,
        }),
    }
}

fn stream_text(captured: &Captured) -> (String, bool) {
    if captured.total == 0 {
        return (String::new(), false);
    }
    describe_bytes(&captured.bytes, captured.total, captured.truncated())
}

fn human(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}
