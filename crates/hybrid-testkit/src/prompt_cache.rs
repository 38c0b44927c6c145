//! Anthropic prompt caching, as the mock does it: `cache_control` markers
//! checked the way the Messages API checks them, and a per-server cache of
//! the prompt prefixes they mark.
//!
//! # Checks
//!
//! A marker is `{"type": "ephemeral"}` with an optional `"ttl"` of `"5m"` or
//! `"1h"` (`null` counts as no marker). It may sit on tool definitions,
//! `system` text blocks, message content blocks, and at the top level
//! (automatic caching). `system` is a string or a list of
//! `{"type": "text", "text": …}` blocks. At most four markers per request.
//! Anything else is a 400 `invalid_request_error`; the "A maximum of 4
//! blocks with cache_control may be provided. Found N." wording is the
//! API's, the other messages (`path: problem`) are the mock's own.
//!
//! # Simulation
//!
//! The prompt renders as tools → system → messages. For each marker on a
//! tool or a system block, the prefix up to and including that block is a
//! cache entry, keyed by the model and the prefix's content (without the
//! markers, which are not part of the prompt). Answering a request with
//! markers:
//!
//! * the longest of its prefixes already cached is **read**
//!   (`cache_read_input_tokens` = that prefix's tokens);
//! * the rest up to its last marker is **written**
//!   (`cache_creation_input_tokens`);
//! * every one of its prefixes is cached from then on;
//! * `input_tokens` is what remains of the prompt.
//!
//! Unlike the real API there is no minimum prefix length (1 024–4 096
//! tokens there) and no expiry (see
//! [`MockLlmServer::clear_prompt_cache`](crate::MockLlmServer::clear_prompt_cache));
//! markers in `messages` are checked and counted but not simulated.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};

use serde_json::Value;

use crate::failure::Failure;
use crate::tokens;

/// The most `cache_control` markers a request may carry.
pub(crate) const MAX_BREAKPOINTS: usize = 4;

/// Prompt-cache usage of one response.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct CacheUsage {
    /// Tokens read from the cache.
    pub(crate) read: u64,
    /// Tokens written to the cache.
    pub(crate) write: u64,
}

/// Checks the `cache_control` markers and the `system` shape of an
/// Anthropic request body (a JSON object).
pub(crate) fn validate(body: &Value) -> Result<(), Failure> {
    let mut markers = 0usize;
    if let Some(marker) = body.get("cache_control") {
        markers += check_marker("cache_control", marker)?;
    }
    if let Some(tools) = body.get("tools").and_then(Value::as_array) {
        for (i, tool) in tools.iter().enumerate() {
            if let Some(marker) = tool.get("cache_control") {
                markers += check_marker(&format!("tools.{i}.cache_control"), marker)?;
            }
        }
    }
    match body.get("system") {
        None | Some(Value::Null | Value::String(_)) => {}
        Some(Value::Array(blocks)) => {
            for (i, block) in blocks.iter().enumerate() {
                markers += check_system_block(i, block)?;
            }
        }
        Some(_) => {
            return Err(bad(
                "system: Input should be a valid string or a list of text blocks".to_owned(),
            ));
        }
    }
    if let Some(messages) = body.get("messages").and_then(Value::as_array) {
        for (m, message) in messages.iter().enumerate() {
            let Some(blocks) = message.get("content").and_then(Value::as_array) else {
                continue;
            };
            for (b, block) in blocks.iter().enumerate() {
                if let Some(marker) = block.get("cache_control") {
                    let path = format!("messages.{m}.content.{b}.cache_control");
                    markers += check_marker(&path, marker)?;
                }
            }
        }
    }
    if markers > MAX_BREAKPOINTS {
        return Err(bad(format!(
            "A maximum of {MAX_BREAKPOINTS} blocks with cache_control may be provided. \
             Found {markers}."
        )));
    }
    Ok(())
}

fn bad(message: String) -> Failure {
    Failure::BadRequest(message)
}

/// A system block must be `{"type": "text", "text": "…"}`, with an optional
/// marker; returns 1 when it is marked.
fn check_system_block(i: usize, block: &Value) -> Result<usize, Failure> {
    let Some(fields) = block.as_object() else {
        return Err(bad(format!(
            "system.{i}: Input should be a valid dictionary or object"
        )));
    };
    match fields.get("type") {
        Some(Value::String(kind)) if kind == "text" => {}
        None => return Err(bad(format!("system.{i}.type: Field required"))),
        Some(_) => return Err(bad(format!("system.{i}.type: Input should be 'text'"))),
    }
    match fields.get("text") {
        Some(Value::String(_)) => {}
        None => return Err(bad(format!("system.{i}.text: Field required"))),
        Some(_) => {
            return Err(bad(format!(
                "system.{i}.text: Input should be a valid string"
            )));
        }
    }
    match fields.get("cache_control") {
        Some(marker) => check_marker(&format!("system.{i}.cache_control"), marker),
        None => Ok(0),
    }
}

