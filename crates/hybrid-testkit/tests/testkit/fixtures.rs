//! The workflow fixtures: a faulty service that `./restart-service.sh` heals, and a git
//! repository whose branches pass or fail the code-review checks.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use hybrid_testkit::fixtures::{GitRepoFixture, ServiceFixture, demo_service_binary};

use crate::common::wait_until_blocking;

/// Runs `bash -c COMMAND` in `dir` with `PATH` as the only variable, in its own process
/// group, and SIGKILLs that group afterwards — as the sandboxed command runner does — and
/// returns once every process of the group is gone. Whatever is still running then was
/// outside the group: no grace period is needed to tell who survived the kill.
fn run_like_sandbox(dir: &Path, command: &str) -> Output {
    run_with_path(dir, "/usr/bin:/bin", command)
}

/// [`run_like_sandbox`] with another `PATH` (git may live in /usr/local/bin).
fn run_with_path(dir: &Path, path: &str, command: &str) -> Output {
    let mut cmd = Command::new("/usr/bin/env");
    cmd.args(["-i", &format!("PATH={path}"), "bash", "-c", command])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let child = cmd.spawn().unwrap();
    let pgid = rustix::process::Pid::from_raw(i32::try_from(child.id()).unwrap()).unwrap();
    let output = child.wait_with_output().unwrap();
    let _ = rustix::process::kill_process_group(pgid, rustix::process::Signal::KILL);
    let group = pgid.as_raw_nonzero().get();
    wait_until_blocking(
        &format!("process group {group} to be gone after its SIGKILL"),
        Duration::from_secs(5),
        || !group_has_members(group),
    );
    output
}

/// Whether a process that is not a zombie belongs to process group `pgid`.
fn group_has_members(pgid: i32) -> bool {
    let pgid = pgid.to_string();
    std::fs::read_dir("/proc").unwrap().flatten().any(|entry| {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            return false;
        };
        // After the name: state ppid pgrp ...
        let fields: Vec<&str> = stat
            .rsplit_once(") ")
            .map_or(Vec::new(), |(_, rest)| rest.split(' ').collect());
        match fields.as_slice() {
            [state, _, pgrp, ..] => *state != "Z" && *state != "X" && *pgrp == pgid,
            _ => false,
        }
    })
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn port_answers(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(500),
    )
    .is_ok()
}

#[tokio::test(flavor = "multi_thread")]
async fn service_starts_faulty_restarts_healthy_and_dies_with_the_fixture() {
    let dir = tempfile::tempdir().unwrap();
    let service = ServiceFixture::start(dir.path()).unwrap();
    let port = service.port();
    assert_ne!(port, 0);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("service.port"))
            .unwrap()
            .trim(),
        port.to_string()
    );
    assert_eq!(
        service.health_url(),
        format!("http://127.0.0.1:{port}/health")
    );
    assert_eq!(service.restart_command(), "./restart-service.sh");

    // Faulty: 503 with the reason, ERROR lines in the log.
    let response = reqwest::get(service.health_url()).await.unwrap();
    assert_eq!(response.status(), 503);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(
        body,
        serde_json::json!({"status": "degraded", "reason": "connection pool exhausted"})
    );
    assert!(!service.is_healthy().await);
    let log = std::fs::read_to_string(service.log_path()).unwrap();
    assert!(log.contains("starting (pid"), "{log}");
    assert!(
        log.contains("ERROR pool: connection pool exhausted (50/50 in use)"),
        "{log}"
    );
    let old_pid = service.pid().unwrap();

    // The fix, run as the sandbox runs it: scrubbed env, own group, group killed after.
    let out = run_like_sandbox(dir.path(), service.restart_command());
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("healthy again"), "{}", text(&out));

    // Healthy, a new process on the same port, and it stays up after the group kill (which
    // `run_like_sandbox` has seen through).
    let new_pid = service.pid().unwrap();
    assert_ne!(new_pid, old_pid);
    assert_eq!(service.port(), port);
    let response = reqwest::get(service.health_url()).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.json::<serde_json::Value>().await.unwrap(),
        serde_json::json!({"status": "ok"})
    );
    assert!(service.is_healthy().await);
    assert!(Path::new(&format!("/proc/{new_pid}")).exists());
    let log = std::fs::read_to_string(service.log_path()).unwrap();
    assert!(log.contains("INFO  restarted; pool reset"), "{log}");
    let after_restart = log.split("restarted; pool reset").last().unwrap();
    assert!(!after_restart.contains("ERROR"), "{after_restart}");

    // Restarting a healthy service works too.
    let out = run_like_sandbox(dir.path(), "./restart-service.sh");
    assert!(out.status.success(), "{}", text(&out));
    assert!(service.wait_healthy(Duration::from_secs(5)).await);
    let third_pid = service.pid().unwrap();
    assert_ne!(third_pid, new_pid);

    drop(service);
    let deadline = Instant::now() + Duration::from_secs(3);
    while port_answers(port) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!port_answers(port), "the service outlived the fixture");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_service_is_started_again_by_the_supervisor() {
    let dir = tempfile::tempdir().unwrap();
    let service = ServiceFixture::start_with_binary(
        dir.path(),
        Path::new(env!("CARGO_BIN_EXE_hybrid-demo-service")),
    )
    .unwrap();
    let port = service.port();
    // The service crashed: the script's request reaches the fixture's supervisor.
    let pid = rustix::process::Pid::from_raw(i32::try_from(service.pid().unwrap()).unwrap());
    rustix::process::kill_process(pid.unwrap(), rustix::process::Signal::KILL).unwrap();
    let deadline = Instant::now() + Duration::from_secs(3);
    while port_answers(port) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(service.health_status().await.is_none());

    // The script returns once the successor answers /health with 200, and
    // `run_like_sandbox` once the script's process group is gone.
    let out = run_like_sandbox(dir.path(), "./restart-service.sh");
    assert!(out.status.success(), "{}", text(&out));
    assert!(service.is_healthy().await, "{}", text(&out));
    let restarted = service.pid().unwrap();
    let stat = std::fs::read_to_string(format!("/proc/{restarted}/stat")).unwrap();
    let fields: Vec<&str> = stat.rsplit_once(") ").unwrap().1.split(' ').collect();
    // Fields after the name: state ppid pgrp session; started by the supervisor (this
    // process), in a process group of its own.
    assert_eq!(fields[1], std::process::id().to_string(), "{stat}");
    assert_eq!(fields[2], restarted.to_string(), "{stat}");

    drop(service);
    let deadline = Instant::now() + Duration::from_secs(3);
    while port_answers(port) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!port_answers(port));
}

