//! MCP tools against the testkit's rmcp server, over streamable HTTP and over stdio (the
//! `hybrid-mcp-test-server` binary of hybrid-testkit, built here if missing).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hybrid_testkit::McpTestServer;
use hybrid_tools::mcp::tool_pattern_matches;
use hybrid_tools::{McpClient, McpError, McpServerSpec, Tool, ToolContext, ToolRegistry};
use serde_json::json;

use crate::common::{alive, wait_until};

const CONNECT: Duration = Duration::from_secs(20);

fn ctx() -> ToolContext {
    let mut ctx = ToolContext::new(std::env::temp_dir());
    ctx.limits.timeout = Duration::from_secs(10);
    ctx
}

/// The testkit's stdio server binary, next to this test's own directory
/// (`target/<profile>/deps/..`). `cargo test -p hybrid-tools -p hybrid-testkit` builds it;
/// otherwise it is built here (in its own target dir, so the running cargo's lock is not in
/// the way).
fn test_server_bin() -> PathBuf {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        let exe = std::env::current_exe().unwrap();
        let profile_dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
        let bin = profile_dir.join("hybrid-mcp-test-server");
        if bin.exists() {
            return bin;
        }
        let target = profile_dir.parent().unwrap().join("mcp-test-server-build");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let manifest =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../hybrid-testkit/Cargo.toml");
        eprintln!("building hybrid-mcp-test-server into {}", target.display());
        let status = std::process::Command::new(cargo)
            .args([
                "build",
                "--quiet",
                "--bin",
                "hybrid-mcp-test-server",
                "--manifest-path",
            ])
            .arg(&manifest)
            .arg("--target-dir")
            .arg(&target)
            .status()
            .unwrap();
        assert!(status.success(), "building hybrid-mcp-test-server failed");
        target.join("debug").join("hybrid-mcp-test-server")
    })
    .clone()
}

fn stdio_spec(name: &str, args: &[&str]) -> McpServerSpec {
    McpServerSpec::stdio(
        name,
        test_server_bin().display().to_string(),
        args.iter().copied(),
    )
}

async fn call(tool: &Arc<dyn Tool>, args: serde_json::Value) -> hybrid_tools::ToolOutput {
    tool.call(args, &ctx()).await
}

fn find(tools: &[Arc<dyn Tool>], name: &str) -> Arc<dyn Tool> {
    tools
        .iter()
        .find(|t| t.spec().name == name)
        .cloned()
        .unwrap_or_else(|| panic!("no tool {name}"))
}

