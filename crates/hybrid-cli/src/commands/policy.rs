//! `hybrid policy check`: what the command policy decides about a command
//! line, its rule and reason, and each command's own decision. Nothing runs;
//! the exit code is 0 whatever the decision.
//!
//! | source of rules | when |
//! | --- | --- |
//! | `[policy]` of the configuration | it has one: its lists replace the seed's (a list it leaves out is empty) and `default` (else `approve`) |
//! | the seed's policy (CLI.md) | no configuration, or one without `[policy]` |

use hybrid_guard::{CommandPolicy, PolicyDecision, PolicyRules, Verdict};
use hybrid_platform::config::PolicyConfig;

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
    let policy = match &config.policy {
        Some(p) => CommandPolicy::new(rules_from_config(p)?)
            .map_err(|e| Failure::new(exit_code::CONFIG, format!("[policy]: {e}")))?,
        None => CommandPolicy::seed_default(),
    };
    let decision = policy.check(line);
    if global.json {
        print_json(&decision)?;
    } else {
        write_stdout(&render(&decision))?;
    }
    Ok(exit_code::OK)
}

/// `[policy]` as the guard's rules.
pub fn rules_from_config(p: &PolicyConfig) -> Result<PolicyRules, Failure> {
    let default = match &p.default {
        Some(d) => d
            .get_ref()
            .parse::<Verdict>()
            .map_err(|e| Failure::new(exit_code::CONFIG, format!("policy.default: {e}")))?,
        None => Verdict::Approve,
    };
    Ok(PolicyRules {
        allow: p.allow.clone(),
        deny: p.deny.clone(),
        approve: p.approve.clone(),
        default,
    })
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
