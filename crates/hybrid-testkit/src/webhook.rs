//! [`WebhookRecorder`]: a webhook on 127.0.0.1:0 that records every JSON body
//! POSTed to it — where a workflow's `notify` stage (or, later, a server's
//! notifications) can be seen to arrive.
//!
//! ```
//! # async fn demo() -> std::io::Result<()> {
//! let hook = hybrid_testkit::WebhookRecorder::start().await?;
//! reqwest::Client::new().post(hook.url()).json(&serde_json::json!({"text": "hi"})).send().await.ok();
//! assert_eq!(hook.bodies()[0]["text"], "hi");
//! # Ok(()) }
//! ```

use std::sync::{Arc, Mutex, PoisonError};

use serde_json::Value;

/// A recording webhook; stops when dropped.
#[derive(Debug)]
pub struct WebhookRecorder {
    url: String,
    bodies: Arc<Mutex<Vec<Value>>>,
    server: tokio::task::JoinHandle<()>,
}

impl WebhookRecorder {
    /// Starts listening; POST `/hook` (any path works) with a JSON body.
    pub async fn start() -> std::io::Result<Self> {
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let seen = bodies.clone();
        let app = axum::Router::new().fallback(axum::routing::post(
            move |axum::Json(body): axum::Json<Value>| {
                let seen = seen.clone();
                async move {
                    seen.lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(body);
                    "ok"
                }
            },
        ));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let server = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::warn!(error = %e, "webhook recorder stopped");
            }
        });
        Ok(WebhookRecorder {
            url: format!("http://{addr}/hook"),
            bodies,
            server,
        })
    }

    /// `http://127.0.0.1:PORT/hook`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The bodies received so far, in order.
    pub fn bodies(&self) -> Vec<Value> {
        self.bodies
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Drop for WebhookRecorder {
    fn drop(&mut self) {
        self.server.abort();
    }
}
