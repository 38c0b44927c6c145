//! [`HybridPlatform`]: the one object a program holds to route, run, stream and
//! count tasks.
//!
//! A run moves the task through its state machine, committing each step to the
//! store before the next begins:
//!
//! ```text
//! create (pending) → routing → route recorded → in_progress → stage → finish
//!                                                         └→ failed | cancelled
//! ```

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use futures::Stream;
use hybrid_core::{Event, EventKind, StageResult, Stages, Task, TaskResult, TaskStatus};
use hybrid_secrets::{Redact, Redactor};
use hybrid_store::{MetricsSnapshot, Store};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;

use crate::PlatformError;
use std::collections::HashMap;

use crate::budgets::Budgets;
use crate::context::{EventSink, RunContext};
use crate::custom_agent::CustomAgent;
use crate::gate::{ApprovalContext, Approver, NoApprover, PolicyGate};
use crate::guardrail_layers;
use crate::model_call_gate::MeteredModelGate;
use crate::platform::{Platform, PlatformRegistry};
use crate::router::{self, DefaultRouter, RouteDecision, Router};
use crate::stage_cache::StageCache;
use hybrid_guard::{CommandPolicy, GuardContext, Guardrail, GuardrailEngine, Layer, RateLimits};
use hybrid_tools::ToolRegistry;
use hybrid_tools::{Limits, SandboxPolicy};

/// The stage name of a single-platform run.
pub const SINGLE_STAGE: &str = "execution";

/// The workflow of the hybrid route when the task names none.
pub const DEFAULT_WORKFLOW: &str = "plan-execute-verify";

/// What driving a task gives: its route and stages, or with the error that stopped it.
type Driven =
    Result<(Option<RouteDecision>, Stages), (Option<RouteDecision>, Stages, PlatformError)>;

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
}

impl std::fmt::Debug for RunOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunOptions")
            .field("platform", &self.platform)
            .field("workdir", &self.workdir)
            .field("approver", &self.approver.is_some())
            .field("sandbox", &self.sandbox)
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

/// Routes tasks to platforms, runs them, records everything.
#[derive(Debug, Clone)]
pub struct HybridPlatform {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Arc<dyn Store>,
    router: Arc<dyn Router>,
    platforms: RwLock<PlatformRegistry>,
    policy: Arc<CommandPolicy>,
    redactor: Arc<Redactor>,
    guardrails: RwLock<Arc<GuardrailEngine>>,
    budgets: Budgets,
    rates: Option<Arc<RateLimits>>,
    tools: Arc<ToolRegistry>,
    custom_agents: CustomAgents,
    stage_cache: StageCache,
}

/// Custom agents by name.
#[derive(Default)]
struct CustomAgents(RwLock<HashMap<String, Arc<dyn CustomAgent>>>);

impl std::fmt::Debug for CustomAgents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<String> = self
            .0
            .read()
            .map(|a| a.keys().cloned().collect())
            .unwrap_or_default();
        f.debug_tuple("CustomAgents").field(&names).finish()
    }
}

/// Builds a [`HybridPlatform`].
#[derive(Debug, Default)]
pub struct HybridPlatformBuilder {
    store: Option<Arc<dyn Store>>,
    router: Option<Arc<dyn Router>>,
    platforms: PlatformRegistry,
    policy: Option<CommandPolicy>,
    secrets: Vec<String>,
    guardrails: GuardrailEngine,
    budgets: Budgets,
    rates: Option<RateLimits>,
    tools: Option<ToolRegistry>,
}

impl HybridPlatformBuilder {
    /// Where tasks and events are kept (required).
    pub fn store(mut self, store: Arc<dyn Store>) -> Self {
        self.store = Some(store);
        self
    }

    /// Replaces the default router.
    pub fn router(mut self, router: Arc<dyn Router>) -> Self {
        self.router = Some(router);
        self
    }

    /// The command policy every tool call passes (default: the seed's).
    pub fn policy(mut self, policy: CommandPolicy) -> Self {
        self.policy = Some(policy);
        self
    }

