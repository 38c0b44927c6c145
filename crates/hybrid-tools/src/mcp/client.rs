//! Connecting to an MCP server and keeping the connection.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::header::{HeaderName, HeaderValue};
use rmcp::model::{ClientCapabilities, ClientConfig, Implementation};
use rmcp::service::RunningService;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{RoleClient, ServiceError, ServiceExt};
use tokio::io::AsyncBufReadExt;

use super::tool::McpTool;
use super::{MCP_TOOL_PREFIX, McpError, McpServerSpec, McpTransport, fmt_duration, one_line};
use crate::Tool;

/// How much of a stdio server's stderr is kept for error messages.
const STDERR_TAIL_BYTES: usize = 2048;

/// Headers the streamable-HTTP transport sets itself.
const RESERVED_HEADERS: &[&str] = &["accept", "mcp-session-id", "last-event-id"];

/// One tool as the server lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct McpToolInfo {
    /// The server's name for it, e.g. `create_issue`.
    pub name: String,
    /// The name agents see: `mcp:<server>:<tool>`.
    pub qualified_name: String,
    /// The server's description (may be empty).
    pub description: String,
    /// The server's `inputSchema` (a JSON Schema object).
    pub input_schema: serde_json::Value,
}

/// The end of a stdio server's stderr.
#[derive(Debug, Default)]
struct StderrTail(String);

impl StderrTail {
    /// The last few non-empty lines of `tail`, one-lined, or "".
    fn summary(tail: &Mutex<Self>) -> String {
        let text = match tail.lock() {
            Ok(t) => t.0.clone(),
            Err(poisoned) => poisoned.into_inner().0.clone(),
        };
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        let last = &lines[lines.len().saturating_sub(3)..];
        one_line(&last.join(" | "), 400)
    }

    fn push_line(&mut self, line: &str) {
        self.0.push_str(line);
        self.0.push('\n');
        if self.0.len() > STDERR_TAIL_BYTES {
            let mut cut = self.0.len() - STDERR_TAIL_BYTES;
            while !self.0.is_char_boundary(cut) {
                cut += 1;
            }
            self.0.drain(..cut);
        }
    }
}

/// The shared connection behind a client and its tools.
pub(crate) struct Connection {
    pub(crate) server: String,
    pub(crate) service: RunningService<RoleClient, ClientConfig>,
    /// The stdio server's process id (= its process group id).
    pid: Option<u32>,
    stderr: Arc<Mutex<StderrTail>>,
    request_timeout: Duration,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("server", &self.server)
            .field("pid", &self.pid)
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// The last lines of the server's stderr, one-lined, or "".
    pub(crate) fn stderr_tail(&self) -> String {
        StderrTail::summary(&self.stderr)
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        // rmcp kills the direct child when the service stops; the group kill also reaches
        // whatever the server started (e.g. `npx` → `node`). The child has not been reaped
        // yet (the service task still owns it), so the group id is still ours.
        #[cfg(unix)]
        if let Some(pid) = self.pid.and_then(|p| i32::try_from(p).ok())
            && let Some(pgid) = rustix::process::Pid::from_raw(pid)
        {
            let _ = rustix::process::kill_process_group(pgid, rustix::process::Signal::KILL);
        }
    }
}

/// A connected MCP server. Cheap to clone; the connection (and a stdio server's process)
/// lives until the client and every [`McpTool`] made from it are dropped.
#[derive(Debug, Clone)]
pub struct McpClient {
    conn: Arc<Connection>,
    tools: Vec<McpToolInfo>,
}

impl McpClient {
    /// Starts (stdio) or reaches (HTTP) the server, runs the MCP handshake and fetches its tool
    /// list, each step within `timeout`. `timeout` also bounds later `tools/list` requests.
    pub async fn connect(spec: McpServerSpec, timeout: Duration) -> Result<Self, McpError> {
        let server = spec.name.clone();
        validate_name(&server)?;
        let stderr = Arc::new(Mutex::new(StderrTail::default()));
        let (service, pid) = match &spec.transport {
            McpTransport::Stdio { command, args, env } => {
                let (transport, pid) = spawn_stdio(&server, command, args, env, &stderr)?;
                let service = handshake(&server, transport, timeout, &stderr).await?;
                (service, pid)
            }
            McpTransport::Http { url, headers } => {
                let config = http_config(&server, url, headers)?;
                let transport = StreamableHttpClientTransport::from_config(config);
                (handshake(&server, transport, timeout, &stderr).await?, None)
            }
        };
        let conn = Arc::new(Connection {
            server,
            service,
            pid,
            stderr,
            request_timeout: timeout,
        });
        let tools = fetch_tools(&conn).await?;
        Ok(Self { conn, tools })
    }

    /// The server's name (from the spec).
    pub fn server_name(&self) -> &str {
        &self.conn.server
    }

    /// The stdio server's process id (`None` for HTTP servers).
    pub fn pid(&self) -> Option<u32> {
        self.conn.pid
    }

