//! Server behaviour common to both protocols: recording, auth and body
//! validation, unknown paths, FIFO and default replies, shutdown on drop.

// Test helpers outside `#[test]` functions may fail loudly too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use hybrid_testkit::{Fault, MockLlmServer, Protocol, Turn};
use serde_json::{Value, json};

use crate::common::*;

fn openai_text(r: &Resp) -> String {
    assert_eq!(r.status, 200, "{}", r.text);
    r.json()["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn anthropic_text(r: &Resp) -> String {
    assert_eq!(r.status, 200, "{}", r.text);
    r.json()["content"][0]["text"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn urls() {
    let server = MockLlmServer::start().await.unwrap();
    let base = server.base_url();
    assert!(base.starts_with("http://127.0.0.1:"));
    assert_eq!(server.openai_base_url(), format!("{base}/v1"));
    assert_eq!(server.anthropic_base_url(), base);
}

#[tokio::test]
async fn records_every_request_in_order() {
    let server = MockLlmServer::start().await.unwrap();
    server.set_default(Some(Turn::text("ok").into()));
    openai(&server, &openai_body(false)).await;
    anthropic(&server, &anthropic_body(true)).await;
    post(
        &openai_url(&server),
        &[("authorization", "Bearer k")],
        "not json at all",
    )
    .await;
    post(
        &format!("{}/v1/models", server.base_url()),
        &[("X-Custom-Header", "Value")],
        "",
    )
    .await;

    assert_eq!(server.request_count(), 4);
    let requests = server.requests();
    assert_eq!(requests.len(), 4);

    let first = &requests[0];
    assert_eq!(first.method, "POST");
    assert_eq!(first.path, "/v1/chat/completions");
    assert_eq!(first.protocol, Protocol::OpenAi);
    assert_eq!(
        first.headers["authorization"],
        format!("Bearer {OPENAI_KEY}")
    );
    assert_eq!(first.headers["content-type"], "application/json");
    assert_eq!(first.body, openai_body(false));

    let second = &requests[1];
    assert_eq!(second.path, "/v1/messages");
    assert_eq!(second.protocol, Protocol::Anthropic);
    assert_eq!(second.header("X-Api-Key"), Some(ANTHROPIC_KEY));
    assert_eq!(second.headers["anthropic-version"], "2023-06-01");
    assert_eq!(second.body["stream"], true);

    assert_eq!(requests[2].body, Value::String("not json at all".into()));
    let fourth = &requests[3];
    assert_eq!(fourth.path, "/v1/models");
    assert_eq!(fourth.headers["x-custom-header"], "Value");
    assert_eq!(fourth.body, Value::String(String::new()));
    assert_eq!(server.last_request().unwrap(), *fourth);
    assert!(
        requests
            .iter()
            .all(|r| r.headers.keys().all(|k| *k == k.to_lowercase()))
    );
}

#[tokio::test]
async fn openai_auth_and_validation() {
    let server = MockLlmServer::start().await.unwrap();
    server.enqueue(Turn::text("the only reply"));
    let url = openai_url(&server);
    let body = openai_body(false).to_string();

    let r = post(&url, &[], body.clone()).await;
    assert_eq!(r.status, 401);
    let e = r.json();
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("You didn't provide an API key.")
    );
    assert_eq!(e["error"]["type"], "invalid_request_error");
    assert!(e["error"]["code"].is_null() && e["error"]["param"].is_null());

    let r = post(&url, &[("x-api-key", OPENAI_KEY)], body.clone()).await;
    assert_eq!(r.status, 401, "OpenAI wants a bearer key");

    server.require_api_key(Some("sk-right-key-000".into()));
    let r = openai(&server, &openai_body(false)).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"]["code"], "invalid_api_key");
    let r = post(&url, &[("authorization", "Bearer sk-right-key-000")], "{").await;
    assert_eq!(r.status, 400);
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("We could not parse the JSON body")
    );
    let r = post(
        &url,
        &[("authorization", "Bearer sk-right-key-000")],
        json!({"messages": []}).to_string(),
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json()["error"]["message"],
        "you must provide a model parameter"
    );
    let r = post(
        &url,
        &[("authorization", "Bearer sk-right-key-000")],
        json!({"model": "m"}).to_string(),
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json(),
        json!({"error": {"message": "Missing required parameter: 'messages'.", "type": "invalid_request_error", "param": "messages", "code": "missing_required_parameter"}})
    );

    assert_eq!(
        server.queued_replies(),
        1,
        "rejected requests consume no reply"
    );
    let r = post(
        &url,
        &[("authorization", "Bearer sk-right-key-000")],
        body.clone(),
    )
    .await;
    assert_eq!(openai_text(&r), "the only reply");
    server.require_api_key(None);
    assert_eq!(server.request_count(), 7);
}

#[tokio::test]
async fn anthropic_auth_and_validation() {
    let server = MockLlmServer::start().await.unwrap();
    server.enqueue(Turn::text("the only reply"));
    let url = anthropic_url(&server);
    let body = anthropic_body(false).to_string();
    let check = |r: &Resp, status: u16, kind: &str| -> String {
        assert_eq!(r.status, status, "{}", r.text);
        let e = r.json();
        assert_eq!(e["type"], "error");
        assert_eq!(e["error"]["type"], kind);
        assert_eq!(e["request_id"].as_str(), r.header("request-id"));
        e["error"]["message"].as_str().unwrap().to_owned()
    };

    let r = post(&url, &[("anthropic-version", "2023-06-01")], body.clone()).await;
    assert_eq!(
        check(&r, 401, "authentication_error"),
        "x-api-key header is required"
    );
    let r = post(&url, &[("x-api-key", "k")], body.clone()).await;
    assert_eq!(
        check(&r, 400, "invalid_request_error"),
        "anthropic-version: header is required"
    );

    server.require_api_key(Some("sk-ant-right".into()));
    let r = anthropic(&server, &anthropic_body(false)).await;
    assert_eq!(check(&r, 401, "authentication_error"), "invalid x-api-key");
    let headers = [
        ("x-api-key", "sk-ant-right"),
        ("anthropic-version", "2023-06-01"),
    ];
    for (field, message) in [
        ("model", "model: Field required"),
        ("max_tokens", "max_tokens: Field required"),
        ("messages", "messages: Field required"),
    ] {
        let mut partial = anthropic_body(false);
        partial.as_object_mut().unwrap().remove(field);
        let r = post(&url, &headers, partial.to_string()).await;
        assert_eq!(check(&r, 400, "invalid_request_error"), message);
    }
    let r = post(&url, &headers, "[]").await;
    check(&r, 400, "invalid_request_error");

    assert_eq!(server.queued_replies(), 1);
    assert_eq!(
        anthropic_text(&post(&url, &headers, body).await),
        "the only reply"
    );
}

#[tokio::test]
async fn unknown_paths_get_404_in_the_provider_format() {
    let server = MockLlmServer::start().await.unwrap();
    server.enqueue(Turn::text("unused"));
    let r = post(
        &format!("{}/completions", server.openai_base_url()),
        &[("authorization", "Bearer k")],
        "{}",
    )
    .await;
    assert_eq!(r.status, 404);
    assert_eq!(
        r.json(),
        json!({"error": {"message": "Invalid URL (POST /v1/completions)", "type": "invalid_request_error", "param": null, "code": null}})
    );
    let r = reqwest::Client::new()
        .get(openai_url(&server))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    let r = post(
        &format!("{}/v1/message", server.base_url()),
        &[("x-api-key", "k"), ("anthropic-version", "2023-06-01")],
        "{}",
    )
    .await;
    assert_eq!(r.status, 404);
    let e = r.json();
    assert_eq!(e["type"], "error");
    assert_eq!(e["error"]["type"], "not_found_error");
    assert_eq!(server.queued_replies(), 1);
}

#[tokio::test]
async fn fifo_across_endpoints_then_default_then_error() {
    let server = MockLlmServer::start().await.unwrap();
    server.enqueue(Turn::text("first"));
    server.enqueue(Turn::text("second"));
    server.enqueue(Fault::ServerError);
    server.enqueue(Turn::text("fourth"));
    assert_eq!(
        anthropic_text(&anthropic(&server, &anthropic_body(false)).await),
        "first"
    );
    assert_eq!(
        openai_text(&openai(&server, &openai_body(false)).await),
        "second"
    );
    assert_eq!(openai(&server, &openai_body(false)).await.status, 500);
    assert_eq!(
        anthropic_text(&anthropic(&server, &anthropic_body(false)).await),
        "fourth"
    );

    let r = openai(&server, &openai_body(false)).await;
    assert_eq!(r.status, 500);
    assert_eq!(
        r.json(),
        json!({"error": {"message": "mock: no scripted reply", "type": "server_error", "param": null, "code": null}})
    );
    let r = anthropic(&server, &anthropic_body(true)).await;
    assert_eq!(r.status, 500);
    assert_eq!(
        r.json()["error"],
        json!({"type": "api_error", "message": "mock: no scripted reply"})
    );

    server.set_default(Some(Turn::text("default").into()));
    server.enqueue(Turn::text("queued"));
    assert_eq!(
        openai_text(&openai(&server, &openai_body(false)).await),
        "queued"
    );
    assert_eq!(
        openai_text(&openai(&server, &openai_body(false)).await),
        "default"
    );
    assert_eq!(
        anthropic_text(&anthropic(&server, &anthropic_body(false)).await),
        "default"
    );
    server.set_default(None);
    assert_eq!(openai(&server, &openai_body(false)).await.status, 500);
}

#[tokio::test]
async fn servers_are_independent() {
    let a = MockLlmServer::start().await.unwrap();
    let b = MockLlmServer::start().await.unwrap();
    assert_ne!(a.base_url(), b.base_url());
    a.enqueue(Turn::text("from a"));
    b.enqueue(Turn::text("from b"));
    assert_eq!(
        openai_text(&openai(&b, &openai_body(false)).await),
        "from b"
    );
    assert_eq!(
        openai_text(&openai(&a, &openai_body(false)).await),
        "from a"
    );
    assert_eq!((a.request_count(), b.request_count()), (1, 1));
}

async fn refuses_connections(url: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(1))
            .build()
            .unwrap();
        if client.post(url).send().await.is_err() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

#[tokio::test]
async fn drop_shuts_the_server_down() {
    let server = MockLlmServer::start().await.unwrap();
    server.enqueue(Turn::text("alive"));
    assert_eq!(
        openai_text(&openai(&server, &openai_body(false)).await),
        "alive"
    );
    let url = openai_url(&server);
    drop(server);
    assert!(
        refuses_connections(&url).await,
        "server still answers after drop"
    );
}

#[tokio::test]
async fn drop_cuts_requests_in_flight() {
    let server = MockLlmServer::start().await.unwrap();
    server.enqueue(Turn::text("never").with_first_byte_delay(Duration::from_secs(30)));
    let url = openai_url(&server);
    let auth = format!("Bearer {OPENAI_KEY}");
    let pending = tokio::spawn(async move {
        reqwest::Client::new()
            .post(url)
            .header("authorization", auth)
            .json(&openai_body(false))
            .send()
            .await
            .map(|r| r.status())
    });
    wait_until(
        "the mock to receive the pending request",
        Duration::from_secs(10),
        || server.request_count() > 0,
    )
    .await;
    let started = Instant::now();
    drop(server);
    let outcome = tokio::time::timeout(Duration::from_secs(5), pending)
        .await
        .expect("cut promptly")
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    if let Ok(status) = outcome {
        // Headers may go out before the cut body; the body then fails.
        assert_eq!(status, 200);
    }
}

#[tokio::test]
async fn a_responder_answers_from_the_request_and_counting_needs_no_recording() {
    let mock = MockLlmServer::start().await.unwrap();
    // Tool calls until the last message is a tool result, then text.
    mock.set_responder(|body: &serde_json::Value| {
        let last = body["messages"].as_array()?.last()?.clone();
        Some(if last["role"] == "tool" {
            Turn::text("done").into()
        } else {
            Turn::tool_call("glob", serde_json::json!({"pattern": "*"})).into()
        })
    });
    mock.keep_requests(false);
    let client = reqwest::Client::new();
    let url = format!("{}/chat/completions", mock.openai_base_url());
    let ask = |messages: serde_json::Value| {
        client
            .post(&url)
            .bearer_auth("sk-test")
            .json(&serde_json::json!({"model": "gpt-4o", "messages": messages}))
            .send()
    };
    let first: serde_json::Value = ask(serde_json::json!([{"role": "user", "content": "go"}]))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let call = &first["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(call["function"]["name"], "glob");
    let second: serde_json::Value = ask(serde_json::json!([
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": null, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call["id"], "content": "a.txt"},
    ]))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(second["choices"][0]["message"]["content"], "done");
    assert_eq!(mock.request_count(), 2);
    assert!(mock.requests().is_empty(), "not kept");
}
