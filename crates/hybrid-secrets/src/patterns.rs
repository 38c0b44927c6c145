//! The credential patterns: one table, used for redaction and for detection alike.
//!
//! Each pattern's capture groups are the secret; the rest of its match (a label such as
//! `Bearer `, `password=`, `postgres://user:` or a PEM header) is context that stays. A
//! pattern is also *detected* (by the `secrets_in_output` guardrail) when its secret is at
//! least [`Pattern::detect_min_len`] bytes long; detection never sees more than redaction
//! removes, because both run the same regex over the same text.
//!
//! | kind | what | example |
//! | --- | --- | --- |
//! | `url_password` | the password in a URL | `postgres://app:S3cret@db/prod` |
//! | `authorization_header` | an `Authorization:` / `Proxy-Authorization:` value | `Authorization: Basic dXNlcjpwYXNz` |
//! | `bearer_token` | a bearer token anywhere | `Bearer eyJhbGciOi…` |
//! | `private_key` | the body of a PEM private key (to its `END` line, or the end of the text) | `-----BEGIN RSA PRIVATE KEY-----…` |
//! | `jwt` | a JSON Web Token | `eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig…` |
//! | `openai_anthropic_key` | OpenAI and Anthropic API keys | `sk-proj-…`, `sk-ant-api03-…` |
//! | `aws_access_key_id` | AWS access key ids | `AKIAIOSFODNN7EXAMPLE` |
//! | `github_token` | GitHub classic and app tokens | `ghp_…`, `gho_…`, `ghs_…` |
//! | `github_fine_grained_token` | GitHub fine-grained tokens | `github_pat_11AB…` |
//! | `slack_token` | Slack bot, user and app tokens | `xoxb-…`, `xoxp-…` |
//! | `google_api_key` | Google API keys | `AIzaSy…` |
//! | `stripe_secret_key` | Stripe secret and restricted keys | `sk_live_…`, `rk_live_…` |
//! | `npm_token` | npm access tokens | `npm_…` |
//! | `secret_assignment` | `key=value` / `key: value` where the key names a secret | `password=`, `api_key:`, `AWS_SECRET_ACCESS_KEY=`, `"token": "…"` |

use std::sync::LazyLock;

use regex::{Regex, RegexSet};

/// One credential pattern.
#[derive(Debug)]
pub struct Pattern {
    /// A short name (`openai_anthropic_key`), as guardrail decisions and tests name it.
    pub kind: &'static str,
    /// What it finds, in words (`OpenAI or Anthropic API key`).
    pub what: &'static str,
    /// The regex; its participating capture groups are the secret.
    pub regex: Regex,
    /// Detection counts a match only when its secret has at least this many bytes
    /// (`usize::MAX`: redacted, never detected).
    pub detect_min_len: usize,
}

/// `(kind, what, regex, detect_min_len)`, in the order they are applied.
const TABLE: &[(&str, &str, &str, usize)] = &[
    (
        "private_key",
        "private key",
        r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----([\s\S]*?)(?:-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|\z)",
        0,
    ),
    (
        "url_password",
        "credential in URL",
        r"(?i)\b[a-z][a-z0-9+.\-]*://[^\s/:@]+:([^\s/@]+)@",
        1,
    ),
    (
        "authorization_header",
        "Authorization header",
        r#"(?i)\b(?:proxy-)?authorization["']?\s*[:=]\s*["']?(?:(?:basic|bearer|token|digest|negotiate)\s+)?([^\s"',;]+)"#,
        8,
    ),
    (
        "bearer_token",
        "bearer token",
        r"(?i)\bbearer\s+([A-Za-z0-9\-._~+/]+=*)",
        20,
    ),
    (
        "jwt",
        "JSON Web Token",
        r"\b(eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]*)",
        0,
    ),
    (
        "openai_anthropic_key",
        "OpenAI or Anthropic API key",
        r"\b(sk-[A-Za-z0-9_\-]{16,})",
        0,
    ),
    (
        "aws_access_key_id",
        "AWS access key id",
        r"\b((?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16})\b",
        0,
    ),
    (
        "github_token",
        "GitHub token",
        r"\b(gh[pousr]_[A-Za-z0-9]{30,})",
        0,
    ),
    (
        "github_fine_grained_token",
        "GitHub fine-grained token",
        r"\b(github_pat_[A-Za-z0-9_]{22,})",
        0,
    ),
    (
        "slack_token",
        "Slack token",
        r"\b(xox[abposr]-[A-Za-z0-9\-]{10,}|xapp-[A-Za-z0-9\-]{10,})",
        0,
    ),
    (
        "google_api_key",
        "Google API key",
        r"\b(AIza[0-9A-Za-z_\-]{35})",
        0,
    ),
    (
        "stripe_secret_key",
        "Stripe secret key",
        r"\b((?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,})",
        0,
    ),
    ("npm_token", "npm token", r"\b(npm_[A-Za-z0-9]{36})\b", 0),
    (
        "secret_assignment",
        "password or key assignment",
        r#"(?i)\b[A-Za-z0-9_.\-]*(?:password|passwd|secret|token|api[_\-]?key|access[_\-]?key|private[_\-]?key)(?:[_\-]?(?:access[_\-]?)?key)?["']?\s*[:=]\s*(?:"([^"\r\n]*)(?:"|\z)|'([^'\r\n]*)(?:'|\z)|([^\s"'&,;]+))"#,
        8,
    ),
];

