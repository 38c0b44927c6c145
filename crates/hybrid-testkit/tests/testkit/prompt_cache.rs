//! Anthropic prompt caching: `cache_control` markers checked like the real
//! API, and a simulated cache that writes a marked prefix once and reads it
//! after, whole and streamed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use hybrid_testkit::{MockLlmServer, Turn};
use serde_json::{Value, json};

use crate::common::*;

const LONG_SYSTEM: &str = "You are a careful operations assistant. Check the service status and \
                           the logs before you answer, and say what you checked.";

/// A request with two tools and a system prompt, marked like the hybrid-llm
/// client marks them: the last tool and the one system block.
fn marked_body(question: &str, stream: bool) -> Value {
    json!({
        "model": "claude-sonnet-4-5",
        "max_tokens": 256,
        "system": [{"type": "text", "text": LONG_SYSTEM, "cache_control": {"type": "ephemeral"}}],
        "tools": [
            {"name": "service_status", "description": "Report whether a service is running.",
             "input_schema": {"type": "object", "properties": {"service": {"type": "string"}}}},
            {"name": "read_logs", "description": "Read the last lines of a service's log.",
             "input_schema": {"type": "object", "properties": {"service": {"type": "string"}}},
             "cache_control": {"type": "ephemeral"}}
        ],
        "messages": [{"role": "user", "content": [{"type": "text", "text": question}]}],
        "stream": stream
    })
}

/// The usage of a whole response, or of a stream's `message_start` and
/// `message_delta` (which must agree on the input counts).
async fn usage(server: &MockLlmServer, body: &Value) -> Value {
    let resp = anthropic(server, body).await;
    assert_eq!(resp.status, 200, "{}", resp.text);
    if body["stream"] != json!(true) {
        return resp.json()["usage"].clone();
    }
    let events: Vec<Value> = sse(&resp.text).iter().map(Event::json).collect();
    let start = events
        .iter()
        .find(|e| e["type"] == "message_start")
        .unwrap()["message"]["usage"]
        .clone();
    let delta = events
        .iter()
        .find(|e| e["type"] == "message_delta")
        .unwrap()["usage"]
        .clone();
    for field in [
        "input_tokens",
        "cache_creation_input_tokens",
        "cache_read_input_tokens",
    ] {
        assert_eq!(start[field], delta[field], "{field}");
    }
    delta
}

fn n(usage: &Value, field: &str) -> u64 {
    usage[field].as_u64().unwrap()
}

#[tokio::test]
async fn first_marked_request_writes_the_prefix_and_the_next_reads_it() {
    for stream in [false, true] {
        let server = MockLlmServer::start().await.unwrap();
        server.set_default(Some(Turn::text("All healthy.").into()));
        let first = usage(&server, &marked_body("Is web healthy?", stream)).await;
        let written = n(&first, "cache_creation_input_tokens");
        assert!(written > 0, "{first}");
        assert_eq!(n(&first, "cache_read_input_tokens"), 0);
        assert!(n(&first, "input_tokens") > 0);

        // Same prefix, another question: the prefix is read, nothing written.
        let second = usage(&server, &marked_body("Is db2 healthy?", stream)).await;
        assert_eq!(n(&second, "cache_read_input_tokens"), written, "{second}");
        assert_eq!(n(&second, "cache_creation_input_tokens"), 0);
        assert_eq!(n(&second, "input_tokens"), n(&first, "input_tokens"));

        // Expired: written again.
        server.clear_prompt_cache();
        let third = usage(&server, &marked_body("Is web healthy?", stream)).await;
        assert_eq!(third, first);
    }
}

#[tokio::test]
async fn a_changed_system_prompt_still_reads_the_tools_prefix() {
    let server = MockLlmServer::start().await.unwrap();
    server.set_default(Some(Turn::text("ok").into()));
    let first = usage(&server, &marked_body("q", false)).await;
    let mut other = marked_body("q", false);
    other["system"][0]["text"] = json!("You are terse.");
    let second = usage(&server, &other).await;
    let read = n(&second, "cache_read_input_tokens");
    assert!(read > 0 && read < n(&first, "cache_creation_input_tokens"));
    assert!(n(&second, "cache_creation_input_tokens") > 0);
}

