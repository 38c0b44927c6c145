//! Environment scrubbing. Its own test binary: it sets variables in this process, which is
//! only sound while no other thread runs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use hybrid_tools::{BashTool, Tool, ToolContext};
use serde_json::json;

#[test]
fn provider_keys_never_reach_commands() {
    if let Err(why) = hybrid_tools::sandbox::support().filesystem {
        eprintln!("SKIP: kernel lacks landlock write confinement, bash fails closed: {why}");
        return;
    }
    #[allow(unsafe_code)]
    // SAFETY: this test binary has this single test and it sets the variables before
    // starting the runtime, so no other thread reads the environment concurrently.
    unsafe {
        std::env::set_var("OPENAI_API_KEY", "sk-test-openai");
        std::env::set_var("ANTHROPIC_API_KEY", "sk-ant-test");
        std::env::set_var("HYBRID_DB_PASSWORD", "hunter2");
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let ws = tempfile::tempdir().unwrap();
    let mut ctx = ToolContext::new(ws.path());
    ctx.env = vec![
        ("GREETING".to_owned(), "hello".to_owned()),
        ("GITHUB_TOKEN".to_owned(), "ghp_secret".to_owned()),
        ("MY_CLIENT_SECRET".to_owned(), "s3cr3t".to_owned()),
    ];
    let out = runtime.block_on(BashTool.call(json!({ "command": "env" }), &ctx));
    assert!(!out.is_error, "{out:?}");
    for secret in [
        "sk-test-openai",
        "sk-ant-test",
        "hunter2",
        "ghp_secret",
        "s3cr3t",
    ] {
        assert!(
            !out.content.contains(secret),
            "{secret} leaked:\n{}",
            out.content
        );
    }
    let canon = std::fs::canonicalize(ws.path()).unwrap();
    let vars: Vec<&str> = out.content.lines().collect();
    assert!(vars.contains(&"GREETING=hello"), "{vars:?}");
    assert!(vars.contains(&"TERM=dumb"), "{vars:?}");
    assert!(
        vars.contains(&format!("HOME={}", canon.display()).as_str()),
        "{vars:?}"
    );
    assert!(vars.iter().any(|v| v.starts_with("PATH=")), "{vars:?}");
    assert!(vars.iter().any(|v| v.starts_with("TMPDIR=")), "{vars:?}");
}
