//! Worst-case cost of a [`ChatRequest`] *before* it is sent, so a caller can
//! refuse a call that would cross a budget.
//!
//! A [`CostEstimate`] is `input_tokens × price.input + max_output_tokens ×
//! price.output`: the whole prompt as the provider will see it, plus the most
//! the model may write (the request's `max_tokens`, else the client's
//! default); a cache-marked Anthropic request pays `max(input, cache_write)`
//! per input token (see [Prompt caching](#prompt-caching)). The price comes
//! from the client's [`PriceTable`]; a model that
//! is not in it has `cost: None` (never zero), like
//! [`ChatResponse::cost`](crate::ChatResponse::cost).
//!
//! # Counting the input
//!
//! | part of the request | counted as |
//! | --- | --- |
//! | system, user and assistant text | its text |
//! | assistant tool calls | call id + tool name + arguments as JSON text, plus [`TOKENS_PER_TOOL_CALL`] |
//! | tool results | call id + tool name + content (OpenAI: with the `Error: ` prefix a failed result is sent with) |
//! | tool definitions | `{"name","description","parameters"}` serialized as JSON |
//! | `ToolChoice::Tool(name)` | the name |
//! | every message | [`TOKENS_PER_MESSAGE`] (OpenAI's documented `<\|start\|>role…<\|end\|>` framing) |
//! | the reply | [`REPLY_PRIMER_TOKENS`] (OpenAI's `<\|start\|>assistant<\|message\|>` primer) |
//! | Anthropic with tools | [`ANTHROPIC_TOOL_SYSTEM_PROMPT_TOKENS`], the tool-use system prompt Anthropic adds |
//!
//! How the text is turned into tokens depends on the provider
//! ([`ProviderKind`]):
//!
//! * **OpenAI models** are counted with OpenAI's own BPE tokenizer
//!   (`tiktoken-rs`, whose vocabularies are compiled into the binary, so
//!   nothing is fetched): `o200k_base` for `gpt-4o*`, `gpt-4.1*`, `gpt-4.5*`,
//!   `gpt-5*`, `gpt-oss*`, `o1*`, `o3*`, `o4*`; `cl100k_base` for `gpt-4`,
//!   `gpt-4-*` and `gpt-3.5*`; any other model sent to the provider named
//!   `openai` gets `o200k_base`. Each vocabulary is loaded once per process,
//!   by the first estimate that needs it (a few hundred milliseconds).
//!   Serializing tool definitions as JSON over-counts a little compared with
//!   the compact form OpenAI renders them in, which errs on the safe side.
//! * **Anthropic and unknown OpenAI-compatible servers** have no public
//!   tokenizer, so the text is measured in UTF-8 bytes (one per character for
//!   ASCII; more for other scripts, which also take more tokens per
//!   character) and divided by a characters-per-token ratio, rounded up:
//!   [`ANTHROPIC_CHARS_PER_TOKEN`] (3.5) and [`COMPATIBLE_CHARS_PER_TOKEN`]
//!   (3.0). The result is then scaled by the model's [`Calibration`] factor,
//!   learned from the usage the provider reports after each call.
//!
//! # Calibration
//!
//! [`Calibration::observe`] moves a model's factor (`actual ÷ raw estimate`)
//! toward what the provider reported: an exponentially weighted moving
//! average that rises fast ([`CALIBRATION_RISE`]) and falls slowly
//! ([`CALIBRATION_FALL`]), clamped to [`MIN_CALIBRATION_FACTOR`]..=
//! [`MAX_CALIBRATION_FACTOR`]. The factor applied is never below
//! [`CONSERVATIVE_FLOOR`], so the estimate never drops under 90 % of the raw
//! count however low the provider's reports were. Tokenizer estimates are not
//! calibrated: they are the provider's own count.
//!
//! # Prompt caching
//!
//! Plain requests are priced at the uncached `input` price (a cache read can
//! only make the call cheaper). An Anthropic request with
//! [`ChatRequest::cache_prompt`] set and something to mark (tools or a
//! system prompt) may write the prompt cache, which costs more than plain
//! input (1.25 × for the 5-minute TTL), so its whole input is priced at
//! `max(input, cache_write)`: the worst case, although only the marked prefix
//! is written and a cache hit would make the call far cheaper. OpenAI has no
//! cache-write fee and no request markers, so `cache_prompt` does not change
//! an OpenAI estimate.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock, PoisonError};

use hybrid_core::{Money, Usage};
use tiktoken_rs::CoreBPE;

use crate::pricing::{ModelPrice, PriceTable};
use crate::types::{ChatRequest, Message, ToolChoice, ToolDefinition};

/// Output cap assumed for an OpenAI-protocol request without `max_tokens`:
/// the API has no fixed cap (the model's own limit applies), so the estimate
/// uses this documented stand-in. Set `max_tokens` for a tight estimate.
pub const DEFAULT_ESTIMATE_MAX_OUTPUT_TOKENS: u64 = 4096;

