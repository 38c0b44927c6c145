//! The facade end to end against the testkit's mock server: runs, streaming,
//! persistence, custom platforms and routers, failures and cancellation.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use hybrid_core::{EventKind, StageResult, Task, TaskStatus, TaskType};
use hybrid_llm::{AnthropicClient, AnthropicConfig, OpenAiClient, OpenAiConfig, RetryPolicy};
use hybrid_platform::roles::PlatformKind;
use hybrid_platform::{
    Capabilities, HybridPlatform, LlmPlatform, Platform, PlatformError, RouteDecision, Router,
    RunContext, RunOptions,
};
use hybrid_testkit::{Fault, MockLlmServer, Turn};

fn fast_transport() -> hybrid_llm::TransportConfig {
    hybrid_llm::TransportConfig {
        retry: RetryPolicy {
            max_attempts: 2,
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(5),
            max_retry_after: Duration::from_millis(50),
            retry_rate_limited: true,
        },
        ..Default::default()
    }
}

async fn platform_on(mock: &MockLlmServer, stream: bool) -> HybridPlatform {
    let store = hybrid_store::connect("sqlite::memory:").await.unwrap();
    let openai = OpenAiClient::new(
        OpenAiConfig::new("sk-test", "gpt-4o-mini")
            .with_base_url(mock.openai_base_url())
            .with_transport(fast_transport()),
    )
    .unwrap();
    let claude = AnthropicClient::new(
        AnthropicConfig::new("sk-ant", "claude-sonnet-4-5")
            .with_base_url(mock.anthropic_base_url())
            .with_transport(fast_transport()),
    )
    .unwrap();
    HybridPlatform::builder()
        .store(store)
        .platform(Arc::new(
            LlmPlatform::new("openai", PlatformKind::Reasoning, Arc::new(openai))
                .with_streaming(stream),
        ))
        .platform(Arc::new(
            LlmPlatform::new("claude", PlatformKind::Execution, Arc::new(claude))
                .with_streaming(stream),
        ))
        .build()
        .await
        .unwrap()
}

#[tokio::test]
async fn run_routes_completes_and_commits_every_step() {
    let mock = MockLlmServer::start().await.unwrap();
    for stream in [true, false] {
        let hp = platform_on(&mock, stream).await;
        mock.enqueue(Turn::text("Superposition and entanglement.").with_usage(1000, 200));
        let task = Task::new("Explain quantum computing");
        let id = task.id.clone();
        let r = hp.run(task).await.unwrap();
        assert_eq!(r.status, TaskStatus::Completed);
        assert_eq!(
            (r.platform.as_str(), r.route.rule.as_str()),
            ("openai", "type_reasoning")
        );
        assert_eq!(r.output, "Superposition and entanglement.");
        assert_eq!((r.usage.input_tokens, r.usage.output_tokens), (1000, 200));
        // gpt-4o-mini: $0.15 / Mtok in, $0.60 / Mtok out.
        assert_eq!(r.cost_usd, Some(hybrid_core::usd(0.00015 + 0.00012)));
        let stage = &r.stages["execution"];
        assert_eq!(
            (stage.agent.as_str(), stage.platform.as_str()),
            ("coordinator", "openai")
        );
        let sent = mock.last_request().unwrap().body;
        assert_eq!(sent["stream"].as_bool().unwrap_or(false), stream);

        let store = hp.store();
        let rec = store.get_task(&id).await.unwrap().unwrap();
        assert_eq!(rec.status, TaskStatus::Completed);
        assert_eq!(rec.result.as_ref(), Some(&r));
        let history: Vec<TaskStatus> = store
            .status_history(&id)
            .await
            .unwrap()
            .into_iter()
            .map(|c| c.to)
            .collect();
        use TaskStatus::*;
        assert_eq!(history, vec![Pending, Routing, InProgress, Completed]);
        let events = store.events(&id).await.unwrap();
        let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
        assert_eq!(
            seqs,
            (0..events.len() as u64).collect::<Vec<_>>(),
            "gapless, in order"
        );
        let kinds: Vec<&str> = events.iter().map(|e| e.kind.name()).collect();
        assert_eq!(kinds.first(), Some(&"submitted"));
        assert_eq!(kinds.last(), Some(&"finished"));
        assert_eq!(kinds.contains(&"text_delta"), stream, "{kinds:?}");
        assert!(kinds.contains(&"model_call") && kinds.contains(&"stage_completed"));
        let stages = store.stages(&id).await.unwrap();
        assert_eq!(stages, vec![("execution".to_owned(), stage.clone())]);
    }
}

