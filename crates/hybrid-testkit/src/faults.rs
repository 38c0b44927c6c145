//! [`Fault`]: the failures a script can ask for, and how each is sent in
//! either protocol, streamed or not.

use std::time::Duration;

use axum::response::Response;
use bytes::Bytes;
use serde_json::Value;

use crate::completion::Completion;
use crate::failure::Failure;
use crate::record::Protocol;
use crate::respond::{self, Ctx, Ending};
use crate::script::Turn;
use crate::{tokens, wire};

/// The text streamed before a [`Fault::CutStream`] or
/// [`Fault::MidStreamError`] fails, and used in [`Fault::MalformedJson`].
pub const FAULT_TEXT: &str = "This output is cut short by a scripted fault.";

/// A scripted failure.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// 429 with the provider's rate-limit body and `retry-after` (seconds)
    /// and/or `retry-after-ms` headers.
    RateLimited {
        /// Value of `retry-after`, if sent.
        retry_after_secs: Option<u64>,
        /// Value of `retry-after-ms`, if sent.
        retry_after_ms: Option<u64>,
    },
    /// 500: Anthropic `api_error`, OpenAI `server_error`.
    ServerError,
    /// Anthropic 529 `overloaded_error`; OpenAI 503 `server_error`.
    Overloaded,
    /// 400: Anthropic `invalid_request_error` "prompt is too long: N tokens >
    /// 200000 maximum"; OpenAI `context_length_exceeded` (128000 tokens).
    ContextTooLong,
    /// 401 in the provider's format.
    Unauthorized,
    /// 400 `invalid_request_error` with this message.
    BadRequest(String),
    /// 200 whose body (or second SSE event) is not valid JSON.
    MalformedJson,
    /// Streaming: this many SSE events, then the connection drops with no
    /// terminal event. Not streaming: half the body, then the connection drops.
    CutStream {
        /// Events sent before the cut (capped below the terminal event).
        after_events: usize,
    },
    /// Streaming: a few deltas, then Anthropic `event: error`
    /// (`overloaded_error`) / OpenAI `data: {"error": …}`. Not streaming: the
    /// same error as an HTTP response (529 / 500).
    MidStreamError,
    /// Anything else, verbatim. A `Value::String` body is sent as raw text,
    /// `Value::Null` as an empty body, anything else as JSON; `headers`
    /// replace same-named defaults (e.g. `content-type`).
    Status {
        /// HTTP status (invalid codes become 500).
        status: u16,
        /// Body.
        body: Value,
        /// Extra headers.
        headers: Vec<(String, String)>,
    },
}

/// Sends `fault` as the answer to the request in `ctx`.
pub(crate) fn render(fault: Fault, ctx: &Ctx) -> Response {
    match fault {
        Fault::RateLimited {
            retry_after_secs,
            retry_after_ms,
        } => {
            let mut headers = Vec::new();
            if let Some(secs) = retry_after_secs {
                headers.push(("retry-after".to_owned(), secs.to_string()));
            }
            if let Some(ms) = retry_after_ms {
                headers.push(("retry-after-ms".to_owned(), ms.to_string()));
            }
            let retry_after = retry_after_ms
                .map(Duration::from_millis)
                .or(retry_after_secs.map(Duration::from_secs));
            let failure = Failure::RateLimited {
                model: request_model(ctx),
                retry_after,
            };
            respond::failure(ctx, &failure, &headers)
        }
        Fault::ServerError => respond::failure(ctx, &Failure::ServerError, &[]),
        Fault::Overloaded => respond::failure(ctx, &Failure::Overloaded, &[]),
        Fault::ContextTooLong => {
            let failure = Failure::ContextTooLong {
                prompt_tokens: tokens::prompt(&ctx.body),
            };
            respond::failure(ctx, &failure, &[])
        }
        Fault::Unauthorized => {
            let failure = Failure::InvalidApiKey {
                presented: ctx.presented_key.clone(),
            };
            respond::failure(ctx, &failure, &[])
        }
        Fault::BadRequest(message) => respond::failure(ctx, &Failure::BadRequest(message), &[]),
        Fault::MalformedJson => malformed(ctx),
        Fault::CutStream { after_events } => cut(ctx, after_events),
        Fault::MidStreamError => mid_stream_error(ctx),
        Fault::Status {
            status,
            body,
            headers,
        } => {
            let status = axum::http::StatusCode::from_u16(status)
                .unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR);
            match body {
                Value::Null => respond::raw(ctx, status, Bytes::new(), None, &headers),
                Value::String(text) => respond::raw(
                    ctx,
                    status,
                    Bytes::from(text),
                    Some("text/plain; charset=utf-8"),
                    &headers,
                ),
                json => respond::json(ctx, status, &json, &headers),
            }
        }
    }
}

fn request_model(ctx: &Ctx) -> String {
    ctx.body
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or("mock-model")
        .to_owned()
}

fn fault_completion(ctx: &Ctx) -> Completion {
    Completion::resolve(&Turn::text(FAULT_TEXT), ctx.protocol, &ctx.body, None)
}

/// The longest prefix of `text` at most half its length, on a char boundary.
/// A strict prefix of a JSON object is never valid JSON.
fn first_half(text: &str) -> &str {
    let mut end = text.len() / 2;
    while end > 0 && !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

fn malformed(ctx: &Ctx) -> Response {
    let completion = fault_completion(ctx);
    if ctx.stream {
        // First event intact, then a truncated copy of the second, then the
        // rest of the stream, so a strict client fails on decoding rather
        // than on a missing terminal event.
        let events = wire::stream_events(ctx.protocol, &completion, ctx.include_usage);
        let mut out = Vec::with_capacity(events.len() + 1);
        for (i, event) in events.iter().enumerate() {
            if i == 1 {
                out.push(event.with_data(first_half(&event.data).to_owned()));
            }
            out.push(event.clone());
        }
        respond::sse(ctx, &out, Ending::Complete)
    } else {
        let body = wire::response_body(ctx.protocol, &completion).to_string();
        let broken = first_half(&body).to_owned();
        respond::raw(
            ctx,
            axum::http::StatusCode::OK,
            Bytes::from(broken),
            Some("application/json"),
            &[],
        )
    }
}

fn cut(ctx: &Ctx, after_events: usize) -> Response {
    let completion = fault_completion(ctx);
    if ctx.stream {
        let mut events = wire::stream_events(ctx.protocol, &completion, ctx.include_usage);
        let keep = after_events.min(events.len().saturating_sub(1));
        events.truncate(keep);
        respond::sse(ctx, &events, Ending::Cut)
    } else {
        let body = wire::response_body(ctx.protocol, &completion).to_string();
        let prefix = Bytes::from(first_half(&body).to_owned());
        respond::cut_body(ctx, prefix, "application/json")
    }
}

fn mid_stream_error(ctx: &Ctx) -> Response {
    if ctx.stream {
        let completion = fault_completion(ctx);
        let events = wire::mid_stream_error_events(
            ctx.protocol,
            &completion,
            ctx.include_usage,
            &ctx.request_id,
        );
        respond::sse(ctx, &events, Ending::Complete)
    } else {
        let failure = match ctx.protocol {
            Protocol::OpenAi => Failure::ServerError,
            Protocol::Anthropic => Failure::Overloaded,
        };
        respond::failure(ctx, &failure, &[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_is_invalid_json() {
        let text = r#"{"a":"ééé","b":[1,2,3]}"#;
        let half = first_half(text);
        assert!(text.starts_with(half));
        assert!(serde_json::from_str::<Value>(half).is_err());
    }
}
