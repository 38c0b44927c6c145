//! `[mcp.servers.NAME]` connected: every server's tools, named
//! `mcp:<server>:<tool>`, ready to be listed in a platform's `tools`
//! (`"mcp:github:*"`). They pass the same gate, approvals and audit as the
//! built-in tools.

use std::sync::Arc;
use std::time::Duration;

use hybrid_tools::{McpClient, McpError, McpServerSpec, Tool};

use crate::HybridConfig;

/// How long connecting to one server (start, handshake, tool list) may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// The spec of each configured server.
pub fn server_specs(config: &HybridConfig) -> Vec<McpServerSpec> {
    let Some(mcp) = &config.mcp else {
        return Vec::new();
    };
    mcp.servers
        .iter()
        .filter_map(|(name, s)| {
            let spec = match (&s.command, &s.url) {
                (Some(command), _) => McpServerSpec::stdio(name, command, s.args.iter()),
                (None, Some(url)) => McpServerSpec::http(name, url),
                // Rejected when the file is loaded.
                (None, None) => return None,
            };
            Some(s.env.iter().fold(spec, |spec, (k, v)| spec.with_env(k, v)))
        })
        .collect()
}

/// Connects every configured server that some platform's `tools` list names,
/// and returns their tools (the connections live as long as the tools).
pub async fn connect_used_servers(config: &HybridConfig) -> Result<Vec<Arc<dyn Tool>>, McpError> {
    let wanted: Vec<String> = config
        .effective_platforms()
        .values()
        .filter_map(|p| p.tools.as_ref())
        .flat_map(|t| t.get_ref().clone())
        .filter(|t| t.starts_with("mcp:"))
        .collect();
    let mut tools = Vec::new();
    for spec in server_specs(config) {
        let prefix = format!("mcp:{}:", spec.name);
        if !wanted.iter().any(|w| w.starts_with(&prefix)) {
            continue;
        }
        let client = McpClient::connect(spec, CONNECT_TIMEOUT).await?;
        tools.extend(client.tools());
    }
    Ok(tools)
}
