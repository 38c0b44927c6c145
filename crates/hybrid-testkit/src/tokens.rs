//! Deterministic token estimates (about four characters per token), used
//! when a [`Turn`](crate::Turn) does not script its usage.

use serde_json::Value;

/// Tokens for a text of `chars` characters: `ceil(chars / 4)`, at least 1.
pub(crate) fn for_chars(chars: usize) -> u64 {
    u64::try_from(chars.div_ceil(4)).unwrap_or(u64::MAX).max(1)
}

/// Prompt tokens of a request body: its `system`, `messages` and `tools`.
pub(crate) fn prompt(body: &Value) -> u64 {
    let chars = ["system", "messages", "tools"]
        .iter()
        .filter_map(|field| body.get(field))
        .map(|value| value.to_string().chars().count())
        .sum();
    for_chars(chars)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn estimates_are_stable() {
        assert_eq!(for_chars(0), 1);
        assert_eq!(for_chars(8), 2);
        assert_eq!(for_chars(9), 3);
        let body = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
        assert_eq!(prompt(&body), prompt(&body.clone()));
        assert!(prompt(&body) > 1);
    }
}
