//! Runs each example's logic against the testkit's mock server.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../custom_platform.rs"]
mod custom_platform;

#[path = "../custom_agent.rs"]
mod custom_agent;

use hybrid_testkit::{MockLlmServer, Turn};

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
