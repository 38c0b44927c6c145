//! [`Redactor`]: removes secrets from text before it is written to the audit
//! trail.
//!
//! What is replaced, each by `[REDACTED]` (the label in front of a value —
//! `Bearer `, `Authorization: `, `password=`, `postgres://user:` — is kept, so
//! a reader still sees *what* was there, never the value):
//!
//! | kind | example |
//! | --- | --- |
//! | the explicit secrets the redactor was built with (configured keys' values) | anywhere, as a substring |
//! | OpenAI / Anthropic keys | `sk-…`, `sk-proj-…`, `sk-ant-…` (at least 16 characters after `sk-`) |
//! | `Authorization:` / `Proxy-Authorization:` header values | `Authorization: Basic dXNlcjpwYXNz` |
//! | bearer tokens | `Bearer eyJhbGciOi…` |
//! | `key=value` / `key: value` where the key names a secret | `password=`, `passwd=`, `secret=`, `token=`, `api_key=`, `DB_PASSWORD=`, `aws_secret_access_key =`, `"token": "…"` |
//! | passwords in URLs | `postgres://user:pass@host` |
//! | AWS access key ids | `AKIA…`, `ASIA…` (20 characters) |
//! | GitHub tokens | `ghp_…`, `gho_…`, `ghu_…`, `ghs_…`, `ghr_…`, `github_pat_…` |
//!
//! In JSON ([`Redactor::redact_json`]) every string is redacted as text, and
//! the whole string value of an object key that names a secret (`password`,
//! `api_key`, `authorization`, `x-api-key` …) is replaced.
//!
//! Patterns are compiled once per process. Redaction is idempotent: redacting
//! redacted text changes nothing. It errs on the side of removing too much
//! (`token: abc` in prose loses `abc`); ordinary words (`skip`, `sk`,
//! `tokens: 5`, `task-…`) are left alone.

use std::borrow::Cow;
use std::sync::LazyLock;

use regex::{Captures, Regex};

use crate::audit::AuditEntry;

/// What a secret is replaced with.
pub const REDACTED: &str = "[REDACTED]";

/// Explicit secrets shorter than this are ignored: redacting every `abc` in
/// the trail would shred it and reveal nothing worth hiding.
pub const MIN_SECRET_LEN: usize = 6;

/// One built-in pattern; the capture groups that took part in a match are the
/// secret, the rest of the match is kept.
struct Rule {
    regex: Regex,
}

/// The built-in patterns, in the order they are applied.
const PATTERNS: &[&str] = &[
    // Passwords in URLs: scheme://user:PASSWORD@host.
    r"(?i)\b[a-z][a-z0-9+.\-]*://[^\s/:@]+:([^\s/@]+)@",
    // Authorization headers, with or without a scheme word.
    r#"(?i)\b(?:proxy-)?authorization["']?\s*[:=]\s*["']?(?:(?:basic|bearer|token|digest|negotiate)\s+)?([^\s"',;]+)"#,
    // Bearer tokens anywhere.
    r"(?i)\bbearer\s+([A-Za-z0-9\-._~+/]+=*)",
    // key=value / key: value where the key names a secret.
    r#"(?i)\b[A-Za-z0-9_.\-]*(?:password|passwd|secret|token|api[_\-]?key|access[_\-]?key)(?:[_\-]?(?:access[_\-]?)?key)?["']?\s*[:=]\s*(?:"([^"\r\n]*)"|'([^'\r\n]*)'|([^\s"'&,;]+))"#,
    // OpenAI and Anthropic keys.
    r"\b(sk-[A-Za-z0-9_\-]{16,})",
    // AWS access key ids.
    r"\b((?:AKIA|ASIA)[A-Z0-9]{16})\b",
    // GitHub tokens.
    r"\b(gh[pousr]_[A-Za-z0-9]{30,})",
    r"\b(github_pat_[A-Za-z0-9_]{22,})",
];

/// JSON object keys whose string values are secrets as a whole.
const SECRET_KEY: &str = r"(?i)^[A-Za-z0-9_.\-]*(?:password|passwd|secret|token|api[_\-]?key|access[_\-]?key|authorization|credentials?)(?:[_\-]?(?:access[_\-]?)?key)?$";

static RULES: LazyLock<Vec<Rule>> = LazyLock::new(|| {
    PATTERNS
        .iter()
        .filter_map(|p| Regex::new(p).ok())
        .map(|regex| Rule { regex })
        .collect()
});

static SECRET_KEY_RE: LazyLock<Option<Regex>> = LazyLock::new(|| Regex::new(SECRET_KEY).ok());

/// Removes secrets from text and JSON: the built-in patterns (see the
/// [module docs](self)) plus the explicit secret values it was built with.
///
/// Build it once (say, with the values of the configured provider keys) and
/// share it; it is cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    /// Explicit secrets, longest first (so a secret containing another is
    /// replaced whole).
    secrets: Vec<String>,
}

