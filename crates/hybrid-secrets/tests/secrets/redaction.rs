//! The secrets module as its users rely on it: a table of real-looking credentials goes in,
//! none comes out — of plain text, JSON and streams split at every byte — and whatever the
//! guardrail detects is redacted.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::borrow::Cow;

use hybrid_secrets::{REDACTED, Redactor, StreamRedactor, patterns};
use hybrid_testkit::fixtures::sample_secrets;
use serde_json::json;

/// `(name, secret, the part that must never survive)`: the testkit's table.
fn table() -> Vec<(&'static str, String, String)> {
    sample_secrets()
        .into_iter()
        .map(|s| (s.name, s.text, s.core))
        .collect()
}

/// The ways a secret shows up in what tools print.
fn contexts(secret: &str) -> Vec<String> {
    vec![
        secret.to_owned(),
        format!("export VALUE={secret}"),
        format!("2026-12-03T10:00:00Z INFO loaded credential {secret} from vault"),
        format!("curl -s -H 'X-Trace: 1' https://api.example.com --data '{secret}'"),
        format!("{{\"note\": \"{}\"}}", secret.replace('\n', "\\n")),
        format!("line one\n{secret}\nline three"),
    ]
}

#[test]
fn a_table_of_real_looking_secrets_goes_in_and_none_comes_out() {
    let redactor = Redactor::default();
    for (name, secret, core) in table() {
        for text in contexts(&secret) {
            let out = redactor.redact(&text);
            assert!(!out.contains(core.as_str()), "{name} survived in {out:?}");
            assert!(out.contains(REDACTED), "{name}: {out:?}");
            // Idempotent.
            assert_eq!(redactor.redact(&out), out, "{name}");
            // In JSON, wherever it sits.
            let value =
                json!({"output": text, "argv": ["sh", "-c", text], "nested": {"x": [text]}});
            let redacted = redactor.redact_json(value).to_string();
            assert!(
                !redacted.contains(core.as_str()),
                "{name} survived in JSON {redacted}"
            );
        }
    }
}

#[test]
fn the_guardrail_detects_each_credential_kind() {
    let redactor = Redactor::default();
    for (name, secret, _) in table() {
        assert!(
            redactor.detect(&secret).is_some(),
            "{name} not detected: {secret}"
        );
    }
}

#[test]
fn everything_the_guardrail_detects_is_redacted() {
    let redactor = Redactor::new(["configured-provider-key-0001"]);
    let mut corpus: Vec<String> = table()
        .into_iter()
        .flat_map(|(_, s, _)| contexts(&s))
        .collect();
    corpus.extend(
        [
            "use configured-provider-key-0001 here",
            "Bearer abcdefghijklmnopqrstuvwxyz0123",
            "password: 'longer-than-eight'",
            "-----BEGIN PRIVATE KEY-----",
            "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC",
            "-----BEGIN EC PRIVATE KEY-----\ntruncated",
            "https://user:pw@example.com/",
        ]
        .map(str::to_owned),
    );
    for text in &corpus {
        if redactor.detect(text).is_some() {
            let out = redactor.redact(text);
            assert_eq!(
                redactor.detect(&out),
                None,
                "detected after redaction: {out:?} (from {text:?})"
            );
        }
    }
    // Every pattern kind is reachable from the corpus.
    let kinds: std::collections::BTreeSet<&str> = corpus
        .iter()
        .filter_map(|t| redactor.detect(t))
        .map(|f| f.kind)
        .collect();
    for p in patterns() {
        if p.kind != "stripe_secret_key" && p.kind != "npm_token" {
            assert!(kinds.contains(p.kind), "no case detects {}", p.kind);
        }
    }
}

#[test]
fn labels_stay_and_ordinary_text_is_untouched() {
    let r = Redactor::default();
    assert_eq!(
        r.redact("curl -H 'Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30.abc' https://x"),
        "curl -H 'Authorization: Bearer [REDACTED]' https://x"
    );
    assert_eq!(
        r.redact("psql postgres://app:S3cret!@db:5432/prod"),
        "psql postgres://app:[REDACTED]@db:5432/prod"
    );
    assert_eq!(
        r.redact("export DB_PASSWORD='pa ss'"),
        "export DB_PASSWORD='[REDACTED]'"
    );
    assert_eq!(
        r.redact("https://h/?token=abc&a=b"),
        "https://h/?token=[REDACTED]&a=b"
    );
    for text in [
        "skip",
        "sk",
        "sk-learn",
        "task-0190abcdef0123456789",
        "ask-me-anything-about-this-thing",
        "tokens: 5",
        "input_tokens=100",
        "max_tokens: 4096",
        "the secret garden",
        "passwords are hashed",
        "ls -la /etc && systemctl status nginx",
        "https://example.com:443/path?q=1",
        "http://host:8080/a@b",
        "https://user@example.com",
        "AKIA",
        "ghp_short",
        "[REDACTED]",
        "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----",
    ] {
        assert!(
            matches!(r.redact(text), Cow::Borrowed(t) if t == text),
            "{text} changed to {}",
            r.redact(text)
        );
        assert_eq!(r.detect(text), None, "{text} detected");
    }
}

