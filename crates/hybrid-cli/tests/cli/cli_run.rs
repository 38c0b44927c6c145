//! End-to-end tests of the `hybrid` binary against the testkit's mock server:

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! runs on both wire protocols, the stored result, and every kind of bad input.

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use hybrid_testkit::{Fault, MockLlmServer, Turn};
use serde_json::Value;

use crate::common::{self, UseMock, json, stderr, wait_until};

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Self {
        Env {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn db(&self) -> String {
        common::sqlite(self.dir.path(), "hybrid.db")
    }

    /// A `hybrid` command in the temp dir with a clean provider environment.
    fn cmd(&self, mock: Option<&MockLlmServer>) -> Command {
        let mut c = common::hybrid(self.dir.path());
        c.env_remove("RUST_LOG")
            .env("RUST_BACKTRACE", "1")
            .args(["--db", &self.db()]);
        if let Some(m) = mock {
            c.openai_mock(m, "sk-test-openai")
                .anthropic_mock(m, "sk-ant-test");
        }
        c
    }

    fn write(&self, name: &str, text: &str) -> std::path::PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    }
}

fn run(mut c: Command) -> Output {
    c.stdin(Stdio::null()).output().unwrap()
}

/// Exactly one line, starting `hybrid: error:`, and no Rust panic or backtrace.
fn assert_one_line_error(out: &Output, code: i32, needle: &str) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(code), "stderr: {err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one line, got: {err}");
    assert!(lines[0].starts_with("hybrid: error: "), "{err}");
    assert!(lines[0].contains(needle), "`{needle}` not in: {err}");
    assert!(
        !err.contains("panicked") && !err.contains("stack backtrace"),
        "{err}"
    );
}

