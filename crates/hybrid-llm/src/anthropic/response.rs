//! Messages response → [`ChatResponse`].
//!
//! `text` blocks are concatenated, `tool_use` blocks become tool calls in
//! order, other blocks (thinking, server tools) are skipped. Stop reasons:
//! `end_turn`/`stop_sequence` → Stop, `max_tokens` (and
//! `model_context_window_exceeded`) → Length, `tool_use` → ToolCalls,
//! `refusal` → ContentFilter, `pause_turn` and others → Other. Usage maps
//! `cache_creation_input_tokens` → cache writes and
//! `cache_read_input_tokens` → cache reads (`input_tokens` already excludes
//! both).

use hybrid_core::Usage;
use serde_json::{Map, Value};

use super::errors::map_stream_error;
use super::wire::{MessageResponse, WireUsage};
use crate::assemble::{CallContext, Parts};
use crate::{ChatResponse, FinishReason, LlmError, ToolCall};

/// Parses a whole (non-streamed) Message body.
pub(crate) fn parse(body: &[u8], ctx: &CallContext) -> Result<ChatResponse, LlmError> {
    let message: MessageResponse = serde_json::from_slice(body)
        .map_err(|err| ctx.decode_error(format!("message is not valid JSON: {err}")))?;
    if message.kind.as_deref() == Some("error")
        || (message.error.is_some() && message.content.is_none())
    {
        let error = message.error.unwrap_or(Value::Null);
        return Err(map_stream_error(&ctx.provider, &error));
    }
    let Some(content) = message.content else {
        return Err(ctx.decode_error("message has no content"));
    };
    let mut text = String::new();
    let mut tool_calls = Vec::new();
    for block in content {
        match block.kind.as_deref() {
            Some("text") => text.push_str(block.text.as_deref().unwrap_or_default()),
            Some("tool_use") => tool_calls.push(ToolCall {
                id: block.id.unwrap_or_default(),
                name: block.name.unwrap_or_default(),
                arguments: block.input.unwrap_or_else(|| Value::Object(Map::new())),
            }),
            _ => {}
        }
    }
    let finish_reason = finish_reason(message.stop_reason.as_deref(), !tool_calls.is_empty());
    let mut usage = Usage::default();
    if let Some(wire) = &message.usage {
        apply_usage(&mut usage, wire);
    }
    Ok(ctx.finish(Parts {
        id: message.id,
        model: message.model,
        text,
        tool_calls,
        finish_reason,
        raw_finish_reason: message.stop_reason,
        usage,
    }))
}

/// Normalizes `stop_reason`.
pub(crate) fn finish_reason(raw: Option<&str>, has_tool_calls: bool) -> FinishReason {
    match raw {
        Some("end_turn" | "stop_sequence") => FinishReason::Stop,
        Some("max_tokens" | "model_context_window_exceeded") => FinishReason::Length,
        Some("tool_use") => FinishReason::ToolCalls,
        Some("refusal") => FinishReason::ContentFilter,
        Some(other) => FinishReason::Other(other.to_string()),
        None if has_tool_calls => FinishReason::ToolCalls,
        None => FinishReason::Stop,
    }
}

/// Overwrites the counts `wire` carries (stream usage is cumulative).
pub(crate) fn apply_usage(usage: &mut Usage, wire: &WireUsage) {
    if let Some(n) = wire.input_tokens {
        usage.input_tokens = n;
    }
    if let Some(n) = wire.output_tokens {
        usage.output_tokens = n;
    }
    if let Some(n) = wire.cache_creation_input_tokens {
        usage.cache_write_tokens = n;
    }
    if let Some(n) = wire.cache_read_input_tokens {
        usage.cache_read_tokens = n;
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
            provider: "anthropic".into(),
            model: "claude-sonnet-4-5".into(),
            prices: Arc::new(PriceTable::builtin()),
        }
    }

    #[test]
    fn text_and_tool_use_with_cache_usage() {
        let body = json!({
            "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5-20250929",
            "content": [
                {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                {"type": "text", "text": "Let me check."},
                {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "toolu_2", "name": "time", "input": {}}
            ],
            "stop_reason": "tool_use", "stop_sequence": null,
            "usage": {"input_tokens": 100, "output_tokens": 20, "cache_creation_input_tokens": 50,
                      "cache_read_input_tokens": 1000, "service_tier": "standard"}
        });
        let r = parse(body.to_string().as_bytes(), &ctx()).unwrap();
        assert_eq!(r.id, "msg_1");
        assert_eq!(r.model, "claude-sonnet-4-5-20250929");
        assert_eq!(r.text, "Let me check.");
        assert_eq!(r.tool_calls.len(), 2);
        assert_eq!(r.tool_calls[0].arguments, json!({"city": "Paris"}));
        assert_eq!(r.finish_reason, FinishReason::ToolCalls);
        assert_eq!(
            r.usage,
            Usage {
                input_tokens: 100,
                output_tokens: 20,
                cache_read_tokens: 1000,
                cache_write_tokens: 50
            }
        );
        let expected = 100 * 3_000 + 20 * 15_000 + 1000 * 300 + 50 * 3_750;
        assert_eq!(r.cost, Some(hybrid_core::Money::from_nanos(expected)));
    }

    #[test]
    fn stop_reasons() {
        for (raw, expected) in [
            ("end_turn", FinishReason::Stop),
            ("stop_sequence", FinishReason::Stop),
            ("max_tokens", FinishReason::Length),
            ("tool_use", FinishReason::ToolCalls),
            ("refusal", FinishReason::ContentFilter),
            ("pause_turn", FinishReason::Other("pause_turn".into())),
        ] {
            assert_eq!(finish_reason(Some(raw), false), expected);
        }
    }

    #[test]
    fn malformed_and_error_bodies() {
        assert!(matches!(
            parse(b"not json", &ctx()),
            Err(LlmError::Decode { .. })
        ));
        assert!(matches!(parse(b"{}", &ctx()), Err(LlmError::Decode { .. })));
        let err = parse(
            br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
            &ctx(),
        );
        assert!(matches!(err, Err(LlmError::Overloaded { .. })));
    }
}
