//! Helpers shared by the integration tests: posting to either endpoint,
//! reading bodies that may be cut, splitting SSE text into events, and
//! waiting for a condition with a deadline.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use hybrid_testkit::MockLlmServer;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

/// How often the `wait_until*` helpers look again.
const POLL: Duration = Duration::from_millis(20);

/// Waits until `done()` holds, looking every 20 ms; panics naming `what` once
/// `within` has passed without it.
pub async fn wait_until(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "waited {within:?} for {what}; it did not happen"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// [`wait_until`] for code that blocks its thread anyway (no runtime needed).
pub fn wait_until_blocking(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "waited {within:?} for {what}; it did not happen"
        );
        std::thread::sleep(POLL);
    }
}

/// A response read to the end (or to the point the connection dropped).
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub text: String,
    /// The body ended with a transport error (connection dropped).
    pub cut: bool,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// One SSE event: its `event:` name (if any) and `data:` payload.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub name: Option<String>,
    pub data: String,
}

impl Event {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.data))
    }
}

pub async fn post(url: &str, headers: &[(&str, &str)], body: impl Into<reqwest::Body>) -> Resp {
    let mut request = reqwest::Client::new().post(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let mut response = request.body(body).send().await.expect("send");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let mut bytes = Vec::new();
    let mut cut = false;
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            Ok(None) => break,
            Err(_) => {
                cut = true;
                break;
            }
        }
    }
    Resp {
        status,
        headers,
        text: String::from_utf8(bytes).expect("utf-8"),
        cut,
    }
}

pub const OPENAI_KEY: &str = "sk-test-0123456789";
pub const ANTHROPIC_KEY: &str = "sk-ant-test-0123456789";

pub fn openai_url(server: &MockLlmServer) -> String {
    format!("{}/chat/completions", server.openai_base_url())
}

pub fn anthropic_url(server: &MockLlmServer) -> String {
    format!("{}/v1/messages", server.anthropic_base_url())
}

/// POSTs an OpenAI request with a valid bearer key.
pub async fn openai(server: &MockLlmServer, body: &Value) -> Resp {
    let auth = format!("Bearer {OPENAI_KEY}");
    post(
        &openai_url(server),
        &[
            ("authorization", &auth),
            ("content-type", "application/json"),
        ],
        body.to_string(),
    )
    .await
}

/// POSTs an Anthropic request with a key and a version header.
pub async fn anthropic(server: &MockLlmServer, body: &Value) -> Resp {
    post(
        &anthropic_url(server),
        &[
            ("x-api-key", ANTHROPIC_KEY),
            ("anthropic-version", "2023-06-01"),
            ("content-type", "application/json"),
        ],
        body.to_string(),
    )
    .await
}

pub fn openai_body(stream: bool) -> Value {
    json!({
        "model": "gpt-4o-mini",
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello"}],
        "stream": stream
    })
}

pub fn openai_body_with_usage() -> Value {
    let mut body = openai_body(true);
    body["stream_options"] = json!({"include_usage": true});
    body
}

pub fn anthropic_body(stream: bool) -> Value {
    json!({
        "model": "claude-sonnet-4-5",
        "max_tokens": 1024,
        "system": "Be brief.",
        "messages": [{"role": "user", "content": "Say hello"}],
        "stream": stream
    })
}

/// Splits SSE text into events (blank-line separated; `event:` / `data:` lines).
pub fn sse(text: &str) -> Vec<Event> {
    text.split("\n\n")
        .filter(|block| !block.trim().is_empty())
        .map(|block| {
            let mut name = None;
            let mut data = Vec::new();
            for line in block.lines() {
                if let Some(rest) = line.strip_prefix("event:") {
                    name = Some(rest.trim().to_owned());
                } else if let Some(rest) = line.strip_prefix("data:") {
                    data.push(rest.strip_prefix(' ').unwrap_or(rest).to_owned());
                } else {
                    panic!("unexpected SSE line {line:?}");
                }
            }
            Event {
                name,
                data: data.join("\n"),
            }
        })
        .collect()
}
