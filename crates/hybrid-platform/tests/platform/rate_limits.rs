//! Rate limits at the model gate (per platform, agent, submitter) and, through a
//! whole run, at the tool gate (per tool; the gate's own timing test is a unit
//! test of `gates::tool_calls`). A call over the limit waits up to the
//! configured bound, then is refused with the rule.

use std::sync::Arc;
use std::time::Duration;

use hybrid_core::{Task, TaskStatus, TaskType};
use hybrid_guard::{RateLimits, RateRule, RateScope};
use hybrid_llm::{OpenAiClient, OpenAiConfig};
use hybrid_platform::roles::PlatformKind;
use hybrid_platform::{HybridPlatform, LlmPlatform, PlatformError, RunOptions};
use hybrid_testkit::{MockLlmServer, Turn};
use hybrid_tools::{ToolRegistry, ToolsConfig};
use serde_json::json;

async fn openai_platform(mock: &MockLlmServer, rates: RateLimits) -> HybridPlatform {
    let store = hybrid_store::connect("sqlite::memory:").await.unwrap();
    let client = OpenAiClient::new(
        OpenAiConfig::new("sk-test", "gpt-4o").with_base_url(mock.openai_base_url()),
    )
    .unwrap();
    let tools = ToolRegistry::builtin(&ToolsConfig::default())
        .get("glob")
        .into_iter()
        .collect();
    HybridPlatform::builder()
        .store(store)
        .rate_limits(rates)
        .platform(Arc::new(
            LlmPlatform::new("openai", PlatformKind::Reasoning, Arc::new(client)).with_tools(tools),
        ))
        .build()
        .await
        .unwrap()
}

fn options(dir: &std::path::Path) -> RunOptions {
    RunOptions {
        platform: Some("openai".into()),
        workdir: Some(dir.to_path_buf()),
        ..RunOptions::default()
    }
}

#[tokio::test]
async fn a_platform_over_its_limit_blocks_the_next_task_before_its_call() {
    let mock = MockLlmServer::start().await.unwrap();
    mock.set_default(Some(Turn::text("ok").into()));
    let rates = RateLimits::new(
        vec![RateRule::per_minute(
            RateScope::Platform("openai".into()),
            1,
        )],
        Duration::ZERO,
    )
    .unwrap();
    let hp = openai_platform(&mock, rates).await;
    let dir = tempfile::tempdir().unwrap();
    let first = Task::new("one").with_type(TaskType::Analysis);
    assert_eq!(
        hp.run_with(first, options(dir.path()))
            .await
            .unwrap()
            .status,
        TaskStatus::Completed
    );
    let second = Task::new("two").with_type(TaskType::Analysis);
    let id = second.id.clone();
    let err = hp.run_with(second, options(dir.path())).await.unwrap_err();
    match err.root() {
        PlatformError::Blocked {
            guardrail, message, ..
        } => {
            assert_eq!(guardrail, "rate_limit:platform:openai");
            assert!(message.contains("platform:openai"), "{message}");
        }
        other => panic!("not blocked: {other}"),
    }
    assert_eq!(mock.request_count(), 1, "the second call was not sent");
    let rec = hp.store().get_task(&id).await.unwrap().unwrap();
    assert_eq!(rec.status, TaskStatus::Blocked);
    let metrics = hp.get_metrics().await.unwrap();
    assert_eq!(
        metrics.guardrail_triggers.get("rate_limit:platform:openai"),
        Some(&1)
    );
}

#[tokio::test]
async fn a_refused_tool_call_goes_back_to_the_model_and_the_run_goes_on() {
    let mock = MockLlmServer::start().await.unwrap();
    mock.enqueue(
        Turn::tool_call("glob", json!({"pattern": "*"}))
            .and_tool_call("glob", json!({"pattern": "*.rs"})),
    );
    mock.enqueue(Turn::text("done"));
    let rates = RateLimits::new(
        vec![RateRule::per_minute(RateScope::Tool("glob".into()), 1)],
        Duration::ZERO,
    )
    .unwrap();
    let hp = openai_platform(&mock, rates).await;
    let dir = tempfile::tempdir().unwrap();
    let task = Task::new("look").with_type(TaskType::Analysis);
    let result = hp.run_with(task, options(dir.path())).await.unwrap();
    assert_eq!(result.status, TaskStatus::Completed);
    let calls = &result.stages["execution"].tool_calls;
    assert_eq!(calls.len(), 2);
    let refused: Vec<_> = calls.iter().filter(|c| c.is_error).collect();
    assert_eq!(refused.len(), 1, "{calls:#?}");
    assert!(
        refused[0]
            .output
            .as_deref()
            .unwrap()
            .contains("rate_limit:tool:glob"),
        "{refused:#?}"
    );
}
