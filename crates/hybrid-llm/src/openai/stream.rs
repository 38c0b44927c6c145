//! Chat Completions stream (`chat.completion.chunk` events) → [`ChatEvent`]s.
//!
//! The first chunk yields `Started`; `delta.content` yields `TextDelta`;
//! `delta.tool_calls` pieces are assembled by their `index` (parallel calls
//! may interleave; a server that omits `index` is followed by `id`), yielding
//! `ToolCallStarted` once per call and `ToolCallDelta` per argument fragment.
//! The usage chunk (empty `choices`) is remembered, and `data: [DONE]` yields
//! `Completed`. A stream that ends without `[DONE]` still completes if the
//! finish reason and the usage chunk were seen (servers that skip `[DONE]`);
//! otherwise it is `StreamInterrupted`. A `{"error":…}` chunk is a
//! `StreamError`.

use std::collections::VecDeque;

use super::errors::map_error_value;
use super::response::{finish_reason, parse, usage};
use super::wire::{Completion, WireToolCall, WireUsage, arguments_text, content_text};
use crate::assemble::{CallContext, Parts, events_for, parse_tool_arguments};
use crate::sse::Event;
use crate::transport::StreamDecoder;
use crate::{ChatEvent, LlmError, ToolCall};

/// A tool call being assembled.
#[derive(Debug)]
struct PartialCall {
    /// The provider's `index`, when it sends one.
    wire_index: Option<usize>,
    id: String,
    name: String,
    arguments: String,
}

/// Decoder state of one OpenAI stream.
#[derive(Debug)]
pub(crate) struct OpenAiStream {
    ctx: CallContext,
    started: bool,
    id: Option<String>,
    model: Option<String>,
    text: String,
    calls: Vec<PartialCall>,
    finish: Option<String>,
    usage: Option<WireUsage>,
    done: bool,
}

impl OpenAiStream {
    pub(crate) fn new(ctx: CallContext) -> Self {
        OpenAiStream {
            ctx,
            started: false,
            id: None,
            model: None,
            text: String::new(),
            calls: Vec::new(),
            finish: None,
            usage: None,
            done: false,
        }
    }

    fn complete(&mut self, out: &mut VecDeque<ChatEvent>) {
        self.done = true;
        let tool_calls: Vec<ToolCall> = self
            .calls
            .drain(..)
            .map(|call| ToolCall {
                id: call.id,
                name: call.name,
                arguments: parse_tool_arguments(&call.arguments),
            })
            .collect();
        let response = self.ctx.finish(Parts {
            id: self.id.take(),
            model: self.model.take(),
            text: std::mem::take(&mut self.text),
            finish_reason: finish_reason(self.finish.as_deref(), !tool_calls.is_empty()),
            tool_calls,
            raw_finish_reason: self.finish.take(),
            usage: self.usage.as_ref().map(usage).unwrap_or_default(),
        });
        out.push_back(ChatEvent::Completed(response));
    }

    fn on_chunk(
        &mut self,
        chunk: Completion,
        out: &mut VecDeque<ChatEvent>,
    ) -> Result<(), LlmError> {
        if let Some(error) = chunk.error.as_ref().filter(|_| chunk.choices.is_none()) {
            return Err(map_error_value(&self.ctx.provider, error));
        }
        if self.id.is_none() {
            self.id = chunk.id.filter(|id| !id.is_empty());
        }
        if self.model.is_none() {
            self.model = chunk.model.filter(|model| !model.is_empty());
        }
        if !self.started {
            self.started = true;
            out.push_back(ChatEvent::Started {
                id: self.id.clone().unwrap_or_default(),
                model: self.model.clone().unwrap_or_else(|| self.ctx.model.clone()),
            });
        }
        if let Some(wire_usage) = chunk.usage {
            self.usage = Some(wire_usage);
        }
        let choice = chunk
            .choices
            .unwrap_or_default()
            .into_iter()
            .find(|c| c.index.unwrap_or(0) == 0);
        let Some(choice) = choice else {
            return Ok(());
        };
        if let Some(delta) = choice.delta.or(choice.message) {
            for piece in [
                delta.content.as_ref().map(content_text),
                delta.refusal.as_deref().map(Into::into),
            ]
            .into_iter()
            .flatten()
            {
                if !piece.is_empty() {
                    self.text.push_str(&piece);
                    out.push_back(ChatEvent::TextDelta(piece.into_owned()));
                }
            }
            for call in delta.tool_calls.unwrap_or_default() {
                self.on_tool_call(call, out);
            }
        }
        if let Some(reason) = choice.finish_reason {
            self.finish = Some(reason);
        }
        Ok(())
    }

