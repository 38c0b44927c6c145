//! The exact request each client sends for a representative conversation,
//! compared with hand-written golden bodies (see `tests/golden/README.md`),
//! and the headers the references require.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use hybrid_llm::{ChatModel, ChatRequest, OpenAiClient, OpenAiConfig};
use hybrid_testkit::{MockLlmServer, Protocol, RecordedRequest, Turn};
use serde_json::Value;

use crate::common::{KEY, Mode, Provider, client, conversation, fast_transport, run};

fn golden(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

async fn recorded(provider: Provider, mode: Mode) -> RecordedRequest {
    recorded_request(provider, mode, conversation(provider)).await
}

async fn recorded_request(provider: Provider, mode: Mode, request: ChatRequest) -> RecordedRequest {
    let server = MockLlmServer::start().await.unwrap();
    server.require_api_key(Some(KEY.into()));
    server.enqueue(Turn::text("ok"));
    let model = client(provider, &server, fast_transport());
    run(&*model, request, mode).await.result.unwrap();
    let mut requests = server.requests();
    assert_eq!(requests.len(), 1);
    requests.remove(0)
}

fn assert_body(request: &RecordedRequest, file: &str) {
    let expected = golden(file);
    assert_eq!(
        request.body,
        expected,
        "body differs from {file}:\n{}",
        serde_json::to_string_pretty(&request.body).unwrap_or_default()
    );
}

fn assert_openai_headers(request: &RecordedRequest) {
    assert_eq!(request.protocol, Protocol::OpenAi);
    assert_eq!(
        (request.method.as_str(), request.path.as_str()),
        ("POST", "/v1/chat/completions")
    );
    assert_eq!(request.header("authorization"), Some("Bearer sk-test-key"));
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert!(request.header("x-api-key").is_none());
}

fn assert_anthropic_headers(request: &RecordedRequest) {
    assert_eq!(request.protocol, Protocol::Anthropic);
    assert_eq!(
        (request.method.as_str(), request.path.as_str()),
        ("POST", "/v1/messages")
    );
    assert_eq!(request.header("x-api-key"), Some("sk-test-key"));
    assert_eq!(request.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert!(request.header("authorization").is_none());
}

#[tokio::test]
async fn openai_request_matches_golden() {
    let request = recorded(Provider::OpenAi, Mode::Complete).await;
    assert_body(&request, "openai_chat_request.json");
    assert_openai_headers(&request);
    assert_eq!(request.header("accept"), Some("application/json"));
}

#[tokio::test]
async fn openai_stream_request_matches_golden() {
    let request = recorded(Provider::OpenAi, Mode::Stream).await;
    assert_body(&request, "openai_chat_request_stream.json");
    assert_openai_headers(&request);
    assert_eq!(request.header("accept"), Some("text/event-stream"));
}

#[tokio::test]
async fn anthropic_request_matches_golden() {
    let request = recorded(Provider::Anthropic, Mode::Complete).await;
    assert_body(&request, "anthropic_messages_request.json");
    assert_anthropic_headers(&request);
}

#[tokio::test]
async fn anthropic_stream_request_matches_golden() {
    let request = recorded(Provider::Anthropic, Mode::Stream).await;
    assert_body(&request, "anthropic_messages_request_stream.json");
    assert_anthropic_headers(&request);
}

/// The conversation with `cache_prompt` set.
fn cached_conversation(provider: Provider) -> ChatRequest {
    let mut request = conversation(provider);
    request.cache_prompt = true;
    request
}

#[tokio::test]
async fn anthropic_cached_request_matches_golden() {
    let request = recorded_request(
        Provider::Anthropic,
        Mode::Complete,
        cached_conversation(Provider::Anthropic),
    )
    .await;
    assert_body(&request, "anthropic_messages_request_cached.json");
    assert_anthropic_headers(&request);
    // Streamed: the same body plus `stream: true`.
    let streamed = recorded_request(
        Provider::Anthropic,
        Mode::Stream,
        cached_conversation(Provider::Anthropic),
    )
    .await;
    let mut expected = golden("anthropic_messages_request_cached.json");
    expected["stream"] = true.into();
    assert_eq!(streamed.body, expected);
}

#[tokio::test]
async fn openai_cached_request_is_unchanged() {
    for (mode, file) in [
        (Mode::Complete, "openai_chat_request.json"),
        (Mode::Stream, "openai_chat_request_stream.json"),
    ] {
        let request = recorded_request(
            Provider::OpenAi,
            mode,
            cached_conversation(Provider::OpenAi),
        )
        .await;
        assert_body(&request, file);
    }
}

#[tokio::test]
async fn compatible_servers_get_max_tokens_too_and_extra_headers() {
    let server = MockLlmServer::start().await.unwrap();
    server.enqueue(Turn::text("ok"));
    let config = OpenAiConfig::new(KEY, "qwen2.5")
        .with_provider_name("llama.cpp")
        .with_base_url(format!("{}/", server.openai_base_url()))
        .with_header("x-team", "ops");
    let mut config = config.with_transport(fast_transport());
    config.organization = Some("org-42".into());
    let model = OpenAiClient::new(config).unwrap();
    assert_eq!(model.provider(), "llama.cpp");
    model
        .complete(conversation(Provider::OpenAi))
        .await
        .unwrap();
    let request = server.last_request().unwrap();
    let mut expected = golden("openai_chat_request.json");
    expected["model"] = "qwen2.5".into();
    expected["max_tokens"] = 512.into();
    assert_eq!(request.body, expected);
    assert_eq!(request.header("x-team"), Some("ops"));
    assert_eq!(request.header("openai-organization"), Some("org-42"));
    assert_eq!(request.path, "/v1/chat/completions");
}
