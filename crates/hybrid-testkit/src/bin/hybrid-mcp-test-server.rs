//! The testkit's MCP server over stdio (see `hybrid_testkit::mcp_server`).
//!
//! `--linger`: after the client closes stdin, keep running for 10 minutes (a misbehaving
//! server, to test that clients kill their stdio servers).

use std::process::ExitCode;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let linger = std::env::args().skip(1).any(|a| a == "--linger");
    let result = hybrid_testkit::mcp_server::serve_stdio().await;
    if linger {
        tokio::time::sleep(std::time::Duration::from_secs(600)).await;
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hybrid-mcp-test-server: {e}");
            ExitCode::FAILURE
        }
    }
}
