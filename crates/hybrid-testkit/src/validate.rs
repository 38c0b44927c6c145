//! The checks the real APIs make before answering: API key, Anthropic's
//! `anthropic-version` header, a JSON object body with the required fields,
//! and Anthropic's `system` shape and `cache_control` markers (see
//! [`prompt_cache`](crate::prompt_cache)).

use axum::http::HeaderMap;
use serde_json::Value;

use crate::failure::Failure;
use crate::prompt_cache;
use crate::record::Protocol;

/// Fields each API requires in the body, in the order they are checked.
fn required_fields(protocol: Protocol) -> &'static [&'static str] {
    match protocol {
        Protocol::OpenAi => &["model", "messages"],
        Protocol::Anthropic => &["model", "max_tokens", "messages"],
    }
}

/// The API key a request carries: OpenAI `Authorization: Bearer KEY`,
/// Anthropic `x-api-key: KEY`. Empty keys count as none.
pub(crate) fn presented_key(protocol: Protocol, headers: &HeaderMap) -> Option<String> {
    let key = match protocol {
        Protocol::OpenAi => {
            let value = headers.get("authorization")?.to_str().ok()?.trim();
            let (scheme, key) = value.split_once(' ')?;
            if !scheme.eq_ignore_ascii_case("bearer") {
                return None;
            }
            key.trim()
        }
        Protocol::Anthropic => headers.get("x-api-key")?.to_str().ok()?.trim(),
    };
    (!key.is_empty()).then(|| key.to_owned())
}

/// Checks a request to an endpoint; `required_key` is the only key accepted
/// when set (any non-empty key otherwise).
pub(crate) fn check(
    protocol: Protocol,
    headers: &HeaderMap,
    body: &Value,
    required_key: Option<&str>,
) -> Result<(), Failure> {
    let Some(presented) = presented_key(protocol, headers) else {
        return Err(Failure::MissingApiKey);
    };
    if required_key.is_some_and(|required| required != presented) {
        return Err(Failure::InvalidApiKey { presented });
    }
    if protocol == Protocol::Anthropic && !headers.contains_key("anthropic-version") {
        return Err(Failure::MissingVersionHeader);
    }
    let Some(object) = body.as_object() else {
        return Err(Failure::InvalidJsonBody);
    };
    for field in required_fields(protocol) {
        if object.get(*field).is_none_or(Value::is_null) {
            return Err(Failure::MissingField(field));
        }
    }
    if protocol == Protocol::Anthropic {
        prompt_cache::validate(body)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use serde_json::json;

    #[test]
    fn checks_in_order() {
        let mut headers = HeaderMap::new();
        let body = json!({"model": "m", "messages": []});
        assert_eq!(
            check(Protocol::OpenAi, &headers, &body, None),
            Err(Failure::MissingApiKey)
        );
        headers.insert("authorization", HeaderValue::from_static("Bearer sk-1"));
        assert_eq!(check(Protocol::OpenAi, &headers, &body, None), Ok(()));
        assert_eq!(
            check(Protocol::OpenAi, &headers, &body, Some("sk-2")),
            Err(Failure::InvalidApiKey {
                presented: "sk-1".into()
            })
        );
        assert_eq!(
            check(Protocol::OpenAi, &headers, &json!({"model": "m"}), None),
            Err(Failure::MissingField("messages"))
        );
        headers.insert("x-api-key", HeaderValue::from_static("k"));
        assert_eq!(
            check(Protocol::Anthropic, &headers, &body, None),
            Err(Failure::MissingVersionHeader)
        );
        headers.insert("anthropic-version", HeaderValue::from_static("2023-06-01"));
        assert_eq!(
            check(Protocol::Anthropic, &headers, &body, None),
            Err(Failure::MissingField("max_tokens"))
        );
        assert_eq!(
            check(
                Protocol::Anthropic,
                &headers,
                &Value::String("x".into()),
                None
            ),
            Err(Failure::InvalidJsonBody)
        );
    }
}