#[tokio::test]
async fn run_streaming_yields_deltas_before_the_result() {
    let mock = MockLlmServer::start().await.unwrap();
    let hp = platform_on(&mock, true).await;
    mock.enqueue(Turn::text("one two three four").with_chunk_size(4));
    let task = Task::new("List files").with_type(TaskType::SystemOperation);
    let events: Vec<_> = hp
        .run_streaming(task, RunOptions::default())
        .collect()
        .await;
    let deltas: String = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::TextDelta { text, .. } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(deltas, "one two three four");
    assert!(
        events
            .iter()
            .filter(|e| e.kind.name() == "text_delta")
            .count()
            >= 4
    );
    let EventKind::Finished { result } = &events.last().unwrap().kind else {
        panic!("last event is not finished: {:?}", events.last());
    };
    assert_eq!(result.platform, "claude");
    assert_eq!(result.stages["execution"].agent, "executor");
    assert_eq!(mock.last_request().unwrap().path, "/v1/messages");
    let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]));
}

#[tokio::test]
async fn provider_failure_is_recorded_as_failed_with_the_typed_cause() {
    let mock = MockLlmServer::start().await.unwrap();
    let hp = platform_on(&mock, true).await;
    mock.enqueue(Fault::ServerError);
    mock.enqueue(Fault::ServerError);
    let task = Task::new("hello");
    let id = task.id.clone();
    let err = hp.run(task).await.unwrap_err();
    let PlatformError::Task { status, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(*status, TaskStatus::Failed);
    assert!(matches!(
        err.root(),
        PlatformError::Llm(hybrid_llm::LlmError::Server { status: 500, .. })
    ));
    assert_eq!(mock.request_count(), 2, "retried once, then gave up");
    let rec = hp.store().get_task(&id).await.unwrap().unwrap();
    assert_eq!(rec.status, TaskStatus::Failed);
    let result = rec.result.unwrap();
    assert!(result.error.unwrap().contains("server error (500)"));
    assert!(result.stages.is_empty());
}

#[tokio::test]
async fn cancelling_leaves_the_task_cancelled_not_in_progress() {
    let mock = MockLlmServer::start().await.unwrap();
    let hp = platform_on(&mock, true).await;
    mock.enqueue(Turn::text("late").with_first_byte_delay(Duration::from_secs(30)));
    let task = Task::new("slow");
    let id = task.id.clone();
    let options = RunOptions::default();
    let cancel = options.cancel.clone();
    let run = tokio::spawn({
        let hp = hp.clone();
        async move { hp.run_with(task, options).await }
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while mock.request_count() == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the run never called the model"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    cancel.cancel();
    let err = run.await.unwrap().unwrap_err();
    assert!(matches!(err.root(), PlatformError::Cancelled), "{err:?}");
    let rec = hp.store().get_task(&id).await.unwrap().unwrap();
    assert_eq!(rec.status, TaskStatus::Cancelled);
}

/// A deterministic third platform, registered at run time.
#[derive(Debug)]
struct Echo;

#[async_trait]
impl Platform for Echo {
    fn id(&self) -> &str {
        "echo"
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities::default()
    }
    async fn execute(&self, task: &Task, _ctx: &RunContext) -> Result<StageResult, PlatformError> {
        Ok(StageResult {
            agent: "echo".into(),
            platform: "echo".into(),
            output: task.description.to_uppercase(),
            cost_usd: Some(hybrid_core::Money::ZERO),
            ..Default::default()
        })
    }
}

/// Sends research to `echo`, everything else to the default tree.
#[derive(Debug)]
struct EchoResearch;

impl Router for EchoResearch {
    fn route(&self, task: &Task, platforms: &[&str]) -> RouteDecision {
        if task.task_type == TaskType::Research && platforms.contains(&"echo") {
            return RouteDecision {
                platform: "echo".into(),
                rule: "research_echo",
                reason: "test".into(),
            };
        }
        hybrid_platform::DefaultRouter::default().route(task, platforms)
    }
}

#[tokio::test]
async fn custom_platforms_and_routers_plug_in() {
    let store = hybrid_store::connect("sqlite::memory:").await.unwrap();
    let hp = HybridPlatform::builder()
        .store(store)
        .router(Arc::new(EchoResearch))
        .build()
        .await
        .unwrap();
    let task = Task::new("find it").with_type(TaskType::Research);
    let err = hp.run(task.clone()).await.unwrap_err();
    assert!(
        matches!(err.root(), PlatformError::UnknownPlatform { .. }),
        "{err}"
    );

    hp.register_platform(Arc::new(Echo));
    let r = hp
        .run(Task {
            id: hybrid_core::TaskId::generate(),
            ..task
        })
        .await
        .unwrap();
    assert_eq!(
        (
            r.platform.as_str(),
            r.route.rule.as_str(),
            r.output.as_str()
        ),
        ("echo", "research_echo", "FIND IT")
    );

    let m = hp.get_metrics().await.unwrap();
    assert_eq!((m.tasks_executed, m.success_rate), (2, 50.0));
    // The first run routed to claude (not registered) and failed there.
    assert_eq!(m.platform_counts.get("echo"), Some(&1));
    assert_eq!(m.platform_counts.get("claude"), Some(&1));
}