/// Characters (UTF-8 bytes) per token for Anthropic models. Anthropic
/// publishes no tokenizer; English prose runs at about 3.5–4 characters per
/// Claude token and code, JSON and non-English text at fewer, so 3.5 leans
/// toward over-counting, and calibration corrects it per model.
pub const ANTHROPIC_CHARS_PER_TOKEN: f64 = 3.5;

/// Characters (UTF-8 bytes) per token for a model on an OpenAI-compatible
/// server whose tokenizer is unknown (llama.cpp, vLLM, Ollama…). Smaller
/// vocabularies than OpenAI's (32k–150k tokens) give fewer characters per
/// token, so this starts lower than [`ANTHROPIC_CHARS_PER_TOKEN`].
pub const COMPATIBLE_CHARS_PER_TOKEN: f64 = 3.0;

/// Framing tokens of each message (OpenAI: 3 per message in the chat format).
pub const TOKENS_PER_MESSAGE: u64 = 3;

/// Tokens that prime the reply (OpenAI: 3, `<|start|>assistant<|message|>`).
pub const REPLY_PRIMER_TOKENS: u64 = 3;

/// Framing tokens of each tool call inside an assistant message.
pub const TOKENS_PER_TOOL_CALL: u64 = 3;

/// The system prompt Anthropic adds when a request has tools: 346 tokens on
/// the Claude 4 and 3.7 models with `tool_choice` auto or none (the largest
/// of the figures Anthropic documents for current models).
pub const ANTHROPIC_TOOL_SYSTEM_PROMPT_TOKENS: u64 = 346;

/// Lowest calibration factor kept.
pub const MIN_CALIBRATION_FACTOR: f64 = 0.5;

/// Highest calibration factor kept.
pub const MAX_CALIBRATION_FACTOR: f64 = 3.0;

/// Lowest calibration factor applied: an estimate never falls below 90 % of
/// the raw count.
pub const CONSERVATIVE_FLOOR: f64 = 0.9;

/// Weight of a new observation that is above the current factor.
pub const CALIBRATION_RISE: f64 = 0.5;

/// Weight of a new observation that is below the current factor.
pub const CALIBRATION_FALL: f64 = 0.1;

/// Which tokenizer family a request goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderKind {
    /// OpenAI itself: every model is counted with an OpenAI tokenizer.
    OpenAi,
    /// An OpenAI-compatible server: OpenAI model names get OpenAI's
    /// tokenizer, anything else the calibrated estimate.
    OpenAiCompatible,
    /// Anthropic Messages: the calibrated estimate.
    Anthropic,
}

/// How the input tokens were counted.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum EstimateMethod {
    /// With the provider's BPE tokenizer.
    Tokenizer {
        /// The encoding (`o200k_base`, `cl100k_base`).
        encoding: &'static str,
    },
    /// Characters divided by a ratio, after calibration.
    Calibrated {
        /// The characters per token applied (base ratio ÷ calibration factor).
        chars_per_token: f64,
    },
}

/// The worst-case size and cost of one call, computed before sending it.
#[derive(Debug, Clone, PartialEq)]
pub struct CostEstimate {
    /// The model the request goes to.
    pub model: String,
    /// Input tokens of the whole request, calibrated.
    pub input_tokens: u64,
    /// Input tokens before calibration (equal to `input_tokens` for the
    /// tokenizer method); what [`Calibration::observe`] compares against.
    pub raw_input_tokens: u64,
    /// The most output tokens the call may produce.
    pub max_output_tokens: u64,
    /// How `input_tokens` was counted.
    pub method: EstimateMethod,
    /// `input_tokens × input price + max_output_tokens × output price`
    /// (input at `max(input, cache_write)` for a cache-marked Anthropic
    /// request, see [Prompt caching](self#prompt-caching)); `None` when the
    /// model is not in the price table.
    pub cost: Option<Money>,
}

/// Per-model correction factors learned from reported usage. Thread-safe
/// and cheap: one short lock per estimate and per observation.
#[derive(Debug, Default)]
pub struct Calibration {
    factors: Mutex<HashMap<String, f64>>,
}

impl Calibration {
    /// No observations: every model's factor is 1.
    pub fn new() -> Self {
        Calibration::default()
    }

    /// The learned factor of `model` (`actual ÷ raw estimate`), 1 when
    /// nothing was observed.
    pub fn factor(&self, model: &str) -> f64 {
        let factors = self.factors.lock().unwrap_or_else(PoisonError::into_inner);
        factors.get(model).copied().unwrap_or(1.0)
    }

    /// The factor an estimate applies: [`factor`](Self::factor), at least
    /// [`CONSERVATIVE_FLOOR`].
    pub fn applied_factor(&self, model: &str) -> f64 {
        self.factor(model).max(CONSERVATIVE_FLOOR)
    }