impl Redactor {
    /// A redactor with the built-in patterns and `secrets` (values of at
    /// least [`MIN_SECRET_LEN`] bytes; shorter ones and duplicates are
    /// dropped).
    pub fn new<I, S>(secrets: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut secrets: Vec<String> = secrets
            .into_iter()
            .map(Into::into)
            .filter(|s| s.len() >= MIN_SECRET_LEN)
            .collect();
        secrets.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        secrets.dedup();
        Redactor { secrets }
    }

    /// How many explicit secrets it knows.
    pub fn explicit_secrets(&self) -> usize {
        self.secrets.len()
    }

    /// `text` with every secret replaced by [`REDACTED`]; borrowed if there
    /// was none.
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut out = Cow::Borrowed(text);
        for secret in &self.secrets {
            if out.contains(secret.as_str()) {
                out = Cow::Owned(out.replace(secret.as_str(), REDACTED));
            }
        }
        for rule in RULES.iter() {
            if let Cow::Owned(replaced) = rule.regex.replace_all(&out, replace_groups) {
                out = Cow::Owned(replaced);
            }
        }
        out
    }

    /// `value` with every string redacted and the string values of keys that
    /// name a secret replaced whole.
    pub fn redact_json(&self, value: serde_json::Value) -> serde_json::Value {
        use serde_json::Value;
        match value {
            Value::String(s) => Value::String(self.redact_owned(s)),
            Value::Array(items) => {
                Value::Array(items.into_iter().map(|v| self.redact_json(v)).collect())
            }
            Value::Object(map) => Value::Object(
                map.into_iter()
                    .map(|(k, v)| {
                        let v = match v {
                            Value::String(_) if is_secret_key(&k) => {
                                Value::String(REDACTED.to_owned())
                            }
                            v => self.redact_json(v),
                        };
                        (self.redact_owned(k), v)
                    })
                    .collect(),
            ),
            other => other,
        }
    }

    /// The entry with every text field (all but the task id) redacted.
    pub fn redact_entry(&self, entry: AuditEntry) -> AuditEntry {
        AuditEntry {
            task_id: entry.task_id,
            agent: self.redact_owned(entry.agent),
            action: self.redact_owned(entry.action),
            command: entry.command.map(|c| self.redact_owned(c)),
            output: entry.output.map(|o| self.redact_owned(o)),
            user: self.redact_owned(entry.user),
            approved_by: entry.approved_by.map(|a| self.redact_owned(a)),
            detail: self.redact_json(entry.detail),
        }
    }

    fn redact_owned(&self, text: String) -> String {
        match self.redact(&text) {
            Cow::Borrowed(_) => text,
            Cow::Owned(redacted) => redacted,
        }
    }
}

/// Whether a JSON object key names a secret.
fn is_secret_key(key: &str) -> bool {
    SECRET_KEY_RE.as_ref().is_some_and(|re| re.is_match(key))
}

