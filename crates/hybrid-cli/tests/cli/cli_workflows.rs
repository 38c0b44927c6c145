//! `hybrid workflows list|show|validate`: built-ins, ./workflows/ files and
//! overrides, the one-line error with file and line, exit codes 3 and 8.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Output;

use serde_json::Value;

use crate::common::{self, stderr, stdout};

fn hybrid(dir: &Path, args: &[&str]) -> Output {
    common::hybrid(dir)
        .env_remove("RUST_LOG")
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn list_shows_builtins_and_local_files() {
    let dir = tempfile::tempdir().unwrap();
    let out = hybrid(dir.path(), &["workflows", "list"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    for name in [
        "plan-execute-verify",
        "incident-response",
        "code-review-deploy",
    ] {
        assert!(text.contains(name), "{text}");
    }
    std::fs::create_dir(dir.path().join("workflows")).unwrap();
    std::fs::write(
        dir.path().join("workflows/incident-response.yaml"),
        "name: incident-response\ndescription: ours\nstages:\n  - id: look\n    runbook: { commands: [uptime] }\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("workflows/nightly.yml"),
        "name: nightly\ndescription: nightly checks\nstages:\n  - id: a\n    agent: analyst\n    prompt: hi\n  - id: b\n    agent: validator\n    output: verdict\n    prompt: \"{{ stages.a.output }}\"\n",
    )
    .unwrap();
    let out = hybrid(dir.path(), &["workflows", "list", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let rows: Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 4);
    let ir = rows
        .iter()
        .find(|r| r["name"] == "incident-response")
        .unwrap();
    assert_eq!(ir["overrides_builtin"], true);
    assert_eq!(ir["description"], "ours");
    assert_eq!(ir["stages"], 1);
    let nightly = rows.iter().find(|r| r["name"] == "nightly").unwrap();
    assert_eq!(nightly["stages"], 2);
    assert!(nightly["source"].as_str().unwrap().ends_with("nightly.yml"));
    let text = stdout(&hybrid(dir.path(), &["workflows", "list"]));
    assert!(text.contains("(overrides the built-in)"), "{text}");
}

#[test]
fn show_prints_stages_and_dependencies() {
    let dir = tempfile::tempdir().unwrap();
    let out = hybrid(dir.path(), &["workflows", "show", "plan-execute-verify"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("verification"), "{text}");
    let out = hybrid(
        dir.path(),
        &["workflows", "show", "--json", "code-review-deploy"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let decide = v["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "decide")
        .unwrap();
    assert_eq!(decide["kind"], "check");
    assert_eq!(
        decide["needs"],
        serde_json::json!(["test", "lint", "security", "coverage"])
    );
    let out = hybrid(dir.path(), &["workflows", "show", "nope"]);
    assert_eq!(out.status.code(), Some(8));
    assert!(
        stderr(&out).starts_with("hybrid: error: no workflow named `nope`"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn validate_says_ok_or_names_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("good.yaml"),
        "name: good\nstages:\n  - id: a\n    agent: coordinator\n    prompt: hi\n",
    )
    .unwrap();
    let out = hybrid(dir.path(), &["workflows", "validate", "good.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), "ok: good (1 stages)\n");

    std::fs::write(
        dir.path().join("deploy.yaml"),
        "name: deploy\nstages:\n  - id: a\n    agent: coordinator\n    prompt: hi\n  - id: gate\n    approval:\n      message: go?\n      timout: 15m\n",
    )
    .unwrap();
    let out = hybrid(dir.path(), &["workflows", "validate", "deploy.yaml"]);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(
        stderr(&out),
        "hybrid: error: deploy.yaml:9: stages[1].approval.timout: unknown key (expected one of: message, timeout, on_reject)\n"
    );

    let out = hybrid(dir.path(), &["workflows", "validate", "missing.yaml"]);
    assert_eq!(out.status.code(), Some(8));
    assert_eq!(stderr(&out).lines().count(), 1);
}

#[test]
fn agents_from_the_config_file_are_known() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("custom.yaml"),
        "name: custom\nstages:\n  - id: a\n    agent: sre\n    prompt: hi\n",
    )
    .unwrap();
    let out = hybrid(dir.path(), &["workflows", "validate", "custom.yaml"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        stderr(&out).contains("custom.yaml:4: stages[0].agent: unknown agent `sre`"),
        "{}",
        stderr(&out)
    );
    std::fs::write(
        dir.path().join("hybrid.toml"),
        "[agents.sre]\nplatform = \"claude\"\ninstructions = \"You keep services up.\"\n",
    )
    .unwrap();
    let out = hybrid(dir.path(), &["workflows", "validate", "custom.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}
