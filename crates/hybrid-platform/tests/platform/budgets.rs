//! Budgets that hold: a model call is estimated and reserved before it is
//! sent, and charged at its actual usage after; a budget that would be
//! crossed stops the task `blocked` with the reason in the result, an event
//! and the audit trail.

use std::sync::Arc;

use hybrid_core::{EventKind, Task, TaskStatus, TaskType, usd};
use hybrid_llm::{OpenAiClient, OpenAiConfig};
use hybrid_platform::roles::PlatformKind;
use hybrid_platform::{Budgets, HybridPlatform, LlmPlatform, PlatformError, RunOptions};
use hybrid_store::{AuditFilter, LedgerKind, Store};
use hybrid_testkit::{MockLlmServer, Turn};
use hybrid_tools::{ToolRegistry, ToolsConfig};
use serde_json::json;

/// `openai` on gpt-4o ($2.50 in / $10 out per million tokens) against the mock.
async fn platform(
    mock: &MockLlmServer,
    budgets: Budgets,
    max_tokens: Option<u32>,
    store: Arc<dyn Store>,
) -> HybridPlatform {
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
        .budgets(budgets)
        .platform(Arc::new(
            LlmPlatform::new("openai", PlatformKind::Reasoning, Arc::new(client))
                .with_tools(tools)
                .with_max_tokens(max_tokens),
        ))
        .build()
        .await
        .unwrap()
}

async fn memory_store() -> Arc<dyn Store> {
    hybrid_store::connect("sqlite::memory:").await.unwrap()
}

fn options(dir: &std::path::Path) -> RunOptions {
    RunOptions {
        platform: Some("openai".into()),
        workdir: Some(dir.to_path_buf()),
        ..RunOptions::default()
    }
}

fn blocked_by(err: &PlatformError) -> (String, String) {
    match err.root() {
        PlatformError::Blocked {
            guardrail, message, ..
        } => (guardrail.clone(), message.clone()),
        other => panic!("not blocked: {other}"),
    }
}

