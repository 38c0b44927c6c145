//! Issue 9's third defect, through the `hybrid` binary: tools print secrets (every kind in
//! the testkit's table), the model repeats some of them in streamed text split into small
//! pieces, a command that needs approval (given by `--approve-as`) carries one, and the task
//! description holds one.
//! None of them may be found in `run --json`, `run --stream`, the live view on stderr,
//! `tasks show --events --json`, `audit export`, `approvals list`, a full `sqlite3` dump or
//! the raw bytes of the database files.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::{Command, Stdio};

use hybrid_testkit::fixtures::{SampleSecret, sample_secrets};
use hybrid_testkit::{MockLlmServer, Turn};
use serde_json::{Value, json};

use crate::common::{self, UseMock, ok};

const KEY: &str = "sk-ant-api03-the-orchestrators-own-key-5f2e9a";

fn hybrid(dir: &Path, mock: &MockLlmServer) -> Command {
    let mut c = common::hybrid(dir);
    c.anthropic_mock(mock, KEY)
        .arg("--db")
        .arg(common::sqlite(dir, "hybrid.db"));
    c
}

/// Panics naming every secret of `secrets` (and the provider key) found in `text`.
fn assert_clean(what: &str, text: &str, secrets: &[SampleSecret]) {
    let mut found: Vec<&str> = secrets
        .iter()
        .filter(|s| text.contains(&s.core))
        .map(|s| s.name)
        .collect();
    if text.contains(KEY) {
        found.push("the provider key");
    }
    // Pieces of the streamed secrets, as a split would leave them.
    for piece in ["x7Kq2mP9vL4nR8sT1wY6zB3c", "a1B2c3D4e5F6g7H8i9J0"] {
        if text.contains(piece) {
            found.push(piece);
        }
    }
    assert!(found.is_empty(), "{what} holds {found:?}:\n{text}");
}

/// One run: `cat creds.txt`, an `echo` of two secrets (needs approval), then an answer that
/// repeats them, streamed three bytes at a time.
fn script(mock: &MockLlmServer, secrets: &[SampleSecret]) {
    let anthropic = &secrets.iter().find(|s| s.name == "Anthropic").unwrap().core;
    let github = &secrets
        .iter()
        .find(|s| s.name == "GitHub classic")
        .unwrap()
        .core;
    mock.enqueue(
        Turn::tool_call("bash", json!({"command": "cat creds.txt"})).and_tool_call(
            "bash",
            json!({"command": format!("echo \"token={github}\" && echo {anthropic}")}),
        ),
    );
    mock.enqueue(
        Turn::text(format!(
            "creds.txt holds {anthropic} and token={github}; rotate them. The database URL \
             is postgres://app_user:Sup3r-S3cret.pw@db.internal:5432/prod and the header was \
             Authorization: Bearer opaque-token-4f8a9c2e7b1d ."
        ))
        .with_chunk_size(3),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_is_stored_printed_or_streamed() {
    let support = hybrid_tools::sandbox::support();
    if let Some(why) = [support.filesystem.err(), support.processes.err()]
        .into_iter()
        .flatten()
        .next()
    {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{why}");
        eprintln!("SKIP: the kernel lacks a sandbox layer: {why}");
        return;
    }
    let secrets = sample_secrets();
    let mock = MockLlmServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let creds: Vec<&str> = secrets.iter().map(|s| s.text.as_str()).collect();
    std::fs::write(work.join("creds.txt"), creds.join("\n") + "\n").unwrap();
    let anthropic = secrets.iter().find(|s| s.name == "Anthropic").unwrap();
    let description = format!("Check creds.txt; the old key was {}", anthropic.core);
    let run = |mode: &str| {
        let mut c = hybrid(dir.path(), &mock);
        c.args([
            "run",
            mode,
            "--platform",
            "claude",
            "--approve-as",
            "ops",
            "--workdir",
        ])
        .arg(&work)
        .arg(&description)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        c.output().unwrap()
    };

    script(&mock, &secrets);
    let out = run("--json");
    let stdout = ok(&out);
    assert_clean("run --json", &stdout, &secrets);
    assert_clean(
        "the live view",
        &String::from_utf8_lossy(&out.stderr),
        &secrets,
    );
    let result: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(result["status"], "completed", "{result}");
    let calls = result["stages"]["execution"]["tool_calls"]
        .as_array()
        .unwrap();
    // The tools really printed them (redacted on the way out), and the model saw them raw.
    assert!(calls[0]["output"].as_str().unwrap().contains("[REDACTED]"));
    let seen = mock.requests().last().unwrap().body.to_string();
    assert!(
        seen.contains(&anthropic.core),
        "the model must see the raw tool output"
    );
    let first = result["task_id"].as_str().unwrap().to_owned();

    script(&mock, &secrets);
    let out = run("--stream");
    let stream = ok(&out);
    assert_clean("run --stream", &stream, &secrets);
    assert_clean(
        "the live view of --stream",
        &String::from_utf8_lossy(&out.stderr),
        &secrets,
    );
    let deltas: String = stream
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["type"] == "text_delta")
        .map(|e| e["text"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(deltas.contains("creds.txt holds [REDACTED]"), "{deltas}");
    assert!(deltas.contains("rotate them."), "{deltas}");
    let last: Value = serde_json::from_str(stream.lines().last().unwrap()).unwrap();
    let second = last["task_id"].as_str().unwrap().to_owned();

    for id in [&first, &second] {
        let shown = ok(&hybrid(dir.path(), &mock)
            .args(["tasks", "show", id, "--events", "--json"])
            .output()
            .unwrap());
        assert_clean("tasks show --events --json", &shown, &secrets);
        assert!(shown.contains("[REDACTED]"));
    }
    for args in [
        &["audit", "export"][..],
        &["audit", "list", "--json"][..],
        &["approvals", "list", "--all", "--json"][..],
        &["tasks", "list", "--json"][..],
    ] {
        let text = ok(&hybrid(dir.path(), &mock).args(args).output().unwrap());
        assert_clean(&args.join(" "), &text, &secrets);
    }
    // Every table, as sqlite3 dumps it, and every byte of the database files.
    let db = dir.path().join("hybrid.db");
    match Command::new("sqlite3").arg(&db).arg(".dump").output() {
        Ok(dump) if dump.status.success() => {
            let dump = String::from_utf8_lossy(&dump.stdout);
            for table in ["tasks", "events", "stages", "audit_log"] {
                assert!(
                    dump.contains(&format!("INSERT INTO {table}")),
                    "{table} is empty"
                );
            }
            assert_clean("the sqlite3 dump", &dump, &secrets);
        }
        other => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "sqlite3 is needed in CI: {other:?}"
            );
            eprintln!("SKIP the dump: no sqlite3 ({other:?})");
        }
    }
    for entry in std::fs::read_dir(dir.path()).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("hybrid.db") {
            let bytes = std::fs::read(entry.path()).unwrap();
            assert_clean(&name, &String::from_utf8_lossy(&bytes), &secrets);
        }
    }
}
