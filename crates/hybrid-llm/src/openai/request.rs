//! Normalized [`ChatRequest`] → Chat Completions request body.
//!
//! * System messages stay `role: "system"` messages, in place.
//! * Assistant tool calls become `tool_calls` entries with `arguments` as a
//!   JSON text (a `Value::String` argument is sent verbatim: it is what the
//!   model produced); `content` is `null` when the turn had no text.
//! * Tool results become `role: "tool"` messages; a failed tool's content
//!   is prefixed with `Error: `.
//! * `tools` and `tool_choice` are sent only when there are tools.
//! * The output cap goes in `max_completion_tokens`: the reference marks
//!   `max_tokens` deprecated (and o-series models reject it). OpenAI-compatible
//!   servers were slow to follow (llama.cpp's server read only `max_tokens`
//!   and `n_predict` until early 2026; vLLM, LiteLLM and others vary), so for
//!   any provider not named `openai` the cap is sent in both fields.
//! * Streams ask for `stream_options.include_usage` so the last chunk
//!   carries the usage.
//! * [`ChatRequest::cache_prompt`] changes nothing: OpenAI caches prompt
//!   prefixes automatically (no request field) and reports the hits as
//!   `usage.prompt_tokens_details.cached_tokens`.

use std::borrow::Cow;

use serde_json::Value;

use super::wire::{
    CompletionRequest, NamedFunction, RequestFunction, RequestFunctionCall, RequestMessage,
    RequestTool, RequestToolCall, RequestToolChoice, StreamOptions,
};
use crate::{ChatRequest, Message, ToolChoice};

/// The provider name whose server follows the reference exactly.
const OFFICIAL: &str = "openai";

/// The request body for `request` against `model`.
pub(crate) fn build<'a>(
    request: &'a ChatRequest,
    model: &'a str,
    provider: &str,
    stream: bool,
) -> CompletionRequest<'a> {
    let has_tools = !request.tools.is_empty();
    CompletionRequest {
        model,
        messages: request.messages.iter().map(message).collect(),
        tools: request
            .tools
            .iter()
            .map(|tool| RequestTool {
                kind: "function",
                function: RequestFunction {
                    name: &tool.name,
                    description: &tool.description,
                    parameters: &tool.parameters,
                },
            })
            .collect(),
        tool_choice: has_tools.then(|| tool_choice(&request.tool_choice)),
        max_completion_tokens: request.max_tokens,
        max_tokens: request.max_tokens.filter(|_| provider != OFFICIAL),
        temperature: request.temperature,
        stop: &request.stop,
        stream: stream.then_some(true),
        stream_options: stream.then_some(StreamOptions {
            include_usage: true,
        }),
    }
}

fn message(message: &Message) -> RequestMessage<'_> {
    match message {
        Message::System { text } => RequestMessage::System { content: text },
        Message::User { text } => RequestMessage::User { content: text },
        Message::Assistant { text, tool_calls } => RequestMessage::Assistant {
            content: match text.as_deref() {
                Some("") if !tool_calls.is_empty() => None,
                other => other,
            },
            tool_calls: tool_calls
                .iter()
                .map(|call| RequestToolCall {
                    id: &call.id,
                    kind: "function",
                    function: RequestFunctionCall {
                        name: &call.name,
                        arguments: arguments_json(&call.arguments),
                    },
                })
                .collect(),
        },
        Message::ToolResult {
            call_id,
            content,
            is_error,
            ..
        } => RequestMessage::Tool {
            tool_call_id: call_id,
            content: if *is_error {
                Cow::Owned(format!("Error: {content}"))
            } else {
                Cow::Borrowed(content)
            },
        },
    }
}

fn arguments_json(arguments: &Value) -> Cow<'_, str> {
    match arguments {
        Value::String(raw) => Cow::Borrowed(raw),
        other => Cow::Owned(other.to_string()),
    }
}

