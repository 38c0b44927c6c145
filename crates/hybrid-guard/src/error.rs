//! Errors of the command policy and the guardrail engine: only building a
//! policy or a guardrail can fail; checking always yields a decision (what
//! cannot be parsed or evaluated is denied / blocked).

/// A policy that cannot be built.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum GuardError {
    /// A rule in one of the lists cannot be understood.
    #[error("policy rule `{rule}` in the {list} list: {reason}")]
    BadRule {
        /// `allow`, `deny` or `approve`.
        list: &'static str,
        /// The rule as written.
        rule: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A verdict name that is not `allow`, `deny` or `approve`.
    #[error("unknown policy verdict `{0}` (expected allow, deny or approve)")]
    BadVerdict(String),
    /// A name that is not one of a fixed set (guardrail kind, layer).
    #[error("unknown {what} `{name}` (expected one of: {valid})")]
    UnknownName {
        /// What was being named: `guardrail kind` or `guardrail layer`.
        what: &'static str,
        /// The name as written.
        name: String,
        /// The valid names, comma-separated.
        valid: String,
    },
    /// A guardrail rule that cannot be built (bad kind, layer or CEL expression).
    #[error("guardrail `{rule}`: {reason}")]
    BadGuardrail {
        /// The rule's name.
        rule: String,
        /// What is wrong with it, on one line.
        reason: String,
    },
}
