//! Messages stream events → [`ChatEvent`]s.
//!
//! `message_start` yields `Started` and the initial usage;
//! `content_block_start` of a `tool_use` yields `ToolCallStarted`;
//! `content_block_delta` yields `TextDelta` (`text_delta`) or
//! `ToolCallDelta` (`input_json_delta`, assembled per block index and parsed
//! at `content_block_stop`); `thinking_delta`, `signature_delta`,
//! `citations_delta` and unknown deltas are ignored; `message_delta` carries
//! the stop reason and cumulative usage; `message_stop` yields `Completed`.
//! `ping` and unknown events are ignored; `error` fails the stream. An end
//! of stream before `message_stop` is `StreamInterrupted`.

use std::collections::VecDeque;

use hybrid_core::Usage;
use serde_json::{Map, Value};

use super::errors::map_stream_error;
use super::response::{apply_usage, finish_reason, parse};
use super::wire::StreamEvent;
use crate::assemble::{CallContext, Parts, events_for, parse_tool_arguments};
use crate::sse::Event;
use crate::transport::StreamDecoder;
use crate::{ChatEvent, LlmError, ToolCall};

/// What a content block index holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BlockKind {
    Text,
    /// A tool call at this position among the turn's tool calls.
    Tool(usize),
    Ignored,
}

/// A tool call being assembled.
#[derive(Debug)]
struct PartialToolUse {
    id: String,
    name: String,
    json: String,
    /// `content_block_start.content_block.input`, used when no delta came.
    initial: Option<Value>,
    arguments: Option<Value>,
}

impl PartialToolUse {
    fn finish(&mut self) {
        if self.arguments.is_some() {
            return;
        }
        self.arguments = Some(if self.json.trim().is_empty() {
            self.initial
                .take()
                .unwrap_or_else(|| Value::Object(Map::new()))
        } else {
            parse_tool_arguments(&self.json)
        });
    }
}

/// Decoder state of one Anthropic stream.
#[derive(Debug)]
pub(crate) struct AnthropicStream {
    ctx: CallContext,
    started: bool,
    id: Option<String>,
    model: Option<String>,
    text: String,
    blocks: Vec<(usize, BlockKind)>,
    tools: Vec<PartialToolUse>,
    stop_reason: Option<String>,
    usage: Usage,
    done: bool,
}

impl AnthropicStream {
    pub(crate) fn new(ctx: CallContext) -> Self {
        AnthropicStream {
            ctx,
            started: false,
            id: None,
            model: None,
            text: String::new(),
            blocks: Vec::new(),
            tools: Vec::new(),
            stop_reason: None,
            usage: Usage::default(),
            done: false,
        }
    }

    fn block(&self, index: Option<usize>) -> BlockKind {
        let index = index.unwrap_or(0);
        self.blocks
            .iter()
            .rev()
            .find(|(i, _)| *i == index)
            .map_or(BlockKind::Ignored, |(_, kind)| *kind)
    }

    fn start(&mut self, out: &mut VecDeque<ChatEvent>) {
        if !self.started {
            self.started = true;
            out.push_back(ChatEvent::Started {
                id: self.id.clone().unwrap_or_default(),
                model: self.model.clone().unwrap_or_else(|| self.ctx.model.clone()),
            });
        }
    }

    fn complete(&mut self, out: &mut VecDeque<ChatEvent>) {
        self.done = true;
        let tool_calls: Vec<ToolCall> = self
            .tools
            .drain(..)
            .map(|mut tool| {
                tool.finish();
                ToolCall {
                    id: tool.id,
                    name: tool.name,
                    arguments: tool.arguments.unwrap_or_else(|| Value::Object(Map::new())),
                }
            })
            .collect();
        let response = self.ctx.finish(Parts {
            id: self.id.take(),
            model: self.model.take(),
            text: std::mem::take(&mut self.text),
            finish_reason: finish_reason(self.stop_reason.as_deref(), !tool_calls.is_empty()),
            tool_calls,
            raw_finish_reason: self.stop_reason.take(),
            usage: self.usage,
        });
        out.push_back(ChatEvent::Completed(response));
    }