/// Checks one marker at `path`; returns 1 when it is a marker, 0 for `null`.
fn check_marker(path: &str, marker: &Value) -> Result<usize, Failure> {
    let fields = match marker {
        Value::Null => return Ok(0),
        Value::Object(fields) => fields,
        _ => {
            return Err(bad(format!(
                "{path}: Input should be a valid dictionary or object"
            )));
        }
    };
    match fields.get("type") {
        Some(Value::String(kind)) if kind == "ephemeral" => {}
        None => return Err(bad(format!("{path}.type: Field required"))),
        Some(_) => return Err(bad(format!("{path}.type: Input should be 'ephemeral'"))),
    }
    match fields.get("ttl") {
        None => {}
        Some(Value::String(ttl)) if ttl == "5m" || ttl == "1h" => {}
        Some(_) => return Err(bad(format!("{path}.ttl: Input should be '5m' or '1h'"))),
    }
    if let Some(extra) = fields
        .keys()
        .find(|key| !matches!(key.as_str(), "type" | "ttl"))
    {
        return Err(bad(format!(
            "{path}.{extra}: Extra inputs are not permitted"
        )));
    }
    Ok(1)
}

/// Whether a block carries a (non-null) marker.
fn is_marked(block: &Value) -> bool {
    block
        .get("cache_control")
        .is_some_and(|marker| !marker.is_null())
}

/// For each marker on a tool or system block, in prompt order (tools, then
/// system): the key and the tokens of the prefix ending with that block.
fn breakpoints(body: &Value) -> Vec<(u64, u64)> {
    let mut hasher = DefaultHasher::new();
    body.get("model")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .hash(&mut hasher);
    let mut chars = 0usize;
    let mut points = Vec::new();
    let mut add = |rendered: &str, marked: bool| {
        rendered.hash(&mut hasher);
        chars = chars.saturating_add(rendered.chars().count());
        if marked {
            points.push((hasher.finish(), tokens::for_chars(chars)));
        }
    };
    for tool in body
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        // The tool as the model sees it: without its marker.
        let mut rendered = tool.clone();
        if let Value::Object(fields) = &mut rendered {
            fields.remove("cache_control");
        }
        add(&rendered.to_string(), is_marked(tool));
    }
    match body.get("system") {
        Some(Value::String(text)) => add(text, false),
        Some(Value::Array(blocks)) => {
            for block in blocks {
                let text = block
                    .get("text")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                add(text, is_marked(block));
            }
        }
        _ => {}
    }
    points
}

/// The prefixes a server has cached: key → tokens.
#[derive(Debug, Default)]
pub(crate) struct PromptCache {
    entries: HashMap<u64, u64>,
}

impl PromptCache {
    /// Answers a request body: what it reads and writes, and caches its
    /// prefixes. `None` when it marks no tool or system block.
    pub(crate) fn answer(&mut self, body: &Value) -> Option<CacheUsage> {
        let points = breakpoints(body);
        let &(_, last) = points.last()?;
        let read = points
            .iter()
            .rev()
            .find(|(key, _)| self.entries.contains_key(key))
            .map_or(0, |&(_, tokens)| tokens);
        let usage = CacheUsage {
            read,
            write: last.saturating_sub(read),
        };
        self.entries.extend(points);
        Some(usage)
    }

