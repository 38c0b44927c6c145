//! What `check` returns, and how one command's and a whole line's verdicts are chosen.
//!
//! For one command, every candidate is collected and the strictest wins; at
//! equal strictness a configured rule names the decision before a dynamic
//! reason, and that before the default:
//!
//! | candidate | verdict | rule name |
//! | --- | --- | --- |
//! | a matching entry of a list | the list's | `deny:rm -rf`, `approve:git push`, `allow:ls`, `deny:DROP TABLE` |
//! | a dynamic construct | approve | `dynamic:variable-program`, `dynamic:eval`, `dynamic:pipe-to-shell`, `dynamic:interpreter-code`, `dynamic:redirect-outside-workspace`, `dynamic:nested-expansion` |
//! | nothing matched (not for wrappers) | the configured default | `default` |
//!
//! The line's decision is its strictest command's (at equal strictness, the
//! first decided by a rule, else by a dynamic reason, else the first). A line that cannot be parsed is `deny` by `unparseable`; a
//! line that runs no command gets the default.

use serde::Serialize;

use crate::PolicyVerdict;

/// The decision about a whole command line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PolicyDecision {
    /// The strictest decision over every command that would run.
    pub decision: PolicyVerdict,
    /// The rule that decided (see the module docs for names).
    pub rule: String,
    /// Why, in words.
    pub reason: String,
    /// Each command that would run, with its own decision.
    pub commands: Vec<CommandDecision>,
}

/// The decision about one command of the line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CommandDecision {
    /// Its words (quotes removed; non-literal words as written).
    pub argv: Vec<String>,
    /// Its decision.
    pub decision: PolicyVerdict,
    /// The rule that decided it.
    pub rule: String,
}

/// How a candidate ranks at equal strictness.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Source {
    Default,
    Dynamic,
    Rule,
}

/// One reason a command could get a verdict.
#[derive(Debug, Clone)]
pub(crate) struct Candidate {
    pub verdict: PolicyVerdict,
    pub source: Source,
    pub rule: String,
    pub reason: String,
}

/// A judged command with the reason behind its decision.
#[derive(Debug, Clone)]
pub(crate) struct Judged {
    pub command: CommandDecision,
    pub source: Source,
    pub reason: String,
}

/// The winning candidate: strictest, then rule over dynamic over default, then first.
pub(crate) fn strictest(candidates: Vec<Candidate>) -> Option<Candidate> {
    let mut best: Option<Candidate> = None;
    for c in candidates {
        let better = match &best {
            None => true,
            Some(b) => (c.verdict, c.source) > (b.verdict, b.source),
        };
        if better {
            best = Some(c);
        }
    }
    best
}

/// The line's decision from its commands'.
pub(crate) fn combine(judged: Vec<Judged>, default: PolicyVerdict) -> PolicyDecision {
    let mut best: Option<&Judged> = None;
    for j in &judged {
        if best.is_none_or(|b| (j.command.decision, j.source) > (b.command.decision, b.source)) {
            best = Some(j);
        }
    }
    let best = best.map(|j| (j.command.decision, j.command.rule.clone(), j.reason.clone()));
    let (decision, rule, reason) = best.unwrap_or_else(|| {
        (
            default,
            "default".to_owned(),
            "the line runs no command; the default applies".to_owned(),
        )
    });
    PolicyDecision {
        decision,
        rule,
        reason,
        commands: judged.into_iter().map(|j| j.command).collect(),
    }
}

/// A line that cannot be parsed.
pub(crate) fn unparseable(error: &str) -> PolicyDecision {
    PolicyDecision {
        decision: PolicyVerdict::Deny,
        rule: "unparseable".to_owned(),
        reason: format!("the command line cannot be parsed, so it is denied: {error}"),
        commands: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(verdict: PolicyVerdict, source: Source, rule: &str) -> Candidate {
        Candidate {
            verdict,
            source,
            rule: rule.to_owned(),
            reason: String::new(),
        }
    }

    #[test]
    fn strictest_then_most_specific() {
        let w = strictest(vec![
            cand(PolicyVerdict::Approve, Source::Default, "default"),
            cand(PolicyVerdict::Allow, Source::Rule, "allow:ls"),
            cand(PolicyVerdict::Approve, Source::Dynamic, "dynamic:eval"),
        ]);
        assert_eq!(w.map(|c| c.rule).as_deref(), Some("dynamic:eval"));
        let w = strictest(vec![
            cand(PolicyVerdict::Approve, Source::Rule, "approve:git push"),
            cand(PolicyVerdict::Deny, Source::Rule, "deny:sudo"),
        ]);
        assert_eq!(w.map(|c| c.rule).as_deref(), Some("deny:sudo"));
        assert!(strictest(Vec::new()).is_none());
    }

    #[test]
    fn empty_lines_get_the_default() {
        let d = combine(Vec::new(), PolicyVerdict::Approve);
        assert_eq!(
            (d.decision, d.rule.as_str()),
            (PolicyVerdict::Approve, "default")
        );
        assert_eq!(unparseable("x").decision, PolicyVerdict::Deny);
    }
}
