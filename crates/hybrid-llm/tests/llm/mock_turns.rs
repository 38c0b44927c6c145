//! Successful turns against the mock server, for each provider, whole and
//! streamed: text, single and parallel tool calls with fragmented arguments,
//! usage with cache tokens, and cost.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use hybrid_core::{Money, Usage};
use hybrid_llm::{ChatEvent, FinishReason, PriceTable};
use hybrid_testkit::{MockLlmServer, Turn};
use serde_json::json;

use crate::common::{Mode, Provider, ask, client, fast_transport, fragment_count, run};

fn model_of(provider: Provider) -> &'static str {
    match provider {
        Provider::OpenAi => crate::common::OPENAI_MODEL,
        Provider::Anthropic => crate::common::ANTHROPIC_MODEL,
    }
}

async fn text(provider: Provider, mode: Mode) {
    let server = MockLlmServer::start().await.unwrap();
    server.enqueue(Turn::text("Hello there, world!").with_usage(12, 5));
    let model = client(provider, &server, fast_transport());
    let outcome = run(&*model, ask("Say hello"), mode).await;
    let response = outcome.result.unwrap();
    assert_eq!(response.text, "Hello there, world!");
    assert_eq!(response.finish_reason, FinishReason::Stop);
    assert!(response.tool_calls.is_empty());
    assert_eq!(response.model, model_of(provider));
    assert!(!response.id.is_empty());
    assert_eq!(
        response.usage,
        Usage {
            input_tokens: 12,
            output_tokens: 5,
            ..Usage::default()
        }
    );
    let expected = PriceTable::builtin().cost(model_of(provider), &response.usage);
    assert!(expected.is_some());
    assert_eq!(response.cost, expected);
    if mode == Mode::Stream {
        let deltas = outcome
            .events
            .iter()
            .filter(|e| matches!(e, ChatEvent::TextDelta(_)))
            .count();
        assert!(
            deltas > 1,
            "text should arrive in pieces: {:?}",
            outcome.events
        );
    }
    assert_eq!(server.request_count(), 1);
}
each_provider_and_mode!(text);

async fn single_tool_call(provider: Provider, mode: Mode) {
    let server = MockLlmServer::start().await.unwrap();
    let args = json!({"city": "Paris", "unit": "celsius", "days": [1, 2]});
    server.enqueue(Turn::tool_call("get_weather", args.clone()).with_chunk_size(4));
    let model = client(provider, &server, fast_transport());
    let outcome = run(&*model, ask("Weather?"), mode).await;
    let response = outcome.result.unwrap();
    assert_eq!(response.finish_reason, FinishReason::ToolCalls);
    assert_eq!(response.tool_calls.len(), 1);
    assert_eq!(response.tool_calls[0].name, "get_weather");
    assert_eq!(response.tool_calls[0].arguments, args);
    let prefix = if provider == Provider::OpenAi {
        "call_"
    } else {
        "toolu_"
    };
    assert!(
        response.tool_calls[0].id.starts_with(prefix),
        "{}",
        response.tool_calls[0].id
    );
    if mode == Mode::Stream {
        assert!(
            fragment_count(&outcome.events, 0) > 3,
            "arguments should be fragmented"
        );
    }
}
each_provider_and_mode!(single_tool_call);

async fn parallel_tool_calls(provider: Provider, mode: Mode) {
    let server = MockLlmServer::start().await.unwrap();
    server.enqueue(
        Turn::tool_call("service_status", json!({"service": "web"}))
            .and_tool_call("read_logs", json!({"service": "web", "lines": 20}))
            .with_text("Checking both.")
            .with_chunk_size(5),
    );
    let model = client(provider, &server, fast_transport());
    let outcome = run(&*model, ask("Healthy?"), mode).await;
    let response = outcome.result.unwrap();
    assert_eq!(response.text, "Checking both.");
    assert_eq!(response.finish_reason, FinishReason::ToolCalls);
    let names: Vec<&str> = response
        .tool_calls
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(names, ["service_status", "read_logs"]);
    assert_eq!(response.tool_calls[0].arguments, json!({"service": "web"}));
    assert_eq!(
        response.tool_calls[1].arguments,
        json!({"service": "web", "lines": 20})
    );
    assert_ne!(response.tool_calls[0].id, response.tool_calls[1].id);
    if mode == Mode::Stream {
        assert!(fragment_count(&outcome.events, 0) > 1 && fragment_count(&outcome.events, 1) > 1);
    }
}
each_provider_and_mode!(parallel_tool_calls);

async fn usage_with_cache(provider: Provider, mode: Mode) {
    let server = MockLlmServer::start().await.unwrap();
    server.enqueue(Turn::text("cached").with_usage(100, 7).with_cache(40, 10));
    let model = client(provider, &server, fast_transport());
    let response = run(&*model, ask("Again?"), mode).await.result.unwrap();
    let expected = match provider {
        // OpenAI counts reads and writes in prompt_tokens and reports only
        // reads: input = 150 − 40 cached; writes are not reported.
        Provider::OpenAi => Usage {
            input_tokens: 110,
            output_tokens: 7,
            cache_read_tokens: 40,
            cache_write_tokens: 0,
        },
        Provider::Anthropic => Usage {
            input_tokens: 100,
            output_tokens: 7,
            cache_read_tokens: 40,
            cache_write_tokens: 10,
        },
    };
    assert_eq!(response.usage, expected);
    let nanos = match provider {
        // gpt-4o-mini: 150 in, 600 out, 75 cached (n$ per token).
        Provider::OpenAi => 110 * 150 + 7 * 600 + 40 * 75,
        // claude-haiku-4-5: 1000 in, 5000 out, 100 read, 1250 write.
        Provider::Anthropic => 100 * 1_000 + 7 * 5_000 + 40 * 100 + 10 * 1_250,
    };
    assert_eq!(response.cost, Some(Money::from_nanos(nanos)));
}
each_provider_and_mode!(usage_with_cache);

async fn reported_model_prices_unknown_alias(provider: Provider, mode: Mode) {
    let server = MockLlmServer::start().await.unwrap();
    let reported = match provider {
        Provider::OpenAi => "gpt-4o-2024-08-06",
        Provider::Anthropic => "claude-sonnet-4-5-20250929",
    };
    server.enqueue(Turn::text("hi").with_usage(10, 1).with_model(reported));
    server.enqueue(
        Turn::text("hi")
            .with_usage(10, 1)
            .with_model("mystery-model"),
    );
    let model = client(provider, &server, fast_transport());
    let mut request = ask("hi");
    request.model = Some("my-alias".into());
    let response = run(&*model, request.clone(), mode).await.result.unwrap();
    assert_eq!(response.model, reported);
    assert_eq!(
        response.cost,
        PriceTable::builtin().cost(reported, &response.usage)
    );
    assert!(response.cost.is_some());
    let unknown = run(&*model, request, mode).await.result.unwrap();
    assert_eq!(unknown.cost, None, "unknown models cost None, never zero");
    assert_eq!(server.requests()[0].body["model"], "my-alias");
}
each_provider_and_mode!(reported_model_prices_unknown_alias);
