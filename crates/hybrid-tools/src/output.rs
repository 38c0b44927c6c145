//! Output shaping: caps with a trailer, and binary detection.

/// Why bytes cannot be shown as text, if they cannot.
pub(crate) fn binary_reason(bytes: &[u8], cut: bool) -> Option<&'static str> {
    if bytes.contains(&0) {
        return Some("contains NUL bytes");
    }
    match std::str::from_utf8(bytes) {
        Ok(_) => None,
        // A cap may split a multi-byte character at the very end; that is still text.
        Err(e) if cut && e.error_len().is_none() => None,
        Err(_) => Some("is not valid UTF-8"),
    }
}

/// Bytes as text: the UTF-8 text (a character split by a cap is dropped), or a one-line note
/// `binary output (N bytes) omitted: …` when they are binary. Returns (text, is_binary).
pub fn describe_bytes(bytes: &[u8], total: u64, cut: bool) -> (String, bool) {
    if let Some(reason) = binary_reason(bytes, cut) {
        return (
            format!("binary output ({total} bytes) omitted: it {reason}"),
            true,
        );
    }
    let text = match std::str::from_utf8(bytes) {
        Ok(s) => s.to_owned(),
        Err(e) => String::from_utf8_lossy(&bytes[..e.valid_up_to()]).into_owned(),
    };
    (text, false)
}

/// Cuts `text` to at most `max` bytes (at a character boundary) and appends a trailer saying
/// how much was cut. `total` is the full size of what the text came from (≥ text.len()).
/// Returns (text, truncated).
pub fn cap_text(text: &str, total: u64, max: usize) -> (String, bool) {
    let total = total.max(text.len() as u64);
    if text.len() as u64 >= total && text.len() <= max {
        return (text.to_owned(), false);
    }
    let mut end = text.len().min(max);
    while end > 0 && !text.is_char_boundary(end) {
        end -= 1;
    }
    let kept = &text[..end];
    let cut = total.saturating_sub(end as u64);
    let mut out = String::with_capacity(end + 80);
    out.push_str(kept);
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(&format!(
        "[output truncated: {cut} of {total} bytes cut; showing the first {end} bytes]"
    ));
    (out, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_keeps_short_text() {
        assert_eq!(cap_text("abc", 3, 10), ("abc".to_owned(), false));
    }

    #[test]
    fn cap_cuts_at_char_boundary() {
        let (text, cut) = cap_text("ééé", 6, 3);
        assert!(cut);
        assert!(text.starts_with("é\n[output truncated: 4 of 6 bytes cut"));
    }

    #[test]
    fn binary_is_detected() {
        assert!(describe_bytes(b"a\0b", 3, false).1);
        assert!(describe_bytes(&[0xff, 0xfe], 2, false).1);
        // split multi-byte char at a cap is still text
        assert!(!describe_bytes(&"é".as_bytes()[..1], 10, true).1);
    }
}
