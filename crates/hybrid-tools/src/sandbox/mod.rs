//! The sandboxed process runner.
//!
//! Every command runs with:
//! * cwd = the workspace, stdin = `/dev/null`, stdout/stderr piped;
//! * a scrubbed environment: `PATH`, `HOME` (= workspace), `LANG`, `TERM=dumb`, a private
//!   `TMPDIR`, plus `ToolContext::env` — minus any name that looks like a secret
//!   (`*_API_KEY`, `*_TOKEN`, `*SECRET*`, `*PASSWORD*`, …), so provider keys never pass;
//! * on Linux ([`linux`]), its own PID, mount and IPC namespaces under an init of its own
//!   (in a user namespace when not root), a fresh `/proc` that shows only its own process
//!   tree, no capabilities, and landlock + seccomp: writes are allowed only beneath the
//!   workspace, `SandboxPolicy::extra_writable`, the per-call `TMPDIR` (a fresh directory
//!   under the system temp dir, removed afterwards; `/tmp` itself is read-only) and
//!   `/dev/{null,zero,full,tty}`; sockets other than Unix sockets (and io_uring) fail with
//!   EACCES unless `allow_network`; where the kernel has landlock ABI v6, signals to
//!   processes outside the sandbox and connects to abstract Unix sockets created outside it
//!   fail too. Reads are not restricted;
//! * an end that takes everything with it: when the command exits, its init exits and the
//!   kernel kills every process left in its namespace (`setsid`, `nohup`, `disown`, double
//!   forks included); at the time limit, on cancellation and when the call is dropped the
//!   whole tree gets SIGKILL;
//! * output capped while reading (at most `max_output_bytes` kept per stream; the rest is
//!   counted and discarded, never buffered).
//!
//! Where the kernel lacks any of the Linux layers the runner refuses to run (fails closed)
//! with an error naming what is missing. Known limits: Unix sockets on the filesystem stay
//! usable; landlock does not cover metadata changes (chmod, chown, utimes) of files the
//! caller owns; the init's command line (the orchestrator's, as it was forked from it) is
//! visible in the command's `/proc/1/cmdline`.

#[cfg(target_os = "linux")]
mod linux;

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt};

use crate::ToolContext;

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// How long to wait for pipes to drain after the process group was killed.
const DRAIN_GRACE: Duration = Duration::from_secs(2);

/// One output stream, capped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Captured {
    /// The first bytes, at most the cap.
    pub bytes: Vec<u8>,
    /// Everything the stream produced.
    pub total: u64,
}

impl Captured {
    /// More was produced than kept.
    pub fn truncated(&self) -> bool {
        self.total > self.bytes.len() as u64
    }
}

/// What happened to a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOutcome {
    /// Exit code, if it exited.
    pub exit_code: Option<i32>,
    /// Terminating signal, if killed by one.
    pub signal: Option<i32>,
    /// Killed at the time limit.
    pub timed_out: bool,
    /// Killed because the call was cancelled.
    pub cancelled: bool,
    /// Standard output.
    pub stdout: Captured,
    /// Standard error.
    pub stderr: Captured,
    /// Wall-clock time.
    pub duration: Duration,
    /// How the command was confined: `namespaces+landlock+seccomp`, `namespaces+landlock`
    /// (network allowed) or `none` (not Linux).
    pub confinement: &'static str,
}

/// Why a command could not be run at all.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SandboxError {
    /// The workspace is missing or not a directory.
    #[error("workspace error: `{}`: {source}", path.display())]
    Workspace {
        /// The workspace as given.
        path: PathBuf,
        /// Why it cannot be used.
        #[source]
        source: std::io::Error,
    },
    /// The kernel lacks what the sandbox needs (fails closed): what is missing, and why.
    #[error("sandbox unavailable: {0}")]
    Unavailable(String),
    /// Setting up or starting the command failed.
    #[error("could not start the command: {what}: {source}")]
    Spawn {
        /// What was being done (`` `bash` ``, `a private TMPDIR`).
        what: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
}

