//! Anthropic Messages: every Turn shape and every Fault, streamed and not.

// Test helpers outside `#[test]` functions may fail loudly too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use hybrid_testkit::{FAULT_TEXT, Fault, MockLlmServer, StopKind, Turn};
use serde_json::{Value, json};

use crate::common::*;

/// Events of a finished stream as (name, JSON), checking the framing: each
/// `event:` name equals the data's `type`, `message_start` first,
/// `message_stop` last, one `ping` after `message_start`.
fn events(resp: &Resp) -> Vec<(String, Value)> {
    assert_eq!(resp.status, 200, "{}", resp.text);
    assert_eq!(resp.header("content-type"), Some("text/event-stream"));
    let events: Vec<(String, Value)> = sse(&resp.text)
        .into_iter()
        .map(|e| {
            let data = e.json();
            let name = e.name.expect("every Anthropic event is named");
            assert_eq!(data["type"], name.as_str());
            (name, data)
        })
        .collect();
    assert_eq!(events.first().unwrap().0, "message_start");
    assert_eq!(events.last().unwrap().0, "message_stop");
    assert_eq!(events.iter().filter(|(n, _)| n == "ping").count(), 1);
    events
}

/// Rebuilds content blocks from the stream, checking start/delta/stop order.
fn blocks(events: &[(String, Value)]) -> Vec<Value> {
    let mut blocks: Vec<Value> = Vec::new();
    let mut open: Option<usize> = None;
    let mut json_text = String::new();
    for (name, data) in events {
        match name.as_str() {
            "content_block_start" => {
                assert!(open.is_none());
                let index = data["index"].as_u64().unwrap() as usize;
                assert_eq!(index, blocks.len());
                blocks.push(data["content_block"].clone());
                open = Some(index);
                json_text.clear();
            }
            "content_block_delta" => {
                let index = data["index"].as_u64().unwrap() as usize;
                assert_eq!(Some(index), open);
                let delta = &data["delta"];
                match delta["type"].as_str().unwrap() {
                    "text_delta" => {
                        let text = blocks[index]["text"].as_str().unwrap().to_owned()
                            + delta["text"].as_str().unwrap();
                        blocks[index]["text"] = json!(text);
                    }
                    "input_json_delta" => {
                        json_text.push_str(delta["partial_json"].as_str().unwrap())
                    }
                    other => panic!("unexpected delta {other}"),
                }
            }
            "content_block_stop" => {
                let index = data["index"].as_u64().unwrap() as usize;
                assert_eq!(Some(index), open);
                if blocks[index]["type"] == "tool_use" {
                    assert_eq!(blocks[index]["input"], json!({}));
                    blocks[index]["input"] =
                        serde_json::from_str(&json_text).unwrap_or(json!(json_text.clone()));
                }
                open = None;
            }
            _ => {}
        }
    }
    assert!(open.is_none());
    blocks
}

fn message_delta(events: &[(String, Value)]) -> &Value {
    let deltas: Vec<&Value> = events
        .iter()
        .filter(|(n, _)| n == "message_delta")
        .map(|(_, d)| d)
        .collect();
    assert_eq!(deltas.len(), 1);
    deltas[0]
}

#[tokio::test]
async fn text_turn_whole() {
    let server = MockLlmServer::start().await.unwrap();
    server.enqueue(Turn::text("hello world"));
    let r = anthropic(&server, &anthropic_body(false)).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert!(r.header("request-id").unwrap().starts_with("req_011"));
    let body = r.json();
    assert!(body["id"].as_str().unwrap().starts_with("msg_01"));
    assert_eq!(body["type"], "message");
    assert_eq!(body["role"], "assistant");
    assert_eq!(body["model"], "claude-sonnet-4-5");
    assert_eq!(
        body["content"],
        json!([{"type": "text", "text": "hello world"}])
    );
    assert_eq!(body["stop_reason"], "end_turn");
    assert!(body["stop_sequence"].is_null());
    let usage = &body["usage"];
    assert!(usage["input_tokens"].as_u64().unwrap() > 0);
    assert_eq!(usage["output_tokens"], 3);
    assert_eq!(usage["cache_creation_input_tokens"], 0);
    assert_eq!(usage["cache_read_input_tokens"], 0);
}

