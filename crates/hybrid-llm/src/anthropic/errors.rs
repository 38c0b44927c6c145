//! Anthropic error bodies (`{"type":"error","error":{"type","message"}}`) and
//! statuses → [`LlmError`].
//!
//! | status / `error.type` | error |
//! | --- | --- |
//! | `invalid_request_error` saying the prompt is too long | `ContextTooLong` |
//! | 401 `authentication_error`, 403 `permission_error` | `Authentication` |
//! | 429 `rate_limit_error` | `RateLimited` with the `retry-after` wait |
//! | 529 `overloaded_error` | `Overloaded` |
//! | 500 `api_error`, 504 `timeout_error`, other 5xx | `Server` |
//! | 400, 402 `billing_error`, 404 `not_found_error`, 413 `request_too_large`, other 4xx | `InvalidRequest` |

use reqwest::header::HeaderMap;
use serde_json::Value;

use crate::LlmError;
use crate::error_body::ErrorDetail;
use crate::retry::retry_after_from_headers;

/// Maps an error response to a typed error.
pub(crate) fn map_error(provider: &str, status: u16, headers: &HeaderMap, body: &str) -> LlmError {
    let detail = ErrorDetail::parse(body, status);
    let provider = provider.to_string();
    let kind = detail.kind.as_deref().unwrap_or_default();
    let message = detail.message.clone();
    if is_context_error(&detail) {
        return LlmError::ContextTooLong { provider, message };
    }
    match (status, kind) {
        (401 | 403, _) | (_, "authentication_error" | "permission_error") => {
            LlmError::Authentication {
                provider,
                status,
                message,
            }
        }
        (429, _) | (_, "rate_limit_error") => LlmError::RateLimited {
            provider,
            retry_after: retry_after_from_headers(headers),
            message,
        },
        (529, _) | (_, "overloaded_error") => LlmError::Overloaded {
            provider,
            status,
            message,
        },
        (500..=599, _) => LlmError::Server {
            provider,
            status,
            message,
        },
        _ => LlmError::InvalidRequest {
            provider,
            status,
            message,
        },
    }
}

/// Maps an `event: error` inside a stream: overload stays `Overloaded`,
/// anything else is a `StreamError` of the provider's type.
pub(crate) fn map_stream_error(provider: &str, error: &Value) -> LlmError {
    let detail = ErrorDetail::from_value(error).unwrap_or_else(|| ErrorDetail {
        message: error.to_string().chars().take(200).collect(),
        kind: None,
        code: None,
    });
    if is_context_error(&detail) {
        return LlmError::ContextTooLong {
            provider: provider.to_string(),
            message: detail.message,
        };
    }
    match detail.kind.as_deref() {
        Some("overloaded_error") => LlmError::Overloaded {
            provider: provider.to_string(),
            status: 529,
            message: detail.message,
        },
        kind => LlmError::StreamError {
            provider: provider.to_string(),
            kind: kind.unwrap_or("error").to_string(),
            message: detail.message,
        },
    }
}

fn is_context_error(detail: &ErrorDetail) -> bool {
    if !matches!(detail.kind.as_deref(), Some("invalid_request_error") | None) {
        return false;
    }
    let message = detail.message.to_ascii_lowercase();
    message.contains("prompt is too long")
        || message.contains("exceed context limit")
        || message.contains("exceeds the context window")
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;
    use serde_json::json;

    fn body(kind: &str, message: &str) -> String {
        json!({"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_1"})
            .to_string()
    }

    fn map(status: u16, kind: &str, message: &str) -> LlmError {
        map_error("anthropic", status, &HeaderMap::new(), &body(kind, message))
    }

    #[test]
    fn documented_errors() {
        assert!(matches!(
            map(401, "authentication_error", "invalid x-api-key"),
            LlmError::Authentication { status: 401, .. }
        ));
        assert!(matches!(
            map(403, "permission_error", "no"),
            LlmError::Authentication { status: 403, .. }
        ));
        assert!(matches!(
            map(
                400,
                "invalid_request_error",
                "prompt is too long: 210000 tokens > 200000 maximum"
            ),
            LlmError::ContextTooLong { .. }
        ));
        assert!(matches!(
            map(
                400,
                "invalid_request_error",
                "messages: roles must alternate"
            ),
            LlmError::InvalidRequest { status: 400, .. }
        ));
        assert!(matches!(
            map(402, "billing_error", "pay"),
            LlmError::InvalidRequest { status: 402, .. }
        ));
        assert!(matches!(
            map(404, "not_found_error", "model"),
            LlmError::InvalidRequest { status: 404, .. }
        ));
        assert!(matches!(
            map(413, "request_too_large", "big"),
            LlmError::InvalidRequest { status: 413, .. }
        ));
        assert!(matches!(
            map(500, "api_error", "oops"),
            LlmError::Server { status: 500, .. }
        ));
        assert!(matches!(
            map(504, "timeout_error", "slow"),
            LlmError::Server { status: 504, .. }
        ));
        assert!(matches!(
            map(529, "overloaded_error", "Overloaded"),
            LlmError::Overloaded { status: 529, .. }
        ));
        assert!(!map(413, "request_too_large", "big").is_retryable());
        assert!(map(529, "overloaded_error", "Overloaded").is_retryable());
    }

    #[test]
    fn rate_limit_and_plain_text() {
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", HeaderValue::from_static("2"));
        let err = map_error(
            "anthropic",
            429,
            &headers,
            &body("rate_limit_error", "slow"),
        );
        assert_eq!(err.retry_after(), Some(std::time::Duration::from_secs(2)));
        let err = map_error(
            "anthropic",
            502,
            &HeaderMap::new(),
            "<html>Bad Gateway</html>",
        );
        assert!(
            matches!(err, LlmError::Server { ref message, .. } if message == "<html>Bad Gateway</html>")
        );
    }

    #[test]
    fn stream_errors() {
        let overloaded = map_stream_error(
            "anthropic",
            &json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
        );
        assert!(matches!(
            overloaded,
            LlmError::Overloaded { status: 529, .. }
        ));
        let other = map_stream_error(
            "anthropic",
            &json!({"type": "api_error", "message": "boom"}),
        );
        assert_eq!(
            other,
            LlmError::StreamError {
                provider: "anthropic".into(),
                kind: "api_error".into(),
                message: "boom".into()
            }
        );
    }
}
