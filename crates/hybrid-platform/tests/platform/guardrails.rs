//! The guardrail engine at the run's layers, end to end against the mock:
//! each layer decides before its step, and a block ends the task `blocked`.

use std::sync::Arc;

use hybrid_core::{Task, TaskStatus, usd};
use hybrid_guard::{Guardrail, Layer};
use hybrid_llm::{AnthropicClient, AnthropicConfig};
use hybrid_platform::roles::PlatformKind;
use hybrid_platform::{HybridConfig, HybridPlatform, LlmPlatform, PlatformError, RunOptions};
use hybrid_testkit::{MockLlmServer, Turn};
use hybrid_tools::{ToolRegistry, ToolsConfig};
use serde_json::json;

async fn platform(mock: &MockLlmServer, guardrails: Vec<Guardrail>) -> HybridPlatform {
    let store = hybrid_store::connect("sqlite::memory:").await.unwrap();
    let client = AnthropicClient::new(
        AnthropicConfig::new("sk-ant", "claude-sonnet-4-5")
            .with_base_url(mock.anthropic_base_url()),
    )
    .unwrap();
    let registry = ToolRegistry::builtin(&ToolsConfig::default());
    let tools = registry.get("read_file").into_iter().collect();
    let mut b = HybridPlatform::builder().store(store).platform(Arc::new(
        LlmPlatform::new("claude", PlatformKind::Execution, Arc::new(client)).with_tools(tools),
    ));
    for g in guardrails {
        b = b.guardrail(g);
    }
    b.build().await.unwrap()
}

fn blocked(err: &PlatformError) -> (&str, &str) {
    match err.root() {
        PlatformError::Blocked {
            guardrail, layer, ..
        } => (guardrail, layer),
        other => panic!("not blocked: {other}"),
    }
}

#[tokio::test]
async fn the_seeds_cost_limit_as_a_closure_blocks_before_any_model_call() {
    let mock = MockLlmServer::start().await.unwrap();
    let cost_limit = Guardrail::block("cost_limit")
        .when(|t: &Task| t.estimated_cost > Some(usd(10.0)))
        .message("Task exceeds $10 cost limit")
        .at(Layer::Platform);
    let hp = platform(&mock, vec![cost_limit]).await;
    let task = Task::new("big job")
        .with_type(hybrid_core::TaskType::Research)
        .with_estimated_cost(usd(12.5));
    let id = task.id.clone();
    let err = hp.run(task).await.unwrap_err();
    assert_eq!(blocked(&err), ("cost_limit", "platform"));
    assert!(
        err.to_string().contains("Task exceeds $10 cost limit"),
        "{err}"
    );
    assert_eq!(
        mock.request_count(),
        0,
        "the guardrail decided before the model was called"
    );
    let rec = hp.store().get_task(&id).await.unwrap().unwrap();
    assert_eq!(rec.status, TaskStatus::Blocked);
    // Under the limit it runs.
    mock.enqueue(Turn::text("done"));
    let ok = Task::new("small job")
        .with_type(hybrid_core::TaskType::Research)
        .with_estimated_cost(usd(2.0));
    assert_eq!(hp.run(ok).await.unwrap().status, TaskStatus::Completed);
}

#[tokio::test]
async fn the_seeds_cost_limit_as_a_toml_rule_blocks_at_input() {
    let mock = MockLlmServer::start().await.unwrap();
    let toml = "[[guardrails]]\nname = \"cost_limit\"\nkind = \"block\"\nlayer = \"input\"\nwhen = \"task.estimated_cost > 10.0\"\nmessage = \"Task exceeds $10 cost limit\"\n";
    let config = HybridConfig::parse(toml, std::path::Path::new("hybrid.toml")).unwrap();
    let hp = platform(&mock, config.guardrails().unwrap()).await;
    let task = Task::new("big").with_estimated_cost(usd(11.0));
    let id = task.id.clone();
    let err = hp.run(task).await.unwrap_err();
    assert_eq!(blocked(&err), ("cost_limit", "input"));
    assert_eq!(mock.request_count(), 0);
    let history: Vec<TaskStatus> = hp
        .store()
        .status_history(&id)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.to)
        .collect();
    assert_eq!(
        history,
        vec![TaskStatus::Pending, TaskStatus::Blocked],
        "blocked before routing"
    );
    let audit = hp
        .store()
        .audit_records(&hybrid_store::AuditFilter::default())
        .await
        .unwrap();
    assert!(
        audit
            .iter()
            .any(|a| a.action == "guardrail" && a.command.as_deref() == Some("cost_limit"))
    );
}

#[tokio::test]
async fn an_execution_guardrail_refuses_a_tool_call_and_the_run_goes_on() {
    let mock = MockLlmServer::start().await.unwrap();
    let no_secrets = Guardrail::block("no_env_files")
        .when_cel("tool.name == 'read_file' && tool.arguments.path.endsWith('.env')")
        .unwrap()
        .message("reading .env files is not allowed")
        .at(Layer::Execution);
    let hp = platform(&mock, vec![no_secrets]).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(".env"), "KEY=1").unwrap();
    mock.enqueue(Turn::tool_call("read_file", json!({"path": ".env"})));
    mock.enqueue(Turn::text("could not read it"));
    let options = RunOptions {
        workdir: Some(dir.path().to_path_buf()),
        ..RunOptions::default()
    };
    let r = hp
        .run_with(Task::new("read config").with_system_access(true), options)
        .await
        .unwrap();
    let call = &r.stages["execution"].tool_calls[0];
    assert!(call.is_error);
    assert!(
        call.output
            .as_deref()
            .unwrap()
            .contains("reading .env files is not allowed"),
        "{call:?}"
    );
}

