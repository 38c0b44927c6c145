//! Rules compiled from their text, and matched by meaning.
//!
//! | rule text | kind | matches |
//! | --- | --- | --- |
//! | `ls` | program | `ls`, `/bin/ls -la`, `"ls" x` |
//! | `git status`, `npm test`, `kubectl apply` | program + subcommand | the program whose first operands are these words, after skipping its global options (`git -C dir -c k=v status`, `kubectl --context x apply`, `systemctl --no-block restart`) |
//! | `rm -rf` | program + flags | every flag present, in any spelling and position: `-fr`, `-Rf`, `-r -f`, `--recursive --force`, `--rec --force`, `x -rf` |
//! | `chmod 777` | program + mode | modes meaning the same permissions: `0777`, `a+rwx`, `ugo=rwx`, with `-R` |
//! | `DROP TABLE`, `sql:drop table` | SQL | the words, in order, in SQL a database client reads (see [`super::sql`]) |
//!
//! A rule is SQL when written with the `sql:` prefix, or when its first word
//! is an SQL statement keyword (`DROP`, `DELETE`, `TRUNCATE`, …) in capitals.
//! Otherwise its first word is a program (a path is reduced to its name), the
//! words starting with `-` are flags that must all be present, and the other
//! words must be the command's first operands. Shell syntax in a rule is an error.

use super::parse::Invocation;
use super::sql;
use crate::{GuardError, PolicyVerdict};

/// A compiled rule.
#[derive(Debug, Clone)]
pub(crate) struct Rule {
    /// Its list's verdict.
    pub verdict: PolicyVerdict,
    /// `deny:rm -rf`.
    pub name: String,
    /// The entry, whitespace-normalised.
    pub text: String,
    matcher: Matcher,
}

#[derive(Debug, Clone)]
enum Matcher {
    Command {
        program: String,
        flags: Vec<String>,
        operands: Vec<String>,
    },
    Sql(Vec<String>),
}

impl Rule {
    /// Compiles `text` from the list named `list`.
    pub(crate) fn compile(
        list: &'static str,
        verdict: PolicyVerdict,
        text: &str,
    ) -> Result<Rule, GuardError> {
        let bad = |reason: &str| GuardError::BadRule {
            list,
            rule: text.to_owned(),
            reason: reason.to_owned(),
        };
        let words: Vec<&str> = text.split_whitespace().collect();
        let normalized = words.join(" ");
        let Some(first) = words.first() else {
            return Err(bad("it is empty"));
        };
        let sql_text = if let Some(rest) = normalized.strip_prefix("sql:") {
            Some(rest.trim())
        } else if sql::KEYWORDS.contains(first) {
            Some(normalized.as_str())
        } else {
            None
        };
        let matcher = if let Some(sql_text) = sql_text {
            let tokens = sql::tokens(sql_text, false);
            if tokens.is_empty() {
                return Err(bad("the SQL rule has no words"));
            }
            Matcher::Sql(tokens)
        } else {
            if let Some(c) = normalized.chars().find(|c| {
                matches!(
                    c,
                    '|' | ';'
                        | '&'
                        | '<'
                        | '>'
                        | '('
                        | ')'
                        | '$'
                        | '`'
                        | '\\'
                        | '"'
                        | '\''
                        | '*'
                        | '?'
                )
            }) {
                return Err(bad(&format!(
                    "`{c}` is shell syntax; a rule is one program with its flags and subcommand words"
                )));
            }
            if first.starts_with('-') {
                return Err(bad("it does not start with a program name"));
            }
            let program = super::normalize::program_name(first).to_owned();
            let args: Vec<&str> = words.iter().skip(1).copied().collect();
            let parsed = parse_args(&program, &args);
            Matcher::Command {
                program,
                flags: parsed.flags,
                operands: parsed.operands,
            }
        };
        Ok(Rule {
            verdict,
            name: format!("{list}:{normalized}"),
            text: normalized,
            matcher,
        })
    }

    /// Whether the rule speaks about SQL.
    pub(crate) fn is_sql(&self) -> bool {
        matches!(self.matcher, Matcher::Sql(_))
    }

