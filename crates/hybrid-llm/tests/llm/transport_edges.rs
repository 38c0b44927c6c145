//! Transport edges the mock cannot script: connection refused, a stream that
//! stalls after its first event, a JSON answer to a stream request, missing
//! API keys, and the `Arc`/`Box` blanket impls.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use hybrid_llm::{
    AnthropicConfig, ChatEvent, ChatModel, FinishReason, LlmError, OpenAiConfig, TransportConfig,
};
use hybrid_testkit::{Fault, MockLlmServer};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::common::{Mode, Provider, ask, client, client_at, fast_transport, run};

/// A port nothing listens on.
async fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    port
}

async fn connection_refused(provider: Provider, mode: Mode) {
    let port = closed_port().await;
    let base = match provider {
        Provider::OpenAi => format!("http://127.0.0.1:{port}/v1"),
        Provider::Anthropic => format!("http://127.0.0.1:{port}"),
    };
    let model = client_at(provider, &base, fast_transport());
    let err = run(&*model, ask("hi"), mode).await.result.unwrap_err();
    let LlmError::Connection { url, .. } = &err else {
        panic!("{err:?}")
    };
    let path = if provider == Provider::OpenAi {
        "/v1/chat/completions"
    } else {
        "/v1/messages"
    };
    assert_eq!(url, &format!("http://127.0.0.1:{port}{path}"));
    assert!(err.to_string().contains(url.as_str()), "{err}");
    assert!(err.is_retryable());
}
each_provider_and_mode!(connection_refused);

#[test]
fn missing_api_keys_name_the_variable() {
    let openai = OpenAiConfig::from_lookup("gpt-4o", |_| None).unwrap_err();
    assert_eq!(
        openai,
        LlmError::MissingApiKey {
            provider: "openai".into(),
            env_var: "OPENAI_API_KEY".into()
        }
    );
    assert!(openai.to_string().contains("OPENAI_API_KEY"));
    let anthropic =
        AnthropicConfig::from_lookup("claude-haiku-4-5", |_| Some(String::new())).unwrap_err();
    assert_eq!(
        anthropic,
        LlmError::MissingApiKey {
            provider: "anthropic".into(),
            env_var: "ANTHROPIC_API_KEY".into()
        }
    );
    assert!(anthropic.to_string().contains("ANTHROPIC_API_KEY"));
}

/// Serves one connection: the response head and `first` SSE bytes, then
/// silence until the client hangs up.
async fn stalling_server(first: &'static str) -> (String, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let Ok((mut socket, _)) = listener.accept().await else {
            return;
        };
        let mut buf = vec![0u8; 64 * 1024];
        let _ = socket.read(&mut buf).await;
        let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n";
        let chunk = format!("{:x}\r\n{first}\r\n", first.len());
        let _ = socket.write_all(head.as_bytes()).await;
        let _ = socket.write_all(chunk.as_bytes()).await;
        let _ = socket.flush().await;
        let _ = socket.read(&mut buf).await;
    });
    (base, task)
}

async fn idle_after_first_event(provider: Provider) {
    let first = match provider {
        Provider::OpenAi => {
            "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Hi\"},\"finish_reason\":null}]}\n\n"
        }
        Provider::Anthropic => {
            "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"m\",\"usage\":{\"input_tokens\":3,\"output_tokens\":1}}}\n\n"
        }
    };
    let (base, task) = stalling_server(first).await;
    let base = if provider == Provider::OpenAi {
        format!("{base}/v1")
    } else {
        base
    };
    let transport = TransportConfig {
        stream_idle_timeout: Duration::from_millis(200),
        ..fast_transport()
    };
    let model = client_at(provider, &base, transport);
    let outcome = run(&*model, ask("hi"), Mode::Stream).await;
    assert!(
        matches!(outcome.events.first(), Some(ChatEvent::Started { .. })),
        "{:?}",
        outcome.events
    );
    let err = outcome.result.unwrap_err();
    assert!(
        matches!(err, LlmError::StreamIdle { after, .. } if after == Duration::from_millis(200)),
        "{err:?}"
    );
    task.abort();
}

#[tokio::test]
async fn openai_stream_idle_after_first_event() {
    idle_after_first_event(Provider::OpenAi).await;
}

#[tokio::test]
async fn anthropic_stream_idle_after_first_event() {
    idle_after_first_event(Provider::Anthropic).await;
}

#[tokio::test]
async fn stream_request_answered_with_json_still_streams_events() {
    let server = MockLlmServer::start().await.unwrap();
    let body = json!({
        "id": "chatcmpl-x", "object": "chat.completion", "model": "gpt-4o-mini",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant", "content": "Sure.",
            "tool_calls": [{"id": "call_9", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}}]}}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 2}
    });
    server.enqueue(Fault::Status {
        status: 200,
        body,
        headers: vec![],
    });
    let model = client(Provider::OpenAi, &server, fast_transport());
    let outcome = run(&*model, ask("hi"), Mode::Stream).await;
    let response = outcome.result.unwrap();
    assert_eq!(response.text, "Sure.");
    assert_eq!(response.finish_reason, FinishReason::ToolCalls);
    assert_eq!(response.tool_calls[0].arguments, json!({"a": 1}));
    assert!(outcome.events.contains(&ChatEvent::ToolCallStarted {
        index: 0,
        id: "call_9".into(),
        name: "f".into()
    }));
}

#[tokio::test]
async fn blanket_impls_forward() {
    let server = MockLlmServer::start().await.unwrap();
    server.enqueue(hybrid_testkit::Turn::text("one"));
    server.enqueue(hybrid_testkit::Turn::text("two"));
    let shared: Arc<dyn ChatModel> = client(Provider::Anthropic, &server, fast_transport());
    let boxed: Box<Arc<dyn ChatModel>> = Box::new(Arc::clone(&shared));
    assert_eq!(boxed.provider(), "anthropic");
    assert_eq!(boxed.model(), crate::common::ANTHROPIC_MODEL);
    assert_eq!(boxed.complete(ask("hi")).await.unwrap().text, "one");
    assert_eq!(
        run(&boxed, ask("hi"), Mode::Stream)
            .await
            .result
            .unwrap()
            .text,
        "two"
    );
}

/// `http2_prior_knowledge` speaks HTTP/2 to a plain-`http` server that
/// accepts it (the mock does), whole and streamed; the default stays on
/// HTTP/1.1 there.
async fn http2_prior_knowledge(provider: Provider, mode: Mode) {
    let server = MockLlmServer::start().await.unwrap();
    server.enqueue(hybrid_testkit::Turn::text("over h2"));
    server.enqueue(hybrid_testkit::Turn::text("over h1"));
    let h2 = TransportConfig {
        http2_prior_knowledge: true,
        ..fast_transport()
    };
    let model = client(provider, &server, h2);
    assert_eq!(
        run(&*model, ask("hi"), mode).await.result.unwrap().text,
        "over h2"
    );
    let model = client(provider, &server, fast_transport());
    assert_eq!(
        run(&*model, ask("hi"), mode).await.result.unwrap().text,
        "over h1"
    );
    let versions: Vec<String> = server.requests().into_iter().map(|r| r.version).collect();
    assert_eq!(versions, ["HTTP/2.0", "HTTP/1.1"]);
}
each_provider_and_mode!(http2_prior_knowledge);