#[tokio::test]
async fn text_turn_streamed() {
    let server = MockLlmServer::start().await.unwrap();
    server.enqueue(
        Turn::text("hello world")
            .with_usage(25, 15)
            .with_cache(40, 8),
    );
    let events = events(&anthropic(&server, &anthropic_body(true)).await);
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        &names[..3],
        ["message_start", "content_block_start", "ping"]
    );
    let start = &events[0].1["message"];
    assert!(start["id"].as_str().unwrap().starts_with("msg_01"));
    assert_eq!(start["content"], json!([]));
    assert!(start["stop_reason"].is_null());
    assert_eq!(start["model"], "claude-sonnet-4-5");
    assert_eq!(
        start["usage"],
        json!({"input_tokens": 25, "cache_creation_input_tokens": 8, "cache_read_input_tokens": 40, "output_tokens": 1})
    );
    let texts: Vec<&str> = events
        .iter()
        .filter(|(n, _)| n == "content_block_delta")
        .map(|(_, d)| d["delta"]["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["hel", "lo ", "wor", "ld"]);
    assert_eq!(
        blocks(&events),
        vec![json!({"type": "text", "text": "hello world"})]
    );
    let delta = message_delta(&events);
    assert_eq!(
        delta["delta"],
        json!({"stop_reason": "end_turn", "stop_sequence": null})
    );
    assert_eq!(delta["usage"]["output_tokens"], 15);
}

#[tokio::test]
async fn tool_use_whole() {
    let server = MockLlmServer::start().await.unwrap();
    server.enqueue(
        Turn::tool_call("bash", json!({"command": "ls -la"}))
            .and_tool_call("read_file", json!({"path": "src/main.rs"}))
            .with_text("Let me look."),
    );
    server.enqueue(Turn::tool_call("bash", json!({"command": "pwd"})));
    let body = anthropic(&server, &anthropic_body(false)).await.json();
    assert_eq!(body["stop_reason"], "tool_use");
    let content = body["content"].as_array().unwrap();
    assert_eq!(content.len(), 3);
    assert_eq!(content[0], json!({"type": "text", "text": "Let me look."}));
    assert_eq!(content[1]["type"], "tool_use");
    assert_eq!(content[1]["name"], "bash");
    assert_eq!(content[1]["input"], json!({"command": "ls -la"}));
    assert_eq!(content[2]["input"], json!({"path": "src/main.rs"}));
    let (a, b) = (
        content[1]["id"].as_str().unwrap(),
        content[2]["id"].as_str().unwrap(),
    );
    assert!(a.starts_with("toolu_") && b.starts_with("toolu_") && a != b);

    let body = anthropic(&server, &anthropic_body(false)).await.json();
    let content = body["content"].as_array().unwrap();
    assert_eq!(
        content.len(),
        1,
        "no empty text block before a lone tool call"
    );
    assert_eq!(content[0]["type"], "tool_use");
}

#[tokio::test]
async fn tool_use_streamed() {
    let server = MockLlmServer::start().await.unwrap();
    server.enqueue(
        Turn::tool_call("bash", json!({"command": "ls -la"}))
            .and_tool_call("read_file", json!({"path": "src/main.rs"}))
            .with_text("Let me look."),
    );
    let events = events(&anthropic(&server, &anthropic_body(true)).await);
    let blocks = blocks(&events);
    assert_eq!(blocks.len(), 3);
    assert_eq!(blocks[0], json!({"type": "text", "text": "Let me look."}));
    assert_eq!(blocks[1]["name"], "bash");
    assert!(blocks[1]["id"].as_str().unwrap().starts_with("toolu_"));
    assert_eq!(blocks[1]["input"], json!({"command": "ls -la"}));
    assert_eq!(blocks[2]["input"], json!({"path": "src/main.rs"}));
    let json_deltas = events
        .iter()
        .filter(|(_, d)| d["delta"]["type"] == "input_json_delta")
        .count();
    assert!(json_deltas > 4, "arguments arrive in several fragments");
    assert_eq!(message_delta(&events)["delta"]["stop_reason"], "tool_use");
}

#[tokio::test]
async fn raw_arguments_are_sent_verbatim() {
    let server = MockLlmServer::start().await.unwrap();
    server.enqueue(Turn::raw_tool_call("bash", "{\"command\": oops"));
    let events = events(&anthropic(&server, &anthropic_body(true)).await);
    let partial: String = events
        .iter()
        .filter_map(|(_, d)| d["delta"]["partial_json"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(partial, "{\"command\": oops");
}

#[tokio::test]
async fn stop_kinds_model_and_chunking() {
    let server = MockLlmServer::start().await.unwrap();
    server.enqueue(
        Turn::text("abc")
            .with_stop(StopKind::MaxTokens)
            .with_model("claude-x"),
    );
    server.enqueue(
        Turn::text("abc")
            .with_stop(StopKind::StopSequence("END".into()))
            .with_chunk_size(1),
    );
    server.enqueue(Turn::text("abc").with_stop(StopKind::ContentFilter));
    let body = anthropic(&server, &anthropic_body(false)).await.json();
    assert_eq!(body["stop_reason"], "max_tokens");
    assert_eq!(body["model"], "claude-x");
    let events = events(&anthropic(&server, &anthropic_body(true)).await);
    assert_eq!(
        events
            .iter()
            .filter(|(n, _)| n == "content_block_delta")
            .count(),
        3
    );
    assert_eq!(
        message_delta(&events)["delta"],
        json!({"stop_reason": "stop_sequence", "stop_sequence": "END"})
    );
    let body = anthropic(&server, &anthropic_body(false)).await.json();
    assert_eq!(body["stop_reason"], "refusal");
}

#[tokio::test]
async fn default_usage_and_cache_fields() {
    let server = MockLlmServer::start().await.unwrap();
    server.enqueue(Turn::text("x").with_usage(3, 2).with_cache(1000, 200));
    server.set_default(Some(Turn::text("same answer").into()));
    let body = anthropic(&server, &anthropic_body(false)).await.json();
    assert_eq!(
        body["usage"],
        json!({"input_tokens": 3, "cache_creation_input_tokens": 200, "cache_read_input_tokens": 1000, "output_tokens": 2})
    );
    let a = anthropic(&server, &anthropic_body(false)).await.json();
    let b = anthropic(&server, &anthropic_body(false)).await.json();
    assert_eq!(a["usage"], b["usage"]);
}

#[tokio::test]
async fn first_byte_delay() {
    let server = MockLlmServer::start().await.unwrap();
    let delay = Duration::from_millis(300);
    server.set_default(Some(Turn::text("slow").with_first_byte_delay(delay).into()));
    for stream in [false, true] {
        let started = Instant::now();
        assert_eq!(
            anthropic(&server, &anthropic_body(stream)).await.status,
            200
        );
        assert!(started.elapsed() >= delay);
    }
}

fn error_of(r: &Resp, status: u16, kind: &str) -> String {
    assert_eq!(r.status, status, "{}", r.text);
    let body = r.json();
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], kind);
    assert_eq!(body["request_id"].as_str(), r.header("request-id"));
    body["error"]["message"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn http_faults_in_both_modes() {
    for stream in [false, true] {
        let server = MockLlmServer::start().await.unwrap();
        server.enqueue(Fault::RateLimited {
            retry_after_secs: Some(3),
            retry_after_ms: None,
        });
        server.enqueue(Fault::RateLimited {
            retry_after_secs: None,
            retry_after_ms: Some(250),
        });
        server.enqueue(Fault::ServerError);
        server.enqueue(Fault::Overloaded);
        server.enqueue(Fault::ContextTooLong);
        server.enqueue(Fault::Unauthorized);
        server.enqueue(Fault::BadRequest("max_tokens: must be positive".into()));
        let body = anthropic_body(stream);

        let r = anthropic(&server, &body).await;
        error_of(&r, 429, "rate_limit_error");
        assert_eq!(r.header("retry-after"), Some("3"));
        assert!(r.header("retry-after-ms").is_none());
        let r = anthropic(&server, &body).await;
        error_of(&r, 429, "rate_limit_error");
        assert_eq!(r.header("retry-after-ms"), Some("250"));
        assert!(r.header("retry-after").is_none());

        assert_eq!(
            error_of(&anthropic(&server, &body).await, 500, "api_error"),
            "Internal server error"
        );
        assert_eq!(
            error_of(&anthropic(&server, &body).await, 529, "overloaded_error"),
            "Overloaded"
        );
        let message = error_of(
            &anthropic(&server, &body).await,
            400,
            "invalid_request_error",
        );
        let rest = message
            .strip_prefix("prompt is too long: ")
            .expect(&message);
        let (n, m) = rest.split_once(" tokens > ").unwrap();
        assert_eq!(m, "200000 maximum");
        assert!(n.parse::<u64>().unwrap() > 200_000);
        error_of(
            &anthropic(&server, &body).await,
            401,
            "authentication_error",
        );
        assert_eq!(
            error_of(
                &anthropic(&server, &body).await,
                400,
                "invalid_request_error"
            ),
            "max_tokens: must be positive"
        );
    }
}

#[tokio::test]
async fn malformed_json() {
    let server = MockLlmServer::start().await.unwrap();
    server.enqueue(Fault::MalformedJson);
    server.enqueue(Fault::MalformedJson);
    let r = anthropic(&server, &anthropic_body(false)).await;
    assert_eq!(r.status, 200);
    assert!(serde_json::from_str::<Value>(&r.text).is_err());
    let r = anthropic(&server, &anthropic_body(true)).await;
    let events = sse(&r.text);
    assert_eq!(events[0].json()["type"], "message_start");
    assert!(serde_json::from_str::<Value>(&events[1].data).is_err());
    assert_eq!(events[1].name.as_deref(), Some("content_block_start"));
    assert_eq!(
        events
            .iter()
            .filter(|e| serde_json::from_str::<Value>(&e.data).is_err())
            .count(),
        1
    );
}

#[tokio::test]
async fn cut_stream() {
    let server = MockLlmServer::start().await.unwrap();
    server.enqueue(Fault::CutStream { after_events: 4 });
    server.enqueue(Fault::CutStream {
        after_events: usize::MAX,
    });
    server.enqueue(Fault::CutStream { after_events: 1 });
    let r = anthropic(&server, &anthropic_body(true)).await;
    assert!(r.cut);
    let names: Vec<String> = sse(&r.text).into_iter().map(|e| e.name.unwrap()).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "ping",
            "content_block_delta"
        ]
    );

    let r = anthropic(&server, &anthropic_body(true)).await;
    assert!(r.cut);
    let last = sse(&r.text).pop().unwrap();
    assert_eq!(
        last.name.as_deref(),
        Some("message_delta"),
        "everything but message_stop"
    );

    let r = anthropic(&server, &anthropic_body(false)).await;
    assert_eq!(r.status, 200);
    assert!(r.cut);
    assert!(serde_json::from_str::<Value>(&r.text).is_err());
}

#[tokio::test]
async fn mid_stream_error() {
    let server = MockLlmServer::start().await.unwrap();
    server.enqueue(Fault::MidStreamError);
    server.enqueue(Fault::MidStreamError);
    let r = anthropic(&server, &anthropic_body(true)).await;
    assert_eq!(r.status, 200);
    assert!(!r.cut);
    let events = sse(&r.text);
    let last = events.last().unwrap();
    assert_eq!(last.name.as_deref(), Some("error"));
    assert_eq!(
        last.json(),
        json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    );
    assert!(
        events
            .iter()
            .all(|e| e.name.as_deref() != Some("message_stop"))
    );
    let text: String = events
        .iter()
        .filter(|e| e.name.as_deref() == Some("content_block_delta"))
        .map(|e| e.json()["delta"]["text"].as_str().unwrap().to_owned())
        .collect();
    assert!(!text.is_empty() && FAULT_TEXT.starts_with(&text));

    error_of(
        &anthropic(&server, &anthropic_body(false)).await,
        529,
        "overloaded_error",
    );
}

#[tokio::test]
async fn status_verbatim() {
    let server = MockLlmServer::start().await.unwrap();
    server.enqueue(Fault::Status {
        status: 413,
        body: json!({"type": "error", "error": {"type": "request_too_large", "message": "Request exceeds the maximum allowed number of bytes."}}),
        headers: vec![("x-should-retry".into(), "false".into())],
    });
    server.enqueue(Fault::Status {
        status: 204,
        body: Value::Null,
        headers: vec![],
    });
    let r = anthropic(&server, &anthropic_body(true)).await;
    assert_eq!(r.status, 413);
    assert_eq!(r.header("x-should-retry"), Some("false"));
    assert_eq!(r.json()["error"]["type"], "request_too_large");
    let r = anthropic(&server, &anthropic_body(false)).await;
    assert_eq!(r.status, 204);
    assert!(r.text.is_empty());
}
