//! OpenAI Chat Completions wire format: the `chat.completion` object, the
//! `chat.completion.chunk` stream (ending with `data: [DONE]`, with a final
//! `choices: []` usage chunk when `stream_options.include_usage` is set), and
//! `{"error": {"message", "type", "param", "code"}}` bodies.

use axum::http::StatusCode;
use serde_json::{Map, Value, json};

use crate::completion::{Completion, pieces};
use crate::failure::{Failure, NO_SCRIPTED_REPLY};
use crate::ids;
use crate::script::StopKind;
use crate::sse::SseEvent;

/// The context window the `context_length_exceeded` message reports.
pub(crate) const MAX_CONTEXT_TOKENS: u64 = 128_000;

/// How many text deltas precede an in-stream error.
const DELTAS_BEFORE_ERROR: usize = 2;

/// The `finish_reason` for a stop kind.
pub(crate) fn finish_reason(stop: &StopKind) -> &'static str {
    match stop {
        StopKind::Stop | StopKind::StopSequence(_) => "stop",
        StopKind::MaxTokens => "length",
        StopKind::ToolCalls => "tool_calls",
        StopKind::ContentFilter => "content_filter",
    }
}

fn usage(c: &Completion) -> Value {
    let u = c.usage;
    let prompt = u
        .input
        .saturating_add(u.cache_read)
        .saturating_add(u.cache_write);
    json!({
        "prompt_tokens": prompt,
        "completion_tokens": u.output,
        "total_tokens": prompt.saturating_add(u.output),
        "prompt_tokens_details": {"cached_tokens": u.cache_read, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0
        }
    })
}

/// The non-streamed `chat.completion` object.
pub(crate) fn response(c: &Completion) -> Value {
    let mut message = Map::new();
    message.insert("role".into(), json!("assistant"));
    let content = if c.text.is_empty() && !c.tool_calls.is_empty() {
        Value::Null
    } else {
        Value::String(c.text.clone())
    };
    message.insert("content".into(), content);
    message.insert("refusal".into(), Value::Null);
    message.insert("annotations".into(), json!([]));
    if !c.tool_calls.is_empty() {
        let calls: Vec<Value> = c
            .tool_calls
            .iter()
            .map(|call| {
                json!({
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments}
                })
            })
            .collect();
        message.insert("tool_calls".into(), Value::Array(calls));
    }
    json!({
        "id": c.id,
        "object": "chat.completion",
        "created": c.created,
        "model": c.model,
        "choices": [{
            "index": 0,
            "message": Value::Object(message),
            "logprobs": null,
            "finish_reason": finish_reason(&c.stop)
        }],
        "usage": usage(c),
        "service_tier": "default",
        "system_fingerprint": ids::fingerprint(&c.model)
    })
}

/// A `chat.completion.chunk` with these choices; `usage` is `null` when the
/// client asked for usage (only the final chunk carries it).
fn chunk(c: &Completion, choices: Value, include_usage: bool) -> Value {
    let mut object = Map::new();
    object.insert("id".into(), json!(c.id));
    object.insert("object".into(), json!("chat.completion.chunk"));
    object.insert("created".into(), json!(c.created));
    object.insert("model".into(), json!(c.model));
    object.insert(
        "system_fingerprint".into(),
        json!(ids::fingerprint(&c.model)),
    );
    object.insert("choices".into(), choices);
    if include_usage {
        object.insert("usage".into(), Value::Null);
    }
    Value::Object(object)
}

fn delta_event(
    c: &Completion,
    delta: Value,
    finish: Option<&str>,
    include_usage: bool,
) -> SseEvent {
    let choices = json!([{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]);
    SseEvent::data(&chunk(c, choices, include_usage))
}

fn opening_events(c: &Completion, include_usage: bool) -> Vec<SseEvent> {
    let mut events = vec![delta_event(
        c,
        json!({"role": "assistant", "content": ""}),
        None,
        include_usage,
    )];
    for piece in pieces(&c.text, c.chunk_size) {
        events.push(delta_event(
            c,
            json!({"content": piece}),
            None,
            include_usage,
        ));
    }
    events
}

/// The whole stream of a turn, ending with `data: [DONE]`.
pub(crate) fn stream(c: &Completion, include_usage: bool) -> Vec<SseEvent> {
    let mut events = opening_events(c, include_usage);
    for (index, call) in c.tool_calls.iter().enumerate() {
        let first = json!({"tool_calls": [{
            "index": index,
            "id": call.id,
            "type": "function",
            "function": {"name": call.name, "arguments": ""}
        }]});
        events.push(delta_event(c, first, None, include_usage));
        for piece in pieces(&call.arguments, c.chunk_size) {
            let fragment =
                json!({"tool_calls": [{"index": index, "function": {"arguments": piece}}]});
            events.push(delta_event(c, fragment, None, include_usage));
        }
    }
    events.push(delta_event(
        c,
        json!({}),
        Some(finish_reason(&c.stop)),
        include_usage,
    ));
    if include_usage {
        let mut last = chunk(c, json!([]), false);
        if let Value::Object(object) = &mut last {
            object.insert("usage".into(), usage(c));
        }
        events.push(SseEvent::data(&last));
    }
    events.push(SseEvent::done());
    events
}

/// A stream that sends the role chunk and a few text deltas, then an
/// in-stream `{"error": …}` chunk, and no `[DONE]`.
pub(crate) fn mid_stream_error(c: &Completion, include_usage: bool) -> Vec<SseEvent> {
    let mut events = opening_events(c, include_usage);
    events.truncate(1 + DELTAS_BEFORE_ERROR);
    events.push(SseEvent::data(&error_body(&Failure::ServerError).1));
    events
}

fn body(message: &str, kind: &str, param: Option<&str>, code: Option<&str>) -> Value {
    json!({"error": {"message": message, "type": kind, "param": param, "code": code}})
}

fn redact(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    if chars.len() <= 8 {
        return "*".repeat(chars.len());
    }
    let head: String = chars[..3].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}{}{tail}", "*".repeat(chars.len() - 7))
}

