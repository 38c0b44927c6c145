//! The one test suite every backend runs. Each case gets a fresh, empty
//! database through an [`Opener`].

use std::sync::Arc;

use chrono::{DateTime, Duration, SubsecRound, TimeZone, Utc};
use hybrid_core::{
    CoreError, Event, EventKind, Money, Priority, RouteInfo, StageResult, Stages, Task, TaskId,
    TaskResult, TaskStatus, TaskType, ToolCallRecord, Usage, usd,
};
use hybrid_store::audit::GENESIS_HASH;
use hybrid_store::{
    Approval, ApprovalFilter, ApprovalStatus, AuditEntry, AuditFilter, AuditRecord, BadRecord,
    NewApproval, Redactor, Store, StoreError, StoreWrite, TaskFilter,
};
use serde_json::json;

use crate::harness::{Opener, clock_passes};
use TaskStatus::*;

fn sample_task(description: &str) -> Task {
    Task::new(description)
        .with_type(TaskType::SystemOperation)
        .with_system_access(true)
        .with_multi_step(true)
        .with_priority(Priority::new(5).unwrap())
        .with_context("zeta", json!({"nested": [1, 2, 3], "b": true}))
        .with_context("alpha", json!("first inserted second"))
        .with_estimated_cost(usd(1.25))
        .with_submitter("alice")
}

fn route(platform: &str) -> RouteInfo {
    RouteInfo {
        platform: platform.into(),
        rule: "type_reasoning".into(),
        reason: "r".into(),
    }
}

fn event(task: &TaskId, seq: u64, kind: EventKind) -> Event {
    Event {
        task_id: task.clone(),
        seq,
        at: Utc::now(),
        kind,
    }
}

fn stage(agent: &str, platform: &str, output: &str) -> StageResult {
    StageResult {
        agent: agent.into(),
        platform: platform.into(),
        model: Some("m-1".into()),
        output: output.into(),
        usage: Usage {
            input_tokens: 10,
            output_tokens: 5,
            cache_read_tokens: 2,
            cache_write_tokens: 0,
        },
        cost_usd: Some(usd(0.001)),
        tools_used: vec!["bash".into()],
        tool_calls: vec![ToolCallRecord {
            id: "c1".into(),
            name: "bash".into(),
            arguments: json!({"command": "ls"}),
            output: Some("a\nb".into()),
            is_error: false,
        }],
        verdict: None,
        detail: None,
        finish_reason: Some("end_turn".into()),
        duration_ms: 12,
    }
}

fn result(
    task: &TaskId,
    status: TaskStatus,
    platform: &str,
    usage: Usage,
    cost: Option<Money>,
    duration_ms: u64,
) -> TaskResult {
    let mut stages = Stages::new();
    stages.insert("planning".into(), stage("coordinator", "openai", "plan"));
    stages.insert("execution".into(), stage("executor", "claude", "done"));
    stages.insert("verification".into(), stage("validator", "openai", "pass"));
    TaskResult {
        task_id: task.clone(),
        status,
        platform: platform.into(),
        route: route(platform),
        stages,
        output: format!("output of {task}"),
        usage,
        cost_usd: cost,
        duration_ms,
        error: (status != Completed).then(|| "it broke".to_owned()),
    }
}

async fn to_in_progress(store: &dyn Store, id: &TaskId) {
    store.transition(id, Routing, None).await.unwrap();
    store.transition(id, InProgress, None).await.unwrap();
}

async fn status_of(store: &dyn Store, id: &TaskId) -> TaskStatus {
    store.get_task(id).await.unwrap().unwrap().status
}

pub async fn create_get_round_trip(db: Arc<dyn Opener>) {
    let store = db.open().await;
    let task = sample_task("Audit the codebase");
    store.create_task(&task).await.unwrap();

    let record = store
        .get_task(&task.id)
        .await
        .unwrap()
        .expect("stored task");
    assert_eq!(record.task, task);
    // Same JSON text, key order included.
    assert_eq!(
        serde_json::to_string(&record.task).unwrap(),
        serde_json::to_string(&task).unwrap()
    );
    assert_eq!(record.status, Pending);
    assert_eq!(record.route, None);
    assert_eq!(record.result, None);
    assert_eq!(record.created_at, task.created_at.trunc_subsecs(6));
    assert!(record.updated_at >= record.created_at);

    assert!(
        store
            .get_task(&"no-such-task".into())
            .await
            .unwrap()
            .is_none()
    );
    let again = store.create_task(&task).await.unwrap_err();
    assert!(matches!(again, StoreError::AlreadyExists(_)), "{again}");
    assert!(again.to_string().contains(task.id.as_str()), "{again}");
}

pub async fn lifecycle_and_history(db: Arc<dyn Opener>) {
    let store = db.open().await;
    let task = sample_task("lifecycle");
    let id = &task.id;
    store.create_task(&task).await.unwrap();
    let steps = [
        (Routing, None),
        (InProgress, Some("routed to claude")),
        (AwaitingApproval, Some("git push needs approval")),
        (InProgress, Some("approved by bob")),
        (Completed, None),
    ];
    let mut previous = Pending;
    for (to, reason) in steps {
        assert_eq!(store.transition(id, to, reason).await.unwrap(), previous);
        assert_eq!(status_of(&*store, id).await, to);
        previous = to;
    }

    let history = store.status_history(id).await.unwrap();
    assert_eq!(history.len(), steps.len() + 1);
    assert_eq!(
        (history[0].from, history[0].to, history[0].reason.as_deref()),
        (None, Pending, None)
    );
    let mut from = Pending;
    for (change, (to, reason)) in history[1..].iter().zip(steps) {
        assert_eq!(change.from, Some(from));
        assert_eq!(change.to, to);
        assert_eq!(change.reason.as_deref(), reason);
        from = to;
    }
    assert!(history.windows(2).all(|w| w[0].at <= w[1].at));

    let missing = store
        .transition(&"ghost".into(), Routing, None)
        .await
        .unwrap_err();
    assert!(
        matches!(&missing, StoreError::NotFound(id) if id.as_str() == "ghost"),
        "{missing}"
    );
    assert_eq!(missing.to_string(), "task ghost not found");
    assert!(
        store
            .status_history(&"ghost".into())
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn illegal_transition_rejected(db: Arc<dyn Opener>) {
    let store = db.open().await;
    let task = sample_task("illegal");
    let id = &task.id;
    store.create_task(&task).await.unwrap();

    let err = store
        .transition(id, Completed, Some("skip ahead"))
        .await
        .unwrap_err();
    match &err {
        StoreError::IllegalTransition { id: got, error } => {
            assert_eq!(got, id);
            assert_eq!(
                *error,
                CoreError::IllegalTransition {
                    from: Pending,
                    to: Completed
                }
            );
        }
        other => panic!("expected IllegalTransition, got {other}"),
    }
    let text = err.to_string();
    assert!(
        text.contains(id.as_str()) && text.contains("pending -> completed"),
        "{text}"
    );
    assert_eq!(status_of(&*store, id).await, Pending);
    assert_eq!(store.status_history(id).await.unwrap().len(), 1);

    // Completed and blocked are final.
    to_in_progress(&*store, id).await;
    store.transition(id, Completed, None).await.unwrap();
    for to in [InProgress, Cancelled, Failed, Pending] {
        assert!(matches!(
            store.transition(id, to, None).await,
            Err(StoreError::IllegalTransition { .. })
        ));
    }
    assert_eq!(status_of(&*store, id).await, Completed);
    assert_eq!(store.status_history(id).await.unwrap().len(), 4);
}

pub async fn concurrent_transitions(db: Arc<dyn Opener>) {
    // Two handles = two connection pools, as two workers would have.
    let a = db.open().await;
    let b = db.open().await;
    for round in 0..8 {
        let task = Task::new(format!("race {round}"));
        let id = task.id.clone();
        a.create_task(&task).await.unwrap();
        to_in_progress(&*a, &id).await;

        let barrier = Arc::new(tokio::sync::Barrier::new(2));
        let racer = |store: Arc<dyn Store>, to: TaskStatus| {
            let (id, barrier) = (id.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                (to, store.transition(&id, to, Some("race")).await)
            })
        };
        let (first, second) = (racer(a.clone(), Completed), racer(b.clone(), Cancelled));
        let outcomes = [first.await.unwrap(), second.await.unwrap()];

        let winners: Vec<TaskStatus> = outcomes
            .iter()
            .filter(|(_, r)| r.is_ok())
            .map(|(to, _)| *to)
            .collect();
        assert_eq!(winners.len(), 1, "round {round}: {outcomes:?}");
        for (to, outcome) in &outcomes {
            match outcome {
                Ok(previous) => assert_eq!(*previous, InProgress),
                Err(StoreError::IllegalTransition { error, .. }) => {
                    assert_eq!(
                        *error,
                        CoreError::IllegalTransition {
                            from: winners[0],
                            to: *to
                        }
                    );
                }
                Err(other) => panic!("round {round}: unexpected error {other}"),
            }
        }
        assert_eq!(status_of(&*b, &id).await, winners[0]);
        let history = a.status_history(&id).await.unwrap();
        let terminal: Vec<_> = history.iter().filter(|c| c.to.is_terminal()).collect();
        assert_eq!(terminal.len(), 1, "round {round}: {history:?}");
        assert_eq!(terminal[0].to, winners[0]);
    }
}

pub async fn events_in_order_and_batch(db: Arc<dyn Opener>) {
    let store = db.open().await;
    let task = sample_task("events");
    let id = &task.id;
    store.create_task(&task).await.unwrap();

    let mut expected = vec![
        event(
            id,
            0,
            EventKind::Submitted {
                task: Box::new(task.clone()),
            },
        ),
        event(
            id,
            1,
            EventKind::Status {
                from: Pending,
                to: Routing,
                reason: None,
            },
        ),
    ];
    for e in &expected {
        store.append_event(e).await.unwrap();
    }
    // A batch, out of order.
    let batch = vec![
        event(
            id,
            5,
            EventKind::Warning {
                message: "retrying".into(),
            },
        ),
        event(
            id,
            3,
            EventKind::TextDelta {
                stage: "answer".into(),
                text: "Hel".into(),
            },
        ),
        event(
            id,
            4,
            EventKind::ModelCall {
                stage: "answer".into(),
                model: "gpt".into(),
                usage: Usage {
                    input_tokens: 3,
                    output_tokens: 4,
                    ..Usage::default()
                },
                cost_usd: None,
                duration_ms: 9,
            },
        ),
        event(
            id,
            2,
            EventKind::ToolCall {
                stage: "answer".into(),
                id: "call-1".into(),
                name: "bash".into(),
                arguments: json!({"command": "ls -la", "z": 1, "a": 2}),
            },
        ),
    ];
    store.append_events(&batch).await.unwrap();
    store.append_events(&[]).await.unwrap();
    expected.extend(batch);
    expected.sort_by_key(|e| e.seq);
    assert_eq!(store.events(id).await.unwrap(), expected);

    // Duplicates are rejected; a failing batch writes nothing.
    let dup = store
        .append_event(&event(
            id,
            3,
            EventKind::Warning {
                message: "x".into(),
            },
        ))
        .await;
    assert!(matches!(dup, Err(StoreError::AlreadyExists(_))), "{dup:?}");
    let mixed = [
        event(
            id,
            6,
            EventKind::Warning {
                message: "new".into(),
            },
        ),
        event(
            id,
            1,
            EventKind::Warning {
                message: "dup".into(),
            },
        ),
    ];
    let err = store.append_events(&mixed).await.unwrap_err();
    assert!(matches!(err, StoreError::AlreadyExists(_)), "{err}");
    assert!(err.to_string().contains(id.as_str()), "{err}");
    assert_eq!(store.events(id).await.unwrap(), expected);

    let orphan = store
        .append_event(&event(
            &"ghost".into(),
            0,
            EventKind::Warning {
                message: "?".into(),
            },
        ))
        .await;
    assert!(matches!(orphan, Err(StoreError::NotFound(_))), "{orphan:?}");
    assert!(store.events(&"ghost".into()).await.unwrap().is_empty());
}

/// Batches larger than one `INSERT` can bind (SQLite: 32,766 parameters,
/// 6,553 rows of five; PostgreSQL: 65,535) go in whole, or not at all.
pub async fn large_event_batches(db: Arc<dyn Opener>) {
    const N: u64 = 14_000;
    let store = db.open().await;
    let task = sample_task("many events");
    let id = &task.id;
    store.create_task(&task).await.unwrap();
    let warning = |seq: u64| {
        event(
            id,
            seq,
            EventKind::Warning {
                message: format!("w{seq}"),
            },
        )
    };
    let batch: Vec<_> = (0..N).map(warning).collect();
    store.append_events(&batch).await.unwrap();
    assert_eq!(store.events(id).await.unwrap(), batch);

    // The duplicate is in the last rows: the earlier ones must not stay.
    let mut next: Vec<_> = (N..2 * N).map(warning).collect();
    next.push(warning(N - 1));
    let err = store.append_events(&next).await.unwrap_err();
    assert!(matches!(err, StoreError::AlreadyExists(_)), "{err}");
    assert!(err.to_string().contains(id.as_str()), "{err}");
    assert_eq!(store.events(id).await.unwrap().len(), batch.len());

    // Events of several tasks in one batch; an unknown task fails it all.
    let other = sample_task("other");
    store.create_task(&other).await.unwrap();
    let mut mixed: Vec<_> = (N..N + 10).map(warning).collect();
    mixed.extend((0..10).map(|seq| {
        event(
            &other.id,
            seq,
            EventKind::Warning {
                message: "o".into(),
            },
        )
    }));
    store.append_events(&mixed).await.unwrap();
    assert_eq!(store.events(&other.id).await.unwrap().len(), 10);
    let ghost: TaskId = "ghost".into();
    let orphans: Vec<_> = (0..3)
        .map(|seq| {
            event(
                &ghost,
                seq,
                EventKind::Warning {
                    message: "?".into(),
                },
            )
        })
        .collect();
    let err = store.append_events(&orphans).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err}");
}

