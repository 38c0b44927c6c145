//! Server-sent events as the providers frame them: an optional
//! `event: NAME` line (Anthropic), a `data: …` line, and a blank line.

use bytes::Bytes;
use serde_json::Value;

/// One SSE event.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SseEvent {
    /// The `event:` name, if any.
    pub(crate) name: Option<String>,
    /// The `data:` payload (one line).
    pub(crate) data: String,
}

impl SseEvent {
    /// A `data:`-only event carrying JSON (OpenAI).
    pub(crate) fn data(value: &Value) -> Self {
        SseEvent {
            name: None,
            data: value.to_string(),
        }
    }

    /// A named event carrying JSON (Anthropic).
    pub(crate) fn named(name: &str, value: &Value) -> Self {
        SseEvent {
            name: Some(name.to_owned()),
            data: value.to_string(),
        }
    }

    /// OpenAI's terminal `data: [DONE]`.
    pub(crate) fn done() -> Self {
        SseEvent {
            name: None,
            data: "[DONE]".to_owned(),
        }
    }

    /// The same event with its payload replaced.
    pub(crate) fn with_data(&self, data: String) -> Self {
        SseEvent {
            name: self.name.clone(),
            data,
        }
    }

    /// The bytes on the wire.
    pub(crate) fn encode(&self) -> Bytes {
        let mut out = String::new();
        if let Some(name) = &self.name {
            out.push_str("event: ");
            out.push_str(name);
            out.push('\n');
        }
        out.push_str("data: ");
        out.push_str(&self.data);
        out.push_str("\n\n");
        Bytes::from(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn frames_events() {
        let named = SseEvent::named("ping", &json!({"type": "ping"}));
        assert_eq!(named.encode(), "event: ping\ndata: {\"type\":\"ping\"}\n\n");
        assert_eq!(SseEvent::done().encode(), "data: [DONE]\n\n");
    }
}
