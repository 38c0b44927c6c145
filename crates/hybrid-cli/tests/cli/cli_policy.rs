//! `hybrid policy check`: the JSON shape of CLI.md, decisions with the seed's
//! policy and with `[policy]` from `hybrid.toml`, the text form, exit code 0.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Output;

use serde_json::Value;

use crate::common;

fn hybrid(dir: &Path, args: &[&str]) -> Output {
    common::hybrid(dir)
        .env_remove("RUST_LOG")
        .args(args)
        .output()
        .unwrap()
}

fn check_json(dir: &Path, line: &[&str]) -> Value {
    let mut args = vec!["policy", "check", "--json", "--"];
    args.extend_from_slice(line);
    let out = hybrid(dir, &args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

#[test]
fn json_has_the_documented_shape() {
    let dir = tempfile::tempdir().unwrap();
    let v = check_json(dir.path(), &["ls; rm -rf /"]);
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["decision", "rule", "reason", "commands"]);
    assert_eq!(v["decision"], "deny");
    assert_eq!(v["rule"], "deny:rm -rf");
    assert!(v["reason"].as_str().unwrap().contains("rm -rf"));
    let commands = v["commands"].as_array().unwrap();
    assert_eq!(commands.len(), 2);
    for c in commands {
        let keys: Vec<&str> = c.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, ["argv", "decision", "rule"]);
    }
    assert_eq!(commands[0]["argv"], serde_json::json!(["ls"]));
    assert_eq!(commands[0]["decision"], "allow");
    assert_eq!(commands[1]["argv"], serde_json::json!(["rm", "-rf", "/"]));
    assert_eq!(commands[1]["rule"], "deny:rm -rf");
}

#[test]
fn seed_policy_decisions() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&[&str], &str, &str)] = &[
        (&["ls", "-la"], "allow", "allow:ls"),
        (&["ls && git status"], "allow", "allow:ls"),
        (
            &["git", "push", "origin", "main"],
            "approve",
            "approve:git push",
        ),
        (
            &["psql -c \"drop   table users\""],
            "deny",
            "deny:DROP TABLE",
        ),
        (&["timeout 5 sudo ls"], "deny", "deny:sudo"),
        (&["echo hi | sh"], "approve", "dynamic:pipe-to-shell"),
        (&["make"], "approve", "default"),
        (&["ls \"unterminated"], "deny", "unparseable"),
    ];
    for (line, decision, rule) in cases {
        let v = check_json(dir.path(), line);
        assert_eq!(v["decision"], *decision, "{line:?}: {v}");
        assert_eq!(v["rule"], *rule, "{line:?}: {v}");
    }
}

#[test]
fn config_policy_replaces_the_seed() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("hybrid.toml"),
        "[policy]\nallow = [\"make\"]\ndeny = [\"git push\"]\ndefault = \"deny\"\n",
    )
    .unwrap();
    let v = check_json(dir.path(), &["make", "-j4"]);
    assert_eq!(
        (v["decision"].as_str(), v["rule"].as_str()),
        (Some("allow"), Some("allow:make"))
    );
    let v = check_json(dir.path(), &["git -C x push"]);
    assert_eq!(v["rule"], "deny:git push");
    let v = check_json(dir.path(), &["ls"]);
    assert_eq!(
        (v["decision"].as_str(), v["rule"].as_str()),
        (Some("deny"), Some("default"))
    );

    std::fs::write(
        dir.path().join("hybrid.toml"),
        "[policy]\ndeny = [\"ls | sh\"]\n",
    )
    .unwrap();
    let out = hybrid(dir.path(), &["policy", "check", "--", "ls"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("ls | sh"));
}

#[test]
fn text_output_names_rule_and_commands() {
    let dir = tempfile::tempdir().unwrap();
    let out = hybrid(dir.path(), &["policy", "check", "--", "ls; sudo rm -rf /"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("deny"), "{text}");
    assert!(lines[0].contains("rule deny:sudo — "), "{text}");
    assert_eq!(lines.len(), 4, "{text}");
    assert!(lines[1].contains("allow:ls"), "{text}");
    assert!(
        lines[3].contains("deny:rm -rf") && lines[3].ends_with("rm -rf /"),
        "{text}"
    );
}

#[test]
fn missing_command_line_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = hybrid(dir.path(), &["policy", "check"]);
    assert_eq!(out.status.code(), Some(2));
}
