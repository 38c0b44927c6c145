//! HybridPlatform's tools.
//!
//! A [`Tool`] has a name, a JSON schema for its arguments (from schemars) and a `call` that
//! never fails: bad arguments, timeouts and I/O errors all come back as a [`ToolOutput`] with
//! `is_error = true` and a clear first line, so the agent loop can hand them to the model.
//!
//! Tools execute; they do not decide whether they may. The command policy, approvals and audit
//! live elsewhere (hybrid-guard, the agent loop); this crate only bounds *how* things run:
//!
//! * `bash` runs through the sandboxed process runner ([`sandbox`]): cwd = workspace, a scrubbed
//!   environment, stdin null, a time limit that kills the whole process group, an output cap
//!   applied while reading, and on Linux landlock (writes only to the workspace, the extra
//!   writable paths, a private per-call `TMPDIR` and a few `/dev` files) plus seccomp (no
//!   sockets other than Unix sockets unless the policy allows the network).
//! * The file tools (`read_file`, `write_file`, `edit_file`, `glob`, `grep`) resolve every path
//!   inside the workspace or one of `SandboxPolicy::extra_writable`, after following symlinks;
//!   anything else — `..` escapes, absolute paths elsewhere, symlinks that point out — is refused,
//!   for reading as well as writing (least privilege: a model that needs `/var/log` asks `bash`,
//!   which the command policy judges).
//! * `http_request` exists only when enabled in [`ToolsConfig`]; `notify` only when a webhook is
//!   configured.

mod args;
pub mod mcp;
mod output;
mod paths;
pub mod sandbox;
mod tools;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

pub use mcp::{McpClient, McpError, McpServerSpec, McpTool, McpToolInfo, McpTransport};
pub use output::{cap_text, describe_bytes};
pub use tools::{
    BashTool, EditFileTool, GlobTool, GrepTool, HttpRequestTool, NotifyTool, ReadFileTool,
    WriteFileTool,
};

/// What a model sees of a tool: its name, what it does, and the JSON schema of its arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    /// Unique name, e.g. `bash`.
    pub name: String,
    /// One paragraph for the model.
    pub description: String,
    /// JSON Schema (from schemars) of the arguments object.
    pub parameters: serde_json::Value,
}

/// Bounds on one tool call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Wall-clock limit for a command (bash) or a request (http).
    pub timeout: Duration,
    /// Cap on what a tool returns; output beyond it is cut with a trailer saying so.
    pub max_output_bytes: usize,
    /// Largest command `bash` accepts.
    pub max_command_bytes: usize,
    /// Largest file the file tools read or write, and largest file grep searches.
    pub max_file_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(120),
            max_output_bytes: 64 * 1024,
            max_command_bytes: 16 * 1024,
            max_file_bytes: 10 * 1024 * 1024,
        }
    }
}

/// What the sandbox lets a command do beyond the workspace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SandboxPolicy {
    /// Let commands open network sockets (default: no).
    pub allow_network: bool,
    /// Paths writable in addition to the workspace (also readable by the file tools).
    pub extra_writable: Vec<PathBuf>,
}

/// Everything a tool call runs with.
#[derive(Debug, Clone)]
pub struct ToolContext {
    /// The task's workspace: cwd of commands, root of relative paths.
    pub workspace: PathBuf,
    /// Limits for this call.
    pub limits: Limits,
    /// Sandbox policy for commands.
    pub sandbox: SandboxPolicy,
    /// Extra environment passed to commands (secret-looking names are dropped anyway).
    pub env: Vec<(String, String)>,
    /// Cancels the call (a running command's process group is killed).
    pub cancel: CancellationToken,
}

impl ToolContext {
    /// A context with default limits, no network and no extra env.
    pub fn new(workspace: impl Into<PathBuf>) -> Self {
        Self {
            workspace: workspace.into(),
            limits: Limits::default(),
            sandbox: SandboxPolicy::default(),
            env: Vec::new(),
            cancel: CancellationToken::new(),
        }
    }
}

/// What a tool call returns. Failures are outputs too (`is_error = true`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolOutput {
    /// Text for the model; for errors the first line says what went wrong.
    pub content: String,
    /// The call failed (bad arguments, timeout, I/O error, non-zero exit, binary output …).
    pub is_error: bool,
    /// Some output was cut to fit `max_output_bytes`.
    pub truncated: bool,
    /// Machine-readable details, e.g. `exit_code`, `duration_ms`, `bytes`.
    pub metadata: serde_json::Value,
}