/// What this kernel offers the sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Support {
    /// Write confinement (landlock): `Ok` or why not.
    pub filesystem: Result<(), String>,
    /// Network denial (seccomp): `Ok` or why not.
    pub network: Result<(), String>,
    /// No signals to processes outside the sandbox (landlock ABI v6): `Ok` or why not.
    pub signals: Result<(), String>,
    /// A PID namespace of its own, so the command sees and outlives no other process:
    /// `Ok` or why not.
    pub processes: Result<(), String>,
}

/// Probes the kernel for the sandbox's features.
pub fn support() -> Support {
    #[cfg(target_os = "linux")]
    {
        linux::support()
    }
    #[cfg(not(target_os = "linux"))]
    {
        let why = "write and network confinement are implemented on Linux only".to_owned();
        Support {
            filesystem: Err(why.clone()),
            network: Err(why.clone()),
            signals: Err(why.clone()),
            processes: Err(why),
        }
    }
}

/// The environment a command gets.
pub fn scrubbed_env(
    ctx: &ToolContext,
    home: &std::path::Path,
    tmpdir: &std::path::Path,
) -> Vec<(String, String)> {
    let mut env = vec![
        (
            "PATH".to_owned(),
            std::env::var("PATH")
                .ok()
                .filter(|p| !p.is_empty())
                .unwrap_or_else(|| DEFAULT_PATH.to_owned()),
        ),
        ("HOME".to_owned(), home.display().to_string()),
        (
            "LANG".to_owned(),
            std::env::var("LANG").unwrap_or_else(|_| "C.UTF-8".to_owned()),
        ),
        ("TERM".to_owned(), "dumb".to_owned()),
        ("TMPDIR".to_owned(), tmpdir.display().to_string()),
    ];
    for (name, value) in &ctx.env {
        if name.is_empty() || name.contains('=') || name.contains('\0') || value.contains('\0') {
            continue;
        }
        if hybrid_secrets::is_secret_name(name) {
            tracing::debug!(name, "secret-looking variable not passed to the sandbox");
            continue;
        }
        env.retain(|(n, _)| n != name);
        env.push((name.clone(), value.clone()));
    }
    env
}

