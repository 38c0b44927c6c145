//! [`Redactor`]: finds secrets in text and JSON, replaces them, and tells the guardrail
//! what it found.

use std::borrow::Cow;
use std::ops::Range;
use std::sync::Arc;

use aho_corasick::{AhoCorasick, MatchKind};
use serde_json::Value;

use crate::patterns::{COMPILED, is_secret_key};

/// What a secret is replaced with.
pub const REDACTED: &str = "[REDACTED]";

/// Configured secret values shorter than this are ignored: redacting every `abc` would
/// shred the text and hide nothing worth hiding.
pub const MIN_SECRET_LEN: usize = 6;

/// A secret found by [`Redactor::detect`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Finding {
    /// The pattern's kind (`openai_anthropic_key`), or `configured_value`.
    pub kind: &'static str,
    /// What it is, in words (`OpenAI or Anthropic API key`).
    pub what: &'static str,
}

/// The secrets in one text: byte ranges, sorted and merged; and where the earliest match
/// that runs to the end of the text begins (it may go on in text that has not come yet).
#[derive(Debug, Default)]
pub(crate) struct Spans {
    pub(crate) ranges: Vec<Range<usize>>,
    pub(crate) open_from: Option<usize>,
}

/// Removes secrets from text and JSON: the built-in [patterns](crate::patterns) plus the
/// configured secret values it was built with (the provider keys' values, say).
///
/// Cheap to clone (the values are shared). Redaction is idempotent, keeps the label in
/// front of a value (`Bearer `, `password=`, `postgres://user:`) so a reader still sees what
/// was there, and errs on the side of removing too much (`token: abc` in prose loses `abc`);
/// ordinary words (`skip`, `sk`, `tokens: 5`, `task-…`) are left alone.
///
/// ```
/// use hybrid_secrets::Redactor;
/// let redactor = Redactor::new(["my-configured-key-value"]);
/// assert_eq!(
///     redactor.redact("curl -H 'Authorization: Bearer abc.def' -u my-configured-key-value"),
///     "curl -H 'Authorization: Bearer [REDACTED]' -u [REDACTED]"
/// );
/// assert_eq!(redactor.redact("nothing to hide"), "nothing to hide");
/// ```
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    values: Option<Arc<Values>>,
}

#[derive(Debug)]
struct Values {
    matcher: AhoCorasick,
    count: usize,
}

impl Redactor {
    /// A redactor with the built-in patterns and `values` (at least [`MIN_SECRET_LEN`]
    /// bytes; shorter ones and duplicates are dropped).
    pub fn new<I, S>(values: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut values: Vec<String> = values
            .into_iter()
            .map(Into::into)
            .filter(|s| s.len() >= MIN_SECRET_LEN)
            .collect();
        values.sort();
        values.dedup();
        if values.is_empty() {
            return Redactor::default();
        }
        let matcher = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .build(&values);
        match matcher {
            Ok(matcher) => Redactor {
                values: Some(Arc::new(Values {
                    matcher,
                    count: values.len(),
                })),
            },
            // Only a matcher too large for memory fails to build: fall back to the patterns.
            Err(_) => Redactor::default(),
        }
    }

    /// How many configured values it knows.
    pub fn explicit_secrets(&self) -> usize {
        self.values.as_ref().map_or(0, |v| v.count)
    }

    /// Whether `text` holds anything [`redact`](Self::redact) would replace.
    pub fn contains_secret(&self, text: &str) -> bool {
        !self.spans(text).ranges.is_empty()
    }