pub async fn stages_ordered_and_upsert(db: Arc<dyn Opener>) {
    let store = db.open().await;
    let task = sample_task("stages");
    let id = &task.id;
    store.create_task(&task).await.unwrap();

    let planning = stage("coordinator", "openai", "plan");
    let execution = stage("executor", "claude", "first try");
    let verification = stage("validator", "openai", "pass");
    store
        .put_stage(id, 2, "verification", &verification)
        .await
        .unwrap();
    store.put_stage(id, 0, "planning", &planning).await.unwrap();
    store
        .put_stage(id, 1, "execution", &execution)
        .await
        .unwrap();
    let names = |stages: &[(String, StageResult)]| {
        stages.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>()
    };
    let stored = store.stages(id).await.unwrap();
    assert_eq!(names(&stored), ["planning", "execution", "verification"]);
    assert_eq!(stored[0].1, planning);
    assert_eq!(stored[1].1, execution);

    let retried = StageResult {
        output: "second try".into(),
        verdict: Some("pass".into()),
        ..execution
    };
    store.put_stage(id, 1, "execution", &retried).await.unwrap();
    let stored = store.stages(id).await.unwrap();
    assert_eq!(stored.len(), 3);
    assert_eq!(stored[1], ("execution".to_owned(), retried));
    assert_eq!(stored[2].1, verification);

    let orphan = store.put_stage(&"ghost".into(), 0, "x", &planning).await;
    assert!(matches!(orphan, Err(StoreError::NotFound(_))), "{orphan:?}");
}

pub async fn finish_round_trip(db: Arc<dyn Opener>) {
    let store = db.open().await;
    let task = sample_task("finish");
    let id = &task.id;
    store.create_task(&task).await.unwrap();
    store.set_route(id, &route("hybrid")).await.unwrap();
    to_in_progress(&*store, id).await;

    let usage = Usage {
        input_tokens: 1200,
        output_tokens: 340,
        cache_read_tokens: 56,
        cache_write_tokens: 7,
    };
    let done = result(
        id,
        Completed,
        "hybrid",
        usage,
        Some(Money::from_nanos(123_456_789)),
        4321,
    );
    store.finish(&done).await.unwrap();

    let record = store.get_task(id).await.unwrap().unwrap();
    assert_eq!(record.status, Completed);
    assert_eq!(record.route, Some(route("hybrid")));
    let stored = record.result.expect("result stored");
    assert_eq!(stored, done);
    // Stage order survives (JSON text identical).
    assert_eq!(
        serde_json::to_string(&stored).unwrap(),
        serde_json::to_string(&done).unwrap()
    );
    let last = store.status_history(id).await.unwrap().pop().unwrap();
    assert_eq!((last.from, last.to), (Some(InProgress), Completed));

    let listed = store.list_tasks(&TaskFilter::default()).await.unwrap();
    assert_eq!(listed[0].duration_ms, Some(4321));
    assert_eq!(listed[0].cost, Some(Money::from_nanos(123_456_789)));
    assert_eq!(listed[0].platform.as_deref(), Some("hybrid"));

    // Finishing again is a transition from completed: refused, result kept.
    let again = store
        .finish(&result(id, Failed, "hybrid", usage, None, 1))
        .await;
    assert!(
        matches!(again, Err(StoreError::IllegalTransition { .. })),
        "{again:?}"
    );
    assert_eq!(
        store.get_task(id).await.unwrap().unwrap().result,
        Some(done)
    );

    // A pending task cannot jump to completed; nothing is written.
    let early = sample_task("too early");
    store.create_task(&early).await.unwrap();
    let refused = store
        .finish(&result(&early.id, Completed, "openai", usage, None, 1))
        .await;
    assert!(
        matches!(refused, Err(StoreError::IllegalTransition { .. })),
        "{refused:?}"
    );
    let record = store.get_task(&early.id).await.unwrap().unwrap();
    assert_eq!((record.status, record.result), (Pending, None));

    // A task already failed (say by a guardrail path) can still get its result.
    let failed = sample_task("already failed");
    store.create_task(&failed).await.unwrap();
    store
        .transition(&failed.id, Failed, Some("boom"))
        .await
        .unwrap();
    let failure = result(&failed.id, Failed, "claude", Usage::default(), None, 5);
    store.finish(&failure).await.unwrap();
    let record = store.get_task(&failed.id).await.unwrap().unwrap();
    assert_eq!((record.status, record.result), (Failed, Some(failure)));
    assert_eq!(store.status_history(&failed.id).await.unwrap().len(), 2);

    let ghost = store
        .finish(&result(&"ghost".into(), Completed, "x", usage, None, 1))
        .await;
    assert!(matches!(ghost, Err(StoreError::NotFound(_))), "{ghost:?}");
    let ghost_route = store.set_route(&"ghost".into(), &route("x")).await;
    assert!(
        matches!(ghost_route, Err(StoreError::NotFound(_))),
        "{ghost_route:?}"
    );
}

pub async fn list_filter_limit_order(db: Arc<dyn Opener>) {
    let store = db.open().await;
    assert!(
        store
            .list_tasks(&TaskFilter::default())
            .await
            .unwrap()
            .is_empty()
    );
    let base: DateTime<Utc> = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
    let mut tasks = Vec::new();
    for i in 0..6 {
        let mut task =
            Task::new(format!("task {i}")).with_type(TaskType::ALL[i % TaskType::ALL.len()]);
        task.created_at = base + Duration::seconds(i as i64);
        store.create_task(&task).await.unwrap();
        tasks.push(task);
    }
    // Tasks 1, 3 and 4 are routing; task 3 also has a platform.
    for i in [1, 3, 4] {
        store.transition(&tasks[i].id, Routing, None).await.unwrap();
    }
    store
        .set_route(&tasks[3].id, &route("claude"))
        .await
        .unwrap();

    let ids =
        |list: &[hybrid_store::TaskSummary]| list.iter().map(|s| s.id.clone()).collect::<Vec<_>>();
    let all = store.list_tasks(&TaskFilter::default()).await.unwrap();
    let newest_first: Vec<TaskId> = tasks.iter().rev().map(|t| t.id.clone()).collect();
    assert_eq!(ids(&all), newest_first);
    let s3 = &all[2];
    assert_eq!(s3.description, "task 3");
    assert_eq!(s3.task_type, tasks[3].task_type);
    assert_eq!(s3.status, Routing);
    assert_eq!(s3.platform.as_deref(), Some("claude"));
    assert_eq!(s3.created_at, tasks[3].created_at);
    assert_eq!((s3.duration_ms, s3.cost), (None, None));

    let two = store
        .list_tasks(&TaskFilter {
            status: None,
            limit: Some(2),
        })
        .await
        .unwrap();
    assert_eq!(ids(&two), newest_first[..2]);

    let routing = store
        .list_tasks(&TaskFilter {
            status: Some(Routing),
            limit: None,
        })
        .await
        .unwrap();
    assert_eq!(
        ids(&routing),
        [
            tasks[4].id.clone(),
            tasks[3].id.clone(),
            tasks[1].id.clone()
        ]
    );
    let one = store
        .list_tasks(&TaskFilter {
            status: Some(Routing),
            limit: Some(1),
        })
        .await
        .unwrap();
    assert_eq!(ids(&one), [tasks[4].id.clone()]);
    assert!(
        store
            .list_tasks(&TaskFilter {
                status: Some(Blocked),
                limit: None
            })
            .await
            .unwrap()
            .is_empty()
    );

    // The default limit is 50.
    for i in 0..50 {
        store
            .create_task(&Task::new(format!("bulk {i}")))
            .await
            .unwrap();
    }
    assert_eq!(
        store
            .list_tasks(&TaskFilter::default())
            .await
            .unwrap()
            .len(),
        50
    );
}

