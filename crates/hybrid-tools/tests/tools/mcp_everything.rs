//! MCP tools against a real third-party server: the reference "everything" server of the
//! Model Context Protocol project (npm `@modelcontextprotocol/server-everything`, pinned),
//! over stdio and over streamable HTTP.
//!
//! The test installs the package with `npm install --prefix <cache>` when it is not there yet
//! (`<cache>` = `$HYBRID_MCP_TEST_CACHE`, else `target/mcp-test-cache/npm`). When node/npm are
//! missing or the registry cannot be reached, the test fails if `CI=true` and otherwise prints
//! `SKIP: …` and passes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hybrid_tools::{McpClient, McpServerSpec, Tool, ToolContext};
use serde_json::json;

use crate::common::alive;

const PACKAGE: &str = "@modelcontextprotocol/server-everything";
const VERSION: &str = "2026.8.31";
const INSTALL_TIMEOUT: Duration = Duration::from_secs(300);
const CONNECT: Duration = Duration::from_secs(30);

fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("HYBRID_MCP_TEST_CACHE") {
        return PathBuf::from(dir).join("npm");
    }
    // target/<profile>/deps/<this test> → target/mcp-test-cache/npm
    let exe = std::env::current_exe().unwrap();
    exe.ancestors()
        .nth(3)
        .unwrap()
        .join("mcp-test-cache")
        .join("npm")
}

fn entry_point(prefix: &Path) -> PathBuf {
    prefix
        .join("node_modules")
        .join(PACKAGE)
        .join("dist")
        .join("index.js")
}

fn installed_version(prefix: &Path) -> Option<String> {
    let manifest = prefix
        .join("node_modules")
        .join(PACKAGE)
        .join("package.json");
    let text = std::fs::read_to_string(manifest).ok()?;
    let value: serde_json::Value = serde_json::from_str(&text).ok()?;
    value["version"].as_str().map(str::to_owned)
}

/// Installs the server if needed; `Err` says why it is not available.
async fn install() -> Result<PathBuf, String> {
    let prefix = cache_dir();
    let entry = entry_point(&prefix);
    if entry.exists() && installed_version(&prefix).as_deref() == Some(VERSION) {
        return Ok(entry);
    }
    for tool in ["node", "npm"] {
        let found = tokio::process::Command::new(tool)
            .arg("--version")
            .output()
            .await
            .is_ok_and(|o| o.status.success());
        if !found {
            return Err(format!("`{tool}` is not installed"));
        }
    }
    std::fs::create_dir_all(&prefix)
        .map_err(|e| format!("cannot create {}: {e}", prefix.display()))?;
    eprintln!("installing {PACKAGE}@{VERSION} into {}", prefix.display());
    let started = Instant::now();
    let mut npm = tokio::process::Command::new("npm");
    npm.arg("install")
        .arg("--prefix")
        .arg(&prefix)
        .args(["--no-audit", "--no-fund", "--loglevel=error", "--no-save"])
        // An unreachable registry should fail in seconds, not after npm's default retries.
        .args([
            "--fetch-retries=1",
            "--fetch-retry-mintimeout=1000",
            "--fetch-retry-maxtimeout=3000",
        ])
        .arg(format!("{PACKAGE}@{VERSION}"))
        .kill_on_drop(true);
    let output = tokio::time::timeout(INSTALL_TIMEOUT, npm.output())
        .await
        .map_err(|_| format!("npm install did not finish within {INSTALL_TIMEOUT:?}"))?
        .map_err(|e| format!("cannot run npm: {e}"))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let head: Vec<&str> = stderr.lines().take(3).collect();
        return Err(format!(
            "npm install failed ({}): {}",
            output.status,
            head.join(" | ")
        ));
    }
    eprintln!("installed in {:.1}s", started.elapsed().as_secs_f64());
    if entry.exists() {
        Ok(entry)
    } else {
        Err(format!(
            "npm install succeeded but {} is missing",
            entry.display()
        ))
    }
}

