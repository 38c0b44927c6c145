//! Rate limits at the gates: tool calls (per tool) at the tool gate, model
//! calls (per platform, agent, submitter) at the model gate. A call over the
//! limit waits up to the configured bound, then is refused with the rule.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use hybrid_agents::{GateDecision, ToolGate, ToolRequest};
use hybrid_core::{Task, TaskStatus, TaskType};
use hybrid_guard::{CommandPolicy, RateLimits, RateRule, RateScope};
use hybrid_llm::{OpenAiClient, OpenAiConfig};
use hybrid_platform::roles::Layer as Role;
use hybrid_platform::{
    EventSink, HybridPlatform, LlmPlatform, NoApprover, PlatformError, PolicyGate, RunOptions,
};
use hybrid_testkit::{MockLlmServer, Turn};
use hybrid_tools::{ToolRegistry, ToolsConfig};
use serde_json::json;
use tokio_util::sync::CancellationToken;

fn glob_call<'a>(id: &'a str, args: &'a serde_json::Value) -> ToolRequest<'a> {
    ToolRequest {
        agent: "executor",
        call_id: id,
        tool: "glob",
        arguments: args,
    }
}

#[tokio::test]
async fn a_tool_over_its_limit_waits_within_the_bound_and_is_refused_beyond_it() {
    // The store is opened on the real clock; the limiter then runs on a
    // paused one, so the waits below are exact and take no time.
    let store = hybrid_store::connect("sqlite::memory:").await.unwrap();
    let task = Task::new("t");
    store.create_task(&task).await.unwrap();
    let sink = Arc::new(EventSink::new(task.id.clone(), store, None));
    tokio::time::pause();
    // Two glob calls a minute: a cell every 30 s.
    let rates = |max_wait| {
        Arc::new(
            RateLimits::new(
                vec![RateRule::per_minute(RateScope::Tool("glob".into()), 2)],
                Duration::from_secs(max_wait),
            )
            .unwrap(),
        )
    };
    let gate = |max_wait| {
        PolicyGate::new(
            Arc::new(CommandPolicy::seed_default()),
            Arc::new(NoApprover),
            sink.clone(),
            CancellationToken::new(),
        )
        .with_rate_limits(Some(rates(max_wait)))
    };
    let args = json!({"pattern": "*"});

    // Waits up to 40 s: the third call waits 30 s, then runs.
    let patient = gate(40);
    let start = tokio::time::Instant::now();
    for id in ["1", "2"] {
        assert_eq!(
            patient.check(glob_call(id, &args)).await,
            GateDecision::Allow
        );
    }
    assert_eq!(start.elapsed(), Duration::ZERO, "the burst is free");
    assert_eq!(
        patient.check(glob_call("3", &args)).await,
        GateDecision::Allow
    );
    // (Tokio's timer rounds a sleep up to the next millisecond.)
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_secs(30) && waited <= Duration::from_millis(30_001),
        "waited {waited:?}"
    );

    // Waits up to 10 s: the third call would need 30 s, so it is refused at once.
    let impatient = gate(10);
    for id in ["1", "2"] {
        assert_eq!(
            impatient.check(glob_call(id, &args)).await,
            GateDecision::Allow
        );
    }
    match impatient.check(glob_call("3", &args)).await {
        GateDecision::Deny { rule, reason } => {
            assert_eq!(rule, "rate_limit:tool:glob");
            assert!(reason.contains("retry after 30.0s"), "{reason}");
        }
        GateDecision::Allow => panic!("over the limit and beyond the bound"),
    }
    // Other tools are not limited by a glob rule.
    let grep = ToolRequest {
        tool: "grep",
        ..glob_call("4", &args)
    };
    assert_eq!(impatient.check(grep).await, GateDecision::Allow);
}

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
            LlmPlatform::new("openai", Role::Reasoning, Arc::new(client)).with_tools(tools),
        ))
        .build()
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
        hp.run_with(first, options(dir.path()), None)
            .await
            .unwrap()
            .status,
        TaskStatus::Completed
    );
    let second = Task::new("two").with_type(TaskType::Analysis);
    let id = second.id.clone();
    let err = hp
        .run_with(second, options(dir.path()), None)
        .await
        .unwrap_err();
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
    let result = hp.run_with(task, options(dir.path()), None).await.unwrap();
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
