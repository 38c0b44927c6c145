//! `hybrid guardrails list`, `hybrid run --dry-run`, and bad guardrail
//! configuration, through the binary.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Output;

use crate::common::{self, json};

const COST_LIMIT: &str = "[[guardrails]]\nname = \"cost_limit\"\nkind = \"block\"\nlayer = \"platform\"\nwhen = \"task.estimated_cost > 10.0\"\nmessage = \"Task exceeds $10 cost limit\"\n";

fn hybrid(dir: &std::path::Path, config: &str, args: &[&str]) -> Output {
    let path = dir.join("hybrid.toml");
    std::fs::write(&path, config).unwrap();
    common::hybrid(dir)
        .env("RUST_BACKTRACE", "1")
        .arg("--config")
        .arg(&path)
        .args(["--db", &common::sqlite(dir, "h.db")])
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn dry_run_routes_and_evaluates_l1_l2_without_a_model() {
    let dir = tempfile::tempdir().unwrap();
    let out = hybrid(
        dir.path(),
        COST_LIMIT,
        &[
            "run",
            "--dry-run",
            "--json",
            "--estimated-cost",
            "12",
            "Big job",
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(11),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let d = json(&out);
    assert_eq!(d["route"]["platform"], "openai");
    assert_eq!(d["input"]["outcome"]["outcome"], "pass");
    assert_eq!(d["platform"]["outcome"]["outcome"], "block");
    assert_eq!(d["platform"]["outcome"]["guardrail"], "cost_limit");
    let out = hybrid(
        dir.path(),
        COST_LIMIT,
        &[
            "run",
            "--dry-run",
            "--json",
            "--estimated-cost",
            "2",
            "Small job",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(json(&out)["platform"]["outcome"]["outcome"], "pass");
    // No API key was needed and no task was stored.
    let list = hybrid(dir.path(), COST_LIMIT, &["tasks", "list", "--json"]);
    assert_eq!(json(&list), serde_json::json!([]));
}

#[test]
fn guardrails_list_shows_the_file_rules_and_the_policy() {
    let dir = tempfile::tempdir().unwrap();
    let out = hybrid(dir.path(), COST_LIMIT, &["guardrails", "list", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list = json(&out);
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["cost_limit", "command_policy"]);
    assert_eq!(list[0]["layer"], "platform");
    assert!(list[0]["source"].as_str().unwrap().starts_with("cel:"));
    assert!(list[0]["from"].as_str().unwrap().ends_with("hybrid.toml"));
    assert_eq!(list[1]["from"], "the seed's default policy");
}

#[test]
fn guardrails_list_shows_budgets_and_rate_limits() {
    let dir = tempfile::tempdir().unwrap();
    let config = "[budgets]\nper_task_usd = 2.5\n[rate_limits]\nmax_wait_secs = 1.0\n\
                  [[rate_limits.rules]]\nscope = \"tool:bash\"\nlimit = 5\n";
    let out = hybrid(dir.path(), config, &["guardrails", "list", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list = json(&out);
    let rows: Vec<(&str, &str, &str)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["name"].as_str().unwrap(),
                g["kind"].as_str().unwrap(),
                g["layer"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("command_policy", "block", "execution"),
            ("budget:task", "cost_limit", "platform"),
            ("rate_limit:tool:bash", "rate_limit", "execution"),
        ]
    );
    assert_eq!(list[1]["source"], "budget: $2.5000 per task");
    assert_eq!(
        list[2]["source"],
        "rate limit: tool:bash 5 per 60s (burst 5)"
    );
}

#[test]
fn bad_guardrail_configuration_is_one_line_naming_the_rule() {
    let dir = tempfile::tempdir().unwrap();
    for (config, needle) in [
        (
            "[[guardrails]]\nname = \"g\"\nkind = \"stop\"\n",
            "guardrails[0].kind",
        ),
        (
            "[[guardrails]]\nname = \"g\"\nkind = \"block\"\nlayer = \"l9\"\n",
            "guardrails[0].layer",
        ),
        (
            "[[guardrails]]\nname = \"g\"\nkind = \"block\"\nwhen = \"task.nope > 1\"\n",
            "nope",
        ),
        (
            "[[guardrails]]\nname = \"g\"\nkind = \"block\"\nwhen = \"task.priority >\"\n",
            "guardrails[0]",
        ),
        ("[budgets]\nper_day_usd = -5.0\n", "budgets.per_day_usd"),
        (
            "[[rate_limits.rules]]\nscope = \"tool:bash\"\nlimit = 0\n",
            "rate_limits.rules[0]",
        ),
        (
            "[platforms.openai]\nprovider = \"openai\"\nfallback = \"nowhere\"\n",
            "platforms.openai.fallback",
        ),
    ] {
        let out = hybrid(dir.path(), config, &["guardrails", "list"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{config}: {err}");
        let lines: Vec<&str> = err
            .lines()
            .filter(|l| l.starts_with("hybrid: error:"))
            .collect();
        assert_eq!(lines.len(), 1, "{err}");
        assert!(
            lines[0].contains(needle) && lines[0].contains("hybrid.toml:"),
            "`{needle}` not in {err}"
        );
    }
}
