//! A [`Turn`] resolved against one request: ids generated, model echoed,
//! usage settled, stream fragments cut. The wire modules render this.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::prompt_cache::CacheUsage;
use crate::record::Protocol;
use crate::script::{CallArguments, StopKind, Turn};
use crate::{ids, tokens};

/// Token counts of one response. `input` excludes cache reads and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TokenUsage {
    pub(crate) input: u64,
    pub(crate) output: u64,
    pub(crate) cache_read: u64,
    pub(crate) cache_write: u64,
}

/// One tool call of a response.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CallOut {
    pub(crate) id: String,
    pub(crate) name: String,
    /// The argument text (OpenAI `arguments`, Anthropic `partial_json`).
    pub(crate) arguments: String,
    /// The arguments as a value (Anthropic `input`); a string when raw.
    pub(crate) input: Value,
}

/// Everything a wire format needs to render a turn.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Completion {
    pub(crate) id: String,
    pub(crate) model: String,
    pub(crate) created: u64,
    pub(crate) text: String,
    pub(crate) tool_calls: Vec<CallOut>,
    pub(crate) stop: StopKind,
    pub(crate) usage: TokenUsage,
    pub(crate) chunk_size: usize,
}

impl Completion {
    /// Resolves `turn` for a request with this body, in this protocol.
    /// `simulated` is what the prompt cache read and wrote for the request;
    /// the turn's scripted cache usage, when set, is reported instead.
    pub(crate) fn resolve(
        turn: &Turn,
        protocol: Protocol,
        request: &Value,
        simulated: Option<CacheUsage>,
    ) -> Completion {
        let model = turn
            .model
            .clone()
            .or_else(|| {
                request
                    .get("model")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| "mock-model".to_owned());
        let tool_calls: Vec<CallOut> = turn
            .tool_calls
            .iter()
            .map(|call| {
                let (arguments, input) = match &call.arguments {
                    CallArguments::Json(value) => (value.to_string(), value.clone()),
                    CallArguments::Raw(raw) => (raw.clone(), Value::String(raw.clone())),
                };
                let id = match protocol {
                    Protocol::OpenAi => ids::openai_call(),
                    Protocol::Anthropic => ids::anthropic_tool_use(),
                };
                CallOut {
                    id,
                    name: call.name.clone(),
                    arguments,
                    input,
                }
            })
            .collect();
        let (cache_read, cache_write, cached_in_prompt) = match (turn.cache, simulated) {
            (Some((read, write)), _) => (read, write, 0),
            (None, Some(usage)) => (
                usage.read,
                usage.write,
                usage.read.saturating_add(usage.write),
            ),
            (None, None) => (0, 0, 0),
        };
        let (input, output) = turn.usage.unwrap_or_else(|| {
            let out_chars = turn.text.chars().count()
                + tool_calls
                    .iter()
                    .map(|c| c.name.chars().count() + c.arguments.chars().count())
                    .sum::<usize>();
            // The simulated cache's tokens are part of the prompt estimate.
            let input = tokens::prompt(request).saturating_sub(cached_in_prompt);
            (input.max(1), tokens::for_chars(out_chars))
        });
        let id = match protocol {
            Protocol::OpenAi => ids::openai_completion(),
            Protocol::Anthropic => ids::anthropic_message(),
        };
        Completion {
            id,
            model,
            created: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            text: turn.text.clone(),
            tool_calls,
            stop: turn.stop(),
            usage: TokenUsage {
                input,
                output,
                cache_read,
                cache_write,
            },
            chunk_size: turn.chunk_size.max(1),
        }
    }
}

/// `text` cut into pieces of `size` characters (none for an empty text).
pub(crate) fn pieces(text: &str, size: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    chars
        .chunks(size.max(1))
        .map(|c| c.iter().collect())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pieces_split_on_characters() {
        assert_eq!(pieces("héllo", 2), vec!["hé", "ll", "o"]);
        assert!(pieces("", 3).is_empty());
    }

    #[test]
    fn resolves_defaults_from_request() {
        let request = json!({"model": "gpt-x", "messages": [{"role": "user", "content": "hi"}]});
        let turn = Turn::tool_call("bash", json!({"command": "ls"}));
        let c = Completion::resolve(&turn, Protocol::OpenAi, &request, None);
        assert_eq!(c.model, "gpt-x");
        assert_eq!(c.stop, StopKind::ToolCalls);
        assert!(c.tool_calls[0].id.starts_with("call_"));
        assert_eq!(c.tool_calls[0].arguments, r#"{"command":"ls"}"#);
        assert_eq!(c.usage.input, tokens::prompt(&request));
        let a = Completion::resolve(&turn, Protocol::Anthropic, &request, None);
        assert!(a.tool_calls[0].id.starts_with("toolu_"));
        assert_ne!(a.tool_calls[0].id, c.tool_calls[0].id);
    }
}