/// Runs `program args…` in the sandbox described by `ctx`, for at most `timeout`.
pub async fn run(
    program: &str,
    args: &[String],
    timeout: Duration,
    ctx: &ToolContext,
) -> Result<RunOutcome, SandboxError> {
    let workspace =
        std::fs::canonicalize(&ctx.workspace).map_err(|source| SandboxError::Workspace {
            path: ctx.workspace.clone(),
            source,
        })?;
    if !workspace.is_dir() {
        return Err(SandboxError::Workspace {
            path: workspace,
            source: std::io::Error::new(std::io::ErrorKind::NotADirectory, "not a directory"),
        });
    }
    let tmp = tempfile::Builder::new()
        .prefix("hybrid-tool-")
        .tempdir()
        .map_err(|source| SandboxError::Spawn {
            what: "a private TMPDIR".into(),
            source,
        })?;

    let mut cmd = std::process::Command::new(program);
    cmd.args(args)
        .current_dir(&workspace)
        .env_clear()
        .envs(scrubbed_env(ctx, &workspace, tmp.path()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);

    #[cfg(target_os = "linux")]
    let confined = {
        let mut writable: Vec<PathBuf> = vec![workspace.clone(), tmp.path().to_path_buf()];
        writable.extend(
            ctx.sandbox
                .extra_writable
                .iter()
                .filter_map(|p| std::fs::canonicalize(p).ok()),
        );
        linux::confine(&mut cmd, &writable, ctx.sandbox.allow_network)?
    };

    let mut cmd = tokio::process::Command::from(cmd);
    cmd.kill_on_drop(true);
    let started = Instant::now();
    let spawned = cmd.spawn();
    #[cfg(target_os = "linux")]
    let (mut child, confinement) = match spawned {
        Ok(child) => (child, confined.label),
        Err(e) => return Err(confined.spawn_error(program, e)),
    };
    #[cfg(not(target_os = "linux"))]
    let (mut child, confinement) = match spawned {
        Ok(child) => (child, "none"),
        Err(source) => {
            return Err(SandboxError::Spawn {
                what: format!("`{program}`"),
                source,
            });
        }
    };
    let pid = child.id();
    // If this future is dropped mid-run (the agent loop gave up), still kill the group.
    let mut guard = GroupGuard(pid);

    let cap = ctx.limits.max_output_bytes;
    let stdout = Arc::new(Mutex::new(Captured::default()));
    let stderr = Arc::new(Mutex::new(Captured::default()));
    let mut readers = Vec::new();
    if let Some(out) = child.stdout.take() {
        readers.push(tokio::spawn(read_capped(out, cap, Arc::clone(&stdout))));
    }
    if let Some(err) = child.stderr.take() {
        readers.push(tokio::spawn(read_capped(err, cap, Arc::clone(&stderr))));
    }

    let mut timed_out = false;
    let mut cancelled = false;
    let status = tokio::select! {
        status = child.wait() => status.ok(),
        () = tokio::time::sleep(timeout) => { timed_out = true; None }
        () = ctx.cancel.cancelled() => { cancelled = true; None }
    };
    // Kill the whole group: on timeout/cancel, and also after a normal exit so that
    // background jobs do not outlive the call (and do not hold the pipes open).
    kill_group(pid);
    guard.0 = None;
    let status = match status {
        Some(s) => Some(s),
        None => child.wait().await.ok(),
    };
    let duration = started.elapsed();

    let drain = futures::future::join_all(readers.iter_mut());
    if tokio::time::timeout(DRAIN_GRACE, drain).await.is_err() {
        for reader in &readers {
            reader.abort();
        }
    }
    drop(tmp);

    let (exit_code, signal) = match status {
        Some(s) => (s.code(), exit_signal(&s)),
        None => (None, None),
    };
    Ok(RunOutcome {
        exit_code,
        signal,
        timed_out,
        cancelled,
        stdout: take(&stdout),
        stderr: take(&stderr),
        duration,
        confinement,
    })
}

/// Kills the process group when dropped while armed.
struct GroupGuard(Option<u32>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        kill_group(self.0.take());
    }
}

fn take(shared: &Arc<Mutex<Captured>>) -> Captured {
    let mut guard = shared.lock().unwrap_or_else(|e| e.into_inner());
    std::mem::take(&mut *guard)
}

async fn read_capped<R: AsyncRead + Unpin>(mut reader: R, cap: usize, into: Arc<Mutex<Captured>>) {
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        match reader.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let mut guard = into.lock().unwrap_or_else(|e| e.into_inner());
                guard.total += n as u64;
                let room = cap.saturating_sub(guard.bytes.len());
                let keep = n.min(room);
                guard.bytes.extend_from_slice(&chunk[..keep]);
            }
        }
    }
}

#[cfg(unix)]
fn kill_group(pid: Option<u32>) {
    let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) else {
        return;
    };
    if let Some(pgid) = rustix::process::Pid::from_raw(pid) {
        // ESRCH (group already gone) is fine.
        let _ = rustix::process::kill_process_group(pgid, rustix::process::Signal::KILL);
    }
}

#[cfg(not(unix))]
fn kill_group(_pid: Option<u32>) {}

#[cfg(unix)]
fn exit_signal(status: &std::process::ExitStatus) -> Option<i32> {
    std::os::unix::process::ExitStatusExt::signal(status)
}

#[cfg(not(unix))]
fn exit_signal(_status: &std::process::ExitStatus) -> Option<i32> {
    None
}
