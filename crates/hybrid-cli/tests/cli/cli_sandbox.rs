//! Issue 9's sandbox defects, through the `hybrid` binary as a user runs it, as root and as
//! an ordinary user (`setpriv` to `nobody`):
//!
//! 1. a command the executor runs cannot read the orchestrator's environment (its API key)
//!    through `/proc/$PPID/environ`, nor any other process's;
//! 2. no process a command starts outlives it (`setsid`, `nohup`, `disown`, double forks).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use hybrid_testkit::{MockLlmServer, Turn};
use serde_json::{Value, json};

use crate::common::{self, HYBRID, UseMock, ok_json};

const KEY: &str = "sk-ant-api03-orchestrator-only-7c1d9e";

/// How `hybrid` is started: as this process's user, or as `nobody`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum As {
    Caller,
    Nobody,
}

/// `Some(reason)` when the kernel cannot isolate commands; a failure under `CI=true`.
fn unsupported() -> Option<String> {
    let support = hybrid_tools::sandbox::support();
    let why = [
        support.filesystem.err(),
        support.network.err(),
        support.processes.err(),
    ]
    .into_iter()
    .flatten()
    .next()?;
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI=true, but the kernel lacks a sandbox layer: {why}"
    );
    eprintln!("SKIP: the kernel lacks a sandbox layer: {why}");
    Some(why)
}

/// A directory the chosen user owns (the workspace and the database live in it).
fn home_for(who: As) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    if who == As::Nobody {
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let status = Command::new("chown")
            .args(["65534:65534"])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(status.success());
    }
    dir
}

/// `setpriv` exists and this process may switch users (root).
fn can_become_nobody() -> bool {
    let root = rustix::process::geteuid().is_root();
    let setpriv = Command::new("setpriv")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !(root && setpriv) {
        assert!(
            std::env::var("CI").as_deref() != Ok("true") || !root,
            "CI=true as root, but setpriv (util-linux) is missing"
        );
        eprintln!("SKIP the ordinary-user run: root={root}, setpriv={setpriv}");
    }
    root && setpriv
}

fn hybrid(who: As, dir: &Path, mock: &MockLlmServer) -> Command {
    let mut c = match who {
        As::Caller => common::hybrid(dir),
        As::Nobody => {
            let mut c = Command::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
                .arg(HYBRID);
            common::in_dir(c, dir)
        }
    };
    c.env("HOME", dir)
        .anthropic_mock(mock, KEY)
        .arg("--db")
        .arg(common::sqlite(dir, "hybrid.db"));
    c
}

/// Runs `commands` through the executor (one bash call each, approved as `ops`) and returns
/// the result document.
async fn run_commands(who: As, dir: &Path, commands: &[&str]) -> Value {
    let mock = MockLlmServer::start().await.unwrap();
    let work = dir.join("work");
    std::fs::create_dir_all(&work).unwrap();
    if who == As::Nobody {
        let status = Command::new("chown")
            .args(["65534:65534"])
            .arg(&work)
            .status()
            .unwrap();
        assert!(status.success());
    }
    let mut turn: Option<Turn> = None;
    for command in commands {
        let args = json!({ "command": command });
        turn = Some(match turn {
            None => Turn::tool_call("bash", args),
            Some(t) => t.and_tool_call("bash", args),
        });
    }
    mock.enqueue(turn.unwrap());
    mock.enqueue(Turn::text("Done."));
    let out = hybrid(who, dir, &mock)
        .args([
            "run",
            "--json",
            "--platform",
            "claude",
            "--approve-as",
            "ops",
            "--workdir",
        ])
        .arg(&work)
        .arg("Inspect the host")
        .output()
        .unwrap();
    ok_json(&out)
}

