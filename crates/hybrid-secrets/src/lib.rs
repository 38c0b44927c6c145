//! HybridPlatform's one secrets module: which text is a secret, and how it leaves every
//! record and every screen.
//!
//! Everything that is written to the store, printed, streamed to a subscriber or judged by
//! the `secrets_in_output` guardrail goes through the same table of patterns, so what the
//! guardrail detects is always also what redaction removes.
//!
//! | module | what it holds | used by |
//! | --- | --- | --- |
//! | [`patterns`] | the credential patterns ([`Pattern`], [`patterns()`]), secret JSON keys ([`is_secret_key`]) and environment variable names ([`is_secret_name`]) | all below |
//! | [`redactor`] | [`Redactor`]: redaction of text and JSON with the patterns and the configured secret values; [`Redactor::detect`] for the guardrail | the store's write boundary, the platform's event sink and results, the audit trail, the CLI, the guardrail |
//! | [`stream`] | [`StreamRedactor`]: redaction of text that arrives in pieces (streamed model output) | the platform's event sink |
//! | [`redact`] | [`Redact`]: records redacted in place, field by field | hybrid-core's tasks, events and results |
//!
//! The sandbox uses [`is_secret_name`] to keep such variables out of a command's
//! environment.
//!
//! ```
//! use hybrid_secrets::Redactor;
//! let r = Redactor::default();
//! assert_eq!(r.redact("token=ghp_0123456789abcdefghijABCDEFGHIJ0123"), "token=[REDACTED]");
//! assert_eq!(r.detect("sk-ant-api03-0123456789abcdefABCDEF").map(|f| f.kind), Some("openai_anthropic_key"));
//! assert_eq!(r.detect("plain text"), None);
//! ```

pub mod patterns;
pub mod redact;
pub mod redactor;
pub mod stream;

pub use patterns::{Pattern, is_secret_key, is_secret_name, pattern_count, patterns};
pub use redact::Redact;
pub use redactor::{Finding, MIN_SECRET_LEN, REDACTED, Redactor};
pub use stream::StreamRedactor;
