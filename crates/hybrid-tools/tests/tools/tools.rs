//! File tools, search tools, http tools and the registry.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use hybrid_tools::{NotifyConfig, ToolContext, ToolRegistry, ToolsConfig};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn registry() -> ToolRegistry {
    ToolRegistry::builtin(&ToolsConfig::default())
}

async fn call(ctx: &ToolContext, tool: &str, args: Value) -> hybrid_tools::ToolOutput {
    registry().call(tool, args, ctx).await
}

fn write(root: &Path, rel: &str, content: &[u8]) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, content).unwrap();
}

#[test]
fn builtin_registry_and_schemas() {
    assert_eq!(
        registry().names(),
        [
            "bash",
            "read_file",
            "write_file",
            "edit_file",
            "glob",
            "grep"
        ]
    );
    let all = ToolRegistry::builtin(&ToolsConfig {
        http_request: true,
        notify: Some(NotifyConfig {
            webhook_url: "http://127.0.0.1:9/hook".to_owned(),
            headers: Vec::new(),
        }),
        ..ToolsConfig::default()
    });
    assert_eq!(all.len(), 8);
    for spec in all.specs() {
        let p = &spec.parameters;
        assert_eq!(p["type"], "object", "{}: {p}", spec.name);
        assert_eq!(p["additionalProperties"], false, "{}: {p}", spec.name);
        assert!(p.get("$schema").is_none());
        assert!(!spec.description.is_empty());
    }
    let bash = all.get("bash").unwrap().spec();
    assert_eq!(bash.parameters["required"], json!(["command"]));
    assert!(bash.parameters["properties"]["timeout_secs"].is_object());
}

#[tokio::test]
async fn unknown_tool_is_a_tool_error() {
    let ws = tempfile::tempdir().unwrap();
    let out = call(&ToolContext::new(ws.path()), "rm_everything", json!({})).await;
    assert!(out.is_error);
    assert!(
        out.content
            .starts_with("unknown tool `rm_everything`; available tools: bash, ")
    );
}

#[tokio::test]
async fn write_read_and_edit() {
    let ws = tempfile::tempdir().unwrap();
    let ctx = ToolContext::new(ws.path());
    let out = call(
        &ctx,
        "write_file",
        json!({"path": "a/b.txt", "content": "one\ntwo\ntwo\nthree\n"}),
    )
    .await;
    assert!(!out.is_error, "{out:?}");
    assert_eq!(out.content, "created a/b.txt (18 bytes)");

    let out = call(&ctx, "read_file", json!({"path": "a/b.txt"})).await;
    assert_eq!(out.content, "one\ntwo\ntwo\nthree\n");
    assert_eq!(out.metadata["total_lines"], 4);
    let out = call(
        &ctx,
        "read_file",
        json!({"path": "a/b.txt", "offset": 2, "limit": 2}),
    )
    .await;
    assert_eq!(out.content, "two\ntwo\n");

    let out = call(
        &ctx,
        "edit_file",
        json!({"path": "a/b.txt", "old_string": "two", "new_string": "2"}),
    )
    .await;
    assert!(out.is_error);
    assert!(
        out.content
            .starts_with("edit_file: `old_string` occurs 2 times in `a/b.txt`"),
        "{out:?}"
    );
    let out = call(
        &ctx,
        "edit_file",
        json!({"path": "a/b.txt", "old_string": "four", "new_string": "4"}),
    )
    .await;
    assert_eq!(
        out.content,
        "edit_file: `old_string` not found in `a/b.txt`"
    );
    let out = call(
        &ctx,
        "edit_file",
        json!({"path": "a/b.txt", "old_string": "one", "new_string": "1"}),
    )
    .await;
    assert_eq!(out.content, "replaced 1 occurrence in a/b.txt");
    let out = call(
        &ctx,
        "edit_file",
        json!({"path": "a/b.txt", "old_string": "two", "new_string": "2", "replace_all": true}),
    )
    .await;
    assert_eq!(out.content, "replaced 2 occurrences in a/b.txt");
    assert_eq!(
        std::fs::read_to_string(ws.path().join("a/b.txt")).unwrap(),
        "1\n2\n2\nthree\n"
    );
}