/// The checks both transports must pass.
async fn exercise(client: &McpClient, server: &str) {
    let listed = client.list_tools();
    let mut names: Vec<&str> = listed.iter().map(|t| t.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["add", "big", "echo", "fail", "image", "sleep"]);
    let add_info = listed.iter().find(|t| t.name == "add").unwrap();
    assert_eq!(add_info.qualified_name, format!("mcp:{server}:add"));
    assert_eq!(
        add_info.description,
        "Adds two integers and returns the sum."
    );

    let tools = client.tools();
    let add = find(&tools, &format!("mcp:{server}:add"));
    let spec = add.spec();
    assert_eq!(spec.parameters["type"], "object");
    assert_eq!(spec.parameters["properties"]["a"]["type"], "integer");
    assert_eq!(spec.parameters["required"], json!(["a", "b"]));

    let out = call(&add, json!({"a": 2, "b": 40})).await;
    assert!(!out.is_error, "{out:?}");
    assert_eq!(out.content, "42");
    assert_eq!(out.metadata["mcp_server"], server);
    assert_eq!(out.metadata["mcp_tool"], "add");

    let echo = find(&tools, &format!("mcp:{server}:echo"));
    let out = call(&echo, json!({"text": "héllo\nworld"})).await;
    assert_eq!(
        (out.content.as_str(), out.is_error),
        ("héllo\nworld", false)
    );

    // isError from the server.
    let fail = find(&tools, &format!("mcp:{server}:fail"));
    let out = call(&fail, json!({"message": "disk on fire"})).await;
    assert!(out.is_error);
    assert_eq!(out.content, "disk on fire");

    // Arguments that do not fit the schema: the server says so.
    let out = call(&add, json!({"a": "two", "b": 1})).await;
    assert!(out.is_error, "{out:?}");
    assert!(out.content.contains("invalid type"), "{}", out.content);
    let out = call(&add, json!({"a": 1})).await;
    assert!(out.is_error, "{out:?}");
    assert!(out.content.contains("missing field `b`"), "{}", out.content);

    // Not an object: refused before the server.
    let out = call(&add, json!([1, 2])).await;
    assert!(out.is_error);
    assert!(
        out.content
            .starts_with(&format!("invalid arguments for `mcp:{server}:add`")),
        "{}",
        out.content
    );

    // A JSON-RPC error from the server.
    let big = find(&tools, &format!("mcp:{server}:big"));
    let out = call(&big, json!({"bytes": 5_000_000})).await;
    assert!(out.is_error, "{out:?}");
    assert!(out.content.contains("at most 1048576"), "{}", out.content);
    assert!(
        out.content.contains("JSON-RPC error -32602"),
        "{}",
        out.content
    );
    assert!(out.content.contains(&format!("mcp:{server}:big")));

    // Output capped with a trailer.
    let mut small = ctx();
    small.limits.max_output_bytes = 100;
    let out = big.call(json!({"bytes": 5000}), &small).await;
    assert!(!out.is_error && out.truncated, "{out:?}");
    assert!(out.content.starts_with(&"x".repeat(100)));
    assert!(
        out.content
            .contains("[output truncated: 4900 of 5000 bytes cut")
    );

    // Non-text content is described, not dumped.
    let image = find(&tools, &format!("mcp:{server}:image"));
    let out = call(&image, json!({})).await;
    assert!(!out.is_error, "{out:?}");
    assert!(
        out.content
            .starts_with("a tiny image\n[image content: image/png, "),
        "{}",
        out.content
    );
    let out = call(&image, serde_json::Value::Null).await;
    assert!(!out.is_error, "{out:?}");

    // The limit: a tool error, and the connection still works after it.
    let sleep = find(&tools, &format!("mcp:{server}:sleep"));
    let mut quick = ctx();
    quick.limits.timeout = Duration::from_millis(300);
    let started = Instant::now();
    let out = sleep.call(json!({"ms": 5000}), &quick).await;
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(out.is_error);
    assert_eq!(out.metadata["timed_out"], true);
    assert!(
        out.content.contains("did not answer within 300ms"),
        "{}",
        out.content
    );
    let out = call(&add, json!({"a": 1, "b": 1})).await;
    assert_eq!(out.content, "2");

    // Cancellation.
    let cancelled = ctx();
    cancelled.cancel.cancel();
    let out = sleep.call(json!({"ms": 5000}), &cancelled).await;
    assert!(out.is_error && out.content.contains("cancelled"), "{out:?}");

    // Calls run concurrently over one connection.
    let shared = ctx();
    let started = Instant::now();
    let outs =
        futures::future::join_all((0..4).map(|_| sleep.call(json!({"ms": 400}), &shared))).await;
    assert!(
        outs.iter()
            .all(|o| !o.is_error && o.content == "slept 400 ms")
    );
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );

    // Filtering as configs list tools, and registration next to the built-ins.
    let picked = client.tools_matching(&[format!("mcp:{server}:e*"), format!("mcp:{server}:add")]);
    let mut picked: Vec<String> = picked.iter().map(|t| t.spec().name).collect();
    picked.sort();
    assert_eq!(
        picked,
        [format!("mcp:{server}:add"), format!("mcp:{server}:echo")]
    );
    assert_eq!(client.tools_matching(&["mcp:*"]).len(), 6);
    assert!(client.tools_matching(&["bash", "mcp:other:*"]).is_empty());
    assert!(tool_pattern_matches(
        "mcp:*:add",
        &format!("mcp:{server}:add")
    ));

    let mut registry = ToolRegistry::new();
    for tool in client.tools() {
        registry.register(tool);
    }
    let out = registry
        .call(
            &format!("mcp:{server}:add"),
            json!({"a": 3, "b": 4}),
            &ctx(),
        )
        .await;
    assert_eq!(out.content, "7");
    let direct = client.tool("echo").unwrap();
    assert_eq!(direct.spec().name, format!("mcp:{server}:echo"));
    assert_eq!(direct.server_name(), server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_list_call_errors_limits() {
    let server = McpTestServer::start().await.unwrap();
    let client = McpClient::connect(McpServerSpec::http("kit", server.url()), CONNECT)
        .await
        .unwrap();
    assert_eq!(client.pid(), None);
    assert!(
        client
            .server_info()
            .unwrap()
            .starts_with("hybrid-mcp-test-server ")
    );
    exercise(&client, "kit").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_headers_are_sent_and_checked() {
    let server = McpTestServer::start().await.unwrap();
    let spec = McpServerSpec::http("kit", server.url()).with_env("Authorization", "Bearer t0k");
    let client = McpClient::connect(spec, CONNECT).await.unwrap();
    assert_eq!(client.list_tools().len(), 6);

    let bad = McpServerSpec::http("kit", server.url()).with_env("Mcp-Session-Id", "x");
    let err = McpClient::connect(bad, CONNECT).await.unwrap_err();
    assert!(matches!(err, McpError::InvalidSpec { .. }), "{err}");
    assert!(
        err.to_string()
            .starts_with("MCP server `kit`: invalid configuration: header")
    );

    let err = McpClient::connect(McpServerSpec::http("kit", "ftp://x/mcp"), CONNECT)
        .await
        .unwrap_err();
    assert!(matches!(err, McpError::InvalidSpec { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_server_gone_is_a_tool_error() {
    let server = McpTestServer::start().await.unwrap();
    let url = server.url();
    let addr = server.addr();
    let client = McpClient::connect(McpServerSpec::http("kit", &url), CONNECT)
        .await
        .unwrap();
    let add = client.tool("add").unwrap();
    assert_eq!(add.call(json!({"a": 1, "b": 2}), &ctx()).await.content, "3");
    drop(server);
    wait_until(
        &format!("the dropped MCP test server to stop listening on {addr}"),
        Duration::from_secs(5),
        || std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err(),
    )
    .await;

    let mut short = ctx();
    short.limits.timeout = Duration::from_secs(5);
    let started = Instant::now();
    let out = add.call(json!({"a": 1, "b": 2}), &short).await;
    assert!(out.is_error, "{out:?}");
    assert!(out.content.starts_with("`mcp:kit:add` "), "{}", out.content);
    assert!(!out.content.contains('\n'), "{}", out.content);
    assert!(started.elapsed() < Duration::from_secs(6));

    // Connecting to nothing: an error naming the server, on one line.
    let err = McpClient::connect(McpServerSpec::http("gone", &url), Duration::from_secs(5))
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.starts_with("MCP server `gone`: "), "{msg}");
    assert!(!msg.contains('\n'), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdio_list_call_errors_limits() {
    let client = McpClient::connect(stdio_spec("kit", &[]), CONNECT)
        .await
        .unwrap();
    assert!(client.pid().is_some());
    exercise(&client, "kit").await;
}

async fn wait_dead(pid: u32, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if !alive(pid) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    !alive(pid)
}

#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdio_child_is_killed_when_client_and_tools_drop() {
    // `--linger` keeps the server running after its stdin closes: only a kill ends it.
    let client = McpClient::connect(stdio_spec("kit", &["--linger"]), CONNECT)
        .await
        .unwrap();
    let pid = client.pid().unwrap();
    assert!(alive(pid));
    let tools = client.tools();
    // Were the client's drop the connection's, it would SIGKILL the server's group right
    // here (the kill in `Connection::drop` is synchronous): the call after it would fail
    // and the server be gone. No wait needed.
    drop(client);
    let add = find(&tools, "mcp:kit:add");
    assert_eq!(call(&add, json!({"a": 1, "b": 1})).await.content, "2");
    assert!(alive(pid), "the tools still hold the connection");
    drop(add);
    drop(tools);
    assert!(
        wait_dead(pid, Duration::from_secs(5)).await,
        "server {pid} still running"
    );
}

#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdio_server_gone_is_a_tool_error() {
    let client = McpClient::connect(stdio_spec("kit", &[]), CONNECT)
        .await
        .unwrap();
    let pid = client.pid().unwrap();
    let add = client.tool("add").unwrap();
    assert_eq!(add.call(json!({"a": 1, "b": 2}), &ctx()).await.content, "3");
    let status = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(
        wait_dead(pid, Duration::from_secs(5)).await,
        "server {pid} still running 5 s after kill -9"
    );
    let started = Instant::now();
    let out = add.call(json!({"a": 1, "b": 2}), &ctx()).await;
    assert!(out.is_error, "{out:?}");
    assert!(
        out.content
            .starts_with("`mcp:kit:add` failed: MCP server `kit`: the connection is closed"),
        "{}",
        out.content
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdio_connect_failures_name_the_server() {
    let err = McpClient::connect(
        McpServerSpec::stdio("nope", "/nonexistent/mcp-server", ["x"]),
        CONNECT,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, McpError::Spawn { .. }), "{err}");
    assert!(
        err.to_string()
            .starts_with("MCP server `nope`: cannot start `/nonexistent/mcp-server`: "),
        "{err}"
    );

    // A program that never answers: the handshake times out.
    let started = Instant::now();
    let err = McpClient::connect(
        McpServerSpec::stdio("mute", "sleep", ["30"]),
        Duration::from_millis(500),
    )
    .await
    .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(
        err.to_string(),
        "MCP server `mute`: no answer to initialize within 500ms"
    );

    // A program that writes to stderr and exits: its last words are in the error.
    let err = McpClient::connect(
        McpServerSpec::stdio("crash", "sh", ["-c", "echo 'fatal: no token' >&2; exit 3"]),
        CONNECT,
    )
    .await
    .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.starts_with("MCP server `crash`: connection failed: "),
        "{msg}"
    );
    assert!(msg.contains("fatal: no token"), "{msg}");
    assert!(!msg.contains('\n'), "{msg}");

    for bad in ["", "a:b", "a b"] {
        let err = McpClient::connect(McpServerSpec::stdio(bad, "true", [""; 0]), CONNECT)
            .await
            .unwrap_err();
        assert!(matches!(err, McpError::InvalidSpec { .. }), "{err}");
    }
}

#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdio_environment_is_scrubbed() {
    // `sh` reports on its environment to stderr and exits; the connect error shows it.
    // Cargo sets CARGO and CARGO_MANIFEST_DIR for this test process; they must not get through.
    let script = r#"echo "token=$SERVER_TOKEN cargo=${CARGO:-unset} manifest=${CARGO_MANIFEST_DIR:-unset} path=${PATH:+set} lang=${LANG:+set}" >&2; exit 1"#;
    let spec =
        McpServerSpec::stdio("envy", "sh", ["-c", script]).with_env("SERVER_TOKEN", "tok-123");
    let err = McpClient::connect(spec, CONNECT).await.unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("token=tok-123 cargo=unset manifest=unset path=set lang=set"),
        "{msg}"
    );
}
