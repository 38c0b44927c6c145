//! Chat Completions response → [`ChatResponse`].
//!
//! Text is `choices[0].message.content` (or its `refusal`); tool calls keep
//! their order, with arguments parsed as JSON (raw text kept as
//! `Value::String` when it is not JSON). Usage: `input_tokens` is
//! `prompt_tokens − prompt_tokens_details.cached_tokens`, `cache_read_tokens`
//! is `cached_tokens`, `output_tokens` is `completion_tokens`.

use hybrid_core::Usage;

use super::errors::map_error_value;
use super::wire::{Completion, WireUsage, arguments_text, content_text};
use crate::assemble::{CallContext, Parts, parse_tool_arguments};
use crate::{ChatResponse, FinishReason, LlmError, ToolCall};

/// Parses a whole (non-streamed) completion body.
pub(crate) fn parse(body: &[u8], ctx: &CallContext) -> Result<ChatResponse, LlmError> {
    let completion: Completion = serde_json::from_slice(body)
        .map_err(|err| ctx.decode_error(format!("chat completion is not valid JSON: {err}")))?;
    if let Some(error) = completion
        .error
        .as_ref()
        .filter(|_| completion.choices.is_none())
    {
        return Err(map_error_value(&ctx.provider, error));
    }
    let mut choices = completion.choices.unwrap_or_default();
    if choices.is_empty() {
        return Err(ctx.decode_error("chat completion has no choices"));
    }
    let choice = choices.swap_remove(0);
    let message = choice.message.unwrap_or_default();
    let mut text = message
        .content
        .as_ref()
        .map(|c| content_text(c).into_owned())
        .unwrap_or_default();
    if text.is_empty() {
        text = message.refusal.unwrap_or_default();
    }
    let mut tool_calls: Vec<ToolCall> = message
        .tool_calls
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(position, call)| {
            let function = call.function.unwrap_or_default();
            let arguments = function
                .arguments
                .as_ref()
                .map(arguments_text)
                .unwrap_or_default();
            ToolCall {
                id: call
                    .id
                    .filter(|id| !id.is_empty())
                    .unwrap_or_else(|| format!("call_{position}")),
                name: function.name.unwrap_or_default(),
                arguments: parse_tool_arguments(&arguments),
            }
        })
        .collect();
    if let Some(function) = message.function_call.filter(|_| tool_calls.is_empty()) {
        let arguments = function
            .arguments
            .as_ref()
            .map(arguments_text)
            .unwrap_or_default();
        tool_calls.push(ToolCall {
            id: "call_0".to_string(),
            name: function.name.unwrap_or_default(),
            arguments: parse_tool_arguments(&arguments),
        });
    }
    let finish_reason = finish_reason(choice.finish_reason.as_deref(), !tool_calls.is_empty());
    Ok(ctx.finish(Parts {
        id: completion.id,
        model: completion.model,
        text,
        tool_calls,
        finish_reason,
        raw_finish_reason: choice.finish_reason,
        usage: completion.usage.as_ref().map(usage).unwrap_or_default(),
    }))
}

/// Normalizes `finish_reason`. A turn that called tools is `ToolCalls` even
/// when a compatible server says `stop` (the agent loop acts on it).
pub(crate) fn finish_reason(raw: Option<&str>, has_tool_calls: bool) -> FinishReason {
    match raw {
        Some("tool_calls" | "function_call") => FinishReason::ToolCalls,
        Some("stop") | None if has_tool_calls => FinishReason::ToolCalls,
        Some("stop") | None => FinishReason::Stop,
        Some("length") => FinishReason::Length,
        Some("content_filter") => FinishReason::ContentFilter,
        Some(other) => FinishReason::Other(other.to_string()),
    }
}

