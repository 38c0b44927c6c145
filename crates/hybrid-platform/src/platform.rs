//! The [`Platform`] trait: something that can run a task as one stage, and the
//! registry that holds platforms by name.

use std::sync::Arc;

use async_trait::async_trait;
use hybrid_core::{StageResult, Task};
use indexmap::IndexMap;

use crate::{PlatformError, RunContext};

/// What a platform can do, for routing and display.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// Runs bash and touches files.
    pub system_access: bool,
    /// Calls tools.
    pub tools: bool,
    /// Streams text.
    pub streaming: bool,
}

/// One workflow stage for a platform: which agent, saying what.
#[derive(Debug, Clone, Copy)]
pub struct StageRequest<'a> {
    /// The task the workflow runs for.
    pub task: &'a Task,
    /// The agent (a role: `coordinator`, `executor`, …).
    pub agent: &'a str,
    /// The rendered prompt.
    pub prompt: &'a str,
    /// Tools instead of the agent's (names or `mcp:server:*` patterns).
    pub tools: Option<&'a [String]>,
    /// Mark the stable prompt prefix for the provider's prompt cache.
    pub cache_prompt: bool,
}

/// A place a task can run: one agent on one provider, a custom integration, …
#[async_trait]
pub trait Platform: Send + Sync + std::fmt::Debug {
    /// Its registry name.
    fn id(&self) -> &str;

    /// What it can do.
    fn capabilities(&self) -> Capabilities;

    /// The model it uses, when it has one.
    fn model(&self) -> Option<&str> {
        None
    }

    /// The agent (role) that will run `task` here.
    fn agent_for(&self, _task: &Task) -> String {
        self.id().to_owned()
    }

    /// What running `task` here would cost at most for its first model call
    /// (the prompt counted, the output cap assumed spent), when it can tell.
    /// Feeds `task.estimated_cost` to the platform-layer guardrails when the
    /// task has none.
    fn estimate_cost(&self, _task: &Task) -> Option<hybrid_core::Money> {
        None
    }

    /// Runs the task as one stage, reporting through `ctx`.
    async fn execute(&self, task: &Task, ctx: &RunContext) -> Result<StageResult, PlatformError>;

    /// Runs one workflow stage: `request.agent` answering `request.prompt`.
    /// By default the prompt becomes the task's description.
    async fn execute_stage(
        &self,
        request: StageRequest<'_>,
        ctx: &RunContext,
    ) -> Result<StageResult, PlatformError> {
        let mut task = request.task.clone();
        task.description = request.prompt.to_owned();
        self.execute(&task, ctx).await
    }
}

/// Platforms by name, in registration order.
#[derive(Debug, Clone, Default)]
pub struct PlatformRegistry {
    platforms: IndexMap<String, Arc<dyn Platform>>,
}

impl PlatformRegistry {
    /// Adds or replaces a platform under its id.
    pub fn insert(&mut self, platform: Arc<dyn Platform>) {
        self.platforms.insert(platform.id().to_owned(), platform);
    }

    /// The platform with this name.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn Platform>> {
        self.platforms.get(name)
    }

    /// The names, in order.
    pub fn names(&self) -> Vec<&str> {
        self.platforms.keys().map(String::as_str).collect()
    }

    /// Looks a platform up, or says which exist.
    pub fn require(&self, name: &str) -> Result<Arc<dyn Platform>, PlatformError> {
        self.get(name)
            .cloned()
            .ok_or_else(|| PlatformError::UnknownPlatform {
                name: name.to_owned(),
                known: self.names().join(", "),
            })
    }
}