    /// What the server said about itself in the handshake (`name version`), if anything.
    pub fn server_info(&self) -> Option<String> {
        self.conn
            .service
            .peer_info()
            .and_then(|info| info.server_info.clone())
            .map(|i| format!("{} {}", i.name, i.version))
    }

    /// The server's tools, as listed at connect time (or the last [`refresh_tools`]).
    ///
    /// [`refresh_tools`]: Self::refresh_tools
    pub fn list_tools(&self) -> Vec<McpToolInfo> {
        self.tools.clone()
    }

    /// Fetches the tool list again (after the server announced a change).
    pub async fn refresh_tools(&mut self) -> Result<Vec<McpToolInfo>, McpError> {
        self.tools = fetch_tools(&self.conn).await?;
        Ok(self.tools.clone())
    }

    /// Every tool of the server, as [`Tool`]s named `mcp:<server>:<tool>`.
    pub fn tools(&self) -> Vec<Arc<dyn Tool>> {
        self.tools
            .iter()
            .map(|info| Arc::new(McpTool::new(self.conn.clone(), info.clone())) as Arc<dyn Tool>)
            .collect()
    }

    /// The tools whose `mcp:<server>:<tool>` name matches one of `patterns` (exact names or
    /// globs like `mcp:github:*`, see [`tool_pattern_matches`](super::tool_pattern_matches)).
    pub fn tools_matching<S: AsRef<str>>(&self, patterns: &[S]) -> Vec<Arc<dyn Tool>> {
        self.tools
            .iter()
            .filter(|info| super::any_tool_pattern_matches(patterns, &info.qualified_name))
            .map(|info| Arc::new(McpTool::new(self.conn.clone(), info.clone())) as Arc<dyn Tool>)
            .collect()
    }

    /// The tool with this server-side name, or `mcp:<server>:<tool>` name.
    pub fn tool(&self, name: &str) -> Option<McpTool> {
        self.tools
            .iter()
            .find(|info| info.name == name || info.qualified_name == name)
            .map(|info| McpTool::new(self.conn.clone(), info.clone()))
    }
}

fn validate_name(server: &str) -> Result<(), McpError> {
    if server.is_empty() || server.contains(':') || server.chars().any(char::is_whitespace) {
        return Err(McpError::InvalidSpec {
            server: server.to_owned(),
            message: "the server name must be non-empty, without `:` or whitespace".into(),
        });
    }
    Ok(())
}

/// The environment a stdio server starts with.
fn server_env(env: &[(String, String)]) -> Vec<(String, String)> {
    let mut out = vec![
        (
            "PATH".to_owned(),
            std::env::var("PATH")
                .ok()
                .filter(|p| !p.is_empty())
                .unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".to_owned()),
        ),
        (
            "LANG".to_owned(),
            std::env::var("LANG").unwrap_or_else(|_| "C.UTF-8".to_owned()),
        ),
    ];
    if let Ok(home) = std::env::var("HOME") {
        out.push(("HOME".to_owned(), home));
    }
    for (name, value) in env {
        out.retain(|(n, _)| n != name);
        out.push((name.clone(), value.clone()));
    }
    out
}

fn spawn_stdio(
    server: &str,
    command: &str,
    args: &[String],
    env: &[(String, String)],
    stderr_tail: &Arc<Mutex<StderrTail>>,
) -> Result<(TokioChildProcess, Option<u32>), McpError> {
    if command.trim().is_empty() {
        return Err(McpError::InvalidSpec {
            server: server.to_owned(),
            message: "`command` is empty".into(),
        });
    }
    if let Some((name, _)) = env
        .iter()
        .find(|(n, v)| n.is_empty() || n.contains('=') || n.contains('\0') || v.contains('\0'))
    {
        return Err(McpError::InvalidSpec {
            server: server.to_owned(),
            message: format!("bad environment variable name `{name}`"),
        });
    }
    let mut cmd = tokio::process::Command::new(command);
    cmd.args(args).env_clear().envs(server_env(env));
    cmd.kill_on_drop(true);
    #[cfg(unix)]
    cmd.process_group(0);
    let (transport, stderr) = TokioChildProcess::builder(cmd)
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| McpError::Spawn {
            server: server.to_owned(),
            command: command.to_owned(),
            source,
        })?;
    let pid = transport.id();
    if let Some(stderr) = stderr {
        let tail = stderr_tail.clone();
        let server = server.to_owned();
        tokio::spawn(async move {
            let mut lines = tokio::io::BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                tracing::debug!(server = %server, "MCP server stderr: {line}");
                match tail.lock() {
                    Ok(mut t) => t.push_line(&line),
                    Err(poisoned) => poisoned.into_inner().push_line(&line),
                }
            }
        });
    }
    Ok((transport, pid))
}

/// rmcp's reqwest comes without a TLS crypto provider: use ring (as the workspace's reqwest
/// does) unless the process already chose one.
fn ensure_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Losing a race to another installer is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