pub async fn metrics_count_guardrail_triggers(db: Arc<dyn Opener>) {
    let store = db.open().await;
    let trigger = |name: &str, detail: serde_json::Value| {
        let mut e = hybrid_store::AuditEntry::new("guardrails", "guardrail", "system");
        e.command = Some(name.to_owned());
        e.detail = detail;
        e
    };
    for entry in [
        trigger(
            "cost_limit",
            serde_json::json!({"outcome": "block", "guardrail": "cost_limit", "kind": "cost_limit", "message": "m"}),
        ),
        trigger(
            "cost_limit",
            serde_json::json!({"outcome": "block", "guardrail": "cost_limit", "kind": "cost_limit", "message": "m"}),
        ),
        trigger(
            "review",
            serde_json::json!({"outcome": "needs_approval", "guardrail": "review", "message": "m"}),
        ),
        hybrid_store::AuditEntry::new("executor", "bash_command", "system"),
    ] {
        store.append_audit(&entry).await.unwrap();
    }
    let m = store.metrics().await.unwrap();
    let map = |pairs: &[(&str, u64)]| pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect();
    assert_eq!(
        m.guardrail_triggers,
        map(&[("cost_limit", 2), ("review", 1)])
    );
    assert_eq!(
        m.guardrail_kinds,
        map(&[("cost_limit", 2), ("needs_approval", 1)])
    );
}

pub async fn metrics_known_data_set(db: Arc<dyn Opener>) {
    let store = db.open().await;
    let empty = store.metrics().await.unwrap();
    assert_eq!(empty, hybrid_store::MetricsSnapshot::default());

    let cent = Money::from_nanos(10_000_000);
    let usage = Usage {
        input_tokens: 100,
        output_tokens: 50,
        ..Usage::default()
    };
    for duration in [1000, 2000, 3000] {
        let task = Task::new("openai task");
        store.create_task(&task).await.unwrap();
        store.set_route(&task.id, &route("openai")).await.unwrap();
        to_in_progress(&*store, &task.id).await;
        store
            .finish(&result(
                &task.id,
                Completed,
                "openai",
                usage,
                Some(cent),
                duration,
            ))
            .await
            .unwrap();
    }
    let claude = Task::new("claude task");
    store.create_task(&claude).await.unwrap();
    to_in_progress(&*store, &claude.id).await;
    let claude_usage = Usage {
        input_tokens: 10,
        output_tokens: 5,
        cache_read_tokens: 7,
        cache_write_tokens: 3,
    };
    store
        .finish(&result(
            &claude.id,
            Failed,
            "claude",
            claude_usage,
            None,
            2000,
        ))
        .await
        .unwrap();
    // In flight: one pending, one in progress.
    store.create_task(&Task::new("waiting")).await.unwrap();
    let running = Task::new("running");
    store.create_task(&running).await.unwrap();
    to_in_progress(&*store, &running.id).await;

    let m = store.metrics().await.unwrap();
    assert_eq!(m.tasks_executed, 4);
    assert_eq!(m.tasks_in_flight, 2);
    assert_eq!(m.success_rate, 75.0);
    assert_eq!(m.avg_execution_time, 2.0);
    assert_eq!(m.platform_distribution.get("openai"), Some(&75.0));
    assert_eq!(m.platform_distribution.get("claude"), Some(&25.0));
    assert_eq!(m.platform_counts.get("openai"), Some(&3));
    assert_eq!(m.platform_counts.get("claude"), Some(&1));
    assert_eq!(m.platform_counts.len(), 2);
    let statuses: Vec<(&str, u64)> = m
        .status_counts
        .iter()
        .map(|(k, v)| (k.as_str(), *v))
        .collect();
    assert_eq!(
        statuses,
        [
            ("completed", 3),
            ("failed", 1),
            ("in_progress", 1),
            ("pending", 1)
        ]
    );
    assert_eq!(
        m.tokens,
        Usage {
            input_tokens: 310,
            output_tokens: 155,
            cache_read_tokens: 7,
            cache_write_tokens: 3
        }
    );
    assert_eq!(m.cost_usd, Money::from_nanos(30_000_000));
    assert_eq!(m.unpriced_tasks, 1);

    let json = serde_json::to_value(&m).unwrap();
    assert_eq!(json["platform_distribution"]["openai"], 75.0);
    assert_eq!(json["cost_usd"], 0.03);
}

pub async fn reopen_keeps_data(db: Arc<dyn Opener>) {
    let task = sample_task("durable");
    let id = task.id.clone();
    let events = vec![
        event(
            &id,
            0,
            EventKind::Submitted {
                task: Box::new(task.clone()),
            },
        ),
        event(
            &id,
            1,
            EventKind::Routed {
                route: route("claude"),
            },
        ),
    ];
    let planning = stage("coordinator", "openai", "plan");
    {
        let store = db.open().await;
        store.create_task(&task).await.unwrap();
        store.set_route(&id, &route("claude")).await.unwrap();
        to_in_progress(&*store, &id).await;
        store.append_events(&events).await.unwrap();
        store
            .put_stage(&id, 0, "planning", &planning)
            .await
            .unwrap();
    }
    let store = db.open().await;
    let record = store
        .get_task(&id)
        .await
        .unwrap()
        .expect("task survives reopening");
    assert_eq!(record.task, task);
    assert_eq!(record.status, InProgress);
    assert_eq!(record.route, Some(route("claude")));
    assert_eq!(store.events(&id).await.unwrap(), events);
    assert_eq!(
        store.stages(&id).await.unwrap(),
        [("planning".to_owned(), planning)]
    );
    assert_eq!(store.status_history(&id).await.unwrap().len(), 3);
    // And it keeps working.
    store.transition(&id, Completed, None).await.unwrap();
}

// ---- batches (`apply`) ----

/// A whole run's writes in one batch land as if made one by one.
pub async fn apply_batch_is_every_write_in_order(db: Arc<dyn Opener>) {
    let store = db.open().await;
    let task = sample_task("batched");
    let id = task.id.clone();
    store.create_task(&task).await.unwrap();
    let started = event(
        &id,
        0,
        EventKind::Warning {
            message: "e0".into(),
        },
    );
    let writes = vec![
        // A right belief about the status (no read) …
        StoreWrite::Transition {
            id: id.clone(),
            to: Routing,
            reason: Some("routing".into()),
            from: Some(Pending),
        },
        StoreWrite::SetRoute {
            id: id.clone(),
            route: route("claude"),
        },
        // … and a wrong one: the store reads the real status and moves from it.
        StoreWrite::Transition {
            id: id.clone(),
            to: InProgress,
            reason: None,
            from: Some(Pending),
        },
        StoreWrite::Events(vec![started.clone()]),
        StoreWrite::Audit(audit_entry(Some(&id), 1)),
        StoreWrite::Audit(audit_entry(Some(&id), 2)),
        StoreWrite::Stage {
            id: id.clone(),
            position: 0,
            name: "execution".into(),
            stage: stage("executor", "claude", "done"),
        },
        StoreWrite::Finish {
            result: result(&id, Completed, "claude", Usage::default(), None, 7),
            from: Some(InProgress),
        },
        StoreWrite::Events(vec![event(
            &id,
            1,
            EventKind::Warning {
                message: "e1".into(),
            },
        )]),
        StoreWrite::Release {
            id: id.clone(),
            owner: "nobody".into(),
        },
    ];
    store.apply(writes).await.unwrap();

    let record = store.get_task(&id).await.unwrap().unwrap();
    assert_eq!(record.status, Completed);
    assert_eq!(record.route, Some(route("claude")));
    let history: Vec<_> = store
        .status_history(&id)
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.from, c.to, c.reason))
        .collect();
    assert_eq!(
        history,
        [
            (None, Pending, None),
            (Some(Pending), Routing, Some("routing".into())),
            (Some(Routing), InProgress, None),
            (Some(InProgress), Completed, None),
        ]
    );
    let events = store.events(&id).await.unwrap();
    assert_eq!(events.iter().map(|e| e.seq).collect::<Vec<_>>(), [0, 1]);
    assert_eq!(store.stages(&id).await.unwrap().len(), 1);
    let audit = store.audit_records(&AuditFilter::default()).await.unwrap();
    assert_eq!(audit.iter().map(|r| r.seq).collect::<Vec<_>>(), [1, 2]);
    assert!(store.verify_audit().await.unwrap().is_valid());
    // An empty batch is nothing.
    store.apply(Vec::new()).await.unwrap();
}

/// One failing write undoes the whole batch, and its error is the one the
/// write's own method gives.
pub async fn apply_batch_is_all_or_nothing(db: Arc<dyn Opener>) {
    let store = db.open().await;
    let task = sample_task("all or nothing");
    let id = task.id.clone();
    store.create_task(&task).await.unwrap();
    let writes = vec![
        StoreWrite::Transition {
            id: id.clone(),
            to: Routing,
            reason: None,
            from: None,
        },
        StoreWrite::Events(vec![event(
            &id,
            0,
            EventKind::Warning {
                message: "x".into(),
            },
        )]),
        StoreWrite::Audit(audit_entry(Some(&id), 1)),
        // Illegal: routing cannot jump to completed.
        StoreWrite::Transition {
            id: id.clone(),
            to: Completed,
            reason: None,
            from: None,
        },
    ];
    let err = store.apply(writes).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::IllegalTransition { id: failed, .. } if *failed == id),
        "{err}"
    );
    assert_eq!(status_of(&*store, &id).await, Pending);
    assert!(store.events(&id).await.unwrap().is_empty());
    assert!(
        store
            .audit_records(&AuditFilter::default())
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.status_history(&id).await.unwrap().len(), 1);

    // A duplicate event: `AlreadyExists`, naming it; nothing of the batch stays.
    store
        .append_event(&event(
            &id,
            0,
            EventKind::Warning {
                message: "x".into(),
            },
        ))
        .await
        .unwrap();
    let err = store
        .apply(vec![
            StoreWrite::Transition {
                id: id.clone(),
                to: Routing,
                reason: None,
                from: None,
            },
            StoreWrite::Events(vec![event(
                &id,
                0,
                EventKind::Warning {
                    message: "y".into(),
                },
            )]),
        ])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::AlreadyExists(_)), "{err}");
    assert_eq!(status_of(&*store, &id).await, Pending);

    // A write for an unknown task: `NotFound`.
    let err = store
        .apply(vec![StoreWrite::SetRoute {
            id: "ghost".into(),
            route: route("claude"),
        }])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err}");
}

