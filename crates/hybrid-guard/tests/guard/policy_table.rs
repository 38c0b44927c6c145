//! The command policy, table-driven: every construct and class the issue
//! lists, each line with its expected decision and rule, against the seed's
//! default policy (and a few against a workspace).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use hybrid_guard::{CommandPolicy, PolicyVerdict};

/// (command line, decision, rule)
const SEED: &[(&str, &str, &str)] = &[
    // --- allowed as listed, in any spelling of the program
    ("ls", "allow", "allow:ls"),
    ("ls -la /tmp", "allow", "allow:ls"),
    ("cat README.md", "allow", "allow:cat"),
    ("grep -rn foo src", "allow", "allow:grep"),
    ("ps aux", "allow", "allow:ps"),
    ("top -b -n 1", "allow", "allow:top"),
    ("git status", "allow", "allow:git status"),
    ("git status --short", "allow", "allow:git status"),
    ("git -C repo status", "allow", "allow:git status"),
    ("npm test", "allow", "allow:npm test"),
    ("npm test -- --watch", "allow", "allow:npm test"),
    ("/bin/ls", "allow", "allow:ls"),
    ("/usr/bin/cat /etc/hostname", "allow", "allow:cat"),
    ("./ls", "allow", "allow:ls"),
    ("\"ls\" -l", "allow", "allow:ls"),
    ("'git' status", "allow", "allow:git status"),
    ("grep -r \"sudo\" /etc", "allow", "allow:grep"),
    ("ls '; rm -rf /'", "allow", "allow:ls"),
    ("ls # ; rm -rf /", "allow", "allow:ls"),
    // --- nothing matched → the default (approve); rules are not string prefixes
    ("git log", "approve", "default"),
    ("git statusx", "approve", "default"),
    ("npm install", "approve", "default"),
    ("make build", "approve", "default"),
    ("echo hello", "approve", "default"),
    ("lsblk", "approve", "default"),
    ("catalog", "approve", "default"),
    ("echo \"rm -rf /\"", "approve", "default"),
    ("git log --grep push", "approve", "default"),
    ("", "approve", "default"),
    ("x=1", "approve", "default"),
    // --- lists, pipelines, newlines, background
    ("ls && git status", "allow", "allow:ls"),
    ("ls; git push", "approve", "approve:git push"),
    ("ls || rm -rf /", "deny", "deny:rm -rf"),
    ("ls & rm -rf /tmp/x", "deny", "deny:rm -rf"),
    ("ls\nrm -rf /", "deny", "deny:rm -rf"),
    ("ls | grep x", "allow", "allow:ls"),
    ("cat f | sort", "approve", "default"),
    ("ps aux | grep node | grep -v grep", "allow", "allow:ps"),
    ("ls 2>&1 | grep x", "allow", "allow:ls"),
    ("! rm -rf /", "deny", "deny:rm -rf"),
    ("time rm -rf /", "deny", "deny:rm -rf"),
    ("git status; git push; rm -rf /", "deny", "deny:rm -rf"),
    // --- subshells, groups, functions, loops, ifs, case
    ("(ls; rm -rf /)", "deny", "deny:rm -rf"),
    ("{ ls; rm -rf /; }", "deny", "deny:rm -rf"),
    ("f() { rm -rf /; }; f", "deny", "deny:rm -rf"),
    ("function g { git push; }", "approve", "approve:git push"),
    ("if true; then rm -rf /; fi", "deny", "deny:rm -rf"),
    (
        "if ls; then cat x; else rm -rf /; fi",
        "deny",
        "deny:rm -rf",
    ),
    ("for i in 1 2; do rm -rf $i; done", "deny", "deny:rm -rf"),
    (
        "while true; do git push; done",
        "approve",
        "approve:git push",
    ),
    ("until ls; do ls; done", "allow", "allow:ls"),
    ("case x in x) rm -rf /;; esac", "deny", "deny:rm -rf"),
    ("for ((i=0; i<3; i++)); do ls; done", "allow", "allow:ls"),
    ("(cd /tmp && ls)", "approve", "default"),
    // --- command substitution, backticks, process substitution
    ("echo $(rm -rf /)", "deny", "deny:rm -rf"),
    ("echo `rm -rf /`", "deny", "deny:rm -rf"),
    ("ls $(git push)", "approve", "approve:git push"),
    ("cat <(rm -rf /)", "deny", "deny:rm -rf"),
    ("diff <(ls a) <(ls b)", "approve", "default"),
    ("ls \"$(sudo id)\"", "deny", "deny:sudo"),
    ("X=$(rm -rf /) ls", "deny", "deny:rm -rf"),
    ("[[ -n $(rm -rf /) ]]", "deny", "deny:rm -rf"),
    ("ls > \"$(rm -rf /)\"", "deny", "deny:rm -rf"),
    ("for f in $(rm -rf /); do ls; done", "deny", "deny:rm -rf"),
    ("echo \"`sudo ls`\"", "deny", "deny:sudo"),
    ("echo $(echo $(rm -rf /))", "deny", "deny:rm -rf"),
    (
        "echo ${x:-$(rm -rf /)}",
        "approve",
        "dynamic:nested-expansion",
    ),
    ("tee >(rm -rf /)", "deny", "deny:rm -rf"),
    // --- here-documents and here-strings
    ("cat <<EOF\nhello\nEOF", "allow", "allow:cat"),
    ("cat <<EOF\n$(rm -rf /)\nEOF", "deny", "deny:rm -rf"),
    ("cat <<'EOF'\n$(rm -rf /)\nEOF", "allow", "allow:cat"),
    ("bash <<EOF\nrm -rf /\nEOF", "deny", "deny:rm -rf"),
    ("sh <<< \"rm -rf /\"", "deny", "deny:rm -rf"),
    (
        "bash <<'EOF'\nls\ngit push\nEOF",
        "approve",
        "approve:git push",
    ),
    // --- wrappers
    ("sudo ls", "deny", "deny:sudo"),
    ("sudo -u root ls", "deny", "deny:sudo"),
    ("sudo", "deny", "deny:sudo"),
    ("/usr/bin/sudo -i", "deny", "deny:sudo"),
    ("timeout 5 sudo ls", "deny", "deny:sudo"),
    ("env FOO=1 rm -rf /", "deny", "deny:rm -rf"),
    ("env -i PATH=/bin ls", "allow", "allow:ls"),
    ("env -S \"rm -rf /\"", "deny", "deny:rm -rf"),
    ("nice -n 10 rm -rf /", "deny", "deny:rm -rf"),
    ("nice -5 rm -rf /", "deny", "deny:rm -rf"),
    ("nice ls", "allow", "allow:ls"),
    ("nohup rm -rf / &", "deny", "deny:rm -rf"),
    ("timeout -s KILL 10 git push", "approve", "approve:git push"),
    ("timeout --kill-after=5 10 ls", "allow", "allow:ls"),
    ("command rm -rf /", "deny", "deny:rm -rf"),
    ("command -v rm", "approve", "default"),
    ("exec rm -rf /", "deny", "deny:rm -rf"),
    ("xargs rm -rf", "deny", "deny:rm -rf"),
    ("find . -name '*.o' | xargs rm -rf", "deny", "deny:rm -rf"),
    ("ls | xargs -0 -n 1 rm -rf", "deny", "deny:rm -rf"),
    ("ls | xargs -I{} ls {}", "allow", "allow:ls"),
    ("ls | xargs", "approve", "default"),
    ("find / -exec rm -rf {} \\;", "deny", "deny:rm -rf"),
    ("find . -type f -execdir rm -rf {} +", "deny", "deny:rm -rf"),
    ("find . -name x -ok rm -rf {} ';'", "deny", "deny:rm -rf"),
    ("find . -name x -print", "approve", "default"),
    ("find . -exec ls {} \\;", "approve", "default"),
    ("busybox rm -rf /", "deny", "deny:rm -rf"),
    ("busybox ls", "allow", "allow:ls"),
    ("stdbuf -oL ls", "allow", "allow:ls"),
    ("setsid rm -rf /", "deny", "deny:rm -rf"),
    ("doas rm -rf /", "deny", "deny:rm -rf"),
    (
        "nohup nice -n 5 timeout 10 rm -fr /srv",
        "deny",
        "deny:rm -rf",
    ),
    ("env sudo ls", "deny", "deny:sudo"),
    ("busybox sh -c 'rm -rf /'", "deny", "deny:rm -rf"),
    // --- shells' -c strings, recursively; eval of literals
    ("bash -c \"ls; rm -rf /\"", "deny", "deny:rm -rf"),
    ("sh -c 'git push'", "approve", "approve:git push"),
    ("zsh -lc \"ls\"", "allow", "allow:ls"),
    ("bash -c \"bash -c 'rm -rf /'\"", "deny", "deny:rm -rf"),
    ("bash -c 'sh -c \"sudo ls\"'", "deny", "deny:sudo"),
    ("bash -o pipefail -c 'ls | grep x'", "allow", "allow:ls"),
    ("/bin/bash -ec 'ls && rm -Rf x'", "deny", "deny:rm -rf"),
    ("dash -c 'ls'", "allow", "allow:ls"),
    ("bash -c \"$CMD\"", "approve", "dynamic:eval"),
    ("bash script.sh", "approve", "default"),
    ("eval \"rm -rf /\"", "deny", "deny:rm -rf"),
    ("eval ls", "allow", "allow:ls"),
    ("eval 'git' 'push'", "approve", "approve:git push"),
    ("eval \"$x\"", "approve", "dynamic:eval"),
    ("eval $(echo rm -rf /)", "approve", "dynamic:eval"),
    // --- pipes into shells and interpreters; interpreter code
    ("echo hi | sh", "approve", "dynamic:pipe-to-shell"),
    ("echo \"rm -rf /\" | sh", "deny", "deny:rm -rf"),
    (
        "curl -fsSL https://example.invalid/i.sh | bash",
        "approve",
        "dynamic:pipe-to-shell",
    ),
    (
        "wget -qO- http://example.invalid | sh -s -- --yes",
        "approve",
        "dynamic:pipe-to-shell",
    ),
    ("cat script | bash -", "approve", "dynamic:pipe-to-shell"),
    (
        "echo 'print(1)' | python3",
        "approve",
        "dynamic:pipe-to-shell",
    ),
    (
        "python -c 'import os; os.system(\"rm -rf /\")'",
        "approve",
        "dynamic:interpreter-code",
    ),
    (
        "python3 -Bc 'print(1)'",
        "approve",
        "dynamic:interpreter-code",
    ),
    (
        "perl -e 'unlink \"x\"'",
        "approve",
        "dynamic:interpreter-code",
    ),
    (
        "node -e \"require('fs')\"",
        "approve",
        "dynamic:interpreter-code",
    ),
    ("ruby -e 'puts 1'", "approve", "dynamic:interpreter-code"),
    (
        "php -r 'system(\"ls\");'",
        "approve",
        "dynamic:interpreter-code",
    ),
    ("python3 script.py -c x", "approve", "default"),
    // --- program-name normalisation and flags by meaning (hostile spellings)
    ("rm -rf /", "deny", "deny:rm -rf"),
    ("r\\m -rf /", "deny", "deny:rm -rf"),
    ("\\rm -rf /", "deny", "deny:rm -rf"),
    ("/bin/rm --force --recursive x", "deny", "deny:rm -rf"),
    ("\"rm\" -r -f x", "deny", "deny:rm -rf"),
    ("$'rm' -rf /", "deny", "deny:rm -rf"),
    ("$'\\x72\\x6d' -rf /", "deny", "deny:rm -rf"),
    ("'r'm -fr /", "deny", "deny:rm -rf"),
    ("r''m -rf /", "deny", "deny:rm -rf"),
    ("../../bin/rm -rf /", "deny", "deny:rm -rf"),
    ("rm -Rf /", "deny", "deny:rm -rf"),
    ("rm -r -f /", "deny", "deny:rm -rf"),
    ("rm x -rf", "deny", "deny:rm -rf"),
    ("rm -v x -R -f", "deny", "deny:rm -rf"),
    ("rm --recursive --force x", "deny", "deny:rm -rf"),
    ("rm --rec --for x", "deny", "deny:rm -rf"),
    ("rm -rf \"$HOME\"", "deny", "deny:rm -rf"),
    ("rm -rf / > /dev/null", "deny", "deny:rm -rf"),
    ("rm -r x", "approve", "default"),
    ("rm x", "approve", "default"),
    ("rm -- -rf", "approve", "default"),
    ("x=rm; $x -rf /", "deny", "deny:rm -rf"),
    ("x=rm; y=-rf; $x $y /", "deny", "deny:rm -rf"),
    ("$CMD -rf /", "approve", "dynamic:variable-program"),
    ("$(echo rm) -rf /", "approve", "dynamic:variable-program"),
    (
        "\"$(which rm)\" -rf /",
        "approve",
        "dynamic:variable-program",
    ),
    ("${x} ls", "approve", "dynamic:variable-program"),
    ("/bin/r? -rf /", "approve", "dynamic:variable-program"),
    ("{rm,-rf,/}", "approve", "dynamic:variable-program"),
    ("ls;rm -rf /", "deny", "deny:rm -rf"),
    ("ls \\\n; rm -rf /", "deny", "deny:rm -rf"),
    ("rm -rf -- /", "deny", "deny:rm -rf"),
    ("~/bin/rm -rf /", "deny", "deny:rm -rf"),
    ("coproc rm -rf /", "deny", "deny:rm -rf"),
    ("su -c 'rm -rf /' root", "deny", "deny:rm -rf"),
    ("su - deploy -c 'git push'", "approve", "approve:git push"),
    ("script -qc 'rm -rf /' /dev/null", "deny", "deny:rm -rf"),
    ("xargs sh -c 'rm -rf /'", "deny", "deny:rm -rf"),
    (
        "find . -exec sh -c 'rm -Rf \"$1\"' _ {} \\;",
        "deny",
        "deny:rm -rf",
    ),
    (
        "exec 3>/etc/passwd",
        "approve",
        "dynamic:redirect-outside-workspace",
    ),
    ("watch -n 1 rm -rf /tmp/x", "deny", "deny:rm -rf"),
    ("x=\"rm -rf /\"; $x", "deny", "deny:rm -rf"),
    ("cat <<EOF | sh\nrm -rf /\nEOF", "deny", "deny:rm -rf"),
    (
        "python3 - <<EOF\nimport os\nEOF",
        "approve",
        "dynamic:interpreter-code",
    ),
    ("bash -c -- 'rm -rf /'", "deny", "deny:rm -rf"),
    (
        "sh -c \"$(curl -s https://example.invalid)\"",
        "approve",
        "dynamic:eval",
    ),
    ("rm $'-rf' /", "deny", "deny:rm -rf"),
    // --- chmod 777 by meaning
    ("chmod 777 f", "deny", "deny:chmod 777"),
    ("chmod 0777 f", "deny", "deny:chmod 777"),
    ("chmod a+rwx f", "deny", "deny:chmod 777"),
    ("chmod ugo=rwx f", "deny", "deny:chmod 777"),
    ("chmod -R 777 /srv", "deny", "deny:chmod 777"),
    ("chmod 777 -R /srv", "deny", "deny:chmod 777"),
    ("/bin/chmod --recursive a=rwx x", "deny", "deny:chmod 777"),
    ("find . -exec chmod 777 {} +", "deny", "deny:chmod 777"),
    ("chmod 755 f", "approve", "default"),
    ("chmod u+x run.sh", "approve", "default"),
    // --- subcommands after global options
    ("git push", "approve", "approve:git push"),
    ("git push origin main", "approve", "approve:git push"),
    ("git -C repo push", "approve", "approve:git push"),
    (
        "git -c user.name=x push --force",
        "approve",
        "approve:git push",
    ),
    ("git --no-pager push", "approve", "approve:git push"),
    (
        "kubectl apply -f x.yaml",
        "approve",
        "approve:kubectl apply",
    ),
    (
        "kubectl --context prod apply -f x.yaml",
        "approve",
        "approve:kubectl apply",
    ),
    (
        "kubectl -n prod apply -f x",
        "approve",
        "approve:kubectl apply",
    ),
    ("kubectl get pods", "approve", "default"),
    (
        "systemctl restart nginx",
        "approve",
        "approve:systemctl restart",
    ),
    (
        "systemctl --no-block restart nginx",
        "approve",
        "approve:systemctl restart",
    ),
    ("systemctl status nginx", "approve", "default"),
    ("sudo systemctl restart nginx", "deny", "deny:sudo"),
    // --- SQL reaching a client, by meaning; the same words elsewhere are not SQL
    ("psql -c \"DROP TABLE users\"", "deny", "deny:DROP TABLE"),
    ("psql -c \"drop   table users\"", "deny", "deny:DROP TABLE"),
    (
        "psql <<EOF\nDROP/*x*/TABLE t;\nEOF",
        "deny",
        "deny:DROP TABLE",
    ),
    ("mysql -e 'DELETE FROM t'", "deny", "deny:DELETE FROM"),
    (
        "mysql --execute=\"delete from t where 1\"",
        "deny",
        "deny:DELETE FROM",
    ),
    ("mysql -e\"DELETE FROM t\"", "deny", "deny:DELETE FROM"),
    ("echo \"DROP TABLE x\" | psql", "deny", "deny:DROP TABLE"),
    ("sqlite3 app.db \"drop table t\"", "deny", "deny:DROP TABLE"),
    ("psql <<< 'DROP /* c */ TABLE t'", "deny", "deny:DROP TABLE"),
    (
        "cat <<EOF | psql\ndrop table t;\nEOF",
        "deny",
        "deny:DROP TABLE",
    ),
    (
        "PGPASSWORD=x psql -h db -c 'TRUNCATE t; DROP TABLE t'",
        "deny",
        "deny:DROP TABLE",
    ),
    (
        "sudo -u postgres psql -c 'DROP TABLE t'",
        "deny",
        "deny:sudo",
    ),
    (
        "bash -c \"psql -c 'drop table t'\"",
        "deny",
        "deny:DROP TABLE",
    ),
    (
        "mysql <<'SQL'\nSELECT 1;\n-- note\nDELETE\n  FROM t;\nSQL",
        "deny",
        "deny:DELETE FROM",
    ),
    ("psql -c \"SELECT * FROM users\"", "approve", "default"),
    ("psql -c \"select 'drop table x'\"", "approve", "default"),
    ("mysql db < dump.sql", "approve", "default"),
    ("grep \"DROP TABLE\" f", "allow", "allow:grep"),
    ("grep -i 'delete from' log.txt", "allow", "allow:grep"),
    ("echo \"DROP TABLE x\"", "approve", "default"),
    // --- writes through redirection outside the workspace
    (
        "ls > /etc/passwd",
        "approve",
        "dynamic:redirect-outside-workspace",
    ),
    ("ls > out.txt", "allow", "allow:ls"),
    ("ls 2>/dev/null", "allow", "allow:ls"),
    (
        "ls >> ~/.bashrc",
        "approve",
        "dynamic:redirect-outside-workspace",
    ),
    (
        "cat f > ../outside",
        "approve",
        "dynamic:redirect-outside-workspace",
    ),
    (
        "ls &> /tmp/log",
        "approve",
        "dynamic:redirect-outside-workspace",
    ),
    (
        "ls > \"$OUT\"",
        "approve",
        "dynamic:redirect-outside-workspace",
    ),
    (
        "{ ls; } > /etc/x",
        "approve",
        "dynamic:redirect-outside-workspace",
    ),
    (
        "> /etc/passwd",
        "approve",
        "dynamic:redirect-outside-workspace",
    ),
    ("ls < /etc/passwd", "allow", "allow:ls"),
    // --- cannot parse → deny
    ("ls \"unterminated", "deny", "unparseable"),
    ("ls (", "deny", "unparseable"),
    ("if then fi", "deny", "unparseable"),
    ("echo $(", "deny", "unparseable"),
    ("ls |", "deny", "unparseable"),
    ("bash -c \"ls \\\"unterminated\"", "deny", "unparseable"),
    ("cat <<EOF\nunfinished", "deny", "unparseable"),
];

