//! Environment scrubbing. The test needs provider keys in the environment of the process
//! that runs `bash`; setting variables is only sound while no other thread runs, so the test
//! re-runs itself in a child process that starts with them ([`run_in_child`]) and does its
//! checks there. Nothing here calls `std::env::set_var`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use hybrid_tools::{BashTool, Tool, ToolContext};
use serde_json::json;

use crate::common::{is_child, run_in_child};

#[test]
fn provider_keys_never_reach_commands() {
    if let Err(why) = hybrid_tools::sandbox::support().filesystem {
        eprintln!("SKIP: kernel lacks landlock write confinement, bash fails closed: {why}");
        return;
    }
    const TEST: &str = "provider_keys_never_reach_commands";
    const KEYS: [(&str, &str); 3] = [
        ("OPENAI_API_KEY", "sk-test-openai"),
        ("ANTHROPIC_API_KEY", "sk-ant-test"),
        ("HYBRID_DB_PASSWORD", "hunter2"),
    ];
    if !is_child(module_path!(), TEST) {
        run_in_child(module_path!(), TEST, &KEYS);
        return;
    }
    // The child: this process started with the keys in its environment.
    for (name, value) in KEYS {
        assert_eq!(std::env::var(name).as_deref(), Ok(value), "{name}");
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