/// The installed server, or `None` after printing why the test is skipped (fails under CI).
async fn server_or_skip() -> Option<PathBuf> {
    match install().await {
        Ok(entry) => Some(entry),
        Err(why) => {
            let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
            assert!(!ci, "{PACKAGE} unavailable under CI: {why}");
            eprintln!("SKIP: {PACKAGE} unavailable: {why}");
            None
        }
    }
}

fn ctx() -> ToolContext {
    let mut ctx = ToolContext::new(std::env::temp_dir());
    ctx.limits.timeout = Duration::from_secs(20);
    ctx
}

/// Checks common to both transports.
async fn exercise(client: &McpClient, server: &str) {
    let names: Vec<String> = client.list_tools().into_iter().map(|t| t.name).collect();
    for expected in ["echo", "get-sum", "get-env", "get-tiny-image"] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} not in {names:?}"
        );
    }

    let echo = client.tool("echo").unwrap();
    let spec = echo.spec();
    assert_eq!(spec.name, format!("mcp:{server}:echo"));
    assert_eq!(spec.parameters["type"], "object");
    assert_eq!(spec.parameters["properties"]["message"]["type"], "string");
    let out = echo
        .call(json!({"message": "hello from rust"}), &ctx())
        .await;
    assert!(!out.is_error, "{out:?}");
    assert_eq!(out.content, "Echo: hello from rust");

    let sum = client.tool(&format!("mcp:{server}:get-sum")).unwrap();
    let out = sum.call(json!({"a": 19, "b": 23}), &ctx()).await;
    assert!(!out.is_error, "{out:?}");
    assert!(out.content.contains("42"), "{}", out.content);

    // Arguments the server's schema rejects.
    let out = echo.call(json!({"message": 5}), &ctx()).await;
    assert!(out.is_error, "{out:?}");

    let image = client.tool("get-tiny-image").unwrap();
    let out = image.call(json!({}), &ctx()).await;
    assert!(!out.is_error, "{out:?}");
    assert!(
        out.content.contains("[image content: image/png, "),
        "{}",
        out.content
    );
}

#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everything_server_over_stdio_and_http() {
    let Some(entry) = server_or_skip().await else {
        return;
    };
    let entry = entry.display().to_string();

    // stdio, with a token in the spec's environment.
    let spec = McpServerSpec::stdio("everything", "node", [entry.as_str(), "stdio"])
        .with_env("EVERYTHING_TOKEN", "tok-42");
    let client = McpClient::connect(spec, CONNECT).await.unwrap();
    let pid = client.pid().unwrap();
    exercise(&client, "everything").await;

    // The server sees the scrubbed environment plus the spec's, nothing of ours.
    let env_tool = client.tool("get-env").unwrap();
    let out = env_tool.call(json!({}), &ctx()).await;
    assert!(!out.is_error, "{out:?}");
    let env: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&out.content).unwrap();
    assert_eq!(env["EVERYTHING_TOKEN"], "tok-42");
    assert!(env.contains_key("PATH"));
    assert!(!env.contains_key("CARGO_MANIFEST_DIR"), "{:?}", env.keys());
    assert!(!env.contains_key("CARGO"), "{:?}", env.keys());

    // Dropping the client (and its tools) kills node.
    drop(env_tool);
    drop(client);
    let deadline = Instant::now() + Duration::from_secs(5);
    while alive(pid) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!alive(pid), "node {pid} still running");

    // Streamable HTTP: the same server started in HTTP mode on a free port.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let mut node = tokio::process::Command::new("node");
    node.args([entry.as_str(), "streamableHttp"])
        .env("PORT", port.to_string())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true);
    let _http_server = node.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "HTTP server did not listen on {port}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let url = format!("http://127.0.0.1:{port}/mcp");
    let client = McpClient::connect(McpServerSpec::http("ev", url), CONNECT)
        .await
        .unwrap();
    exercise(&client, "ev").await;
}