/// Batches from many tasks at once each commit whole, and the audit chain
/// they append to stays gapless and valid.
pub async fn apply_concurrent_batches_keep_the_chain(db: Arc<dyn Opener>) {
    let store = db.open().await;
    let mut handles = Vec::new();
    for n in 0..16 {
        let store = store.clone();
        handles.push(tokio::spawn(async move {
            let task = sample_task(&format!("concurrent batch {n}"));
            let id = task.id.clone();
            store.create_task(&task).await.unwrap();
            store
                .apply(vec![
                    StoreWrite::Transition {
                        id: id.clone(),
                        to: Routing,
                        reason: None,
                        from: None,
                    },
                    StoreWrite::Audit(audit_entry(Some(&id), n)),
                    StoreWrite::Events(vec![event(
                        &id,
                        0,
                        EventKind::Warning {
                            message: "e".into(),
                        },
                    )]),
                    StoreWrite::Audit(audit_entry(Some(&id), n + 100)),
                ])
                .await
                .unwrap();
            id
        }));
    }
    for handle in handles {
        let id = handle.await.unwrap();
        assert_eq!(status_of(&*store, &id).await, Routing);
    }
    let audit = store.audit_records(&AuditFilter::default()).await.unwrap();
    assert_eq!(
        audit.iter().map(|r| r.seq).collect::<Vec<_>>(),
        (1..=32).collect::<Vec<_>>()
    );
    assert!(store.verify_audit().await.unwrap().is_valid());
}

// ---- the audit trail ----

/// An entry like the seed's example, numbered `n`.
fn audit_entry(task: Option<&TaskId>, n: usize) -> AuditEntry {
    AuditEntry {
        task_id: task.cloned(),
        agent: "claude_executor".into(),
        action: if n.is_multiple_of(2) {
            "bash_command"
        } else {
            "tool_call"
        }
        .into(),
        command: (!n.is_multiple_of(3)).then(|| format!("systemctl status nginx # {n}")),
        output: Some(format!("active (running) {n}\nline two")),
        user: "system".into(),
        approved_by: (n.is_multiple_of(4)).then(|| "ops-team@company.com".to_owned()),
        detail: json!({"n": n, "exit_code": 0, "b": [1, "x"], "a": {"z": null, "y": 1.5}}),
    }
}

/// Appends `n` entries (the even ones for `task`), returning what was stored.
async fn append_n(store: &dyn Store, task: &TaskId, n: usize) -> Vec<AuditRecord> {
    let mut out = Vec::new();
    for i in 0..n {
        let task = (i % 2 == 0).then_some(task);
        out.push(store.append_audit(&audit_entry(task, i)).await.unwrap());
    }
    out
}

/// The first bad record verification names.
async fn first_bad(store: &dyn Store) -> BadRecord {
    let verification = store.verify_audit().await.unwrap();
    let records = verification.records;
    verification
        .first_bad
        .unwrap_or_else(|| panic!("verify passed a tampered chain of {records} records"))
}

pub async fn audit_chain_appends_and_verifies(db: Arc<dyn Opener>) {
    let store = db.open().await;
    let empty = store.verify_audit().await.unwrap();
    assert_eq!(
        (empty.records, empty.first_bad, empty.head_hash),
        (0, None, None)
    );

    let task = TaskId::generate();
    let written = append_n(&*store, &task, 25).await;
    for (i, record) in written.iter().enumerate() {
        assert_eq!(record.seq, i as u64 + 1);
        let prev = if i == 0 {
            GENESIS_HASH
        } else {
            &written[i - 1].hash
        };
        assert_eq!(record.prev_hash, prev);
        assert!(record.hash_is_valid().unwrap());
        assert_eq!(record.hash.len(), 64);
        assert_eq!(record.timestamp, record.timestamp.trunc_subsecs(6));
    }
    // Reads give back exactly what append returned.
    let all = store.audit_records(&AuditFilter::default()).await.unwrap();
    assert_eq!(all, written);
    assert_eq!(
        all[4].detail,
        json!({"a": {"y": 1.5, "z": null}, "b": [1, "x"], "exit_code": 0, "n": 4})
    );
    let of_task = store
        .audit_records(&AuditFilter {
            task_id: Some(task.clone()),
            after_seq: Some(10),
            limit: Some(3),
        })
        .await
        .unwrap();
    assert_eq!(
        of_task.iter().map(|r| r.seq).collect::<Vec<_>>(),
        [11, 13, 15]
    );
    assert!(of_task.iter().all(|r| r.task_id.as_ref() == Some(&task)));

    // Another handle (another process, say) continues the same chain.
    let other = db.open().await;
    let next = other.append_audit(&audit_entry(None, 99)).await.unwrap();
    assert_eq!(next.seq, 26);
    assert_eq!(next.prev_hash, written[24].hash);

    let verification = store.verify_audit().await.unwrap();
    assert!(verification.is_valid(), "{verification:?}");
    assert_eq!(verification.records, 26);
    assert_eq!(verification.head_hash.as_deref(), Some(next.hash.as_str()));
}

pub async fn audit_long_chain_verifies_across_pages(db: Arc<dyn Opener>) {
    let store = db.open().await;
    let n = hybrid_store::audit::VERIFY_PAGE as usize * 2 + 7;
    let task = TaskId::generate();
    for i in 0..n {
        store
            .append_audit(&audit_entry(Some(&task), i))
            .await
            .unwrap();
    }
    let verification = store.verify_audit().await.unwrap();
    assert!(verification.is_valid(), "{verification:?}");
    assert_eq!(verification.records, n as u64);
}

pub async fn audit_redacts_before_writing(db: Arc<dyn Opener>) {
    let store = db.open().await;
    let redactor = Redactor::new(["configured-key-value-123"]);
    let mut entry = audit_entry(None, 1);
    entry.command =
        Some("curl -H 'Authorization: Bearer abc.def' https://u:pw@h/?password=hunter2".into());
    entry.output = Some("key sk-ant-api03-abcdefghijklmnop and configured-key-value-123".into());
    entry.detail = json!({"api_key": "k", "env": ["GITHUB_TOKEN=ghp_x"]});
    // The store applies the built-in patterns on its own…
    let stored = store.append_audit(&entry).await.unwrap();
    assert_eq!(
        stored.command.as_deref(),
        Some(
            "curl -H 'Authorization: Bearer [REDACTED]' https://u:[REDACTED]@h/?password=[REDACTED]"
        )
    );
    assert_eq!(
        stored.output.as_deref(),
        Some("key [REDACTED] and configured-key-value-123")
    );
    assert_eq!(
        stored.detail,
        json!({"api_key": "[REDACTED]", "env": ["GITHUB_TOKEN=[REDACTED]"]})
    );
    // …and the configured values go when the caller redacts with them.
    let stored = store
        .append_audit(&hybrid_secrets::Redact::redacted(entry, &redactor))
        .await
        .unwrap();
    assert_eq!(
        stored.output.as_deref(),
        Some("key [REDACTED] and [REDACTED]")
    );
    let records = store.audit_records(&AuditFilter::default()).await.unwrap();
    let raw = format!("{:?}", records[1]);
    for secret in [
        "hunter2",
        "abc.def",
        "sk-ant",
        "pw@",
        "ghp_x",
        "configured-key-value-123",
    ] {
        assert!(!raw.contains(secret), "{secret} was written");
    }
    assert!(store.verify_audit().await.unwrap().is_valid());
}

pub async fn audit_concurrent_appends_stay_gapless(db: Arc<dyn Opener>) {
    // Two handles with their own pools, like two processes sharing the database.
    let stores = [db.open().await, db.open().await];
    let task = TaskId::generate();
    let handles: Vec<_> = (0..50)
        .map(|i| {
            let store = stores[i % 2].clone();
            let task = task.clone();
            tokio::spawn(async move { store.append_audit(&audit_entry(Some(&task), i)).await })
        })
        .collect();
    let mut seqs = Vec::new();
    for handle in handles {
        seqs.push(handle.await.unwrap().unwrap().seq);
    }
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=50).collect::<Vec<u64>>());
    let verification = stores[0].verify_audit().await.unwrap();
    assert!(verification.is_valid(), "{verification:?}");
    assert_eq!(verification.records, 50);
}

pub async fn audit_edit_is_named(db: Arc<dyn Opener>) {
    let store = db.open().await;
    append_n(&*store, &TaskId::generate(), 10).await;
    db.exec("UPDATE audit_log SET output = 'all good, nothing to see' WHERE seq = 4")
        .await;
    let bad = first_bad(&*store).await;
    assert_eq!(bad.seq, 4, "{bad}");
    assert_eq!(bad.reason, "hash mismatch: content edited");

    // Editing a field not shown in listings is caught too.
    let store = db.open().await;
    db.exec("UPDATE audit_log SET output = 'active (running) 3\nline two' WHERE seq = 4")
        .await;
    assert!(store.verify_audit().await.unwrap().is_valid());
    db.exec("UPDATE audit_log SET approved_by = 'mallory' WHERE seq = 8")
        .await;
    assert_eq!(first_bad(&*store).await.seq, 8);
}

pub async fn audit_delete_is_named(db: Arc<dyn Opener>) {
    let store = db.open().await;
    append_n(&*store, &TaskId::generate(), 10).await;
    db.exec("DELETE FROM audit_log WHERE seq = 5").await;
    let bad = first_bad(&*store).await;
    assert_eq!(bad.seq, 6, "{bad}");
    assert_eq!(bad.reason, "seq gap: record 5 missing");

    // Deleting and renumbering to hide the gap: the next record no longer
    // hashes at its new position.
    db.exec("UPDATE audit_log SET seq = -seq WHERE seq > 5")
        .await;
    db.exec("UPDATE audit_log SET seq = -seq - 1 WHERE seq < 0")
        .await;
    let bad = first_bad(&*store).await;
    assert_eq!(bad.seq, 5, "{bad}");
    assert!(bad.reason.starts_with("seq out of order"), "{bad}");
    assert_eq!(store.verify_audit().await.unwrap().records, 9);
}

