//! Serde types of the OpenAI Chat Completions wire format.
//!
//! Requests borrow from the normalized [`ChatRequest`](crate::ChatRequest) so
//! nothing is copied to serialize them. Responses are read leniently: every
//! field is optional (OpenAI-compatible servers omit some) and unknown fields
//! are ignored.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `POST /chat/completions` body.
#[derive(Debug, Serialize)]
pub(crate) struct CompletionRequest<'a> {
    pub model: &'a str,
    pub messages: Vec<RequestMessage<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<RequestTool<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<RequestToolChoice<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_completion_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    pub stop: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<StreamOptions>,
}

/// `stream_options`.
#[derive(Debug, Serialize)]
pub(crate) struct StreamOptions {
    pub include_usage: bool,
}

/// One entry of `messages`.
#[derive(Debug, Serialize)]
#[serde(tag = "role", rename_all = "lowercase")]
pub(crate) enum RequestMessage<'a> {
    System {
        content: &'a str,
    },
    User {
        content: &'a str,
    },
    Assistant {
        /// `null` when the turn only called tools.
        content: Option<&'a str>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        tool_calls: Vec<RequestToolCall<'a>>,
    },
    Tool {
        tool_call_id: &'a str,
        content: Cow<'a, str>,
    },
}

/// An earlier assistant tool call.
#[derive(Debug, Serialize)]
pub(crate) struct RequestToolCall<'a> {
    pub id: &'a str,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub function: RequestFunctionCall<'a>,
}

/// The function of a tool call; `arguments` is a JSON text.
#[derive(Debug, Serialize)]
pub(crate) struct RequestFunctionCall<'a> {
    pub name: &'a str,
    pub arguments: Cow<'a, str>,
}

/// One entry of `tools`.
#[derive(Debug, Serialize)]
pub(crate) struct RequestTool<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub function: RequestFunction<'a>,
}

/// A function tool's definition.
#[derive(Debug, Serialize)]
pub(crate) struct RequestFunction<'a> {
    pub name: &'a str,
    pub description: &'a str,
    pub parameters: &'a Value,
}

/// `tool_choice`: `"auto"`/`"none"`/`"required"` or a named function.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub(crate) enum RequestToolChoice<'a> {
    Mode(&'static str),
    Function {
        #[serde(rename = "type")]
        kind: &'static str,
        function: NamedFunction<'a>,
    },
}

/// `{"name": …}`.
#[derive(Debug, Serialize)]
pub(crate) struct NamedFunction<'a> {
    pub name: &'a str,
}

/// A chat completion, or a chunk of one (the same fields, `message` vs `delta`).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Completion {
    pub id: Option<String>,
    pub model: Option<String>,
    pub choices: Option<Vec<Choice>>,
    pub usage: Option<WireUsage>,
    /// An error object in place of a completion (streams, lenient servers).
    pub error: Option<Value>,
}

/// One choice.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Choice {
    pub index: Option<u32>,
    pub message: Option<WireMessage>,
    pub delta: Option<WireMessage>,
    pub finish_reason: Option<String>,
}

/// `message` (whole) or `delta` (streamed piece).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct WireMessage {
    /// A string; some compatible servers send an array of `{type, text}` parts.
    pub content: Option<Value>,
    pub refusal: Option<String>,
    pub tool_calls: Option<Vec<WireToolCall>>,
    /// Legacy single function call.
    pub function_call: Option<WireFunction>,
}

/// A tool call, whole or as a streamed piece.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct WireToolCall {
    pub index: Option<usize>,
    pub id: Option<String>,
    pub function: Option<WireFunction>,
}

/// A function name and its JSON-text arguments (or a fragment of them).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct WireFunction {
    pub name: Option<String>,
    /// A JSON text; some servers send the object itself.
    pub arguments: Option<Value>,
}

/// `usage`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
pub(crate) struct WireUsage {
    pub prompt_tokens: Option<u64>,
    pub completion_tokens: Option<u64>,
    pub prompt_tokens_details: Option<PromptTokensDetails>,
}

/// `usage.prompt_tokens_details`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
pub(crate) struct PromptTokensDetails {
    pub cached_tokens: Option<u64>,
}

/// The text of a `content` value: a string, or the `text` of each part.
pub(crate) fn content_text(content: &Value) -> Cow<'_, str> {
    match content {
        Value::String(text) => Cow::Borrowed(text),
        Value::Array(parts) => Cow::Owned(
            parts
                .iter()
                .filter_map(|part| match part {
                    Value::String(text) => Some(text.as_str()),
                    other => other.get("text").and_then(Value::as_str),
                })
                .collect(),
        ),
        _ => Cow::Borrowed(""),
    }
}

/// Arguments as sent: a JSON text, or an object some servers send as is.
pub(crate) fn arguments_text(arguments: &Value) -> Cow<'_, str> {
    match arguments {
        Value::String(text) => Cow::Borrowed(text),
        Value::Null => Cow::Borrowed(""),
        other => Cow::Owned(other.to_string()),
    }
}
