//! Store throughput on SQLite (a WAL file) and PostgreSQL (its own schema,
//! dropped afterwards):
//!
//! - **audit**: audit appends per second, one appender and eight concurrent
//!   ones, then verification of the whole chain;
//! - **lifecycle**: the writes one task run makes, in order — create,
//!   `routing`, route, `in_progress`, a batch of 8 events, a stage, finish
//!   (`completed`, the third status change): 7 commits per lifecycle. Run one
//!   after another (`1 task`), then 1,000 at once (`1000 tasks`): lifecycles
//!   and commits per second, and the per-lifecycle latency.
//!
//! ```text
//! cargo bench -p hybrid-store --bench audit [-- audit|lifecycle] [-- N]
//! ```
//!
//! `N` is the audit appends per run (default 2000) and the sequential
//! lifecycles (default 500). PostgreSQL comes from `HYBRID_TEST_POSTGRES_URL`
//! (default `postgres://postgres@127.0.0.1:5432/test`) and is skipped, with a
//! message, when unreachable.

#![allow(clippy::print_stdout)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use hybrid_core::{
    Event, EventKind, RouteInfo, StageResult, Stages, Task, TaskResult, TaskStatus, Usage,
};
use hybrid_store::{AuditEntry, Store, StoreError};
use serde_json::json;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
const CONCURRENCY: usize = 8;
/// Lifecycles started at once in the concurrent lifecycle row.
const CONCURRENT_TASKS: usize = 1000;
/// Commits one lifecycle makes.
const COMMITS_PER_LIFECYCLE: usize = 7;
/// Events in a lifecycle's batch.
const EVENTS_PER_BATCH: u64 = 8;

/// A typical tool-call record: a command, a few hundred bytes of output.
fn entry(n: usize) -> AuditEntry {
    let mut entry = AuditEntry::new("claude_executor", "bash_command", "system");
    entry.task_id = Some(format!("bench-task-{}", n % 16).into());
    entry.command = Some(format!("systemctl status nginx --lines={n}"));
    entry.output = Some("● nginx.service - A high performance web server\n".repeat(6));
    entry.detail = json!({"exit_code": 0, "duration_ms": 12, "rule": "allow:systemctl-status"});
    entry
}

/// Appends `n` records with `concurrency` appenders; appends per second.
async fn run(store: Arc<dyn Store>, n: usize, concurrency: usize) -> Result<f64, BoxError> {
    let start = Instant::now();
    let per = n / concurrency;
    let mut handles = Vec::new();
    for worker in 0..concurrency {
        let store = store.clone();
        handles.push(tokio::spawn(async move {
            for i in 0..per {
                store.append_audit(&entry(worker * per + i)).await?;
            }
            Ok::<(), StoreError>(())
        }));
    }
    for handle in handles {
        handle.await??;
    }
    Ok((per * concurrency) as f64 / start.elapsed().as_secs_f64())
}

async fn bench_audit(name: &str, store: Arc<dyn Store>, n: usize) -> Result<(), BoxError> {
    // Warm up the pool and the caches.
    run(store.clone(), 100, 1).await?;
    let single = run(store.clone(), n, 1).await?;
    let concurrent = run(store.clone(), n, CONCURRENCY).await?;
    let start = Instant::now();
    let verification = store.verify_audit().await?;
    let verify_rate = verification.records as f64 / start.elapsed().as_secs_f64();
    println!(
        "{name:<10} appends/s: {single:>8.0} (1 appender)  {concurrent:>8.0} ({CONCURRENCY} appenders)   \
         verify: {verify_rate:>8.0} records/s over {} records, valid={}",
        verification.records,
        verification.is_valid()
    );
    Ok(())
}

fn route() -> RouteInfo {
    RouteInfo {
        platform: "openai".into(),
        rule: "type_reasoning".into(),
        reason: "analysis goes to the reasoning layer".into(),
    }
}

fn stage() -> StageResult {
    StageResult {
        agent: "analyst".into(),
        platform: "openai".into(),
        model: Some("gpt-4o-mini".into()),
        output: "Quantum computers store information in qubits. ".repeat(4),
        usage: Usage {
            input_tokens: 50,
            output_tokens: 40,
            ..Usage::default()
        },
        cost_usd: None,
        tools_used: Vec::new(),
        tool_calls: Vec::new(),
        verdict: None,
        detail: None,
        finish_reason: Some("stop".into()),
        duration_ms: 3,
    }
}

/// The events a run buffers and flushes in one batch.
fn events(task: &Task) -> Vec<Event> {
    (0..EVENTS_PER_BATCH)
        .map(|seq| Event {
            task_id: task.id.clone(),
            seq,
            at: chrono::Utc::now(),
            kind: match seq {
                0 => EventKind::Submitted {
                    task: Box::new(task.clone()),
                },
                1 => EventKind::Routed { route: route() },
                _ => EventKind::TextDelta {
                    stage: "answer".into(),
                    text: format!("chunk {seq} of the answer"),
                },
            },
        })
        .collect()
}

