//! Anthropic Messages wire format: the `message` object with `text` and
//! `tool_use` content blocks, the named-event stream (`message_start`,
//! `content_block_start`, `ping`, `content_block_delta` with `text_delta` /
//! `input_json_delta`, `content_block_stop`, `message_delta`, `message_stop`,
//! `error`), and `{"type": "error", "error": {"type", "message"}, "request_id"}`
//! bodies.

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::completion::{CallOut, Completion, pieces};
use crate::failure::{Failure, NO_SCRIPTED_REPLY};
use crate::script::StopKind;
use crate::sse::SseEvent;

/// The context window the "prompt is too long" message reports.
pub(crate) const MAX_CONTEXT_TOKENS: u64 = 200_000;

/// How many text deltas precede an in-stream error.
const DELTAS_BEFORE_ERROR: usize = 2;

/// The `stop_reason` for a stop kind.
pub(crate) fn stop_reason(stop: &StopKind) -> &'static str {
    match stop {
        StopKind::Stop => "end_turn",
        StopKind::MaxTokens => "max_tokens",
        StopKind::ToolCalls => "tool_use",
        StopKind::StopSequence(_) => "stop_sequence",
        StopKind::ContentFilter => "refusal",
    }
}

fn stop_sequence(stop: &StopKind) -> Value {
    match stop {
        StopKind::StopSequence(sequence) => Value::String(sequence.clone()),
        _ => Value::Null,
    }
}

fn usage(c: &Completion, output_tokens: u64) -> Value {
    json!({
        "input_tokens": c.usage.input,
        "cache_creation_input_tokens": c.usage.cache_write,
        "cache_read_input_tokens": c.usage.cache_read,
        "output_tokens": output_tokens
    })
}

/// A content block of the response.
enum Block<'a> {
    Text(&'a str),
    ToolUse(&'a CallOut),
}

/// The blocks in order: a text block when there is text (or nothing else),
/// then one `tool_use` block per call.
fn blocks(c: &Completion) -> Vec<Block<'_>> {
    let mut blocks = Vec::new();
    if !c.text.is_empty() || c.tool_calls.is_empty() {
        blocks.push(Block::Text(&c.text));
    }
    blocks.extend(c.tool_calls.iter().map(Block::ToolUse));
    blocks
}

/// The non-streamed `message` object.
pub(crate) fn response(c: &Completion) -> Value {
    let content: Vec<Value> = blocks(c)
        .into_iter()
        .map(|block| match block {
            Block::Text(text) => json!({"type": "text", "text": text}),
            Block::ToolUse(call) => {
                json!({"type": "tool_use", "id": call.id, "name": call.name, "input": call.input})
            }
        })
        .collect();
    json!({
        "id": c.id,
        "type": "message",
        "role": "assistant",
        "model": c.model,
        "content": content,
        "stop_reason": stop_reason(&c.stop),
        "stop_sequence": stop_sequence(&c.stop),
        "usage": usage(c, c.usage.output)
    })
}

fn message_start(c: &Completion) -> SseEvent {
    // Like the API, `message_start` reports one output token so far.
    SseEvent::named(
        "message_start",
        &json!({
            "type": "message_start",
            "message": {
                "id": c.id,
                "type": "message",
                "role": "assistant",
                "model": c.model,
                "content": [],
                "stop_reason": null,
                "stop_sequence": null,
                "usage": usage(c, 1)
            }
        }),
    )
}

fn ping() -> SseEvent {
    SseEvent::named("ping", &json!({"type": "ping"}))
}

fn block_start(index: usize, block: &Block<'_>) -> SseEvent {
    let content_block = match block {
        Block::Text(_) => json!({"type": "text", "text": ""}),
        Block::ToolUse(call) => {
            json!({"type": "tool_use", "id": call.id, "name": call.name, "input": {}})
        }
    };
    SseEvent::named(
        "content_block_start",
        &json!({"type": "content_block_start", "index": index, "content_block": content_block}),
    )
}

fn block_deltas(index: usize, block: &Block<'_>, chunk_size: usize) -> Vec<SseEvent> {
    let (text, delta_type, field) = match block {
        Block::Text(text) => (*text, "text_delta", "text"),
        Block::ToolUse(call) => (call.arguments.as_str(), "input_json_delta", "partial_json"),
    };
    pieces(text, chunk_size)
        .into_iter()
        .map(|piece| {
            SseEvent::named(
                "content_block_delta",
                &json!({
                    "type": "content_block_delta",
                    "index": index,
                    "delta": {"type": delta_type, field: piece}
                }),
            )
        })
        .collect()
}

