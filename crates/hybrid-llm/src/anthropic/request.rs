//! Normalized [`ChatRequest`] → Messages request body.
//!
//! * System messages, wherever they are, are joined (blank line between)
//!   into the top-level `system` field.
//! * Assistant messages become `text` and `tool_use` blocks. `input` must be
//!   an object: a `Value::String` argument (a model's non-JSON text, e.g. from
//!   another provider) is sent as the object it parses to, else as `{}`; any
//!   other non-object is sent as `{}`. The tool result that answered such a
//!   call carries the error text back to the model.
//! * Tool results become `tool_result` blocks (`is_error: true` on failure)
//!   in a user message.
//! * The API requires alternating roles, so consecutive messages of the same
//!   role (tool results, a user text after them) are merged into one message.
//! * Empty text blocks are dropped (the API rejects them).
//! * `max_tokens` is required: the request's cap, else the client default.
//! * With [`ChatRequest::cache_prompt`], the stable prefix is marked for the
//!   prompt cache: `cache_control: {"type": "ephemeral"}` on the **last**
//!   tool definition and on the system prompt, which is then sent as a list
//!   holding one text block (a string cannot carry `cache_control`) with the
//!   same joined text. The API renders the prompt as tools → system →
//!   messages and caches the prefix up to and including each marked block,
//!   so the system marker caches tools and system together and the tool
//!   marker keeps the tools cached when the system prompt changes. That is
//!   two of the four breakpoints a request may carry; messages get none.

use std::borrow::Cow;

use serde_json::{Map, Value};

use super::wire::{
    CacheControl, MessagesRequest, RequestBlock, RequestMessage, RequestSystem, RequestTool,
    RequestToolChoice, SystemBlock,
};
use crate::{ChatRequest, Message, ToolChoice};

/// The request body for `request` against `model`.
pub(crate) fn build<'a>(
    request: &'a ChatRequest,
    model: &'a str,
    default_max_tokens: u32,
    stream: bool,
) -> MessagesRequest<'a> {
    let has_tools = !request.tools.is_empty();
    let marker = request.cache_prompt.then_some(CacheControl::Ephemeral);
    let last_tool = request.tools.len().saturating_sub(1);
    MessagesRequest {
        model,
        max_tokens: request.max_tokens.unwrap_or(default_max_tokens),
        system: system(&request.messages).map(|text| match marker {
            Some(marker) => RequestSystem::Blocks(vec![SystemBlock {
                kind: "text",
                text,
                cache_control: Some(marker),
            }]),
            None => RequestSystem::Text(text),
        }),
        messages: messages(&request.messages),
        tools: request
            .tools
            .iter()
            .enumerate()
            .map(|(position, tool)| RequestTool {
                name: &tool.name,
                description: &tool.description,
                input_schema: &tool.parameters,
                cache_control: marker.filter(|_| position == last_tool),
            })
            .collect(),
        tool_choice: has_tools.then(|| tool_choice(&request.tool_choice)),
        temperature: request.temperature,
        stop_sequences: &request.stop,
        stream: stream.then_some(true),
    }
}

fn system(messages: &[Message]) -> Option<Cow<'_, str>> {
    let mut texts = messages.iter().filter_map(|m| match m {
        Message::System { text } if !text.is_empty() => Some(text.as_str()),
        _ => None,
    });
    let first = texts.next()?;
    let mut joined = Cow::Borrowed(first);
    for text in texts {
        let joined = joined.to_mut();
        joined.push_str("\n\n");
        joined.push_str(text);
    }
    Some(joined)
}

