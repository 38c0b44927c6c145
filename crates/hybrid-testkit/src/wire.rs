//! Dispatch from a [`Protocol`] to its wire module
//! ([`crate::openai_wire`] or [`crate::anthropic_wire`]).

use axum::http::StatusCode;
use serde_json::Value;

use crate::completion::Completion;
use crate::failure::Failure;
use crate::record::Protocol;
use crate::sse::SseEvent;
use crate::{anthropic_wire, ids, openai_wire};

/// The non-streamed response body.
pub(crate) fn response_body(protocol: Protocol, c: &Completion) -> Value {
    match protocol {
        Protocol::OpenAi => openai_wire::response(c),
        Protocol::Anthropic => anthropic_wire::response(c),
    }
}

/// The full event stream, terminal event last.
pub(crate) fn stream_events(
    protocol: Protocol,
    c: &Completion,
    include_usage: bool,
) -> Vec<SseEvent> {
    match protocol {
        Protocol::OpenAi => openai_wire::stream(c, include_usage),
        Protocol::Anthropic => anthropic_wire::stream(c),
    }
}

/// A few events, then the provider's in-stream error.
pub(crate) fn mid_stream_error_events(
    protocol: Protocol,
    c: &Completion,
    include_usage: bool,
    request_id: &str,
) -> Vec<SseEvent> {
    match protocol {
        Protocol::OpenAi => openai_wire::mid_stream_error(c, include_usage),
        Protocol::Anthropic => anthropic_wire::mid_stream_error(c, request_id),
    }
}

/// Status and body of an error.
pub(crate) fn error_body(
    protocol: Protocol,
    failure: &Failure,
    request_id: &str,
) -> (StatusCode, Value) {
    match protocol {
        Protocol::OpenAi => openai_wire::error_body(failure),
        Protocol::Anthropic => anthropic_wire::error_body(failure, request_id),
    }
}

/// The response header carrying the request id.
pub(crate) fn request_id_header(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::OpenAi => "x-request-id",
        Protocol::Anthropic => "request-id",
    }
}

/// A fresh request id.
pub(crate) fn new_request_id(protocol: Protocol) -> String {
    match protocol {
        Protocol::OpenAi => ids::openai_request(),
        Protocol::Anthropic => ids::anthropic_request(),
    }
}
