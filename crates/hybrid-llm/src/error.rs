//! Typed provider errors.
//!
//! Every HTTP error body a provider documents is mapped to one of these kinds,
//! so callers (the retry loop, the platform, the CLI) act on the kind, not on
//! text. Each message is one line that names the provider and what to do.

use std::time::Duration;

/// What went wrong talking to a model provider.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum LlmError {
    /// No API key was configured; names the environment variable to set.
    #[error("{provider}: missing API key: set the {env_var} environment variable")]
    MissingApiKey {
        /// Provider name.
        provider: String,
        /// The variable that would hold the key.
        env_var: String,
    },
    /// 401/403: the key was rejected.
    #[error("{provider}: authentication failed ({status}): {message}")]
    Authentication {
        /// Provider name.
        provider: String,
        /// HTTP status.
        status: u16,
        /// Provider's message.
        message: String,
    },
    /// 429: too many requests or tokens.
    #[error("{provider}: rate limited (429): {message}")]
    RateLimited {
        /// Provider name.
        provider: String,
        /// What the provider asked us to wait, if it said.
        retry_after: Option<Duration>,
        /// Provider's message.
        message: String,
    },
    /// 529 / `overloaded_error`: the provider is temporarily over capacity.
    #[error("{provider}: overloaded ({status}): {message}")]
    Overloaded {
        /// Provider name.
        provider: String,
        /// HTTP status.
        status: u16,
        /// Provider's message.
        message: String,
    },
    /// The prompt (plus max output) does not fit the model's context window.
    #[error("{provider}: context too long: {message}")]
    ContextTooLong {
        /// Provider name.
        provider: String,
        /// Provider's message.
        message: String,
    },
    /// 400/404/413/422 and other 4xx: the request itself is wrong; never retried.
    #[error("{provider}: invalid request ({status}): {message}")]
    InvalidRequest {
        /// Provider name.
        provider: String,
        /// HTTP status.
        status: u16,
        /// Provider's message.
        message: String,
    },
    /// 5xx: the provider failed.
    #[error("{provider}: server error ({status}): {message}")]
    Server {
        /// Provider name.
        provider: String,
        /// HTTP status.
        status: u16,
        /// Provider's message.
        message: String,
    },
    /// Could not connect, or the connection dropped before a response.
    #[error("{provider}: cannot reach {url}: {message}")]
    Connection {
        /// Provider name.
        provider: String,
        /// The URL that was tried.
        url: String,
        /// What the transport said.
        message: String,
    },
    /// The whole request took longer than the request timeout.
    #[error("{provider}: request timed out after {}s", .after.as_secs_f64())]
    Timeout {
        /// Provider name.
        provider: String,
        /// The limit that was hit.
        after: Duration,
    },
    /// A stream sent nothing for longer than the idle timeout.
    #[error("{provider}: stream idle for more than {}s", .after.as_secs_f64())]
    StreamIdle {
        /// Provider name.
        provider: String,
        /// The limit that was hit.
        after: Duration,
    },
    /// A stream ended before its final event.
    #[error("{provider}: stream ended early: {message}")]
    StreamInterrupted {
        /// Provider name.
        provider: String,
        /// What was missing.
        message: String,
    },
    /// The provider sent something that does not parse as its documented format.
    #[error("{provider}: malformed response: {message}")]
    Decode {
        /// Provider name.
        provider: String,
        /// What failed to parse.
        message: String,
    },
    /// An error event inside a stream (Anthropic `event: error`, OpenAI `{"error":…}` chunk).
    #[error("{provider}: stream error ({kind}): {message}")]
    StreamError {
        /// Provider name.
        provider: String,
        /// The provider's error type.
        kind: String,
        /// Provider's message.
        message: String,
    },
    /// The configuration cannot work (bad base URL, bad header value).
    #[error("{provider}: configuration error: {message}")]
    Config {
        /// Provider name.
        provider: String,
        /// What is wrong.
        message: String,
    },
}

impl LlmError {
    /// Whether the transport may try again: 408/409/429/5xx/529, connection
    /// failures, timeouts and interrupted streams (before any output was used).
    pub fn is_retryable(&self) -> bool {
        match self {
            LlmError::RateLimited { .. }
            | LlmError::Overloaded { .. }
            | LlmError::Server { .. }
            | LlmError::Connection { .. }
            | LlmError::Timeout { .. } => true,
            LlmError::InvalidRequest { status, .. } => matches!(status, 408 | 409),
            _ => false,
        }
    }

    /// The provider's requested wait, when it sent one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            LlmError::RateLimited { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// A short stable name for the kind (`rate_limited`), for events and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            LlmError::MissingApiKey { .. } => "missing_api_key",
            LlmError::Authentication { .. } => "authentication",
            LlmError::RateLimited { .. } => "rate_limited",
            LlmError::Overloaded { .. } => "overloaded",
            LlmError::ContextTooLong { .. } => "context_too_long",
            LlmError::InvalidRequest { .. } => "invalid_request",
            LlmError::Server { .. } => "server",
            LlmError::Connection { .. } => "connection",
            LlmError::Timeout { .. } => "timeout",
            LlmError::StreamIdle { .. } => "stream_idle",
            LlmError::StreamInterrupted { .. } => "stream_interrupted",
            LlmError::Decode { .. } => "decode",
            LlmError::StreamError { .. } => "stream_error",
            LlmError::Config { .. } => "config",
        }
    }
}