fn messages(messages: &[Message]) -> Vec<RequestMessage<'_>> {
    let mut out: Vec<RequestMessage<'_>> = Vec::with_capacity(messages.len());
    for message in messages {
        let (role, blocks) = match message {
            Message::System { .. } => continue,
            Message::User { text } => ("user", text_block(text).into_iter().collect::<Vec<_>>()),
            Message::Assistant { text, tool_calls } => {
                let mut blocks: Vec<_> = text.as_deref().and_then(text_block).into_iter().collect();
                blocks.extend(tool_calls.iter().map(|call| RequestBlock::ToolUse {
                    id: &call.id,
                    name: &call.name,
                    input: tool_input(&call.arguments),
                }));
                ("assistant", blocks)
            }
            Message::ToolResult {
                call_id,
                content,
                is_error,
                ..
            } => (
                "user",
                vec![RequestBlock::ToolResult {
                    tool_use_id: call_id,
                    content,
                    is_error: *is_error,
                }],
            ),
        };
        if blocks.is_empty() {
            continue;
        }
        match out.last_mut() {
            Some(last) if last.role == role => last.content.extend(blocks),
            _ => out.push(RequestMessage {
                role,
                content: blocks,
            }),
        }
    }
    out
}

fn text_block(text: &str) -> Option<RequestBlock<'_>> {
    (!text.is_empty()).then_some(RequestBlock::Text { text })
}

/// `tool_use.input`: the arguments object, or the best object we can send.
fn tool_input(arguments: &Value) -> Cow<'_, Value> {
    match arguments {
        Value::Object(_) => Cow::Borrowed(arguments),
        Value::String(raw) => match serde_json::from_str::<Value>(raw) {
            Ok(parsed @ Value::Object(_)) => Cow::Owned(parsed),
            _ => Cow::Owned(Value::Object(Map::new())),
        },
        _ => Cow::Owned(Value::Object(Map::new())),
    }
}

