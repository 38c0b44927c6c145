//! The `hybrid` command line, as `../shared/CLI.md` specifies it.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use hybrid_core::{Priority, TaskType};

/// Run tasks through LLM agents from several providers, safely.
#[derive(Debug, Parser)]
#[command(name = "hybrid", version, about, long_about = None)]
pub struct Cli {
    /// Configuration file (default: ./hybrid.toml if present).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Database URL (default: $HYBRID_DATABASE_URL, else sqlite://.hybrid/hybrid.db).
    #[arg(long, global = true, value_name = "URL")]
    pub db: Option<String>,
    /// Machine-readable output: one JSON document on stdout.
    #[arg(long, global = true)]
    pub json: bool,
    /// More logging on stderr (-v warnings such as retries, -vv info, -vvv debug); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a task.
    Run(RunArgs),
    /// Show where a task would go and why (no network).
    Route(RouteArgs),
    /// Inspect stored tasks.
    #[command(subcommand)]
    Tasks(TasksCommand),
    /// Counts from the store: tasks, time, platforms, success, tokens, cost.
    Metrics,
    /// The command policy.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Tool calls waiting for a person.
    #[command(subcommand)]
    Approvals(ApprovalsCommand),
    /// The active guardrails.
    #[command(subcommand)]
    Guardrails(GuardrailsCommand),
    /// The tamper-evident audit trail.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Workflow files: the built-ins and ./workflows/*.yaml.
    #[command(subcommand)]
    Workflows(WorkflowsCommand),
}

/// `hybrid workflows …`.
#[derive(Debug, Subcommand)]
pub enum WorkflowsCommand {
    /// Built-in workflows and those in ./workflows/: name, stages, description, source.
    List,
    /// One workflow's stages, dependencies and inputs.
    Show {
        /// A workflow name or a file.
        #[arg(value_name = "NAME|FILE")]
        workflow: String,
    },
    /// Check a workflow file: prints `ok: NAME (N stages)` or the one-line error.
    Validate {
        /// The file.
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
}

/// `hybrid policy …`.
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// What the policy decides about a command line, and why (nothing runs).
    Check {
        /// The command line; several words are joined with spaces.
        #[arg(
            value_name = "COMMAND_LINE",
            required = true,
            trailing_var_arg = true,
            allow_hyphen_values = true
        )]
        command_line: Vec<String>,
    },
}

/// The task's fields.
#[derive(Debug, Args)]
pub struct TaskFlags {
    /// Task type.
    #[arg(long = "type", value_name = "TYPE", value_parser = parse_task_type)]
    pub task_type: Option<TaskType>,
    /// The task needs bash or file access.
    #[arg(long)]
    pub system_access: bool,
    /// The task needs a multi-step workflow.
    #[arg(long)]
    pub multi_step: bool,
    /// Priority, 1 (lowest) to 5 (highest).
    #[arg(long, value_name = "1..5", value_parser = parse_priority)]
    pub priority: Option<Priority>,
    /// Context entry; VALUE is JSON if it parses, else a string (repeatable).
    #[arg(long = "context", value_name = "KEY=VALUE", value_parser = parse_context_pair)]
    pub context: Vec<(String, serde_json::Value)>,
    /// Context from a JSON object file.
    #[arg(long, value_name = "FILE.json")]
    pub context_file: Option<PathBuf>,
    /// What the task is expected to cost, in USD.
    #[arg(long, value_name = "USD", value_parser = parse_usd, allow_hyphen_values = true)]
    pub estimated_cost: Option<f64>,
    /// What to do, in words.
    #[arg(value_name = "DESCRIPTION")]
    pub description: String,
}

/// `hybrid run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The task.
    #[command(flatten)]
    pub task: TaskFlags,
    /// `auto` (the router decides), or a platform name.
    #[arg(
        long,
        value_name = "auto|openai|claude|hybrid|NAME",
        default_value = "auto"
    )]
    pub platform: String,
    /// A workflow name or file to run instead of the router's choice.
    #[arg(long, value_name = "NAME|FILE")]
    pub workflow: Option<String>,
    /// Events as JSON lines on stdout; the last line is the result.
    #[arg(long)]
    pub stream: bool,
    /// The task's workspace for tools (must exist).
    #[arg(long, value_name = "DIR")]
    pub workdir: Option<PathBuf>,
    /// Answer approvals yes for this run, recorded as NAME.
    #[arg(long, value_name = "NAME")]
    pub approve_as: Option<String>,
    /// Evaluate routing and the L1/L2 guardrails only: no model call, nothing stored.
    #[arg(long)]
    pub dry_run: bool,
    /// Seconds an approval waits before it counts as rejected.
    #[arg(long, value_name = "SECS", default_value_t = 900)]
    pub approval_timeout: u64,
}

/// `hybrid route`.
#[derive(Debug, Args)]
pub struct RouteArgs {
    /// The task.
    #[command(flatten)]
    pub task: TaskFlags,
}

