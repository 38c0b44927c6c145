//! Building HTTP responses: JSON bodies, SSE streams that can end cleanly or
//! be cut, bodies that drop the connection, delayed first bytes. Every
//! response carries the provider's request-id header.

use std::io;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use serde_json::Value;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;

use crate::completion::Completion;
use crate::failure::Failure;
use crate::prompt_cache::CacheUsage;
use crate::record::Protocol;
use crate::script::{Reply, Turn};
use crate::sse::SseEvent;
use crate::{faults, wire};

/// How long a cut stream waits after its last event before dropping the
/// connection, so the client has read what was sent.
const CUT_GRACE: Duration = Duration::from_millis(20);

/// What the response needs to know about its request.
#[derive(Debug, Clone)]
pub(crate) struct Ctx {
    pub(crate) protocol: Protocol,
    /// The request body (JSON, or a string when it was not JSON).
    pub(crate) body: Value,
    /// `"stream": true` was asked for.
    pub(crate) stream: bool,
    /// OpenAI `stream_options.include_usage` was true.
    pub(crate) include_usage: bool,
    pub(crate) request_id: String,
    /// The API key the client sent (empty when none).
    pub(crate) presented_key: String,
    /// Becomes true when the server is dropped.
    pub(crate) shutdown: watch::Receiver<bool>,
    /// What the prompt cache read and wrote for this request (Anthropic
    /// requests with markers answered by a turn).
    pub(crate) prompt_cache: Option<CacheUsage>,
}

/// How a streamed body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ending {
    /// The body ends normally.
    Complete,
    /// The connection is dropped after the last chunk.
    Cut,
}

/// Answers a request with a scripted reply.
pub(crate) async fn render(reply: Reply, ctx: &Ctx) -> Response {
    match reply {
        Reply::Turn(turn) => render_turn(&turn, ctx).await,
        Reply::Fault(fault) => faults::render(fault, ctx),
    }
}

async fn render_turn(turn: &Turn, ctx: &Ctx) -> Response {
    if !turn.first_byte_delay.is_zero() && !wait(turn.first_byte_delay, ctx).await {
        return cut_body(ctx, Bytes::new(), "application/json");
    }
    let completion = Completion::resolve(turn, ctx.protocol, &ctx.body, ctx.prompt_cache);
    if ctx.stream {
        let events = wire::stream_events(ctx.protocol, &completion, ctx.include_usage);
        sse(ctx, &events, Ending::Complete)
    } else {
        json(
            ctx,
            StatusCode::OK,
            &wire::response_body(ctx.protocol, &completion),
            &[],
        )
    }
}

/// Sleeps for `delay`; false when the server shut down meanwhile.
async fn wait(delay: Duration, ctx: &Ctx) -> bool {
    let mut shutdown = ctx.shutdown.clone();
    tokio::select! {
        () = tokio::time::sleep(delay) => true,
        () = until_shutdown(&mut shutdown) => false,
    }
}

/// The provider's error response for `failure`.
pub(crate) fn failure(ctx: &Ctx, failure: &Failure, extra: &[(String, String)]) -> Response {
    let (status, body) = wire::error_body(ctx.protocol, failure, &ctx.request_id);
    json(ctx, status, &body, extra)
}

/// A JSON response.
pub(crate) fn json(
    ctx: &Ctx,
    status: StatusCode,
    body: &Value,
    extra: &[(String, String)],
) -> Response {
    raw(
        ctx,
        status,
        Bytes::from(body.to_string()),
        Some("application/json"),
        extra,
    )
}

/// A response with these bytes; `extra` headers replace same-named ones.
pub(crate) fn raw(
    ctx: &Ctx,
    status: StatusCode,
    body: Bytes,
    content_type: Option<&str>,
    extra: &[(String, String)],
) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    finish_headers(&mut response, ctx, content_type, extra);
    response
}

/// An SSE response sending `events`, then ending as `ending` says.
pub(crate) fn sse(ctx: &Ctx, events: &[SseEvent], ending: Ending) -> Response {
    let chunks = events.iter().map(SseEvent::encode).collect();
    let mut response = Response::new(streamed(chunks, ending, ctx.shutdown.clone()));
    finish_headers(&mut response, ctx, Some("text/event-stream"), &[]);
    set_header(&mut response, "cache-control", "no-cache");
    response
}

/// A 200 response that sends `prefix` and then drops the connection.
pub(crate) fn cut_body(ctx: &Ctx, prefix: Bytes, content_type: &str) -> Response {
    let mut response = Response::new(streamed(vec![prefix], Ending::Cut, ctx.shutdown.clone()));
    finish_headers(&mut response, ctx, Some(content_type), &[]);
    response
}

fn finish_headers(
    response: &mut Response,
    ctx: &Ctx,
    content_type: Option<&str>,
    extra: &[(String, String)],
) {
    if let Some(content_type) = content_type {
        set_header(response, header::CONTENT_TYPE.as_str(), content_type);
    }
    set_header(
        response,
        wire::request_id_header(ctx.protocol),
        &ctx.request_id,
    );
    let mut replaced: Vec<HeaderName> = Vec::new();
    for (name, value) in extra {
        let (Ok(name), Ok(value)) = (
            HeaderName::try_from(name.as_str()),
            HeaderValue::try_from(value.as_str()),
        ) else {
            tracing::warn!(%name, %value, "mock: skipping invalid scripted header");
            continue;
        };
        if !replaced.contains(&name) {
            response.headers_mut().remove(&name);
            replaced.push(name.clone());
        }
        response.headers_mut().append(name, value);
    }
}

fn set_header(response: &mut Response, name: &str, value: &str) {
    match (HeaderName::try_from(name), HeaderValue::try_from(value)) {
        (Ok(name), Ok(value)) => {
            response.headers_mut().insert(name, value);
        }
        _ => tracing::warn!(%name, %value, "mock: skipping invalid header"),
    }
}

/// A body fed chunk by chunk from a task; a cut body ends with an I/O error,
/// which makes the server drop the connection. The server shutting down
/// cuts every body in flight.
fn streamed(chunks: Vec<Bytes>, ending: Ending, mut shutdown: watch::Receiver<bool>) -> Body {
    let (tx, rx) = mpsc::channel::<Result<Bytes, io::Error>>(4);
    tokio::spawn(async move {
        for chunk in chunks {
            tokio::select! {
                sent = tx.send(Ok(chunk)) => if sent.is_err() { return },
                () = until_shutdown(&mut shutdown) => {
                    let _ = tx.send(Err(cut_error("server shut down"))).await;
                    return;
                }
            }
        }
        if ending == Ending::Cut {
            tokio::time::sleep(CUT_GRACE).await;
            let _ = tx.send(Err(cut_error("scripted cut"))).await;
        }
    });
    Body::from_stream(ReceiverStream::new(rx))
}

/// Resolves once the server is dropped (or its state is gone).
async fn until_shutdown(shutdown: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is dropped here, keeping callers `Send`.
    let _ = shutdown.wait_for(|down| *down).await;
}

fn cut_error(why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionAborted, format!("mock: {why}"))
}
