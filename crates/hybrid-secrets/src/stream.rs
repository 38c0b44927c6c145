//! [`StreamRedactor`]: redaction of text that arrives in pieces (a model's streamed
//! deltas), where a secret may be split across pieces.
//!
//! Text is released up to its last whitespace: secrets are single words (but for PEM
//! bodies, which the context below covers), so the word still arriving is held until it
//! ends. Each release is matched together with the tail of what was released before (at
//! least [`CONTEXT`] bytes, and all of a match still open, such as a private key whose
//! `END` line has not come), so a label in one piece (`password=`, `Bearer `) and its value
//! in the next are still found. A piece longer than [`MAX_HOLD`] bytes without whitespace is
//! released whole.
//!
//! ```
//! use hybrid_secrets::{Redactor, StreamRedactor};
//! let mut stream = StreamRedactor::new(Redactor::default());
//! let mut out = String::new();
//! for piece in ["the key is sk-ant-", "api03-AbCdEf0123456", "789 — keep it"] {
//!     out.extend(stream.push(piece));
//! }
//! out.extend(stream.finish());
//! assert_eq!(out, "the key is [REDACTED] — keep it");
//! ```

use crate::Redactor;
use crate::redactor::REDACTED;

/// Bytes of already released text matched again with each new piece.
pub const CONTEXT: usize = 256;

/// Held text with no whitespace is released once it is this long.
pub const MAX_HOLD: usize = 8 * 1024;

/// An open match (a private key whose `END` line has not come) is kept as context up to
/// this many bytes; a PEM key is at most a few KiB.
pub const MAX_OPEN: usize = 64 * 1024;

/// Redacts a stream of text pieces; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct StreamRedactor {
    redactor: Redactor,
    /// Released text (as it came, unredacted), kept as context.
    tail: String,
    /// Text not released yet.
    pending: String,
    /// The last release ended inside a secret (so its continuation gets no second marker).
    in_secret: bool,
}

impl StreamRedactor {
    /// A stream redacted by `redactor`.
    pub fn new(redactor: Redactor) -> Self {
        StreamRedactor {
            redactor,
            tail: String::new(),
            pending: String::new(),
            in_secret: false,
        }
    }

    /// Takes the next piece; returns the text that may be released now, redacted (`None`
    /// while everything is held).
    pub fn push(&mut self, piece: &str) -> Option<String> {
        self.pending.push_str(piece);
        let cut = match self.pending.rfind(char::is_whitespace) {
            Some(at) => at + self.pending[at..].chars().next().map_or(0, char::len_utf8),
            None if self.pending.len() >= MAX_HOLD => self.pending.len(),
            None => return None,
        };
        self.release(cut)
    }

    /// Releases whatever is held (the stream ended), redacted.
    pub fn finish(&mut self) -> Option<String> {
        let out = self.release(self.pending.len());
        self.tail.clear();
        self.in_secret = false;
        out
    }

    /// Whether text is held.
    pub fn is_holding(&self) -> bool {
        !self.pending.is_empty()
    }

    fn release(&mut self, cut: usize) -> Option<String> {
        if cut == 0 {
            return None;
        }
        let base = self.tail.len();
        let mut combined = std::mem::take(&mut self.tail);
        combined.push_str(&self.pending);
        let spans = self.redactor.spans(&combined);
        let end = base + cut;

        let mut out = String::with_capacity(cut);
        let mut at = base;
        let mut in_secret = self.in_secret;
        for r in &spans.ranges {
            if r.end <= at || r.start >= end {
                continue;
            }
            let start = r.start.max(at);
            out.push_str(&combined[at..start]);
            // A secret continuing from the last release already has its marker.
            if !(in_secret && start == base) {
                out.push_str(REDACTED);
            }
            in_secret = false;
            at = r.end.min(end);
        }
        out.push_str(&combined[at..end]);
        self.in_secret = spans.ranges.iter().any(|r| r.start < end && r.end > end);

        // Keep the context for the next piece: the last CONTEXT bytes of what was
        // released, and everything of a match that may still go on.
        let mut keep_from = end.saturating_sub(CONTEXT);
        if let Some(open) = spans.open_from {
            keep_from = keep_from.min(open.max(end.saturating_sub(MAX_OPEN)));
        }
        while !combined.is_char_boundary(keep_from) {
            keep_from -= 1;
        }
        self.pending = combined[end..].to_owned();
        combined.truncate(end);
        self.tail = combined.split_off(keep_from);
        Some(out)
    }
}