    fn on_data(
        &mut self,
        kind: &str,
        data: StreamEvent,
        out: &mut VecDeque<ChatEvent>,
    ) -> Result<(), LlmError> {
        match kind {
            "message_start" => {
                let message = data.message.unwrap_or_default();
                self.id = message.id.filter(|id| !id.is_empty());
                self.model = message.model.filter(|model| !model.is_empty());
                if let Some(usage) = &message.usage {
                    apply_usage(&mut self.usage, usage);
                }
                self.start(out);
            }
            "content_block_start" => {
                self.start(out);
                let index = data.index.unwrap_or(self.blocks.len());
                let block = data.content_block.unwrap_or_default();
                let kind = match block.kind.as_deref() {
                    Some("text") => {
                        if let Some(text) = block.text.filter(|t| !t.is_empty()) {
                            self.text.push_str(&text);
                            out.push_back(ChatEvent::TextDelta(text));
                        }
                        BlockKind::Text
                    }
                    Some("tool_use") => {
                        let position = self.tools.len();
                        let tool = PartialToolUse {
                            id: block.id.unwrap_or_else(|| format!("toolu_{position}")),
                            name: block.name.unwrap_or_default(),
                            json: String::new(),
                            initial: block
                                .input
                                .filter(|input| input.as_object().is_some_and(|o| !o.is_empty())),
                            arguments: None,
                        };
                        out.push_back(ChatEvent::ToolCallStarted {
                            index: position,
                            id: tool.id.clone(),
                            name: tool.name.clone(),
                        });
                        self.tools.push(tool);
                        BlockKind::Tool(position)
                    }
                    _ => BlockKind::Ignored,
                };
                self.blocks.push((index, kind));
            }
            "content_block_delta" => {
                let delta = data.delta.unwrap_or_default();
                match (self.block(data.index), delta.kind.as_deref()) {
                    (_, Some("text_delta")) => {
                        if let Some(text) = delta.text.filter(|t| !t.is_empty()) {
                            self.text.push_str(&text);
                            out.push_back(ChatEvent::TextDelta(text));
                        }
                    }
                    (BlockKind::Tool(position), Some("input_json_delta")) => {
                        if let (Some(fragment), Some(tool)) = (
                            delta.partial_json.filter(|f| !f.is_empty()),
                            self.tools.get_mut(position),
                        ) {
                            tool.json.push_str(&fragment);
                            out.push_back(ChatEvent::ToolCallDelta {
                                index: position,
                                fragment,
                            });
                        }
                    }
                    _ => {}
                }
            }
            "content_block_stop" => {
                if let BlockKind::Tool(position) = self.block(data.index)
                    && let Some(tool) = self.tools.get_mut(position)
                {
                    tool.finish();
                }
            }
            "message_delta" => {
                if let Some(reason) = data.delta.and_then(|d| d.stop_reason) {
                    self.stop_reason = Some(reason);
                }
                if let Some(usage) = &data.usage {
                    apply_usage(&mut self.usage, usage);
                }
            }
            "message_stop" => {
                self.start(out);
                self.complete(out);
            }
            "error" => {
                let error = data.error.unwrap_or(Value::Null);
                return Err(map_stream_error(&self.ctx.provider, &error));
            }
            _ => {}
        }
        Ok(())
    }
}

impl StreamDecoder for AnthropicStream {
    fn on_event(&mut self, event: &Event, out: &mut VecDeque<ChatEvent>) -> Result<(), LlmError> {
        let data = event.data.trim();
        if data.is_empty() {
            return Ok(());
        }
        let parsed: StreamEvent = serde_json::from_str(data).map_err(|err| {
            self.ctx
                .decode_error(format!("stream event is not valid JSON: {err}"))
        })?;
        let kind = parsed.kind.clone().unwrap_or_else(|| event.event.clone());
        self.on_data(&kind, parsed, out)
    }

    fn on_end(&mut self, _out: &mut VecDeque<ChatEvent>) -> Result<(), LlmError> {
        Err(self
            .ctx
            .interrupted("the stream closed before message_stop"))
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
    use serde_json::json;
    use std::sync::Arc;

    /// Decodes an SSE text fixture.
    fn decode(fixture: &str) -> (Vec<ChatEvent>, Result<(), LlmError>) {
        let ctx = CallContext {
            provider: "anthropic".into(),
            model: "claude-haiku-4-5".into(),
            prices: Arc::new(PriceTable::builtin()),
        };
        let mut decoder = AnthropicStream::new(ctx);
        let mut out = VecDeque::new();
        for block in fixture.split("\n\n").filter(|b| !b.trim().is_empty()) {
            let mut event = Event::default();
            for line in block.lines() {
                if let Some(name) = line.strip_prefix("event: ") {
                    event.event = name.to_string();
                } else if let Some(data) = line.strip_prefix("data: ") {
                    event.data = data.to_string();
                }
            }
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

    fn completed(events: &[ChatEvent]) -> &ChatResponse {
        match events.last() {
            Some(ChatEvent::Completed(response)) => response,
            other => panic!("no Completed: {other:?}"),
        }
    }

    const TOOL_STREAM: &str = r#"event: message_start
data: {"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","content":[],"model":"claude-haiku-4-5-20251001","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":472,"cache_creation_input_tokens":10,"cache_read_input_tokens":300,"output_tokens":2}}}

event: ping
data: {"type": "ping"}

event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":""}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"hmm"}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"abc"}}

event: content_block_stop
data: {"type":"content_block_stop","index":0}

event: content_block_start
data: {"type":"content_block_start","index":1,"content_block":{"type":"text","text":""}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"Checking"}}

event: content_block_stop
data: {"type":"content_block_stop","index":1}

event: content_block_start
data: {"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"toolu_a","name":"weather","input":{}}}

event: content_block_delta
data: {"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":""}}

event: content_block_delta
data: {"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"{\"city\": \"Par"}}

event: content_block_delta
data: {"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"is\"}"}}