fn verdict(s: &str) -> PolicyVerdict {
    s.parse().unwrap()
}

fn run_table(policy: &CommandPolicy, table: &[(&str, &str, &str)]) -> Vec<String> {
    let mut failures = Vec::new();
    for (line, decision, rule) in table {
        let d = policy.check(line);
        if d.decision != verdict(decision) || d.rule != *rule {
            failures.push(format!(
                "{line:?}: expected {decision} {rule}, got {} {} ({}) {:?}",
                d.decision,
                d.rule,
                d.reason,
                d.commands
                    .iter()
                    .map(|c| format!("{:?}={}/{}", c.argv, c.decision, c.rule))
                    .collect::<Vec<_>>()
            ));
        }
    }
    failures
}

#[test]
fn seed_policy_table() {
    assert!(SEED.len() >= 150, "only {} lines", SEED.len());
    let failures = run_table(&CommandPolicy::seed_default(), SEED);
    assert!(
        failures.is_empty(),
        "{} of {} lines wrong:\n{}",
        failures.len(),
        SEED.len(),
        failures.join("\n")
    );
}

#[test]
fn workspace_table() {
    let table: &[(&str, &str, &str)] = &[
        ("ls > /ws/out.txt", "allow", "allow:ls"),
        ("ls > out.txt", "allow", "allow:ls"),
        ("ls > sub/../out.txt", "allow", "allow:ls"),
        (
            "ls > ../out.txt",
            "approve",
            "dynamic:redirect-outside-workspace",
        ),
        (
            "ls > /ws2/out.txt",
            "approve",
            "dynamic:redirect-outside-workspace",
        ),
        (
            "ls > /tmp/x",
            "approve",
            "dynamic:redirect-outside-workspace",
        ),
        ("rm -rf /ws/x > /etc/y", "deny", "deny:rm -rf"),
    ];
    let policy = CommandPolicy::seed_default().with_workspace(PathBuf::from("/ws"));
    let failures = run_table(&policy, table);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_command_is_listed_with_its_own_decision() {
    let d = CommandPolicy::seed_default().check("ls; sudo git push");
    let got: Vec<(Vec<&str>, PolicyVerdict, &str)> = d
        .commands
        .iter()
        .map(|c| {
            (
                c.argv.iter().map(String::as_str).collect(),
                c.decision,
                c.rule.as_str(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (vec!["ls"], PolicyVerdict::Allow, "allow:ls"),
            (
                vec!["sudo", "git", "push"],
                PolicyVerdict::Deny,
                "deny:sudo"
            ),
            (
                vec!["git", "push"],
                PolicyVerdict::Approve,
                "approve:git push"
            ),
        ]
    );
    let json = serde_json::to_value(&d).unwrap();
    let keys: Vec<&str> = json
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, ["decision", "rule", "reason", "commands"]);
    assert_eq!(json["decision"], "deny");
    assert_eq!(json["commands"][0]["argv"][0], "ls");
}

#[test]
fn configured_rules_are_used() {
    use hybrid_guard::PolicyRules;
    let policy = CommandPolicy::new(PolicyRules {
        allow: vec!["cargo test".into(), "make".into()],
        deny: vec!["git push --force".into(), "sql:truncate".into()],
        approve: vec!["docker run".into()],
        default: PolicyVerdict::Deny,
    })
    .unwrap();
    let table: &[(&str, &str, &str)] = &[
        ("cargo test --workspace", "allow", "allow:cargo test"),
        ("make -j4", "allow", "allow:make"),
        ("cargo build", "deny", "default"),
        ("git push -f origin", "deny", "deny:git push --force"),
        ("git push origin", "deny", "default"),
        (
            "docker --context x run alpine",
            "approve",
            "approve:docker run",
        ),
        ("psql -c 'Truncate t'", "deny", "deny:sql:truncate"),
        ("ls", "deny", "default"),
        ("x=ls; $x", "deny", "default"),
    ];
    let failures = run_table(&policy, table);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn huge_and_deeply_nested_lines_are_denied() {
    let policy = CommandPolicy::seed_default();
    let huge = "ls ".repeat(100_000);
    assert_eq!(policy.check(&huge).rule, "unparseable");
    let nested = format!("{}ls{}", "echo $(".repeat(40), ")".repeat(40));
    assert_eq!(policy.check(&nested).rule, "unparseable");
    let fine = format!("{}ls{}", "echo $(".repeat(5), ")".repeat(5));
    assert_eq!(policy.check(&fine).rule, "default");
}
