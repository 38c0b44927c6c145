//! The turn loop against the mock server on both wire protocols: tool calls
//! run (in parallel), results go back in each provider's format, refusals are
//! tool errors the run survives, and the turn limit holds.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use hybrid_agents::{
    Agent, AgentError, AgentEvent, AgentObserver, AgentRun, AllowAll, GateDecision, ToolGate,
    ToolRequest,
};
use hybrid_llm::{
    AnthropicClient, AnthropicConfig, ChatModel, Message, OpenAiClient, OpenAiConfig,
};
use hybrid_testkit::{MockLlmServer, Turn};
use hybrid_tools::{Tool, ToolContext, ToolOutput, ToolSpec};
use serde_json::{Value, json};
use tokio::sync::Barrier;
use tokio_util::sync::CancellationToken;

/// Echoes its `text` argument; optionally waits on a barrier first.
struct Echo {
    barrier: Option<Arc<Barrier>>,
}

#[async_trait]
impl Tool for Echo {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "echo".into(),
            description: "Echo text.".into(),
            parameters: json!({"type": "object", "properties": {"text": {"type": "string"}}}),
        }
    }
    async fn call(&self, args: Value, _ctx: &ToolContext) -> ToolOutput {
        if let Some(b) = &self.barrier {
            b.wait().await;
        }
        ToolOutput {
            content: format!("echo: {}", args["text"].as_str().unwrap_or("")),
            is_error: false,
            truncated: false,
            metadata: Value::Null,
        }
    }
}

#[derive(Default)]
struct Recorder(Mutex<Vec<AgentEvent>>);

#[async_trait]
impl AgentObserver for Recorder {
    async fn observe(&self, event: AgentEvent) {
        self.0.lock().unwrap().push(event);
    }
}

/// Denies any call whose text says "forbidden".
struct DenyForbidden;

#[async_trait]
impl ToolGate for DenyForbidden {
    async fn check(&self, r: ToolRequest<'_>) -> GateDecision {
        if r.arguments["text"] == "forbidden" {
            GateDecision::Deny {
                rule: "deny:test".into(),
                reason: "forbidden text".into(),
            }
        } else {
            GateDecision::Allow
        }
    }
}

fn models(mock: &MockLlmServer) -> Vec<(&'static str, Arc<dyn ChatModel>)> {
    let openai = OpenAiClient::new(
        OpenAiConfig::new("sk", "gpt-4o-mini").with_base_url(mock.openai_base_url()),
    )
    .unwrap();
    let claude = AnthropicClient::new(
        AnthropicConfig::new("sk", "claude-sonnet-4-5").with_base_url(mock.anthropic_base_url()),
    )
    .unwrap();
    vec![
        ("openai", Arc::new(openai)),
        ("anthropic", Arc::new(claude)),
    ]
}

fn tool_ctx(dir: &std::path::Path) -> ToolContext {
    ToolContext::new(dir.to_path_buf())
}

/// The tool results of the last request, as (content, is_error), in each wire format.
fn tool_results(body: &Value) -> Vec<(String, bool)> {
    let msgs = body["messages"].as_array().unwrap();
    let mut out = Vec::new();
    for m in msgs {
        if m["role"] == "tool" {
            let c = m["content"].as_str().unwrap().to_owned();
            let err = c.starts_with("Error: ");
            out.push((c.trim_start_matches("Error: ").to_owned(), err));
        }
        if let Some(blocks) = m["content"].as_array() {
            for b in blocks.iter().filter(|b| b["type"] == "tool_result") {
                let c = match &b["content"] {
                    Value::String(s) => s.clone(),
                    other => other[0]["text"].as_str().unwrap_or_default().to_owned(),
                };
                out.push((c, b["is_error"].as_bool().unwrap_or(false)));
            }
        }
    }
    out
}

#[tokio::test]
async fn tools_run_in_parallel_and_results_go_back_in_the_providers_format() {
    let mock = MockLlmServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    for (name, model) in models(&mock) {
        mock.enqueue(
            Turn::tool_call("echo", json!({"text": "a"}))
                .and_tool_call("echo", json!({"text": "b"})),
        );
        mock.enqueue(Turn::text("both echoed"));
        // Both calls must be in flight at once to pass the barrier.
        let agent = Agent::new("executor", model).with_tools(vec![Arc::new(Echo {
            barrier: Some(Arc::new(Barrier::new(2))),
        })]);
        let recorder = Recorder::default();
        let cancel = CancellationToken::new();
        let ctx = tool_ctx(dir.path());
        let run = AgentRun {
            tools: &ctx,
            gate: &AllowAll,
            model_gate: &hybrid_agents::Unmetered,
            observer: &recorder,
            cancel: &cancel,
        };
        let out = tokio::time::timeout(
            Duration::from_secs(10),
            agent.run(vec![Message::user("go")], run),
        )
        .await
        .unwrap_or_else(|_| panic!("{name}: tool calls did not run concurrently"))
        .unwrap();
        assert_eq!(out.text, "both echoed", "{name}");
        assert_eq!(out.turns, 2);
        assert_eq!(out.tools_used, vec!["echo".to_owned()]);
        assert_eq!(out.tool_calls.len(), 2);
        let sent = mock.last_request().unwrap().body;
        assert_eq!(
            tool_results(&sent),
            vec![("echo: a".to_owned(), false), ("echo: b".to_owned(), false)],
            "{name}: {sent}"
        );
        let events = recorder.0.lock().unwrap();
        let calls = events
            .iter()
            .filter(|e| matches!(e, AgentEvent::ToolCall { .. }))
            .count();
        let results = events
            .iter()
            .filter(|e| matches!(e, AgentEvent::ToolResult { .. }))
            .count();
        assert_eq!((calls, results), (2, 2), "{name}");
    }
}