#[test]
fn configured_values_and_secret_keys() {
    let red = Redactor::new(["my-configured-key-value", "abc", "my-configured"]);
    assert_eq!(red.explicit_secrets(), 2);
    assert_eq!(
        red.redact("use my-configured-key-value and my-configured"),
        "use [REDACTED] and [REDACTED]"
    );
    assert_eq!(red.redact("abc"), "abc");
    let value = json!({
        "password": "hunter2",
        "headers": {"Authorization": "Basic xyz", "x-api-key": "k-123"},
        "argv": ["curl", "-u", "my-configured-key-value"],
        "input_tokens": 12,
        "note": "token=abc",
        "plain": "hello",
    });
    assert_eq!(
        red.redact_json(value),
        json!({
            "password": "[REDACTED]",
            "headers": {"Authorization": "[REDACTED]", "x-api-key": "[REDACTED]"},
            "argv": ["curl", "-u", "[REDACTED]"],
            "input_tokens": 12,
            "note": "token=[REDACTED]",
            "plain": "hello",
        })
    );
}

/// A tiny deterministic generator, for reproducible random splits.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, bound: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        usize::try_from(self.0 >> 33).unwrap() % bound.max(1)
    }
}

fn stream_through(redactor: &Redactor, pieces: &[&str]) -> String {
    let mut stream = StreamRedactor::new(redactor.clone());
    let mut out = String::new();
    for piece in pieces {
        out.extend(stream.push(piece));
    }
    out.extend(stream.finish());
    out
}

/// `text` cut at the given byte offsets (on char boundaries).
fn split_at<'a>(text: &'a str, cuts: &[usize]) -> Vec<&'a str> {
    let mut pieces = Vec::new();
    let mut at = 0;
    for &c in cuts {
        if c > at && c < text.len() && text.is_char_boundary(c) {
            pieces.push(&text[at..c]);
            at = c;
        }
    }
    pieces.push(&text[at..]);
    pieces
}

#[test]
fn a_stream_split_anywhere_leaks_no_secret() {
    let redactor = Redactor::new(["configured-provider-key-0001"]);
    let mut cases: Vec<(String, String)> = table()
        .into_iter()
        .map(|(_, secret, core)| (format!("Here it is: {secret} — done.\nNext line."), core))
        .collect();
    cases.push((
        "key configured-provider-key-0001 used".to_owned(),
        "configured-provider-key-0001".to_owned(),
    ));
    for (text, core) in &cases {
        // A one-word secret comes out exactly as whole-text redaction has it; one with
        // blanks in it (a PEM key, `Authorization: Basic …`) may lose a little more.
        let one_word = !core.contains(char::is_whitespace)
            && !text.contains("BEGIN")
            && !text.to_ascii_lowercase().contains("authorization");
        // Every single cut point.
        for cut in 1..text.len() {
            let out = stream_through(&redactor, &split_at(text, &[cut]));
            assert!(!out.contains(core.as_str()), "split at {cut}: {out:?}");
        }
        // Random cuts into many small pieces, as a model streams.
        let mut rng = Lcg(text.len() as u64);
        for _ in 0..50 {
            let mut cuts: Vec<usize> = (0..rng.next(12) + 2)
                .map(|_| rng.next(text.len()))
                .collect();
            cuts.sort_unstable();
            let out = stream_through(&redactor, &split_at(text, &cuts));
            assert!(!out.contains(core.as_str()), "cuts {cuts:?}: {out:?}");
            if one_word {
                assert_eq!(out, redactor.redact(text), "cuts {cuts:?}");
            }
        }
    }
}

#[test]
fn a_stream_releases_words_as_they_end_and_text_without_secrets_unchanged() {
    let redactor = Redactor::default();
    let mut stream = StreamRedactor::new(redactor);
    assert_eq!(stream.push("Hello wor"), Some("Hello ".to_owned()));
    assert_eq!(stream.push("ld"), None);
    assert!(stream.is_holding());
    assert_eq!(stream.push(", again\n"), Some("world, again\n".to_owned()));
    assert_eq!(stream.finish(), None);
    let text = "The quick brown fox jumps over the lazy dog. ".repeat(40);
    let pieces: Vec<&str> = split_at(&text, &(1..text.len()).step_by(3).collect::<Vec<_>>());
    assert_eq!(stream_through(&Redactor::default(), &pieces), text);
}