impl ToolOutput {
    /// A successful output.
    pub fn ok(content: impl Into<String>) -> Self {
        Self {
            content: content.into(),
            is_error: false,
            truncated: false,
            metadata: serde_json::Value::Object(serde_json::Map::new()),
        }
    }

    /// An error output.
    pub fn error(content: impl Into<String>) -> Self {
        Self {
            is_error: true,
            ..Self::ok(content)
        }
    }

    /// Sets one metadata field.
    pub fn with_meta(mut self, key: &str, value: impl Into<serde_json::Value>) -> Self {
        if let serde_json::Value::Object(map) = &mut self.metadata {
            map.insert(key.to_owned(), value.into());
        }
        self
    }
}

/// A tool an agent can call.
#[async_trait]
pub trait Tool: Send + Sync {
    /// Name, description and argument schema.
    fn spec(&self) -> ToolSpec;
    /// Runs the tool. Never fails: every failure is an output with `is_error = true`.
    async fn call(&self, args: serde_json::Value, ctx: &ToolContext) -> ToolOutput;
}

/// Configuration of the built-in tools (the `[tools]` part of `hybrid.toml`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ToolsConfig {
    /// Register `http_request` (off by default).
    pub http_request: bool,
    /// Register `notify`, posting to this webhook.
    pub notify: Option<NotifyConfig>,
    /// Let commands (bash, runbook stages) open network sockets; off by
    /// default, so a command cannot reach the network unless this says so.
    pub allow_network: bool,
}

/// Where `notify` posts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    /// Webhook URL (http or https).
    pub webhook_url: String,
    /// Extra headers sent with each notification (e.g. an authorization header).
    #[serde(default)]
    pub headers: Vec<(String, String)>,
}

/// Tools by name, in registration order.
#[derive(Clone, Default)]
pub struct ToolRegistry {
    tools: IndexMap<String, Arc<dyn Tool>>,
}

impl std::fmt::Debug for ToolRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ToolRegistry")
            .field("tools", &self.tools.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl ToolRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// The built-in tools: bash, read_file, write_file, edit_file, glob, grep, and
    /// http_request / notify when `config` enables them.
    pub fn builtin(config: &ToolsConfig) -> Self {
        let mut registry = Self::new();
        registry.register(Arc::new(BashTool));
        registry.register(Arc::new(ReadFileTool));
        registry.register(Arc::new(WriteFileTool));
        registry.register(Arc::new(EditFileTool));
        registry.register(Arc::new(GlobTool));
        registry.register(Arc::new(GrepTool));
        if config.http_request {
            registry.register(Arc::new(HttpRequestTool::new()));
        }
        if let Some(notify) = &config.notify {
            registry.register(Arc::new(NotifyTool::new(notify.clone())));
        }
        registry
    }

    /// Adds (or replaces) a tool under its spec's name.
    pub fn register(&mut self, tool: Arc<dyn Tool>) {
        let name = tool.spec().name;
        self.tools.insert(name, tool);
    }

    /// Removes a tool; returns whether it was there.
    pub fn remove(&mut self, name: &str) -> bool {
        self.tools.shift_remove(name).is_some()
    }

    /// The tool with this name.
    pub fn get(&self, name: &str) -> Option<Arc<dyn Tool>> {
        self.tools.get(name).cloned()
    }

    /// Tool names, in registration order.
    pub fn names(&self) -> Vec<String> {
        self.tools.keys().cloned().collect()
    }

    /// Specs of all tools, in registration order.
    pub fn specs(&self) -> Vec<ToolSpec> {
        self.tools.values().map(|t| t.spec()).collect()
    }

    /// Number of tools.
    pub fn len(&self) -> usize {
        self.tools.len()
    }

    /// No tools.
    pub fn is_empty(&self) -> bool {
        self.tools.is_empty()
    }

    /// Calls a tool by name; an unknown name is an error output naming the known tools.
    pub async fn call(&self, name: &str, args: serde_json::Value, ctx: &ToolContext) -> ToolOutput {
        match self.tools.get(name) {
            Some(tool) => tool.call(args, ctx).await,
            None => ToolOutput::error(format!(
                "unknown tool `{name}`; available tools: {}",
                self.tools.keys().cloned().collect::<Vec<_>>().join(", ")
            )),
        }
    }
}