#[tokio::test]
async fn refusals_are_tool_errors_and_the_run_goes_on() {
    let mock = MockLlmServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    for (name, model) in models(&mock) {
        mock.enqueue(
            Turn::tool_call("echo", json!({"text": "forbidden"}))
                .and_tool_call("nope", json!({}))
                .and_raw_tool_call("echo", "{\"text\": ")
                .and_tool_call("echo", json!(["not", "an", "object"]))
                .and_tool_call("echo", json!({"text": "fine"})),
        );
        mock.enqueue(Turn::text("done despite refusals"));
        let agent =
            Agent::new("executor", model).with_tools(vec![Arc::new(Echo { barrier: None })]);
        let recorder = Recorder::default();
        let cancel = CancellationToken::new();
        let ctx = tool_ctx(dir.path());
        let run = AgentRun {
            tools: &ctx,
            gate: &DenyForbidden,
            model_gate: &hybrid_agents::Unmetered,
            observer: &recorder,
            cancel: &cancel,
        };
        let out = agent.run(vec![Message::user("go")], run).await.unwrap();
        assert_eq!(out.text, "done despite refusals", "{name}");
        let results = tool_results(&mock.last_request().unwrap().body);
        assert_eq!(results.len(), 5, "{name}: {results:?}");
        assert_eq!(
            results[0],
            ("denied by deny:test: forbidden text".to_owned(), true)
        );
        assert!(
            results[1].1
                && results[1]
                    .0
                    .contains("unknown tool `nope` (available: echo)")
        );
        assert!(
            results[2].1 && results[2].0.contains("not valid JSON"),
            "{:?}",
            results[2]
        );
        assert!(results[3].1 && results[3].0.contains("must be a JSON object"));
        assert_eq!(results[4], ("echo: fine".to_owned(), false));
        let denied = recorder
            .0
            .lock()
            .unwrap()
            .iter()
            .filter(|e| matches!(e, AgentEvent::ToolDenied { .. }))
            .count();
        assert_eq!(denied, 1);
    }
}

#[tokio::test]
async fn the_turn_limit_stops_a_model_that_never_finishes() {
    let mock = MockLlmServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    mock.set_default(Some(
        Turn::tool_call("echo", json!({"text": "again"})).into(),
    ));
    let (_, model) = models(&mock).remove(0);
    let agent = Agent::new("executor", model)
        .with_tools(vec![Arc::new(Echo { barrier: None })])
        .with_max_turns(3);
    let cancel = CancellationToken::new();
    let ctx = tool_ctx(dir.path());
    let run = AgentRun {
        tools: &ctx,
        gate: &AllowAll,
        model_gate: &hybrid_agents::Unmetered,
        observer: &hybrid_agents::NoopObserver,
        cancel: &cancel,
    };
    let err = agent
        .run(vec![Message::user("loop")], run)
        .await
        .unwrap_err();
    let AgentError::MaxTurns { turns, partial, .. } = err else {
        panic!("{err:?}")
    };
    assert_eq!((turns, partial.turns, partial.tool_calls.len()), (3, 3, 3));
    assert_eq!(mock.request_count(), 3);
}

/// A tool named the MCP way.
struct McpStyle;

#[async_trait]
impl Tool for McpStyle {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "mcp:github:list_issues".into(),
            description: "List issues.".into(),
            parameters: json!({"type": "object"}),
        }
    }
    async fn call(&self, _args: Value, _ctx: &ToolContext) -> ToolOutput {
        ToolOutput {
            content: "#1 open".into(),
            is_error: false,
            truncated: false,
            metadata: Value::Null,
        }
    }
}

#[tokio::test]
async fn mcp_tool_names_reach_the_providers_in_a_form_they_accept() {
    let mock = MockLlmServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    for (name, model) in models(&mock) {
        mock.enqueue(Turn::tool_call("mcp__github__list_issues", json!({})));
        mock.enqueue(Turn::text("one issue"));
        let agent = Agent::new("executor", model).with_tools(vec![Arc::new(McpStyle)]);
        let cancel = CancellationToken::new();
        let ctx = tool_ctx(dir.path());
        let run = AgentRun {
            tools: &ctx,
            gate: &AllowAll,
            model_gate: &hybrid_agents::Unmetered,
            observer: &hybrid_agents::NoopObserver,
            cancel: &cancel,
        };
        let out = agent
            .run(vec![Message::user("issues?")], run)
            .await
            .unwrap();
        assert_eq!(
            out.tools_used,
            vec!["mcp:github:list_issues".to_owned()],
            "{name}"
        );
        assert_eq!(out.tool_calls[0].output.as_deref(), Some("#1 open"));
        let first = &mock.requests()[mock.request_count() - 2].body;
        let offered: Vec<&str> = first["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                t["name"]
                    .as_str()
                    .or(t["function"]["name"].as_str())
                    .unwrap()
            })
            .collect();
        assert_eq!(offered, vec!["mcp__github__list_issues"], "{name}");
        assert_eq!(
            tool_results(&mock.last_request().unwrap().body),
            vec![("#1 open".to_owned(), false)]
        );
    }
}
