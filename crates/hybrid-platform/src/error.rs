//! Errors of the platform facade.

use hybrid_core::{CoreError, TaskId, TaskStatus};
use hybrid_llm::LlmError;
use hybrid_store::StoreError;

use crate::config::ConfigError;

/// What can go wrong running a task.
#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    /// A model provider failed.
    #[error(transparent)]
    Llm(#[from] LlmError),
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A core rule was broken (an illegal transition, a bad value).
    #[error(transparent)]
    Core(#[from] CoreError),
    /// No platform has that name.
    #[error("unknown platform `{name}` (registered: {known})")]
    UnknownPlatform {
        /// The name asked for.
        name: String,
        /// The names that exist.
        known: String,
    },
    /// An agent stopped without an answer (e.g. its turn limit).
    #[error("{0}")]
    Agent(String),
    /// A guardrail stopped the run.
    #[error("blocked by guardrail {guardrail} at the {layer} layer: {message}")]
    Blocked {
        /// The guardrail.
        guardrail: String,
        /// The layer.
        layer: String,
        /// Its message.
        message: String,
    },
    /// The run was cancelled.
    #[error("cancelled")]
    Cancelled,
    /// No such task.
    #[error("{0}")]
    NotFound(String),
    /// The task cannot be resumed (finished, or held by a live process).
    #[error("{0}")]
    NotResumable(String),
    /// A workflow file that cannot be used (one line: file, line, key).
    #[error("{0}")]
    InvalidWorkflow(String),
    /// A workflow stage failed.
    #[error("workflow: {0}")]
    Workflow(String),
    /// A workflow's check or approval said no.
    #[error("rejected at stage {stage}: {message}")]
    Rejected {
        /// The stage that decided.
        stage: String,
        /// Why.
        message: String,
    },
    /// Something this build cannot do.
    #[error("{0}")]
    Unsupported(String),
    /// The task ran and ended without completing; it is recorded in the store.
    #[error("task {task_id} {status}: {source}")]
    Task {
        /// The task.
        task_id: TaskId,
        /// Its final status.
        status: TaskStatus,
        /// Why.
        #[source]
        source: Box<PlatformError>,
    },
}

impl PlatformError {
    /// The innermost cause (unwraps [`PlatformError::Task`]).
    pub fn root(&self) -> &PlatformError {
        match self {
            PlatformError::Task { source, .. } => source.root(),
            other => other,
        }
    }
}