    /// Values redacted from every audit record besides the built-in secret
    /// patterns: the configured API keys' values.
    pub fn secrets(mut self, secrets: Vec<String>) -> Self {
        self.secrets = secrets;
        self
    }

    /// Adds a guardrail.
    pub fn guardrail(mut self, guardrail: Guardrail) -> Self {
        self.guardrails.add_guardrail(guardrail);
        self
    }

    /// Spending limits every model call is held to (default: none).
    pub fn budgets(mut self, budgets: Budgets) -> Self {
        self.budgets = budgets;
        self
    }

    /// Rate limits for model calls (platform, agent, submitter) and tool
    /// calls (tool) (default: none).
    pub fn rate_limits(mut self, rates: RateLimits) -> Self {
        self.rates = Some(rates);
        self
    }

    /// The tools workflow `tool` and `runbook` stages may call (default: the
    /// built-in tools with the default `[tools]` settings).
    pub fn tools(mut self, tools: ToolRegistry) -> Self {
        self.tools = Some(tools);
        self
    }

    /// Adds a platform.
    pub fn platform(mut self, platform: Arc<dyn Platform>) -> Self {
        self.platforms.insert(platform);
        self
    }

    /// Finishes; fails without a store.
    pub fn build(self) -> Result<HybridPlatform, PlatformError> {
        let store = self.store.ok_or_else(|| {
            PlatformError::Unsupported("HybridPlatform::builder() needs a store".into())
        })?;
        Ok(HybridPlatform {
            inner: Arc::new(Inner {
                store,
                router: self
                    .router
                    .unwrap_or_else(|| Arc::new(DefaultRouter::default())),
                platforms: RwLock::new(self.platforms),
                policy: Arc::new(self.policy.unwrap_or_else(CommandPolicy::seed_default)),
                redactor: Arc::new(Redactor::new(self.secrets)),
                guardrails: RwLock::new(Arc::new(self.guardrails)),
                budgets: self.budgets,
                rates: self.rates.map(Arc::new),
                tools: Arc::new(self.tools.unwrap_or_else(|| {
                    ToolRegistry::builtin(&hybrid_tools::ToolsConfig::default())
                })),
                custom_agents: CustomAgents::default(),
                stage_cache: StageCache::default(),
            }),
        })
    }
}

