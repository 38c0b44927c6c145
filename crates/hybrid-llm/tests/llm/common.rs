//! Shared helpers of the integration tests: clients pointed at the mock
//! server with tiny backoffs, a representative conversation, and a runner
//! that drives either `complete` or `stream` and checks stream invariants.

#![allow(
    dead_code,
    unused_macros,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use hybrid_llm::{
    AnthropicClient, AnthropicConfig, ChatEvent, ChatModel, ChatRequest, ChatResponse, LlmError,
    Message, OpenAiClient, OpenAiConfig, RetryPolicy, ToolCall, ToolChoice, ToolDefinition,
    TransportConfig,
};
use hybrid_testkit::MockLlmServer;
use serde_json::{Value, json};

/// Generates one `#[tokio::test]` per provider and mode for an
/// `async fn(Provider, Mode)` scenario.
macro_rules! each_provider_and_mode {
    ($scenario:ident) => {
        mod $scenario {
            use super::*;
            #[tokio::test]
            async fn openai_complete() {
                super::$scenario(Provider::OpenAi, Mode::Complete).await;
            }
            #[tokio::test]
            async fn openai_stream() {
                super::$scenario(Provider::OpenAi, Mode::Stream).await;
            }
            #[tokio::test]
            async fn anthropic_complete() {
                super::$scenario(Provider::Anthropic, Mode::Complete).await;
            }
            #[tokio::test]
            async fn anthropic_stream() {
                super::$scenario(Provider::Anthropic, Mode::Stream).await;
            }
        }
    };
}

pub const OPENAI_MODEL: &str = "gpt-4o-mini";
pub const ANTHROPIC_MODEL: &str = "claude-haiku-4-5";
pub const KEY: &str = "sk-test-key";

/// Which provider a test talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    OpenAi,
    Anthropic,
}

/// `complete` or `stream`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Complete,
    Stream,
}

/// Fast retries, short but safe timeouts.
pub fn fast_transport() -> TransportConfig {
    TransportConfig {
        request_timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(2),
        stream_idle_timeout: Duration::from_secs(5),
        retry: RetryPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(5),
            max_backoff: Duration::from_millis(20),
            max_retry_after: Duration::from_secs(2),
            retry_rate_limited: true,
        },
        http2_prior_knowledge: false,
    }
}

/// A client of `provider` at `server` with `transport`.
pub fn client(
    provider: Provider,
    server: &MockLlmServer,
    transport: TransportConfig,
) -> Arc<dyn ChatModel> {
    client_at(provider, &base_url(provider, server), transport)
}

pub fn base_url(provider: Provider, server: &MockLlmServer) -> String {
    match provider {
        Provider::OpenAi => server.openai_base_url(),
        Provider::Anthropic => server.anthropic_base_url(),
    }
}

/// A client of `provider` at `base_url`.
pub fn client_at(
    provider: Provider,
    base_url: &str,
    transport: TransportConfig,
) -> Arc<dyn ChatModel> {
    match provider {
        Provider::OpenAi => Arc::new(
            OpenAiClient::new(
                OpenAiConfig::new(KEY, OPENAI_MODEL)
                    .with_base_url(base_url)
                    .with_transport(transport),
            )
            .unwrap(),
        ),
        Provider::Anthropic => Arc::new(
            AnthropicClient::new(
                AnthropicConfig::new(KEY, ANTHROPIC_MODEL)
                    .with_base_url(base_url)
                    .with_transport(transport),
            )
            .unwrap(),
        ),
    }
}

/// A one-question request.
pub fn ask(text: &str) -> ChatRequest {
    ChatRequest::new(vec![Message::system("Be brief."), Message::user(text)])
}

