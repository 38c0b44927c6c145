//! Helpers shared by the modules of this test binary: waiting for a condition with a
//! deadline, process liveness, and running one test in a child process.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How often [`wait_until`] looks again.
const POLL: Duration = Duration::from_millis(20);

/// Waits until `done()` holds, looking every 20 ms; panics naming `what` once `within` has
/// passed without it.
pub async fn wait_until(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "waited {within:?} for {what}; it did not happen"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Whether process `pid` is running; a zombie (killed, not yet reaped) counts as gone.
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// The environment variable that marks the child process [`run_in_child`] starts; its value
/// is the test the child is for.
const CHILD: &str = "HYBRID_TOOLS_TEST_CHILD";

/// The name libtest knows a test by: `module_path!()` of its module without the crate
/// (`tools::env` → `env`), then `::` and the function's name.
fn test_name(module: &str, function: &str) -> String {
    match module.split_once("::") {
        Some((_crate, path)) => format!("{path}::{function}"),
        None => function.to_owned(),
    }
}

/// Whether this process is the child that [`run_in_child`] started for test `function` of
/// `module` (pass `module_path!()`).
pub fn is_child(module: &str, function: &str) -> bool {
    std::env::var(CHILD).is_ok_and(|test| test == test_name(module, function))
}

/// Runs test `function` of `module` (pass `module_path!()`) once more, alone, in a child
/// process of this test binary with `vars` added to its environment, and asserts that the
/// child ran exactly that test and that it passed. The test calls this when [`is_child`] is
/// false, and does its work when it is true.
///
/// This is how a test that needs a process environment of its own lives in the shared
/// binary: the variables are set on the child's command, never with `std::env::set_var` in
/// this multi-threaded process.
pub fn run_in_child(module: &str, function: &str, vars: &[(&str, &str)]) {
    let test = test_name(module, function);
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", &test, "--nocapture", "--test-threads=1"])
        .env(CHILD, &test)
        .envs(vars.iter().copied())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{test} failed in its child process ({}):\n{stdout}\n{stderr}",
        out.status
    );
    assert!(
        stdout.contains("test result: ok. 1 passed"),
        "the child process did not run {test}:\n{stdout}\n{stderr}"
    );
}
