//! [`RunOptions`]: how to run one task; [`DryRun`]: what a dry run found.

use std::path::PathBuf;
use std::sync::Arc;

use hybrid_core::Event;
use hybrid_tools::{Limits, SandboxPolicy};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::approval::Approver;

/// How to run one task.
#[derive(Clone, Default)]
pub struct RunOptions {
    /// Skip the router and use this platform.
    pub platform: Option<String>,
    /// Cancel to stop the run; the task is then recorded `cancelled`.
    pub cancel: CancellationToken,
    /// The task's workspace, where tools run (default: the current directory).
    pub workdir: Option<PathBuf>,
    /// Who answers approvals (default: nobody, so calls that need one are refused).
    pub approver: Option<Arc<dyn Approver>>,
    /// Bounds on each tool call (default: [`Limits::default`]).
    pub tool_limits: Option<Limits>,
    /// What commands may do beyond the workspace, for agents' tools and
    /// workflow `runbook` / `tool` stages alike (default: no network, no
    /// extra writable paths).
    pub sandbox: SandboxPolicy,
    /// Where every event of the run goes as it happens, redacted (text
    /// deltas, tool calls, approvals, the result last); default: nowhere
    /// but the store. [`HybridPlatform::run_streaming`](crate::HybridPlatform::run_streaming)
    /// sets it for you.
    pub events: Option<mpsc::Sender<Event>>,
}

impl std::fmt::Debug for RunOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunOptions")
            .field("platform", &self.platform)
            .field("workdir", &self.workdir)
            .field("approver", &self.approver.is_some())
            .field("sandbox", &self.sandbox)
            .field("events", &self.events.is_some())
            .finish_non_exhaustive()
    }
}

/// What a dry run found: where the task would go and what L1 and L2 decide.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DryRun {
    /// The routing decision.
    pub route: hybrid_core::RouteInfo,
    /// L1 (input) guardrails.
    pub input: hybrid_guard::Decision,
    /// L2 (platform) guardrails.
    pub platform: hybrid_guard::Decision,
}

impl DryRun {
    /// Whether the task would be stopped before any model call.
    pub fn is_blocked(&self) -> bool {
        self.input.is_blocked() || self.platform.is_blocked()
    }
}