#[test]
fn demo_service_binary_is_compiled_from_the_embedded_source() {
    let binary = demo_service_binary().unwrap();
    assert!(binary.is_file());
    let out = Command::new(&binary).arg("--bogus").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("usage"));
}

fn checkout_and_run(repo: &GitRepoFixture, branch: &str, command: &str) -> Output {
    repo.checkout(branch).unwrap();
    assert_eq!(repo.current_branch().unwrap(), branch);
    run_like_sandbox(repo.path(), command)
}

#[test]
fn repo_main_passes_every_check() {
    let dir = tempfile::tempdir().unwrap();
    let repo = GitRepoFixture::create(dir.path()).unwrap();
    assert_eq!(repo.current_branch().unwrap(), "main");
    assert_eq!(repo.git(["status", "--porcelain"]).unwrap(), "");
    for script in [
        "run-tests.sh",
        "lint.sh",
        "security-scan.sh",
        "coverage.sh",
        "deploy.sh",
        "health-check.sh",
    ] {
        let mode = repo.git(["ls-files", "-s", script]).unwrap();
        assert!(mode.starts_with("100755 "), "{script}: {mode}");
    }

    let tests = run_like_sandbox(repo.path(), "./run-tests.sh");
    assert!(tests.status.success(), "{}", text(&tests));
    assert!(
        text(&tests).contains("PASS test_divide\n"),
        "{}",
        text(&tests)
    );
    assert!(
        text(&tests).contains("5 passed, 0 failed"),
        "{}",
        text(&tests)
    );

    let lint = run_like_sandbox(repo.path(), "./lint.sh");
    assert!(lint.status.success(), "{}", text(&lint));
    assert!(text(&lint).starts_with("lint: clean"), "{}", text(&lint));

    let scan = run_like_sandbox(repo.path(), "./security-scan.sh");
    assert!(scan.status.success());
    // The workflow's guardrail: the word "critical" must not appear when clean.
    assert!(
        !text(&scan).to_lowercase().contains("critical"),
        "{}",
        text(&scan)
    );

    let coverage = run_like_sandbox(repo.path(), "./coverage.sh");
    assert_eq!(String::from_utf8_lossy(&coverage.stdout), "80\n");

    let health = run_like_sandbox(repo.path(), "./health-check.sh");
    assert_eq!(health.status.code(), Some(1), "{}", text(&health));
}

