//! [`PlatformError`]: what can go wrong running a task. Every variant keeps its
//! cause (the provider's, the store's, the workflow file's error) as a source,
//! so a caller can match on it, and prints as one line.

use chrono::{DateTime, Utc};
use hybrid_agents::AgentError;
use hybrid_core::{CoreError, TaskId, TaskStatus};
use hybrid_llm::LlmError;
use hybrid_store::StoreError;
use hybrid_workflow::{TemplateError, WorkflowError};

use crate::config::ConfigError;

/// What can go wrong running a task.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
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
    /// A configured MCP server could not be used.
    #[error(transparent)]
    Mcp(#[from] hybrid_tools::McpError),
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
    /// An agent stopped without an answer (its turn limit).
    #[error(transparent)]
    Agent(AgentError),
    /// A custom agent failed.
    #[error("custom agent `{agent}`: {source}")]
    CustomAgent {
        /// The agent's registered name.
        agent: String,
        /// Its error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
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
    /// No task has that id.
    #[error("no task with id {id}")]
    TaskNotFound {
        /// The id asked for.
        id: TaskId,
    },
    /// The task cannot be resumed.
    #[error("task {task_id} {reason}")]
    NotResumable {
        /// The task.
        task_id: TaskId,
        /// Why not.
        reason: NotResumable,
    },
    /// A workflow could not be found, loaded or started (a missing input).
    #[error(transparent)]
    Workflow(#[from] WorkflowError),
    /// A stage's template or expression failed at run time.
    #[error("{workflow}: stage `{stage}` (line {line}): {source}")]
    Template {
        /// The workflow.
        workflow: String,
        /// The stage.
        stage: String,
        /// The stage's line in its file.
        line: usize,
        /// What failed.
        #[source]
        source: TemplateError,
    },
    /// A workflow stage failed (a runbook command, a tool, an answer that is
    /// not the JSON the stage asks for).
    #[error("workflow: stage `{stage}` failed: {message}")]
    StageFailed {
        /// The stage.
        stage: String,
        /// What failed, in one line.
        message: String,
    },
    /// A workflow's check or approval said no.
    #[error("rejected at stage {stage}: {message}")]
    Rejected {
        /// The stage that decided.
        stage: String,
        /// Why.
        message: String,
    },
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

/// Why a task cannot be resumed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NotResumable {
    /// It ended completed or blocked.
    #[error("is {0}: nothing to resume")]
    Finished(TaskStatus),
    /// A live process holds its lease.
    #[error(
        "is being run by {} (lease until {}); wait for it, or resume with --force if that \
         process is gone",
        owner.as_deref().unwrap_or("another process"),
        until.map(|t| t.to_rfc3339()).unwrap_or_else(|| "unknown".into())
    )]
    Held {
        /// Who holds it, when known.
        owner: Option<String>,
        /// Until when, when known.
        until: Option<DateTime<Utc>>,
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
