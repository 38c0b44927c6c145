//! The store suite against PostgreSQL, each case in its own schema.
//!
//! The server comes from `HYBRID_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`). If it cannot be reached the
//! cases are skipped with a message, unless `CI` is set (to anything but empty, `0` or
//! `false`): then they fail.

use std::sync::Arc;
use std::time::Duration;

use crate::harness::{BoxFuture, Harness, Opener, wait_until};
use hybrid_core::TaskId;
use hybrid_store::{
    AuditEntry, Store, StoreError, connect_postgres_in_schema, drop_postgres_schema,
};

const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

struct PgSchema {
    url: String,
    schema: String,
}

impl Opener for PgSchema {
    fn open(&self) -> BoxFuture<'_, Arc<dyn Store>> {
        Box::pin(async move {
            let store = connect_postgres_in_schema(&self.url, &self.schema)
                .await
                .unwrap();
            assert_eq!(store.backend(), "postgres");
            Arc::new(store) as Arc<dyn Store>
        })
    }

    fn exec<'a>(&'a self, sql: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let store = connect_postgres_in_schema(&self.url, &self.schema)
                .await
                .unwrap();
            sqlx::raw_sql(sql).execute(store.pool()).await.unwrap();
            store.pool().close().await;
        })
    }
}

/// The server URL and a fresh schema `hs_<uuid>` in it (created and
/// migrated); `None` if the server is unreachable outside CI.
async fn fresh_schema() -> Option<(String, String)> {
    let url = std::env::var("HYBRID_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned());
    let schema = format!("hs_{}", TaskId::generate().as_str().replace('-', ""));
    match connect_postgres_in_schema(&url, &schema).await {
        Ok(_) => Some((url, schema)),
        Err(e @ StoreError::Connection { .. }) if !in_ci() => {
            eprintln!("skipping: PostgreSQL (HYBRID_TEST_POSTGRES_URL) unreachable: {e}");
            None
        }
        Err(e) => panic!("PostgreSQL (HYBRID_TEST_POSTGRES_URL) unusable: {e}"),
    }
}

/// Whether `CI` is set to something other than empty, `0` or `false`.
fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !matches!(v.as_str(), "" | "0" | "false"))
}

/// Opens handles in `schema` and drops it after the case.
fn harness(url: String, schema: String) -> Harness {
    let (cleanup_url, cleanup_schema) = (url.clone(), schema.clone());
    Harness {
        opener: Arc::new(PgSchema { url, schema }),
        cleanup: Some(Box::pin(async move {
            if let Err(e) = drop_postgres_schema(&cleanup_url, &cleanup_schema).await {
                eprintln!("could not drop test schema {cleanup_schema}: {e}");
            }
        })),
    }
}

async fn setup() -> Option<Harness> {
    let (url, schema) = fresh_schema().await?;
    Some(harness(url, schema))
}

store_suite!(setup);

#[tokio::test]
async fn connect_by_url_uses_postgres() {
    let Some((url, schema)) = fresh_schema().await else {
        return;
    };
    harness(url.clone(), schema.clone())
        .run(move |_| async move {
            // `connect` by URL, kept inside the test schema by a startup option.
            let sep = if url.contains('?') { '&' } else { '?' };
            let scoped = format!("{url}{sep}options=-c%20search_path%3D{schema}");
            let store = hybrid_store::connect(&scoped).await.unwrap();
            assert_eq!(store.backend(), "postgres");
            let task = hybrid_core::Task::new("by url");
            store.create_task(&task).await.unwrap();
            let in_schema = connect_postgres_in_schema(&url, &schema).await.unwrap();
            assert!(in_schema.get_task(&task.id).await.unwrap().is_some());
        })
        .await;
}

#[tokio::test]
async fn bad_schema_names_are_refused() {
    for bad in ["Upper", "1abc", "a-b", "x\"; DROP TABLE tasks; --", ""] {
        let err = connect_postgres_in_schema(DEFAULT_URL, bad)
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::InvalidSchema(_)), "{bad}: {err}");
    }
}

/// An append that loses the race for its position (another writer's insert
/// of the same `seq` is in flight) falls back to the locked path and lands
/// on the next position, chain intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_append_that_loses_a_race_retries_under_the_lock() {
    let Some((url, schema)) = fresh_schema().await else {
        return;
    };
    harness(url.clone(), schema.clone())
        .run(move |db| async move {
            let store = db.open().await;
            let mut entry = AuditEntry::new("executor", "tool_call", "system");
            let head = store.append_audit(&entry).await.unwrap();
            // Another writer's record 2, inserted but not yet committed.
            let mut rival = head.clone();
            rival.seq = 2;
            rival.prev_hash = head.hash.clone();
            rival.command = Some("from the rival".into());
            rival.hash = rival.compute_hash().unwrap();
            let pg = connect_postgres_in_schema(&url, &schema).await.unwrap();
            let mut tx = pg.pool().begin().await.unwrap();
            let (rival_pid,): (i32,) = sqlx::query_as("SELECT pg_backend_pid()")
                .fetch_one(&mut *tx)
                .await
                .unwrap();
            sqlx::query(
                "INSERT INTO audit_log (seq, at, task_id, agent, action, command, output, \
                 user_name, approved_by, detail, prev_hash, hash) \
                 VALUES (2, $1, NULL, $2, $3, $4, NULL, $5, NULL, 'null', $6, $7)",
            )
            .bind(rival.timestamp)
            .bind(&rival.agent)
            .bind(&rival.action)
            .bind(&rival.command)
            .bind(&rival.user)
            .bind(&rival.prev_hash)
            .bind(&rival.hash)
            .execute(&mut *tx)
            .await
            .unwrap();
            entry.command = Some("ours".into());
            let append = tokio::spawn({
                let store = store.clone();
                async move { store.append_audit(&entry).await }
            });
            // The append's insert waits for the rival's transaction.
            let watcher = connect_postgres_in_schema(&url, &schema).await.unwrap();
            wait_until(
                "the append to wait for the rival",
                Duration::from_secs(10),
                || async {
                    let (waiting,): (i64,) = sqlx::query_as(
                        "SELECT COUNT(*) FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))",
                    )
                    .bind(rival_pid)
                    .fetch_one(watcher.pool())
                    .await
                    .unwrap();
                    waiting > 0
                },
            )
            .await;
            assert!(
                !append.is_finished(),
                "the append did not wait for the rival"
            );
            tx.commit().await.unwrap();
            let ours = append.await.unwrap().unwrap();
            assert_eq!(ours.seq, 3);
            assert_eq!(ours.prev_hash, rival.hash);
            let verification = store.verify_audit().await.unwrap();
            assert!(verification.is_valid(), "{verification:?}");
            assert_eq!(verification.records, 3);
        })
        .await;
}