#[test]
fn repo_good_branch_passes_and_merges_and_deploys() {
    let dir = tempfile::tempdir().unwrap();
    let repo = GitRepoFixture::create(dir.path()).unwrap();
    let good = repo.good_branch();
    assert!(!repo.is_merged(good));

    let tests = checkout_and_run(&repo, good, "./run-tests.sh");
    assert!(tests.status.success(), "{}", text(&tests));
    assert!(
        text(&tests).contains("PASS test_power\n"),
        "{}",
        text(&tests)
    );
    let coverage = run_like_sandbox(repo.path(), "./coverage.sh");
    let percent: u32 = String::from_utf8_lossy(&coverage.stdout)
        .trim()
        .parse()
        .unwrap();
    assert!(percent >= 80, "{percent}");
    assert_eq!(percent, 83);
    let lint = run_like_sandbox(repo.path(), "./lint.sh");
    assert!(lint.status.success(), "{}", text(&lint));
    let scan = run_like_sandbox(repo.path(), "./security-scan.sh");
    assert!(
        !text(&scan).to_lowercase().contains("critical"),
        "{}",
        text(&scan)
    );

    // What the workflow's ship stage runs (with the default merge command).
    let head = repo.head_of(good).unwrap();
    let ship = run_with_path(
        repo.path(),
        "/usr/local/bin:/usr/bin:/bin",
        &format!("git checkout main && git merge --no-ff {good} && ./deploy.sh"),
    );
    assert!(ship.status.success(), "{}", text(&ship));
    assert!(repo.is_merged(good));
    assert_eq!(repo.current_branch().unwrap(), "main");
    let main = repo.head_of("main").unwrap();
    assert_ne!(main, head, "a merge commit");
    assert!(
        text(&ship).contains(&format!("deployed {main}")),
        "{}",
        text(&ship)
    );
    assert_eq!(repo.deployed_commit().unwrap(), main);

    let health = run_like_sandbox(repo.path(), "./health-check.sh");
    assert!(health.status.success(), "{}", text(&health));
    assert!(text(&health).starts_with("healthy"), "{}", text(&health));
    // deployed.txt is ignored: the tree stays clean.
    assert_eq!(repo.git(["status", "--porcelain"]).unwrap(), "");
    let tests = run_like_sandbox(repo.path(), "./run-tests.sh");
    assert!(tests.status.success(), "{}", text(&tests));
}

#[test]
fn repo_bad_branch_fails_its_test() {
    let dir = tempfile::tempdir().unwrap();
    let repo = GitRepoFixture::create(dir.path()).unwrap();
    let tests = checkout_and_run(&repo, repo.bad_branch(), "./run-tests.sh");
    assert_eq!(tests.status.code(), Some(1), "{}", text(&tests));
    let expected = format!(
        "FAIL {}: {}\n",
        repo.failing_test_name(),
        repo.failing_test_message()
    );
    assert_eq!(expected, "FAIL test_divide: expected 3, got 4\n");
    assert!(text(&tests).contains(&expected), "{}", text(&tests));
    assert!(
        text(&tests).contains("4 passed, 1 failed"),
        "{}",
        text(&tests)
    );
    assert!(!repo.is_merged(repo.bad_branch()));
    let diff = repo.git(["diff", "main...feature/bad", "--stat"]).unwrap();
    assert!(diff.contains("src/calc.sh"), "{diff}");
}

#[test]
fn repo_insecure_branch_has_a_critical_finding() {
    let dir = tempfile::tempdir().unwrap();
    let repo = GitRepoFixture::create(dir.path()).unwrap();
    let scan = checkout_and_run(&repo, repo.insecure_branch(), "./security-scan.sh");
    assert!(scan.status.success());
    let out = text(&scan);
    assert!(
        out.contains("CRITICAL: config/database.env:4: hard-coded secret (PASSWORD)"),
        "{out}"
    );
    assert!(out.contains("critical: 1"), "{out}");
    let tests = run_like_sandbox(repo.path(), "./run-tests.sh");
    assert!(tests.status.success(), "{}", text(&tests));
}

#[test]
fn repo_commits_are_reproducible() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let a = GitRepoFixture::create(a.path()).unwrap();
    let b = GitRepoFixture::create(b.path()).unwrap();
    for branch in ["main", "feature/good", "feature/bad", "feature/insecure"] {
        assert_eq!(a.head_of(branch).unwrap(), b.head_of(branch).unwrap());
    }
    assert!(a.head_of("no-such-branch").is_err());
}
