//! The price table: what a call cost, or `None` when the model is unknown.
//!
//! Prices are integer nano-dollars per token ($2.50 per million tokens =
//! 2 500 n$ per token), so costs are exact. A model is found by its exact id,
//! or by the longest known id it extends with a snapshot suffix
//! (`gpt-4o-2024-08-06` → `gpt-4o`, `claude-sonnet-4-5-20250929` →
//! `claude-sonnet-4-5`, `claude-opus-4-1@20250805` → `claude-opus-4-1`,
//! `claude-3-5-haiku-latest` → `claude-3-5-haiku`). A bare version step is not
//! a snapshot: `claude-opus-4-5` does **not** fall back to `claude-opus-4`, and
//! `o3-mini` does not fall back to `o3`, because their prices differ; an
//! unknown model costs `None`, never zero and never a neighbour's price.
//! Keys ending in `*` match any id that starts with the rest
//! (`with("my-llama*", …)`).

use hybrid_core::{Money, Usage};

/// Per-token prices of one model, in nano-dollars.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelPrice {
    /// Uncached input tokens.
    pub input: i64,
    /// Output tokens.
    pub output: i64,
    /// Input tokens read from the prompt cache.
    pub cache_read: i64,
    /// Input tokens written to the prompt cache.
    pub cache_write: i64,
}

impl ModelPrice {
    /// Prices in nano-dollars per token (= dollars per million tokens × 1000).
    pub const fn nanos_per_token(
        input: i64,
        output: i64,
        cache_read: i64,
        cache_write: i64,
    ) -> Self {
        ModelPrice {
            input,
            output,
            cache_read,
            cache_write,
        }
    }

    /// Prices in dollars per million tokens, rounded to whole nano-dollars
    /// per token; `None` for negative or non-finite input.
    pub fn per_million_usd(
        input: f64,
        output: f64,
        cache_read: f64,
        cache_write: f64,
    ) -> Option<Self> {
        Some(ModelPrice {
            input: usd_per_mtok(input)?,
            output: usd_per_mtok(output)?,
            cache_read: usd_per_mtok(cache_read)?,
            cache_write: usd_per_mtok(cache_write)?,
        })
    }

    /// The cost of `usage` at these prices.
    pub fn cost(&self, usage: &Usage) -> Money {
        Money::per_token(usage.input_tokens, self.input)
            + Money::per_token(usage.output_tokens, self.output)
            + Money::per_token(usage.cache_read_tokens, self.cache_read)
            + Money::per_token(usage.cache_write_tokens, self.cache_write)
    }
}

fn usd_per_mtok(usd: f64) -> Option<i64> {
    if !usd.is_finite() || !(0.0..=1.0e9).contains(&usd) {
        return None;
    }
    #[allow(clippy::cast_possible_truncation)]
    Some((usd * 1000.0).round() as i64)
}

/// Model prices by model id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PriceTable {
    entries: Vec<(String, ModelPrice)>,
}

const fn p(input: i64, output: i64, cache_read: i64, cache_write: i64) -> ModelPrice {
    ModelPrice::nanos_per_token(input, output, cache_read, cache_write)
}

/// Public list prices, nano-dollars per token (= USD per million tokens × 1000).
///
/// Sources, as published when this table was written (2025-2026): OpenAI's
/// pricing page and per-model pages (developers.openai.com/api/docs/pricing,
/// "Text tokens": input / cached input / output; OpenAI has no cache-write
/// fee, so cache writes are priced as input) and Anthropic's pricing page
/// (platform.claude.com/docs/en/about-claude/pricing, "Model pricing": base
/// input / 5m cache writes / cache hits / output). Check them before billing.
const BUILTIN: &[(&str, ModelPrice)] = &[
    // OpenAI                       input   output  cached  (write = input)
    ("gpt-5", p(1_250, 10_000, 125, 1_250)),
    ("gpt-5-mini", p(250, 2_000, 25, 250)),
    ("gpt-5-nano", p(50, 400, 5, 50)),
    ("gpt-4.1", p(2_000, 8_000, 500, 2_000)),
    ("gpt-4.1-mini", p(400, 1_600, 100, 400)),
    ("gpt-4.1-nano", p(100, 400, 25, 100)),
    ("gpt-4o", p(2_500, 10_000, 1_250, 2_500)),
    ("gpt-4o-mini", p(150, 600, 75, 150)),
    ("o3", p(2_000, 8_000, 500, 2_000)),
    ("o4-mini", p(1_100, 4_400, 275, 1_100)),
    // Anthropic                    input   output  cache hit  5m cache write
    ("claude-opus-4-1", p(15_000, 75_000, 1_500, 18_750)),
    ("claude-opus-4-0", p(15_000, 75_000, 1_500, 18_750)),
    ("claude-opus-4", p(15_000, 75_000, 1_500, 18_750)),
    ("claude-sonnet-4-5", p(3_000, 15_000, 300, 3_750)),
    ("claude-sonnet-4-0", p(3_000, 15_000, 300, 3_750)),
    ("claude-sonnet-4", p(3_000, 15_000, 300, 3_750)),
    ("claude-3-7-sonnet", p(3_000, 15_000, 300, 3_750)),
    ("claude-haiku-4-5", p(1_000, 5_000, 100, 1_250)),
    ("claude-3-5-haiku", p(800, 4_000, 80, 1_000)),
];

impl PriceTable {
    /// An empty table: every model costs `None`.
    pub fn empty() -> Self {
        PriceTable::default()
    }

    /// Current public list prices of the common OpenAI and Anthropic models.
    pub fn builtin() -> Self {
        PriceTable {
            entries: BUILTIN
                .iter()
                .map(|(id, price)| ((*id).to_string(), *price))
                .collect(),
        }
    }

