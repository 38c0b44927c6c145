//! The sandboxed runner, through the `bash` tool: confinement, time limit, caps.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::time::{Duration, Instant};

use hybrid_tools::{BashTool, Tool, ToolContext, ToolOutput, sandbox};
use serde_json::json;

use crate::common::wait_until;

fn ctx(dir: &Path) -> ToolContext {
    ToolContext::new(dir)
}

async fn bash(ctx: &ToolContext, command: &str) -> ToolOutput {
    BashTool.call(json!({ "command": command }), ctx).await
}

/// `Some(reason)` when the kernel lacks write confinement (the test then skips, saying why).
/// `bash` fails closed without it, so every test that runs a command checks this.
fn no_fs_confinement() -> Option<String> {
    sandbox::support()
        .filesystem
        .err()
        .inspect(|why| eprintln!("SKIP: kernel lacks landlock write confinement: {why}"))
}

fn no_net_confinement() -> Option<String> {
    sandbox::support()
        .network
        .err()
        .inspect(|why| eprintln!("SKIP: kernel lacks seccomp network confinement: {why}"))
}

/// `Some(reason)` when the kernel cannot give commands a PID namespace of their own (`bash`
/// fails closed without it). Under `CI=true` that is a failure, not a skip.
fn no_process_isolation() -> Option<String> {
    let why = sandbox::support().processes.err()?;
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI=true, but the kernel cannot isolate commands: {why}"
    );
    eprintln!("SKIP: kernel cannot isolate commands: {why}");
    Some(why)
}

/// The pids of host processes (as the test sees them) whose command line contains `marker`
/// and that are not zombies.
fn host_processes_with(marker: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        let zombie = std::fs::read_to_string(entry.path().join("stat"))
            .ok()
            .and_then(|stat| {
                stat.rsplit(')')
                    .next()
                    .map(|r| r.trim_start().starts_with('Z'))
            })
            .unwrap_or(true);
        if cmdline.contains(marker) && !zombie {
            found.push(pid);
        }
    }
    found
}

