//! OpenAI Chat Completions: every Turn shape and every Fault, streamed and not.

// Test helpers outside `#[test]` functions may fail loudly too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use hybrid_testkit::{FAULT_TEXT, Fault, MockLlmServer, StopKind, Turn};
use serde_json::{Value, json};

use crate::common::*;

/// Data payloads of a finished OpenAI stream, checking the `[DONE]` ending.
fn chunks(resp: &Resp) -> Vec<Value> {
    assert_eq!(resp.status, 200, "{}", resp.text);
    assert_eq!(resp.header("content-type"), Some("text/event-stream"));
    let events = sse(&resp.text);
    let (last, rest) = events.split_last().expect("events");
    assert_eq!(last.data, "[DONE]");
    rest.iter()
        .map(|e| {
            assert_eq!(e.name, None);
            e.json()
        })
        .collect()
}

fn streamed_text(chunks: &[Value]) -> String {
    chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect()
}

/// Reassembles streamed tool calls by index: (id, name, arguments text).
fn streamed_calls(chunks: &[Value]) -> BTreeMap<u64, (String, String, String)> {
    let mut calls: BTreeMap<u64, (String, String, String)> = BTreeMap::new();
    for chunk in chunks {
        let Some(deltas) = chunk["choices"][0]["delta"]["tool_calls"].as_array() else {
            continue;
        };
        for delta in deltas {
            let index = delta["index"].as_u64().expect("index");
            let entry = calls.entry(index).or_default();
            if let Some(id) = delta["id"].as_str() {
                assert!(entry.0.is_empty(), "id sent twice");
                assert_eq!(delta["type"], "function");
                assert_eq!(delta["function"]["arguments"], "");
                entry.0 = id.to_owned();
                entry.1 = delta["function"]["name"].as_str().expect("name").to_owned();
            } else {
                assert!(
                    !entry.0.is_empty(),
                    "fragment before the call's first delta"
                );
                assert!(delta.get("type").is_none() && delta["function"].get("name").is_none());
                entry
                    .2
                    .push_str(delta["function"]["arguments"].as_str().expect("fragment"));
            }
        }
    }
    calls
}