fn outputs(r: &Value) -> Vec<String> {
    r["stages"]["execution"]["tool_calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["output"].as_str().unwrap().to_owned())
        .collect()
}

async fn the_orchestrators_key_is_out_of_reach(who: As) {
    let dir = home_for(who);
    let r = run_commands(
        who,
        dir.path(),
        &[
            // The reproduction, word for word.
            "cat /proc/$PPID/environ | tr '\\0' '\\n' | grep -i anthropic",
            // Every process the command can see.
            "cat /proc/[0-9]*/environ 2>&1 | tr '\\0' '\\n' | grep -ci anthropic; echo \"pids: $(ls -d /proc/[0-9]* | wc -l)\"",
        ],
    )
    .await;
    assert_eq!(r["status"], "completed", "{r}");
    let text = r.to_string();
    assert!(
        !text.contains("orchestrator-only"),
        "the key leaked: {text}"
    );
    let out = outputs(&r);
    assert!(out[0].contains("Permission denied"), "{:?}", out[0]);
    assert!(
        out[1].starts_with('0') || out[1].contains("\n0\n"),
        "{:?}",
        out[1]
    );
    let pids: usize = out[1]
        .rsplit("pids: ")
        .next()
        .and_then(|n| n.trim().parse().ok())
        .unwrap();
    assert!(pids <= 8, "the command sees {pids} processes: {:?}", out[1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_cannot_read_the_orchestrators_key() {
    if unsupported().is_some() {
        return;
    }
    the_orchestrators_key_is_out_of_reach(As::Caller).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_cannot_read_the_orchestrators_key_as_an_ordinary_user() {
    if unsupported().is_some() || !can_become_nobody() {
        return;
    }
    the_orchestrators_key_is_out_of_reach(As::Nobody).await;
}

/// Host processes whose command line holds `marker`, zombies aside.
fn alive_with(marker: &str) -> Vec<PathBuf> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.parse::<u32>().is_ok())
        })
        .filter(|e| {
            let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
            let zombie = std::fs::read_to_string(e.path().join("stat"))
                .map(|s| {
                    s.rsplit(')')
                        .next()
                        .is_some_and(|r| r.trim_start().starts_with('Z'))
                })
                .unwrap_or(true);
            !zombie
                && String::from_utf8_lossy(&cmdline)
                    .replace('\0', " ")
                    .contains(marker)
        })
        .map(|e| e.path())
        .collect()
}

async fn nothing_outlives_the_run(who: As, marker: &str) {
    let dir = home_for(who);
    let started = Instant::now();
    let r = run_commands(
        who,
        dir.path(),
        &[
            &format!("setsid sleep {marker} &"),
            &format!("nohup sleep {marker} >/dev/null 2>&1 & disown; echo bg"),
            // Every way out at once, and proof that all five are running before the
            // command (and with it the run) ends.
            &format!(
                "setsid sleep {marker} & nohup sleep {marker} >/dev/null 2>&1 & disown; \
                 (setsid sh -c 'sleep {marker} &' &); setsid -f sleep {marker}; \
                 (sleep {marker} &) ; \
                 for _ in $(seq 100); do \
                   n=$(for p in /proc/[0-9]*; do \
                         [ \"$(cat $p/comm 2>/dev/null)\" = sleep ] \
                         && tr '\\0' ' ' < $p/cmdline | grep -q '{marker}' && echo; \
                       done | wc -l); \
                   [ \"$n\" -ge 5 ] && break; sleep 0.05; \
                 done; echo \"running=$n\""
            ),
        ],
    )
    .await;
    assert_eq!(r["status"], "completed", "{r}");
    assert!(started.elapsed() < Duration::from_secs(60));
    let last = outputs(&r).pop().unwrap();
    assert!(
        last.trim_end().ends_with("running=5"),
        "not all started: {last:?}"
    );
    // `hybrid run` has returned: nothing it started may still be running.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let alive = alive_with(marker);
        if alive.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "outlived `hybrid run`: {alive:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_process_outlives_hybrid_run() {
    if unsupported().is_some() {
        return;
    }
    nothing_outlives_the_run(As::Caller, "300.4242").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_process_outlives_hybrid_run_as_an_ordinary_user() {
    if unsupported().is_some() || !can_become_nobody() {
        return;
    }
    nothing_outlives_the_run(As::Nobody, "300.4343").await;
}