#[tokio::test]
async fn paths_cannot_escape_the_workspace() {
    let ws = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    write(outside.path(), "secret.txt", b"secret");
    #[cfg(unix)]
    std::os::unix::fs::symlink(outside.path(), ws.path().join("link")).unwrap();
    let ctx = ToolContext::new(ws.path());
    let escapes = [
        json!({"path": "../x.txt"}),
        json!({"path": outside.path().join("secret.txt").display().to_string()}),
        json!({"path": "/etc/passwd"}),
        json!({"path": "link/secret.txt"}),
        json!({"path": "missing/../../x.txt"}),
    ];
    for args in escapes {
        let out = call(&ctx, "read_file", args.clone()).await;
        assert!(out.is_error, "{args}: {out:?}");
        assert!(
            out.content.starts_with("read_file: path `"),
            "{args}: {out:?}"
        );
        let mut w = args.clone();
        w["content"] = json!("pwned");
        let out = call(&ctx, "write_file", w).await;
        assert!(out.is_error, "{args}: {out:?}");
    }
    assert_eq!(
        std::fs::read_to_string(outside.path().join("secret.txt")).unwrap(),
        "secret"
    );
    assert!(!outside.path().join("x.txt").exists());

    // extra_writable opens another root.
    let mut wide = ToolContext::new(ws.path());
    wide.sandbox
        .extra_writable
        .push(outside.path().to_path_buf());
    let out = call(&wide, "read_file", json!({"path": "link/secret.txt"})).await;
    assert_eq!(out.content, "secret", "{out:?}");
}

#[tokio::test]
async fn bad_arguments_name_the_field() {
    let ws = tempfile::tempdir().unwrap();
    let ctx = ToolContext::new(ws.path());
    let out = call(&ctx, "read_file", json!({})).await;
    assert_eq!(
        out.content,
        "invalid arguments for read_file: missing field `path`"
    );
    let out = call(&ctx, "read_file", json!({"path": "x", "offset": "ten"})).await;
    assert!(
        out.content
            .starts_with("invalid arguments for read_file: field `offset`: invalid type"),
        "{out:?}"
    );
    let out = call(
        &ctx,
        "write_file",
        json!({"path": "x", "content": "y", "mode": 7}),
    )
    .await;
    assert!(
        out.content
            .starts_with("invalid arguments for write_file: unknown field `mode`"),
        "{out:?}"
    );
    let out = call(&ctx, "glob", json!([1, 2])).await;
    assert_eq!(
        out.content,
        "invalid arguments for glob: expected a JSON object, got an array"
    );
    let out = call(&ctx, "grep", json!({"pattern": "("})).await;
    assert!(
        out.content
            .starts_with("invalid arguments for grep: field `pattern` is not a valid regex"),
        "{out:?}"
    );
    let out = call(&ctx, "read_file", json!({"path": "nope.txt"})).await;
    assert!(out.is_error);
    assert!(
        out.content.starts_with("read_file: cannot read `nope.txt`"),
        "{out:?}"
    );
}

#[tokio::test]
async fn binary_and_large_files() {
    let ws = tempfile::tempdir().unwrap();
    write(ws.path(), "bin.dat", b"\x7fELF\0\0\x01");
    write(ws.path(), "big.txt", &vec![b'a'; 2000]);
    let mut ctx = ToolContext::new(ws.path());
    ctx.limits.max_file_bytes = 1000;
    let out = call(&ctx, "read_file", json!({"path": "bin.dat"})).await;
    assert!(out.is_error);
    assert!(
        out.content
            .starts_with("read_file: `bin.dat` is a binary file (7 bytes)"),
        "{out:?}"
    );
    let out = call(&ctx, "read_file", json!({"path": "big.txt"})).await;
    assert_eq!(
        out.content,
        "read_file: `big.txt` is 2000 bytes; the limit is 1000 bytes"
    );

    ctx.limits.max_file_bytes = 1 << 20;
    ctx.limits.max_output_bytes = 100;
    let out = call(&ctx, "read_file", json!({"path": "big.txt"})).await;
    assert!(out.truncated);
    assert!(
        out.content
            .ends_with("[output truncated: 1900 of 2000 bytes cut; showing the first 100 bytes]"),
        "{out:?}"
    );
}