#[tokio::test]
async fn unmarked_requests_and_scripted_cache_usage_are_not_simulated() {
    let server = MockLlmServer::start().await.unwrap();
    // No markers: no cache usage, as before.
    server.enqueue(Turn::text("ok"));
    let plain = usage(&server, &anthropic_body(false)).await;
    assert_eq!(n(&plain, "cache_creation_input_tokens"), 0);
    assert_eq!(n(&plain, "cache_read_input_tokens"), 0);
    // Explicit `with_cache` overrides the simulation, whole and streamed…
    server.enqueue(Turn::text("ok").with_usage(7, 1).with_cache(0, 0));
    server.enqueue(Turn::text("ok").with_usage(7, 1).with_cache(11, 22));
    let scripted = usage(&server, &marked_body("q", false)).await;
    assert_eq!(
        scripted,
        json!({"input_tokens": 7, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": 1})
    );
    let scripted = usage(&server, &marked_body("q", true)).await;
    assert_eq!(
        scripted,
        json!({"input_tokens": 7, "cache_creation_input_tokens": 22, "cache_read_input_tokens": 11, "output_tokens": 1})
    );
    // …but the server still saw the prefix: the next request reads it.
    server.enqueue(Turn::text("ok").with_usage(7, 1));
    let simulated = usage(&server, &marked_body("q", false)).await;
    assert!(n(&simulated, "cache_read_input_tokens") > 0);
    assert_eq!(n(&simulated, "input_tokens"), 7);
    // OpenAI is never simulated.
    server.enqueue(Turn::text("ok").with_usage(7, 1));
    let body = openai(&server, &openai_body(false)).await.json();
    assert_eq!(body["usage"]["prompt_tokens_details"]["cached_tokens"], 0);
}

#[tokio::test]
async fn malformed_markers_get_invalid_request_errors_and_consume_no_reply() {
    let server = MockLlmServer::start().await.unwrap();
    server.enqueue(Turn::text("kept"));
    let cases: Vec<(Value, &str)> = vec![
        (
            {
                let mut b = marked_body("q", false);
                b["system"][0]["cache_control"] = json!({"type": "persistent"});
                b
            },
            "system.0.cache_control.type: Input should be 'ephemeral'",
        ),
        (
            {
                let mut b = marked_body("q", false);
                b["tools"][1]["cache_control"] = json!({"type": "ephemeral", "ttl": "2h"});
                b
            },
            "tools.1.cache_control.ttl: Input should be '5m' or '1h'",
        ),
        (
            {
                let mut b = marked_body("q", false);
                b["system"] = json!({"text": "not a list"});
                b
            },
            "system: Input should be a valid string or a list of text blocks",
        ),
        (
            {
                let mut b = marked_body("q", false);
                b["tools"][0]["cache_control"] = json!({"type": "ephemeral"});
                b["messages"][0]["content"][0]["cache_control"] = json!({"type": "ephemeral"});
                b["cache_control"] = json!({"type": "ephemeral"});
                b
            },
            "A maximum of 4 blocks with cache_control may be provided. Found 5.",
        ),
    ];
    for (body, expected) in cases {
        let resp = anthropic(&server, &body).await;
        assert_eq!(resp.status, 400, "{}", resp.text);
        let error = resp.json();
        assert_eq!(error["type"], "error");
        assert_eq!(error["error"]["type"], "invalid_request_error");
        assert_eq!(error["error"]["message"], expected);
        assert_eq!(error["request_id"].as_str(), resp.header("request-id"));
    }
    assert_eq!(server.queued_replies(), 1);
    // A 1-hour TTL is fine.
    let mut hour = marked_body("q", false);
    hour["system"][0]["cache_control"] = json!({"type": "ephemeral", "ttl": "1h"});
    assert_eq!(anthropic(&server, &hour).await.status, 200);
}
