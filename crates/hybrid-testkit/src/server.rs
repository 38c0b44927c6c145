//! [`MockLlmServer`]: an axum server on `127.0.0.1:0`, running on a tokio
//! task, scripted through its methods, shut down when dropped.

use axum::serve::ListenerExt;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::handler;
use crate::record::RecordedRequest;
use crate::script::Reply;
use crate::state::SharedState;

/// A mock LLM server speaking OpenAI Chat Completions and Anthropic Messages.
///
/// Dropping it stops accepting connections and cuts responses in flight.
#[derive(Debug)]
pub struct MockLlmServer {
    addr: SocketAddr,
    state: Arc<SharedState>,
    shutdown: watch::Sender<bool>,
}

impl MockLlmServer {
    /// Binds `127.0.0.1` on a free port and starts serving on a tokio task.
    /// Must be called inside a tokio runtime.
    pub async fn start() -> io::Result<MockLlmServer> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let (shutdown, signal) = watch::channel(false);
        let state = Arc::new(SharedState::new(signal.clone()));
        let app = Router::new()
            .fallback(handler::handle)
            .layer(DefaultBodyLimit::disable())
            .with_state(Arc::clone(&state));
        let mut signal = signal;
        tokio::spawn(async move {
            // Real API servers answer without Nagle delays; without TCP_NODELAY a
            // streamed reply stalls ~40 ms on a delayed ACK, which is not latency.
            let listener = listener.tap_io(|tcp| {
                let _ = tcp.set_nodelay(true);
            });
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    // An error means the sender is gone: shut down as well.
                    let _ = signal.wait_for(|down| *down).await;
                })
                .await;
            if let Err(error) = served {
                tracing::warn!(%error, "mock LLM server stopped with an error");
            }
        });
        Ok(MockLlmServer {
            addr,
            state,
            shutdown,
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The OpenAI base URL, `base_url() + "/v1"`: clients POST
    /// `{this}/chat/completions`.
    pub fn openai_base_url(&self) -> String {
        format!("{}/v1", self.base_url())
    }

    /// The Anthropic base URL, `base_url()`: clients POST `{this}/v1/messages`.
    pub fn anthropic_base_url(&self) -> String {
        self.base_url()
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Queues a reply. Replies are consumed first in, first out, one per
    /// accepted request to either endpoint (rejected requests consume none).
    pub fn enqueue(&self, reply: impl Into<Reply>) {
        self.state.enqueue(reply.into());
    }

    /// The reply used whenever the queue is empty. With `None` and an empty
    /// queue, requests get a 500 in the provider's error format with the
    /// message `mock: no scripted reply`.
    pub fn set_default(&self, reply: Option<Reply>) {
        self.state.set_default(reply);
    }

    /// A reply computed from each request's JSON body, used when the queue is
    /// empty (before the default; `None` from it falls through to the
    /// default). For agents that loop: answer a tool call until the last
    /// message is a tool result, then text.
    pub fn set_responder(
        &self,
        responder: impl Fn(&serde_json::Value) -> Option<Reply> + Send + Sync + 'static,
    ) {
        self.state
            .set_responder(Some(std::sync::Arc::new(responder)));
    }

    /// Removes the responder.
    pub fn clear_responder(&self) {
        self.state.set_responder(None);
    }

    /// Whether requests are kept for [`requests`](Self::requests) (default:
    /// yes). Benchmarks with many thousands of requests turn it off; they are
    /// still counted by [`request_count`](Self::request_count).
    pub fn keep_requests(&self, keep: bool) {
        self.state.keep_requests(keep);
    }

    /// When `Some`, any other key gets the provider's 401 authentication
    /// error. When `None`, any non-empty key is accepted (a missing key is
    /// still a 401).
    pub fn require_api_key(&self, key: Option<String>) {
        self.state.require_api_key(key);
    }

    /// Every request received, in arrival order, including rejected ones.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state.requests()
    }

    /// The most recent request, if any.
    pub fn last_request(&self) -> Option<RecordedRequest> {
        self.state.requests().pop()
    }

    /// How many requests were received.
    pub fn request_count(&self) -> usize {
        self.state.request_count()
    }

    /// How many queued replies are not consumed yet.
    pub fn queued_replies(&self) -> usize {
        self.state.queued()
    }

    /// Forgets every cached Anthropic prompt prefix, as if they had all
    /// expired: the next marked request writes the cache again. (The mock's
    /// entries never expire on their own.)
    pub fn clear_prompt_cache(&self) {
        self.state.clear_prompt_cache();
    }
}

impl Drop for MockLlmServer {
    fn drop(&mut self) {
        self.shutdown.send_replace(true);
    }
}
