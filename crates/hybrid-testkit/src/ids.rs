//! Unique ids in each provider's style: `chatcmpl-…`, `call_…` (OpenAI),
//! `msg_01…`, `toolu_01…`, `req_011…` (Anthropic).
//!
//! A process-wide counter passed through a bijective mixer makes every id
//! unique within the process; a per-process seed makes them look random.

use std::hash::{BuildHasher, RandomState};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const HEX: &[u8; 16] = b"0123456789abcdef";

static COUNTER: AtomicU64 = AtomicU64::new(0);

fn seed() -> u64 {
    static SEED: OnceLock<u64> = OnceLock::new();
    *SEED.get_or_init(|| RandomState::new().hash_one(std::process::id()))
}

/// SplitMix64 finalizer: a bijection on `u64`.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// `len` characters from `alphabet`; the first 11 (base 62) or 16 (hex)
/// encode a unique value, so ids never repeat within the process.
fn token(len: usize, alphabet: &[u8]) -> String {
    let base = alphabet.len() as u64;
    let unique = mix(COUNTER.fetch_add(1, Ordering::Relaxed) ^ seed());
    let mut out = String::with_capacity(len);
    let mut value = unique;
    let mut filler = mix(unique ^ 0xA5A5_A5A5_A5A5_A5A5);
    let unique_digits = if base == 16 { 16 } else { 11 };
    for i in 0..len {
        let digit = if i < unique_digits {
            let d = value % base;
            value /= base;
            d
        } else {
            if filler < base {
                filler = mix(filler.wrapping_add(i as u64));
            }
            let d = filler % base;
            filler /= base;
            d
        };
        out.push(char::from(alphabet[digit as usize]));
    }
    out
}

/// An OpenAI completion id: `chatcmpl-` and 29 characters.
pub(crate) fn openai_completion() -> String {
    format!("chatcmpl-{}", token(29, ALPHABET))
}

/// An OpenAI tool call id: `call_` and 24 characters.
pub(crate) fn openai_call() -> String {
    format!("call_{}", token(24, ALPHABET))
}

/// An OpenAI `x-request-id`: `req_` and 32 hex digits.
pub(crate) fn openai_request() -> String {
    format!("req_{}", token(32, HEX))
}

/// An Anthropic message id: `msg_01` and 22 characters.
pub(crate) fn anthropic_message() -> String {
    format!("msg_01{}", token(22, ALPHABET))
}

/// An Anthropic tool use id: `toolu_01` and 22 characters.
pub(crate) fn anthropic_tool_use() -> String {
    format!("toolu_01{}", token(22, ALPHABET))
}

/// An Anthropic request id: `req_011` and 21 characters.
pub(crate) fn anthropic_request() -> String {
    format!("req_011{}", token(21, ALPHABET))
}

/// A stable `system_fingerprint` for a model name (`fp_` and 10 hex digits).
pub(crate) fn fingerprint(model: &str) -> String {
    // FNV-1a, so the same model always reports the same fingerprint.
    let mut hash: u64 = 0xCBF2_9CE4_8422_2325;
    for byte in model.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01B3);
    }
    let mut out = String::from("fp_");
    for i in 0..10 {
        let nibble = (hash >> (4 * i)) & 0xF;
        out.push(char::from(HEX[nibble as usize]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn ids_are_unique_and_shaped() {
        let ids: HashSet<String> = (0..10_000).map(|_| openai_call()).collect();
        assert_eq!(ids.len(), 10_000);
        let id = anthropic_tool_use();
        assert!(id.starts_with("toolu_01") && id.len() == 30, "{id}");
        assert!(openai_completion().starts_with("chatcmpl-"));
        assert_eq!(openai_request().len(), 36);
        assert_eq!(fingerprint("gpt-4o"), fingerprint("gpt-4o"));
    }
}