    fn on_tool_call(&mut self, call: WireToolCall, out: &mut VecDeque<ChatEvent>) {
        let id = call.id.filter(|id| !id.is_empty());
        let function = call.function.unwrap_or_default();
        let existing = match call.index {
            Some(wire) => self.calls.iter().position(|c| c.wire_index == Some(wire)),
            // No index (some compatible servers): follow the id; without one,
            // a new name starts a new call, anything else continues the last.
            None => match &id {
                Some(id) => self.calls.iter().position(|c| c.id == *id),
                None => {
                    let names_new_call = function.name.as_deref().is_some_and(|n| !n.is_empty())
                        && self.calls.last().is_some_and(|c| !c.name.is_empty());
                    if names_new_call {
                        None
                    } else {
                        self.calls.len().checked_sub(1)
                    }
                }
            },
        };
        let position = match existing {
            Some(position) => position,
            None => {
                let position = self.calls.len();
                let call = PartialCall {
                    wire_index: call.index,
                    id: id.clone().unwrap_or_else(|| format!("call_{position}")),
                    name: function.name.clone().unwrap_or_default(),
                    arguments: String::new(),
                };
                out.push_back(ChatEvent::ToolCallStarted {
                    index: position,
                    id: call.id.clone(),
                    name: call.name.clone(),
                });
                self.calls.push(call);
                position
            }
        };
        let Some(partial) = self.calls.get_mut(position) else {
            return;
        };
        if partial.name.is_empty()
            && let Some(name) = function.name
        {
            partial.name = name;
        }
        if let Some(arguments) = function
            .arguments
            .as_ref()
            .map(arguments_text)
            .filter(|a| !a.is_empty())
        {
            partial.arguments.push_str(&arguments);
            out.push_back(ChatEvent::ToolCallDelta {
                index: position,
                fragment: arguments.into_owned(),
            });
        }
    }
}

impl StreamDecoder for OpenAiStream {
    fn on_event(&mut self, event: &Event, out: &mut VecDeque<ChatEvent>) -> Result<(), LlmError> {
        let data = event.data.trim();
        if data == "[DONE]" {
            if !self.started {
                return Err(self.ctx.interrupted("stream sent [DONE] before any chunk"));
            }
            self.complete(out);
            return Ok(());
        }
        if data.is_empty() {
            return Ok(());
        }
        let chunk: Completion = serde_json::from_str(data).map_err(|err| {
            self.ctx
                .decode_error(format!("stream chunk is not valid JSON: {err}"))
        })?;
        self.on_chunk(chunk, out)
    }

    fn on_end(&mut self, out: &mut VecDeque<ChatEvent>) -> Result<(), LlmError> {
        if self.started && self.finish.is_some() && self.usage.is_some() {
            self.complete(out);
            return Ok(());
        }
        Err(self
            .ctx
            .interrupted("the stream closed before data: [DONE]"))
    }

    fn on_whole_body(
        &mut self,
        body: &[u8],
        out: &mut VecDeque<ChatEvent>,
    ) -> Result<(), LlmError> {
        self.done = true;
        events_for(parse(body, &self.ctx)?, out);
        Ok(())
    }

