//! Runs each example's logic against the testkit's mock server.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../custom_platform.rs"]
mod custom_platform;

#[path = "../custom_agent.rs"]
mod custom_agent;

#[path = "../quickstart.rs"]
mod quickstart;

#[path = "../streaming.rs"]
mod streaming;

#[path = "../custom_guardrail.rs"]
mod custom_guardrail;

use hybrid_core::TaskStatus;
use hybrid_platform::{HybridConfig, HybridPlatform};
use hybrid_testkit::{MockLlmServer, Turn};

/// Set in the child process that runs the quickstart's `main` with the environment the
/// parent test gives it (a process of its own: the quickstart reads the real environment).
const QUICKSTART_CHILD: &str = "HYBRID_EXAMPLES_QUICKSTART_CHILD";

#[test]
fn quickstart_child() {
    if std::env::var_os(QUICKSTART_CHILD).is_none() {
        return;
    }
    quickstart::main().unwrap();
}

#[tokio::test]
async fn the_quickstart_runs_from_the_environment_to_a_result() {
    let mock = MockLlmServer::start().await.unwrap();
    mock.enqueue(Turn::text("Qubits hold both states at once.").with_usage(20, 8));
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("quickstart.db");
    // Async: the mock server answers from this test's runtime while the child runs.
    let out = tokio::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "quickstart_child",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(QUICKSTART_CHILD, "1")
        .env("OPENAI_API_KEY", "sk-quickstart-test-key")
        .env("OPENAI_BASE_URL", mock.openai_base_url())
        .env_remove("ANTHROPIC_API_KEY")
        .env_remove("ANTHROPIC_BASE_URL")
        .env("HYBRID_DATABASE_URL", format!("sqlite://{}", db.display()))
        .current_dir(dir.path())
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("openai (type_reasoning): Qubits hold both states at once."),
        "{stdout}"
    );
    assert_eq!(mock.requests().len(), 1);
    // The task is in the database the environment named.
    let store = hybrid_store::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    assert_eq!(store.metrics().await.unwrap().tasks_executed, 1);
}

#[tokio::test]
async fn streaming_shows_the_route_the_text_and_the_result() {
    let mock = MockLlmServer::start().await.unwrap();
    mock.enqueue(Turn::text("Superposition and entanglement.").with_chunk_size(5));
    let base = mock.openai_base_url();
    let env = move |k: &str| match k {
        "OPENAI_API_KEY" => Some("sk-stream-test".to_owned()),
        "OPENAI_BASE_URL" => Some(base.clone()),
        "HYBRID_DATABASE_URL" => Some("sqlite::memory:".to_owned()),
        _ => None,
    };
    let platform = HybridPlatform::from_config_and_env(&HybridConfig::default(), &env)
        .await
        .unwrap();
    let mut out = Vec::new();
    let result = streaming::stream_to(&platform, "Explain quantum computing", &mut out)
        .await
        .unwrap()
        .unwrap();
    let out = String::from_utf8(out).unwrap();
    assert_eq!(result.status, TaskStatus::Completed);
    assert!(
        out.starts_with(
            "→ openai (type_reasoning)
"
        ),
        "{out}"
    );
    assert!(out.contains("Superposition and entanglement."), "{out}");
    assert!(
        out.trim_end()
            .ends_with(&format!("✓ completed in {} ms", result.duration_ms)),
        "{out}"
    );
}

#[tokio::test]
async fn custom_guardrails_block_out_of_hours_and_ask_before_deploys() {
    let (status, why) = custom_guardrail::verdict(3, "Rotate the logs")
        .await
        .unwrap();
    assert_eq!(status, TaskStatus::Blocked);
    assert!(
        why.contains("business_hours") && why.contains("3:00"),
        "{why}"
    );
    // In hours, a deploy needs approval; nobody can give it here, so it is refused.
    let (status, why) = custom_guardrail::verdict(10, "deploy the API")
        .await
        .unwrap();
    assert_eq!(status, TaskStatus::Blocked);
    assert!(why.contains("no_weekend_deploys"), "{why}");
    // The seed's cost limit, at L2, before any model call.
    let platform = custom_guardrail::guarded_platform(10).await.unwrap();
    let task =
        hybrid_core::Task::new("Summarise the quarter").with_estimated_cost(hybrid_core::usd(25.0));
    let err = platform.run(task).await.unwrap_err();
    assert!(
        err.to_string().contains("Task exceeds $10 cost limit"),
        "{err}"
    );
}

#[tokio::test]
async fn gemini_is_registered_and_runs_over_the_openai_wire_format() {
    let mock = MockLlmServer::start().await.unwrap();
    mock.enqueue(Turn::text("Gemini says hi.").with_usage(12, 4));
    let base = mock.openai_base_url();
    let env = move |k: &str| match k {
        "GEMINI_API_KEY" => Some("gm-test".to_owned()),
        "GEMINI_BASE_URL" => Some(base.clone()),
        _ => None,
    };
    let (platform, result) = custom_platform::run_on_gemini("hi", env).await.unwrap();
    assert_eq!(result.platform, "gemini");
    assert_eq!(result.output, "Gemini says hi.");
    assert_eq!(
        result.cost_usd, None,
        "gemini is not in the price table: cost unknown, not zero"
    );
    assert_eq!(platform.platform_names(), vec!["gemini".to_owned()]);
    let req = mock.last_request().unwrap();
    assert_eq!(req.path, "/v1/chat/completions");
    assert_eq!(req.header("authorization"), Some("Bearer gm-test"));
    assert_eq!(req.body["model"], "gemini-2.5-flash");
    let m = platform.get_metrics().await.unwrap();
    assert_eq!(m.platform_counts.get("gemini"), Some(&1));
}

#[tokio::test]
async fn gemini_without_a_key_names_the_variable() {
    let err = custom_platform::run_on_gemini("hi", |_| None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("GEMINI_API_KEY"), "{err}");
}

#[tokio::test]
async fn a_custom_agent_answers_a_workflow_stage_without_a_model() {
    let dir = tempfile::tempdir().unwrap();
    let result = custom_agent::triage(dir.path(), "checkout-api is down: 503")
        .await
        .unwrap();
    assert_eq!(result.status, hybrid_core::TaskStatus::Completed);
    assert_eq!(result.stages["triage"].agent, "triage");
    assert_eq!(result.stages["triage"].platform, "custom");
    assert_eq!(result.stages["triage"].output, r#"{"action": "page"}"#);
    assert_eq!(result.stages["decided"].verdict.as_deref(), Some("pass"));
    let calm = tempfile::tempdir().unwrap();
    let result = custom_agent::triage(calm.path(), "disk 71% full")
        .await
        .unwrap();
    assert_eq!(result.stages["triage"].output, r#"{"action": "ticket"}"#);
}