    /// This table with `price` for `model` (an id, or a prefix ending in `*`),
    /// replacing any earlier price for the same key.
    #[must_use]
    pub fn with(mut self, model: impl Into<String>, price: ModelPrice) -> Self {
        let key = model.into();
        match self.entries.iter_mut().find(|(k, _)| *k == key) {
            Some(entry) => entry.1 = price,
            None => self.entries.push((key, price)),
        }
        self
    }

    /// The price of `model`: exact id first, else the longest matching key.
    pub fn price(&self, model: &str) -> Option<ModelPrice> {
        if let Some((_, price)) = self.entries.iter().find(|(k, _)| k == model) {
            return Some(*price);
        }
        self.entries
            .iter()
            .filter(|(key, _)| key_matches(key, model))
            .max_by_key(|(key, _)| key.len())
            .map(|(_, price)| *price)
    }

    /// What `usage` of `model` cost; `None` when the model is not in the table.
    pub fn cost(&self, model: &str, usage: &Usage) -> Option<Money> {
        self.price(model).map(|price| price.cost(usage))
    }
}

fn key_matches(key: &str, model: &str) -> bool {
    if let Some(prefix) = key.strip_suffix('*') {
        return model.starts_with(prefix);
    }
    model.strip_prefix(key).is_some_and(is_snapshot_suffix)
}

/// `-2024-08-06`, `-20250929`, `-0613`, `@20250805`, `-latest`.
fn is_snapshot_suffix(rest: &str) -> bool {
    if rest == "-latest" {
        return true;
    }
    let Some(tail) = rest.strip_prefix('-').or_else(|| rest.strip_prefix('@')) else {
        return false;
    };
    let first_group = tail.split('-').next().unwrap_or_default();
    first_group.len() >= 4
        && tail.bytes().all(|b| b.is_ascii_digit() || b == b'-')
        && !tail.ends_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;
    use hybrid_core::usd;

    fn usage(input: u64, output: u64, read: u64, write: u64) -> Usage {
        Usage {
            input_tokens: input,
            output_tokens: output,
            cache_read_tokens: read,
            cache_write_tokens: write,
        }
    }

    #[test]
    fn exact_and_dated_ids() {
        let table = PriceTable::builtin();
        let million = usage(1_000_000, 0, 0, 0);
        assert_eq!(table.cost("gpt-4o", &million), Some(usd(2.5)));
        assert_eq!(table.cost("gpt-4o-2024-08-06", &million), Some(usd(2.5)));
        assert_eq!(table.cost("gpt-4o-mini", &million), Some(usd(0.15)));
        assert_eq!(
            table.cost("gpt-4o-mini-2024-07-18", &million),
            Some(usd(0.15))
        );
        assert_eq!(
            table.cost("gpt-4.1-nano-2025-04-14", &million),
            Some(usd(0.1))
        );
        assert_eq!(
            table.cost("claude-sonnet-4-5-20250929", &million),
            Some(usd(3.0))
        );
        assert_eq!(
            table.cost("claude-opus-4-1-20250805", &million),
            Some(usd(15.0))
        );
        assert_eq!(
            table.cost("claude-opus-4-20250514", &million),
            Some(usd(15.0))
        );
        assert_eq!(
            table.cost("claude-3-5-haiku-latest", &million),
            Some(usd(0.8))
        );
        assert_eq!(
            table.cost("claude-haiku-4-5@20251001", &million),
            Some(usd(1.0))
        );
    }

    #[test]
    fn unknown_and_neighbouring_models_are_none() {
        let table = PriceTable::builtin();
        let u = usage(10, 10, 0, 0);
        assert_eq!(table.cost("llama-3.1-8b", &u), None);
        assert_eq!(table.cost("o3-mini", &u), None);
        assert_eq!(table.cost("gpt-5-pro", &u), None);
        assert_eq!(table.cost("claude-opus-4-5", &u), None);
        assert_eq!(table.cost("claude-opus-4-5-20251101", &u), None);
        assert_eq!(table.cost("gpt-4o-", &u), None);
        assert_eq!(PriceTable::empty().cost("gpt-4o", &u), None);
    }

    #[test]
    fn cache_tokens_are_priced_separately() {
        let table = PriceTable::builtin();
        // Sonnet 4.5: $3 in, $15 out, $0.30 cache read, $3.75 cache write per Mtok.
        let u = usage(1_000, 2_000, 10_000, 4_000);
        let expected = 1_000 * 3_000 + 2_000 * 15_000 + 10_000 * 300 + 4_000 * 3_750;
        assert_eq!(
            table.cost("claude-sonnet-4-5", &u),
            Some(Money::from_nanos(expected))
        );
    }

    #[test]
    fn overrides_and_wildcards() {
        let mine = ModelPrice::per_million_usd(1.0, 2.0, 0.1, 1.25).unwrap();
        let table = PriceTable::builtin()
            .with("gpt-4o", mine)
            .with("local-llama*", ModelPrice::default_free());
        let million = usage(1_000_000, 0, 0, 0);
        assert_eq!(table.cost("gpt-4o-2024-11-20", &million), Some(usd(1.0)));
        assert_eq!(
            table.cost("local-llama-3.2-q4", &million),
            Some(Money::ZERO)
        );
        assert_eq!(ModelPrice::per_million_usd(f64::NAN, 0.0, 0.0, 0.0), None);
    }

    impl ModelPrice {
        fn default_free() -> Self {
            ModelPrice::nanos_per_token(0, 0, 0, 0)
        }
    }
}
