//! The `hybrid` binary: parses the command line, runs the command, and turns
//! every failure into one line on stderr and a distinct exit code
//! (see [`exit_code`]).

mod cli;
mod commands;
mod exit_code;
mod failure;
mod live_view;
mod setup;

use std::process::ExitCode;

use clap::Parser;
use clap::error::{ContextKind, ContextValue, ErrorKind};

use crate::cli::{Cli, Command};
use crate::failure::Failure;

/// jemalloc: under many concurrent runs (`hybrid serve`, workers) it keeps
/// allocation off the critical path that glibc's malloc puts on it (1,000
/// concurrent agent runs ~30% faster, 10,000 twice as fast, at about the
/// same peak memory; see the README's benchmarks).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    // A bug must still reach the user as one line, never as a backtrace.
    std::panic::set_hook(Box::new(|info| {
        let what = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_owned());
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!(
            "hybrid: internal error{at}: {} (please report this)",
            one_line(&what)
        );
    }));
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(&e),
    };
    init_logging(cli.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("hybrid: error: cannot start the async runtime: {e}");
            return ExitCode::from(exit_code::TASK_FAILED);
        }
    };
    match runtime.block_on(dispatch(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(f) => {
            // An error may quote what failed (a URL, a command): no secret reaches the screen.
            let message = hybrid_secrets::Redactor::default().redact_string(one_line(&f.message));
            eprintln!("hybrid: error: {message}");
            ExitCode::from(f.code)
        }
    }
}

async fn dispatch(cli: Cli) -> Result<u8, Failure> {
    let global = setup::Global {
        config: cli.config,
        db: cli.db,
        json: cli.json,
    };
    match cli.command {
        Command::Run(args) => commands::run::run(&global, args).await,
        Command::Route(args) => commands::route::route(&global, args),
        Command::Tasks(cmd) => commands::tasks::tasks(&global, cmd).await,
        Command::Metrics => commands::metrics::metrics(&global).await,
        Command::Policy(cmd) => commands::policy::policy(&global, cmd),
        Command::Approvals(cmd) => commands::approvals::approvals(&global, cmd).await,
        Command::Guardrails(cmd) => commands::guardrails::guardrails(&global, cmd).await,
        Command::Audit(cmd) => commands::audit::audit(&global, cmd).await,
        Command::Workflows(cmd) => commands::workflows::workflows(&global, cmd),
    }
}

/// Clap's errors are several lines; users get one. Help and version print as usual.
fn usage_error(e: &clap::Error) -> ExitCode {
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion)
        || matches!(
            e.kind(),
            ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
        )
    {
        let _ = e.print();
        return ExitCode::from(if e.use_stderr() {
            exit_code::USAGE
        } else {
            exit_code::OK
        });
    }
    let rendered = e.to_string();
    let first = rendered.lines().next().unwrap_or("invalid arguments");
    let first = first.strip_prefix("error: ").unwrap_or(first);
    let mut line = first.to_owned();
    if let Some(ContextValue::Strings(valid)) = e.get(ContextKind::ValidValue) {
        line.push_str(&format!(" (expected one of: {})", valid.join(", ")));
    }
    eprintln!("hybrid: error: {line}");
    ExitCode::from(exit_code::USAGE)
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "error",
        1 => "warn",
        2 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}