pub async fn audit_insert_is_named(db: Arc<dyn Opener>) {
    let store = db.open().await;
    let written = append_n(&*store, &TaskId::generate(), 10).await;
    // Make room at 6 and insert a forgery that hashes correctly on its own
    // but cannot link to record 5 without its hash being recomputed.
    db.exec("UPDATE audit_log SET seq = -seq WHERE seq >= 6")
        .await;
    db.exec("UPDATE audit_log SET seq = -seq + 1 WHERE seq < 0")
        .await;
    let mut forged = written[5].clone();
    forged.seq = 6;
    forged.command = Some("rm -rf /var/log/nginx".into());
    forged.approved_by = Some("ops-team@company.com".into());
    forged.detail = json!({"forged": true});
    forged.prev_hash = "ab".repeat(32);
    forged.hash = forged.compute_hash().unwrap();
    db.exec(&format!(
        "INSERT INTO audit_log (seq, at, task_id, agent, action, command, output, user_name, \
         approved_by, detail, prev_hash, hash) VALUES (6, '{}', NULL, '{}', '{}', '{}', {}, '{}', \
         '{}', '{{\"forged\":true}}', '{}', '{}')",
        forged
            .timestamp
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        forged.agent,
        forged.action,
        forged.command.as_deref().unwrap_or_default(),
        forged
            .output
            .as_deref()
            .map_or("NULL".to_owned(), |o| format!("'{o}'")),
        forged.user,
        forged.approved_by.as_deref().unwrap_or_default(),
        forged.prev_hash,
        forged.hash,
    ))
    .await;
    assert!(forged.task_id.is_none());
    let verification = store.verify_audit().await.unwrap();
    assert_eq!(verification.records, 11);
    let bad = verification.first_bad.unwrap();
    assert_eq!(bad.seq, 6, "{bad}");
    assert!(
        bad.reason
            .starts_with("prev_hash does not match record 5: record inserted or deleted"),
        "{bad}"
    );
}

pub async fn audit_reorder_is_named(db: Arc<dyn Opener>) {
    let store = db.open().await;
    append_n(&*store, &TaskId::generate(), 10).await;
    db.exec("UPDATE audit_log SET seq = -3 WHERE seq = 3").await;
    db.exec("UPDATE audit_log SET seq = 3 WHERE seq = 4").await;
    db.exec("UPDATE audit_log SET seq = 4 WHERE seq = -3").await;
    let bad = first_bad(&*store).await;
    assert_eq!(bad.seq, 3, "{bad}");
    assert_eq!(
        bad.reason,
        "seq out of order: this record was written as record 4"
    );
}

// ---- approvals ----

fn new_approval(task: &TaskId, call: &str, command: &str) -> NewApproval {
    NewApproval {
        task_id: task.clone(),
        call_id: call.into(),
        agent: "claude_executor".into(),
        tool: "bash".into(),
        command: command.into(),
        rule: "git_push".into(),
        reason: "pushes to a remote".into(),
        expires_at: Some(Utc::now() + Duration::minutes(10)),
    }
}

/// A stored task and `n` approval requests for it, each requested later
/// than the one before.
async fn task_with_approvals(store: &dyn Store, n: usize) -> (TaskId, Vec<Approval>) {
    let task = Task::new("needs approval");
    store.create_task(&task).await.unwrap();
    let mut approvals = Vec::new();
    for i in 0..n {
        let new = new_approval(&task.id, &format!("call_{i}"), &format!("git push {i}"));
        let created = store.create_approval(&new).await.unwrap();
        clock_passes(created.requested_at).await;
        approvals.push(created);
    }
    (task.id, approvals)
}

fn ids(approvals: &[Approval]) -> Vec<&str> {
    approvals.iter().map(|a| a.id.as_str()).collect()
}

pub async fn approval_create_get_round_trip(db: Arc<dyn Opener>) {
    let store = db.open().await;
    let task = Task::new("push it");
    store.create_task(&task).await.unwrap();
    let new = new_approval(&task.id, "toolu_01", "git push origin main");
    let before = Utc::now().trunc_subsecs(6);
    let created = store.create_approval(&new).await.unwrap();

    assert!(created.id.starts_with("ap_"), "{}", created.id);
    assert_eq!(created.id.len(), 13, "{}", created.id);
    assert_eq!(created.task_id, task.id);
    assert_eq!(created.call_id, "toolu_01");
    assert_eq!(created.agent, "claude_executor");
    assert_eq!(created.tool, "bash");
    assert_eq!(created.command, "git push origin main");
    assert_eq!(created.rule, "git_push");
    assert_eq!(created.reason, "pushes to a remote");
    assert_eq!(created.status, ApprovalStatus::Pending);
    assert!(created.requested_at >= before);
    assert_eq!(
        created.expires_at,
        new.expires_at.map(|t| t.trunc_subsecs(6))
    );
    assert_eq!(created.decided_by, None);
    assert_eq!(created.decided_at, None);
    assert_eq!(created.note, None);

    // Read back by another handle, as another process would.
    let other = db.open().await;
    let got = other.get_approval(&created.id).await.unwrap().unwrap();
    assert_eq!(got, created);
    // Typed in upper case with blanks, it still names the same request.
    let typed = format!(" {} ", created.id.to_uppercase());
    assert_eq!(
        other.get_approval(&typed).await.unwrap(),
        Some(created.clone())
    );
    assert_eq!(other.get_approval("ap_0000000000").await.unwrap(), None);

    // JSON: snake_case status.
    let json = serde_json::to_value(&got).unwrap();
    assert_eq!(json["status"], "pending");
    let back: Approval = serde_json::from_value(json).unwrap();
    assert_eq!(back, got);

    // No expiry stored as none; ids differ.
    let mut forever = new_approval(&task.id, "toolu_02", "git push --tags");
    forever.expires_at = None;
    let second = store.create_approval(&forever).await.unwrap();
    assert_ne!(second.id, created.id);
    assert_eq!(
        store
            .get_approval(&second.id)
            .await
            .unwrap()
            .unwrap()
            .expires_at,
        None
    );
}

pub async fn approval_list_filters_and_order(db: Arc<dyn Opener>) {
    let store = db.open().await;
    let (a_task, a) = task_with_approvals(&*store, 3).await;
    let (b_task, b) = task_with_approvals(&*store, 2).await;
    store
        .decide_approval(&a[1].id, true, "alice", None)
        .await
        .unwrap();
    store
        .decide_approval(&b[0].id, false, "bob", None)
        .await
        .unwrap();

    let list = |filter: ApprovalFilter| {
        let store = store.clone();
        async move { store.list_approvals(&filter).await.unwrap() }
    };
    let pending = ApprovalStatus::Pending;

    // Everything, newest first.
    let all = list(ApprovalFilter::default()).await;
    assert_eq!(
        ids(&all),
        [&b[1].id, &b[0].id, &a[2].id, &a[1].id, &a[0].id]
    );
    // Pending: the queue, oldest first.
    let queue = list(ApprovalFilter {
        status: Some(pending),
        ..Default::default()
    })
    .await;
    assert_eq!(ids(&queue), [&a[0].id, &a[2].id, &b[1].id]);
    assert!(queue.iter().all(|x| x.status == pending));
    // Other statuses newest first.
    let approved = list(ApprovalFilter {
        status: Some(ApprovalStatus::Approved),
        ..Default::default()
    })
    .await;
    assert_eq!(ids(&approved), [&a[1].id]);
    let rejected = list(ApprovalFilter {
        status: Some(ApprovalStatus::Rejected),
        ..Default::default()
    })
    .await;
    assert_eq!(ids(&rejected), [&b[0].id]);
    let expired = list(ApprovalFilter {
        status: Some(ApprovalStatus::Expired),
        ..Default::default()
    })
    .await;
    assert!(expired.is_empty());
    // By task, and by task and status.
    let of_a = list(ApprovalFilter {
        task_id: Some(a_task.clone()),
        ..Default::default()
    })
    .await;
    assert_eq!(ids(&of_a), [&a[2].id, &a[1].id, &a[0].id]);
    let pending_of_b = list(ApprovalFilter {
        status: Some(pending),
        task_id: Some(b_task),
        limit: None,
    })
    .await;
    assert_eq!(ids(&pending_of_b), [&b[1].id]);
    // Limits keep the head of the order.
    let two_pending = list(ApprovalFilter {
        status: Some(pending),
        limit: Some(2),
        ..Default::default()
    })
    .await;
    assert_eq!(ids(&two_pending), [&a[0].id, &a[2].id]);
    let newest = list(ApprovalFilter {
        limit: Some(1),
        ..Default::default()
    })
    .await;
    assert_eq!(ids(&newest), [&b[1].id]);
    let unknown_task = list(ApprovalFilter {
        task_id: Some("no-such-task".into()),
        ..Default::default()
    })
    .await;
    assert!(unknown_task.is_empty());
}

pub async fn approval_approve_records_who_when_note(db: Arc<dyn Opener>) {
    let store = db.open().await;
    let (_, created) = task_with_approvals(&*store, 1).await;
    let id = &created[0].id;
    // Answered from another handle, as `hybrid approvals approve` would.
    let cli = db.open().await;
    let before = Utc::now().trunc_subsecs(6);
    let approved = cli
        .decide_approval(id, true, "alice", Some("ok, ship it"))
        .await
        .unwrap();
    assert_eq!(approved.status, ApprovalStatus::Approved);
    assert_eq!(approved.decided_by.as_deref(), Some("alice"));
    assert_eq!(approved.note.as_deref(), Some("ok, ship it"));
    let at = approved.decided_at.expect("decided_at");
    assert!(at >= before && at <= Utc::now(), "{at}");
    // Everything else unchanged.
    assert_eq!(approved.command, created[0].command);
    assert_eq!(approved.requested_at, created[0].requested_at);
    assert_eq!(approved.expires_at, created[0].expires_at);
    // The waiting handle sees the answer.
    assert_eq!(store.get_approval(id).await.unwrap(), Some(approved));
}

