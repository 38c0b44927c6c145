//! The built-in workflows, embedded from `workflows/*.yaml` at build time so
//! an installed binary has them without the source tree.

use crate::error::WorkflowError;
use crate::load::parse;
use crate::validate::{ValidateOptions, validate};
use crate::workflow::{Workflow, WorkflowSource};

/// A built-in workflow file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Builtin {
    /// The workflow's name (also the file's stem).
    pub name: &'static str,
    /// The file name, e.g. `incident-response.yaml`.
    pub file: &'static str,
    /// The YAML text.
    pub text: &'static str,
}

/// Every built-in, in a stable order.
pub const BUILTINS: &[Builtin] = &[
    Builtin {
        name: "plan-execute-verify",
        file: "plan-execute-verify.yaml",
        text: include_str!("../../../workflows/plan-execute-verify.yaml"),
    },
    Builtin {
        name: "incident-response",
        file: "incident-response.yaml",
        text: include_str!("../../../workflows/incident-response.yaml"),
    },
    Builtin {
        name: "code-review-deploy",
        file: "code-review-deploy.yaml",
        text: include_str!("../../../workflows/code-review-deploy.yaml"),
    },
];

/// The built-in with this name.
pub fn builtin(name: &str) -> Option<&'static Builtin> {
    BUILTINS.iter().find(|b| b.name == name)
}

impl Builtin {
    /// Parses and validates it. Errors name `workflows/FILE`.
    pub fn load(&self, options: &ValidateOptions) -> Result<Workflow, WorkflowError> {
        let parsed = parse(&format!("workflows/{}", self.file), self.text)?;
        validate(&parsed, options, WorkflowSource::Builtin)
    }
}