/// JSON object keys (and HTTP header names) whose string values are secrets as a whole.
const SECRET_KEY: &str = r"(?i)^[A-Za-z0-9_.\-]*(?:password|passwd|secret|token|api[_\-]?key|access[_\-]?key|private[_\-]?key|authorization|credentials?|cookie)(?:[_\-]?(?:access[_\-]?)?key)?$";

/// The compiled table; a pattern that does not compile is left out (a test proves none is).
pub(crate) struct Compiled {
    pub(crate) patterns: Vec<Pattern>,
    /// The same regexes, for one pass that tells which of them match at all.
    pub(crate) set: RegexSet,
    pub(crate) secret_key: Option<Regex>,
}

pub(crate) static COMPILED: LazyLock<Compiled> = LazyLock::new(|| {
    let patterns: Vec<Pattern> = TABLE
        .iter()
        .filter_map(|(kind, what, regex, detect_min_len)| {
            Regex::new(regex).ok().map(|regex| Pattern {
                kind,
                what,
                regex,
                detect_min_len: *detect_min_len,
            })
        })
        .collect();
    let set = RegexSet::new(patterns.iter().map(|p| p.regex.as_str()))
        .unwrap_or_else(|_| RegexSet::empty());
    Compiled {
        patterns,
        set,
        secret_key: Regex::new(SECRET_KEY).ok(),
    }
});

/// Every built-in pattern, compiled, in the order they are applied.
pub fn patterns() -> &'static [Pattern] {
    &COMPILED.patterns
}

/// How many patterns the table holds (all of them compile: see the tests).
pub fn pattern_count() -> usize {
    TABLE.len()
}

/// Whether a JSON object key or header name names a secret (`password`, `api_key`,
/// `Authorization`, `x-api-key`, `client_secret` …), so that its whole value is one.
pub fn is_secret_key(key: &str) -> bool {
    COMPILED
        .secret_key
        .as_ref()
        .is_some_and(|re| re.is_match(key))
}

/// Whether an environment variable's name says it holds a secret: `*_KEY`, `*_TOKEN`,
/// `*SECRET*`, `*PASSWORD*`, `*CREDENTIAL*`, `AWS_*` … (`OPENAI_API_KEY`,
/// `GITHUB_TOKEN`, `DATABASE_PASSWORD`, `GOOGLE_APPLICATION_CREDENTIALS`). The sandbox
/// passes no such variable to a command.
pub fn is_secret_name(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    upper.ends_with("_KEY")
        || upper.ends_with("APIKEY")
        || upper.ends_with("_TOKEN")
        || upper == "TOKEN"
        || upper.contains("SECRET")
        || upper.contains("PASSWORD")
        || upper.contains("PASSWD")
        || upper.contains("CREDENTIAL")
        || upper.starts_with("AWS_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pattern_compiles() {
        assert_eq!(patterns().len(), TABLE.len());
        assert_eq!(COMPILED.set.len(), TABLE.len());
        assert!(COMPILED.secret_key.is_some());
        let mut kinds: Vec<&str> = patterns().iter().map(|p| p.kind).collect();
        kinds.sort_unstable();
        kinds.dedup();
        assert_eq!(kinds.len(), TABLE.len(), "kinds are unique");
        for p in patterns() {
            assert!(p.regex.captures_len() > 1, "{} has no secret group", p.kind);
        }
    }

    #[test]
    fn secret_names() {
        for name in [
            "OPENAI_API_KEY",
            "ANTHROPIC_API_KEY",
            "openai_api_key",
            "GITHUB_TOKEN",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "DB_PASSWORD",
            "CLIENT_SECRET",
            "GOOGLE_APPLICATION_CREDENTIALS",
            "STRIPE_APIKEY",
            "LOGFIRE_TOKEN",
        ] {
            assert!(is_secret_name(name), "{name}");
        }
        for name in ["PATH", "HOME", "LANG", "RUST_LOG", "CARGO_HOME", "GREETING"] {
            assert!(!is_secret_name(name), "{name}");
        }
    }

    #[test]
    fn secret_keys() {
        for key in [
            "password",
            "api_key",
            "Authorization",
            "x-api-key",
            "client_secret",
            "token",
            "AWS_SECRET_ACCESS_KEY",
            "credentials",
            "Cookie",
        ] {
            assert!(is_secret_key(key), "{key}");
        }
        for key in [
            "input_tokens",
            "tokens",
            "max_tokens",
            "keys",
            "name",
            "secrets_found",
        ] {
            assert!(!is_secret_key(key), "{key}");
        }
    }
}
