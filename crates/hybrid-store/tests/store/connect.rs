//! Opening stores by URL.

use hybrid_store::StoreError;

#[tokio::test]
async fn unsupported_url_names_the_scheme() {
    for (url, scheme) in [
        ("mysql://root:hunter2@db/x", "mysql"),
        ("redis://localhost", "redis"),
        ("hybrid.db", "hybrid.db"),
    ] {
        let err = hybrid_store::connect(url).await.unwrap_err();
        assert!(
            matches!(&err, StoreError::UnsupportedUrl { scheme: s } if s == scheme),
            "{err}"
        );
        let text = err.to_string();
        assert!(
            text.starts_with(&format!("unsupported database URL scheme `{scheme}`")),
            "{text}"
        );
        assert!(!text.contains("hunter2"), "{text}");
        assert!(!text.contains('\n'));
    }
}

#[tokio::test]
async fn sqlite_memory_url_connects() {
    let store = hybrid_store::connect("sqlite::memory:").await.unwrap();
    assert_eq!(store.backend(), "sqlite");
    assert_eq!(store.metrics().await.unwrap().tasks_executed, 0);
}

#[tokio::test]
async fn nested_sqlite_path_creates_parent_dirs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a/b/c/state.db");
    let url = format!("sqlite://{}", path.display());
    hybrid_store::connect(&url).await.unwrap();
    assert!(path.is_file());
}