/// `hybrid tasks …`.
#[derive(Debug, Subcommand)]
pub enum TasksCommand {
    /// Newest tasks first.
    List {
        /// Only tasks with this status.
        #[arg(long, value_parser = parse_status)]
        status: Option<hybrid_core::TaskStatus>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// One task: its result, or its state so far.
    Show {
        /// Task id.
        id: String,
        /// Include the task's events.
        #[arg(long)]
        events: bool,
    },
    /// Mark a task cancelled.
    Cancel {
        /// Task id.
        id: String,
    },
    /// Continue an interrupted or failed task from its first unfinished
    /// stage; nothing that already ran runs again.
    Resume {
        /// Task id.
        id: String,
        /// Take the task over even if another process holds it (when you
        /// know that process is gone).
        #[arg(long)]
        force: bool,
        /// Answer every approval as NAME.
        #[arg(long, value_name = "NAME")]
        approve_as: Option<String>,
        /// Seconds to wait for an approval before it counts as a rejection.
        #[arg(long, default_value_t = 900)]
        approval_timeout: u64,
        /// The task's workspace (default: the current directory).
        #[arg(long, value_name = "DIR")]
        workdir: Option<std::path::PathBuf>,
        /// Every event as a JSON line; the last line is the result.
        #[arg(long)]
        stream: bool,
    },
}

/// `hybrid approvals …`.
#[derive(Debug, Subcommand)]
pub enum ApprovalsCommand {
    /// Pending approvals, oldest first.
    List {
        /// Answered and expired ones too, newest first.
        #[arg(long)]
        all: bool,
    },
    /// Let the call run.
    Approve {
        /// Approval id.
        id: String,
        /// Who approves (recorded in the audit trail).
        #[arg(long, value_name = "NAME")]
        by: String,
        /// Why.
        #[arg(long, value_name = "TEXT")]
        note: Option<String>,
    },
    /// Refuse the call; the model is told.
    Reject {
        /// Approval id.
        id: String,
        /// Who rejects.
        #[arg(long, value_name = "NAME")]
        by: String,
        /// Why.
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
    },
}

/// `hybrid guardrails …`.
#[derive(Debug, Subcommand)]
pub enum GuardrailsCommand {
    /// Every guardrail: name, kind, layer, where it came from, message.
    List,
}

/// `hybrid audit …`.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Records, oldest first.
    List {
        /// Only this task's records.
        #[arg(long, value_name = "ID")]
        task: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 200)]
        limit: u32,
    },
    /// Check every hash and link; exit non-zero naming the first bad record.
    Verify,
    /// Every record as JSON lines on stdout.
    Export {
        /// Output format.
        #[arg(long, value_parser = ["jsonl"], default_value = "jsonl")]
        format: String,
    },
}

fn parse_task_type(s: &str) -> Result<TaskType, String> {
    s.parse::<TaskType>().map_err(|e| e.to_string())
}

fn parse_status(s: &str) -> Result<hybrid_core::TaskStatus, String> {
    s.parse::<hybrid_core::TaskStatus>()
        .map_err(|e| e.to_string())
}

fn parse_priority(s: &str) -> Result<Priority, String> {
    let n: i64 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a whole number from 1 to 5"))?;
    Priority::new(n).map_err(|e| e.to_string())
}

fn parse_usd(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .trim_start_matches('$')
        .parse()
        .map_err(|_| format!("`{s}` is not a number"))?;
    if !v.is_finite() || v < 0.0 {
        return Err(format!("must be a non-negative amount of USD, got {s}"));
    }
    Ok(v)
}

fn parse_context_pair(s: &str) -> Result<(String, serde_json::Value), String> {
    let (key, value) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}` is not KEY=VALUE"))?;
    if key.trim().is_empty() {
        return Err(format!("`{s}` has an empty KEY"));
    }
    let value =
        serde_json::from_str(value).unwrap_or_else(|_| serde_json::Value::String(value.to_owned()));
    Ok((key.trim().to_owned(), value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_definition_is_valid() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn context_values_parse_as_json_or_string() {
        assert_eq!(parse_context_pair("n=3").unwrap().1, serde_json::json!(3));
        assert_eq!(
            parse_context_pair("host=web-1").unwrap().1,
            serde_json::json!("web-1")
        );
        assert_eq!(
            parse_context_pair("a=b=c").unwrap(),
            ("a".into(), serde_json::json!("b=c"))
        );
        assert!(parse_context_pair("novalue").is_err());
        assert!(parse_context_pair("=x").is_err());
    }

    #[test]
    fn priority_and_cost_are_checked() {
        assert!(parse_priority("0").is_err());
        assert!(parse_priority("6").is_err());
        assert!(parse_priority("five").is_err());
        assert_eq!(parse_priority("5").unwrap().get(), 5);
        assert!(parse_usd("-1").is_err());
        assert!(parse_usd("NaN").is_err());
        assert_eq!(parse_usd("$2.5").unwrap(), 2.5);
    }
}
