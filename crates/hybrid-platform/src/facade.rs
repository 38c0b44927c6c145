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
use hybrid_store::{MetricsSnapshot, Redactor, Store};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;

use crate::PlatformError;
use crate::budgets::Budgets;
use crate::context::{EventSink, RunContext};
use crate::gate::{ApprovalContext, Approver, NoApprover, PolicyGate};
use crate::guardrail_layers;
use crate::model_call_gate::MeteredModelGate;
use crate::platform::{Platform, PlatformRegistry};
use crate::router::{self, DefaultRouter, RouteDecision, Router};
use hybrid_guard::{CommandPolicy, GuardContext, Guardrail, GuardrailEngine, Layer, RateLimits};
use hybrid_tools::Limits;

/// The stage name of a single-platform run.
pub const SINGLE_STAGE: &str = "execution";

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
}

impl std::fmt::Debug for RunOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunOptions")
            .field("platform", &self.platform)
            .field("workdir", &self.workdir)
            .field("approver", &self.approver.is_some())
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
        let (route, stages, failure) = match outcome {
            Ok((route, stages)) => (route, stages, None),
            Err((route, stages, e)) => (route, stages, Some(e)),
        };
        let status = match &failure {
            None => TaskStatus::Completed,
            Some(PlatformError::Cancelled) => TaskStatus::Cancelled,
            Some(PlatformError::Blocked { .. }) => TaskStatus::Blocked,
            Some(_) => TaskStatus::Failed,
        };
        let result = build_result(&task, status, route, stages, failure.as_ref(), started);
        store.finish(&result).await?;
        sink.record_status(status, failure.as_ref().map(ToString::to_string))
            .await?;
        sink.emit(EventKind::Finished {
            result: Box::new(result.clone()),
        })
        .await?;
        sink.flush().await?;
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
    async fn drive(
        &self,
        task: &Task,
        t: &Run<'_>,
    ) -> Result<(Option<RouteDecision>, Stages), (Option<RouteDecision>, Stages, PlatformError)>
    {
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
        let decision = match &options.platform {
            Some(p) if p != "auto" => router::explicit(p),
            _ => self.route(task),
        };
        let info = decision.to_info();
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
    async fn check(
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
        let reg = self.registry();
        if decision.platform == router::HYBRID && reg.get(router::HYBRID).is_none() {
            return Err(PlatformError::Unsupported(
                "the hybrid route (plan → execute → verify) needs the workflow engine, which \
                 this build does not have yet; run with --platform openai or --platform claude"
                    .into(),
            ));
        }
        reg.require(&decision.platform)
    }

    async fn run_stage(
        &self,
        task: &Task,
        platform: &dyn Platform,
        stage: &str,
        position: u32,
        t: &Run<'_>,
    ) -> Result<StageResult, PlatformError> {
        let options = t.options;
        t.sink
            .emit(EventKind::StageStarted {
                stage: stage.to_owned(),
                agent: platform.agent_for(task),
                platform: platform.id().to_owned(),
                model: platform.model().map(str::to_owned),
            })
            .await?;
        t.sink.flush().await?;
        let approver = options
            .approver
            .clone()
            .unwrap_or_else(|| Arc::new(NoApprover));
        let engine = self.guardrail_engine();
        let gate = PolicyGate::new(
            self.inner.policy.clone(),
            approver,
            t.sink.clone(),
            options.cancel.clone(),
        )
        .with_guardrails(engine.clone(), task.clone())
        .with_rate_limits(self.inner.rates.clone());
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
            gate: Arc::new(gate),
            model_gate: Arc::new(model_gate),
            held_deltas: held.clone(),
        };
        let result = tokio::select! {
            r = platform.execute(task, &ctx) => r?,
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
                t.sink
                    .emit(EventKind::TextDelta {
                        stage: stage.to_owned(),
                        text,
                    })
                    .await?;
            }
        }
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
}

/// What one run carries through its steps.
struct Run<'a> {
    sink: Arc<EventSink>,
    store: Arc<dyn Store>,
    options: &'a RunOptions,
}

impl Run<'_> {
    /// Commits a status change and records it.
    async fn go(&self, to: TaskStatus, reason: Option<String>) -> Result<(), PlatformError> {
        Ok(self.sink.transition(to, reason).await?)
    }

    /// The workspace: the option, else the current directory.
    fn workdir(&self) -> PathBuf {
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