#[tokio::test]
async fn an_output_guardrail_withholds_a_result_carrying_a_key() {
    let mock = MockLlmServer::start().await.unwrap();
    let hp = platform(&mock, vec![Guardrail::secrets_in_output()]).await;
    mock.enqueue(Turn::text(
        "Here it is: sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789",
    ));
    let task = Task::new("print the key").with_type(hybrid_core::TaskType::Research);
    let id = task.id.clone();
    let err = hp.run(task).await.unwrap_err();
    assert_eq!(blocked(&err).1, "output");
    let rec = hp.store().get_task(&id).await.unwrap().unwrap();
    assert_eq!(rec.status, TaskStatus::Blocked);
    let result = rec.result.unwrap();
    assert!(
        !serde_json::to_string(&result).unwrap().contains("AbCdEfGh"),
        "the output was withheld"
    );
}

/// Runs `task` streamed and collects every event.
async fn streamed(hp: &HybridPlatform, task: Task) -> Vec<hybrid_core::Event> {
    use futures::StreamExt;
    let dir = tempfile::tempdir().unwrap();
    let options = RunOptions {
        workdir: Some(dir.path().to_path_buf()),
        ..RunOptions::default()
    };
    hp.run_streaming(task, options).collect().await
}

fn deltas(events: &[hybrid_core::Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match &e.kind {
            hybrid_core::EventKind::TextDelta { text, .. } => Some(text.clone()),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn held_output_never_reaches_the_subscriber_when_the_output_guardrail_blocks() {
    let mock = MockLlmServer::start().await.unwrap();
    let hp = platform(&mock, vec![Guardrail::secrets_in_output()]).await;
    // Streamed in 4-character pieces: the key crosses many deltas.
    mock.enqueue(
        Turn::text("The key is sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789 enjoy")
            .with_chunk_size(4),
    );
    let task = Task::new("print the key").with_type(hybrid_core::TaskType::Research);
    let id = task.id.clone();
    let events = streamed(&hp, task).await;
    assert!(
        deltas(&events).is_empty(),
        "no text reached the subscriber: {:?}",
        deltas(&events)
    );
    let everything = serde_json::to_string(&events).unwrap();
    assert!(!everything.contains("AbCd"), "no piece of the key leaked");
    let Some(hybrid_core::EventKind::Finished { result }) = events.last().map(|e| &e.kind) else {
        panic!("the stream ends with the result");
    };
    assert_eq!(result.status, TaskStatus::Blocked);
    // Nor was it stored.
    let stored = serde_json::to_string(&hp.store().events(&id).await.unwrap()).unwrap();
    assert!(!stored.contains("AbCd"));
}

#[tokio::test]
async fn held_output_is_released_once_the_output_guardrail_passes() {
    let mock = MockLlmServer::start().await.unwrap();
    let hp = platform(&mock, vec![Guardrail::secrets_in_output()]).await;
    let text = "Nothing secret here, just a long enough answer to stream in pieces.";
    mock.enqueue(Turn::text(text).with_chunk_size(4));
    let task = Task::new("answer").with_type(hybrid_core::TaskType::Research);
    let events = streamed(&hp, task).await;
    assert_eq!(deltas(&events), [text], "released whole, after the check");
    let delta_at = events
        .iter()
        .position(|e| matches!(e.kind, hybrid_core::EventKind::TextDelta { .. }))
        .unwrap();
    let completed_at = events
        .iter()
        .position(|e| matches!(e.kind, hybrid_core::EventKind::StageCompleted { .. }))
        .unwrap();
    assert!(delta_at < completed_at);

    // Without a holding guardrail the same answer streams in pieces.
    let plain = platform(&mock, vec![]).await;
    mock.enqueue(Turn::text(text).with_chunk_size(4));
    let events = streamed(
        &plain,
        Task::new("answer").with_type(hybrid_core::TaskType::Research),
    )
    .await;
    let pieces = deltas(&events);
    assert!(pieces.len() > 5, "{pieces:?}");
    assert_eq!(pieces.concat(), text);
}

#[test]
fn hold_output_is_only_for_the_output_layer() {
    let e = HybridConfig::parse(
        "[[guardrails]]\nname = \"x\"\nkind = \"block\"\nlayer = \"input\"\nhold_output = true\n",
        std::path::Path::new("hybrid.toml"),
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "hybrid.toml:5: guardrails[0].hold_output: guardrail `x`: hold_output only applies at layer = \"output\""
    );
    let ok = HybridConfig::parse(
        "[[guardrails]]\nname = \"json\"\nkind = \"validation\"\nlayer = \"output\"\nwhen = \"output.text == ''\"\nhold_output = true\n",
        std::path::Path::new("hybrid.toml"),
    )
    .unwrap();
    let g = ok.guardrails().unwrap();
    assert!(g[0].holds_output());
}