    /// Moves `model`'s factor toward `actual ÷ estimated`, where
    /// `estimated_input_tokens` is the raw (uncalibrated) count
    /// ([`CostEstimate::raw_input_tokens`]) and `actual_input_tokens` what
    /// the provider billed ([`actual_input_tokens`]). Ignored when either is
    /// zero (a server that reports no usage teaches nothing).
    pub fn observe(&self, model: &str, estimated_input_tokens: u64, actual_input_tokens: u64) {
        if estimated_input_tokens == 0 || actual_input_tokens == 0 {
            return;
        }
        #[allow(clippy::cast_precision_loss)]
        let ratio = actual_input_tokens as f64 / estimated_input_tokens as f64;
        let mut factors = self.factors.lock().unwrap_or_else(PoisonError::into_inner);
        let factor = factors.entry(model.to_string()).or_insert(1.0);
        let weight = if ratio > *factor {
            CALIBRATION_RISE
        } else {
            CALIBRATION_FALL
        };
        let moved = *factor + weight * (ratio - *factor);
        *factor = moved.clamp(MIN_CALIBRATION_FACTOR, MAX_CALIBRATION_FACTOR);
    }

    /// Feeds the usage reported for a call made after `estimate`; does
    /// nothing for tokenizer estimates, which are not calibrated.
    pub fn observe_usage(&self, estimate: &CostEstimate, usage: &Usage) {
        if matches!(estimate.method, EstimateMethod::Calibrated { .. }) {
            self.observe(
                &estimate.model,
                estimate.raw_input_tokens,
                actual_input_tokens(usage),
            );
        }
    }
}

/// The prompt tokens a provider reported: uncached input plus cache reads
/// and cache writes (for OpenAI this sum is `prompt_tokens`).
pub fn actual_input_tokens(usage: &Usage) -> u64 {
    usage
        .input_tokens
        .saturating_add(usage.cache_read_tokens)
        .saturating_add(usage.cache_write_tokens)
}

/// Input tokens of the whole `request` sent to `model` as `kind` would see
/// it, uncalibrated, and how they were counted.
pub fn count_request_tokens(
    kind: ProviderKind,
    model: &str,
    request: &ChatRequest,
) -> (u64, EstimateMethod) {
    let overhead = overhead_tokens(kind, request);
    if let Some(encoding) = encoding_for(kind, model)
        && let Some(bpe) = encoding.bpe()
    {
        let mut tokens = 0u64;
        for_each_text(kind, request, &mut |text| {
            let n = u64::try_from(bpe.encode_ordinary(text).len()).unwrap_or(u64::MAX);
            tokens = tokens.saturating_add(n);
        });
        let method = EstimateMethod::Tokenizer {
            encoding: encoding.name(),
        };
        return (tokens.saturating_add(overhead), method);
    }
    let chars_per_token = base_chars_per_token(kind);
    let tokens = chars_to_tokens(text_bytes(kind, request), chars_per_token);
    let method = EstimateMethod::Calibrated { chars_per_token };
    (tokens.saturating_add(overhead), method)
}

/// The worst-case estimate of `request` sent to `model`: input counted by
/// [`count_request_tokens`] and scaled by `calibration` (calibrated method
/// only), output the request's `max_tokens` else
/// `default_max_output_tokens`, cost from `prices`.
pub fn estimate_request(
    kind: ProviderKind,
    model: &str,
    request: &ChatRequest,
    default_max_output_tokens: u64,
    prices: &PriceTable,
    calibration: &Calibration,
) -> CostEstimate {
    let (raw_input_tokens, method) = count_request_tokens(kind, model, request);
    let (input_tokens, method) = match method {
        EstimateMethod::Tokenizer { .. } => (raw_input_tokens, method),
        EstimateMethod::Calibrated { chars_per_token } => {
            let factor = calibration.applied_factor(model);
            #[allow(clippy::cast_precision_loss)]
            let scaled = ceil_to_u64(raw_input_tokens as f64 * factor);
            let method = EstimateMethod::Calibrated {
                chars_per_token: chars_per_token / factor,
            };
            (scaled, method)
        }
    };
    let max_output_tokens = request
        .max_tokens
        .map_or(default_max_output_tokens, u64::from);
    let cost = prices.price(model).map(|price| {
        Money::per_token(
            input_tokens,
            input_price(&price, has_cache_markers(kind, request)),
        ) + Money::per_token(max_output_tokens, price.output)
    });
    CostEstimate {
        model: model.to_string(),
        input_tokens,
        raw_input_tokens,
        max_output_tokens,
        method,
        cost,
    }
}

/// The per-token input price: `input`, or for a request that writes the
/// prompt cache the higher of `input` and `cache_write`.
fn input_price(price: &ModelPrice, cache_marked: bool) -> i64 {
    if cache_marked {
        price.input.max(price.cache_write)
    } else {
        price.input
    }
}

