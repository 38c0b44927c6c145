//! MCP (Model Context Protocol) servers as tools, via rmcp.
//!
//! A server is described by an [`McpServerSpec`]: a name and a transport — a program started
//! over stdio ([`McpTransport::Stdio`]) or a streamable-HTTP endpoint ([`McpTransport::Http`]).
//! [`McpClient::connect`] starts or reaches it, runs the MCP handshake and fetches its tool
//! list; [`McpClient::tools`] wraps each of its tools as an [`McpTool`] named
//! `mcp:<server>:<tool>`, which implements [`Tool`](crate::Tool) like the built-in tools, so
//! the same command policy, approvals and audit apply to it in the agent loop.
//!
//! * A call goes to the server's `tools/call`; text content is joined with newlines, other
//!   content (images, audio, resources, links) is described in one line each, and the result
//!   is capped at `ctx.limits.max_output_bytes`. A result with `isError: true`, a JSON-RPC
//!   error, a closed transport, `ctx.limits.timeout` passing or `ctx.cancel` firing all give an
//!   output with `is_error = true` whose first line names the server and tool.
//! * A stdio server runs with a scrubbed environment — `PATH`, `HOME`, `LANG` of this process
//!   plus the spec's `env` (which is how a server gets its token) — in its own process group,
//!   with stderr captured (its last lines appear in connection errors). When the client and
//!   every tool made from it are dropped, the whole process group is killed.
//! * Tool selection by pattern, as configs list them (`tools = ["bash", "mcp:github:*"]`):
//!   [`tool_pattern_matches`], [`McpClient::tools_matching`].

mod client;
mod pattern;
mod render;
mod tool;

use std::time::Duration;

pub use client::{McpClient, McpToolInfo};
pub use pattern::{any_tool_pattern_matches, tool_pattern_matches};
pub use tool::McpTool;

/// Prefix of every MCP tool name: `mcp:<server>:<tool>`.
pub const MCP_TOOL_PREFIX: &str = "mcp:";

/// One configured MCP server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct McpServerSpec {
    /// The server's name in config (`[mcp.servers.NAME]`); part of its tools' names, so it
    /// must not be empty or contain `:` or whitespace.
    pub name: String,
    /// How to reach it.
    pub transport: McpTransport,
}

/// How an MCP server is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum McpTransport {
    /// A program started by the client, speaking MCP over its stdin/stdout.
    Stdio {
        /// Program (looked up in `PATH`).
        command: String,
        /// Its arguments.
        args: Vec<String>,
        /// Environment added to the scrubbed one (`PATH`, `HOME`, `LANG`).
        env: Vec<(String, String)>,
    },
    /// A streamable-HTTP endpoint.
    Http {
        /// Endpoint URL (http or https), e.g. `https://example.com/mcp`.
        url: String,
        /// Headers sent with every request (e.g. `Authorization: Bearer …`).
        headers: Vec<(String, String)>,
    },
}

impl McpServerSpec {
    /// A stdio server.
    pub fn stdio(
        name: impl Into<String>,
        command: impl Into<String>,
        args: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        Self {
            name: name.into(),
            transport: McpTransport::Stdio {
                command: command.into(),
                args: args.into_iter().map(Into::into).collect(),
                env: Vec::new(),
            },
        }
    }

    /// A streamable-HTTP server.
    pub fn http(name: impl Into<String>, url: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            transport: McpTransport::Http {
                url: url.into(),
                headers: Vec::new(),
            },
        }
    }

    /// Adds an environment variable (stdio) or a header (HTTP).
    pub fn with_env(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        match &mut self.transport {
            McpTransport::Stdio { env, .. } => env.push((name.into(), value.into())),
            McpTransport::Http { headers, .. } => headers.push((name.into(), value.into())),
        }
        self
    }
}

/// Why an MCP server could not be used. Every message is one line naming the server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum McpError {
    /// The spec cannot work (bad name, empty command, bad URL or header).
    #[error("MCP server `{server}`: invalid configuration: {message}")]
    InvalidSpec {
        /// Server name.
        server: String,
        /// What is wrong.
        message: String,
    },
    /// The stdio server's program could not be started.
    #[error("MCP server `{server}`: cannot start `{command}`: {source}")]
    Spawn {
        /// Server name.
        server: String,
        /// The program.
        command: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The MCP handshake failed.
    #[error("MCP server `{server}`: connection failed: {message}")]
    Connect {
        /// Server name.
        server: String,
        /// What happened (and, for stdio, the end of the server's stderr).
        message: String,
    },
    /// No answer in time.
    #[error("MCP server `{server}`: no answer to {during} within {}", fmt_duration(*.after))]
    Timeout {
        /// Server name.
        server: String,
        /// What was waited for (`initialize`, `tools/list`).
        during: &'static str,
        /// The limit.
        after: Duration,
    },
    /// A request after the handshake failed.
    #[error("MCP server `{server}`: {during} failed: {message}")]
    Request {
        /// Server name.
        server: String,
        /// The request (`tools/list`).
        during: &'static str,
        /// What happened.
        message: String,
    },
}

impl McpError {
    /// The server this error is about.
    pub fn server(&self) -> &str {
        match self {
            Self::InvalidSpec { server, .. }
            | Self::Spawn { server, .. }
            | Self::Connect { server, .. }
            | Self::Timeout { server, .. }
            | Self::Request { server, .. } => server,
        }
    }
}

/// `1.5s`, `200ms`.
pub(crate) fn fmt_duration(d: Duration) -> String {
    if d.as_millis() < 1000 {
        format!("{}ms", d.as_millis())
    } else if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

/// Collapses a message to one line (newlines and runs of whitespace become one space) of at
/// most `max` bytes.
pub(crate) fn one_line(text: &str, max: usize) -> String {
    let mut out = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if out.len() > max {
        let mut end = max;
        while end > 0 && !out.is_char_boundary(end) {
            end -= 1;
        }
        out.truncate(end);
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_one_line_and_name_the_server() {
        let e = McpError::Timeout {
            server: "gh".into(),
            during: "initialize",
            after: Duration::from_millis(1500),
        };
        assert_eq!(
            e.to_string(),
            "MCP server `gh`: no answer to initialize within 1.5s"
        );
        assert_eq!(e.server(), "gh");
        assert_eq!(one_line("a\n  b\tc\n", 100), "a b c");
        assert_eq!(one_line("abcdef", 3), "abc…");
    }

    #[test]
    fn with_env_goes_to_env_or_headers() {
        let s = McpServerSpec::stdio("a", "prog", ["x"]).with_env("K", "V");
        assert_eq!(
            s.transport,
            McpTransport::Stdio {
                command: "prog".into(),
                args: vec!["x".into()],
                env: vec![("K".into(), "V".into())]
            }
        );
        let h = McpServerSpec::http("b", "http://h/mcp").with_env("Authorization", "Bearer t");
        assert!(
            matches!(h.transport, McpTransport::Http { ref headers, .. } if headers.len() == 1)
        );
    }
}