    /// Whether the command matches (command rules).
    pub(crate) fn matches_command(&self, inv: &Invocation) -> bool {
        let Matcher::Command {
            program,
            flags,
            operands,
        } = &self.matcher
        else {
            return false;
        };
        let Some(name) = inv.program() else {
            return false;
        };
        if name != program {
            return false;
        }
        if flags.is_empty() && operands.is_empty() {
            return true;
        }
        let args: Vec<&str> = inv.argv.iter().skip(1).map(String::as_str).collect();
        let parsed = parse_args(program, &args);
        flags.iter().all(|f| parsed.flags.contains(f)) && parsed.operands.starts_with(operands)
    }

    /// Whether any reading of the SQL matches (SQL rules).
    pub(crate) fn matches_sql(&self, readings: &[[Vec<String>; 2]]) -> bool {
        let Matcher::Sql(needle) = &self.matcher else {
            return false;
        };
        readings
            .iter()
            .flatten()
            .any(|tokens| sql::contains(tokens, needle))
    }
}

/// What is known about a program's options.
struct Spec {
    /// Short options that take a value.
    short_val: &'static str,
    /// Long options (without `--`) that take a value.
    long_val: &'static [&'static str],
    /// Spellings of one flag → its canonical name.
    synonyms: &'static [(&'static str, &'static str)],
}

fn spec(program: &str) -> Spec {
    const NONE: Spec = Spec {
        short_val: "",
        long_val: &[],
        synonyms: &[],
    };
    match program {
        "rm" => Spec {
            synonyms: &[
                ("-r", "--recursive"),
                ("-R", "--recursive"),
                ("--recursive", "--recursive"),
                ("-f", "--force"),
                ("--force", "--force"),
                ("-i", "--interactive"),
                ("-d", "--dir"),
                ("--dir", "--dir"),
                ("-v", "--verbose"),
                ("--verbose", "--verbose"),
                ("--no-preserve-root", "--no-preserve-root"),
                ("--preserve-root", "--preserve-root"),
                ("--one-file-system", "--one-file-system"),
                ("--interactive", "--interactive"),
            ],
            ..NONE
        },
        "chmod" | "chown" | "chgrp" => Spec {
            long_val: &["reference"],
            synonyms: &[
                ("-R", "--recursive"),
                ("--recursive", "--recursive"),
                ("-v", "--verbose"),
                ("--verbose", "--verbose"),
                ("-f", "--silent"),
                ("--silent", "--silent"),
                ("--quiet", "--silent"),
                ("-c", "--changes"),
                ("--changes", "--changes"),
            ],
            ..NONE
        },
        "cp" | "mv" => Spec {
            short_val: "tS",
            long_val: &["target-directory", "suffix"],
            synonyms: &[
                ("-r", "--recursive"),
                ("-R", "--recursive"),
                ("--recursive", "--recursive"),
                ("-f", "--force"),
                ("--force", "--force"),
            ],
        },
        "git" => Spec {
            short_val: "Cc",
            long_val: &[
                "git-dir",
                "work-tree",
                "namespace",
                "config-env",
                "super-prefix",
                "exec-path",
            ],
            synonyms: &[("-f", "--force"), ("--force", "--force")],
        },
        "kubectl" | "oc" => Spec {
            short_val: "nsl",
            long_val: &[
                "context",
                "namespace",
                "kubeconfig",
                "cluster",
                "user",
                "server",
                "token",
                "as",
                "as-group",
                "as-uid",
                "certificate-authority",
                "client-certificate",
                "client-key",
                "request-timeout",
                "cache-dir",
                "tls-server-name",
                "profile",
                "profile-output",
                "v",
                "log-file",
                "selector",
                "filename",
                "output",
            ],
            synonyms: &[],
        },
        "helm" => Spec {
            short_val: "n",
            long_val: &[
                "kube-context",
                "namespace",
                "kubeconfig",
                "registry-config",
                "repository-config",
            ],
            synonyms: &[],
        },
        "systemctl" | "journalctl" => Spec {
            short_val: "HMtpnosPu",
            long_val: &[
                "host",
                "machine",
                "type",
                "state",
                "property",
                "lines",
                "output",
                "signal",
                "kill-whom",
                "kill-value",
                "root",
                "image",
                "job-mode",
                "what",
                "when",
                "timestamp",
                "preset-mode",
                "message",
                "drop-in",
                "boot-loader-entry",
                "boot-loader-menu",
                "reboot-argument",
                "unit",
                "user-unit",
            ],
            synonyms: &[],
        },
        "npm" | "pnpm" | "yarn" => Spec {
            short_val: "wC",
            long_val: &[
                "prefix",
                "workspace",
                "registry",
                "userconfig",
                "loglevel",
                "cache",
                "dir",
                "cwd",
                "filter",
            ],
            synonyms: &[],
        },
        "docker" | "podman" => Spec {
            short_val: "Hcl",
            long_val: &[
                "context",
                "host",
                "config",
                "log-level",
                "tlscacert",
                "tlscert",
                "tlskey",
            ],
            synonyms: &[],
        },
        "cargo" => Spec {
            short_val: "CZ",
            long_val: &["config", "color", "manifest-path"],
            synonyms: &[],
        },
        _ => NONE,
    }
}

