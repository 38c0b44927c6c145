//! What the mock saw: every request as a [`RecordedRequest`], tagged with the
//! [`Protocol`] it was addressed to.

use std::collections::BTreeMap;

use axum::http::{HeaderMap, Method, Uri, Version};
use serde_json::Value;

/// Which provider API a request was addressed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// OpenAI Chat Completions (`POST /v1/chat/completions`).
    OpenAi,
    /// Anthropic Messages (`POST /v1/messages`).
    Anthropic,
}

/// The OpenAI endpoint path.
pub(crate) const OPENAI_PATH: &str = "/v1/chat/completions";
/// The Anthropic endpoint path.
pub(crate) const ANTHROPIC_PATH: &str = "/v1/messages";

impl Protocol {
    /// The protocol of a request: by path for the two endpoints; for any other
    /// path, Anthropic when it carries `x-api-key` or `anthropic-version`.
    pub(crate) fn detect(path: &str, headers: &HeaderMap) -> Protocol {
        let anthropic_path = path == ANTHROPIC_PATH || path.starts_with("/v1/messages/");
        let anthropic_headers =
            headers.contains_key("x-api-key") || headers.contains_key("anthropic-version");
        if path != OPENAI_PATH && (anthropic_path || anthropic_headers) {
            Protocol::Anthropic
        } else {
            Protocol::OpenAi
        }
    }

    /// The endpoint path of this protocol.
    pub(crate) fn endpoint(self) -> &'static str {
        match self {
            Protocol::OpenAi => OPENAI_PATH,
            Protocol::Anthropic => ANTHROPIC_PATH,
        }
    }
}

/// One request the server received (accepted or rejected).
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedRequest {
    /// HTTP method (`POST`).
    pub method: String,
    /// Path without the query (`/v1/messages`).
    pub path: String,
    /// Headers with lowercase names; repeated headers joined with `, `.
    pub headers: BTreeMap<String, String>,
    /// The body as JSON, or `Value::String` holding the raw text when it is
    /// not JSON (an empty body gives `Value::String("")`).
    pub body: Value,
    /// The API it was addressed to.
    pub protocol: Protocol,
    /// The HTTP version it came over (`HTTP/1.1`, `HTTP/2`).
    pub version: String,
}

impl RecordedRequest {
    /// A header's value, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    /// Captures a request.
    pub(crate) fn capture(
        method: &Method,
        uri: &Uri,
        version: Version,
        headers: &HeaderMap,
        body: &[u8],
        protocol: Protocol,
    ) -> Self {
        let mut recorded: BTreeMap<String, String> = BTreeMap::new();
        for (name, value) in headers {
            let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
            recorded
                .entry(name.as_str().to_ascii_lowercase())
                .and_modify(|existing| {
                    existing.push_str(", ");
                    existing.push_str(&value);
                })
                .or_insert(value);
        }
        let body = serde_json::from_slice(body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()));
        RecordedRequest {
            method: method.as_str().to_owned(),
            path: uri.path().to_owned(),
            headers: recorded,
            body,
            protocol,
            version: format!("{version:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn detects_protocol_and_captures() {
        let mut headers = HeaderMap::new();
        assert_eq!(
            Protocol::detect("/v1/chat/completions", &headers),
            Protocol::OpenAi
        );
        assert_eq!(
            Protocol::detect("/v1/messages", &headers),
            Protocol::Anthropic
        );
        assert_eq!(Protocol::detect("/nope", &headers), Protocol::OpenAi);
        headers.insert("X-Api-Key", HeaderValue::from_static("k"));
        headers.append("accept", HeaderValue::from_static("a"));
        headers.append("accept", HeaderValue::from_static("b"));
        assert_eq!(Protocol::detect("/nope", &headers), Protocol::Anthropic);
        let uri: Uri = "/v1/messages?beta=true".parse().unwrap();
        let r = RecordedRequest::capture(
            &Method::POST,
            &uri,
            Version::HTTP_11,
            &headers,
            b"not json",
            Protocol::Anthropic,
        );
        assert_eq!(r.path, "/v1/messages");
        assert_eq!(r.header("X-API-KEY"), Some("k"));
        assert_eq!(r.header("accept"), Some("a, b"));
        assert_eq!(r.body, Value::String("not json".into()));
    }
}
