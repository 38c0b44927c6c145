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

use std::sync::{Arc, RwLock};
use std::time::Instant;

use futures::Stream;
use hybrid_core::{Event, EventKind, StageResult, Stages, Task, TaskResult, TaskStatus};
use hybrid_store::{MetricsSnapshot, Store};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;

use crate::PlatformError;
use crate::context::{EventSink, RunContext};
use crate::platform::{Platform, PlatformRegistry};
use crate::router::{self, DefaultRouter, RouteDecision, Router};

/// The stage name of a single-platform run.
pub const SINGLE_STAGE: &str = "execution";

/// How to run one task.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Skip the router and use this platform.
    pub platform: Option<String>,
    /// Cancel to stop the run; the task is then recorded `cancelled`.
    pub cancel: CancellationToken,
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
}

/// Builds a [`HybridPlatform`].
#[derive(Debug, Default)]
pub struct HybridPlatformBuilder {
    store: Option<Arc<dyn Store>>,
    router: Option<Arc<dyn Router>>,
    platforms: PlatformRegistry,
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
            if let Err(e) = this.run_with(task, options, Some(tx.clone())).await {
                if !matches!(e, PlatformError::Task { .. }) {
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
        let sink = Arc::new(EventSink::new(task.id.clone(), store.clone(), subscriber));
        sink.emit(EventKind::Submitted {
            task: Box::new(task.clone()),
        })
        .await?;
        let mut tracker = Tracker {
            sink: sink.clone(),
            store: store.clone(),
            status: TaskStatus::Pending,
            task: &task,
        };

        let outcome = self.drive(&task, &options, &mut tracker).await;
        let (route, stages, failure) = match outcome {
            Ok((route, stages)) => (route, stages, None),
            Err((route, stages, e)) => (route, stages, Some(e)),
        };
        let status = match &failure {
            None => TaskStatus::Completed,
            Some(PlatformError::Cancelled) => TaskStatus::Cancelled,
            Some(_) => TaskStatus::Failed,
        };
        let result = build_result(&task, status, route, stages, failure.as_ref(), started);
        let from = tracker.status;
        store.finish(&result).await?;
        sink.emit(EventKind::Status {
            from,
            to: status,
            reason: failure.as_ref().map(ToString::to_string),
        })
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
        options: &RunOptions,
        t: &mut Tracker<'_>,
    ) -> Result<(Option<RouteDecision>, Stages), (Option<RouteDecision>, Stages, PlatformError)>
    {
        let mut stages = Stages::new();
        if options.cancel.is_cancelled() {
            return Err((None, stages, PlatformError::Cancelled));
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
        match self
            .run_stage(task, platform.as_ref(), SINGLE_STAGE, 0, options, t)
            .await
        {
            Ok(stage) => {
                stages.insert(SINGLE_STAGE.to_owned(), stage);
                Ok((Some(decision), stages))
            }
            Err(e) => Err((Some(decision), stages, e)),
        }
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
        options: &RunOptions,
        t: &mut Tracker<'_>,
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
        let ctx = RunContext {
            stage: stage.to_owned(),
            events: t.sink.clone(),
            cancel: options.cancel.clone(),
        };
        let result = tokio::select! {
            r = platform.execute(task, &ctx) => r?,
            () = options.cancel.cancelled() => return Err(PlatformError::Cancelled),
        };
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

/// Keeps the task's status in the store and in events in step.
struct Tracker<'a> {
    sink: Arc<EventSink>,
    store: Arc<dyn Store>,
    status: TaskStatus,
    task: &'a Task,
}

impl Tracker<'_> {
    async fn go(&mut self, to: TaskStatus, reason: Option<String>) -> Result<(), PlatformError> {
        let from = self
            .store
            .transition(&self.task.id, to, reason.as_deref())
            .await?;
        self.status = to;
        self.sink
            .emit(EventKind::Status { from, to, reason })
            .await?;
        Ok(())
    }
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
