//! Opening a store from a database URL.

use std::path::Path;
use std::sync::Arc;

use hybrid_secrets::Redactor;

use crate::{PostgresStore, RedactingStore, SqliteStore, Store, StoreError};

/// Opens the store a URL names and runs its migrations. Every write is redacted with the
/// built-in secret patterns ([`RedactingStore`]); [`connect_redacted`] adds configured
/// secret values.
///
/// | URL | backend |
/// | --- | --- |
/// | `sqlite://path/to/file.db` (relative or, with a third `/`, absolute) | SQLite file; parent directories and the file are created; WAL, `synchronous = NORMAL`, 10 s busy timeout, foreign keys on; writes queue at one writer connection |
/// | `sqlite::memory:` | private in-memory SQLite, gone when the store is dropped |
/// | `postgres://…`, `postgresql://…` | PostgreSQL |
///
/// Anything else is [`StoreError::UnsupportedUrl`], naming the scheme (never
/// the rest of the URL, which may hold a password).
pub async fn connect(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    connect_redacted(url, Redactor::default()).await
}

/// [`connect`], with every write redacted by `redactor` (the built-in patterns and the
/// configured secret values it was built with).
pub async fn connect_redacted(url: &str, redactor: Redactor) -> Result<Arc<dyn Store>, StoreError> {
    let scheme = url.split_once(':').map_or(url, |(scheme, _)| scheme);
    let backend: Arc<dyn Store> = match scheme {
        "sqlite" => Arc::new(SqliteStore::connect(url).await?),
        "postgres" | "postgresql" => Arc::new(PostgresStore::connect(url).await?),
        _ => {
            return Err(StoreError::UnsupportedUrl {
                scheme: scheme.to_owned(),
            });
        }
    };
    Ok(Arc::new(RedactingStore::new(backend, redactor)))
}

/// `sqlite://<workdir>/.hybrid/hybrid.db`, the embedded default.
///
/// `%`, `?` and `#` in the path are percent-encoded so the URL parses back to
/// the same file.
pub fn default_sqlite_url(workdir: &Path) -> String {
    let path = workdir.join(".hybrid").join("hybrid.db");
    let mut url = String::from("sqlite://");
    for c in path.to_string_lossy().chars() {
        match c {
            '%' => url.push_str("%25"),
            '?' => url.push_str("%3F"),
            '#' => url.push_str("%23"),
            c => url.push(c),
        }
    }
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_url_is_under_dot_hybrid() {
        assert_eq!(
            default_sqlite_url(Path::new("/w")),
            "sqlite:///w/.hybrid/hybrid.db"
        );
        assert_eq!(
            default_sqlite_url(Path::new("/a?b#c%")),
            "sqlite:///a%3Fb%23c%25/.hybrid/hybrid.db"
        );
    }

    #[tokio::test]
    async fn unknown_schemes_are_named() {
        let err = connect("mysql://root:secret@localhost/db")
            .await
            .unwrap_err();
        assert!(matches!(&err, StoreError::UnsupportedUrl { scheme } if scheme == "mysql"));
        assert!(err.to_string().contains("`mysql`"));
        assert!(!err.to_string().contains("secret"));
    }
}
