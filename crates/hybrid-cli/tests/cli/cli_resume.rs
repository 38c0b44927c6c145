//! `hybrid tasks resume`: a `hybrid run` on the hybrid route is killed
//! (SIGKILL) while its verification stage waits for the model; `tasks resume
//! --force` finishes it from that stage, and neither the model nor the audit
//! trail shows the planning, the execution or its `ls` happening twice.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::{Command, Stdio};
use std::time::Duration;

use hybrid_testkit::{MockLlmServer, Turn};
use serde_json::json;

use crate::common::{self, UseMock, ok_json, wait_until};

fn hybrid(dir: &std::path::Path, db: &str, mock: &MockLlmServer) -> Command {
    let mut c = common::hybrid(dir);
    c.openai_mock(mock, "sk-test-openai")
        .anthropic_mock(mock, "sk-ant-api03-secretvalue123456")
        .args(["--db", db]);
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_run_resumes_from_its_first_unfinished_stage() {
    let mock = MockLlmServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), "hello").unwrap();
    let db = common::sqlite(dir.path(), "hybrid.db");
    mock.enqueue(Turn::text("1. Run `ls`.\nDone when: the files are listed."));
    mock.enqueue(Turn::tool_call("bash", json!({"command": "ls"})));
    mock.enqueue(Turn::text("Ran ls: notes.txt."));
    // The verification answer takes a minute: the run is killed meanwhile.
    mock.enqueue(Turn::text("PASS").with_first_byte_delay(Duration::from_secs(60)));

    let mut child = hybrid(dir.path(), &db, &mock)
        .args([
            "run",
            "--json",
            "--system-access",
            "--multi-step",
            "Audit codebase for security issues",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the verification request is in flight.
    wait_until(
        "the run to reach verification (its 4th model request)",
        Duration::from_secs(30),
        || mock.request_count() >= 4,
    )
    .await;
    child.kill().unwrap();
    child.wait().unwrap();

    let list = ok_json(
        &hybrid(dir.path(), &db, &mock)
            .args(["tasks", "list", "--json"])
            .output()
            .unwrap(),
    );
    let id = list[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        list[0]["status"], "in_progress",
        "the killed run left it running"
    );

    // Without --force the live-looking lease is respected.
    let refused = hybrid(dir.path(), &db, &mock)
        .args(["tasks", "resume", &id])
        .output()
        .unwrap();
    assert_eq!(
        refused.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--force"));

    mock.enqueue(Turn::text("The listing proves it.\nPASS"));
    let result = ok_json(
        &hybrid(dir.path(), &db, &mock)
            .args(["--json", "tasks", "resume", &id, "--force"])
            .output()
            .unwrap(),
    );
    assert_eq!(result["status"], "completed");
    assert_eq!(result["platform"], "hybrid");
    let stages: Vec<&str> = result["stages"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(stages, ["planning", "execution", "verification"]);
    assert_eq!(result["stages"]["execution"]["tools_used"], json!(["bash"]));
    assert_eq!(result["stages"]["verification"]["verdict"], "pass");
    assert_eq!(
        mock.request_count(),
        5,
        "only the verification was asked again"
    );

    let audit = ok_json(
        &hybrid(dir.path(), &db, &mock)
            .args(["audit", "list", "--json"])
            .output()
            .unwrap(),
    );
    let ls_runs = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"] == "bash_command" && r["command"] == "ls")
        .count();
    assert_eq!(ls_runs, 1, "ls ran once");
}