pub async fn approval_reject(db: Arc<dyn Opener>) {
    let store = db.open().await;
    let (_, created) = task_with_approvals(&*store, 2).await;
    let rejected = store
        .decide_approval(&created[0].id, false, "bob", Some("not on a Friday"))
        .await
        .unwrap();
    assert_eq!(rejected.status, ApprovalStatus::Rejected);
    assert_eq!(rejected.decided_by.as_deref(), Some("bob"));
    assert_eq!(rejected.note.as_deref(), Some("not on a Friday"));
    assert!(rejected.decided_at.is_some());
    // Without a note; by an id typed in upper case.
    let typed = created[1].id.to_uppercase();
    let plain = store
        .decide_approval(&typed, false, "carol", None)
        .await
        .unwrap();
    assert_eq!(plain.id, created[1].id);
    assert_eq!(plain.status, ApprovalStatus::Rejected);
    assert_eq!(plain.note, None);
    assert_eq!(
        store.get_approval(&created[1].id).await.unwrap(),
        Some(plain)
    );
}

pub async fn approval_double_decision_names_first_decider(db: Arc<dyn Opener>) {
    let store = db.open().await;
    let (_, created) = task_with_approvals(&*store, 1).await;
    let id = &created[0].id;
    let first = store
        .decide_approval(id, true, "alice", Some("fine"))
        .await
        .unwrap();
    let at = first.decided_at.unwrap();

    for (approve, by) in [(false, "bob"), (true, "carol")] {
        let err = db
            .open()
            .await
            .decide_approval(id, approve, by, Some("late"))
            .await
            .unwrap_err();
        match &err {
            StoreError::ApprovalClosed {
                id: closed,
                status,
                decided_by,
                decided_at,
            } => {
                assert_eq!(closed, id);
                assert_eq!(*status, ApprovalStatus::Approved);
                assert_eq!(decided_by, "alice");
                assert_eq!(*decided_at, at);
            }
            other => panic!("expected ApprovalClosed, got {other}"),
        }
        assert_eq!(
            err.to_string(),
            format!(
                "approval {id} is already approved (by alice at {})",
                at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            )
        );
    }
    // Expiring an answered request is refused the same way.
    let err = store.expire_approval(id, "too late").await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::ApprovalClosed {
                status: ApprovalStatus::Approved,
                ..
            }
        ),
        "{err}"
    );
    // The first answer stands.
    assert_eq!(store.get_approval(id).await.unwrap(), Some(first));
}

pub async fn approval_concurrent_deciders_one_wins(db: Arc<dyn Opener>) {
    // Two handles = two connection pools, as two `hybrid` processes would have.
    let a = db.open().await;
    let b = db.open().await;
    let (_, created) = task_with_approvals(&*a, 8).await;
    for (round, approval) in created.iter().enumerate() {
        let barrier = Arc::new(tokio::sync::Barrier::new(2));
        let racer = |store: Arc<dyn Store>, approve: bool, by: &'static str| {
            let (id, barrier) = (approval.id.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                store.decide_approval(&id, approve, by, Some("race")).await
            })
        };
        let (yes, no) = (
            racer(a.clone(), true, "alice"),
            racer(b.clone(), false, "bob"),
        );
        let outcomes = [yes.await.unwrap(), no.await.unwrap()];
        let winners: Vec<&Approval> = outcomes.iter().filter_map(|o| o.as_ref().ok()).collect();
        assert_eq!(winners.len(), 1, "round {round}: {outcomes:?}");
        let winner = winners[0];
        let loser = outcomes
            .iter()
            .find_map(|o| o.as_ref().err())
            .expect("one loser");
        match loser {
            StoreError::ApprovalClosed {
                status, decided_by, ..
            } => {
                assert_eq!(*status, winner.status, "round {round}");
                assert_eq!(
                    Some(decided_by),
                    winner.decided_by.as_ref(),
                    "round {round}"
                );
            }
            other => panic!("round {round}: unexpected error {other}"),
        }
        let expected = match winner.decided_by.as_deref() {
            Some("alice") => ApprovalStatus::Approved,
            Some("bob") => ApprovalStatus::Rejected,
            other => panic!("round {round}: decided by {other:?}"),
        };
        assert_eq!(winner.status, expected);
        assert_eq!(
            b.get_approval(&approval.id).await.unwrap().as_ref(),
            Some(winner)
        );
    }
}

pub async fn approval_expire(db: Arc<dyn Opener>) {
    let store = db.open().await;
    let (_, created) = task_with_approvals(&*store, 1).await;
    let id = &created[0].id;
    let expired = store
        .expire_approval(id, "no answer within 10m")
        .await
        .unwrap();
    assert_eq!(expired.status, ApprovalStatus::Expired);
    assert_eq!(expired.decided_by.as_deref(), Some("timeout"));
    assert_eq!(expired.note.as_deref(), Some("no answer within 10m"));
    assert!(expired.decided_at.is_some());
    assert_eq!(store.get_approval(id).await.unwrap(), Some(expired.clone()));
    assert_eq!(serde_json::to_value(&expired).unwrap()["status"], "expired");
    // An approval arriving after the timeout loses, naming the timeout.
    let err = store
        .decide_approval(id, true, "alice", None)
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with(&format!("approval {id} is already expired (by timeout at ")),
        "{err}"
    );
    let again = store.expire_approval(id, "again").await.unwrap_err();
    assert!(
        matches!(again, StoreError::ApprovalClosed { .. }),
        "{again}"
    );
}

pub async fn approval_unknown_id_or_task(db: Arc<dyn Opener>) {
    let store = db.open().await;
    let missing: TaskId = "no-such-task".into();
    let err = store
        .create_approval(&new_approval(&missing, "c", "git push"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::NotFound(t) if *t == missing),
        "{err}"
    );
    assert_eq!(err.to_string(), "task no-such-task not found");
    assert!(
        store
            .list_approvals(&ApprovalFilter::default())
            .await
            .unwrap()
            .is_empty()
    );

    for err in [
        store
            .decide_approval("ap_zzzzzzzzzz", true, "alice", None)
            .await
            .unwrap_err(),
        store
            .decide_approval("ap_zzzzzzzzzz", false, "alice", Some("n"))
            .await
            .unwrap_err(),
        store
            .expire_approval("ap_zzzzzzzzzz", "t")
            .await
            .unwrap_err(),
    ] {
        assert!(matches!(err, StoreError::NotFound(_)), "{err}");
        assert_eq!(err.to_string(), "approval ap_zzzzzzzzzz not found");
    }
    assert_eq!(store.get_approval("ap_zzzzzzzzzz").await.unwrap(), None);
    assert_eq!(store.get_approval("").await.unwrap(), None);
}

// ---------------------------------------------------------------- budgets

fn platform(name: &str) -> hybrid_store::BudgetScope {
    hybrid_store::BudgetScope::Platform(name.into())
}

fn charge(
    scopes: &[(hybrid_store::BudgetScope, Money)],
    amount: Money,
    note: &str,
) -> hybrid_store::BudgetCharge {
    hybrid_store::BudgetCharge {
        scopes: scopes.to_vec(),
        amount,
        task_id: TaskId::from("budget-task"),
        note: note.into(),
    }
}

pub async fn budget_reserve_within_and_exceeding(db: Arc<dyn Opener>) {
    use hybrid_store::{BudgetScope, ChargeOutcome, LedgerKind};
    let store = db.open().await;
    let openai = platform("openai");
    assert_eq!(store.budget_spent(&openai).await.unwrap(), Money::ZERO);
    let first = store
        .reserve_budget(&charge(&[(openai.clone(), usd(10.0))], usd(6.0), "est 1"))
        .await
        .unwrap();
    assert_eq!(
        first,
        ChargeOutcome::Charged {
            balances: vec![(openai.clone(), usd(6.0))]
        }
    );
    // Exactly to the limit is allowed.
    assert!(
        store
            .reserve_budget(&charge(&[(openai.clone(), usd(10.0))], usd(4.0), "est 2"))
            .await
            .unwrap()
            .is_charged()
    );
    let over = store
        .reserve_budget(&charge(&[(openai.clone(), usd(10.0))], usd(0.01), "est 3"))
        .await
        .unwrap();
    assert_eq!(
        over,
        ChargeOutcome::WouldExceed {
            scope: openai.clone(),
            spent: usd(10.0),
            limit: usd(10.0),
            amount: usd(0.01),
        }
    );
    assert_eq!(store.budget_spent(&openai).await.unwrap(), usd(10.0));
    let ledger = store.budget_ledger(None).await.unwrap();
    assert_eq!(ledger.len(), 2, "a refused reservation writes no row");
    assert_eq!(ledger[0].kind, LedgerKind::Reserve);
    assert_eq!(ledger[0].delta, usd(6.0));
    assert_eq!(ledger[0].note, "est 1");
    assert_eq!(ledger[0].scope, openai);
    assert_eq!(ledger[1].delta, usd(4.0));
    assert_eq!(ledger[0].task_id, TaskId::from("budget-task"));
    assert!(ledger[0].id < ledger[1].id);
    // A new scope with a limit below the amount is refused and left absent.
    let day = BudgetScope::Day(chrono::NaiveDate::from_ymd_opt(2026, 11, 24).unwrap());
    let refused = store
        .reserve_budget(&charge(&[(day.clone(), usd(1.0))], usd(2.0), "big"))
        .await
        .unwrap();
    assert!(!refused.is_charged());
    assert_eq!(store.budget_spent(&day).await.unwrap(), Money::ZERO);
    // A negative amount is refused as an error.
    assert!(
        store
            .reserve_budget(&charge(&[(day, usd(1.0))], Money::from_nanos(-1), "neg"))
            .await
            .is_err()
    );
}

