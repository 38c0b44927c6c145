//! One MCP server tool as a [`Tool`].

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use rmcp::ServiceError;
use rmcp::model::CallToolRequestParams;
use serde_json::Value;

use super::client::{Connection, McpToolInfo, describe_service_error};
use super::fmt_duration;
use super::render::render_result;
use crate::{Tool, ToolContext, ToolOutput, ToolSpec, cap_text};

/// A tool of an MCP server, named `mcp:<server>:<tool>`. Holds the server's connection open.
#[derive(Debug, Clone)]
pub struct McpTool {
    conn: Arc<Connection>,
    info: McpToolInfo,
}

impl McpTool {
    pub(crate) fn new(conn: Arc<Connection>, info: McpToolInfo) -> Self {
        Self { conn, info }
    }

    /// What the server listed for this tool.
    pub fn info(&self) -> &McpToolInfo {
        &self.info
    }

    /// The server's name.
    pub fn server_name(&self) -> &str {
        &self.conn.server
    }

    fn error(&self, message: String, started: Instant) -> ToolOutput {
        self.meta(ToolOutput::error(message), started)
    }

    fn meta(&self, output: ToolOutput, started: Instant) -> ToolOutput {
        output
            .with_meta("mcp_server", self.conn.server.clone())
            .with_meta("mcp_tool", self.info.name.clone())
            .with_meta(
                "duration_ms",
                u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            )
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[async_trait]
impl Tool for McpTool {
    fn spec(&self) -> ToolSpec {
        let mut parameters = self.info.input_schema.clone();
        match &mut parameters {
            Value::Object(map) => {
                map.entry("type")
                    .or_insert_with(|| Value::String("object".into()));
            }
            other => *other = serde_json::json!({"type": "object"}),
        }
        let description = if self.info.description.trim().is_empty() {
            format!(
                "Tool `{}` of the MCP server `{}`.",
                self.info.name, self.conn.server
            )
        } else {
            self.info.description.clone()
        };
        ToolSpec {
            name: self.info.qualified_name.clone(),
            description,
            parameters,
        }
    }

    async fn call(&self, args: Value, ctx: &ToolContext) -> ToolOutput {
        let started = Instant::now();
        let label = &self.info.qualified_name;
        let mut params = CallToolRequestParams::new(self.info.name.clone());
        match args {
            Value::Object(map) => params = params.with_arguments(map),
            Value::Null => {}
            other => {
                return self.error(
                    format!(
                        "invalid arguments for `{label}`: expected a JSON object, got {}",
                        json_kind(&other)
                    ),
                    started,
                );
            }
        }
        let timeout = ctx.limits.timeout;
        let answer = tokio::select! {
            answer = tokio::time::timeout(timeout, self.conn.service.call_tool(params)) => answer,
            () = ctx.cancel.cancelled() => {
                return self.error(format!("`{label}` was cancelled"), started);
            }
        };
        let result = match answer {
            Err(_) => {
                return self
                    .error(
                        format!(
                            "`{label}` timed out: MCP server `{}` did not answer within {}",
                            self.conn.server,
                            fmt_duration(timeout)
                        ),
                        started,
                    )
                    .with_meta("timed_out", true);
            }
            Ok(Err(e)) => {
                let mut message = format!(
                    "`{label}` failed: MCP server `{}`: {}",
                    self.conn.server,
                    describe_service_error(&e)
                );
                if matches!(e, ServiceError::TransportClosed) {
                    let tail = self.conn.stderr_tail();
                    if !tail.is_empty() {
                        message.push_str(&format!("; stderr: {tail}"));
                    }
                }
                return self.error(message, started);
            }
            Ok(Ok(result)) => result,
        };
        let is_error = result.is_error == Some(true);
        let value = match serde_json::to_value(&result) {
            Ok(v) => v,
            Err(e) => {
                return self.error(
                    format!("`{label}`: cannot read the server's result: {e}"),
                    started,
                );
            }
        };
        let mut text = render_result(&value);
        if text.is_empty() {
            text = if is_error {
                format!("`{label}` reported an error without a message")
            } else {
                "(no output)".to_owned()
            };
        }
        let (content, truncated) = cap_text(&text, text.len() as u64, ctx.limits.max_output_bytes);
        let output = ToolOutput {
            content,
            is_error,
            truncated,
            metadata: Value::Object(serde_json::Map::new()),
        };
        self.meta(output, started)
            .with_meta("bytes", text.len() as u64)
    }
}