fn tool_choice(choice: &ToolChoice) -> RequestToolChoice<'_> {
    match choice {
        ToolChoice::Auto => RequestToolChoice::Auto,
        ToolChoice::None => RequestToolChoice::None,
        ToolChoice::Required => RequestToolChoice::Any,
        ToolChoice::Tool(name) => RequestToolChoice::Tool { name },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ToolCall, ToolDefinition};
    use serde_json::json;

    fn to_value(request: &ChatRequest, stream: bool) -> Value {
        serde_json::to_value(build(request, "claude-sonnet-4-5", 4096, stream)).unwrap()
    }

    fn result(id: &str, content: &str, is_error: bool) -> Message {
        Message::ToolResult {
            call_id: id.into(),
            name: "t".into(),
            content: content.into(),
            is_error,
        }
    }

    #[test]
    fn lifts_system_merges_roles_and_maps_tools() {
        let request = ChatRequest {
            messages: vec![
                Message::system("Be brief."),
                Message::user("Check both."),
                Message::Assistant {
                    text: Some("Checking.".into()),
                    tool_calls: vec![
                        ToolCall {
                            id: "toolu_1".into(),
                            name: "a".into(),
                            arguments: json!({"x": 1}),
                        },
                        ToolCall {
                            id: "toolu_2".into(),
                            name: "b".into(),
                            arguments: json!("{\"y\":2}"),
                        },
                    ],
                },
                result("toolu_1", "one", false),
                result("toolu_2", "boom", true),
                Message::user("And?"),
                Message::system("Answer in French."),
            ],
            tools: vec![ToolDefinition {
                name: "a".into(),
                description: "A".into(),
                parameters: json!({"type": "object"}),
            }],
            tool_choice: ToolChoice::Required,
            stop: vec!["END".into()],
            ..ChatRequest::default()
        };
        assert_eq!(
            to_value(&request, true),
            json!({
                "model": "claude-sonnet-4-5",
                "max_tokens": 4096,
                "system": "Be brief.\n\nAnswer in French.",
                "messages": [
                    {"role": "user", "content": [{"type": "text", "text": "Check both."}]},
                    {"role": "assistant", "content": [
                        {"type": "text", "text": "Checking."},
                        {"type": "tool_use", "id": "toolu_1", "name": "a", "input": {"x": 1}},
                        {"type": "tool_use", "id": "toolu_2", "name": "b", "input": {"y": 2}}
                    ]},
                    {"role": "user", "content": [
                        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "one"},
                        {"type": "tool_result", "tool_use_id": "toolu_2", "content": "boom", "is_error": true},
                        {"type": "text", "text": "And?"}
                    ]}
                ],
                "tools": [{"name": "a", "description": "A", "input_schema": {"type": "object"}}],
                "tool_choice": {"type": "any"},
                "stop_sequences": ["END"],
                "stream": true
            })
        );
    }

    #[test]
    fn tool_choices_and_bad_inputs() {
        let mut request = ChatRequest {
            messages: vec![Message::Assistant {
                text: Some(String::new()),
                tool_calls: vec![ToolCall {
                    id: "t".into(),
                    name: "n".into(),
                    arguments: json!("{not json"),
                }],
            }],
            max_tokens: Some(10),
            ..ChatRequest::default()
        };
        let body = to_value(&request, false);
        assert_eq!(
            body["messages"][0]["content"],
            json!([{"type": "tool_use", "id": "t", "name": "n", "input": {}}])
        );
        assert_eq!(body["max_tokens"], json!(10));
        assert!(
            body.get("tool_choice").is_none()
                && body.get("system").is_none()
                && body.get("stream").is_none()
        );
        request.tools = vec![ToolDefinition {
            name: "n".into(),
            description: String::new(),
            parameters: json!({}),
        }];
        for (choice, expected) in [
            (ToolChoice::Auto, json!({"type": "auto"})),
            (ToolChoice::None, json!({"type": "none"})),
            (
                ToolChoice::Tool("n".into()),
                json!({"type": "tool", "name": "n"}),
            ),
        ] {
            request.tool_choice = choice;
            assert_eq!(to_value(&request, false)["tool_choice"], expected);
        }
    }

    #[test]
    fn cache_prompt_marks_the_last_tool_and_the_system_prompt() {
        let tool = |name: &str| ToolDefinition {
            name: name.into(),
            description: name.to_uppercase(),
            parameters: json!({"type": "object"}),
        };
        let mut request = ChatRequest {
            messages: vec![
                Message::system("Be brief."),
                Message::user("Hi"),
                Message::system("Answer in French."),
            ],
            tools: vec![tool("a"), tool("b")],
            cache_prompt: true,
            ..ChatRequest::default()
        };
        let body = to_value(&request, false);
        assert_eq!(
            body["system"],
            json!([{
                "type": "text",
                "text": "Be brief.\n\nAnswer in French.",
                "cache_control": {"type": "ephemeral"}
            }])
        );
        assert_eq!(
            body["tools"],
            json!([
                {"name": "a", "description": "A", "input_schema": {"type": "object"}},
                {"name": "b", "description": "B", "input_schema": {"type": "object"},
                 "cache_control": {"type": "ephemeral"}}
            ])
        );
        assert_eq!(
            body["messages"],
            json!([{"role": "user", "content": [{"type": "text", "text": "Hi"}]}])
        );
        // Unmarked: a plain string and no cache_control anywhere.
        request.cache_prompt = false;
        let plain = to_value(&request, false);
        assert_eq!(plain["system"], json!("Be brief.\n\nAnswer in French."));
        assert!(!plain.to_string().contains("cache_control"));
        // Nothing stable to mark: no system, no tools, no marker.
        let bare = ChatRequest {
            messages: vec![Message::user("Hi")],
            cache_prompt: true,
            ..ChatRequest::default()
        };
        let body = to_value(&bare, true);
        assert!(body.get("system").is_none() && body.get("tools").is_none());
        assert!(!body.to_string().contains("cache_control"));
        // Tools only: the last tool is marked; system only: the system block.
        let tools_only = ChatRequest {
            messages: vec![Message::user("Hi")],
            tools: vec![tool("only")],
            cache_prompt: true,
            ..ChatRequest::default()
        };
        assert_eq!(
            to_value(&tools_only, false)["tools"][0]["cache_control"],
            json!({"type": "ephemeral"})
        );
    }
}