#[tokio::test]
async fn glob_and_grep() {
    let ws = tempfile::tempdir().unwrap();
    write(
        ws.path(),
        "src/main.rs",
        b"fn main() {\n    println!(\"hello\");\n}\n",
    );
    write(ws.path(), "src/lib/util.rs", b"pub fn hello() {}\n");
    write(ws.path(), "README.md", b"say hello\n");
    write(ws.path(), "data.bin", b"hello\0world");
    write(ws.path(), ".git/config", b"hello");
    write(ws.path(), "target/out.rs", b"hello");
    write(ws.path(), ".gitignore", b"target/\n");
    let ctx = ToolContext::new(ws.path());

    let out = call(&ctx, "glob", json!({"pattern": "**/*.rs"})).await;
    assert_eq!(out.content, "src/lib/util.rs\nsrc/main.rs");
    let out = call(&ctx, "glob", json!({"pattern": "*.txt"})).await;
    assert_eq!(out.content, "no files match `*.txt`");
    assert!(!out.is_error);
    let out = call(&ctx, "glob", json!({"pattern": "../*"})).await;
    assert!(out.is_error);

    let out = call(&ctx, "grep", json!({"pattern": "hel+o"})).await;
    let mut lines: Vec<&str> = out.content.lines().collect();
    lines.sort();
    assert_eq!(
        lines,
        [
            "README.md:1:say hello",
            "src/lib/util.rs:1:pub fn hello() {}",
            "src/main.rs:2:    println!(\"hello\");"
        ]
    );
    assert_eq!(out.metadata["files_skipped"], 1, "data.bin is binary");
    let out = call(&ctx, "grep", json!({"pattern": "hello", "glob": "*.md"})).await;
    assert_eq!(out.content, "README.md:1:say hello\n");
    let out = call(&ctx, "grep", json!({"pattern": "hello", "path": "src/lib"})).await;
    assert_eq!(out.content, "src/lib/util.rs:1:pub fn hello() {}\n");
    let out = call(&ctx, "grep", json!({"pattern": "nothing-here"})).await;
    assert_eq!(out.content, "no matches for `nothing-here`");
}

/// A one-shot HTTP server on 127.0.0.1; returns its URL and the raw request it got.
async fn one_shot_server(
    status: &'static str,
    body: &'static [u8],
) -> (String, tokio::task::JoinHandle<String>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let handle = tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.unwrap();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let n = sock.read(&mut chunk).await.unwrap();
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&buf);
            if let Some(end) = text.find("\r\n\r\n") {
                let len = text[..end]
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse::<usize>().unwrap())
                    })
                    .unwrap_or(0);
                if buf.len() >= end + 4 + len {
                    break;
                }
            }
        }
        let head = format!(
            "HTTP/1.1 {status}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        );
        sock.write_all(head.as_bytes()).await.unwrap();
        sock.write_all(body).await.unwrap();
        sock.shutdown().await.ok();
        String::from_utf8_lossy(&buf).into_owned()
    });
    (url, handle)
}