/// Status and body of an error.
pub(crate) fn error_body(failure: &Failure) -> (StatusCode, Value) {
    let invalid = "invalid_request_error";
    match failure {
        Failure::MissingApiKey => (
            StatusCode::UNAUTHORIZED,
            body(
                "You didn't provide an API key. You need to provide your API key in an \
                 Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), \
                 or as the password field (with blank username) if you're accessing the API \
                 from your browser and are prompted for a username and password. You can \
                 obtain an API key from https://platform.openai.com/account/api-keys.",
                invalid,
                None,
                None,
            ),
        ),
        Failure::InvalidApiKey { presented } => (
            StatusCode::UNAUTHORIZED,
            body(
                &format!(
                    "Incorrect API key provided: {}. You can find your API key at \
                     https://platform.openai.com/account/api-keys.",
                    redact(presented)
                ),
                invalid,
                None,
                Some("invalid_api_key"),
            ),
        ),
        Failure::MissingVersionHeader => (
            StatusCode::BAD_REQUEST,
            body("Missing required header.", invalid, None, None),
        ),
        Failure::InvalidJsonBody => (
            StatusCode::BAD_REQUEST,
            body(
                "We could not parse the JSON body of your request. (HINT: This likely means \
                 you aren't using your HTTP library correctly. The OpenAI API expects a JSON \
                 payload, but what was sent was not valid JSON. If you have trouble figuring \
                 out how to fix this, please contact us through our help center at \
                 help.openai.com.)",
                invalid,
                None,
                None,
            ),
        ),
        Failure::MissingField("model") => (
            StatusCode::BAD_REQUEST,
            body("you must provide a model parameter", invalid, None, None),
        ),
        Failure::MissingField(field) => (
            StatusCode::BAD_REQUEST,
            body(
                &format!("Missing required parameter: '{field}'."),
                invalid,
                Some(field),
                Some("missing_required_parameter"),
            ),
        ),
        Failure::NotFound { method, path } => (
            StatusCode::NOT_FOUND,
            body(
                &format!("Invalid URL ({method} {path})"),
                invalid,
                None,
                None,
            ),
        ),
        Failure::NoScriptedReply => (
            StatusCode::INTERNAL_SERVER_ERROR,
            body(NO_SCRIPTED_REPLY, "server_error", None, None),
        ),
        Failure::RateLimited { model, retry_after } => {
            let wait = match retry_after {
                Some(d) if d.subsec_millis() != 0 || d.as_secs() == 0 => {
                    format!("{}ms", d.as_millis())
                }
                Some(d) => format!("{}s", d.as_secs()),
                None => "1s".to_owned(),
            };
            (
                StatusCode::TOO_MANY_REQUESTS,
                body(
                    &format!(
                        "Rate limit reached for {model} in organization org-mock on requests \
                         per min (RPM): Limit 3, Used 3, Requested 1. Please try again in \
                         {wait}. Visit https://platform.openai.com/account/rate-limits to \
                         learn more."
                    ),
                    "requests",
                    None,
                    Some("rate_limit_exceeded"),
                ),
            )
        }
        Failure::ServerError => (
            StatusCode::INTERNAL_SERVER_ERROR,
            body(
                "The server had an error while processing your request. Sorry about that!",
                "server_error",
                None,
                None,
            ),
        ),
        Failure::Overloaded => (
            StatusCode::SERVICE_UNAVAILABLE,
            body(
                "The engine is currently overloaded, please try again later.",
                "server_error",
                None,
                None,
            ),
        ),
        Failure::ContextTooLong { prompt_tokens } => (
            StatusCode::BAD_REQUEST,
            body(
                &format!(
                    "This model's maximum context length is {MAX_CONTEXT_TOKENS} tokens. \
                     However, your messages resulted in {} tokens. Please reduce the length \
                     of the messages.",
                    MAX_CONTEXT_TOKENS.saturating_add(*prompt_tokens)
                ),
                invalid,
                Some("messages"),
                Some("context_length_exceeded"),
            ),
        ),
        Failure::BadRequest(message) => {
            (StatusCode::BAD_REQUEST, body(message, invalid, None, None))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_keys() {
        assert_eq!(redact("sk-abcdefghij1234"), "sk-**********1234");
        assert_eq!(redact("short"), "*****");
    }
}
