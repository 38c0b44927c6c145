//! [`Services`]: what every run uses, and the steps that single-platform runs
//! and workflows both take with it.
//!
//! The facade ([`HybridPlatform`](crate::HybridPlatform)) owns one; the
//! workflow engine ([`workflow`](crate::workflow)) borrows it for a run.
//! Neither reaches into the other, so the dependency goes one way:
//! `run → services ← workflow`.
//!
//! | holds | for |
//! | --- | --- |
//! | the store and the redactor | every write, event and result |
//! | platforms, custom agents, tools | what a stage runs on |
//! | the command policy, guardrails, budgets, rate limits | the gates of every stage |
//! | the stage cache | workflow stages with `cache:` |
//!
//! | step | what it does |
//! | --- | --- |
//! | [`Services::check`] | one guardrail layer (L1, L2 or L4); an error stops the run |
//! | [`Services::execute_on_platform`] | one stage on a platform behind its gates, then L4 |
//! | [`Services::commit_stage`] | a finished stage: redacted, stored, announced |
//! | [`Services::queue_stage`] | the same, committed with the run's next write |
//!
//! Platforms and guardrails can be added while runs are going on; they are
//! swapped in whole ([`ArcSwap`]), so a run reads one consistent set and
//! there is no lock to poison.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;
use hybrid_core::{EventKind, StageResult, Task, TaskStatus};
use hybrid_guard::{CommandPolicy, GuardContext, Guardrail, GuardrailEngine, Layer, RateLimits};
use hybrid_secrets::{Redact, Redactor};
use hybrid_store::{Store, StoreWrite};
use hybrid_tools::ToolRegistry;

use crate::PlatformError;
use crate::approval::{ApprovalContext, NoApprover};
use crate::context::{EventSink, RunContext};
use crate::custom_agent::CustomAgent;
use crate::gates::guardrail_layers;
use crate::gates::model_calls::MeteredModelGate;
use crate::gates::tool_calls::PolicyGate;
use crate::limits::Budgets;
use crate::platform::{Platform, PlatformRegistry, StageRequest};
use crate::run::{RouteDecision, Router, RunOptions};
use crate::workflow::cache::StageCache;

/// What every run uses; see the [module docs](self).
#[derive(Debug)]
pub(crate) struct Services {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) router: Arc<dyn Router>,
    pub(crate) platforms: ArcSwap<PlatformRegistry>,
    pub(crate) policy: Arc<CommandPolicy>,
    pub(crate) redactor: Redactor,
    pub(crate) guardrails: ArcSwap<GuardrailEngine>,
    pub(crate) budgets: Budgets,
    pub(crate) rates: Option<Arc<RateLimits>>,
    pub(crate) tools: Arc<ToolRegistry>,
    pub(crate) custom_agents: ArcSwap<CustomAgents>,
    pub(crate) stage_cache: StageCache,
}

/// Custom agents by name.
#[derive(Clone, Default)]
pub(crate) struct CustomAgents(pub(crate) HashMap<String, Arc<dyn CustomAgent>>);

impl std::fmt::Debug for CustomAgents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<&String> = self.0.keys().collect();
        names.sort();
        f.debug_tuple("CustomAgents").field(&names).finish()
    }
}

impl Services {
    /// The platforms now.
    pub(crate) fn registry(&self) -> Arc<PlatformRegistry> {
        self.platforms.load_full()
    }

    /// Adds or replaces a platform.
    pub(crate) fn register_platform(&self, platform: Arc<dyn Platform>) {
        self.platforms.rcu(|registry| {
            let mut registry = PlatformRegistry::clone(registry);
            registry.insert(Arc::clone(&platform));
            registry
        });
    }

    /// The guardrails now.
    pub(crate) fn guardrails(&self) -> Arc<GuardrailEngine> {
        self.guardrails.load_full()
    }

    /// Adds a guardrail; runs from then on.
    pub(crate) fn add_guardrail(&self, guardrail: Guardrail) {
        self.guardrails.rcu(|engine| {
            let mut engine = GuardrailEngine::clone(engine);
            engine.add_guardrail(guardrail.clone());
            engine
        });
    }

    /// Registers a custom agent.
    pub(crate) fn register_agent(&self, name: String, agent: Arc<dyn CustomAgent>) {
        self.custom_agents.rcu(|agents| {
            let mut agents = CustomAgents::clone(agents);
            agents.0.insert(name.clone(), Arc::clone(&agent));
            agents
        });
    }

    /// The custom agent registered as `name`.
    pub(crate) fn custom_agent(&self, name: &str) -> Option<Arc<dyn CustomAgent>> {
        self.custom_agents.load().0.get(name).cloned()
    }

