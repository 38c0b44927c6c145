//! Assembling a [`ChatResponse`]: tool-call arguments, cost, and the events
//! that describe a whole response.

use std::collections::VecDeque;
use std::sync::Arc;

use hybrid_core::Usage;
use serde_json::{Map, Value};

use crate::pricing::PriceTable;
use crate::{ChatEvent, ChatResponse, FinishReason, LlmError, ToolCall};

/// What a response needs from the call that produced it.
#[derive(Debug, Clone)]
pub(crate) struct CallContext {
    /// Provider name, for errors.
    pub provider: Arc<str>,
    /// The model the request asked for (override or configured).
    pub model: String,
    /// Prices.
    pub prices: Arc<PriceTable>,
}

/// The parts of a response, before cost and defaults are filled in.
#[derive(Debug)]
pub(crate) struct Parts {
    pub id: Option<String>,
    pub model: Option<String>,
    pub text: String,
    pub tool_calls: Vec<ToolCall>,
    pub finish_reason: FinishReason,
    pub raw_finish_reason: Option<String>,
    pub usage: Usage,
}

impl Default for Parts {
    fn default() -> Self {
        Parts {
            id: None,
            model: None,
            text: String::new(),
            tool_calls: Vec::new(),
            finish_reason: FinishReason::Stop,
            raw_finish_reason: None,
            usage: Usage::default(),
        }
    }
}

impl CallContext {
    /// A `Decode` error naming the provider.
    pub fn decode_error(&self, message: impl Into<String>) -> LlmError {
        LlmError::Decode {
            provider: self.provider.to_string(),
            message: message.into(),
        }
    }

    /// A `StreamInterrupted` error naming the provider.
    pub fn interrupted(&self, message: impl Into<String>) -> LlmError {
        LlmError::StreamInterrupted {
            provider: self.provider.to_string(),
            message: message.into(),
        }
    }

    /// The finished response: the reported model (else the requested one),
    /// and the cost priced by the requested model, else the reported one.
    pub fn finish(&self, parts: Parts) -> ChatResponse {
        let model = parts
            .model
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| self.model.clone());
        let cost = self
            .prices
            .cost(&self.model, &parts.usage)
            .or_else(|| self.prices.cost(&model, &parts.usage));
        ChatResponse {
            id: parts.id.unwrap_or_default(),
            model,
            text: parts.text,
            tool_calls: parts.tool_calls,
            finish_reason: parts.finish_reason,
            raw_finish_reason: parts.raw_finish_reason,
            usage: parts.usage,
            cost,
        }
    }
}

/// Tool-call arguments from the model's text: the parsed JSON, `{}` for
/// nothing, or the raw text as `Value::String` when it is not JSON.
pub(crate) fn parse_tool_arguments(raw: &str) -> Value {
    if raw.trim().is_empty() {
        return Value::Object(Map::new());
    }
    serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_string()))
}

/// The events a streaming caller would have seen for `response` (used when a
/// server answers a stream request with one JSON body).
pub(crate) fn events_for(response: ChatResponse, out: &mut VecDeque<ChatEvent>) {
    out.push_back(ChatEvent::Started {
        id: response.id.clone(),
        model: response.model.clone(),
    });
    if !response.text.is_empty() {
        out.push_back(ChatEvent::TextDelta(response.text.clone()));
    }
    for (index, call) in response.tool_calls.iter().enumerate() {
        out.push_back(ChatEvent::ToolCallStarted {
            index,
            id: call.id.clone(),
            name: call.name.clone(),
        });
        let fragment = match &call.arguments {
            Value::String(raw) => raw.clone(),
            other => other.to_string(),
        };
        out.push_back(ChatEvent::ToolCallDelta { index, fragment });
    }
    out.push_back(ChatEvent::Completed(response));
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn arguments_parse_or_stay_raw() {
        assert_eq!(parse_tool_arguments("{\"a\":1}"), json!({"a": 1}));
        assert_eq!(parse_tool_arguments("  "), json!({}));
        assert_eq!(
            parse_tool_arguments("{\"a\":"),
            Value::String("{\"a\":".into())
        );
    }

    #[test]
    fn cost_prefers_requested_model_then_reported() {
        let ctx = CallContext {
            provider: "openai".into(),
            model: "my-alias".into(),
            prices: Arc::new(PriceTable::builtin()),
        };
        let usage = Usage {
            input_tokens: 1_000_000,
            ..Usage::default()
        };
        let parts = Parts {
            model: Some("gpt-4o-2024-08-06".into()),
            usage,
            ..Parts::default()
        };
        let response = ctx.finish(parts);
        assert_eq!(response.cost, Some(hybrid_core::usd(2.5)));
        assert_eq!(response.model, "gpt-4o-2024-08-06");
        let unknown = ctx.finish(Parts {
            model: Some(String::new()),
            usage,
            ..Parts::default()
        });
        assert_eq!(unknown.model, "my-alias");
        assert_eq!(unknown.cost, None);
    }
}
