//! `hybrid run` against the local llama.cpp server that `scripts/test.sh`
//! starts, on both protocols: the run completes with the server's text and
//! usage, and `tasks show` returns the same result from the store.
//!
//! Skips with a printed reason when `HYBRID_LIVE_*` is unset, except under `CI=true`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::Value;

use crate::common;

fn var(k: &str) -> Option<String> {
    std::env::var(k).ok().filter(|v| !v.is_empty())
}

#[test]
fn run_json_on_the_local_model_over_both_protocols() {
    let (Some(openai), Some(anthropic), Some(model)) = (
        var("HYBRID_LIVE_OPENAI_BASE_URL"),
        var("HYBRID_LIVE_ANTHROPIC_BASE_URL"),
        var("HYBRID_LIVE_MODEL"),
    ) else {
        assert!(
            var("CI").as_deref() != Some("true"),
            "CI=true but HYBRID_LIVE_* is not set"
        );
        eprintln!("skipped: HYBRID_LIVE_* not set (scripts/test.sh starts the local model server)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("hybrid.toml");
    std::fs::write(
        &config,
        format!(
            "[platforms.openai]\nprovider = \"openai\"\nmodel = \"{model}\"\nbase_url = \"{openai}\"\nmax_tokens = 32\n\n\
             [platforms.claude]\nprovider = \"anthropic\"\nmodel = \"{model}\"\nbase_url = \"{anthropic}\"\nmax_tokens = 32\n"
        ),
    )
    .unwrap();
    let db = common::sqlite(dir.path(), "h.db");
    let hybrid = |args: &[&str]| {
        let out = common::hybrid(dir.path())
            .env("OPENAI_API_KEY", "sk-local-no-key")
            .env("ANTHROPIC_API_KEY", "sk-local-no-key")
            .args(["--config", config.to_str().unwrap(), "--db", &db])
            .args(args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "hybrid {args:?}: {stderr}");
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    for platform in ["openai", "claude"] {
        let r = hybrid(&[
            "run",
            "--json",
            "--platform",
            platform,
            "Say hello in three words.",
        ]);
        assert_eq!(r["status"], "completed", "{platform}: {r}");
        assert_eq!(r["platform"], platform);
        assert!(
            !r["output"].as_str().unwrap().trim().is_empty(),
            "{platform}: empty output"
        );
        assert!(
            r["usage"]["output_tokens"].as_u64().unwrap() > 0,
            "{platform}: {r}"
        );
        assert!(r["cost_usd"].is_null(), "a local model has no price");
        let shown = hybrid(&["tasks", "show", r["task_id"].as_str().unwrap(), "--json"]);
        assert_eq!(shown, r, "{platform}: tasks show returns the stored result");
    }
}
