//! Serde types of the Anthropic Messages wire format.
//!
//! Requests borrow from the normalized request. Responses and stream events
//! are read leniently: every field optional, unknown fields and unknown block
//! or event types ignored (the API adds new ones under its versioning policy).

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `POST /v1/messages` body.
#[derive(Debug, Serialize)]
pub(crate) struct MessagesRequest<'a> {
    pub model: &'a str,
    pub max_tokens: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system: Option<RequestSystem<'a>>,
    pub messages: Vec<RequestMessage<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<RequestTool<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<RequestToolChoice<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    pub stop_sequences: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
}

/// `system`: a string, or a list of text blocks (needed to carry
/// `cache_control`).
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub(crate) enum RequestSystem<'a> {
    Text(Cow<'a, str>),
    Blocks(Vec<SystemBlock<'a>>),
}

/// A text block of `system`.
#[derive(Debug, Serialize)]
pub(crate) struct SystemBlock<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub text: Cow<'a, str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<CacheControl>,
}

/// A prompt-cache breakpoint: the prefix up to and including the block that
/// carries it is cached. Only `ephemeral` exists (default TTL 5 minutes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum CacheControl {
    Ephemeral,
}

/// One entry of `messages`; content is always a list of blocks.
#[derive(Debug, Serialize)]
pub(crate) struct RequestMessage<'a> {
    pub role: &'static str,
    pub content: Vec<RequestBlock<'a>>,
}

/// A content block of a request message.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum RequestBlock<'a> {
    Text {
        text: &'a str,
    },
    ToolUse {
        id: &'a str,
        name: &'a str,
        input: Cow<'a, Value>,
    },
    ToolResult {
        tool_use_id: &'a str,
        content: &'a str,
        #[serde(skip_serializing_if = "is_false")]
        is_error: bool,
    },
}

#[allow(clippy::trivially_copy_pass_by_ref)]
fn is_false(value: &bool) -> bool {
    !*value
}

/// One entry of `tools`.
#[derive(Debug, Serialize)]
pub(crate) struct RequestTool<'a> {
    pub name: &'a str,
    pub description: &'a str,
    pub input_schema: &'a Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<CacheControl>,
}

/// `tool_choice`.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum RequestToolChoice<'a> {
    Auto,
    Any,
    Tool { name: &'a str },
    None,
}

/// A Message (response body, and `message_start.message`).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct MessageResponse {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub id: Option<String>,
    pub model: Option<String>,
    pub content: Option<Vec<ContentBlock>>,
    pub stop_reason: Option<String>,
    pub usage: Option<WireUsage>,
    /// Present when `type` is `error`.
    pub error: Option<Value>,
}

/// A response content block (`text`, `tool_use`, or a kind we ignore).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ContentBlock {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub text: Option<String>,
    pub id: Option<String>,
    pub name: Option<String>,
    pub input: Option<Value>,
}

/// `usage` (whole in a Message, partial and cumulative in `message_delta`).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
pub(crate) struct WireUsage {
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    pub cache_creation_input_tokens: Option<u64>,
    pub cache_read_input_tokens: Option<u64>,
}

/// Any stream event's data: the fields of every event type, all optional.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct StreamEvent {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// `message_start`.
    pub message: Option<MessageResponse>,
    /// `content_block_*`.
    pub index: Option<usize>,
    /// `content_block_start`.
    pub content_block: Option<ContentBlock>,
    /// `content_block_delta`, `message_delta`.
    pub delta: Option<Delta>,
    /// `message_delta`.
    pub usage: Option<WireUsage>,
    /// `error`.
    pub error: Option<Value>,
}

/// The `delta` of `content_block_delta` or `message_delta`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Delta {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// `text_delta`.
    pub text: Option<String>,
    /// `input_json_delta`.
    pub partial_json: Option<String>,
    /// `message_delta`.
    pub stop_reason: Option<String>,
}