/// One task's writes, in the order a run makes them; its wall time.
async fn lifecycle(store: &dyn Store, n: usize) -> Result<Duration, StoreError> {
    let start = Instant::now();
    let task = Task::new(format!("Explain quantum computing, take {n}"));
    let id = &task.id;
    store.create_task(&task).await?;
    store.transition(id, TaskStatus::Routing, None).await?;
    store.set_route(id, &route()).await?;
    store
        .transition(id, TaskStatus::InProgress, Some("routed to openai"))
        .await?;
    store.append_events(&events(&task)).await?;
    let stage = stage();
    store.put_stage(id, 0, "answer", &stage).await?;
    let mut stages = Stages::new();
    stages.insert("answer".into(), stage.clone());
    store
        .finish(&TaskResult {
            task_id: id.clone(),
            status: TaskStatus::Completed,
            platform: "openai".into(),
            route: route(),
            stages,
            output: stage.output,
            usage: stage.usage,
            cost_usd: None,
            duration_ms: 3,
            error: None,
        })
        .await?;
    Ok(start.elapsed())
}

/// Per-lifecycle latencies, sorted, and the wall time of them all.
struct Row {
    latencies: Vec<Duration>,
    wall: Duration,
}

impl Row {
    fn print(&self, name: &str, mode: &str) {
        let n = self.latencies.len();
        let pct = |p: f64| {
            let i = ((n as f64 * p).ceil() as usize).clamp(1, n) - 1;
            self.latencies[i].as_secs_f64() * 1000.0
        };
        let mean = self
            .latencies
            .iter()
            .map(Duration::as_secs_f64)
            .sum::<f64>()
            / n as f64;
        let rate = n as f64 / self.wall.as_secs_f64();
        println!(
            "{name:<10} {mode:<11} {n:>6} {:>9.1} {rate:>10.0} {:>10.0} {:>9.3} {:>9.3} {:>9.3} {:>9.3}",
            self.wall.as_secs_f64() * 1000.0,
            rate * COMMITS_PER_LIFECYCLE as f64,
            mean * 1000.0,
            pct(0.5),
            pct(0.99),
            pct(1.0),
        );
    }
}

async fn sequential(store: &dyn Store, n: usize) -> Result<Row, BoxError> {
    let start = Instant::now();
    let mut latencies = Vec::with_capacity(n);
    for i in 0..n {
        latencies.push(lifecycle(store, i).await?);
    }
    latencies.sort_unstable();
    Ok(Row {
        latencies,
        wall: start.elapsed(),
    })
}

async fn concurrent(store: Arc<dyn Store>, n: usize) -> Result<Row, BoxError> {
    let start = Instant::now();
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move { lifecycle(&*store, i).await })
        })
        .collect();
    let mut latencies = Vec::with_capacity(n);
    for handle in handles {
        latencies.push(handle.await??);
    }
    let wall = start.elapsed();
    latencies.sort_unstable();
    Ok(Row { latencies, wall })
}

async fn bench_lifecycle(name: &str, store: Arc<dyn Store>, n: usize) -> Result<(), BoxError> {
    // Warm up the pool and the caches.
    sequential(&*store, 20).await?;
    sequential(&*store, n).await?.print(name, "1 task");
    concurrent(store.clone(), CONCURRENT_TASKS)
        .await?
        .print(name, &format!("{CONCURRENT_TASKS} tasks"));
    let done = store.metrics().await?.tasks_executed;
    let expected = (20 + n + CONCURRENT_TASKS) as u64;
    if done != expected {
        return Err(format!("{name}: {done} tasks completed, expected {expected}").into());
    }
    Ok(())
}

/// What to run, from the command line.
#[derive(Clone, Copy)]
struct Args {
    audit: bool,
    lifecycle: bool,
    n: Option<usize>,
}

impl Args {
    fn parse() -> Self {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let named = |s: &str| args.iter().any(|a| a == s);
        let (audit, lifecycle) = match (named("audit"), named("lifecycle")) {
            (false, false) => (true, true),
            picked => picked,
        };
        Args {
            audit,
            lifecycle,
            n: args.iter().find_map(|a| a.parse().ok()),
        }
    }
}

async fn bench(name: &str, store: Arc<dyn Store>, args: Args) -> Result<(), BoxError> {
    if args.audit {
        bench_audit(name, store.clone(), args.n.unwrap_or(2000)).await?;
    }
    if args.lifecycle {
        bench_lifecycle(name, store, args.n.unwrap_or(500)).await?;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args = Args::parse();
    if args.lifecycle {
        println!(
            "lifecycle: {COMMITS_PER_LIFECYCLE} commits each; latencies in ms\n\
             {:<10} {:<11} {:>6} {:>9} {:>10} {:>10} {:>9} {:>9} {:>9} {:>9}",
            "backend",
            "mode",
            "tasks",
            "wall ms",
            "tasks/s",
            "commits/s",
            "mean",
            "p50",
            "p99",
            "max"
        );
    }

    let dir = std::env::temp_dir().join(format!("hybrid-audit-bench-{}", std::process::id()));
    let url = hybrid_store::default_sqlite_url(&dir);
    let result = match hybrid_store::connect(&url).await {
        Ok(store) => bench("sqlite", store, args).await,
        Err(e) => Err(e.into()),
    };
    let _ = std::fs::remove_dir_all(&dir);
    result?;

    let pg_url =
        std::env::var("HYBRID_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned());
    let schema = format!("bench_audit_{}", std::process::id());
    match hybrid_store::connect_postgres_in_schema(&pg_url, &schema).await {
        Ok(store) => {
            let result = bench("postgres", Arc::new(store), args).await;
            hybrid_store::drop_postgres_schema(&pg_url, &schema).await?;
            result?;
        }
        Err(e @ StoreError::Connection { .. }) => {
            println!("postgres   skipped: {e}");
        }
        Err(e) => return Err(e.into()),
    }
    Ok(())
}