pub async fn budget_settle_up_and_down(db: Arc<dyn Opener>) {
    use hybrid_store::LedgerKind;
    let store = db.open().await;
    let task = TaskId::from("budget-task");
    let scopes = vec![
        (hybrid_store::BudgetScope::Task(task.clone()), usd(1.0)),
        (platform("claude"), usd(1.0)),
    ];
    let names: Vec<_> = scopes.iter().map(|(s, _)| s.clone()).collect();
    assert!(
        store
            .reserve_budget(&charge(&scopes, usd(0.5), "estimate"))
            .await
            .unwrap()
            .is_charged()
    );
    // Actual below the estimate: the difference is given back.
    store
        .settle_budget(&names, usd(0.5), usd(0.2), &task, "actual")
        .await
        .unwrap();
    for scope in &names {
        assert_eq!(store.budget_spent(scope).await.unwrap(), usd(0.2));
    }
    // Actual above the estimate goes past the limit: always recorded.
    assert!(
        store
            .reserve_budget(&charge(&scopes, usd(0.7), "estimate 2"))
            .await
            .unwrap()
            .is_charged()
    );
    store
        .settle_budget(&names, usd(0.7), usd(1.3), &task, "actual 2")
        .await
        .unwrap();
    for scope in &names {
        assert_eq!(store.budget_spent(scope).await.unwrap(), usd(1.5));
    }
    assert!(
        !store
            .reserve_budget(&charge(&scopes, Money::ZERO, "nothing left"))
            .await
            .unwrap()
            .is_charged()
    );
    let ledger = store.budget_ledger(Some(&task)).await.unwrap();
    let settles: Vec<_> = ledger
        .iter()
        .filter(|e| e.kind == LedgerKind::Settle)
        .map(|e| e.delta)
        .collect();
    assert_eq!(settles, vec![usd(-0.3), usd(-0.3), usd(0.6), usd(0.6)]);
    assert_eq!(ledger.len(), 8);
    assert!(
        store
            .budget_ledger(Some(&TaskId::from("other")))
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn budget_several_scopes_all_or_none(db: Arc<dyn Opener>) {
    use hybrid_store::{BudgetScope, ChargeOutcome};
    let store = db.open().await;
    let alice = BudgetScope::Submitter("alice".into());
    let openai = platform("openai");
    let task = BudgetScope::Task(TaskId::from("t-1"));
    let scopes = vec![
        (task.clone(), usd(5.0)),
        (openai.clone(), usd(100.0)),
        (alice.clone(), usd(2.0)),
    ];
    let outcome = store
        .reserve_budget(&charge(&scopes, usd(1.5), "one"))
        .await
        .unwrap();
    let ChargeOutcome::Charged { balances } = outcome else {
        panic!("not charged: {outcome:?}");
    };
    assert_eq!(balances.len(), 3);
    assert!(balances.iter().all(|(_, spent)| *spent == usd(1.5)));
    // Alice's budget would go over: none of the three is charged.
    let outcome = store
        .reserve_budget(&charge(&scopes, usd(1.0), "two"))
        .await
        .unwrap();
    assert_eq!(
        outcome,
        ChargeOutcome::WouldExceed {
            scope: alice.clone(),
            spent: usd(1.5),
            limit: usd(2.0),
            amount: usd(1.0),
        }
    );
    for scope in [&task, &openai, &alice] {
        assert_eq!(store.budget_spent(scope).await.unwrap(), usd(1.5));
    }
    assert_eq!(store.budget_ledger(None).await.unwrap().len(), 3);
}

pub async fn budget_concurrent_reservers_never_exceed(db: Arc<dyn Opener>) {
    let a = db.open().await;
    let b = db.open().await;
    let scope = platform("openai");
    let mut handles = Vec::new();
    for i in 0..20 {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        let scope = scope.clone();
        handles.push(tokio::spawn(async move {
            store
                .reserve_budget(&charge(&[(scope, usd(10.0))], usd(1.0), &format!("r{i}")))
                .await
                .unwrap()
                .is_charged()
        }));
    }
    let mut charged = 0;
    for handle in handles {
        if handle.await.unwrap() {
            charged += 1;
        }
    }
    assert_eq!(charged, 10);
    assert_eq!(a.budget_spent(&scope).await.unwrap(), usd(10.0));
    assert_eq!(b.budget_ledger(None).await.unwrap().len(), 10);
}

pub async fn budget_survives_reopen(db: Arc<dyn Opener>) {
    let alice = hybrid_store::BudgetScope::Submitter("alice".into());
    {
        let store = db.open().await;
        assert!(
            store
                .reserve_budget(&charge(&[(alice.clone(), usd(3.0))], usd(2.0), "before"))
                .await
                .unwrap()
                .is_charged()
        );
    }
    let store = db.open().await;
    assert_eq!(store.budget_spent(&alice).await.unwrap(), usd(2.0));
    assert!(
        !store
            .reserve_budget(&charge(&[(alice.clone(), usd(3.0))], usd(2.0), "after"))
            .await
            .unwrap()
            .is_charged()
    );
    assert_eq!(store.budget_ledger(None).await.unwrap().len(), 1);
}

pub async fn budget_overlapping_scopes_in_any_order(db: Arc<dyn Opener>) {
    // Reservers name the same two scopes in opposite orders: no deadlock,
    // and the tighter limit holds.
    let a = db.open().await;
    let b = db.open().await;
    let tight = platform("a-tight");
    let loose = hybrid_store::BudgetScope::Submitter("z-loose".into());
    let mut handles = Vec::new();
    for i in 0..16 {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        let scopes = if i % 2 == 0 {
            vec![(tight.clone(), usd(5.0)), (loose.clone(), usd(100.0))]
        } else {
            vec![(loose.clone(), usd(100.0)), (tight.clone(), usd(5.0))]
        };
        handles.push(tokio::spawn(async move {
            store
                .reserve_budget(&charge(&scopes, usd(1.0), "r"))
                .await
                .unwrap()
                .is_charged()
        }));
    }
    let mut charged = 0;
    for handle in handles {
        charged += usize::from(handle.await.unwrap());
    }
    assert_eq!(charged, 5);
    assert_eq!(a.budget_spent(&tight).await.unwrap(), usd(5.0));
    assert_eq!(b.budget_spent(&loose).await.unwrap(), usd(5.0));
}

// ---- durability: the journal and leases ----

use hybrid_store::{JournalBegin, JournalState};
use std::time::Duration as StdDuration;

/// A fresh task in progress, for the journal and lease cases.
async fn running_task(store: &dyn Store, description: &str) -> TaskId {
    let task = sample_task(description);
    store.create_task(&task).await.unwrap();
    to_in_progress(store, &task.id).await;
    task.id
}

pub async fn journal_begin_finish_replay(db: Arc<dyn Opener>) {
    let store = db.open().await;
    let id = running_task(&*store, "journal").await;
    let key = "stage:diagnostics/cmd:0/attempt:1";

    assert_eq!(
        store.journal_begin(&id, key).await.unwrap(),
        JournalBegin::Started
    );
    let entries = store.journal(&id).await.unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].task_id, id);
    assert_eq!(entries[0].key, key);
    assert_eq!(entries[0].state, JournalState::Started);
    assert_eq!(entries[0].output, None);
    assert_eq!(entries[0].finished_at, None);

    let output = json!({"exit_code": 0, "stdout": "ok\n", "keys": {"z": 1, "a": [true, null]}});
    store.journal_finish(&id, key, &output).await.unwrap();
    // Replayed, from this handle and from another process's.
    let other = db.open().await;
    for s in [&store, &other] {
        assert_eq!(
            s.journal_begin(&id, key).await.unwrap(),
            JournalBegin::Finished(output.clone())
        );
    }
    let entries = other.journal(&id).await.unwrap();
    assert_eq!(entries.len(), 1, "replays add no entries");
    let entry = &entries[0];
    assert_eq!(entry.state, JournalState::Finished);
    assert_eq!(entry.output.as_ref(), Some(&output));
    let finished_at = entry.finished_at.expect("finished_at");
    assert!(finished_at >= entry.started_at);

    // Any JSON, `null` included, is an output.
    store.journal_begin(&id, "null").await.unwrap();
    store
        .journal_finish(&id, "null", &serde_json::Value::Null)
        .await
        .unwrap();
    assert_eq!(
        store.journal_begin(&id, "null").await.unwrap(),
        JournalBegin::Finished(serde_json::Value::Null)
    );

    // Keys belong to one task.
    let second = running_task(&*store, "second").await;
    assert_eq!(
        store.journal_begin(&second, key).await.unwrap(),
        JournalBegin::Started
    );
    // Unknown task.
    let err = store
        .journal_begin(&"no-such-task".into(), key)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err}");
    assert!(
        store
            .journal(&"no-such-task".into())
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn journal_interrupted_entry_is_reported(db: Arc<dyn Opener>) {
    let key = "stage:execution/call:toolu_01abc";
    let (id, started_at) = {
        // A process begins a tool call and dies before finishing it.
        let store = db.open().await;
        let id = running_task(&*store, "interrupted").await;
        assert!(store.journal_begin(&id, key).await.unwrap().is_started());
        let started_at = store.journal(&id).await.unwrap()[0].started_at;
        (id, started_at)
    };
    let store = db.open().await;
    assert_eq!(
        store.journal_begin(&id, key).await.unwrap(),
        JournalBegin::Interrupted { started_at }
    );
    // Asking again changes nothing.
    assert_eq!(
        store.journal_begin(&id, key).await.unwrap(),
        JournalBegin::Interrupted { started_at }
    );
    // The engine records its decision on the interrupted entry…
    let skipped = json!({"skipped": "interrupted"});
    store.journal_finish(&id, key, &skipped).await.unwrap();
    assert_eq!(
        store.journal_begin(&id, key).await.unwrap(),
        JournalBegin::Finished(skipped)
    );
    // …or tries again under the next attempt's key.
    assert!(
        store
            .journal_begin(&id, "stage:execution/call:toolu_01abc/attempt:2")
            .await
            .unwrap()
            .is_started()
    );
    let entries = store.journal(&id).await.unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0].started_at, started_at);
}

pub async fn journal_concurrent_begin_one_started(db: Arc<dyn Opener>) {
    // Two handles = two connection pools, as two processes would have.
    let a = db.open().await;
    let b = db.open().await;
    let id = running_task(&*a, "race").await;
    for round in 0..4 {
        let key = format!("stage:execution/cmd:{round}");
        let barrier = Arc::new(tokio::sync::Barrier::new(8));
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let store = if i % 2 == 0 { a.clone() } else { b.clone() };
                let (id, key, barrier) = (id.clone(), key.clone(), barrier.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    store.journal_begin(&id, &key).await.unwrap()
                })
            })
            .collect();
        let mut outcomes = Vec::new();
        for handle in handles {
            outcomes.push(handle.await.unwrap());
        }
        let started = outcomes.iter().filter(|o| o.is_started()).count();
        assert_eq!(started, 1, "round {round}: {outcomes:?}");
        assert!(
            outcomes
                .iter()
                .all(|o| matches!(o, JournalBegin::Started | JournalBegin::Interrupted { .. })),
            "round {round}: {outcomes:?}"
        );
    }
    assert_eq!(a.journal(&id).await.unwrap().len(), 4);
}

