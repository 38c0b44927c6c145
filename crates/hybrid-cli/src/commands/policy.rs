//! `hybrid policy check`: what the command policy decides about a command
//! line, its rule and reason, and each command's own decision. Nothing runs;
//! the exit code is 0 whatever the decision.
//!
//! | source of rules | when |
//! | --- | --- |
//! | `[policy]` of the configuration | it has one: each list it gives replaces the seed's (a list it leaves out stays the seed's), and `default` (else `approve`) |
//! | the seed's policy (CLI.md) | no configuration, or one without `[policy]` |

use hybrid_guard::PolicyDecision;

use crate::cli::PolicyCommand;
use crate::commands::{print_json, write_stdout};
use crate::exit_code;
use crate::failure::Failure;
use crate::setup::Global;

/// Runs the command.
pub fn policy(global: &Global, cmd: PolicyCommand) -> Result<u8, Failure> {
    match cmd {
        PolicyCommand::Check { command_line } => check(global, &command_line.join(" ")),
    }
}

fn check(global: &Global, line: &str) -> Result<u8, Failure> {
    let config = global.load_config()?;
    let policy = config.command_policy()?;
    let decision = policy.check(line);
    if global.json {
        print_json(&decision)?;
    } else {
        write_stdout(&render(&decision))?;
    }
    Ok(exit_code::OK)
}

fn render(d: &PolicyDecision) -> String {
    let mut out = format!("{}  rule {} — {}\n", d.decision, d.rule, d.reason);
    for c in &d.commands {
        let argv: Vec<String> = c.argv.iter().map(|w| show_word(w)).collect();
        out.push_str(&format!(
            "  {:<8} {:<36} {}\n",
            c.decision,
            c.rule,
            argv.join(" ")
        ));
    }
    out
}

fn show_word(w: &str) -> String {
    if !w.is_empty() && !w.contains(|c: char| c.is_whitespace() || c == '\'') {
        w.to_owned()
    } else {
        format!("'{}'", w.replace('\'', "'\\''"))
    }
}