#[tokio::test]
async fn the_estimate_refuses_a_call_before_any_request_is_sent() {
    let mock = MockLlmServer::start().await.unwrap();
    mock.enqueue(Turn::text("never sent"));
    // No output cap set: the estimate assumes 4,096 output tokens at $10/M
    // ≈ $0.041, over a budget of a tenth of a cent.
    let budgets = Budgets {
        per_task: Some(usd(0.001)),
        ..Budgets::default()
    };
    let hp = platform(&mock, budgets, None, memory_store().await).await;
    let dir = tempfile::tempdir().unwrap();
    let task = Task::new("summarise the quarter").with_type(TaskType::Analysis);
    let id = task.id.clone();
    let err = hp.run_with(task, options(dir.path())).await.unwrap_err();

    assert_eq!(mock.request_count(), 0, "the mock recorded no request");
    let (rule, message) = blocked_by(&err);
    assert_eq!(rule, "budget:task");
    assert!(message.contains(&format!("task:{id}")), "{message}");
    assert!(message.contains("limit of $0.0010"), "{message}");

    let rec = hp.store().get_task(&id).await.unwrap().unwrap();
    assert_eq!(rec.status, TaskStatus::Blocked);
    assert!(rec.result.unwrap().error.unwrap().contains("budget:task"));
    let events = hp.store().events(&id).await.unwrap();
    assert!(events.iter().any(|e| matches!(&e.kind,
        EventKind::Warning { message } if message.contains("guardrail budget:task"))));
    let audit = hp
        .store()
        .audit_records(&AuditFilter {
            task_id: Some(id.clone()),
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert!(
        audit
            .iter()
            .any(|r| r.action == "guardrail" && r.command.as_deref() == Some("budget:task")),
        "{audit:#?}"
    );
    // Nothing was reserved, nothing spent.
    assert!(
        hp.store()
            .budget_ledger(Some(&id))
            .await
            .unwrap()
            .is_empty()
    );
    let metrics = hp.get_metrics().await.unwrap();
    assert_eq!(metrics.guardrail_triggers.get("budget:task"), Some(&1));
}

#[tokio::test]
async fn actual_usage_across_calls_crosses_the_budget_and_stops_the_task() {
    let mock = MockLlmServer::start().await.unwrap();
    // Each call is estimated small (a short prompt, at most 100 output
    // tokens ≈ $0.0011), but the provider reports 3,000 input and 100
    // output tokens: $0.0085 a call. Two calls spend $0.017 of $0.01.
    for _ in 0..2 {
        mock.enqueue(Turn::tool_call("glob", json!({"pattern": "*"})).with_usage(3000, 100));
    }
    mock.enqueue(Turn::text("never sent").with_usage(10, 10));
    let budgets = Budgets {
        per_task: Some(usd(0.01)),
        ..Budgets::default()
    };
    let hp = platform(&mock, budgets, Some(100), memory_store().await).await;
    let dir = tempfile::tempdir().unwrap();
    let task = Task::new("look around").with_type(TaskType::Analysis);
    let id = task.id.clone();
    let err = hp.run_with(task, options(dir.path())).await.unwrap_err();

    assert_eq!(mock.request_count(), 2, "the third call was never sent");
    let (rule, message) = blocked_by(&err);
    assert_eq!(rule, "budget:task");
    assert!(
        message.contains("$0.0170 spent"),
        "actual usage, not the estimate, was charged: {message}"
    );
    let rec = hp.store().get_task(&id).await.unwrap().unwrap();
    assert_eq!(rec.status, TaskStatus::Blocked);

    // The ledger: reserve then settle for each of the two calls.
    let ledger = hp.store().budget_ledger(Some(&id)).await.unwrap();
    let kinds: Vec<LedgerKind> = ledger.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [
            LedgerKind::Reserve,
            LedgerKind::Settle,
            LedgerKind::Reserve,
            LedgerKind::Settle
        ]
    );
    let spent = hp
        .store()
        .budget_spent(&hybrid_store::BudgetScope::Task(id.clone()))
        .await
        .unwrap();
    assert_eq!(spent, usd(0.017));
}

#[tokio::test]
async fn a_day_budget_holds_across_platform_objects_sharing_a_store() {
    // Two "processes" (two platform objects) on one database file: the
    // second sees what the first spent.
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("h.db").display());
    let mock = MockLlmServer::start().await.unwrap();
    mock.enqueue(Turn::text("first").with_usage(3000, 100));
    let budgets = Budgets {
        per_day: Some(usd(0.005)),
        ..Budgets::default()
    };
    let first = platform(
        &mock,
        budgets,
        Some(100),
        hybrid_store::connect(&url).await.unwrap(),
    )
    .await;
    let t1 = Task::new("one").with_type(TaskType::Analysis);
    first.run_with(t1, options(dir.path())).await.unwrap();

    let second = platform(
        &mock,
        budgets,
        Some(100),
        hybrid_store::connect(&url).await.unwrap(),
    )
    .await;
    let t2 = Task::new("two").with_type(TaskType::Analysis);
    let err = second.run_with(t2, options(dir.path())).await.unwrap_err();
    assert_eq!(blocked_by(&err).0, "budget:day");
    assert_eq!(mock.request_count(), 1);
}

#[tokio::test]
async fn the_computed_estimate_feeds_the_platform_layer_rules() {
    let mock = MockLlmServer::start().await.unwrap();
    let hp = platform(&mock, Budgets::default(), None, memory_store().await).await;
    // No --estimated-cost: the platform computes one (prompt + 4,096 output
    // tokens on gpt-4o ≈ $0.041) and the rule sees it.
    hp.add_guardrail(
        hybrid_guard::Guardrail::cost_limit("over_a_cent")
            .at(hybrid_guard::Layer::Platform)
            .when_cel("task.estimated_cost > 0.01")
            .unwrap(),
    );
    let dir = tempfile::tempdir().unwrap();
    let task = Task::new("estimate me").with_type(TaskType::Analysis);
    let err = hp.run_with(task, options(dir.path())).await.unwrap_err();
    assert_eq!(blocked_by(&err).0, "over_a_cent");
    assert_eq!(mock.request_count(), 0);
    // The dry run shows the same.
    let dry = hp
        .dry_run(
            &Task::new("estimate me").with_type(TaskType::Analysis),
            Some("openai"),
        )
        .await;
    assert!(dry.is_blocked());
}
