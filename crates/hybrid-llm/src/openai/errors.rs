//! OpenAI error bodies (`{"error":{"message","type","param","code"}}`) and
//! statuses → [`LlmError`].
//!
//! | status / code | error |
//! | --- | --- |
//! | any, `context_length_exceeded` (or llama.cpp `exceed_context_size_error`, or a message about the context length) | `ContextTooLong` |
//! | 401, 403 | `Authentication` |
//! | 429 `insufficient_quota` (billing, waiting will not help) | `InvalidRequest` (not retried) |
//! | 429 | `RateLimited` with the `retry-after` wait |
//! | 503 "overloaded" / "slow down", 529 | `Overloaded` |
//! | other 5xx | `Server` |
//! | other 4xx | `InvalidRequest` |

use reqwest::header::HeaderMap;
use serde_json::Value;

use crate::LlmError;
use crate::error_body::ErrorDetail;
use crate::retry::retry_after_from_headers;

/// Maps an error response to a typed error.
pub(crate) fn map_error(provider: &str, status: u16, headers: &HeaderMap, body: &str) -> LlmError {
    from_detail(provider, status, headers, ErrorDetail::parse(body, status))
}

/// Maps an error object found inside a stream or a 200 body.
pub(crate) fn map_error_value(provider: &str, error: &Value) -> LlmError {
    let detail = ErrorDetail::from_value(error).unwrap_or_else(|| ErrorDetail {
        message: error.to_string().chars().take(200).collect(),
        kind: None,
        code: None,
    });
    let kind = detail
        .kind
        .clone()
        .or_else(|| detail.code.clone())
        .unwrap_or_else(|| "error".to_string());
    if is_context_error(&detail) {
        return LlmError::ContextTooLong {
            provider: provider.to_string(),
            message: detail.message,
        };
    }
    LlmError::StreamError {
        provider: provider.to_string(),
        kind,
        message: detail.message,
    }
}

fn from_detail(provider: &str, status: u16, headers: &HeaderMap, detail: ErrorDetail) -> LlmError {
    let provider = provider.to_string();
    if is_context_error(&detail) {
        return LlmError::ContextTooLong {
            provider,
            message: detail.message,
        };
    }
    let code = detail.code.as_deref().unwrap_or_default();
    let kind = detail.kind.as_deref().unwrap_or_default();
    let message = detail.message;
    match status {
        401 | 403 => LlmError::Authentication {
            provider,
            status,
            message,
        },
        429 if code == "insufficient_quota" || kind == "insufficient_quota" => {
            LlmError::InvalidRequest {
                provider,
                status,
                message: format!("insufficient quota: {message}"),
            }
        }
        429 => LlmError::RateLimited {
            provider,
            retry_after: retry_after_from_headers(headers),
            message,
        },
        529 => LlmError::Overloaded {
            provider,
            status,
            message,
        },
        503 if mentions_overload(&message, code) => LlmError::Overloaded {
            provider,
            status,
            message,
        },
        500..=599 => LlmError::Server {
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

fn mentions_overload(message: &str, code: &str) -> bool {
    let text = format!("{message} {code}").to_ascii_lowercase();
    text.contains("overloaded") || text.contains("slow down") || text.contains("slow_down")
}

fn is_context_error(detail: &ErrorDetail) -> bool {
    let code = detail.code.as_deref().unwrap_or_default();
    let kind = detail.kind.as_deref().unwrap_or_default();
    if code == "context_length_exceeded" || kind == "exceed_context_size_error" {
        return true;
    }
    let message = detail.message.to_ascii_lowercase();
    message.contains("maximum context length")
        || message.contains("context length exceeded")
        || message.contains("exceeds the available context size")
        || message.contains("context size has been exceeded")
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn map(status: u16, body: &str) -> LlmError {
        map_error("openai", status, &HeaderMap::new(), body)
    }

    fn openai_body(message: &str, kind: &str, code: &str) -> String {
        serde_json::json!({"error": {"message": message, "type": kind, "param": null, "code": code}}).to_string()
    }

    #[test]
    fn statuses_and_codes() {
        assert!(matches!(
            map(
                401,
                &openai_body("bad key", "invalid_request_error", "invalid_api_key")
            ),
            LlmError::Authentication { status: 401, .. }
        ));
        assert!(matches!(
            map(403, "forbidden"),
            LlmError::Authentication { status: 403, .. }
        ));
        let quota = map(
            429,
            &openai_body(
                "You exceeded your current quota",
                "insufficient_quota",
                "insufficient_quota",
            ),
        );
        assert!(
            matches!(quota, LlmError::InvalidRequest { status: 429, .. }),
            "{quota:?}"
        );
        assert!(!quota.is_retryable());
        assert!(matches!(
            map(
                400,
                &openai_body(
                    "This model's maximum context length is 8192 tokens",
                    "invalid_request_error",
                    "context_length_exceeded"
                )
            ),
            LlmError::ContextTooLong { .. }
        ));
        assert!(matches!(
            map(400, &openai_body("bad", "invalid_request_error", "x")),
            LlmError::InvalidRequest { status: 400, .. }
        ));
        assert!(matches!(
            map(404, "nope"),
            LlmError::InvalidRequest { status: 404, .. }
        ));
        assert!(matches!(
            map(500, &openai_body("oops", "server_error", "")),
            LlmError::Server { status: 500, .. }
        ));
        assert!(matches!(
            map(
                503,
                &openai_body("The engine is currently overloaded", "server_error", "")
            ),
            LlmError::Overloaded { status: 503, .. }
        ));
        assert!(matches!(
            map(503, &openai_body("Slow down", "", "slow_down")),
            LlmError::Overloaded { .. }
        ));
        assert!(matches!(
            map(503, "unavailable"),
            LlmError::Server { status: 503, .. }
        ));
        assert!(matches!(
            map(529, ""),
            LlmError::Overloaded { status: 529, .. }
        ));
    }

    #[test]
    fn rate_limit_carries_retry_after() {
        let mut headers = HeaderMap::new();
        headers.insert("retry-after-ms", HeaderValue::from_static("1500"));
        let err = map_error(
            "openai",
            429,
            &headers,
            &openai_body("slow", "requests", "rate_limit_exceeded"),
        );
        assert_eq!(
            err.retry_after(),
            Some(std::time::Duration::from_millis(1500))
        );
        assert!(err.is_retryable());
    }

    #[test]
    fn llama_cpp_context_errors() {
        let body = r#"{"error":{"code":400,"message":"request (4390 tokens) exceeds the available context size (4096 tokens), try increasing it","type":"exceed_context_size_error","n_prompt_tokens":4390,"n_ctx":4096}}"#;
        assert!(matches!(map(400, body), LlmError::ContextTooLong { .. }));
        let body = r#"{"error":{"code":500,"message":"Context size has been exceeded.","type":"server_error"}}"#;
        assert!(matches!(map(500, body), LlmError::ContextTooLong { .. }));
    }

    #[test]
    fn non_json_bodies_keep_a_snippet() {
        let err = map(502, &format!("<html>{}</html>", "y".repeat(400)));
        let LlmError::Server { message, .. } = err else {
            panic!("{err:?}")
        };
        assert_eq!(message.chars().count(), 200);
    }

    #[test]
    fn in_stream_errors() {
        let err = map_error_value(
            "openai",
            &serde_json::json!({"message": "boom", "type": "server_error"}),
        );
        assert_eq!(
            err,
            LlmError::StreamError {
                provider: "openai".into(),
                kind: "server_error".into(),
                message: "boom".into()
            }
        );
    }
}