pub async fn journal_finish_errors_name_the_key(db: Arc<dyn Opener>) {
    let store = db.open().await;
    let id = running_task(&*store, "finish errors").await;
    let key = "stage:diagnostics/cmd:3/attempt:1";

    let err = store.journal_finish(&id, key, &json!(1)).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::JournalNotBegun { task, key: k } if task == &id && k == key),
        "{err}"
    );
    assert!(err.to_string().contains(key), "{err}");
    assert!(store.journal(&id).await.unwrap().is_empty());

    store.journal_begin(&id, key).await.unwrap();
    store
        .journal_finish(&id, key, &json!("first"))
        .await
        .unwrap();
    let err = store
        .journal_finish(&id, key, &json!("second"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::JournalFinished { task, key: k } if task == &id && k == key),
        "{err}"
    );
    assert!(err.to_string().contains(key), "{err}");
    assert!(err.to_string().contains(id.as_str()), "{err}");
    // The first output stands.
    assert_eq!(
        store.journal_begin(&id, key).await.unwrap(),
        JournalBegin::Finished(json!("first"))
    );

    let err = store
        .journal_finish(&"no-such-task".into(), key, &json!(1))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::JournalNotBegun { .. }), "{err}");
}

pub async fn journal_lists_in_begin_order(db: Arc<dyn Opener>) {
    let store = db.open().await;
    let id = running_task(&*store, "order").await;
    let other = running_task(&*store, "other").await;
    // Not alphabetical, and begun faster than the clock may tick.
    let keys: Vec<String> = (0..24)
        .map(|n| format!("stage:{}/cmd:{n}", ["z", "a", "m"][n % 3]))
        .collect();
    for (n, key) in keys.iter().enumerate() {
        assert!(store.journal_begin(&id, key).await.unwrap().is_started());
        if n % 5 == 0 {
            store.journal_begin(&other, key).await.unwrap();
        }
    }
    // Finishing in another order does not reorder the listing.
    for key in keys.iter().rev().step_by(2) {
        store.journal_finish(&id, key, &json!(key)).await.unwrap();
    }
    let entries = store.journal(&id).await.unwrap();
    let listed: Vec<&str> = entries.iter().map(|e| e.key.as_str()).collect();
    let expected: Vec<&str> = keys.iter().map(String::as_str).collect();
    assert_eq!(listed, expected);
    for pair in entries.windows(2) {
        assert!(pair[0].started_at <= pair[1].started_at);
    }
    let finished = entries
        .iter()
        .filter(|e| e.state == JournalState::Finished)
        .count();
    assert_eq!(finished, 12);
    assert!(entries.iter().all(|e| e.task_id == id));
    assert_eq!(store.journal(&other).await.unwrap().len(), 5);
}

pub async fn journal_resume_after_failure(db: Arc<dyn Opener>) {
    // A run: two commands done, a third begun, then the process fails.
    let id = {
        let store = db.open().await;
        let id = running_task(&*store, "resume me").await;
        assert!(
            store
                .claim_task(&id, "worker-1", StdDuration::from_secs(30))
                .await
                .unwrap()
        );
        for n in 0..2 {
            let key = format!("stage:diagnostics/cmd:{n}/attempt:1");
            assert!(store.journal_begin(&id, &key).await.unwrap().is_started());
            store
                .journal_finish(&id, &key, &json!({"cmd": n}))
                .await
                .unwrap();
        }
        store
            .journal_begin(&id, "stage:diagnostics/cmd:2/attempt:1")
            .await
            .unwrap();
        store.transition(&id, Failed, Some("boom")).await.unwrap();
        store.release_task(&id, "worker-1").await.unwrap();
        id
    };
    // `hybrid tasks resume ID`, in another process.
    let store = db.open().await;
    assert!(
        store
            .claim_task(&id, "worker-2", StdDuration::from_secs(30))
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .transition(&id, InProgress, Some("resumed"))
            .await
            .unwrap(),
        Failed
    );
    for n in 0..2 {
        assert_eq!(
            store
                .journal_begin(&id, &format!("stage:diagnostics/cmd:{n}/attempt:1"))
                .await
                .unwrap(),
            JournalBegin::Finished(json!({"cmd": n}))
        );
    }
    assert!(matches!(
        store
            .journal_begin(&id, "stage:diagnostics/cmd:2/attempt:1")
            .await
            .unwrap(),
        JournalBegin::Interrupted { .. }
    ));
    let record = store.get_task(&id).await.unwrap().unwrap();
    assert_eq!(record.status, InProgress);
    assert_eq!(record.lease_owner.as_deref(), Some("worker-2"));
}

pub async fn lease_claim_renew_release(db: Arc<dyn Opener>) {
    let store = db.open().await;
    let id = running_task(&*store, "lease").await;
    let ttl = StdDuration::from_secs(60);
    let before = store.get_task(&id).await.unwrap().unwrap();
    assert_eq!(before.lease_owner, None);
    assert_eq!(before.lease_until, None);

    let t0 = Utc::now();
    assert!(store.claim_task(&id, "alice", ttl).await.unwrap());
    let held = store.get_task(&id).await.unwrap().unwrap();
    assert_eq!(held.lease_owner.as_deref(), Some("alice"));
    let until = held.lease_until.expect("lease_until");
    // Now + 60 s, give or take the clocks of test and database.
    let slack = Duration::seconds(5);
    assert!(
        until > t0 + Duration::seconds(60) - slack,
        "{until} vs {t0}"
    );
    assert!(
        until < t0 + Duration::seconds(60) + slack,
        "{until} vs {t0}"
    );
    // Leases leave status and `updated_at` alone.
    assert_eq!(held.status, InProgress);
    assert_eq!(held.updated_at, before.updated_at);

    // Another owner is refused, and changes nothing.
    assert!(!store.claim_task(&id, "bob", ttl).await.unwrap());
    assert!(!store.renew_lease(&id, "bob", ttl).await.unwrap());
    store.release_task(&id, "bob").await.unwrap();
    let still = store.get_task(&id).await.unwrap().unwrap();
    assert_eq!(still.lease_owner.as_deref(), Some("alice"));
    assert_eq!(still.lease_until, Some(until));

    // The holder claims again (a renewal) and renews, each later.
    clock_passes(until - Duration::seconds(60)).await;
    assert!(store.claim_task(&id, "alice", ttl).await.unwrap());
    let reclaimed = store
        .get_task(&id)
        .await
        .unwrap()
        .unwrap()
        .lease_until
        .unwrap();
    assert!(reclaimed > until);
    clock_passes(reclaimed - Duration::seconds(60)).await;
    assert!(store.renew_lease(&id, "alice", ttl).await.unwrap());
    let renewed = store
        .get_task(&id)
        .await
        .unwrap()
        .unwrap()
        .lease_until
        .unwrap();
    assert!(renewed > reclaimed);

    // Released: no lease; another may claim at once; the old owner's renewal fails.
    store.release_task(&id, "alice").await.unwrap();
    let released = store.get_task(&id).await.unwrap().unwrap();
    assert_eq!(released.lease_owner, None);
    assert_eq!(released.lease_until, None);
    assert!(!store.renew_lease(&id, "alice", ttl).await.unwrap());
    store.release_task(&id, "alice").await.unwrap();
    assert!(store.claim_task(&id, "bob", ttl).await.unwrap());

    // Unknown task, bad ttl.
    let ghost: TaskId = "no-such-task".into();
    for err in [
        store.claim_task(&ghost, "alice", ttl).await.unwrap_err(),
        store.renew_lease(&ghost, "alice", ttl).await.unwrap_err(),
        store.release_task(&ghost, "alice").await.unwrap_err(),
    ] {
        assert!(matches!(err, StoreError::NotFound(_)), "{err}");
    }
    for bad in [StdDuration::ZERO, StdDuration::from_secs(u64::MAX)] {
        let err = store.claim_task(&id, "bob", bad).await.unwrap_err();
        assert!(matches!(err, StoreError::InvalidLeaseTtl { .. }), "{err}");
        let err = store.renew_lease(&id, "bob", bad).await.unwrap_err();
        assert!(matches!(err, StoreError::InvalidLeaseTtl { .. }), "{err}");
    }
    assert_eq!(
        store
            .get_task(&id)
            .await
            .unwrap()
            .unwrap()
            .lease_owner
            .as_deref(),
        Some("bob")
    );
}

/// Until when the task's lease runs.
async fn lease_until(store: &dyn Store, id: &TaskId) -> DateTime<Utc> {
    let record = store.get_task(id).await.unwrap().unwrap();
    record.lease_until.expect("a lease")
}

pub async fn lease_expired_is_taken_over(db: Arc<dyn Opener>) {
    let a = db.open().await;
    let b = db.open().await;
    let id = running_task(&*a, "takeover").await;
    let short = StdDuration::from_millis(300);
    let long = StdDuration::from_secs(60);

    assert!(a.claim_task(&id, "dead-worker", short).await.unwrap());
    assert!(!b.claim_task(&id, "rescuer", long).await.unwrap());
    // The holder stops renewing (it died); its lease runs out.
    clock_passes(lease_until(&*a, &id).await).await;
    assert!(b.claim_task(&id, "rescuer", long).await.unwrap());
    let record = a.get_task(&id).await.unwrap().unwrap();
    assert_eq!(record.lease_owner.as_deref(), Some("rescuer"));

    // The old holder, back from a long pause, has lost it for good.
    assert!(!a.renew_lease(&id, "dead-worker", short).await.unwrap());
    assert!(!a.claim_task(&id, "dead-worker", short).await.unwrap());
    a.release_task(&id, "dead-worker").await.unwrap();
    assert_eq!(
        b.get_task(&id)
            .await
            .unwrap()
            .unwrap()
            .lease_owner
            .as_deref(),
        Some("rescuer")
    );

    // An expired lease nobody took is still its owner's to renew.
    assert!(b.renew_lease(&id, "rescuer", short).await.unwrap());
    clock_passes(lease_until(&*b, &id).await).await;
    assert!(b.renew_lease(&id, "rescuer", long).await.unwrap());
    assert!(!a.claim_task(&id, "third", long).await.unwrap());
}

pub async fn lease_concurrent_claimers_one_wins(db: Arc<dyn Opener>) {
    let a = db.open().await;
    let b = db.open().await;
    let id = running_task(&*a, "claim race").await;
    let barrier = Arc::new(tokio::sync::Barrier::new(8));
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let store = if i % 2 == 0 { a.clone() } else { b.clone() };
            let (id, barrier) = (id.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                let owner = format!("worker-{i}");
                let won = store
                    .claim_task(&id, &owner, StdDuration::from_secs(60))
                    .await
                    .unwrap();
                (owner, won)
            })
        })
        .collect();
    let mut winners = Vec::new();
    for handle in handles {
        let (owner, won) = handle.await.unwrap();
        if won {
            winners.push(owner);
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    assert_eq!(
        a.get_task(&id).await.unwrap().unwrap().lease_owner,
        Some(winners[0].clone())
    );
}