fn block_stop(index: usize) -> SseEvent {
    SseEvent::named(
        "content_block_stop",
        &json!({"type": "content_block_stop", "index": index}),
    )
}

/// The whole stream of a turn, ending with `message_stop`.
pub(crate) fn stream(c: &Completion) -> Vec<SseEvent> {
    let mut events = vec![message_start(c)];
    for (index, block) in blocks(c).iter().enumerate() {
        events.push(block_start(index, block));
        if index == 0 {
            events.push(ping());
        }
        events.extend(block_deltas(index, block, c.chunk_size));
        events.push(block_stop(index));
    }
    events.push(SseEvent::named(
        "message_delta",
        &json!({
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason(&c.stop), "stop_sequence": stop_sequence(&c.stop)},
            "usage": usage(c, c.usage.output)
        }),
    ));
    events.push(SseEvent::named(
        "message_stop",
        &json!({"type": "message_stop"}),
    ));
    events
}

/// A stream that starts the first block, sends a few deltas, then an
/// `event: error` with an `overloaded_error`, and no `message_stop`.
pub(crate) fn mid_stream_error(c: &Completion, request_id: &str) -> Vec<SseEvent> {
    let blocks = blocks(c);
    let mut events = vec![message_start(c)];
    if let Some(first) = blocks.first() {
        events.push(block_start(0, first));
        events.push(ping());
        let mut deltas = block_deltas(0, first, c.chunk_size);
        deltas.truncate(DELTAS_BEFORE_ERROR);
        events.extend(deltas);
    }
    let (_, mut error) = error_body(&Failure::Overloaded, request_id);
    if let Value::Object(object) = &mut error {
        // In-stream error events carry no request id.
        object.remove("request_id");
    }
    events.push(SseEvent::named("error", &error));
    events
}

/// Status and body of an error.
pub(crate) fn error_body(failure: &Failure, request_id: &str) -> (StatusCode, Value) {
    let invalid = "invalid_request_error";
    let (status, kind, message) = match failure {
        Failure::MissingApiKey => (
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            "x-api-key header is required".to_owned(),
        ),
        Failure::InvalidApiKey { .. } => (
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            "invalid x-api-key".to_owned(),
        ),
        Failure::MissingVersionHeader => (
            StatusCode::BAD_REQUEST,
            invalid,
            "anthropic-version: header is required".to_owned(),
        ),
        Failure::InvalidJsonBody => (
            StatusCode::BAD_REQUEST,
            invalid,
            "There was an issue with the request body: it is not a valid JSON object.".to_owned(),
        ),
        Failure::MissingField(field) => (
            StatusCode::BAD_REQUEST,
            invalid,
            format!("{field}: Field required"),
        ),
        Failure::NotFound { .. } => (
            StatusCode::NOT_FOUND,
            "not_found_error",
            "Not Found".to_owned(),
        ),
        Failure::NoScriptedReply => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "api_error",
            NO_SCRIPTED_REPLY.to_owned(),
        ),
        Failure::RateLimited { .. } => (
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limit_error",
            "This request would exceed the rate limit for your organization (mock) of 50 \
             requests per minute. For details, refer to: \
             https://docs.claude.com/en/api/rate-limits. You can see the response headers for \
             current usage. Please reduce the prompt length or the maximum tokens requested, \
             or try again later."
                .to_owned(),
        ),
        Failure::ServerError => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "api_error",
            "Internal server error".to_owned(),
        ),
        Failure::Overloaded => (
            overloaded_status(),
            "overloaded_error",
            "Overloaded".to_owned(),
        ),
        Failure::ContextTooLong { prompt_tokens } => (
            StatusCode::BAD_REQUEST,
            invalid,
            format!(
                "prompt is too long: {} tokens > {MAX_CONTEXT_TOKENS} maximum",
                MAX_CONTEXT_TOKENS.saturating_add(*prompt_tokens)
            ),
        ),
        Failure::BadRequest(message) => (StatusCode::BAD_REQUEST, invalid, message.clone()),
    };
    (
        status,
        json!({
            "type": "error",
            "error": {"type": kind, "message": message},
            "request_id": request_id
        }),
    )
}

/// Anthropic's non-standard 529.
fn overloaded_status() -> StatusCode {
    StatusCode::from_u16(529).unwrap_or(StatusCode::SERVICE_UNAVAILABLE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overloaded_is_529() {
        assert_eq!(overloaded_status().as_u16(), 529);
        let (status, body) = error_body(&Failure::MissingField("max_tokens"), "req_1");
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["error"]["message"], "max_tokens: Field required");
        assert_eq!(body["request_id"], "req_1");
    }
}