/// The whole match with every participating capture group replaced by
/// [`REDACTED`] (the groups of one pattern never overlap).
fn replace_groups(caps: &Captures<'_>) -> String {
    let Some(whole) = caps.get(0) else {
        return String::new();
    };
    let text = whole.as_str();
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for secret in caps.iter().skip(1).flatten() {
        let start = secret.start() - whole.start();
        let end = secret.end() - whole.start();
        if start < at {
            continue;
        }
        out.push_str(&text[at..start]);
        out.push_str(REDACTED);
        at = end;
    }
    out.push_str(&text[at..]);
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn r(text: &str) -> String {
        Redactor::default().redact(text).into_owned()
    }

    #[test]
    fn every_pattern_compiles() {
        assert_eq!(RULES.len(), PATTERNS.len());
        assert!(SECRET_KEY_RE.is_some());
    }

    #[test]
    fn openai_and_anthropic_keys() {
        assert_eq!(
            r("key sk-abcdefghijklmnopqrstuvwx end"),
            "key [REDACTED] end"
        );
        assert_eq!(
            r("OPENAI_API_KEY=sk-proj-AbCdEf0123456789_xyz-QRS"),
            "OPENAI_API_KEY=[REDACTED]"
        );
        assert_eq!(
            r("x-api-key: sk-ant-api03-AbCdEf0123456789abcdef-ghIJ"),
            "x-api-key: [REDACTED]"
        );
        assert_eq!(
            r("echo sk-ant-api03-AbCdEf0123456789abcdef-ghIJ|wc"),
            "echo [REDACTED]|wc"
        );
    }

    #[test]
    fn bearer_and_authorization() {
        assert_eq!(
            r("curl -H 'Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30.abc' https://x"),
            "curl -H 'Authorization: Bearer [REDACTED]' https://x"
        );
        assert_eq!(
            r("Authorization: Basic dXNlcjpwYXNz"),
            "Authorization: Basic [REDACTED]"
        );
        assert_eq!(r("authorization=abc123def"), "authorization=[REDACTED]");
        assert_eq!(
            r("sent bearer tok_123/abc+def== ok"),
            "sent bearer [REDACTED] ok"
        );
    }

    #[test]
    fn password_secret_token_values() {
        assert_eq!(r("password=hunter2 next"), "password=[REDACTED] next");
        assert_eq!(r("passwd=hunter2"), "passwd=[REDACTED]");
        assert_eq!(r("secret=s3cr3t&x=1"), "secret=[REDACTED]&x=1");
        assert_eq!(
            r("https://h/?token=abc&a=b"),
            "https://h/?token=[REDACTED]&a=b"
        );
        assert_eq!(
            r("export DB_PASSWORD='pa ss'"),
            "export DB_PASSWORD='[REDACTED]'"
        );
        assert_eq!(r("GITHUB_TOKEN=abc"), "GITHUB_TOKEN=[REDACTED]");
        assert_eq!(
            r("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG"),
            "aws_secret_access_key = [REDACTED]"
        );
        assert_eq!(
            r(r#"{"password": "hunter2"}"#),
            r#"{"password": "[REDACTED]"}"#
        );
        assert_eq!(r("api_key: abc"), "api_key: [REDACTED]");
    }

    #[test]
    fn url_passwords() {
        assert_eq!(
            r("psql postgres://app:S3cret!@db:5432/prod"),
            "psql postgres://app:[REDACTED]@db:5432/prod"
        );
        assert_eq!(
            r("https://user:pw@example.com/x"),
            "https://user:[REDACTED]@example.com/x"
        );
        // No password, or a port: untouched.
        assert_eq!(r("https://user@example.com"), "https://user@example.com");
        assert_eq!(r("http://host:8080/a@b"), "http://host:8080/a@b");
    }

    #[test]
    fn aws_and_github() {
        assert_eq!(r("id AKIAIOSFODNN7EXAMPLE."), "id [REDACTED].");
        assert_eq!(r("ASIAIOSFODNN7EXAMPLE"), "[REDACTED]");
        let ghp = format!("ghp_{}", "a1B2c3D4e5".repeat(4));
        assert_eq!(r(&format!("git clone {ghp}")), "git clone [REDACTED]");
        let pat = format!("github_pat_{}", "11ABCDEFG0_abcdefghij".repeat(3));
        assert_eq!(r(&format!("t={pat}")), "t=[REDACTED]");
        assert_eq!(r(&format!("x {pat} y")), "x [REDACTED] y");
    }

    #[test]
    fn explicit_secrets() {
        let red = Redactor::new(["my-configured-key-value", "abc", "my-configured"]);
        assert_eq!(red.explicit_secrets(), 2);
        assert_eq!(
            red.redact("use my-configured-key-value and my-configured"),
            "use [REDACTED] and [REDACTED]"
        );
        // Too short to be a secret worth shredding text for.
        assert_eq!(red.redact("abc"), "abc");
    }

    #[test]
    fn ordinary_text_is_untouched() {
        for text in [
            "skip",
            "sk",
            "sk-learn",
            "task-0190abcdef0123456789",
            "ask-me-anything-about-this-thing",
            "tokens: 5",
            "input_tokens=100",
            "the secret garden",
            "passwords are hashed",
            "ls -la /etc && systemctl status nginx",
            "https://example.com:443/path?q=1",
            "AKIA",
            "ghp_short",
            "[REDACTED]",
        ] {
            assert!(
                matches!(Redactor::default().redact(text), Cow::Borrowed(t) if t == text),
                "{text} changed"
            );
        }
    }

    #[test]
    fn redaction_is_idempotent() {
        let text = "password=x Authorization: Bearer abc postgres://u:p@h sk-abcdefghijklmnopqrstu";
        let once = r(text);
        assert_eq!(r(&once), once);
        assert!(!once.contains("abc") || once.contains("[REDACTED]"));
    }

    #[test]
    fn json_strings_and_secret_keys() {
        let red = Redactor::new(["configured-secret-1"]);
        let value = json!({
            "password": "hunter2",
            "headers": {"Authorization": "Basic xyz", "x-api-key": "k-123"},
            "argv": ["curl", "-u", "configured-secret-1"],
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

    #[test]
    fn entries_are_redacted_field_by_field() {
        let red = Redactor::new(["sekrit-value"]);
        let entry = AuditEntry {
            task_id: None,
            agent: "executor".into(),
            action: "bash_command".into(),
            command: Some("curl -H 'Authorization: Bearer abcdef' https://x".into()),
            output: Some("got sekrit-value".into()),
            user: "system".into(),
            approved_by: Some("ops@example.com".into()),
            detail: json!({"token": "t"}),
        };
        let out = red.redact_entry(entry);
        assert_eq!(
            out.command.as_deref(),
            Some("curl -H 'Authorization: Bearer [REDACTED]' https://x")
        );
        assert_eq!(out.output.as_deref(), Some("got [REDACTED]"));
        assert_eq!(out.approved_by.as_deref(), Some("ops@example.com"));
        assert_eq!(out.detail, json!({"token": "[REDACTED]"}));
    }
}
