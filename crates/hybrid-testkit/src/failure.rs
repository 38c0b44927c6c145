//! The error situations the mock can answer with, independent of wire
//! format. Each wire module words them the way its provider does.

use std::time::Duration;

/// An error response to send.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Failure {
    /// No API key header (or an empty one).
    MissingApiKey,
    /// An API key other than the required one (also [`crate::Fault::Unauthorized`]).
    InvalidApiKey {
        /// The key the client sent.
        presented: String,
    },
    /// Anthropic: no `anthropic-version` header.
    MissingVersionHeader,
    /// The body is not a JSON object.
    InvalidJsonBody,
    /// A required body field is missing or null.
    MissingField(&'static str),
    /// No such endpoint.
    NotFound {
        /// Request method.
        method: String,
        /// Request path.
        path: String,
    },
    /// The script is empty and there is no default reply.
    NoScriptedReply,
    /// 429.
    RateLimited {
        /// The request's model.
        model: String,
        /// The wait announced in the headers, if any.
        retry_after: Option<Duration>,
    },
    /// 500.
    ServerError,
    /// Anthropic 529, OpenAI 503.
    Overloaded,
    /// The prompt does not fit the context window.
    ContextTooLong {
        /// Estimated prompt tokens of the request.
        prompt_tokens: u64,
    },
    /// 400 with this message.
    BadRequest(String),
}

/// The message used when the script has nothing to answer.
pub(crate) const NO_SCRIPTED_REPLY: &str = "mock: no scripted reply";