    /// Names of the registered custom agents, sorted.
    pub(crate) fn custom_agent_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.custom_agents.load().0.keys().cloned().collect();
        names.sort();
        names
    }

    /// The platform registered as `name`.
    pub(crate) fn platform_named(&self, name: &str) -> Result<Arc<dyn Platform>, PlatformError> {
        self.registry().require(name)
    }

    /// Registered platform names, in order.
    pub(crate) fn platform_names(&self) -> Vec<String> {
        self.registry()
            .names()
            .into_iter()
            .map(str::to_owned)
            .collect()
    }

    /// The tool workflow stages call by `name`.
    pub(crate) fn tool_named(&self, name: &str) -> Option<Arc<dyn hybrid_tools::Tool>> {
        self.tools.get(name)
    }

    /// The router's decision for a task.
    pub(crate) fn route(&self, task: &Task) -> RouteDecision {
        self.router.route(task, &self.registry().names())
    }

    /// Runs one guardrail layer; an error stops the run.
    pub(crate) async fn check(
        &self,
        layer: Layer,
        ctx: &GuardContext,
        t: &Run<'_>,
    ) -> Result<(), PlatformError> {
        let engine = self.guardrails();
        if engine.at(layer).next().is_none() {
            return Ok(());
        }
        let approver = t
            .options
            .approver
            .clone()
            .unwrap_or_else(|| Arc::new(NoApprover));
        let approval = ApprovalContext {
            events: t.sink.clone(),
            cancel: t.options.cancel.clone(),
        };
        guardrail_layers::check_layer(&engine, layer, ctx, &t.sink, approver.as_ref(), &approval)
            .await
    }

    /// The tool gate of a stage (policy, L3 guardrails, approvals, tool rate
    /// limits) for `task`.
    pub(crate) fn tool_gate(&self, task: &Task, t: &Run<'_>) -> PolicyGate {
        let approver = t
            .options
            .approver
            .clone()
            .unwrap_or_else(|| Arc::new(NoApprover));
        PolicyGate::new(
            self.policy.clone(),
            approver,
            t.sink.clone(),
            t.options.cancel.clone(),
        )
        .with_guardrails(self.guardrails(), task.clone())
        .with_rate_limits(self.rates.clone())
    }

    /// Runs `platform` for one stage (the task, or a workflow stage's
    /// `request`) behind the run's gates, then the output guardrails;
    /// nothing is committed.
    pub(crate) async fn execute_on_platform(
        &self,
        task: &Task,
        platform: &dyn Platform,
        stage: &str,
        request: Option<StageRequest<'_>>,
        t: &Run<'_>,
    ) -> Result<StageResult, PlatformError> {
        let options = t.options;
        let engine = self.guardrails();
        let gate = self.tool_gate(task, t);
        let model_gate = MeteredModelGate::new(
            self.budgets,
            self.rates.clone(),
            task,
            platform.id(),
            stage,
            t.sink.clone(),
        );
        // Text is held back only when someone is watching the stream and an
        // output guardrail asks for it.
        let held = (t.sink.has_subscriber() && engine.holds_output())
            .then(|| Arc::new(tokio::sync::Mutex::new(Vec::new())));
        let ctx = RunContext {
            stage: stage.to_owned(),
            events: t.sink.clone(),
            cancel: options.cancel.clone(),
            workdir: t.workdir(),
            tool_limits: options.tool_limits.clone().unwrap_or_default(),
            sandbox: options.sandbox.clone(),
            gate: Arc::new(gate),
            model_gate: Arc::new(model_gate),
            held_deltas: held.clone(),
        };
        let result = tokio::select! {
            r = async {
                match request {
                    Some(request) => platform.execute_stage(request, &ctx).await,
                    None => platform.execute(task, &ctx).await,
                }
            } => r?,
            () = options.cancel.cancelled() => return Err(PlatformError::Cancelled),
        };
        let output = GuardContext::for_task(task)
            .with_stage(stage, result.agent.clone(), result.platform.clone())
            .with_stage_result(stage, &result);
        self.check(Layer::Output, &output, t).await?;
        if let Some(held) = held {
            // Passed: release what was kept back, as one delta.
            let text: String = held.lock().await.concat();
            if !text.is_empty() {
                t.sink.emit_text_block(stage, &text).await?;
            }
        }
        Ok(result)
    }

    /// Commits a finished stage, then tells subscribers. Returns the stage as
    /// committed: redacted, as later stages and the result see it (the same as
    /// a resumed run reads it back).
    pub(crate) async fn commit_stage(
        &self,
        task: &Task,
        stage: &str,
        position: u32,
        result: StageResult,
        t: &Run<'_>,
    ) -> Result<StageResult, PlatformError> {
        let result = self.queue_stage(task, stage, position, result, t).await?;
        t.sink.flush().await?;
        Ok(result)
    }

    /// [`commit_stage`](Self::commit_stage) without the commit: the stage and
    /// its events join the run's queue, for a caller whose next write commits
    /// them before anything else acts (a single-stage run's end).
    pub(crate) async fn queue_stage(
        &self,
        task: &Task,
        stage: &str,
        position: u32,
        result: StageResult,
        t: &Run<'_>,
    ) -> Result<StageResult, PlatformError> {
        let result = result.redacted(&self.redactor);
        // The stage and its events, in one batch.
        t.sink
            .defer(StoreWrite::Stage {
                id: task.id.clone(),
                position,
                name: stage.to_owned(),
                stage: result.clone(),
            })
            .await;
        t.sink
            .emit(EventKind::StageCompleted {
                stage: stage.to_owned(),
                result: Box::new(result.clone()),
            })
            .await?;
        Ok(result)
    }
}

/// What one run carries through its steps.
pub(crate) struct Run<'a> {
    pub(crate) sink: Arc<EventSink>,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) options: &'a RunOptions,
}

impl Run<'_> {
    /// Commits a status change and records it.
    pub(crate) async fn go(
        &self,
        to: TaskStatus,
        reason: Option<String>,
    ) -> Result<(), PlatformError> {
        Ok(self.sink.transition(to, reason).await?)
    }

    /// The workspace: the option, else the current directory.
    pub(crate) fn workdir(&self) -> PathBuf {
        self.options
            .workdir
            .clone()
            .or_else(|| std::env::current_dir().ok())
            .unwrap_or_else(|| PathBuf::from("."))
    }
}
