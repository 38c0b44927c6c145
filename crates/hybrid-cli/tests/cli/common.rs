//! Helpers shared by the CLI tests: the `hybrid` command every test starts from, pointing it
//! at the mock server, reading what it printed, and waiting for a condition with a deadline.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use hybrid_testkit::MockLlmServer;
use serde_json::Value;

/// The `hybrid` binary under test.
pub const HYBRID: &str = env!("CARGO_BIN_EXE_hybrid");

/// Variables of the test's own environment that would change what `hybrid` talks to: the
/// providers' keys and URLs, and the database. No test inherits them.
const PROVIDER_AND_DB: [&str; 5] = [
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_BASE_URL",
    "HYBRID_DATABASE_URL",
];

/// `hybrid` in `dir`, stdin closed, without the provider and database variables of the
/// test's environment.
pub fn hybrid(dir: &Path) -> Command {
    in_dir(Command::new(HYBRID), dir)
}

/// `command` (one that runs [`HYBRID`], e.g. through `setpriv`) set up as [`hybrid`] sets up
/// its own.
pub fn in_dir(mut command: Command, dir: &Path) -> Command {
    command.current_dir(dir).stdin(Stdio::null());
    for var in PROVIDER_AND_DB {
        command.env_remove(var);
    }
    command
}

/// `sqlite://DIR/FILE`, for `--db`.
pub fn sqlite(dir: &Path, file: &str) -> String {
    format!("sqlite://{}", dir.join(file).display())
}

/// Pointing a `hybrid` command at the testkit's mock server.
pub trait UseMock {
    /// `ANTHROPIC_API_KEY=key` and `ANTHROPIC_BASE_URL` = the mock's.
    fn anthropic_mock(&mut self, mock: &MockLlmServer, key: &str) -> &mut Self;
    /// `OPENAI_API_KEY=key` and `OPENAI_BASE_URL` = the mock's.
    fn openai_mock(&mut self, mock: &MockLlmServer, key: &str) -> &mut Self;
}

impl UseMock for Command {
    fn anthropic_mock(&mut self, mock: &MockLlmServer, key: &str) -> &mut Self {
        self.env("ANTHROPIC_API_KEY", key)
            .env("ANTHROPIC_BASE_URL", mock.anthropic_base_url())
    }

    fn openai_mock(&mut self, mock: &MockLlmServer, key: &str) -> &mut Self {
        self.env("OPENAI_API_KEY", key)
            .env("OPENAI_BASE_URL", mock.openai_base_url())
    }
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Stdout of a `hybrid` that succeeded; panics with its stderr otherwise.
pub fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "hybrid failed ({}): {}",
        out.status,
        stderr(out)
    );
    stdout(out)
}

/// Stdout, as JSON, of a `hybrid` that succeeded.
pub fn ok_json(out: &Output) -> Value {
    let text = ok(out);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {text}"))
}

/// Stdout as JSON, whatever the exit status (failures print a result document too).
pub fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}\nstderr: {}",
            stdout(out),
            stderr(out)
        )
    })
}

/// Waits until `done()` holds, looking every 25 ms; panics naming `what` once `within` has
/// passed without it.
pub async fn wait_until(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "waited {within:?} for {what}; it did not happen"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