/// Whether `request`, sent as `kind`, carries prompt-cache markers and so
/// may pay the cache-write price: Anthropic requests with
/// [`ChatRequest::cache_prompt`] and tools or a system prompt to mark (the
/// client sends no marker otherwise). OpenAI caches without markers or a
/// write fee, so never for the OpenAI kinds.
fn has_cache_markers(kind: ProviderKind, request: &ChatRequest) -> bool {
    let has_prefix = !request.tools.is_empty()
        || request
            .messages
            .iter()
            .any(|message| matches!(message, Message::System { text } if !text.is_empty()));
    kind == ProviderKind::Anthropic && request.cache_prompt && has_prefix
}

/// The OpenAI BPE encodings used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    O200kBase,
    Cl100kBase,
}

impl Encoding {
    fn name(self) -> &'static str {
        match self {
            Encoding::O200kBase => "o200k_base",
            Encoding::Cl100kBase => "cl100k_base",
        }
    }

    /// The encoder, built once per process; `None` if it failed to build
    /// (the vocabularies are compiled in, so it does not), in which case the
    /// request falls back to the calibrated estimate.
    fn bpe(self) -> Option<&'static CoreBPE> {
        static O200K: OnceLock<Option<CoreBPE>> = OnceLock::new();
        static CL100K: OnceLock<Option<CoreBPE>> = OnceLock::new();
        match self {
            Encoding::O200kBase => O200K.get_or_init(|| tiktoken_rs::o200k_base().ok()),
            Encoding::Cl100kBase => CL100K.get_or_init(|| tiktoken_rs::cl100k_base().ok()),
        }
        .as_ref()
    }
}

/// The OpenAI encoding of `model`, if it is an OpenAI model (a routing
/// prefix such as `openai/` is ignored).
fn openai_encoding(model: &str) -> Option<Encoding> {
    let model = model
        .rsplit('/')
        .next()
        .unwrap_or(model)
        .to_ascii_lowercase();
    const O200K: &[&str] = &[
        "gpt-4o",
        "chatgpt-4o",
        "gpt-4.1",
        "gpt-4.5",
        "gpt-5",
        "gpt-oss",
        "o1",
        "o3",
        "o4",
    ];
    if O200K.iter().any(|prefix| model.starts_with(prefix)) {
        return Some(Encoding::O200kBase);
    }
    if model == "gpt-4" || model.starts_with("gpt-4-") || model.starts_with("gpt-3.5") {
        return Some(Encoding::Cl100kBase);
    }
    None
}

/// The tokenizer for `model` on `kind`, or `None` for the calibrated estimate.
fn encoding_for(kind: ProviderKind, model: &str) -> Option<Encoding> {
    match kind {
        ProviderKind::OpenAi => Some(openai_encoding(model).unwrap_or(Encoding::O200kBase)),
        ProviderKind::OpenAiCompatible => openai_encoding(model),
        ProviderKind::Anthropic => None,
    }
}

fn base_chars_per_token(kind: ProviderKind) -> f64 {
    match kind {
        ProviderKind::Anthropic => ANTHROPIC_CHARS_PER_TOKEN,
        ProviderKind::OpenAi | ProviderKind::OpenAiCompatible => COMPATIBLE_CHARS_PER_TOKEN,
    }
}

/// `bytes ÷ chars_per_token`, rounded up.
fn chars_to_tokens(bytes: u64, chars_per_token: f64) -> u64 {
    #[allow(clippy::cast_precision_loss)]
    ceil_to_u64(bytes as f64 / chars_per_token)
}

/// `x` rounded up; saturating, and 0 for NaN or negatives.
fn ceil_to_u64(x: f64) -> u64 {
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let n = x.ceil() as u64;
    n
}

/// UTF-8 bytes of every text the request sends.
fn text_bytes(kind: ProviderKind, request: &ChatRequest) -> u64 {
    let mut bytes = 0u64;
    for_each_text(kind, request, &mut |text| {
        bytes = bytes.saturating_add(u64::try_from(text.len()).unwrap_or(u64::MAX));
    });
    bytes
}

/// Framing tokens: per message, per tool call, the reply primer and
/// Anthropic's tool-use system prompt.
fn overhead_tokens(kind: ProviderKind, request: &ChatRequest) -> u64 {
    let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
    let tool_calls: usize = request
        .messages
        .iter()
        .map(|message| match message {
            Message::Assistant { tool_calls, .. } => tool_calls.len(),
            _ => 0,
        })
        .sum();
    let mut tokens = count(request.messages.len())
        .saturating_mul(TOKENS_PER_MESSAGE)
        .saturating_add(count(tool_calls).saturating_mul(TOKENS_PER_TOOL_CALL))
        .saturating_add(REPLY_PRIMER_TOKENS);
    if kind == ProviderKind::Anthropic && !request.tools.is_empty() {
        tokens = tokens.saturating_add(ANTHROPIC_TOOL_SYSTEM_PROMPT_TOKENS);
    }
    tokens
}