fn tool_choice(choice: &ToolChoice) -> RequestToolChoice<'_> {
    match choice {
        ToolChoice::Auto => RequestToolChoice::Mode("auto"),
        ToolChoice::None => RequestToolChoice::Mode("none"),
        ToolChoice::Required => RequestToolChoice::Mode("required"),
        ToolChoice::Tool(name) => RequestToolChoice::Function {
            kind: "function",
            function: NamedFunction { name },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ToolCall, ToolDefinition};
    use serde_json::json;

    fn to_value(request: &ChatRequest, provider: &str, stream: bool) -> Value {
        serde_json::to_value(build(request, "gpt-4o", provider, stream)).unwrap()
    }

    fn conversation() -> ChatRequest {
        ChatRequest {
            messages: vec![
                Message::system("Be brief."),
                Message::user("Weather in Paris?"),
                Message::Assistant {
                    text: None,
                    tool_calls: vec![ToolCall {
                        id: "call_1".into(),
                        name: "weather".into(),
                        arguments: json!({"city": "Paris"}),
                    }],
                },
                Message::ToolResult {
                    call_id: "call_1".into(),
                    name: "weather".into(),
                    content: "timeout".into(),
                    is_error: true,
                },
            ],
            tools: vec![ToolDefinition {
                name: "weather".into(),
                description: "Weather by city".into(),
                parameters: json!({"type": "object"}),
            }],
            tool_choice: ToolChoice::Tool("weather".into()),
            max_tokens: Some(100),
            ..ChatRequest::default()
        }
    }

    #[test]
    fn maps_messages_tools_and_choice() {
        let body = to_value(&conversation(), "openai", false);
        assert_eq!(
            body,
            json!({
                "model": "gpt-4o",
                "messages": [
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": "Weather in Paris?"},
                    {"role": "assistant", "content": null, "tool_calls": [
                        {"id": "call_1", "type": "function",
                         "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}}
                    ]},
                    {"role": "tool", "tool_call_id": "call_1", "content": "Error: timeout"}
                ],
                "tools": [{"type": "function", "function": {
                    "name": "weather", "description": "Weather by city", "parameters": {"type": "object"}}}],
                "tool_choice": {"type": "function", "function": {"name": "weather"}},
                "max_completion_tokens": 100
            })
        );
    }

    #[test]
    fn compatible_servers_also_get_max_tokens_and_streams_ask_for_usage() {
        let body = to_value(&conversation(), "llama.cpp", true);
        assert_eq!(body["max_tokens"], json!(100));
        assert_eq!(body["max_completion_tokens"], json!(100));
        assert_eq!(body["stream"], json!(true));
        assert_eq!(body["stream_options"], json!({"include_usage": true}));
    }

    #[test]
    fn no_tools_means_no_tool_choice_and_raw_arguments_pass_through() {
        let request = ChatRequest {
            messages: vec![Message::Assistant {
                text: Some("checking".into()),
                tool_calls: vec![ToolCall {
                    id: "c".into(),
                    name: "t".into(),
                    arguments: json!("{not json"),
                }],
            }],
            tool_choice: ToolChoice::Required,
            ..ChatRequest::default()
        };
        let body = to_value(&request, "openai", false);
        assert!(body.get("tools").is_none() && body.get("tool_choice").is_none());
        assert_eq!(body["messages"][0]["content"], json!("checking"));
        assert_eq!(
            body["messages"][0]["tool_calls"][0]["function"]["arguments"],
            json!("{not json")
        );
        for (choice, expected) in [
            (ToolChoice::Auto, "auto"),
            (ToolChoice::None, "none"),
            (ToolChoice::Required, "required"),
        ] {
            let mut with_tools = conversation();
            with_tools.tool_choice = choice;
            assert_eq!(
                to_value(&with_tools, "openai", false)["tool_choice"],
                json!(expected)
            );
        }
    }

    #[test]
    fn cache_prompt_leaves_the_body_unchanged() {
        let mut cached = conversation();
        cached.cache_prompt = true;
        for (provider, stream) in [("openai", false), ("openai", true), ("llama.cpp", false)] {
            assert_eq!(
                to_value(&cached, provider, stream),
                to_value(&conversation(), provider, stream)
            );
        }
        assert!(
            !to_value(&cached, "openai", false)
                .to_string()
                .contains("cache")
        );
    }
}