    /// Forgets every prefix (as if they all expired).
    pub(crate) fn clear(&mut self) {
        self.entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(system: Value, tools: Value) -> Value {
        json!({
            "model": "claude-sonnet-4-5",
            "max_tokens": 10,
            "system": system,
            "tools": tools,
            "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]
        })
    }

    fn message(failure: Result<(), Failure>) -> String {
        match failure {
            Err(Failure::BadRequest(message)) => message,
            other => panic!("not a bad request: {other:?}"),
        }
    }

    const EPHEMERAL: &str = r#"{"type": "ephemeral"}"#;

    fn marker() -> Value {
        serde_json::from_str(EPHEMERAL).unwrap()
    }

    #[test]
    fn valid_markers_and_system_shapes() {
        let tools = json!([{"name": "a", "input_schema": {}, "cache_control": marker()}]);
        for system in [
            json!("plain"),
            json!([{"type": "text", "text": "one"}]),
            json!([{"type": "text", "text": "one", "cache_control": {"type": "ephemeral", "ttl": "1h"}},
                   {"type": "text", "text": "two", "cache_control": {"type": "ephemeral", "ttl": "5m"}}]),
            json!([{"type": "text", "text": "one", "cache_control": null}]),
        ] {
            assert_eq!(validate(&body(system, tools.clone())), Ok(()));
        }
        let mut four = body(
            json!([{"type": "text", "text": "s", "cache_control": marker()}]),
            tools,
        );
        four["messages"][0]["content"][0]["cache_control"] = marker();
        four["cache_control"] = marker();
        assert_eq!(validate(&four), Ok(()));
    }

    #[test]
    fn malformed_markers_are_rejected() {
        let system = |marker: Value| {
            body(
                json!([{"type": "text", "text": "s", "cache_control": marker}]),
                json!([]),
            )
        };
        assert_eq!(
            message(validate(&system(json!({"type": "persistent"})))),
            "system.0.cache_control.type: Input should be 'ephemeral'"
        );
        assert_eq!(
            message(validate(&system(json!({})))),
            "system.0.cache_control.type: Field required"
        );
        assert_eq!(
            message(validate(&system(
                json!({"type": "ephemeral", "ttl": "10m"})
            ))),
            "system.0.cache_control.ttl: Input should be '5m' or '1h'"
        );
        assert_eq!(
            message(validate(&system(
                json!({"type": "ephemeral", "scope": "x"})
            ))),
            "system.0.cache_control.scope: Extra inputs are not permitted"
        );
        assert_eq!(
            message(validate(&system(json!("ephemeral")))),
            "system.0.cache_control: Input should be a valid dictionary or object"
        );
        let tool = body(
            json!("s"),
            json!([{"name": "a", "input_schema": {}}, {"name": "b", "input_schema": {}, "cache_control": {"type": "EPHEMERAL"}}]),
        );
        assert_eq!(
            message(validate(&tool)),
            "tools.1.cache_control.type: Input should be 'ephemeral'"
        );
        let mut in_message = body(json!("s"), json!([]));
        in_message["messages"][0]["content"][0]["cache_control"] = json!({"ttl": "5m"});
        assert_eq!(
            message(validate(&in_message)),
            "messages.0.content.0.cache_control.type: Field required"
        );
    }

    #[test]
    fn malformed_systems_and_too_many_markers_are_rejected() {
        assert_eq!(
            message(validate(&body(json!(42), json!([])))),
            "system: Input should be a valid string or a list of text blocks"
        );
        assert_eq!(
            message(validate(&body(
                json!([{"type": "image", "text": "x"}]),
                json!([])
            ))),
            "system.0.type: Input should be 'text'"
        );
        assert_eq!(
            message(validate(&body(json!([{"type": "text"}]), json!([])))),
            "system.0.text: Field required"
        );
        assert_eq!(
            message(validate(&body(json!(["text"]), json!([])))),
            "system.0: Input should be a valid dictionary or object"
        );
        let tools: Vec<Value> = (0..3)
            .map(
                |i| json!({"name": format!("t{i}"), "input_schema": {}, "cache_control": marker()}),
            )
            .collect();
        let five = body(
            json!([{"type": "text", "text": "a", "cache_control": marker()},
                   {"type": "text", "text": "b", "cache_control": marker()}]),
            Value::Array(tools),
        );
        assert_eq!(
            message(validate(&five)),
            "A maximum of 4 blocks with cache_control may be provided. Found 5."
        );
    }

    #[test]
    fn first_write_then_read_and_longest_prefix_wins() {
        let tools = json!([{"name": "a", "input_schema": {}, "cache_control": marker()}]);
        let system =
            json!([{"type": "text", "text": "You are careful.", "cache_control": marker()}]);
        let request = body(system.clone(), tools.clone());
        let points = breakpoints(&request);
        assert_eq!(points.len(), 2);
        let (tools_tokens, all_tokens) = (points[0].1, points[1].1);
        assert!(tools_tokens < all_tokens);
        assert!(all_tokens < tokens::prompt(&request));

        let mut cache = PromptCache::default();
        assert_eq!(
            cache.answer(&request),
            Some(CacheUsage {
                read: 0,
                write: all_tokens
            })
        );
        assert_eq!(
            cache.answer(&request),
            Some(CacheUsage {
                read: all_tokens,
                write: 0
            })
        );
        // Another system prompt: the tools prefix is read, the rest written.
        let other = body(
            json!([{"type": "text", "text": "You are very careful indeed.", "cache_control": marker()}]),
            tools.clone(),
        );
        let other_all = breakpoints(&other)[1].1;
        assert_eq!(
            cache.answer(&other),
            Some(CacheUsage {
                read: tools_tokens,
                write: other_all - tools_tokens
            })
        );
        // Markers are not part of the prefix: the same prompt marked only on
        // the system block reads the entry written above.
        let system_only = body(system, json!([{"name": "a", "input_schema": {}}]));
        assert_eq!(
            cache.answer(&system_only),
            Some(CacheUsage {
                read: all_tokens,
                write: 0
            })
        );
        // Caches are per model; nothing marked means no simulation.
        let mut sonnet3 = request.clone();
        sonnet3["model"] = json!("claude-3-7-sonnet");
        assert_eq!(cache.answer(&sonnet3).unwrap().read, 0);
        assert_eq!(cache.answer(&body(json!("s"), json!([]))), None);
        cache.clear();
        assert_eq!(cache.answer(&request).unwrap().read, 0);
    }
}