/// Normalizes `usage`.
pub(crate) fn usage(wire: &WireUsage) -> Usage {
    let prompt = wire.prompt_tokens.unwrap_or(0);
    let cached = wire
        .prompt_tokens_details
        .as_ref()
        .and_then(|d| d.cached_tokens)
        .unwrap_or(0);
    Usage {
        input_tokens: prompt.saturating_sub(cached),
        output_tokens: wire.completion_tokens.unwrap_or(0),
        cache_read_tokens: cached,
        cache_write_tokens: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pricing::PriceTable;
    use serde_json::json;
    use std::sync::Arc;

    fn ctx() -> CallContext {
        CallContext {
            provider: "openai".into(),
            model: "gpt-4o".into(),
            prices: Arc::new(PriceTable::builtin()),
        }
    }

    #[test]
    fn text_response_with_cached_usage() {
        let body = json!({
            "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o-2024-08-06",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello", "refusal": null},
                         "logprobs": null, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1000, "completion_tokens": 10, "total_tokens": 1010,
                      "prompt_tokens_details": {"cached_tokens": 400, "audio_tokens": 0},
                      "completion_tokens_details": {"reasoning_tokens": 0}},
            "system_fingerprint": "fp", "service_tier": "default"
        });
        let r = parse(body.to_string().as_bytes(), &ctx()).unwrap();
        assert_eq!(
            (r.id.as_str(), r.model.as_str(), r.text.as_str()),
            ("chatcmpl-1", "gpt-4o-2024-08-06", "Hello")
        );
        assert_eq!(r.finish_reason, FinishReason::Stop);
        assert_eq!(r.raw_finish_reason.as_deref(), Some("stop"));
        assert_eq!(
            r.usage,
            Usage {
                input_tokens: 600,
                output_tokens: 10,
                cache_read_tokens: 400,
                cache_write_tokens: 0
            }
        );
        // 600 × 2500 + 10 × 10000 + 400 × 1250 nano-dollars.
        assert_eq!(
            r.cost,
            Some(hybrid_core::Money::from_nanos(
                600 * 2_500 + 10 * 10_000 + 400 * 1_250
            ))
        );
    }

    #[test]
    fn parallel_tool_calls_and_bad_arguments() {
        let body = json!({
            "id": "x", "model": "gpt-4o",
            "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant", "content": null,
                "tool_calls": [
                    {"id": "call_a", "type": "function", "function": {"name": "f", "arguments": "{\"x\":1}"}},
                    {"id": "call_b", "type": "function", "function": {"name": "g", "arguments": "{oops"}}
                ]}}]
        });
        let r = parse(body.to_string().as_bytes(), &ctx()).unwrap();
        assert_eq!(r.finish_reason, FinishReason::ToolCalls);
        assert_eq!(r.tool_calls.len(), 2);
        assert_eq!(r.tool_calls[0].arguments, json!({"x": 1}));
        assert_eq!(r.tool_calls[1].arguments, json!("{oops"));
        assert_eq!(r.usage, Usage::default());
    }

    #[test]
    fn lenient_with_compatible_servers() {
        let body = json!({"choices": [{"message": {"content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
            "tool_calls": [{"function": {"name": "f", "arguments": {"k": true}}}]}, "finish_reason": "stop"}],
            "usage": null, "timings": {}});
        let r = parse(body.to_string().as_bytes(), &ctx()).unwrap();
        assert_eq!(r.text, "ab");
        assert_eq!(r.model, "gpt-4o");
        assert_eq!(r.tool_calls[0].id, "call_0");
        assert_eq!(r.tool_calls[0].arguments, json!({"k": true}));
        assert_eq!(r.finish_reason, FinishReason::ToolCalls);
        for (raw, expected) in [
            ("length", FinishReason::Length),
            ("content_filter", FinishReason::ContentFilter),
            ("function_call", FinishReason::ToolCalls),
            ("eos", FinishReason::Other("eos".into())),
        ] {
            assert_eq!(finish_reason(Some(raw), false), expected);
        }
    }

    #[test]
    fn malformed_and_error_bodies() {
        assert!(matches!(
            parse(b"{not json", &ctx()),
            Err(LlmError::Decode { .. })
        ));
        assert!(matches!(
            parse(b"{\"choices\": []}", &ctx()),
            Err(LlmError::Decode { .. })
        ));
        let err = parse(
            br#"{"error":{"message":"boom","type":"server_error"}}"#,
            &ctx(),
        )
        .unwrap_err();
        assert!(matches!(err, LlmError::StreamError { .. }), "{err:?}");
    }
}