/// Waits up to 5 s for every host process carrying `marker` to be gone; the survivors.
async fn survivors(marker: &str) -> Vec<u32> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let alive = host_processes_with(marker);
        if alive.is_empty() || Instant::now() > deadline {
            return alive;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A `sleep` duration nobody else uses, so its processes can be found by command line.
fn marker() -> String {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{}.{:05}{n}", 300 + n, std::process::id() % 100_000)
}

#[tokio::test]
async fn runs_in_the_workspace() {
    if no_fs_confinement().is_some() {
        return;
    }
    let ws = tempfile::tempdir().unwrap();
    let out = bash(
        &ctx(ws.path()),
        "pwd; echo hello > inside.txt && cat inside.txt",
    )
    .await;
    assert!(!out.is_error, "{out:?}");
    let canon = std::fs::canonicalize(ws.path()).unwrap();
    assert!(
        out.content
            .starts_with(&format!("{}\nhello", canon.display())),
        "{out:?}"
    );
    assert_eq!(out.metadata["exit_code"], 0);
    assert!(ws.path().join("inside.txt").exists());
}

#[tokio::test]
async fn write_outside_the_workspace_fails() {
    if no_fs_confinement().is_some() {
        return;
    }
    let ws = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let target = outside.path().join("escaped.txt");
    let cmd = format!("echo pwned > '{}'", target.display());
    let out = bash(&ctx(ws.path()), &cmd).await;
    assert!(out.is_error, "{out:?}");
    assert!(out.content.contains("Permission denied"), "{out:?}");
    assert!(
        !target.exists(),
        "the sandbox let a write outside the workspace through"
    );
    assert_eq!(out.metadata["sandbox"], "namespaces+landlock+seccomp");

    // /tmp itself is read-only too; the private TMPDIR is writable.
    let out = bash(
        &ctx(ws.path()),
        "touch /tmp/hybrid-tools-escape-test; echo \"t=$?\"; touch \"$TMPDIR/x\" && echo tmp-ok",
    )
    .await;
    assert!(out.content.contains("t=1"), "{out:?}");
    assert!(out.content.contains("tmp-ok"), "{out:?}");
    assert!(!Path::new("/tmp/hybrid-tools-escape-test").exists());

    // ...unless the policy names the path as extra writable.
    let mut allowed = ctx(ws.path());
    allowed
        .sandbox
        .extra_writable
        .push(outside.path().to_path_buf());
    let out = bash(&allowed, &cmd).await;
    assert!(!out.is_error, "{out:?}");
    assert!(target.exists());
}

#[tokio::test]
async fn network_is_off_unless_allowed() {
    if no_fs_confinement().is_some() || no_net_confinement().is_some() {
        return;
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let ws = tempfile::tempdir().unwrap();
    let cmd = format!("exec 3<>/dev/tcp/127.0.0.1/{port} && echo connected");

    let out = bash(&ctx(ws.path()), &cmd).await;
    assert!(out.is_error, "{out:?}");
    assert!(!out.content.contains("connected\n"), "{out:?}");
    assert!(out.content.contains("Permission denied"), "{out:?}");

    let mut open = ctx(ws.path());
    open.sandbox.allow_network = true;
    let out = bash(&open, &cmd).await;
    assert!(!out.is_error, "{out:?}");
    assert_eq!(out.content.trim(), "connected", "{out:?}");
    assert_eq!(out.metadata["sandbox"], "namespaces+landlock");
    drop(listener);
}

#[tokio::test]
async fn timeout_kills_the_whole_process_tree() {
    if no_fs_confinement().is_some() || no_process_isolation().is_some() {
        return;
    }
    let ws = tempfile::tempdir().unwrap();
    let mut c = ctx(ws.path());
    c.limits.timeout = Duration::from_secs(1);
    let m = marker();
    let started = Instant::now();
    let out = bash(&c, &format!("sleep {m} & setsid sleep {m} & sleep {m}")).await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    assert!(out.is_error);
    assert!(out.content.starts_with("timed out after 1s"), "{out:?}");
    assert_eq!(out.metadata["timed_out"], true);
    assert_eq!(
        survivors(&m).await,
        Vec::<u32>::new(),
        "survived the timeout"
    );
}

#[tokio::test]
async fn timeout_secs_argument_is_capped_by_the_limit() {
    if no_fs_confinement().is_some() {
        return;
    }
    let ws = tempfile::tempdir().unwrap();
    let mut c = ctx(ws.path());
    c.limits.timeout = Duration::from_secs(1);
    let out = BashTool
        .call(json!({ "command": "sleep 30", "timeout_secs": 600 }), &c)
        .await;
    assert!(out.content.starts_with("timed out after 1s"), "{out:?}");
}

#[tokio::test]
async fn no_process_outlives_the_call() {
    if no_fs_confinement().is_some() || no_process_isolation().is_some() {
        return;
    }
    let ws = tempfile::tempdir().unwrap();
    // Every way out of a process group and session a shell offers: eight `sleep`s. The
    // command returns once all eight run (it looks in its own /proc every 50 ms, for 5 s at
    // most), so the check below cannot pass because one had not started yet.
    let m = marker();
    let command = format!(
        "sleep {m} & \
         setsid sleep {m} & \
         nohup sleep {m} >/dev/null 2>&1 & \
         (sleep {m} &) ; \
         (setsid sh -c 'sleep {m} & sleep {m}' &) ; \
         sleep {m} & disown; \
         setsid -f sleep {m}; \
         for _ in $(seq 100); do \
           n=0; \
           for f in /proc/[0-9]*/cmdline; do \
             a=(); mapfile -d '' -t a 2>/dev/null <\"$f\"; \
             [ \"${{a[*]}}\" = 'sleep {m}' ] && n=$((n + 1)); \
           done; \
           [ $n -ge 8 ] && break; sleep 0.05; \
         done; \
         if [ $n -ge 8 ]; then echo started; else echo \"only $n of 8 sleeps started\"; fi"
    );
    let started = Instant::now();
    let out = bash(&ctx(ws.path()), &command).await;
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(!out.is_error, "{out:?}");
    assert_eq!(out.content.trim(), "started");
    assert_eq!(survivors(&m).await, Vec::<u32>::new(), "outlived the call");
}

#[tokio::test]
async fn commands_see_only_their_own_processes() {
    if no_fs_confinement().is_some() || no_process_isolation().is_some() {
        return;
    }
    let ws = tempfile::tempdir().unwrap();
    let out = bash(
        &ctx(ws.path()),
        "echo \"me=$$ parent=$PPID\"; \
         ls /proc | grep -E '^[0-9]+$' | sort -n | tr '\\n' ' '; echo; \
         ps -eo pid=,comm= | wc -l",
    )
    .await;
    assert!(!out.is_error, "{out:?}");
    let lines: Vec<&str> = out.content.lines().collect();
    // bash is pid 2, its parent the namespace's init.
    assert_eq!(lines[0], "me=2 parent=1", "{out:?}");
    // init, bash and the pipeline's processes: no pid of the host.
    let pids: Vec<u32> = lines[1]
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    assert!(pids.len() <= 8 && pids.iter().all(|p| *p < 20), "{out:?}");
    assert!(!pids.contains(&std::process::id()) || std::process::id() < 20);
    let ps: usize = lines[2].trim().parse().unwrap();
    assert!(ps <= 8, "ps lists {ps} processes: {out:?}");
}

#[tokio::test]
async fn the_init_and_the_host_are_out_of_reach() {
    if no_fs_confinement().is_some() || no_process_isolation().is_some() {
        return;
    }
    let ws = tempfile::tempdir().unwrap();
    // The init is a copy of this process: its environment and memory must stay closed. No
    // capability is left to unmount /proc (and see the host's), mount or trace.
    let out = bash(
        &ctx(ws.path()),
        "cat /proc/1/environ >/dev/null 2>&1; echo \"environ=$?\"; \
         head -c 1 /proc/1/mem >/dev/null 2>&1; echo \"mem=$?\"; \
         umount /proc 2>/dev/null; echo \"umount=$?\"; \
         mkdir -p p && mount -t proc proc p 2>/dev/null; echo \"mount=$?\"; \
         grep -E '^Cap(Prm|Eff|Bnd|Amb):' /proc/self/status | tr '\\n' ' '; echo; \
         ls /proc/*/environ | wc -l",
    )
    .await;
    assert!(!out.is_error, "{out:?}");
    let text = &out.content;
    for closed in ["environ=1", "mem=1", "umount=32", "mount=32"] {
        assert!(
            text.contains(closed) || text.contains(&closed.replace("32", "1")),
            "{closed}: {text}"
        );
    }
    assert!(
        !text.contains("environ=0") && !text.contains("mem=0"),
        "{text}"
    );
    assert!(
        !text.contains("umount=0") && !text.contains("mount=0"),
        "{text}"
    );
    for set in [
        "CapPrm:\t0000000000000000",
        "CapEff:\t0000000000000000",
        "CapBnd:\t0000000000000000",
        "CapAmb:\t0000000000000000",
    ] {
        assert!(text.contains(set), "{set} missing: {text}");
    }
}

#[tokio::test]
async fn cancellation_kills_the_command() {
    if no_fs_confinement().is_some() {
        return;
    }
    let ws = tempfile::tempdir().unwrap();
    let c = ctx(ws.path());
    // Cancel once the command is running (it has written `started`).
    let started = ws.path().join("started");
    let cancel_when_started = async {
        wait_until(
            "the command to start (its `started` file)",
            Duration::from_secs(10),
            || started.exists(),
        )
        .await;
        c.cancel.cancel();
    };
    let (out, ()) = tokio::join!(bash(&c, "touch started; sleep 100"), cancel_when_started);
    assert!(out.is_error);
    assert!(out.content.starts_with("cancelled"), "{out:?}");
}

#[tokio::test]
async fn output_is_capped_while_reading() {
    if no_fs_confinement().is_some() {
        return;
    }
    let ws = tempfile::tempdir().unwrap();
    let mut c = ctx(ws.path());
    c.limits.max_output_bytes = 1000;
    let out = bash(&c, "head -c 5000000 /dev/zero | tr '\\0' a").await;
    assert!(!out.is_error, "{:?}", out.metadata);
    assert!(out.truncated);
    assert!(out.content.len() < 1200, "{}", out.content.len());
    assert!(out.content.starts_with("aaaa"));
    let trailer = out.content.lines().last().unwrap();
    assert!(trailer.starts_with("[output truncated: "), "{trailer}");
    assert!(trailer.contains("of 5000000 bytes cut"), "{trailer}");
    assert_eq!(out.metadata["stdout_bytes"], 5_000_000);
}

#[tokio::test]
async fn binary_output_is_a_clear_error() {
    if no_fs_confinement().is_some() {
        return;
    }
    let ws = tempfile::tempdir().unwrap();
    let out = bash(&ctx(ws.path()), "printf 'a\\000b\\377'").await;
    assert!(out.is_error, "{out:?}");
    assert!(
        out.content.starts_with("binary output on stdout omitted"),
        "{out:?}"
    );
    assert!(
        out.content.contains("binary output (4 bytes) omitted"),
        "{out:?}"
    );
    assert_eq!(out.metadata["binary"], true);
}

#[tokio::test]
async fn non_zero_exit_and_stderr_are_reported() {
    if no_fs_confinement().is_some() {
        return;
    }
    let ws = tempfile::tempdir().unwrap();
    let out = bash(&ctx(ws.path()), "echo out; echo err >&2; exit 3").await;
    assert!(out.is_error);
    assert_eq!(
        out.content,
        "command exited with code 3\nout\n[stderr]\nerr\n"
    );
    assert_eq!(out.metadata["exit_code"], 3);
}

#[tokio::test]
async fn bad_commands_are_tool_errors() {
    if no_fs_confinement().is_some() {
        return;
    }
    let ws = tempfile::tempdir().unwrap();
    let mut c = ctx(ws.path());
    c.limits.max_command_bytes = 100;
    let out = bash(&c, &"x".repeat(101)).await;
    assert!(out.is_error);
    assert_eq!(
        out.content,
        "command too long: 101 bytes; the limit is 100 bytes"
    );

    let out = BashTool.call(json!({ "cmd": "ls" }), &c).await;
    assert!(out.is_error);
    assert!(
        out.content
            .starts_with("invalid arguments for bash: unknown field `cmd`"),
        "{out:?}"
    );

    let out = BashTool.call(json!({ "command": 5 }), &c).await;
    assert!(
        out.content
            .starts_with("invalid arguments for bash: field `command`"),
        "{out:?}"
    );

    let out = BashTool.call(json!("{\"command\": "), &c).await;
    assert!(
        out.content
            .starts_with("invalid arguments for bash: not valid JSON"),
        "{out:?}"
    );

    let out = bash(&ToolContext::new(ws.path().join("missing")), "ls").await;
    assert!(out.is_error);
    assert!(out.content.starts_with("workspace error:"), "{out:?}");
}

#[tokio::test]
async fn dropping_the_call_kills_the_process_tree() {
    if no_fs_confinement().is_some() || no_process_isolation().is_some() {
        return;
    }
    let ws = tempfile::tempdir().unwrap();
    let c = ctx(ws.path());
    let m = marker();
    let command = format!("setsid sleep {m} & sleep {m} & echo up > up.txt; sleep {m}");
    let call = bash(&c, &command);
    // The call is dropped once the command has started its processes and written `up.txt`.
    let up = ws.path().join("up.txt");
    let running = wait_until(
        "the command to write up.txt",
        Duration::from_secs(10),
        || up.exists(),
    );
    let dropped = tokio::select! {
        out = call => Err(out),
        () = running => Ok(()),
    };
    assert!(
        dropped.is_ok(),
        "the command should still have been running: {dropped:?}"
    );
    assert!(ws.path().join("up.txt").exists());
    assert_eq!(
        survivors(&m).await,
        Vec::<u32>::new(),
        "survived the dropped call"
    );
}

#[tokio::test]
async fn no_signals_to_processes_outside_the_sandbox() {
    if no_fs_confinement().is_some() {
        return;
    }
    if let Err(why) = sandbox::support().signals {
        eprintln!("SKIP: kernel lacks landlock signal scoping: {why}");
        return;
    }
    let ws = tempfile::tempdir().unwrap();
    let me = std::process::id();
    let out = bash(
        &ctx(ws.path()),
        &format!("kill -0 {me}; echo \"outside=$?\"; sleep 5 & kill -0 $!; echo \"inside=$?\""),
    )
    .await;
    assert!(out.content.contains("outside=1"), "{out:?}");
    assert!(out.content.contains("inside=0"), "{out:?}");
}