    /// `text` with every secret replaced by [`REDACTED`]; borrowed if there was none.
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let spans = self.spans(text);
        if spans.ranges.is_empty() {
            return Cow::Borrowed(text);
        }
        Cow::Owned(replace(text, &spans.ranges))
    }

    /// Like [`redact`](Self::redact), for an owned string.
    pub fn redact_string(&self, text: String) -> String {
        match self.redact(&text) {
            Cow::Borrowed(_) => text,
            Cow::Owned(redacted) => redacted,
        }
    }

    /// `value` with every string redacted, and the string values of keys that name a
    /// secret ([`is_secret_key`]) replaced whole.
    pub fn redact_json(&self, mut value: Value) -> Value {
        self.redact_json_in_place(&mut value);
        value
    }

    /// [`redact_json`](Self::redact_json) in place; whether anything changed.
    pub fn redact_json_in_place(&self, value: &mut Value) -> bool {
        match value {
            Value::String(s) => self.redact_in_place(s),
            Value::Array(items) => items
                .iter_mut()
                .fold(false, |changed, v| self.redact_json_in_place(v) | changed),
            Value::Object(map) => {
                let mut changed = false;
                for (key, v) in map.iter_mut() {
                    match v {
                        Value::String(s)
                            if is_secret_key(key) && s != REDACTED && !s.is_empty() =>
                        {
                            *s = REDACTED.to_owned();
                            changed = true;
                        }
                        v => changed |= self.redact_json_in_place(v),
                    }
                }
                // Keys are data too; a key holding a secret is rare, so rebuild only then.
                if map.keys().any(|k| self.contains_secret(k)) {
                    let old = std::mem::take(map);
                    for (k, v) in old {
                        map.insert(self.redact_string(k), v);
                    }
                    changed = true;
                }
                changed
            }
            _ => false,
        }
    }

    /// Redacts `text` in place; whether it changed.
    pub fn redact_in_place(&self, text: &mut String) -> bool {
        let spans = self.spans(text);
        if spans.ranges.is_empty() {
            return false;
        }
        *text = replace(text, &spans.ranges);
        true
    }

    /// The first secret the `secrets_in_output` guardrail counts in `text`: a configured
    /// value, or a pattern whose secret is long enough to be one for sure (see
    /// [`Pattern::detect_min_len`](crate::Pattern::detect_min_len)). Whatever it finds,
    /// [`redact`](Self::redact) removes.
    pub fn detect(&self, text: &str) -> Option<Finding> {
        if let Some(values) = &self.values
            && values.matcher.is_match(text)
        {
            return Some(Finding {
                kind: "configured_value",
                what: "configured secret value",
            });
        }
        let compiled = &*COMPILED;
        let matched = compiled.set.matches(text);
        for index in matched.iter() {
            let Some(pattern) = compiled.patterns.get(index) else {
                continue;
            };
            for caps in pattern.regex.captures_iter(text) {
                // The same secrets `spans` would replace: non-empty, not already redacted.
                let len = caps
                    .iter()
                    .skip(1)
                    .flatten()
                    .filter(|m| !m.is_empty() && m.as_str() != REDACTED)
                    .map(|m| m.len())
                    .max();
                if let Some(len) = len
                    && len >= pattern.detect_min_len
                {
                    return Some(Finding {
                        kind: pattern.kind,
                        what: pattern.what,
                    });
                }
            }
        }
        None
    }

    /// The secrets in `text` (see [`Spans`]); ranges whose text is already [`REDACTED`]
    /// are not secrets.
    pub(crate) fn spans(&self, text: &str) -> Spans {
        let mut spans = Spans::default();
        if let Some(values) = &self.values {
            for m in values.matcher.find_iter(text) {
                spans.ranges.push(m.start()..m.end());
                if m.end() == text.len() {
                    spans.open_from = Some(spans.open_from.map_or(m.start(), |o| o.min(m.start())));
                }
            }
        }
        let compiled = &*COMPILED;
        let matched = compiled.set.matches(text);
        if matched.matched_any() {
            for index in matched.iter() {
                let Some(pattern) = compiled.patterns.get(index) else {
                    continue;
                };
                for caps in pattern.regex.captures_iter(text) {
                    let Some(whole) = caps.get(0) else {
                        continue;
                    };
                    for group in caps.iter().skip(1).flatten() {
                        if !group.is_empty() && group.as_str() != REDACTED {
                            spans.ranges.push(group.start()..group.end());
                        }
                    }
                    if whole.end() == text.len() {
                        spans.open_from = Some(
                            spans
                                .open_from
                                .map_or(whole.start(), |o| o.min(whole.start())),
                        );
                    }
                }
            }
        }
        spans.ranges = merge(std::mem::take(&mut spans.ranges));
        spans
    }
}

/// Sorts and merges overlapping or touching ranges.
fn merge(mut ranges: Vec<Range<usize>>) -> Vec<Range<usize>> {
    ranges.sort_by_key(|r| (r.start, r.end));
    let mut merged: Vec<Range<usize>> = Vec::with_capacity(ranges.len());
    for r in ranges {
        match merged.last_mut() {
            Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
            _ => merged.push(r),
        }
    }
    merged
}

/// `text` with each (sorted, disjoint) range replaced by [`REDACTED`].
fn replace(text: &str, ranges: &[Range<usize>]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for r in ranges {
        out.push_str(&text[at..r.start]);
        out.push_str(REDACTED);
        at = r.end;
    }
    out.push_str(&text[at..]);
    out
}
