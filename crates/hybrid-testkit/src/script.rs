//! The script: what the mock answers. One [`Reply`] is consumed per accepted
//! request; a [`Turn`] is a successful model answer, a
//! [`Fault`](crate::Fault) a failure.

use std::time::Duration;

use serde_json::Value;

use crate::Fault;

/// What the server answers to one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// A successful model turn.
    Turn(Turn),
    /// A failure.
    Fault(Fault),
}

impl From<Turn> for Reply {
    fn from(turn: Turn) -> Self {
        Reply::Turn(turn)
    }
}

impl From<Fault> for Reply {
    fn from(fault: Fault) -> Self {
        Reply::Fault(fault)
    }
}

/// Why the scripted model stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopKind {
    /// Natural end: OpenAI `stop`, Anthropic `end_turn`.
    Stop,
    /// Output cap: OpenAI `length`, Anthropic `max_tokens`.
    MaxTokens,
    /// Wants tool results: OpenAI `tool_calls`, Anthropic `tool_use`.
    ToolCalls,
    /// Hit a stop sequence: OpenAI `stop`, Anthropic `stop_sequence` (with
    /// `stop_sequence` set to this string).
    StopSequence(String),
    /// Filtered: OpenAI `content_filter`, Anthropic `refusal`.
    ContentFilter,
}

/// The arguments of a scripted tool call.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum CallArguments {
    /// A JSON value, sent serialized (compact).
    Json(Value),
    /// Raw argument text, sent verbatim even when it is not JSON.
    Raw(String),
}

/// One scripted tool call.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ScriptedCall {
    pub(crate) name: String,
    pub(crate) arguments: CallArguments,
}

/// A successful model turn: text and/or tool calls, plus how to report it.
///
/// ```
/// use hybrid_testkit::{StopKind, Turn};
/// use serde_json::json;
/// let turn = Turn::tool_call("bash", json!({"command": "ls"}))
///     .and_tool_call("read_file", json!({"path": "a.txt"}))
///     .with_text("Let me look.")
///     .with_usage(120, 30)
///     .with_cache(100, 0)
///     .with_stop(StopKind::ToolCalls)
///     .with_chunk_size(5);
/// # let _ = turn;
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Turn {
    pub(crate) text: String,
    pub(crate) tool_calls: Vec<ScriptedCall>,
    pub(crate) usage: Option<(u64, u64)>,
    pub(crate) cache: Option<(u64, u64)>,
    pub(crate) stop: Option<StopKind>,
    pub(crate) model: Option<String>,
    pub(crate) chunk_size: usize,
    pub(crate) first_byte_delay: Duration,
}

/// Default size of streamed text and argument fragments, in characters.
pub const DEFAULT_CHUNK_SIZE: usize = 3;

impl Turn {
    fn empty() -> Self {
        Turn {
            text: String::new(),
            tool_calls: Vec::new(),
            usage: None,
            cache: None,
            stop: None,
            model: None,
            chunk_size: DEFAULT_CHUNK_SIZE,
            first_byte_delay: Duration::ZERO,
        }
    }

    /// A text answer.
    pub fn text(text: impl Into<String>) -> Self {
        Turn {
            text: text.into(),
            ..Turn::empty()
        }
    }

    /// One tool call with JSON arguments (ids are generated per response:
    /// `call_…` for OpenAI, `toolu_…` for Anthropic).
    pub fn tool_call(name: impl Into<String>, arguments: Value) -> Self {
        Turn::empty().and_tool_call(name, arguments)
    }

    /// One tool call whose argument text is sent verbatim, even if it is not
    /// JSON (OpenAI `arguments`, Anthropic `partial_json` fragments; a
    /// non-streamed Anthropic `input` becomes a JSON string).
    pub fn raw_tool_call(name: impl Into<String>, arguments: impl Into<String>) -> Self {
        Turn::empty().and_raw_tool_call(name, arguments)
    }

    /// Adds a parallel tool call to the same turn.
    pub fn and_tool_call(mut self, name: impl Into<String>, arguments: Value) -> Self {
        self.tool_calls.push(ScriptedCall {
            name: name.into(),
            arguments: CallArguments::Json(arguments),
        });
        self
    }

    /// Adds a parallel tool call with verbatim argument text.
    pub fn and_raw_tool_call(
        mut self,
        name: impl Into<String>,
        arguments: impl Into<String>,
    ) -> Self {
        self.tool_calls.push(ScriptedCall {
            name: name.into(),
            arguments: CallArguments::Raw(arguments.into()),
        });
        self
    }

    /// Sets the text (sent before any tool calls).
    pub fn with_text(mut self, text: impl Into<String>) -> Self {
        self.text = text.into();
        self
    }

    /// Scripts the token usage. `input_tokens` are the uncached prompt tokens
    /// (cache reads and writes, from [`Turn::with_cache`] or Anthropic's
    /// simulated prompt cache, come on top). Default: estimates from the
    /// request and response sizes, less what the simulated cache read and
    /// wrote.
    pub fn with_usage(mut self, input_tokens: u64, output_tokens: u64) -> Self {
        self.usage = Some((input_tokens, output_tokens));
        self
    }

    /// Scripts prompt-cache usage. OpenAI reports `read_tokens` as
    /// `prompt_tokens_details.cached_tokens` and counts reads and writes in
    /// `prompt_tokens`; Anthropic reports `cache_read_input_tokens` and
    /// `cache_creation_input_tokens` beside `input_tokens`.
    ///
    /// Default: OpenAI reports none; Anthropic reports what the server's
    /// simulated prompt cache read and wrote for the request's
    /// `cache_control` markers (none without markers). Scripted values
    /// replace the simulated ones in the response (the simulated cache
    /// still records the request's prefixes).
    pub fn with_cache(mut self, read_tokens: u64, write_tokens: u64) -> Self {
        self.cache = Some((read_tokens, write_tokens));
        self
    }

    /// Sets the stop reason. Default: [`StopKind::ToolCalls`] when the turn
    /// has tool calls, else [`StopKind::Stop`].
    pub fn with_stop(mut self, stop: StopKind) -> Self {
        self.stop = Some(stop);
        self
    }

    /// Sets the reported model. Default: the request's `model`.
    pub fn with_model(mut self, model: impl Into<String>) -> Self {
        self.model = Some(model.into());
        self
    }

    /// Streamed text and argument fragments are `chars` characters long
    /// (default [`DEFAULT_CHUNK_SIZE`]; 0 counts as 1).
    pub fn with_chunk_size(mut self, chars: usize) -> Self {
        self.chunk_size = chars.max(1);
        self
    }

    /// Waits this long before sending the response headers.
    pub fn with_first_byte_delay(mut self, delay: Duration) -> Self {
        self.first_byte_delay = delay;
        self
    }

    /// The stop reason this turn reports.
    pub fn stop(&self) -> StopKind {
        match &self.stop {
            Some(stop) => stop.clone(),
            None if self.tool_calls.is_empty() => StopKind::Stop,
            None => StopKind::ToolCalls,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn builder_defaults() {
        let turn = Turn::text("hi");
        assert_eq!(turn.stop(), StopKind::Stop);
        assert_eq!(turn.chunk_size, DEFAULT_CHUNK_SIZE);
        let tools = Turn::tool_call("a", json!({})).and_raw_tool_call("b", "{");
        assert_eq!(tools.stop(), StopKind::ToolCalls);
        assert_eq!(tools.tool_calls.len(), 2);
        assert_eq!(Turn::text("x").with_chunk_size(0).chunk_size, 1);
        assert!(matches!(Reply::from(Turn::text("x")), Reply::Turn(_)));
    }
}