fn show(env: &Env, id: &str) -> Value {
    let mut c = env.cmd(None);
    c.args(["tasks", "show", id, "--json"]);
    let out = run(c);
    assert!(out.status.success(), "{}", stderr(&out));
    json(&out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_json_on_both_protocols_and_show_returns_the_same_result() {
    let mock = MockLlmServer::start().await.unwrap();
    let env = Env::new();
    for (platform, path) in [
        ("openai", "/v1/chat/completions"),
        ("claude", "/v1/messages"),
    ] {
        mock.enqueue(Turn::text(format!("Qubits, from {platform}.")).with_usage(17, 5));
        let mut c = env.cmd(Some(&mock));
        c.args([
            "run",
            "--json",
            "--platform",
            platform,
            "Explain quantum computing",
        ]);
        let out = run(c);
        assert!(out.status.success(), "{platform}: {}", stderr(&out));
        let r = json(&out);
        assert_eq!(r["status"], "completed");
        assert_eq!(r["platform"], platform);
        assert_eq!(r["route"]["rule"], "explicit");
        assert_eq!(r["output"], format!("Qubits, from {platform}."));
        assert_eq!(r["usage"]["input_tokens"], 17);
        assert_eq!(r["usage"]["output_tokens"], 5);
        assert_eq!(r["stages"]["execution"]["platform"], platform);
        let last = mock.requests().pop().unwrap();
        assert_eq!(last.path, path);
        assert_eq!(last.body["stream"], true, "the CLI streams by default");
        let id = r["task_id"].as_str().unwrap();
        assert_eq!(show(&env, id), r, "tasks show returns the stored result");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn router_picks_the_platform_and_json_stream_ends_with_the_result() {
    let mock = MockLlmServer::start().await.unwrap();
    let env = Env::new();
    mock.enqueue(Turn::text("Ran it.").with_chunk_size(2));
    let mut c = env.cmd(Some(&mock));
    c.args([
        "run",
        "--stream",
        "--type",
        "research",
        "Find the release notes",
    ]);
    let out = run(c);
    assert!(out.status.success(), "{}", stderr(&out));
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let types: Vec<&str> = lines.iter().filter_map(|l| l["type"].as_str()).collect();
    assert_eq!(types.first(), Some(&"submitted"));
    assert!(types.contains(&"routed") && types.contains(&"stage_started"));
    assert!(
        types.iter().filter(|t| **t == "text_delta").count() >= 2,
        "{types:?}"
    );
    let last = lines.last().unwrap();
    assert_eq!(last["status"], "completed");
    assert_eq!(last["platform"], "claude");
    assert_eq!(last["route"]["rule"], "type_execution");
    assert_eq!(last["output"], "Ran it.");
    assert_eq!(mock.requests()[0].path, "/v1/messages");
}

#[test]
fn route_needs_no_network_and_names_the_rule() {
    let env = Env::new();
    let mut c = env.cmd(None);
    c.args([
        "route",
        "--json",
        "--system-access",
        "--multi-step",
        "Audit codebase for security issues",
    ]);
    let out = run(c);
    assert!(out.status.success(), "{}", stderr(&out));
    let d = json(&out);
    assert_eq!(d["platform"], "hybrid");
    assert_eq!(d["rule"], "system_access_multi_step");
    assert!(
        !env.dir.path().join("hybrid.db").exists(),
        "route stores nothing"
    );
}

#[test]
fn bad_flags_get_one_line_and_exit_2() {
    let env = Env::new();
    for (args, needle) in [
        (vec!["run", "--type", "chat", "x"], "chat"),
        (vec!["run", "--priority", "0", "x"], "priority"),
        (vec!["run", "--priority", "6", "x"], "priority"),
        (
            vec!["route", "--estimated-cost", "-3", "x"],
            "estimated-cost",
        ),
        (vec!["run", "--context", "novalue", "x"], "KEY=VALUE"),
        (vec!["run", "--frobnicate", "x"], "frobnicate"),
    ] {
        let mut c = env.cmd(None);
        c.args(&args);
        assert_one_line_error(&run(c), 2, needle);
    }
    let mut c = env.cmd(None);
    c.args(["run", "--context-file", "missing.json", "x"]);
    assert_one_line_error(&run(c), 2, "missing.json");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_api_key_names_the_variable_and_records_the_failed_task() {
    let env = Env::new();
    let mut c = env.cmd(None);
    c.args(["run", "--json", "--platform", "openai", "hello"]);
    let out = run(c);
    assert_one_line_error(&out, 4, "OPENAI_API_KEY");
    let r = json(&out);
    assert_eq!(r["status"], "failed");
    let stored = show(&env, r["task_id"].as_str().unwrap());
    assert_eq!(stored["status"], "failed");
    assert!(stored["error"].as_str().unwrap().contains("OPENAI_API_KEY"));

    let mut c = env.cmd(None);
    c.args(["run", "--json", "--platform", "claude", "hello"]);
    assert_one_line_error(&run(c), 4, "ANTHROPIC_API_KEY");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_base_url_is_a_connection_error() {
    let env = Env::new();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let cfg = env.write(
        "hybrid.toml",
        &format!(
            "[platforms.openai]\nprovider = \"openai\"\nbase_url = \"http://127.0.0.1:{port}/v1\"\nmax_attempts = 2\n"
        ),
    );
    let mut c = env.cmd(None);
    c.env("OPENAI_API_KEY", "sk-x")
        .arg("--config")
        .arg(&cfg)
        .args(["run", "--json", "hi"]);
    let out = run(c);
    assert_one_line_error(&out, 5, &format!("127.0.0.1:{port}"));
    assert_eq!(json(&out)["status"], "failed");
}

#[test]
fn unknown_config_key_names_key_and_line() {
    let env = Env::new();
    let cfg = env.write(
        "bad.toml",
        "[platforms.openai]\nprovider = \"openai\"\nmodle = \"gpt\"\n",
    );
    let mut c = env.cmd(None);
    c.arg("--config").arg(&cfg).args(["run", "hi"]);
    let out = run(c);
    assert_one_line_error(&out, 3, "bad.toml:3");
    assert!(stderr(&out).contains("modle"));
    let mut c = env.cmd(None);
    c.args(["--config", "nope.toml", "route", "hi"]);
    assert_one_line_error(&run(c), 3, "nope.toml");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn context_too_long_is_reported_and_not_retried() {
    let mock = MockLlmServer::start().await.unwrap();
    let env = Env::new();
    for platform in ["openai", "claude"] {
        let before = mock.request_count();
        mock.enqueue(Fault::ContextTooLong);
        let mut c = env.cmd(Some(&mock));
        c.args([
            "run",
            "--json",
            "--platform",
            platform,
            "a very long prompt",
        ]);
        let out = run(c);
        assert_one_line_error(&out, 6, "context too long");
        assert_eq!(mock.request_count() - before, 1, "{platform}: not retried");
        assert_eq!(json(&out)["status"], "failed");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_leaves_the_task_cancelled() {
    let mock = MockLlmServer::start().await.unwrap();
    let env = Env::new();
    mock.enqueue(Turn::text("too late").with_first_byte_delay(Duration::from_secs(30)));
    let mut c = env.cmd(Some(&mock));
    c.args(["run", "--json", "--platform", "openai", "slow"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = c.spawn().unwrap();
    // Wait until the request reached the mock, then interrupt.
    wait_until(
        "the run's request to reach the mock",
        Duration::from_secs(5),
        || mock.request_count() > 0,
    )
    .await;
    assert_eq!(mock.request_count(), 1);
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    let r = json(&out);
    assert_eq!(r["status"], "cancelled");
    assert_eq!(
        show(&env, r["task_id"].as_str().unwrap())["status"],
        "cancelled"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_list_and_metrics_read_the_store() {
    let mock = MockLlmServer::start().await.unwrap();
    let env = Env::new();
    mock.set_default(Some(Turn::text("ok").with_usage(10, 2).into()));
    for platform in ["openai", "openai", "claude"] {
        let mut c = env.cmd(Some(&mock));
        c.args(["run", "--json", "--platform", platform, "count me"]);
        assert!(run(c).status.success());
    }
    let mut c = env.cmd(None);
    c.args(["tasks", "list", "--json"]);
    let list = json(&run(c));
    assert_eq!(list.as_array().unwrap().len(), 3);
    let mut c = env.cmd(None);
    c.args(["metrics", "--json"]);
    let m = json(&run(c));
    assert_eq!(m["tasks_executed"], 3);
    assert_eq!(m["success_rate"], 100.0);
    assert_eq!(m["tokens"]["input_tokens"], 30);
    let dist = &m["platform_distribution"];
    assert!(
        (dist["openai"].as_f64().unwrap() - 66.666).abs() < 0.1,
        "{dist}"
    );
    let mut c = env.cmd(None);
    c.args(["tasks", "show", "no-such-id"]);
    assert_one_line_error(&run(c), 8, "no-such-id");
}
