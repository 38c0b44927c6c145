//! The command policy: rules from `[policy]` in `hybrid.toml`, compiled once,
//! then [`CommandPolicy::check`] for each command line.
//!
//! | step | module |
//! | --- | --- |
//! | parse the line and find every command that would run | [`parse`] |
//! | quotes, escapes, `$'…'`, paths, literal variables | [`normalize`] |
//! | `sudo`, `env`, `xargs`, `find -exec`, `bash -c`, `eval`, … | [`wrappers`] |
//! | rules by meaning: flags, subcommands, modes | [`matchers`] |
//! | SQL reaching a client | [`sql`] |
//! | strictest wins; rule names | [`decision`] |
//!
//! The seed's default lists (CLI.md):
//!
//! | list | entries |
//! | --- | --- |
//! | allow | `ls`, `cat`, `grep`, `ps`, `top`, `git status`, `npm test` |
//! | deny | `rm -rf`, `DROP TABLE`, `DELETE FROM`, `sudo`, `chmod 777` |
//! | approve | `git push`, `kubectl apply`, `systemctl restart` |
//! | default | `approve` |

pub(crate) mod decision;
pub(crate) mod matchers;
pub(crate) mod normalize;
pub(crate) mod parse;
pub(crate) mod sql;
pub mod verdict;
pub(crate) mod wrappers;

use std::path::PathBuf;

use decision::{Candidate, Judged, Source};
pub use decision::{CommandDecision, PolicyDecision};
use matchers::Rule;
use parse::{Extractor, Invocation};
pub use verdict::PolicyVerdict;

use crate::GuardError;

/// Command lines longer than this are denied unread.
pub const MAX_COMMAND_LINE: usize = 256 * 1024;

/// The `[policy]` lists of `hybrid.toml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyRules {
    /// Allowed commands.
    pub allow: Vec<String>,
    /// Forbidden commands and SQL.
    pub deny: Vec<String>,
    /// Commands that need approval.
    pub approve: Vec<String>,
    /// What no rule covers.
    pub default: PolicyVerdict,
}

impl Default for PolicyRules {
    /// The seed's lists, with `approve` for what they do not cover.
    fn default() -> Self {
        let v = |items: &[&str]| items.iter().map(|s| (*s).to_owned()).collect();
        PolicyRules {
            allow: v(&["ls", "cat", "grep", "ps", "top", "git status", "npm test"]),
            deny: v(&["rm -rf", "DROP TABLE", "DELETE FROM", "sudo", "chmod 777"]),
            approve: v(&["git push", "kubectl apply", "systemctl restart"]),
            default: PolicyVerdict::Approve,
        }
    }
}

/// Compiled rules, ready to judge command lines. Cheap to share; `check` takes `&self`.
#[derive(Debug, Clone)]
pub struct CommandPolicy {
    /// Deny rules first, then approve, then allow.
    rules: Vec<Rule>,
    default: PolicyVerdict,
    workspace: Option<PathBuf>,
}

impl CommandPolicy {
    /// Compiles the rules; a rule that cannot be understood is an error naming it.
    pub fn new(rules: PolicyRules) -> Result<Self, GuardError> {
        let mut compiled = Vec::new();
        for (list, verdict, items) in [
            ("deny", PolicyVerdict::Deny, &rules.deny),
            ("approve", PolicyVerdict::Approve, &rules.approve),
            ("allow", PolicyVerdict::Allow, &rules.allow),
        ] {
            for item in items {
                compiled.push(Rule::compile(list, verdict, item)?);
            }
        }
        Ok(CommandPolicy {
            rules: compiled,
            default: rules.default,
            workspace: None,
        })
    }

    /// The seed's policy (see the module docs).
    pub fn seed_default() -> Self {
        let rules = PolicyRules::default();
        let mut compiled = Vec::new();
        for (list, verdict, items) in [
            ("deny", PolicyVerdict::Deny, &rules.deny),
            ("approve", PolicyVerdict::Approve, &rules.approve),
            ("allow", PolicyVerdict::Allow, &rules.allow),
        ] {
            compiled.extend(
                items
                    .iter()
                    .filter_map(|item| Rule::compile(list, verdict, item).ok()),
            );
        }
        CommandPolicy {
            rules: compiled,
            default: rules.default,
            workspace: None,
        }
    }

    /// Judges redirection targets against this directory (else: relative paths
    /// that stay below the working directory are inside; absolute ones are not).
    pub fn with_workspace(mut self, dir: PathBuf) -> Self {
        self.workspace = Some(dir);
        self
    }

    /// What no rule covers gets this.
    pub fn default_verdict(&self) -> PolicyVerdict {
        self.default
    }