event: content_block_stop
data: {"type":"content_block_stop","index":2}

event: content_block_start
data: {"type":"content_block_start","index":3,"content_block":{"type":"tool_use","id":"toolu_b","name":"time","input":{}}}

event: content_block_stop
data: {"type":"content_block_stop","index":3}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":89}}

event: message_stop
data: {"type":"message_stop"}

"#;

    #[test]
    fn tool_stream_with_thinking_and_cache_usage() {
        let (events, end) = decode(TOOL_STREAM);
        end.unwrap();
        assert_eq!(
            events[0],
            ChatEvent::Started {
                id: "msg_1".into(),
                model: "claude-haiku-4-5-20251001".into()
            }
        );
        assert_eq!(events[1], ChatEvent::TextDelta("Checking".into()));
        assert_eq!(
            events[2],
            ChatEvent::ToolCallStarted {
                index: 0,
                id: "toolu_a".into(),
                name: "weather".into()
            }
        );
        assert_eq!(
            events[3],
            ChatEvent::ToolCallDelta {
                index: 0,
                fragment: "{\"city\": \"Par".into()
            }
        );
        assert_eq!(
            events[5],
            ChatEvent::ToolCallStarted {
                index: 1,
                id: "toolu_b".into(),
                name: "time".into()
            }
        );
        let r = completed(&events);
        assert_eq!(r.text, "Checking");
        assert_eq!(r.finish_reason, FinishReason::ToolCalls);
        assert_eq!(r.tool_calls[0].arguments, json!({"city": "Paris"}));
        assert_eq!(r.tool_calls[1].arguments, json!({}));
        assert_eq!(
            r.usage,
            Usage {
                input_tokens: 472,
                output_tokens: 89,
                cache_read_tokens: 300,
                cache_write_tokens: 10
            }
        );
        assert!(r.cost.is_some());
    }

    #[test]
    fn cut_and_error_streams() {
        let cut = TOOL_STREAM
            .split("event: message_delta")
            .next()
            .unwrap_or_default();
        assert!(matches!(
            decode(cut).1,
            Err(LlmError::StreamInterrupted { .. })
        ));
        let error = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"model\":\"x\",\"usage\":{}}}\n\n\
                     event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n";
        let (events, end) = decode(error);
        assert_eq!(events.len(), 1);
        assert!(matches!(end, Err(LlmError::Overloaded { .. })), "{end:?}");
        let (_, end) = decode("event: message_start\ndata: {oops\n\n");
        assert!(matches!(end, Err(LlmError::Decode { .. })));
    }

    #[test]
    fn message_delta_usage_is_cumulative_and_overrides_message_start() {
        // The current API repeats the input and cache counts in
        // `message_delta`; older servers send only `output_tokens` there.
        let stream = "event: message_start\n\
data: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"model\":\"claude-haiku-4-5\",\"content\":[],\"usage\":{\"input_tokens\":12,\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":4000,\"output_tokens\":1}}}\n\n\
event: message_delta\n\
data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"input_tokens\":12,\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":4000,\"output_tokens\":30}}\n\n\
event: message_stop\n\
data: {\"type\":\"message_stop\"}\n\n";
        let (events, end) = decode(stream);
        end.unwrap();
        let r = completed(&events);
        assert_eq!(
            r.usage,
            Usage {
                input_tokens: 12,
                output_tokens: 30,
                cache_read_tokens: 4000,
                cache_write_tokens: 0
            }
        );
        // Haiku 4.5: $1 in, $5 out, $0.10 cache read per Mtok.
        assert_eq!(
            r.cost,
            Some(hybrid_core::Money::from_nanos(
                12 * 1_000 + 30 * 5_000 + 4000 * 100
            ))
        );
    }
}