#[tokio::test]
async fn text_turn_whole() {
    let server = MockLlmServer::start().await.unwrap();
    server.enqueue(Turn::text("hello world"));
    let resp = openai(&server, &openai_body(false)).await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-type"), Some("application/json"));
    assert!(resp.header("x-request-id").unwrap().starts_with("req_"));
    let body = resp.json();
    assert!(body["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(body["object"], "chat.completion");
    assert!(body["created"].as_u64().unwrap() > 1_600_000_000);
    assert_eq!(body["model"], "gpt-4o-mini");
    let choice = &body["choices"][0];
    assert_eq!(choice["index"], 0);
    assert_eq!(choice["message"]["role"], "assistant");
    assert_eq!(choice["message"]["content"], "hello world");
    assert!(choice["message"].get("tool_calls").is_none());
    assert_eq!(choice["finish_reason"], "stop");
    let usage = &body["usage"];
    let (prompt, completion) = (
        usage["prompt_tokens"].as_u64().unwrap(),
        usage["completion_tokens"].as_u64().unwrap(),
    );
    assert!(prompt > 0 && completion == 3, "{usage}");
    assert_eq!(usage["total_tokens"].as_u64().unwrap(), prompt + completion);
    assert_eq!(usage["prompt_tokens_details"]["cached_tokens"], 0);
}

#[tokio::test]
async fn text_turn_streamed_without_usage() {
    let server = MockLlmServer::start().await.unwrap();
    server.enqueue(Turn::text("hello world"));
    let resp = openai(&server, &openai_body(true)).await;
    let chunks = chunks(&resp);
    assert_eq!(
        chunks[0]["choices"][0]["delta"],
        json!({"role": "assistant", "content": ""})
    );
    let id = chunks[0]["id"].clone();
    for chunk in &chunks {
        assert_eq!(chunk["object"], "chat.completion.chunk");
        assert_eq!(chunk["id"], id);
        assert_eq!(chunk["model"], "gpt-4o-mini");
        assert!(
            chunk.get("usage").is_none(),
            "usage only with include_usage"
        );
    }
    let pieces: Vec<&str> = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(pieces, ["", "hel", "lo ", "wor", "ld"]);
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"][0]["delta"], json!({}));
    assert_eq!(last["choices"][0]["finish_reason"], "stop");
    assert!(
        chunks[..chunks.len() - 1]
            .iter()
            .all(|c| c["choices"][0]["finish_reason"].is_null())
    );
}

#[tokio::test]
async fn streamed_usage_chunk_when_asked() {
    let server = MockLlmServer::start().await.unwrap();
    server.enqueue(Turn::text("hi there").with_usage(11, 4).with_cache(100, 5));
    let chunks = chunks(&openai(&server, &openai_body_with_usage()).await);
    let (usage_chunk, others) = chunks.split_last().unwrap();
    assert_eq!(usage_chunk["choices"], json!([]));
    assert_eq!(usage_chunk["usage"]["prompt_tokens"], 116);
    assert_eq!(usage_chunk["usage"]["completion_tokens"], 4);
    assert_eq!(usage_chunk["usage"]["total_tokens"], 120);
    assert_eq!(
        usage_chunk["usage"]["prompt_tokens_details"]["cached_tokens"],
        100
    );
    for chunk in others {
        assert!(chunk.get("usage").is_some_and(Value::is_null), "{chunk}");
    }
    assert_eq!(
        others.last().unwrap()["choices"][0]["finish_reason"],
        "stop"
    );
    assert_eq!(streamed_text(others), "hi there");
}

#[tokio::test]
async fn tool_calls_whole() {
    let server = MockLlmServer::start().await.unwrap();
    server.enqueue(
        Turn::tool_call("bash", json!({"command": "ls -la"}))
            .and_tool_call("read_file", json!({"path": "src/main.rs"})),
    );
    server.enqueue(Turn::tool_call("bash", json!({"command": "pwd"})).with_text("Checking."));
    let body = openai(&server, &openai_body(false)).await.json();
    let message = &body["choices"][0]["message"];
    assert!(message["content"].is_null());
    assert_eq!(body["choices"][0]["finish_reason"], "tool_calls");
    let calls = message["tool_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0]["type"], "function");
    assert_eq!(calls[0]["function"]["name"], "bash");
    let args: Value =
        serde_json::from_str(calls[0]["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args, json!({"command": "ls -la"}));
    assert_eq!(calls[1]["function"]["name"], "read_file");
    let (a, b) = (
        calls[0]["id"].as_str().unwrap(),
        calls[1]["id"].as_str().unwrap(),
    );
    assert!(a.starts_with("call_") && b.starts_with("call_") && a != b);

    let body = openai(&server, &openai_body(false)).await.json();
    assert_eq!(body["choices"][0]["message"]["content"], "Checking.");
    assert_eq!(
        body["choices"][0]["message"]["tool_calls"][0]["function"]["name"],
        "bash"
    );
    let again = body["choices"][0]["message"]["tool_calls"][0]["id"]
        .as_str()
        .unwrap();
    assert!(again != a && again != b, "ids are unique across responses");
}

#[tokio::test]
async fn tool_calls_streamed() {
    let server = MockLlmServer::start().await.unwrap();
    server.enqueue(
        Turn::tool_call("bash", json!({"command": "ls -la"}))
            .and_tool_call("read_file", json!({"path": "src/main.rs"}))
            .with_text("Let me look."),
    );
    let chunks = chunks(&openai(&server, &openai_body_with_usage()).await);
    assert_eq!(streamed_text(&chunks), "Let me look.");
    let calls = streamed_calls(&chunks);
    assert_eq!(calls.len(), 2);
    let (id0, name0, args0) = &calls[&0];
    assert!(id0.starts_with("call_"));
    assert_eq!(name0, "bash");
    assert_eq!(
        serde_json::from_str::<Value>(args0).unwrap(),
        json!({"command": "ls -la"})
    );
    assert_eq!(calls[&1].1, "read_file");
    assert_eq!(
        serde_json::from_str::<Value>(&calls[&1].2).unwrap(),
        json!({"path": "src/main.rs"})
    );
    let fragments = chunks
        .iter()
        .filter(|c| {
            c["choices"][0]["delta"]["tool_calls"][0]["function"]
                .get("name")
                .is_none()
                && c["choices"][0]["delta"].get("tool_calls").is_some()
        })
        .count();
    assert!(fragments > 4, "arguments arrive in several fragments");
    let finish = &chunks[chunks.len() - 2];
    assert_eq!(finish["choices"][0]["finish_reason"], "tool_calls");
}

#[tokio::test]
async fn raw_arguments_are_sent_verbatim() {
    let server = MockLlmServer::start().await.unwrap();
    server.enqueue(Turn::raw_tool_call("bash", "{\"command\": oops"));
    server.enqueue(Turn::raw_tool_call("bash", "{\"command\": oops"));
    let body = openai(&server, &openai_body(false)).await.json();
    assert_eq!(
        body["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"],
        "{\"command\": oops"
    );
    let calls = streamed_calls(&chunks(&openai(&server, &openai_body(true)).await));
    assert_eq!(calls[&0].2, "{\"command\": oops");
}

#[tokio::test]
async fn usage_cache_stop_model_and_chunking() {
    let server = MockLlmServer::start().await.unwrap();
    server.enqueue(
        Turn::text("abcdef")
            .with_usage(10, 7)
            .with_cache(100, 5)
            .with_stop(StopKind::MaxTokens)
            .with_model("gpt-4o-2024-08-06"),
    );
    server.enqueue(
        Turn::text("abcdef")
            .with_chunk_size(1)
            .with_stop(StopKind::ContentFilter),
    );
    let body = openai(&server, &openai_body(false)).await.json();
    assert_eq!(body["model"], "gpt-4o-2024-08-06");
    assert_eq!(body["choices"][0]["finish_reason"], "length");
    assert_eq!(body["usage"]["prompt_tokens"], 115);
    assert_eq!(body["usage"]["completion_tokens"], 7);
    assert_eq!(body["usage"]["total_tokens"], 122);
    assert_eq!(body["usage"]["prompt_tokens_details"]["cached_tokens"], 100);

    let chunks = chunks(&openai(&server, &openai_body(true)).await);
    let pieces: Vec<&str> = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(pieces, ["", "a", "b", "c", "d", "e", "f"]);
    assert_eq!(
        chunks.last().unwrap()["choices"][0]["finish_reason"],
        "content_filter"
    );
}

#[tokio::test]
async fn default_usage_is_deterministic_and_grows_with_the_prompt() {
    let server = MockLlmServer::start().await.unwrap();
    server.set_default(Some(Turn::text("same answer").into()));
    let a = openai(&server, &openai_body(false)).await.json();
    let b = openai(&server, &openai_body(false)).await.json();
    assert_eq!(a["usage"], b["usage"]);
    let mut long = openai_body(false);
    long["messages"][1]["content"] = json!("word ".repeat(400));
    let c = openai(&server, &long).await.json();
    assert!(c["usage"]["prompt_tokens"].as_u64() > a["usage"]["prompt_tokens"].as_u64());
    assert_eq!(
        c["usage"]["completion_tokens"],
        a["usage"]["completion_tokens"]
    );
}

#[tokio::test]
async fn first_byte_delay_applies_to_both_modes() {
    let server = MockLlmServer::start().await.unwrap();
    let delay = Duration::from_millis(300);
    server.enqueue(Turn::text("slow").with_first_byte_delay(delay));
    server.enqueue(Turn::text("slow").with_first_byte_delay(delay));
    let started = Instant::now();
    assert_eq!(openai(&server, &openai_body(false)).await.status, 200);
    assert!(started.elapsed() >= delay);
    let started = Instant::now();
    assert_eq!(
        streamed_text(&chunks(&openai(&server, &openai_body(true)).await)),
        "slow"
    );
    assert!(started.elapsed() >= delay);
}

#[tokio::test]
async fn http_faults_in_both_modes() {
    for stream in [false, true] {
        let server = MockLlmServer::start().await.unwrap();
        server.enqueue(Fault::RateLimited {
            retry_after_secs: Some(7),
            retry_after_ms: Some(6500),
        });
        server.enqueue(Fault::RateLimited {
            retry_after_secs: None,
            retry_after_ms: None,
        });
        server.enqueue(Fault::ServerError);
        server.enqueue(Fault::Overloaded);
        server.enqueue(Fault::ContextTooLong);
        server.enqueue(Fault::Unauthorized);
        server.enqueue(Fault::BadRequest("temperature: must be <= 2".into()));

        let body = openai_body(stream);
        let r = openai(&server, &body).await;
        assert_eq!(r.status, 429);
        assert_eq!(r.header("retry-after"), Some("7"));
        assert_eq!(r.header("retry-after-ms"), Some("6500"));
        let e = r.json();
        assert_eq!(e["error"]["code"], "rate_limit_exceeded");
        assert_eq!(e["error"]["type"], "requests");
        assert!(e["error"]["param"].is_null());
        assert!(
            e["error"]["message"]
                .as_str()
                .unwrap()
                .contains("gpt-4o-mini")
        );

        let r = openai(&server, &body).await;
        assert_eq!(r.status, 429);
        assert!(r.header("retry-after").is_none() && r.header("retry-after-ms").is_none());

        let r = openai(&server, &body).await;
        assert_eq!(r.status, 500);
        assert_eq!(r.json()["error"]["type"], "server_error");
        assert!(r.json()["error"]["code"].is_null());

        let r = openai(&server, &body).await;
        assert_eq!(r.status, 503);
        assert_eq!(r.json()["error"]["type"], "server_error");

        let r = openai(&server, &body).await;
        assert_eq!(r.status, 400);
        let e = r.json();
        assert_eq!(e["error"]["code"], "context_length_exceeded");
        assert_eq!(e["error"]["type"], "invalid_request_error");
        assert_eq!(e["error"]["param"], "messages");
        let message = e["error"]["message"].as_str().unwrap();
        assert!(message.starts_with("This model's maximum context length is 128000 tokens. However, your messages resulted in "), "{message}");
        assert!(
            message.ends_with(" tokens. Please reduce the length of the messages."),
            "{message}"
        );

        let r = openai(&server, &body).await;
        assert_eq!(r.status, 401);
        assert_eq!(r.json()["error"]["code"], "invalid_api_key");
        assert!(
            r.json()["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("Incorrect API key provided: sk-")
        );
        assert!(!r.text.contains(OPENAI_KEY), "the key is redacted");

        let r = openai(&server, &body).await;
        assert_eq!(r.status, 400);
        assert_eq!(
            r.json(),
            json!({"error": {"message": "temperature: must be <= 2", "type": "invalid_request_error", "param": null, "code": null}})
        );
        assert!(r.header("x-request-id").is_some());
    }
}

#[tokio::test]
async fn malformed_json() {
    let server = MockLlmServer::start().await.unwrap();
    server.enqueue(Fault::MalformedJson);
    server.enqueue(Fault::MalformedJson);
    let r = openai(&server, &openai_body(false)).await;
    assert_eq!(r.status, 200);
    assert!(!r.cut);
    assert!(serde_json::from_str::<Value>(&r.text).is_err());

    let r = openai(&server, &openai_body(true)).await;
    assert_eq!(r.status, 200);
    let events = sse(&r.text);
    let bad: Vec<_> = events
        .iter()
        .filter(|e| e.data != "[DONE]" && serde_json::from_str::<Value>(&e.data).is_err())
        .collect();
    assert_eq!(bad.len(), 1);
    assert_eq!(events[1], *bad[0], "the second data line is the broken one");
    assert!(events[0].json()["choices"][0]["delta"]["role"] == "assistant");
}

#[tokio::test]
async fn cut_stream() {
    let server = MockLlmServer::start().await.unwrap();
    server.enqueue(Fault::CutStream { after_events: 3 });
    server.enqueue(Fault::CutStream {
        after_events: 10_000,
    });
    server.enqueue(Fault::CutStream { after_events: 0 });

    let r = openai(&server, &openai_body_with_usage()).await;
    assert_eq!(r.status, 200);
    assert!(r.cut, "connection dropped");
    let events = sse(&r.text);
    assert_eq!(events.len(), 3);
    assert!(events.iter().all(|e| e.data != "[DONE]"));
    assert_eq!(
        events[1].json()["choices"][0]["delta"]["content"],
        FAULT_TEXT[..3]
    );

    let r = openai(&server, &openai_body_with_usage()).await;
    assert!(r.cut);
    let events = sse(&r.text);
    assert_ne!(events.last().unwrap().data, "[DONE]");
    assert_eq!(
        events.last().unwrap().json()["choices"],
        json!([]),
        "everything but [DONE]"
    );

    let r = openai(&server, &openai_body(false)).await;
    assert_eq!(r.status, 200);
    assert!(r.cut);
    assert!(!r.text.is_empty() && serde_json::from_str::<Value>(&r.text).is_err());
}

#[tokio::test]
async fn mid_stream_error() {
    let server = MockLlmServer::start().await.unwrap();
    server.enqueue(Fault::MidStreamError);
    server.enqueue(Fault::MidStreamError);
    let r = openai(&server, &openai_body(true)).await;
    assert_eq!(r.status, 200);
    assert!(!r.cut);
    let events = sse(&r.text);
    assert!(events.iter().all(|e| e.data != "[DONE]"));
    let (last, before) = events.split_last().unwrap();
    let error = last.json();
    assert_eq!(error["error"]["type"], "server_error");
    assert!(error["error"]["message"].is_string());
    assert!(error["error"].get("param").is_some() && error["error"].get("code").is_some());
    let text: String = before
        .iter()
        .filter_map(|e| {
            e.json()["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert!(!text.is_empty() && FAULT_TEXT.starts_with(&text));

    let r = openai(&server, &openai_body(false)).await;
    assert_eq!(r.status, 500);
    assert_eq!(r.json()["error"]["type"], "server_error");
}

#[tokio::test]
async fn status_verbatim() {
    let server = MockLlmServer::start().await.unwrap();
    server.enqueue(Fault::Status {
        status: 418,
        body: json!({"error": {"message": "teapot", "type": "odd", "param": null, "code": "tea"}}),
        headers: vec![("x-custom".into(), "1".into())],
    });
    server.enqueue(Fault::Status {
        status: 502,
        body: Value::String("<html>Bad gateway</html>".into()),
        headers: vec![("content-type".into(), "text/html".into())],
    });
    let r = openai(&server, &openai_body(true)).await;
    assert_eq!(r.status, 418);
    assert_eq!(r.header("x-custom"), Some("1"));
    assert_eq!(r.json()["error"]["code"], "tea");
    let r = openai(&server, &openai_body(false)).await;
    assert_eq!(r.status, 502);
    assert_eq!(r.header("content-type"), Some("text/html"));
    assert_eq!(r.text, "<html>Bad gateway</html>");
}