/// A command's flags (canonical spellings) and operands.
#[derive(Debug, Default, PartialEq, Eq)]
struct Parsed {
    flags: Vec<String>,
    operands: Vec<String>,
}

fn canonical(spec: &Spec, form: &str) -> String {
    if let Some((_, c)) = spec.synonyms.iter().find(|(f, _)| *f == form) {
        return (*c).to_owned();
    }
    // GNU getopt accepts unambiguous prefixes of long options.
    if form.starts_with("--") && form.len() > 3 {
        let mut hits = spec
            .synonyms
            .iter()
            .filter(|(f, _)| f.starts_with("--") && f.starts_with(form))
            .map(|(_, c)| *c);
        if let Some(first) = hits.next()
            && hits.all(|c| c == first)
        {
            return first.to_owned();
        }
    }
    form.to_owned()
}

fn parse_args(program: &str, args: &[&str]) -> Parsed {
    let spec = spec(program);
    let mut out = Parsed::default();
    let mut i = 0;
    let mut options_done = false;
    while i < args.len() {
        let a = args[i];
        i += 1;
        if options_done
            || a == "-"
            || !a.starts_with('-')
            || is_negative_number(a) && program != "chmod"
        {
            out.operands.push(operand(program, out.operands.len(), a));
            continue;
        }
        if a == "--" {
            options_done = true;
            continue;
        }
        if let Some(long) = a.strip_prefix("--") {
            let (name, has_value) = match long.split_once('=') {
                Some((n, _)) => (n, true),
                None => (long, false),
            };
            out.flags.push(canonical(&spec, &format!("--{name}")));
            if !has_value && spec.long_val.contains(&name) {
                i += 1;
            }
            continue;
        }
        if program == "chmod" && is_mode(a) {
            out.operands.push(operand(program, out.operands.len(), a));
            continue;
        }
        let cluster = &a[1..];
        for (pos, c) in cluster.char_indices() {
            out.flags.push(canonical(&spec, &format!("-{c}")));
            if spec.short_val.contains(c) {
                if pos + c.len_utf8() == cluster.len() {
                    i += 1;
                }
                break;
            }
        }
    }
    out
}

fn is_negative_number(a: &str) -> bool {
    a.len() > 1 && a[1..].chars().all(|c| c.is_ascii_digit())
}

/// Operands keep their spelling, except `chmod`'s mode, which becomes octal.
fn operand(program: &str, index: usize, a: &str) -> String {
    if program == "chmod"
        && index == 0
        && let Some(m) = mode_bits(a)
    {
        return format!("{:03o}", m & 0o777);
    }
    a.to_owned()
}

fn is_mode(a: &str) -> bool {
    mode_bits(a).is_some()
}