    /// Judges every command the line would run; never fails.
    pub fn check(&self, command_line: &str) -> PolicyDecision {
        if command_line.len() > MAX_COMMAND_LINE {
            return decision::unparseable(&format!(
                "it is {} bytes, over the {MAX_COMMAND_LINE}-byte limit",
                command_line.len()
            ));
        }
        if command_line.contains('\0') {
            return decision::unparseable("it contains a NUL byte");
        }
        let mut ex = Extractor::new(self.workspace.as_deref());
        // The parser is third-party code: a panic in it must deny, not crash the executor.
        let parsed =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| ex.script(command_line)));
        match parsed {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return decision::unparseable(&e),
            Err(_) => return decision::unparseable("the shell parser failed on it"),
        }
        let judged = ex.out.iter().filter_map(|inv| self.judge(inv)).collect();
        decision::combine(judged, self.default)
    }

    /// One command's decision; `None` for a wrapper no rule names.
    fn judge(&self, inv: &Invocation) -> Option<Judged> {
        let mut candidates = Vec::new();
        let shown = show(&inv.argv);
        let is_sql_client = inv.program().is_some_and(sql::is_client);
        let readings: Vec<[Vec<String>; 2]> = if is_sql_client {
            inv.argv
                .iter()
                .skip(1)
                .flat_map(|a| sql_texts(a))
                .chain(inv.stdin.iter().map(String::as_str))
                .map(sql::readings)
                .collect()
        } else {
            Vec::new()
        };
        for rule in &self.rules {
            let hit = if rule.is_sql() {
                is_sql_client && rule.matches_sql(&readings)
            } else {
                rule.matches_command(inv)
            };
            if hit {
                let what = if rule.is_sql() { "SQL rule" } else { "rule" };
                candidates.push(Candidate {
                    verdict: rule.verdict,
                    source: Source::Rule,
                    rule: rule.name.clone(),
                    reason: format!(
                        "`{shown}` matches the {} {what} `{}`",
                        rule.verdict, rule.text
                    ),
                });
            }
        }
        for d in &inv.dynamic {
            candidates.push(Candidate {
                verdict: PolicyVerdict::Approve,
                source: Source::Dynamic,
                rule: d.rule().to_owned(),
                reason: format!("`{shown}`: {}", d.reason()),
            });
        }
        if candidates.is_empty() && inv.transparent {
            return None;
        }
        let rule_matched = candidates.iter().any(|c| c.source == Source::Rule);
        if !inv.transparent && !rule_matched {
            candidates.push(Candidate {
                verdict: self.default,
                source: Source::Default,
                rule: "default".to_owned(),
                reason: format!("no rule covers `{shown}`; the default is {}", self.default),
            });
        }
        let best = decision::strictest(candidates)?;
        Some(Judged {
            command: CommandDecision {
                argv: inv.argv.clone(),
                decision: best.verdict,
                rule: best.rule,
            },
            source: best.source,
            reason: best.reason,
        })
    }
}

/// A command's words as a reader would type them (quoted where needed).
fn show(argv: &[String]) -> String {
    let words: Vec<String> = argv
        .iter()
        .map(|w| {
            if !w.is_empty() && !w.contains(|c: char| c.is_whitespace() || c == '\'' || c == '"') {
                w.clone()
            } else {
                format!("'{}'", w.replace('\'', "'\\''"))
            }
        })
        .collect();
    words.join(" ")
}

/// The SQL an argument of a client may carry: `--execute=SQL`, `-eSQL`, or itself.
fn sql_texts(arg: &str) -> Vec<&str> {
    if !arg.starts_with('-') {
        return vec![arg];
    }
    let mut out = Vec::new();
    if let Some((_, v)) = arg.split_once('=') {
        out.push(v);
    }
    if !arg.starts_with("--") {
        out.push(arg.get(2..).unwrap_or_default());
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn policy_is_shareable_across_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<CommandPolicy>();
    }

    #[test]
    fn sql_texts_of_client_arguments() {
        assert_eq!(sql_texts("DROP TABLE t"), ["DROP TABLE t"]);
        assert_eq!(sql_texts("--execute=DROP TABLE t"), ["DROP TABLE t"]);
        assert_eq!(sql_texts("-eDROP TABLE t"), ["DROP TABLE t"]);
    }

    #[test]
    fn seed_compiles_every_rule() {
        let from_new = CommandPolicy::new(PolicyRules::default()).unwrap();
        assert_eq!(
            from_new.rules.len(),
            CommandPolicy::seed_default().rules.len()
        );
        assert_eq!(from_new.rules.len(), 15);
    }

    #[test]
    fn bad_rules_are_named() {
        let rules = PolicyRules {
            deny: vec!["rm -rf | sh".into()],
            ..PolicyRules::default()
        };
        let e = CommandPolicy::new(rules).unwrap_err();
        assert!(e.to_string().contains("rm -rf | sh"), "{e}");
    }

    #[test]
    fn default_is_configurable() {
        let p = CommandPolicy::new(PolicyRules {
            default: PolicyVerdict::Deny,
            ..PolicyRules::default()
        })
        .unwrap();
        let d = p.check("make build");
        assert_eq!(
            (d.decision, d.rule.as_str()),
            (PolicyVerdict::Deny, "default")
        );
        assert_eq!(p.check("ls").decision, PolicyVerdict::Allow);
    }

    #[test]
    fn workspace_decides_redirects() {
        let p = CommandPolicy::seed_default().with_workspace(PathBuf::from("/ws"));
        assert_eq!(p.check("ls > /ws/out.txt").decision, PolicyVerdict::Allow);
        assert_eq!(p.check("ls > out.txt").decision, PolicyVerdict::Allow);
        let d = p.check("ls > /etc/passwd");
        assert_eq!(d.rule, "dynamic:redirect-outside-workspace");
    }
}