/// Calls `f` with every piece of text `request` sends (see the module table).
fn for_each_text(kind: ProviderKind, request: &ChatRequest, f: &mut impl FnMut(&str)) {
    for message in &request.messages {
        match message {
            Message::System { text } | Message::User { text } => f(text),
            Message::Assistant { text, tool_calls } => {
                if let Some(text) = text {
                    f(text);
                }
                for call in tool_calls {
                    f(&call.id);
                    f(&call.name);
                    match &call.arguments {
                        serde_json::Value::String(raw) => f(raw),
                        arguments => f(&arguments.to_string()),
                    }
                }
            }
            Message::ToolResult {
                call_id,
                name,
                content,
                is_error,
            } => {
                f(call_id);
                f(name);
                if *is_error && kind != ProviderKind::Anthropic {
                    f("Error: ");
                }
                f(content);
            }
        }
    }
    for tool in &request.tools {
        f(&tool_json(tool));
    }
    if !request.tools.is_empty()
        && let ToolChoice::Tool(name) = &request.tool_choice
    {
        f(name);
    }
}

/// A tool definition as compact JSON.
fn tool_json(tool: &ToolDefinition) -> String {
    serde_json::to_string(tool).unwrap_or_else(|_| {
        format!(
            "{{\"name\":{:?},\"description\":{:?},\"parameters\":{}}}",
            tool.name, tool.description, tool.parameters
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{ToolCall, ToolDefinition};
    use serde_json::json;

    fn tokens(encoding: Encoding, text: &str) -> u64 {
        u64::try_from(encoding.bpe().unwrap().encode_ordinary(text).len()).unwrap()
    }

    fn weather_tool() -> ToolDefinition {
        ToolDefinition {
            name: "get_weather".into(),
            description: "Current weather of a city.".into(),
            parameters: json!({
                "type": "object",
                "properties": {"city": {"type": "string"}, "unit": {"enum": ["c", "f"]}},
                "required": ["city"]
            }),
        }
    }

    fn conversation() -> ChatRequest {
        ChatRequest::new(vec![
            Message::system("You are a careful assistant."),
            Message::user("What's the weather in Paris?"),
            Message::Assistant {
                text: None,
                tool_calls: vec![ToolCall {
                    id: "call_1".into(),
                    name: "get_weather".into(),
                    arguments: json!({"city": "Paris"}),
                }],
            },
            Message::ToolResult {
                call_id: "call_1".into(),
                name: "get_weather".into(),
                content: "18 C, cloudy".into(),
                is_error: false,
            },
        ])
    }

    #[test]
    fn hello_world_is_two_tokens_in_both_encodings() {
        assert_eq!(tokens(Encoding::O200kBase, "hello world"), 2);
        assert_eq!(tokens(Encoding::Cl100kBase, "hello world"), 2);
    }

    #[test]
    fn models_map_to_encodings() {
        for model in [
            "gpt-4o",
            "gpt-4o-mini-2024-07-18",
            "gpt-4.1-nano",
            "gpt-5",
            "o1-mini",
            "o3",
            "o4-mini",
            "openai/gpt-4o",
        ] {
            assert_eq!(openai_encoding(model), Some(Encoding::O200kBase), "{model}");
        }
        for model in ["gpt-4", "gpt-4-0613", "gpt-4-turbo", "gpt-3.5-turbo"] {
            assert_eq!(
                openai_encoding(model),
                Some(Encoding::Cl100kBase),
                "{model}"
            );
        }
        assert_eq!(openai_encoding("qwen2.5"), None);
        assert_eq!(
            encoding_for(ProviderKind::OpenAi, "some-new-model"),
            Some(Encoding::O200kBase)
        );
        assert_eq!(
            encoding_for(ProviderKind::OpenAiCompatible, "qwen2.5"),
            None
        );
        assert_eq!(
            encoding_for(ProviderKind::OpenAiCompatible, "gpt-4o"),
            Some(Encoding::O200kBase)
        );
        assert_eq!(encoding_for(ProviderKind::Anthropic, "gpt-4o"), None);
    }

    #[test]
    fn openai_count_is_tokens_plus_framing() {
        let request = ChatRequest::new(vec![Message::user("hello world")]);
        let (n, method) = count_request_tokens(ProviderKind::OpenAi, "gpt-4o", &request);
        // 2 text tokens + 3 for the message + 3 for the reply primer.
        assert_eq!(n, 8);
        assert_eq!(
            method,
            EstimateMethod::Tokenizer {
                encoding: "o200k_base"
            }
        );
        let (n, method) = count_request_tokens(ProviderKind::OpenAi, "gpt-4", &request);
        assert_eq!(n, 8);
        assert_eq!(
            method,
            EstimateMethod::Tokenizer {
                encoding: "cl100k_base"
            }
        );
    }

    #[test]
    fn every_part_of_the_request_counts() {
        let request = conversation();
        let (n, _) = count_request_tokens(ProviderKind::OpenAi, "gpt-4o", &request);
        let o = |t: &str| tokens(Encoding::O200kBase, t);
        let expected = o("You are a careful assistant.")
            + o("What's the weather in Paris?")
            + o("call_1")
            + o("get_weather")
            + o(r#"{"city":"Paris"}"#)
            + o("call_1")
            + o("get_weather")
            + o("18 C, cloudy")
            + 4 * TOKENS_PER_MESSAGE
            + TOKENS_PER_TOOL_CALL
            + REPLY_PRIMER_TOKENS;
        assert_eq!(n, expected);
    }

    #[test]
    fn tools_count() {
        let plain = conversation();
        let mut with_tools = plain.clone();
        with_tools.tools.push(weather_tool());
        for (kind, model) in [
            (ProviderKind::OpenAi, "gpt-4o"),
            (ProviderKind::Anthropic, "claude-sonnet-4-5"),
            (ProviderKind::OpenAiCompatible, "qwen2.5"),
        ] {
            let (without, _) = count_request_tokens(kind, model, &plain);
            let (with, _) = count_request_tokens(kind, model, &with_tools);
            assert!(with > without, "{kind:?}: {with} <= {without}");
        }
        let (without, _) = count_request_tokens(ProviderKind::OpenAi, "gpt-4o", &plain);
        let (with, _) = count_request_tokens(ProviderKind::OpenAi, "gpt-4o", &with_tools);
        assert_eq!(
            with - without,
            tokens(Encoding::O200kBase, &tool_json(&weather_tool()))
        );
        let (without, _) = count_request_tokens(ProviderKind::Anthropic, "claude", &plain);
        let (with, _) = count_request_tokens(ProviderKind::Anthropic, "claude", &with_tools);
        assert!(with - without > ANTHROPIC_TOOL_SYSTEM_PROMPT_TOKENS);
    }

    #[test]
    fn anthropic_estimate_is_at_least_the_char_count() {
        let request = conversation();
        let chars: usize = [
            "You are a careful assistant.",
            "What's the weather in Paris?",
            "call_1",
            "get_weather",
            r#"{"city":"Paris"}"#,
            "call_1",
            "get_weather",
            "18 C, cloudy",
        ]
        .iter()
        .map(|t| t.chars().count())
        .sum();
        #[allow(clippy::cast_precision_loss)]
        let char_count = (chars as f64 / ANTHROPIC_CHARS_PER_TOKEN).ceil() as u64;
        let calibration = Calibration::new();
        let estimate = estimate_request(
            ProviderKind::Anthropic,
            "claude-sonnet-4-5",
            &request,
            4096,
            &PriceTable::builtin(),
            &calibration,
        );
        assert!(estimate.input_tokens >= char_count);
        assert_eq!(
            estimate.input_tokens,
            char_count + 4 * TOKENS_PER_MESSAGE + TOKENS_PER_TOOL_CALL + REPLY_PRIMER_TOKENS
        );
        assert_eq!(
            estimate.method,
            EstimateMethod::Calibrated {
                chars_per_token: ANTHROPIC_CHARS_PER_TOKEN
            }
        );
        // Non-ASCII text is counted in bytes: never fewer than characters.
        let cjk = ChatRequest::new(vec![Message::user("天気はどうですか")]);
        let (n, _) = count_request_tokens(ProviderKind::Anthropic, "claude", &cjk);
        // 8 characters, 24 bytes: ceil(24 / 3.5) = 7, where characters give 3.
        assert_eq!(n, 7 + TOKENS_PER_MESSAGE + REPLY_PRIMER_TOKENS);
    }

    #[test]
    fn calibration_moves_toward_reports_and_stays_clamped() {
        let calibration = Calibration::new();
        assert_eq!(calibration.factor("m"), 1.0);
        calibration.observe("m", 100, 150);
        let once = calibration.factor("m");
        assert!(once > 1.0 && once < 1.5, "{once}");
        for _ in 0..50 {
            calibration.observe("m", 100, 150);
        }
        assert!((calibration.factor("m") - 1.5).abs() < 1e-6);
        // Other models are untouched.
        assert_eq!(calibration.factor("other"), 1.0);
        // Clamped above.
        for _ in 0..50 {
            calibration.observe("m", 100, 10_000);
        }
        assert_eq!(calibration.factor("m"), MAX_CALIBRATION_FACTOR);
        // Falls slowly, clamped below; the applied factor never under the floor.
        calibration.observe("m", 100, 10);
        let fallen = calibration.factor("m");
        assert!(fallen < MAX_CALIBRATION_FACTOR && fallen > 2.5, "{fallen}");
        for _ in 0..500 {
            calibration.observe("m", 100, 10);
        }
        assert_eq!(calibration.factor("m"), MIN_CALIBRATION_FACTOR);
        assert_eq!(calibration.applied_factor("m"), CONSERVATIVE_FLOOR);
        // Zeros teach nothing.
        calibration.observe("z", 0, 10);
        calibration.observe("z", 10, 0);
        assert_eq!(calibration.factor("z"), 1.0);
    }

    #[test]
    fn calibration_scales_the_estimate_but_not_below_the_floor() {
        let request = conversation();
        let prices = PriceTable::builtin();
        let calibration = Calibration::new();
        let model = "claude-sonnet-4-5";
        let first = estimate_request(
            ProviderKind::Anthropic,
            model,
            &request,
            1000,
            &prices,
            &calibration,
        );
        let usage = Usage {
            input_tokens: first.raw_input_tokens,
            cache_read_tokens: first.raw_input_tokens,
            ..Usage::default()
        };
        for _ in 0..40 {
            calibration.observe_usage(&first, &usage);
        }
        let doubled = estimate_request(
            ProviderKind::Anthropic,
            model,
            &request,
            1000,
            &prices,
            &calibration,
        );
        assert_eq!(doubled.raw_input_tokens, first.raw_input_tokens);
        assert!(doubled.input_tokens >= 2 * first.raw_input_tokens - 1);
        assert!(doubled.cost > first.cost);
        let EstimateMethod::Calibrated { chars_per_token } = doubled.method else {
            panic!("{:?}", doubled.method)
        };
        assert!((chars_per_token - ANTHROPIC_CHARS_PER_TOKEN / 2.0).abs() < 0.01);
        let shrink = Usage {
            input_tokens: 1,
            ..Usage::default()
        };
        for _ in 0..500 {
            calibration.observe_usage(&first, &shrink);
        }
        let low = estimate_request(
            ProviderKind::Anthropic,
            model,
            &request,
            1000,
            &prices,
            &calibration,
        );
        #[allow(clippy::cast_precision_loss)]
        let floor = (first.raw_input_tokens as f64 * CONSERVATIVE_FLOOR).ceil() as u64;
        assert_eq!(low.input_tokens, floor);
        // Tokenizer estimates are not calibrated.
        let openai = estimate_request(
            ProviderKind::OpenAi,
            "gpt-4o",
            &request,
            1000,
            &prices,
            &calibration,
        );
        calibration.observe_usage(&openai, &shrink);
        assert_eq!(calibration.factor("gpt-4o"), 1.0);
    }

    #[test]
    fn unpriced_model_has_no_cost() {
        let request = ChatRequest::new(vec![Message::user("hello world")]);
        let estimate = estimate_request(
            ProviderKind::OpenAiCompatible,
            "llama-3.1-8b",
            &request,
            DEFAULT_ESTIMATE_MAX_OUTPUT_TOKENS,
            &PriceTable::builtin(),
            &Calibration::new(),
        );
        assert_eq!(estimate.cost, None);
        assert!(estimate.input_tokens > 0);
        assert_eq!(
            estimate.max_output_tokens,
            DEFAULT_ESTIMATE_MAX_OUTPUT_TOKENS
        );
    }

    #[test]
    fn gpt_4o_cost_is_exact() {
        let mut request = ChatRequest::new(vec![Message::user("hello world")]);
        request.max_tokens = Some(100);
        let estimate = estimate_request(
            ProviderKind::OpenAi,
            "gpt-4o",
            &request,
            DEFAULT_ESTIMATE_MAX_OUTPUT_TOKENS,
            &PriceTable::builtin(),
            &Calibration::new(),
        );
        assert_eq!(estimate.input_tokens, 8);
        assert_eq!(estimate.max_output_tokens, 100);
        // gpt-4o: $2.50 / Mtok in = 2 500 n$, $10 / Mtok out = 10 000 n$.
        // 8 × 2 500 + 100 × 10 000 = 20 000 + 1 000 000 n$.
        assert_eq!(estimate.cost, Some(Money::from_nanos(1_020_000)));
    }

    #[test]
    fn cache_marked_requests_pay_the_higher_input_price() {
        let sonnet = PriceTable::builtin().price("claude-sonnet-4-5").unwrap();
        assert_eq!(input_price(&sonnet, false), 3_000);
        assert_eq!(input_price(&sonnet, true), 3_750);
        let plain = conversation();
        let mut marked = conversation();
        marked.cache_prompt = true;
        assert!(!has_cache_markers(ProviderKind::Anthropic, &plain));
        assert!(has_cache_markers(ProviderKind::Anthropic, &marked));
        assert!(!has_cache_markers(ProviderKind::OpenAi, &marked));
        assert!(!has_cache_markers(ProviderKind::OpenAiCompatible, &marked));
        // Nothing to mark (no system prompt, no tools): no marker is sent.
        let mut bare = ChatRequest::new(vec![Message::user("hi")]);
        bare.cache_prompt = true;
        assert!(!has_cache_markers(ProviderKind::Anthropic, &bare));

        // The estimate prices a marked Anthropic request's whole input at
        // the cache-write price; output and token counts are unchanged.
        let prices = PriceTable::builtin();
        let estimate = |kind, model, request: &ChatRequest| {
            estimate_request(kind, model, request, 100, &prices, &Calibration::new())
        };
        let unmarked = estimate(ProviderKind::Anthropic, "claude-sonnet-4-5", &plain);
        let cached = estimate(ProviderKind::Anthropic, "claude-sonnet-4-5", &marked);
        assert_eq!(cached.input_tokens, unmarked.input_tokens);
        let input = i64::try_from(cached.input_tokens).unwrap();
        assert_eq!(
            unmarked.cost,
            Some(Money::from_nanos(input * 3_000 + 100 * 15_000))
        );
        assert_eq!(
            cached.cost,
            Some(Money::from_nanos(input * 3_750 + 100 * 15_000))
        );
        // OpenAI: no write fee, the marker changes nothing.
        assert_eq!(
            estimate(ProviderKind::OpenAi, "gpt-4o", &marked),
            estimate(ProviderKind::OpenAi, "gpt-4o", &plain)
        );
    }

    #[test]
    fn anthropic_client_uses_its_default_max_tokens() {
        use crate::{AnthropicClient, AnthropicConfig, ChatModel};
        let mut config = AnthropicConfig::new("k", "claude-haiku-4-5");
        config.default_max_tokens = 777;
        let client = AnthropicClient::new(config).unwrap();
        let mut request = ChatRequest::new(vec![Message::user("hello world")]);
        let estimate = client.estimate(&request).unwrap();
        assert_eq!(estimate.max_output_tokens, 777);
        assert_eq!(estimate.model, "claude-haiku-4-5");
        // Haiku 4.5: $1 / Mtok in, $5 / Mtok out.
        let expected =
            Money::from_nanos(i64::try_from(estimate.input_tokens).unwrap() * 1_000 + 777 * 5_000);
        assert_eq!(estimate.cost, Some(expected));
        request.max_tokens = Some(10);
        request.model = Some("claude-unknown".into());
        let estimate = client.estimate(&request).unwrap();
        assert_eq!(estimate.max_output_tokens, 10);
        assert_eq!(estimate.model, "claude-unknown");
        assert_eq!(estimate.cost, None);
    }

    #[test]
    fn openai_client_defaults_and_compatible_servers() {
        use crate::{ChatModel, OpenAiClient, OpenAiConfig};
        let request = ChatRequest::new(vec![Message::user("hello world")]);
        let openai = OpenAiClient::new(OpenAiConfig::new("k", "gpt-4o-mini")).unwrap();
        let estimate = openai.estimate(&request).unwrap();
        assert_eq!(
            estimate.max_output_tokens,
            DEFAULT_ESTIMATE_MAX_OUTPUT_TOKENS
        );
        assert_eq!(estimate.input_tokens, 8);
        assert!(matches!(estimate.method, EstimateMethod::Tokenizer { .. }));
        let local = OpenAiClient::new(
            OpenAiConfig::new("", "qwen2.5")
                .with_provider_name("llama.cpp")
                .with_base_url("http://127.0.0.1:1/v1"),
        )
        .unwrap();
        let estimate = local.estimate(&request).unwrap();
        assert!(matches!(estimate.method, EstimateMethod::Calibrated { .. }));
        assert_eq!(estimate.cost, None);
        let usage = Usage {
            input_tokens: estimate.raw_input_tokens * 2,
            ..Usage::default()
        };
        local.observe_usage(&estimate, &usage);
        assert!(local.estimate(&request).unwrap().input_tokens > estimate.input_tokens);
    }

    /// Run with `cargo test --release -p hybrid-llm --lib timing -- --ignored --nocapture`.
    #[test]
    #[ignore = "timing, not a check"]
    fn timing_of_a_twenty_message_estimate() {
        let mut messages = vec![Message::system("You are a careful operations assistant.")];
        for i in 0..19 {
            messages.push(if i % 2 == 0 {
                Message::user(format!(
                    "Step {i}: please check the service logs for errors and summarize them \
                     in a few sentences, including timestamps and affected hosts."
                ))
            } else {
                Message::assistant(format!(
                    "Step {i}: the logs show two timeouts at 09:14 and 09:17 on web-3, \
                     followed by a restart; no errors since then."
                ))
            });
        }
        let mut request = ChatRequest::new(messages);
        request.tools = vec![weather_tool(); 3];
        let prices = PriceTable::builtin();
        let calibration = Calibration::new();
        for (kind, model) in [
            (ProviderKind::OpenAi, "gpt-4o"),
            (ProviderKind::Anthropic, "claude-sonnet-4-5"),
        ] {
            let start = std::time::Instant::now();
            let first = estimate_request(kind, model, &request, 1000, &prices, &calibration);
            let cold = start.elapsed();
            let runs = 1000u32;
            let start = std::time::Instant::now();
            for _ in 0..runs {
                std::hint::black_box(estimate_request(
                    kind,
                    model,
                    &request,
                    1000,
                    &prices,
                    &calibration,
                ));
            }
            let warm = start.elapsed() / runs;
            #[allow(clippy::print_stdout)]
            {
                println!(
                    "{kind:?} {model}: {} input tokens; first call {cold:?}, then {warm:?} per estimate",
                    first.input_tokens
                );
            }
        }
    }
}