    fn is_finished(&self) -> bool {
        self.done
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pricing::PriceTable;
    use crate::{ChatResponse, FinishReason};
    use hybrid_core::Usage;
    use serde_json::json;
    use std::sync::Arc;

    fn decode(lines: &[String]) -> (Vec<ChatEvent>, Result<(), LlmError>) {
        let ctx = CallContext {
            provider: "openai".into(),
            model: "gpt-4o-mini".into(),
            prices: Arc::new(PriceTable::builtin()),
        };
        let mut decoder = OpenAiStream::new(ctx);
        let mut out = VecDeque::new();
        for data in lines {
            let event = Event {
                event: "message".into(),
                data: data.clone(),
                ..Event::default()
            };
            if let Err(err) = decoder.on_event(&event, &mut out) {
                return (out.into(), Err(err));
            }
            if decoder.is_finished() {
                return (out.into(), Ok(()));
            }
        }
        let end = decoder.on_end(&mut out);
        (out.into(), end)
    }

    fn chunk(delta: serde_json::Value, finish: Option<&str>) -> String {
        json!({"id": "chatcmpl-9", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini-2024-07-18",
               "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}], "usage": null})
        .to_string()
    }

    fn usage_chunk() -> String {
        json!({"id": "chatcmpl-9", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini-2024-07-18",
               "choices": [], "usage": {"prompt_tokens": 50, "completion_tokens": 5, "total_tokens": 55,
               "prompt_tokens_details": {"cached_tokens": 20}}})
        .to_string()
    }

    fn completed(events: &[ChatEvent]) -> &ChatResponse {
        match events.last() {
            Some(ChatEvent::Completed(response)) => response,
            other => panic!("no Completed: {other:?}"),
        }
    }

    #[test]
    fn text_stream() {
        let (events, end) = decode(&[
            chunk(
                json!({"role": "assistant", "content": "", "refusal": null}),
                None,
            ),
            chunk(json!({"content": "Hel"}), None),
            chunk(json!({"content": "lo"}), None),
            chunk(json!({}), Some("stop")),
            usage_chunk(),
            "[DONE]".into(),
        ]);
        end.unwrap();
        assert_eq!(
            events[0],
            ChatEvent::Started {
                id: "chatcmpl-9".into(),
                model: "gpt-4o-mini-2024-07-18".into()
            }
        );
        assert_eq!(events[1], ChatEvent::TextDelta("Hel".into()));
        assert_eq!(events[2], ChatEvent::TextDelta("lo".into()));
        let r = completed(&events);
        assert_eq!(r.text, "Hello");
        assert_eq!(r.finish_reason, FinishReason::Stop);
        assert_eq!(
            r.usage,
            Usage {
                input_tokens: 30,
                output_tokens: 5,
                cache_read_tokens: 20,
                cache_write_tokens: 0
            }
        );
        assert!(r.cost.is_some());
    }

    #[test]
    fn interleaved_parallel_tool_calls() {
        let call = |index: usize, id: Option<&str>, name: Option<&str>, args: &str| {
            let mut function = json!({"arguments": args});
            if let Some(name) = name {
                function["name"] = json!(name);
            }
            let mut tc = json!({"index": index, "function": function});
            if let Some(id) = id {
                tc["id"] = json!(id);
                tc["type"] = json!("function");
            }
            chunk(json!({"tool_calls": [tc]}), None)
        };
        let (events, end) = decode(&[
            chunk(json!({"role": "assistant", "content": null}), None),
            call(0, Some("call_a"), Some("weather"), ""),
            call(1, Some("call_b"), Some("time"), ""),
            call(0, None, None, "{\"city\":"),
            call(1, None, None, "{\"tz\":\"UTC\"}"),
            call(0, None, None, "\"Paris\"}"),
            chunk(json!({}), Some("tool_calls")),
            usage_chunk(),
            "[DONE]".into(),
        ]);
        end.unwrap();
        assert!(events.contains(&ChatEvent::ToolCallStarted {
            index: 0,
            id: "call_a".into(),
            name: "weather".into()
        }));
        assert!(events.contains(&ChatEvent::ToolCallStarted {
            index: 1,
            id: "call_b".into(),
            name: "time".into()
        }));
        assert!(events.contains(&ChatEvent::ToolCallDelta {
            index: 0,
            fragment: "\"Paris\"}".into()
        }));
        let r = completed(&events);
        assert_eq!(r.finish_reason, FinishReason::ToolCalls);
        assert_eq!(r.tool_calls[0].arguments, json!({"city": "Paris"}));
        assert_eq!(r.tool_calls[1].arguments, json!({"tz": "UTC"}));
    }

    #[test]
    fn calls_without_index_are_followed_by_id() {
        let (events, end) = decode(&[
            chunk(
                json!({"tool_calls": [{"id": "a", "function": {"name": "f", "arguments": "{}"}},
                                        {"id": "b", "function": {"name": "g", "arguments": "{\"x\":1}"}}]}),
                Some("tool_calls"),
            ),
            "[DONE]".into(),
        ]);
        end.unwrap();
        let r = completed(&events);
        assert_eq!(r.tool_calls.len(), 2);
        assert_eq!(r.tool_calls[1].arguments, json!({"x": 1}));
        assert_eq!(r.usage, Usage::default());
    }

    #[test]
    fn calls_without_index_or_id_split_on_names() {
        let (events, end) = decode(&[
            chunk(
                json!({"tool_calls": [{"function": {"name": "f", "arguments": "{\"a\":"}}]}),
                None,
            ),
            chunk(
                json!({"tool_calls": [{"function": {"arguments": "1}"}}]}),
                None,
            ),
            chunk(
                json!({"tool_calls": [{"function": {"name": "g", "arguments": "{}"}}]}),
                Some("tool_calls"),
            ),
            "[DONE]".into(),
        ]);
        end.unwrap();
        let r = completed(&events);
        assert_eq!(r.tool_calls.len(), 2);
        assert_eq!(
            (r.tool_calls[0].id.as_str(), r.tool_calls[1].id.as_str()),
            ("call_0", "call_1")
        );
        assert_eq!(r.tool_calls[0].arguments, json!({"a": 1}));
        assert_eq!(r.tool_calls[1].name, "g");
    }

    #[test]
    fn endings() {
        let (_, end) = decode(&[chunk(json!({"content": "Hi"}), None)]);
        assert!(matches!(end, Err(LlmError::StreamInterrupted { .. })));
        // No [DONE], but finish reason and usage were seen: complete.
        let (events, end) = decode(&[chunk(json!({"content": "Hi"}), Some("stop")), usage_chunk()]);
        end.unwrap();
        assert_eq!(completed(&events).text, "Hi");
        let (_, end) = decode(&[
            chunk(json!({"content": "Hi"}), None),
            r#"{"error":{"message":"boom","type":"server_error"}}"#.into(),
        ]);
        assert!(
            matches!(end, Err(LlmError::StreamError { ref kind, .. }) if kind == "server_error"),
            "{end:?}"
        );
        let (_, end) = decode(&["{oops".into()]);
        assert!(matches!(end, Err(LlmError::Decode { .. })));
    }
}
