//! An MCP server for tests, built with rmcp's server macros.
//!
//! Tools:
//!
//! | tool | arguments | result |
//! | --- | --- | --- |
//! | `add` | `{a: integer, b: integer}` | the sum as text |
//! | `echo` | `{text: string}` | the text |
//! | `fail` | `{message: string}` | `isError: true` with the message |
//! | `sleep` | `{ms: integer}` | `slept N ms` after sleeping |
//! | `big` | `{bytes: integer}` | that many `x` characters |
//! | `image` | `{}` | a tiny PNG (image content) and a text line |
//!
//! Arguments that do not fit the schema (wrong type, missing field) are answered
//! with `isError: true` and rmcp's deserialization message; `big` over its limit
//! and unknown tools get a JSON-RPC error.
//!
//! [`McpTestServer::start`] serves streamable HTTP on `127.0.0.1:0` (see
//! [`McpTestServer::url`]); [`serve_stdio`] serves stdin/stdout, which the
//! `hybrid-mcp-test-server` binary does.

use std::net::SocketAddr;
use std::time::Duration;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock, Implementation, ServerCapabilities, ServerConfig};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, ServerHandler, ServiceExt, schemars, tool, tool_handler, tool_router};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

/// A 1×1 transparent PNG, base64.
const TINY_PNG: &str =
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII=";

/// Largest `big` answer (1 MiB).
const MAX_BIG: usize = 1024 * 1024;

#[derive(Debug, Deserialize, schemars::JsonSchema)]
struct AddArgs {
    /// First addend.
    a: i64,
    /// Second addend.
    b: i64,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
struct EchoArgs {
    /// Text to echo back.
    text: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
struct FailArgs {
    /// Error message to return.
    message: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
struct SleepArgs {
    /// Milliseconds to sleep.
    ms: u64,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
struct BigArgs {
    /// Number of bytes to return (at most 1 MiB).
    bytes: usize,
}

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
struct NoArgs {}

/// The tool handler behind [`McpTestServer`] and [`serve_stdio`].
#[derive(Debug, Clone)]
pub struct TestTools {
    tool_router: ToolRouter<Self>,
}

impl Default for TestTools {
    fn default() -> Self {
        Self::new()
    }
}

#[tool_router]
impl TestTools {
    /// A handler with all test tools.
    pub fn new() -> Self {
        Self {
            tool_router: Self::tool_router(),
        }
    }

    #[tool(description = "Adds two integers and returns the sum.")]
    fn add(&self, Parameters(AddArgs { a, b }): Parameters<AddArgs>) -> String {
        a.wrapping_add(b).to_string()
    }

    #[tool(description = "Returns the given text unchanged.")]
    fn echo(&self, Parameters(EchoArgs { text }): Parameters<EchoArgs>) -> String {
        text
    }

    #[tool(description = "Always fails: returns the message as a tool error (isError).")]
    fn fail(&self, Parameters(FailArgs { message }): Parameters<FailArgs>) -> CallToolResult {
        CallToolResult::error(vec![ContentBlock::text(message)])
    }

    #[tool(description = "Sleeps for the given number of milliseconds.")]
    async fn sleep(&self, Parameters(SleepArgs { ms }): Parameters<SleepArgs>) -> String {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        format!("slept {ms} ms")
    }

    #[tool(description = "Returns the given number of `x` characters (at most 1 MiB).")]
    fn big(&self, Parameters(BigArgs { bytes }): Parameters<BigArgs>) -> Result<String, ErrorData> {
        if bytes > MAX_BIG {
            return Err(ErrorData::invalid_params(
                format!("bytes must be at most {MAX_BIG}"),
                None,
            ));
        }
        Ok("x".repeat(bytes))
    }

    #[tool(description = "Returns a tiny PNG image and a caption.")]
    fn image(&self, Parameters(NoArgs {}): Parameters<NoArgs>) -> CallToolResult {
        CallToolResult::success(vec![
            ContentBlock::text("a tiny image"),
            ContentBlock::image(TINY_PNG, "image/png"),
        ])
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for TestTools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new(
                "hybrid-mcp-test-server",
                env!("CARGO_PKG_VERSION"),
            ))
            .with_instructions("Test tools: add, echo, fail, sleep, big, image.")
    }
}

/// Serves [`TestTools`] over stdin/stdout until the client closes stdin.
pub async fn serve_stdio() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let service = TestTools::new()
        .serve(rmcp::transport::stdio())
        .await
        .map_err(|e| format!("MCP stdio server failed to initialize: {e}"))?;
    service.waiting().await?;
    Ok(())
}

/// The test MCP server over streamable HTTP on `127.0.0.1:0`; stops when dropped.
#[derive(Debug)]
pub struct McpTestServer {
    addr: SocketAddr,
    cancel: CancellationToken,
}

impl McpTestServer {
    /// Binds `127.0.0.1:0` and serves MCP at `/mcp`.
    pub async fn start() -> std::io::Result<Self> {
        let cancel = CancellationToken::new();
        let service: StreamableHttpService<TestTools, LocalSessionManager> =
            StreamableHttpService::new(
                || Ok(TestTools::new()),
                Default::default(),
                StreamableHttpServerConfig::default()
                    .with_sse_keep_alive(None)
                    .with_cancellation_token(cancel.child_token()),
            );
        let router = axum::Router::new().nest_service("/mcp", service);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shutdown = cancel.clone();
        tokio::spawn(async move {
            let result = axum::serve(listener, router)
                .with_graceful_shutdown(async move { shutdown.cancelled_owned().await })
                .await;
            if let Err(e) = result {
                tracing::warn!(error = %e, "MCP test server stopped");
            }
        });
        Ok(Self { addr, cancel })
    }

    /// The MCP endpoint, `http://127.0.0.1:PORT/mcp`.
    pub fn url(&self) -> String {
        format!("http://{}/mcp", self.addr)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops serving (also done on drop).
    pub fn shutdown(&self) {
        self.cancel.cancel();
    }
}

impl Drop for McpTestServer {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}
