//! Errors of the command policy: only building a policy can fail; checking a
//! command line always yields a decision (what cannot be parsed is denied).

/// A policy that cannot be built.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
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
}