fn http_config(
    server: &str,
    url: &str,
    headers: &[(String, String)],
) -> Result<StreamableHttpClientTransportConfig, McpError> {
    let invalid = |message: String| McpError::InvalidSpec {
        server: server.to_owned(),
        message,
    };
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(invalid(format!("`url` must be http(s)://…, got `{url}`")));
    }
    let mut custom = HashMap::new();
    for (name, value) in headers {
        let header = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| invalid(format!("bad header name `{name}`")))?;
        if RESERVED_HEADERS.contains(&header.as_str()) {
            return Err(invalid(format!(
                "header `{name}` is set by the MCP transport itself"
            )));
        }
        let mut value = HeaderValue::from_str(value)
            .map_err(|_| invalid(format!("bad value for header `{name}`")))?;
        value.set_sensitive(true);
        custom.insert(header, value);
    }
    ensure_crypto_provider();
    Ok(StreamableHttpClientTransportConfig::with_uri(url).custom_headers(custom))
}

async fn handshake<T, E, A>(
    server: &str,
    transport: T,
    timeout: Duration,
    stderr: &Arc<Mutex<StderrTail>>,
) -> Result<RunningService<RoleClient, ClientConfig>, McpError>
where
    T: rmcp::transport::IntoTransport<RoleClient, E, A>,
    E: std::error::Error + Send + Sync + 'static,
{
    let config = ClientConfig::new(
        ClientCapabilities::default(),
        Implementation::new("hybridplatform", env!("CARGO_PKG_VERSION")),
    );
    let stderr_note = || match StderrTail::summary(stderr) {
        tail if tail.is_empty() => String::new(),
        tail => format!("; stderr: {tail}"),
    };
    match tokio::time::timeout(timeout, config.serve(transport)).await {
        Ok(Ok(service)) => Ok(service),
        Ok(Err(e)) => {
            // Give the stderr reader a moment to catch the server's last words.
            tokio::time::sleep(Duration::from_millis(50)).await;
            Err(McpError::Connect {
                server: server.to_owned(),
                message: format!("{}{}", one_line(&e.to_string(), 300), stderr_note()),
            })
        }
        Err(_) => Err(McpError::Timeout {
            server: server.to_owned(),
            during: "initialize",
            after: timeout,
        }),
    }
}

async fn fetch_tools(conn: &Connection) -> Result<Vec<McpToolInfo>, McpError> {
    let listed = tokio::time::timeout(conn.request_timeout, conn.service.list_all_tools()).await;
    let tools = match listed {
        Ok(Ok(tools)) => tools,
        Ok(Err(e)) => {
            return Err(McpError::Request {
                server: conn.server.clone(),
                during: "tools/list",
                message: describe_service_error(&e),
            });
        }
        Err(_) => {
            return Err(McpError::Timeout {
                server: conn.server.clone(),
                during: "tools/list",
                after: conn.request_timeout,
            });
        }
    };
    Ok(tools
        .into_iter()
        .map(|tool| {
            let name = tool.name.to_string();
            McpToolInfo {
                qualified_name: format!("{MCP_TOOL_PREFIX}{}:{name}", conn.server),
                description: tool.description.map(|d| d.to_string()).unwrap_or_default(),
                input_schema: serde_json::Value::Object((*tool.input_schema).clone()),
                name,
            }
        })
        .collect())
}

/// Whether an error's causes include a broken pipe or a reset connection.
fn is_broken_pipe(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cause {
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && matches!(
                io.kind(),
                std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
            )
        {
            return true;
        }
        cause = err.source();
    }
    false
}

/// One line for an rmcp request error.
pub(crate) fn describe_service_error(e: &ServiceError) -> String {
    match e {
        ServiceError::McpError(data) => {
            format!(
                "{} (JSON-RPC error {})",
                one_line(&data.message, 500),
                data.code.0
            )
        }
        ServiceError::TransportClosed => "the connection is closed (server gone?)".to_owned(),
        // Writing to a server that died before the client noticed: the same thing.
        ServiceError::TransportSend(send) if is_broken_pipe(send) => {
            "the connection is closed (server gone?)".to_owned()
        }
        ServiceError::Timeout { timeout } => format!("no answer within {}", fmt_duration(*timeout)),
        other => one_line(&other.to_string(), 500),
    }
}

#[cfg(test)]
mod tests {
    use super::is_broken_pipe;

    #[derive(Debug, thiserror::Error)]
    #[error("send failed")]
    struct Wrapped(#[source] std::io::Error);

    #[test]
    fn a_broken_pipe_anywhere_in_the_causes_counts() {
        let pipe = Wrapped(std::io::Error::from(std::io::ErrorKind::BrokenPipe));
        assert!(is_broken_pipe(&pipe));
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert!(is_broken_pipe(&reset));
        let other = Wrapped(std::io::Error::from(std::io::ErrorKind::PermissionDenied));
        assert!(!is_broken_pipe(&other));
    }
}