/// The permission bits a `chmod` mode sets, starting from none: `0777`,
/// `a+rwx`, `u=rwx,go=rwx`, `-w`.
fn mode_bits(mode: &str) -> Option<u32> {
    if !mode.is_empty() && mode.len() <= 5 && mode.chars().all(|c| ('0'..='7').contains(&c)) {
        return u32::from_str_radix(mode, 8).ok();
    }
    let mut bits: u32 = 0;
    for clause in mode.split(',') {
        let who_end = clause.find(['+', '-', '=']).unwrap_or(clause.len());
        let (who, rest) = clause.split_at(who_end);
        if rest.is_empty() || !who.chars().all(|c| "ugoa".contains(c)) {
            return None;
        }
        let mut mask: u32 = 0;
        for c in who.chars() {
            mask |= match c {
                'u' => 0o700,
                'g' => 0o070,
                'o' => 0o007,
                _ => 0o777,
            };
        }
        if who.is_empty() {
            mask = 0o777;
        }
        let mut op = ' ';
        for c in rest.chars() {
            match c {
                '+' | '-' | '=' => {
                    op = c;
                    if op == '=' {
                        bits &= !mask;
                    }
                }
                'r' | 'w' | 'x' | 'X' | 's' | 't' => {
                    let p = match c {
                        'r' => 0o444,
                        'w' => 0o222,
                        'x' | 'X' => 0o111,
                        _ => 0,
                    } & mask;
                    if op == '-' {
                        bits &= !p;
                    } else {
                        bits |= p;
                    }
                }
                _ => return None,
            }
        }
    }
    Some(bits)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn inv(words: &[&str]) -> Invocation {
        Invocation {
            argv: words.iter().map(|w| (*w).to_owned()).collect(),
            literal: vec![true; words.len()],
            ..Invocation::default()
        }
    }

    fn rule(text: &str) -> Rule {
        Rule::compile("deny", PolicyVerdict::Deny, text).unwrap()
    }

    #[test]
    fn flags_match_in_any_spelling() {
        let r = rule("rm -rf");
        for cmd in [
            &["rm", "-rf", "/"][..],
            &["rm", "-fr", "x"],
            &["rm", "-Rf", "x"],
            &["rm", "-r", "-f", "x"],
            &["rm", "--recursive", "--force", "x"],
            &["rm", "--rec", "--force", "x"],
            &["rm", "x", "-rf"],
            &["/bin/rm", "-rfv", "x"],
        ] {
            assert!(r.matches_command(&inv(cmd)), "{cmd:?}");
        }
        for cmd in [
            &["rm", "-r", "x"][..],
            &["rm", "--", "-rf"],
            &["rmdir", "-rf"],
        ] {
            assert!(!r.matches_command(&inv(cmd)), "{cmd:?}");
        }
    }

    #[test]
    fn subcommands_skip_global_options() {
        let r = rule("git push");
        assert!(r.matches_command(&inv(&["git", "-C", "dir", "push"])));
        assert!(r.matches_command(&inv(&["git", "-c", "k=v", "push", "origin"])));
        assert!(r.matches_command(&inv(&["git", "--git-dir=.git", "push"])));
        assert!(!r.matches_command(&inv(&["git", "status"])));
        assert!(!r.matches_command(&inv(&["git", "-C", "push", "status"])));
        assert!(rule("systemctl restart").matches_command(&inv(&[
            "systemctl",
            "--no-block",
            "restart",
            "x"
        ])));
        assert!(rule("kubectl apply").matches_command(&inv(&[
            "kubectl",
            "--context",
            "x",
            "apply",
            "-f",
            "y"
        ])));
    }

    #[test]
    fn chmod_modes_mean_permissions() {
        let r = rule("chmod 777");
        for m in [
            "777",
            "0777",
            "a+rwx",
            "ugo=rwx",
            "u=rwx,go=rwx",
            "1777",
            "+rwx",
        ] {
            assert!(r.matches_command(&inv(&["chmod", m, "f"])), "{m}");
            assert!(r.matches_command(&inv(&["chmod", "-R", m, "d"])), "{m}");
        }
        for m in ["755", "a+rx", "u+rwx"] {
            assert!(!r.matches_command(&inv(&["chmod", m, "f"])), "{m}");
        }
        assert_eq!(mode_bits("a-x"), Some(0));
    }

    #[test]
    fn rules_compile_or_explain() {
        assert!(rule("DROP TABLE").is_sql());
        assert!(rule("sql:drop table").is_sql());
        assert!(!rule("drop table").is_sql());
        assert_eq!(rule("  rm   -rf ").name, "deny:rm -rf");
        for bad in ["", "   ", "-rf", "ls | sh", "rm $x", "sql:  "] {
            let e = Rule::compile("allow", PolicyVerdict::Allow, bad).unwrap_err();
            assert!(e.to_string().contains("allow list"), "{e}");
        }
    }
}