#[tokio::test]
async fn http_request_when_enabled() {
    let ws = tempfile::tempdir().unwrap();
    let ctx = ToolContext::new(ws.path());
    let tools = ToolRegistry::builtin(&ToolsConfig {
        http_request: true,
        notify: None,
        ..ToolsConfig::default()
    });
    let (url, server) = one_shot_server("200 OK", b"pong").await;
    let out = tools
        .call("http_request", json!({"method": "post", "url": format!("{url}/ping"), "headers": {"x-test": "1"}, "body": "ping"}), &ctx)
        .await;
    assert!(!out.is_error, "{out:?}");
    assert_eq!(
        out.content,
        "HTTP 200 OK\ncontent-type: text/plain\ncontent-length: 4\n\npong"
    );
    let request = server.await.unwrap();
    assert!(request.starts_with("POST /ping HTTP/1.1\r\n"), "{request}");
    assert!(request.contains("x-test: 1"));
    assert!(request.ends_with("\r\n\r\nping"));

    let (url, _server) = one_shot_server("200 OK", b"\x00\x01\x02").await;
    let out = tools
        .call("http_request", json!({"method": "GET", "url": url}), &ctx)
        .await;
    assert!(
        out.content
            .ends_with("binary output (3 bytes) omitted: it contains NUL bytes"),
        "{out:?}"
    );

    let out = tools
        .call(
            "http_request",
            json!({"method": "GET", "url": "file:///etc/passwd"}),
            &ctx,
        )
        .await;
    assert!(
        out.content
            .starts_with("invalid arguments for http_request: field `url`: scheme `file`")
    );
    let out = tools
        .call(
            "http_request",
            json!({"method": "BREW", "url": "http://127.0.0.1:1/"}),
            &ctx,
        )
        .await;
    assert!(
        out.content
            .starts_with("invalid arguments for http_request: field `method`")
    );
    let out = tools
        .call(
            "http_request",
            json!({"method": "GET", "url": "http://127.0.0.1:1/"}),
            &ctx,
        )
        .await;
    assert!(out.is_error);
    assert!(out.content.starts_with("http_request: "), "{out:?}");

    // Off by default.
    let out = registry()
        .call(
            "http_request",
            json!({"method": "GET", "url": "http://127.0.0.1:1/"}),
            &ctx,
        )
        .await;
    assert!(out.content.starts_with("unknown tool `http_request`"));
}

#[tokio::test]
async fn notify_posts_to_the_webhook() {
    let ws = tempfile::tempdir().unwrap();
    let ctx = ToolContext::new(ws.path());
    let (url, server) = one_shot_server("204 No Content", b"").await;
    let tools = ToolRegistry::builtin(&ToolsConfig {
        http_request: false,
        notify: Some(NotifyConfig {
            webhook_url: format!("{url}/hook"),
            headers: vec![("authorization".to_owned(), "Bearer hook-token".to_owned())],
        }),
        ..ToolsConfig::default()
    });
    let out = tools
        .call(
            "notify",
            json!({"message": "deploy done", "title": "ops"}),
            &ctx,
        )
        .await;
    assert!(!out.is_error, "{out:?}");
    assert_eq!(out.content, "notification sent (HTTP 204 No Content)");
    let request = server.await.unwrap();
    assert!(request.starts_with("POST /hook HTTP/1.1\r\n"), "{request}");
    assert!(request.contains("authorization: Bearer hook-token"));
    let body = request.split("\r\n\r\n").nth(1).unwrap();
    let body: Value = serde_json::from_str(body).unwrap();
    assert_eq!(
        body,
        json!({"title": "ops", "message": "deploy done", "text": "ops: deploy done"})
    );

    let (url, _server) = one_shot_server("500 Internal Server Error", b"boom").await;
    let tools = ToolRegistry::builtin(&ToolsConfig {
        http_request: false,
        notify: Some(NotifyConfig {
            webhook_url: url,
            headers: Vec::new(),
        }),
        ..ToolsConfig::default()
    });
    let out = tools.call("notify", json!({"message": "x"}), &ctx).await;
    assert!(out.is_error);
    assert_eq!(
        out.content,
        "notify: the webhook answered HTTP 500 Internal Server Error\nboom"
    );
}