/// The representative conversation of the golden files.
pub fn conversation(provider: Provider) -> ChatRequest {
    let id = |n: u32| match provider {
        Provider::OpenAi => format!("call_{n}"),
        Provider::Anthropic => format!("toolu_0{n}"),
    };
    ChatRequest {
        model: None,
        messages: vec![
            Message::system("You are a careful operations assistant."),
            Message::user("Is the web service healthy? Check its status and its logs."),
            Message::Assistant {
                text: Some("I'll check both.".into()),
                tool_calls: vec![
                    ToolCall {
                        id: id(1),
                        name: "service_status".into(),
                        arguments: json!({"service": "web"}),
                    },
                    ToolCall {
                        id: id(2),
                        name: "read_logs".into(),
                        arguments: json!({"service": "web", "lines": 20}),
                    },
                ],
            },
            Message::ToolResult {
                call_id: id(1),
                name: "service_status".into(),
                content: "active (running) since 09:00".into(),
                is_error: false,
            },
            Message::ToolResult {
                call_id: id(2),
                name: "read_logs".into(),
                content: "permission denied: /var/log/web.log".into(),
                is_error: true,
            },
        ],
        tools: vec![
            ToolDefinition {
                name: "service_status".into(),
                description: "Report whether a service is running.".into(),
                parameters: json!({
                    "type": "object",
                    "properties": {"service": {"type": "string"}},
                    "required": ["service"]
                }),
            },
            ToolDefinition {
                name: "read_logs".into(),
                description: "Read the last lines of a service's log.".into(),
                parameters: json!({
                    "type": "object",
                    "properties": {"service": {"type": "string"}, "lines": {"type": "integer"}},
                    "required": ["service"]
                }),
            },
        ],
        tool_choice: ToolChoice::Required,
        max_tokens: Some(512),
        temperature: Some(0.2),
        stop: Vec::new(),
        cache_prompt: false,
    }
}

/// What one call produced: the response or error, and (streaming) the events.
#[derive(Debug)]
pub struct Outcome {
    pub result: Result<ChatResponse, LlmError>,
    pub events: Vec<ChatEvent>,
}

/// Runs `request` in `mode`. Streams are checked: `Started` first, at most
/// one `Completed` and only last, deltas that add up to the response.
pub async fn run(model: &dyn ChatModel, request: ChatRequest, mode: Mode) -> Outcome {
    match mode {
        Mode::Complete => Outcome {
            result: model.complete(request).await,
            events: Vec::new(),
        },
        Mode::Stream => {
            let mut stream = model.stream(request);
            let mut events = Vec::new();
            let mut error = None;
            while let Some(item) = stream.next().await {
                match item {
                    Ok(event) => {
                        assert!(error.is_none(), "event after an error: {event:?}");
                        events.push(event);
                    }
                    Err(err) => {
                        assert!(error.is_none(), "two errors");
                        error = Some(err);
                    }
                }
            }
            if let Some(first) = events.first() {
                assert!(
                    matches!(first, ChatEvent::Started { .. }),
                    "first event: {first:?}"
                );
            }
            let completed = events
                .iter()
                .filter(|e| matches!(e, ChatEvent::Completed(_)))
                .count();
            let result = match error {
                Some(err) => {
                    assert_eq!(completed, 0, "Completed and an error");
                    Err(err)
                }
                None => {
                    assert_eq!(completed, 1, "events: {events:?}");
                    let Some(ChatEvent::Completed(response)) = events.last() else {
                        panic!("Completed is not last: {events:?}");
                    };
                    check_deltas(&events, response);
                    Ok(response.clone())
                }
            };
            Outcome { result, events }
        }
    }
}

/// Text deltas add up to the text; argument fragments add up to each call's
/// arguments; every call was announced with its id and name.
fn check_deltas(events: &[ChatEvent], response: &ChatResponse) {
    let text: String = events
        .iter()
        .filter_map(|e| match e {
            ChatEvent::TextDelta(t) => Some(t.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(text, response.text);
    let mut fragments: BTreeMap<usize, String> = BTreeMap::new();
    for event in events {
        match event {
            ChatEvent::ToolCallStarted { index, id, name } => {
                let call = &response.tool_calls[*index];
                assert_eq!((&call.id, &call.name), (id, name));
                fragments.entry(*index).or_default();
            }
            ChatEvent::ToolCallDelta { index, fragment } => {
                fragments
                    .get_mut(index)
                    .expect("delta before start")
                    .push_str(fragment);
            }
            _ => {}
        }
    }
    assert_eq!(fragments.len(), response.tool_calls.len());
    for (index, joined) in fragments {
        let parsed: Value = if joined.trim().is_empty() {
            json!({})
        } else {
            serde_json::from_str(&joined).unwrap()
        };
        assert_eq!(parsed, response.tool_calls[index].arguments);
    }
}

/// Number of `ToolCallDelta` events of call `index`.
pub fn fragment_count(events: &[ChatEvent], index: usize) -> usize {
    events
        .iter()
        .filter(|e| matches!(e, ChatEvent::ToolCallDelta { index: i, .. } if *i == index))
        .count()
}
