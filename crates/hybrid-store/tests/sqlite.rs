//! The store suite against SQLite files (WAL mode) in a temporary directory.

#![cfg(test)]

#[macro_use]
mod common;

use std::sync::Arc;

use common::{BoxFuture, Harness, Opener};
use hybrid_store::Store;

struct SqliteFile {
    _dir: tempfile::TempDir,
    url: String,
}

impl Opener for SqliteFile {
    fn open(&self) -> BoxFuture<'_, Arc<dyn Store>> {
        Box::pin(async move {
            let store = hybrid_store::connect(&self.url).await.unwrap();
            assert_eq!(store.backend(), "sqlite");
            store
        })
    }
}

/// A fresh database file under a not-yet-existing directory of a temp dir.
async fn setup() -> Option<Harness> {
    let dir = tempfile::tempdir().unwrap();
    let url = hybrid_store::default_sqlite_url(dir.path());
    Some(Harness {
        opener: Arc::new(SqliteFile { _dir: dir, url }),
        cleanup: None,
    })
}

store_suite!(setup);

#[tokio::test]
async fn file_is_created_in_wal_mode() {
    let dir = tempfile::tempdir().unwrap();
    let url = hybrid_store::default_sqlite_url(dir.path());
    let store = hybrid_store::SqliteStore::connect(&url).await.unwrap();
    assert!(dir.path().join(".hybrid/hybrid.db").is_file());
    let (mode,): (String,) = sqlx::query_as("PRAGMA journal_mode")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(mode, "wal");
    let (fk,): (i64,) = sqlx::query_as("PRAGMA foreign_keys")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(fk, 1);
    let (timeout,): (i64,) = sqlx::query_as("PRAGMA busy_timeout")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(timeout, 10_000);
    // WAL with `synchronous = NORMAL` (1).
    let (sync,): (i64,) = sqlx::query_as("PRAGMA synchronous")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(sync, 1);
}

#[tokio::test]
async fn in_memory_database_works_and_is_private() {
    let a = hybrid_store::connect("sqlite::memory:").await.unwrap();
    let b = hybrid_store::connect("sqlite::memory:").await.unwrap();
    let task = hybrid_core::Task::new("in memory");
    a.create_task(&task).await.unwrap();
    assert!(a.get_task(&task.id).await.unwrap().is_some());
    assert!(b.get_task(&task.id).await.unwrap().is_none());
}
