//! Endpoint URLs and request headers built once per client, validated so a
//! bad base URL or header is a configuration error, not a runtime surprise.

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

use crate::LlmError;

/// `{base_url}/{path}`, tolerating a trailing slash; the URL must parse.
pub(crate) fn endpoint(base_url: &str, path: &str, provider: &str) -> Result<String, LlmError> {
    let url = format!("{}/{path}", base_url.trim().trim_end_matches('/'));
    match reqwest::Url::parse(&url) {
        Ok(parsed) if matches!(parsed.scheme(), "http" | "https") => Ok(url),
        Ok(parsed) => Err(LlmError::Config {
            provider: provider.to_string(),
            message: format!(
                "base URL {base_url:?} has scheme {:?}; use http or https",
                parsed.scheme()
            ),
        }),
        Err(err) => Err(LlmError::Config {
            provider: provider.to_string(),
            message: format!("base URL {base_url:?} is not a URL: {err}"),
        }),
    }
}

/// A header value, or a `Config` error naming the header.
pub(crate) fn header_value(
    provider: &str,
    name: &str,
    value: &str,
) -> Result<HeaderValue, LlmError> {
    HeaderValue::from_str(value).map_err(|_| LlmError::Config {
        provider: provider.to_string(),
        message: format!("header {name} has a value that cannot be sent"),
    })
}

/// Adds `extra` to `headers`, validating names and values.
pub(crate) fn add_extra_headers(
    headers: &mut HeaderMap,
    extra: &[(String, String)],
    provider: &str,
) -> Result<(), LlmError> {
    for (name, value) in extra {
        let header = HeaderName::from_bytes(name.as_bytes()).map_err(|_| LlmError::Config {
            provider: provider.to_string(),
            message: format!("{name:?} is not a valid header name"),
        })?;
        headers.insert(header, header_value(provider, name, value)?);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_paths_and_tolerates_trailing_slashes() {
        assert_eq!(
            endpoint("https://api.openai.com/v1", "chat/completions", "p").unwrap(),
            "https://api.openai.com/v1/chat/completions"
        );
        assert_eq!(
            endpoint("http://h:1/v1/", "chat/completions", "p").unwrap(),
            "http://h:1/v1/chat/completions"
        );
        assert!(matches!(
            endpoint("ftp://h", "x", "p"),
            Err(LlmError::Config { .. })
        ));
    }
}
