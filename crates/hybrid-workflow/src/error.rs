//! The crate's errors. Every problem in a workflow file is one line of the
//! form `FILE:LINE: KEY: problem`, so a person can jump to it and a script can
//! parse it.

use std::path::PathBuf;

/// Why a workflow could not be loaded, found or used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WorkflowError {
    /// The file is not valid YAML.
    #[error("{file}:{line}: invalid YAML: {message}")]
    Syntax {
        /// The file, as the caller named it.
        file: String,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A key of the file has a bad value, is unknown, or refers to something
    /// that does not exist.
    #[error("{file}:{line}: {key}: {message}")]
    Invalid {
        /// The file, as the caller named it.
        file: String,
        /// 1-based line of the key (or of the nearest enclosing key).
        line: usize,
        /// The key's path, e.g. `stages[2].approval.timeout`.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// The file could not be read.
    #[error("{}: {message}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The I/O error's kind.
        kind: std::io::ErrorKind,
        /// The I/O error, as text.
        message: String,
    },
    /// No workflow with this name (and no such file).
    #[error("no workflow named `{name}` (known: {known})")]
    NotFound {
        /// What was asked for.
        name: String,
        /// Comma-separated known names.
        known: String,
    },
    /// A required input has no value in the task's context.
    #[error(
        "workflow `{workflow}`: input `{input}` is required and missing (pass --context {input}=VALUE)"
    )]
    MissingInput {
        /// The workflow's name.
        workflow: String,
        /// The input's name.
        input: String,
    },
    /// A template or expression failed while rendering (at run time).
    #[error("{0}")]
    Template(#[from] crate::template::TemplateError),
}

impl WorkflowError {
    /// The 1-based line for errors that point into a file.
    pub fn line(&self) -> Option<usize> {
        match self {
            WorkflowError::Syntax { line, .. } | WorkflowError::Invalid { line, .. } => Some(*line),
            _ => None,
        }
    }

    /// The key path for errors about one key.
    pub fn key(&self) -> Option<&str> {
        match self {
            WorkflowError::Invalid { key, .. } => Some(key),
            _ => None,
        }
    }

    /// `true` for "no such workflow" (exit code 8 in the CLI), `false` for a
    /// bad file.
    pub fn is_not_found(&self) -> bool {
        match self {
            WorkflowError::NotFound { .. } => true,
            WorkflowError::Io { kind, .. } => *kind == std::io::ErrorKind::NotFound,
            _ => false,
        }
    }
}
