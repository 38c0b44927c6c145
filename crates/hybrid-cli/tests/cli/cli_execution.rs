//! Issue 3's end-to-end run through the `hybrid` binary: the model asks for
//! `ls` (runs), `rm -rf /` (denied; the model gets the denial as a tool error
//! and the task goes on) and `git push origin main` (waits; approved from a
//! second `hybrid` process; then runs in the sandbox). Everything is in the
//! audit trail; `audit verify` passes, and fails naming the record once a row
//! is edited with `sqlite3`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hybrid_testkit::{MockLlmServer, Turn};
use serde_json::{Value, json};

use crate::common::{self, UseMock, ok_json};

fn hybrid(dir: &std::path::Path, db: &str, mock: &MockLlmServer) -> Command {
    let mut c = common::hybrid(dir);
    c.anthropic_mock(mock, "sk-ant-api03-secretvalue123456")
        .args(["--db", db]);
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ls_runs_rm_is_denied_git_push_waits_for_another_process_and_the_audit_holds() {
    let support = hybrid_tools::sandbox::support();
    if support.filesystem.is_err() || support.network.is_err() {
        eprintln!("SKIP: this kernel lacks the sandbox features: {support:?}");
        return;
    }
    let mock = MockLlmServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    std::fs::write(work.join("app.log"), "ok\n").unwrap();
    let db_path = dir.path().join("hybrid.db");
    let db = common::sqlite(dir.path(), "hybrid.db");
    mock.enqueue(
        Turn::tool_call("bash", json!({"command": "ls"}))
            .and_tool_call("bash", json!({"command": "rm -rf /"}))
            .and_tool_call("bash", json!({"command": "git push origin main"})),
    );
    mock.enqueue(Turn::text(
        "Listed app.log; rm was refused; the push ran after approval.",
    ));

    let mut child = hybrid(dir.path(), &db, &mock)
        .args(["run", "--json", "--platform", "claude", "--workdir"])
        .arg(&work)
        .arg("Clean up and push")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    // A second process sees the pending approval and approves it.
    let deadline = Instant::now() + Duration::from_secs(60);
    let approval = loop {
        let list = ok_json(
            &hybrid(dir.path(), &db, &mock)
                .args(["approvals", "list", "--json"])
                .output()
                .unwrap(),
        );
        if let Some(a) = list.as_array().and_then(|l| l.first()) {
            break a.clone();
        }
        if let Some(status) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            panic!(
                "the run ended ({status}) before asking for approval: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        assert!(Instant::now() < deadline, "no approval was requested");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(approval["command"], "git push origin main");
    assert_eq!(approval["status"], "pending");
    let id = approval["id"].as_str().unwrap();
    let shown = ok_json(
        &hybrid(dir.path(), &db, &mock)
            .args([
                "tasks",
                "show",
                approval["task_id"].as_str().unwrap(),
                "--json",
            ])
            .output()
            .unwrap(),
    );
    assert_eq!(shown["status"], "awaiting_approval");
    let answered = hybrid(dir.path(), &db, &mock)
        .args([
            "approvals",
            "approve",
            id,
            "--by",
            "alice",
            "--note",
            "release window",
        ])
        .output()
        .unwrap();
    assert!(
        answered.status.success(),
        "{}",
        String::from_utf8_lossy(&answered.stderr)
    );

    let out = child.wait_with_output().unwrap();
    let r = ok_json(&out);
    assert_eq!(r["status"], "completed");
    let calls = r["stages"]["execution"]["tool_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 3);
    assert_eq!(calls[0]["output"], "app.log\n");
    assert_eq!(calls[0]["is_error"], false);
    assert!(calls[1]["is_error"].as_bool().unwrap());
    assert!(
        calls[1]["output"].as_str().unwrap().contains("deny:"),
        "{}",
        calls[1]
    );
    let push = calls[2]["output"].as_str().unwrap();
    assert!(
        !push.contains("not approved") && push.contains("git"),
        "the push ran: {push}"
    );
    // The model got the denial as a tool error and went on.
    let last = mock.last_request().unwrap().body;
    let results: Vec<&Value> = last["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["content"].as_array())
        .flatten()
        .filter(|b| b["type"] == "tool_result")
        .collect();
    assert_eq!(results.len(), 3);
    assert_eq!(results[1]["is_error"], true);

    // The audit trail has every action, the approver, and no secret.
    let task_id = r["task_id"].as_str().unwrap();
    let audit = ok_json(
        &hybrid(dir.path(), &db, &mock)
            .args(["audit", "list", "--json", "--task", task_id])
            .output()
            .unwrap(),
    );
    let records = audit.as_array().unwrap();
    let actions: Vec<&str> = records
        .iter()
        .map(|a| a["action"].as_str().unwrap())
        .collect();
    for want in ["model_call", "policy_decision", "approval", "bash_command"] {
        assert!(actions.contains(&want), "{want} missing from {actions:?}");
    }
    assert_eq!(
        actions.iter().filter(|a| **a == "policy_decision").count(),
        3
    );
    let pushed = records
        .iter()
        .find(|a| a["action"] == "bash_command" && a["command"] == "git push origin main")
        .unwrap();
    assert_eq!(pushed["approved_by"], "alice");
    assert_eq!(pushed["task_id"], task_id);
    assert!(
        !audit.to_string().contains("secretvalue123456"),
        "API key leaked into the audit trail"
    );

    let verify = hybrid(dir.path(), &db, &mock)
        .args(["audit", "verify"])
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );

    // Edit one row behind the platform's back.
    let seq = pushed["seq"].as_u64().unwrap();
    let edit = Command::new("sqlite3")
        .arg(&db_path)
        .arg(format!(
            "UPDATE audit_log SET output = 'nothing to see' WHERE seq = {seq};"
        ))
        .output();
    match edit {
        Ok(o) if o.status.success() => {}
        Ok(o) => panic!("sqlite3 failed: {}", String::from_utf8_lossy(&o.stderr)),
        Err(e) => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "sqlite3 is needed in CI: {e}"
            );
            eprintln!("SKIP the tamper step: no sqlite3 binary ({e})");
            return;
        }
    }
    let verify = hybrid(dir.path(), &db, &mock)
        .args(["audit", "verify"])
        .output()
        .unwrap();
    assert_eq!(verify.status.code(), Some(10));
    let err = String::from_utf8_lossy(&verify.stderr);
    assert!(
        err.contains(&format!("record {seq}")) && err.contains("edited"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_tools_from_the_config_are_offered_gated_and_audited() {
    let mock = MockLlmServer::start().await.unwrap();
    let mcp = hybrid_testkit::McpTestServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = common::sqlite(dir.path(), "hybrid.db");
    let config = dir.path().join("hybrid.toml");
    std::fs::write(
        &config,
        format!(
            "[platforms.claude]\nprovider = \"anthropic\"\ntools = [\"mcp:kit:*\"]\n\n[mcp.servers.kit]\nurl = \"{}\"\n",
            mcp.url()
        ),
    )
    .unwrap();
    mock.enqueue(Turn::tool_call("mcp__kit__add", json!({"a": 2, "b": 3})));
    mock.enqueue(Turn::text("2 + 3 = 5"));
    let out = hybrid(dir.path(), &db, &mock)
        .arg("--config")
        .arg(&config)
        .args([
            "run",
            "--json",
            "--platform",
            "claude",
            "--approve-as",
            "bob",
            "add 2 and 3",
        ])
        .output()
        .unwrap();
    let r = ok_json(&out);
    assert_eq!(r["status"], "completed", "{r}");
    let call = &r["stages"]["execution"]["tool_calls"][0];
    assert_eq!(call["name"], "mcp:kit:add");
    assert_eq!(call["is_error"], false, "{call}");
    assert!(call["output"].as_str().unwrap().contains('5'), "{call}");
    let offered = &mock.requests()[0].body["tools"];
    assert!(
        offered
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "mcp__kit__add"),
        "{offered}"
    );
    let audit = ok_json(
        &hybrid(dir.path(), &db, &mock)
            .args(["audit", "list", "--json"])
            .output()
            .unwrap(),
    );
    let approval = audit
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["action"] == "approval")
        .unwrap();
    assert_eq!(
        (
            approval["command"].as_str(),
            approval["approved_by"].as_str()
        ),
        (Some("mcp:kit:add"), Some("bob"))
    );
}
