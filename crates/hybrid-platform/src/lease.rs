//! Which process runs a task: a lease in the store, renewed while the run
//! lives, so `hybrid tasks resume` takes over only a task whose process died.

use std::sync::OnceLock;
use std::time::Duration;

/// How long a lease lasts without renewal.
pub const TTL: Duration = Duration::from_secs(60);

/// This process's lease owner name: `host:pid:random`, fixed for its life.
pub fn owner_id() -> String {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".to_owned());
        format!(
            "{host}:{}:{}",
            std::process::id(),
            uuid::Uuid::now_v7().simple()
        )
    })
    .clone()
}

/// Renews `task`'s lease every third of [`TTL`] until dropped.
#[derive(Debug)]
pub struct LeaseKeeper {
    handle: tokio::task::JoinHandle<()>,
}

impl LeaseKeeper {
    /// Starts renewing.
    pub fn start(
        store: std::sync::Arc<dyn hybrid_store::Store>,
        task: hybrid_core::TaskId,
    ) -> Self {
        let handle = tokio::spawn(async move {
            let owner = owner_id();
            let mut tick = tokio::time::interval(TTL / 3);
            tick.tick().await;
            loop {
                tick.tick().await;
                match store.renew_lease(&task, &owner, TTL).await {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::error!(task = %task, "lost the task's lease to another process");
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, task = %task, "could not renew the task's lease")
                    }
                }
            }
        });
        LeaseKeeper { handle }
    }
}

impl Drop for LeaseKeeper {
    fn drop(&mut self) {
        self.handle.abort();
    }
}
