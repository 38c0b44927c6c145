//! Audit appends per second on SQLite (a WAL file) and PostgreSQL (its own
//! schema, dropped afterwards), one appender and eight concurrent ones.
//!
//! `cargo bench -p hybrid-store --bench audit` (optionally
//! `-- <appends-per-run>`, default 2000). PostgreSQL comes from
//! `HYBRID_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/test`)
//! and is skipped, with a message, when unreachable.

#![allow(clippy::print_stdout)]

use std::sync::Arc;
use std::time::Instant;

use hybrid_store::{AuditEntry, Store, StoreError};
use serde_json::json;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
const CONCURRENCY: usize = 8;

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

async fn bench(name: &str, store: Arc<dyn Store>, n: usize) -> Result<(), BoxError> {
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

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(2000);

    let dir = std::env::temp_dir().join(format!("hybrid-audit-bench-{}", std::process::id()));
    let url = hybrid_store::default_sqlite_url(&dir);
    let result = match hybrid_store::connect(&url).await {
        Ok(store) => bench("sqlite", store, n).await,
        Err(e) => Err(e.into()),
    };
    let _ = std::fs::remove_dir_all(&dir);
    result?;

    let pg_url =
        std::env::var("HYBRID_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned());
    let schema = format!("bench_audit_{}", std::process::id());
    match hybrid_store::connect_postgres_in_schema(&pg_url, &schema).await {
        Ok(store) => {
            let result = bench("postgres", Arc::new(store), n).await;
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