impl HybridPlatform {
    /// Starts a builder.
    pub fn builder() -> HybridPlatformBuilder {
        HybridPlatformBuilder::default()
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// Adds or replaces a platform at run time (the seed's `register_platform`).
    pub fn register_platform(&self, platform: Arc<dyn Platform>) {
        if let Ok(mut reg) = self.inner.platforms.write() {
            reg.insert(platform);
        }
    }

    /// Registers an agent written in Rust under `name` (the seed's
    /// `register_agent`): workflow stages with `agent: NAME` call it.
    pub fn register_agent(&self, name: impl Into<String>, agent: impl CustomAgent + 'static) {
        if let Ok(mut agents) = self.inner.custom_agents.0.write() {
            agents.insert(name.into(), Arc::new(agent));
        }
    }

    /// The custom agent registered as `name`.
    pub(crate) fn custom_agent(&self, name: &str) -> Option<Arc<dyn CustomAgent>> {
        self.inner
            .custom_agents
            .0
            .read()
            .ok()
            .and_then(|a| a.get(name).cloned())
    }

    /// Names of the registered custom agents.
    pub fn custom_agent_names(&self) -> Vec<String> {
        self.inner
            .custom_agents
            .0
            .read()
            .map(|a| a.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// The platform registered as `name`.
    pub(crate) fn platform_named(&self, name: &str) -> Result<Arc<dyn Platform>, PlatformError> {
        self.registry().require(name)
    }

    /// The tool workflow stages call by `name`.
    pub(crate) fn tool_named(&self, name: &str) -> Option<Arc<dyn hybrid_tools::Tool>> {
        self.inner.tools.get(name)
    }

    /// Cached workflow stage results.
    pub(crate) fn stage_cache(&self) -> &StageCache {
        &self.inner.stage_cache
    }

    /// Registered platform names, in order.
    pub fn platform_names(&self) -> Vec<String> {
        self.registry()
            .names()
            .into_iter()
            .map(str::to_owned)
            .collect()
    }

    fn registry(&self) -> PlatformRegistry {
        self.inner
            .platforms
            .read()
            .map(|r| r.clone())
            .unwrap_or_default()
    }

    /// The router's decision for a task; no network, nothing stored.
    pub fn route(&self, task: &Task) -> RouteDecision {
        let reg = self.registry();
        self.inner.router.route(task, &reg.names())
    }

    /// Metrics computed from the store (the seed's `get_metrics`).
    pub async fn get_metrics(&self) -> Result<MetricsSnapshot, PlatformError> {
        Ok(self.inner.store.metrics().await?)
    }

    /// Runs a task to its end. A task that ends other than `completed` is
    /// still recorded, and returned as [`PlatformError::Task`].
    pub async fn run(&self, task: Task) -> Result<TaskResult, PlatformError> {
        self.run_with(task, RunOptions::default(), None).await
    }

    /// Runs a task, yielding every event as it happens; the last is
    /// [`EventKind::Finished`] with the result (also for failed runs). Errors
    /// that stop the run before a result exists end the stream with a
    /// `warning` event.
    pub fn run_streaming(
        &self,
        task: Task,
        options: RunOptions,
    ) -> impl Stream<Item = Event> + Send + 'static {
        let (tx, rx) = mpsc::channel(256);
        let this = self.clone();
        tokio::spawn(async move {
            let task_id = task.id.clone();
            if let Err(e) = this.run_with(task, options, Some(tx.clone())).await
                && !matches!(e, PlatformError::Task { .. })
            {
                let _ = tx
                    .send(Event {
                        task_id,
                        seq: u64::MAX,
                        at: chrono::Utc::now(),
                        kind: EventKind::Warning {
                            message: e.to_string(),
                        },
                    })
                    .await;
            }
        });
        ReceiverStream::new(rx)
    }

    /// Runs a task with options, forwarding events to `subscriber`.
    pub async fn run_with(
        &self,
        task: Task,
        options: RunOptions,
        subscriber: Option<mpsc::Sender<Event>>,
    ) -> Result<TaskResult, PlatformError> {
        let started = Instant::now();
        let store = self.inner.store.clone();
        store.create_task(&task).await?;
        let user = task
            .submitted_by
            .clone()
            .unwrap_or_else(|| "system".to_owned());
        let sink = Arc::new(EventSink::with_audit(
            task.id.clone(),
            store.clone(),
            subscriber,
            user,
            self.inner.redactor.clone(),
        ));
        sink.emit(EventKind::Submitted {
            task: Box::new(task.clone()),
        })
        .await?;
        let run = Run {
            sink: sink.clone(),
            store: store.clone(),
            options: &options,
        };
        let outcome = self.drive(&task, &run).await;
        self.conclude(&task, &run, outcome, started).await
    }

    /// Continues a task that was interrupted (its process died) or failed,
    /// from its first unfinished stage (`hybrid tasks resume`). Committed
    /// stages are not run again; nor is any journaled command or tool call.
    /// A task another live process holds is refused unless `force`.
    pub async fn resume(
        &self,
        id: &hybrid_core::TaskId,
        options: RunOptions,
        subscriber: Option<mpsc::Sender<Event>>,
        force: bool,
    ) -> Result<TaskResult, PlatformError> {
        let started = Instant::now();
        let store = self.inner.store.clone();
        let record = store
            .get_task(id)
            .await?
            .ok_or_else(|| PlatformError::NotFound(format!("no task with id {id}")))?;
        if matches!(record.status, TaskStatus::Completed | TaskStatus::Blocked) {
            return Err(PlatformError::NotResumable(format!(
                "task {id} is {}: nothing to resume",
                record.status
            )));
        }
        let owner = crate::lease::owner_id();
        if force && let Some(holder) = &record.lease_owner {
            // Taking over: the holder is gone, by the caller's word.
            store.release_task(id, holder).await?;
        }
        if !store.claim_task(id, &owner, crate::lease::TTL).await? {
            return Err(PlatformError::NotResumable(format!(
                "task {id} is being run by {} (lease until {}); wait for it, or resume with --force \
                 if that process is gone",
                record.lease_owner.as_deref().unwrap_or("another process"),
                record
                    .lease_until
                    .map(|t| t.to_rfc3339())
                    .unwrap_or_default()
            )));
        }
        let task = record.task.clone();
        let user = task
            .submitted_by
            .clone()
            .unwrap_or_else(|| "system".to_owned());
        let next_seq = store
            .events(id)
            .await?
            .last()
            .map_or(0, |e| e.seq.saturating_add(1));
        let sink = Arc::new(
            EventSink::with_audit(
                task.id.clone(),
                store.clone(),
                subscriber,
                user,
                self.inner.redactor.clone(),
            )
            .resuming(next_seq, record.status),
        );
        let run = Run {
            sink: sink.clone(),
            store: store.clone(),
            options: &options,
        };
        let outcome = self.drive_resumed(&record, &run).await;
        self.conclude(&task, &run, outcome, started).await
    }

    /// The resumed part: back to `in_progress`, then the stages not yet done.
    async fn drive_resumed(&self, record: &hybrid_store::TaskRecord, t: &Run<'_>) -> Driven {
        let task = &record.task;
        let decision = record.route.as_ref().map(|r| RouteDecision {
            platform: r.platform.clone(),
            rule: "resumed",
            reason: r.reason.clone(),
        });
        let status = t.sink.status().await;
        if status != TaskStatus::InProgress
            && let Err(e) = t.go(TaskStatus::InProgress, Some("resumed".into())).await
        {
            return Err((decision, Stages::new(), e));
        }
        let done = match t.store.stages(&task.id).await {
            Ok(done) => done,
            Err(e) => return Err((decision, Stages::new(), e.into())),
        };
        let Some(decision) = decision else {
            // Never routed: run it from the start.
            return self.drive(task, t).await;
        };
        if self.is_workflow_route(task, &decision) {
            return self.run_workflow(task, decision, done, t).await;
        }
        if let Some((name, stage)) = done.into_iter().find(|(n, _)| n == SINGLE_STAGE) {
            let mut stages = Stages::new();
            stages.insert(name, stage);
            return Ok((Some(decision), stages));
        }
        let platform = match self.platform_for(&decision) {
            Ok(p) => p,
            Err(e) => return Err((Some(decision), Stages::new(), e)),
        };
        match self
            .run_stage(task, platform.as_ref(), SINGLE_STAGE, 0, t)
            .await
        {
            Ok(stage) => {
                let mut stages = Stages::new();
                stages.insert(SINGLE_STAGE.to_owned(), stage);
                Ok((Some(decision), stages))
            }
            Err(e) => Err((Some(decision), Stages::new(), e)),
        }
    }

    /// Whether the route runs a workflow: the hybrid route (when no platform
    /// is registered under that name), or a task that names one.
    fn is_workflow_route(&self, task: &Task, decision: &RouteDecision) -> bool {
        task.workflow.is_some()
            || (decision.platform == router::HYBRID
                && self.registry().get(router::HYBRID).is_none())
    }

    /// The workflow a task runs: the one it names (a built-in, a file in the
    /// workspace's `workflows/`, or a path), else `plan-execute-verify`.
    pub fn workflow_for(
        &self,
        task: &Task,
        workdir: &std::path::Path,
    ) -> Result<hybrid_workflow::Workflow, PlatformError> {
        let name = task.workflow.as_deref().unwrap_or(DEFAULT_WORKFLOW);
        let mut options = hybrid_workflow::ValidateOptions::default();
        options.known_agents.extend(self.custom_agent_names());
        options.known_platforms = self.platform_names();
        let invalid = |e: hybrid_workflow::WorkflowError| {
            if e.is_not_found() {
                PlatformError::NotFound(e.to_string())
            } else {
                PlatformError::InvalidWorkflow(e.to_string())
            }
        };
        hybrid_workflow::Catalog::discover(&workdir.join("workflows"), &options)
            .map_err(invalid)?
            .resolve(name)
            .map_err(invalid)
    }

    /// Runs the task's workflow; `done` are stages committed by an earlier run.
    async fn run_workflow(
        &self,
        task: &Task,
        decision: RouteDecision,
        done: Vec<(String, StageResult)>,
        t: &Run<'_>,
    ) -> Driven {
        let workflow = match self.workflow_for(task, &t.workdir()) {
            Ok(w) => w,
            Err(e) => return Err((Some(decision), Stages::new(), e)),
        };
        let run = match crate::workflow_run::WorkflowRun::new(self, task, t, &workflow, done) {
            Ok(run) => run,
            Err(e) => return Err((Some(decision), Stages::new(), e)),
        };
        let _lease = crate::lease::LeaseKeeper::start(t.store.clone(), task.id.clone());
        match run.run().await {
            Ok(stages) => Ok((Some(decision), stages)),
            Err((stages, e)) => Err((Some(decision), stages, e)),
        }
    }

    /// Records the end of a run: status, result, events; holds the lease no more.
    async fn conclude(
        &self,
        task: &Task,
        run: &Run<'_>,
        outcome: Driven,
        started: Instant,
    ) -> Result<TaskResult, PlatformError> {
        let (store, sink) = (&run.store, &run.sink);
        let (route, stages, failure) = match outcome {
            Ok((route, stages)) => (route, stages, None),
            Err((route, stages, e)) => (route, stages, Some(e)),
        };
        let status = match &failure {
            None => TaskStatus::Completed,
            Some(PlatformError::Cancelled) => TaskStatus::Cancelled,
            Some(PlatformError::Blocked { .. } | PlatformError::Rejected { .. }) => {
                TaskStatus::Blocked
            }
            Some(_) => TaskStatus::Failed,
        };
        // Nothing leaves the run with a secret in it: not the stored result, not the
        // one returned (which the CLI prints and the server sends).
        let result = build_result(task, status, route, stages, failure.as_ref(), started)
            .redacted(&self.inner.redactor);
        store.finish(&result).await?;
        sink.record_status(status, failure.as_ref().map(ToString::to_string))
            .await?;
        sink.emit(EventKind::Finished {
            result: Box::new(result.clone()),
        })
        .await?;
        sink.flush().await?;
        if let Err(e) = store
            .release_task(&task.id, &crate::lease::owner_id())
            .await
        {
            tracing::warn!(error = %e, "could not release the task's lease");
        }
        match failure {
            None => Ok(result),
            Some(e) => Err(PlatformError::Task {
                task_id: task.id.clone(),
                status,
                source: Box::new(e),
            }),
        }
    }

    /// Routing and the stage; errors carry what was done so far.
    async fn drive(&self, task: &Task, t: &Run<'_>) -> Driven {
        let mut stages = Stages::new();
        let options = t.options;
        if options.cancel.is_cancelled() {
            return Err((None, stages, PlatformError::Cancelled));
        }
        let input = GuardContext::for_task(task);
        if let Err(e) = self.check(Layer::Input, &input, t).await {
            return Err((None, stages, e));
        }
        t.go(TaskStatus::Routing, None)
            .await
            .map_err(|e| (None, Stages::new(), e))?;
        let decision = match (&options.platform, &task.workflow) {
            (Some(p), _) if p != "auto" => router::explicit(p),
            (_, Some(w)) => RouteDecision {
                platform: router::HYBRID.to_owned(),
                rule: "workflow",
                reason: format!("the task names workflow {w}"),
            },
            _ => self.route(task),
        };
        let info = decision.to_info();
        if self.is_workflow_route(task, &decision) {
            let routed = async {
                t.store.set_route(&task.id, &info).await?;
                t.sink
                    .emit(EventKind::Routed {
                        route: info.clone(),
                    })
                    .await?;
                self.claim(task).await?;
                t.go(TaskStatus::InProgress, None).await
            }
            .await;
            if let Err(e) = routed {
                return Err((Some(decision), stages, e));
            }
            return self.run_workflow(task, decision, Vec::new(), t).await;
        }
        let routed = async {
            t.store.set_route(&task.id, &info).await?;
            t.sink
                .emit(EventKind::Routed {
                    route: info.clone(),
                })
                .await?;
            self.platform_for(&decision)
        }
        .await;
        let platform = match routed {
            Ok(p) => p,
            Err(e) => return Err((Some(decision), stages, e)),
        };
        if let Err(e) = t.go(TaskStatus::InProgress, None).await {
            return Err((Some(decision), stages, e));
        }
        let at_platform = platform_context(
            task,
            platform.as_ref(),
            info.clone(),
            &self.guardrail_engine(),
        );
        if let Err(e) = self.check(Layer::Platform, &at_platform, t).await {
            return Err((Some(decision), stages, e));
        }
        match self
            .run_stage(task, platform.as_ref(), SINGLE_STAGE, 0, t)
            .await
        {
            Ok(stage) => {
                stages.insert(SINGLE_STAGE.to_owned(), stage);
                Ok((Some(decision), stages))
            }
            Err(e) => Err((Some(decision), stages, e)),
        }
    }

    /// Runs one guardrail layer; an error stops the run.
    pub(crate) async fn check(
        &self,
        layer: Layer,
        ctx: &GuardContext,
        t: &Run<'_>,
    ) -> Result<(), PlatformError> {
        let engine = self.guardrail_engine();
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

    fn guardrail_engine(&self) -> Arc<GuardrailEngine> {
        self.inner
            .guardrails
            .read()
            .map(|g| g.clone())
            .unwrap_or_default()
    }

    /// Adds a guardrail (the seed's `platform.add_guardrail(...)`); runs from then on.
    pub fn add_guardrail(&self, guardrail: Guardrail) {
        if let Ok(mut g) = self.inner.guardrails.write() {
            let mut engine = (**g).clone();
            engine.add_guardrail(guardrail);
            *g = Arc::new(engine);
        }
    }

    /// Routing plus the L1 and L2 guardrails for `task`, without calling a
    /// model or storing anything (`hybrid run --dry-run`).
    pub async fn dry_run(&self, task: &Task, platform: Option<&str>) -> DryRun {
        let decision = match platform {
            Some(p) if p != "auto" => router::explicit(p),
            _ => self.route(task),
        };
        let engine = self.guardrail_engine();
        let input = GuardContext::for_task(task);
        let input_decision = engine.evaluate(Layer::Input, &input).await;
        let at_platform = match self.registry().get(&decision.platform) {
            Some(p) => platform_context(task, p.as_ref(), decision.to_info(), &engine),
            None => input.with_route(decision.to_info()).with_stage(
                SINGLE_STAGE,
                String::new(),
                &decision.platform,
            ),
        };
        let platform_decision = engine.evaluate(Layer::Platform, &at_platform).await;
        DryRun {
            route: decision.to_info(),
            input: input_decision,
            platform: platform_decision,
        }
    }

    /// The active guardrails.
    pub fn guardrails(&self) -> Vec<hybrid_guard::GuardrailInfo> {
        self.guardrail_engine().list()
    }

    fn platform_for(&self, decision: &RouteDecision) -> Result<Arc<dyn Platform>, PlatformError> {
        self.registry().require(&decision.platform)
    }

    /// Takes the task's lease for this process (so a resume elsewhere waits).
    async fn claim(&self, task: &Task) -> Result<(), PlatformError> {
        let owner = crate::lease::owner_id();
        if !self
            .inner
            .store
            .claim_task(&task.id, &owner, crate::lease::TTL)
            .await?
        {
            return Err(PlatformError::NotResumable(format!(
                "task {} is held by another process",
                task.id
            )));
        }
        Ok(())
    }

    async fn run_stage(
        &self,
        task: &Task,
        platform: &dyn Platform,
        stage: &str,
        position: u32,
        t: &Run<'_>,
    ) -> Result<StageResult, PlatformError> {
        t.sink
            .emit(EventKind::StageStarted {
                stage: stage.to_owned(),
                agent: platform.agent_for(task),
                platform: platform.id().to_owned(),
                model: platform.model().map(str::to_owned),
            })
            .await?;
        t.sink.flush().await?;
        let result = self
            .execute_on_platform(task, platform, stage, None, t)
            .await?;
        self.commit_stage(task, stage, position, result, t).await
    }

    /// A stage's gates: the tool gate (policy, L3 guardrails, approvals, tool
    /// rate limits) for `task`.
    pub(crate) fn tool_gate(&self, task: &Task, t: &Run<'_>) -> PolicyGate {
        let approver = t
            .options
            .approver
            .clone()
            .unwrap_or_else(|| Arc::new(NoApprover));
        PolicyGate::new(
            self.inner.policy.clone(),
            approver,
            t.sink.clone(),
            t.options.cancel.clone(),
        )
        .with_guardrails(self.guardrail_engine(), task.clone())
        .with_rate_limits(self.inner.rates.clone())
    }

    /// Runs `platform` for one stage (the task, or a workflow stage's
    /// `request`) behind the run's gates, then the output guardrails;
    /// nothing is committed.
    pub(crate) async fn execute_on_platform(
        &self,
        task: &Task,
        platform: &dyn Platform,
        stage: &str,
        request: Option<crate::platform::StageRequest<'_>>,
        t: &Run<'_>,
    ) -> Result<StageResult, PlatformError> {
        let options = t.options;
        let engine = self.guardrail_engine();
        let gate = self.tool_gate(task, t);
        let model_gate = MeteredModelGate::new(
            self.inner.budgets,
            self.inner.rates.clone(),
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
        let result = result.redacted(&self.inner.redactor);
        t.store
            .put_stage(&task.id, position, stage, &result)
            .await?;
        t.sink
            .emit(EventKind::StageCompleted {
                stage: stage.to_owned(),
                result: Box::new(result.clone()),
            })
            .await?;
        t.sink.flush().await?;
        Ok(result)
    }

    /// The run's redactor.
    pub(crate) fn redactor(&self) -> &Redactor {
        &self.inner.redactor
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

/// What the platform-layer guardrails see: the task (with its estimated
/// cost computed by the platform when it gave none and a platform-layer
/// guardrail could look at it), the route, the stage.
fn platform_context(
    task: &Task,
    platform: &dyn Platform,
    route: hybrid_core::RouteInfo,
    engine: &GuardrailEngine,
) -> GuardContext {
    let mut estimated = task.clone();
    if estimated.estimated_cost.is_none() && engine.at(Layer::Platform).next().is_some() {
        estimated.estimated_cost = platform.estimate_cost(task);
    }
    GuardContext::for_task(&estimated)
        .with_route(route)
        .with_stage(SINGLE_STAGE, platform.agent_for(task), platform.id())
}

fn build_result(
    task: &Task,
    status: TaskStatus,
    route: Option<RouteDecision>,
    stages: Stages,
    failure: Option<&PlatformError>,
    started: Instant,
) -> TaskResult {
    let route = route
        .map(|d| d.to_info())
        .unwrap_or_else(|| hybrid_core::RouteInfo {
            platform: String::new(),
            rule: "none".into(),
            reason: "the task stopped before routing".into(),
        });
    let usage = stages
        .values()
        .fold(hybrid_core::Usage::default(), |acc, s| acc + s.usage);
    let cost_usd = stages
        .values()
        .try_fold(hybrid_core::Money::ZERO, |acc, s| {
            s.cost_usd.map(|c| acc + c)
        });
    let output = stages
        .values()
        .last()
        .map(|s| s.output.clone())
        .unwrap_or_default();
    TaskResult {
        task_id: task.id.clone(),
        status,
        platform: route.platform.clone(),
        route,
        stages,
        output,
        usage,
        cost_usd,
        duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        error: failure.map(ToString::to_string),
    }
}
