//! Reading a provider's error body: the message, type and code when it is
//! JSON in any of the common shapes, else the first 200 characters of text.

use serde_json::Value;

/// How much of a non-JSON error body is kept.
const SNIPPET_CHARS: usize = 200;

/// What an error body says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ErrorDetail {
    /// Human-readable message (never empty).
    pub message: String,
    /// `error.type` (OpenAI, Anthropic, llama.cpp).
    pub kind: Option<String>,
    /// `error.code` (a string for OpenAI, a number for llama.cpp).
    pub code: Option<String>,
}

impl ErrorDetail {
    /// Parses `{"error":{"message","type","code"}}` (OpenAI),
    /// `{"type":"error","error":{"type","message"}}` (Anthropic),
    /// `{"error":"text"}`, `{"message":…}`/`{"detail":…}`, or plain text.
    pub fn parse(body: &str, status: u16) -> Self {
        if let Ok(value) = serde_json::from_str::<Value>(body)
            && let Some(detail) = Self::from_value(&value)
        {
            return detail;
        }
        let snippet: String = body.trim().chars().take(SNIPPET_CHARS).collect();
        let message = if snippet.is_empty() {
            format!("HTTP {status} with an empty body")
        } else {
            snippet
        };
        ErrorDetail {
            message,
            kind: None,
            code: None,
        }
    }

    /// The detail of an error object, if `value` holds one.
    pub fn from_value(value: &Value) -> Option<Self> {
        let error = value.get("error").unwrap_or(value);
        if let Value::String(text) = error {
            return Some(ErrorDetail {
                message: text.clone(),
                kind: None,
                code: None,
            });
        }
        let message = text_field(error, "message")
            .or_else(|| text_field(value, "message"))
            .or_else(|| text_field(value, "detail"))?;
        Some(ErrorDetail {
            message,
            kind: text_field(error, "type"),
            code: text_field(error, "code"),
        })
    }
}

fn text_field(value: &Value, key: &str) -> Option<String> {
    match value.get(key)? {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openai_shape() {
        let d = ErrorDetail::parse(
            r#"{"error":{"message":"Too long","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}"#,
            400,
        );
        assert_eq!(d.message, "Too long");
        assert_eq!(d.kind.as_deref(), Some("invalid_request_error"));
        assert_eq!(d.code.as_deref(), Some("context_length_exceeded"));
    }

    #[test]
    fn anthropic_and_llama_shapes() {
        let d = ErrorDetail::parse(
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
            529,
        );
        assert_eq!(
            (d.kind.as_deref(), d.message.as_str()),
            (Some("overloaded_error"), "Overloaded")
        );
        let d = ErrorDetail::parse(
            r#"{"error":{"code":400,"message":"exceeds","type":"exceed_context_size_error","n_ctx":8}}"#,
            400,
        );
        assert_eq!(d.code.as_deref(), Some("400"));
        let d = ErrorDetail::parse(r#"{"detail":"Not Found"}"#, 404);
        assert_eq!(d.message, "Not Found");
    }

    #[test]
    fn text_bodies_are_cut_to_200_chars() {
        let body = "x".repeat(500);
        assert_eq!(ErrorDetail::parse(&body, 502).message.len(), 200);
        assert_eq!(
            ErrorDetail::parse("", 502).message,
            "HTTP 502 with an empty body"
        );
        assert_eq!(
            ErrorDetail::parse("<html>bad gateway</html>", 502).message,
            "<html>bad gateway</html>"
        );
    }
}
