//! Prompt caching end to end: two identical `cache_prompt` calls to the mock
//! server's simulated Anthropic cache. The first writes the prefix, the
//! second reads it and costs less; costs are checked by hand against the
//! claude-sonnet-4-5 list prices.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use hybrid_core::{Money, Usage};
use hybrid_llm::{AnthropicClient, AnthropicConfig, ChatModel, ChatRequest};
use hybrid_testkit::{MockLlmServer, Turn};
use serde_json::json;

use crate::common::{KEY, Mode, Provider, conversation, fast_transport, run};

const MODEL: &str = "claude-sonnet-4-5";

/// claude-sonnet-4-5, nano-dollars per token: $3 / Mtok input, $15 / Mtok
/// output, $0.30 / Mtok cache reads, $3.75 / Mtok 5-minute cache writes.
fn sonnet_cost(usage: &Usage) -> Money {
    let nanos = |tokens: u64, price: i64| i64::try_from(tokens).unwrap() * price;
    Money::from_nanos(
        nanos(usage.input_tokens, 3_000)
            + nanos(usage.output_tokens, 15_000)
            + nanos(usage.cache_read_tokens, 300)
            + nanos(usage.cache_write_tokens, 3_750),
    )
}

fn sonnet(server: &MockLlmServer) -> Arc<dyn ChatModel> {
    Arc::new(
        AnthropicClient::new(
            AnthropicConfig::new(KEY, MODEL)
                .with_base_url(server.anthropic_base_url())
                .with_transport(fast_transport()),
        )
        .unwrap(),
    )
}

fn cached_request() -> ChatRequest {
    let mut request = conversation(Provider::Anthropic);
    request.cache_prompt = true;
    request
}

async fn second_identical_call_reads_the_cache(mode: Mode) {
    let server = MockLlmServer::start().await.unwrap();
    server.set_default(Some(Turn::text("The web service is running.").into()));
    let model = sonnet(&server);

    let first = run(&*model, cached_request(), mode).await.result.unwrap();
    let second = run(&*model, cached_request(), mode).await.result.unwrap();

    // The requests carried the markers (the mock accepted them).
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(
        requests[0].body["system"][0]["cache_control"],
        json!({"type": "ephemeral"})
    );
    assert_eq!(requests[0].body, requests[1].body);

    // First: the prefix is written. Second: the same prefix is read.
    let written = first.usage.cache_write_tokens;
    assert!(written > 0, "{:?}", first.usage);
    assert_eq!(first.usage.cache_read_tokens, 0);
    assert!(second.usage.cache_read_tokens > 0, "{:?}", second.usage);
    assert_eq!(second.usage.cache_read_tokens, written);
    assert_eq!(second.usage.cache_write_tokens, 0);
    // `input_tokens` is the uncached rest on both calls (no double count).
    assert_eq!(second.usage.input_tokens, first.usage.input_tokens);
    assert_eq!(second.usage.output_tokens, first.usage.output_tokens);

    // Costs, by hand with Sonnet 4.5 prices.
    assert_eq!(first.cost, Some(sonnet_cost(&first.usage)));
    assert_eq!(second.cost, Some(sonnet_cost(&second.usage)));
    let (first_cost, second_cost) = (first.cost.unwrap(), second.cost.unwrap());
    assert!(
        second_cost < first_cost,
        "{second_cost:?} >= {first_cost:?}"
    );
    // The difference is exactly the prefix at write price minus read price.
    let saved = i64::try_from(written).unwrap() * (3_750 - 300);
    assert_eq!(first_cost, second_cost + Money::from_nanos(saved));

    // The estimate of the marked request pays the write price for its input.
    let estimate = model.estimate(&cached_request()).unwrap();
    let input = i64::try_from(estimate.input_tokens).unwrap();
    assert_eq!(
        estimate.cost,
        Some(Money::from_nanos(input * 3_750 + 512 * 15_000))
    );
}

#[tokio::test]
async fn second_identical_call_reads_the_cache_complete() {
    second_identical_call_reads_the_cache(Mode::Complete).await;
}

#[tokio::test]
async fn second_identical_call_reads_the_cache_stream() {
    second_identical_call_reads_the_cache(Mode::Stream).await;
}

#[tokio::test]
async fn uncached_calls_report_no_cache_tokens() {
    let server = MockLlmServer::start().await.unwrap();
    server.set_default(Some(Turn::text("ok").into()));
    let model = sonnet(&server);
    for mode in [Mode::Complete, Mode::Stream, Mode::Complete] {
        let response = run(&*model, conversation(Provider::Anthropic), mode)
            .await
            .result
            .unwrap();
        assert_eq!(response.usage.cache_read_tokens, 0);
        assert_eq!(response.usage.cache_write_tokens, 0);
        assert_eq!(response.cost, Some(sonnet_cost(&response.usage)));
    }
}
