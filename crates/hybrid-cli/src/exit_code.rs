//! Exit codes: each kind of failure has its own, so scripts can tell them apart.
//!
//! | code | meaning |
//! | --- | --- |
//! | 0 | success |
//! | 1 | the task failed for another reason (provider server error, bad response) |
//! | 2 | bad command-line input (unknown flag or value, bad `--context-file`) |
//! | 3 | bad configuration file |
//! | 4 | missing or rejected API key |
//! | 5 | provider unreachable, timed out, rate limited or overloaded after retries |
//! | 6 | the provider refused the request (context too long, invalid request) |
//! | 7 | database error |
//! | 8 | not found (no such task) |
//! | 9 | (unused: was "not supported by this build"; kept free so scripts do not misread it) |
//! | 10 | `audit verify`: the audit chain is broken |
//! | 11 | a guardrail blocked the task (the message names it and the layer) |
//! | 130 | cancelled (Ctrl-C) |

use hybrid_llm::LlmError;
use hybrid_platform::PlatformError;
use hybrid_workflow::WorkflowError;

/// Success.
pub const OK: u8 = 0;
/// Task failed, other.
pub const TASK_FAILED: u8 = 1;
/// Bad command line.
pub const USAGE: u8 = 2;
/// Bad config file.
pub const CONFIG: u8 = 3;
/// Credentials.
pub const AUTH: u8 = 4;
/// Provider unreachable or busy.
pub const UNAVAILABLE: u8 = 5;
/// Provider refused the request.
pub const REJECTED: u8 = 6;
/// Database.
pub const STORE: u8 = 7;
/// Not found.
pub const NOT_FOUND: u8 = 8;
/// The audit chain failed verification.
pub const AUDIT_BROKEN: u8 = 10;
/// A guardrail blocked the task.
pub const BLOCKED: u8 = 11;
/// Cancelled.
pub const CANCELLED: u8 = 130;

/// The exit code for a platform error.
pub fn for_platform_error(e: &PlatformError) -> u8 {
    match e.root() {
        PlatformError::Llm(l) => for_llm_error(l),
        PlatformError::Store(_) => STORE,
        PlatformError::Config(_) => CONFIG,
        PlatformError::Core(_) => USAGE,
        PlatformError::UnknownPlatform { .. } => USAGE,
        PlatformError::Cancelled => CANCELLED,
        PlatformError::Blocked { .. } => BLOCKED,
        PlatformError::Rejected { .. } => REJECTED,
        PlatformError::Mcp(_) => UNAVAILABLE,
        PlatformError::TaskNotFound { .. } => NOT_FOUND,
        PlatformError::NotResumable { .. } => USAGE,
        PlatformError::Workflow(w) if w.is_not_found() => NOT_FOUND,
        PlatformError::Workflow(
            WorkflowError::Syntax { .. } | WorkflowError::Invalid { .. } | WorkflowError::Io { .. },
        ) => CONFIG,
        PlatformError::Workflow(_)
        | PlatformError::Template { .. }
        | PlatformError::StageFailed { .. }
        | PlatformError::CustomAgent { .. }
        | PlatformError::Task { .. }
        | PlatformError::Agent(_) => TASK_FAILED,
        _ => TASK_FAILED,
    }
}

/// The exit code for a provider error.
pub fn for_llm_error(e: &LlmError) -> u8 {
    match e {
        LlmError::MissingApiKey { .. } | LlmError::Authentication { .. } => AUTH,
        LlmError::Connection { .. }
        | LlmError::Timeout { .. }
        | LlmError::StreamIdle { .. }
        | LlmError::RateLimited { .. }
        | LlmError::Overloaded { .. } => UNAVAILABLE,
        LlmError::ContextTooLong { .. } | LlmError::InvalidRequest { .. } => REJECTED,
        LlmError::Config { .. } => CONFIG,
        _ => TASK_FAILED,
    }
}
