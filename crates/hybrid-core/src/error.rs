//! Errors raised by the core types' validating constructors.

use crate::status::TaskStatus;

/// A value that breaks one of the core types' rules.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CoreError {
    /// A priority outside `1..=5`.
    #[error("priority must be between 1 and 5 (5 highest), got {0}")]
    InvalidPriority(i64),
    /// A task type name that is not one of the known types.
    #[error(
        "unknown task type `{0}` (expected one of: conversation, analysis, system_operation, research, code_review, incident_response)"
    )]
    UnknownTaskType(String),
    /// A status name that is not one of the known statuses.
    #[error("unknown task status `{0}`")]
    UnknownStatus(String),
    /// A status change the state machine does not allow.
    #[error("illegal task status transition {from} -> {to}")]
    IllegalTransition {
        /// The status the task is in.
        from: TaskStatus,
        /// The status that was asked for.
        to: TaskStatus,
    },
    /// A money amount that is negative, not finite, or too large.
    #[error("invalid amount of money: {0}")]
    InvalidMoney(String),
}
