//! How one task goes once it is submitted: input guardrails, routing, the
//! platform guardrails, then one stage on one platform — or the workflow the
//! route names — and the end, recorded. Resumed runs continue from the first
//! stage not yet committed.

use std::sync::Arc;
use std::time::Instant;

use hybrid_core::{EventKind, StageResult, Stages, Task, TaskResult, TaskStatus};
use hybrid_guard::{GuardContext, GuardrailEngine, Layer};
use hybrid_secrets::Redact;
use hybrid_store::StoreWrite;

use super::SINGLE_STAGE;
use super::facade::HybridPlatform;
use super::router::{self, RouteDecision};
use crate::PlatformError;
use crate::platform::Platform;
use crate::services::Run;

/// What driving a task gives: its route and stages, or with the error that stopped it.
pub(super) type Driven =
    Result<(Option<RouteDecision>, Stages), (Option<RouteDecision>, Stages, PlatformError)>;

impl HybridPlatform {
    /// The resumed part: back to `in_progress`, then the stages not yet done.
    pub(super) async fn drive_resumed(
        &self,
        record: &hybrid_store::TaskRecord,
        t: &Run<'_>,
    ) -> Driven {
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
    pub(super) fn is_workflow_route(&self, task: &Task, decision: &RouteDecision) -> bool {
        task.workflow.is_some()
            || (decision.platform == router::HYBRID
                && self.services.registry().get(router::HYBRID).is_none())
    }

    /// Runs the task's workflow; `done` are stages committed by an earlier run.
    pub(super) async fn run_workflow(
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
        let run = match crate::workflow::WorkflowRun::new(&self.services, task, t, &workflow, done)
        {
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
    pub(super) async fn conclude(
        &self,
        task: &Task,
        run: &Run<'_>,
        outcome: Driven,
        started: Instant,
    ) -> Result<TaskResult, PlatformError> {
        let sink = &run.sink;
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
            .redacted(&self.services.redactor);
        // The result, its events and the lease's end: one commit.
        // The status it ends from, as the run last set it: the store then
        // need not read it first (it checks the belief as it writes).
        let from = sink.status().await;
        sink.defer(StoreWrite::Finish {
            result: result.clone(),
            from: Some(from),
        })
        .await;
        sink.record_status(status, failure.as_ref().map(ToString::to_string))
            .await?;
        sink.emit(EventKind::Finished {
            result: Box::new(result.clone()),
        })
        .await?;
        sink.defer(StoreWrite::Release {
            id: task.id.clone(),
            owner: crate::lease::owner_id(),
        })
        .await;
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
    pub(super) async fn drive(&self, task: &Task, t: &Run<'_>) -> Driven {
        let mut stages = Stages::new();
        let options = t.options;
        if options.cancel.is_cancelled() {
            return Err((None, stages, PlatformError::Cancelled));
        }
        let input = GuardContext::for_task(task);
        if let Err(e) = self.services.check(Layer::Input, &input, t).await {
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
                t.sink
                    .defer(StoreWrite::SetRoute {
                        id: task.id.clone(),
                        route: info.clone(),
                    })
                    .await;
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
            t.sink
                .defer(StoreWrite::SetRoute {
                    id: task.id.clone(),
                    route: info.clone(),
                })
                .await;
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
            &self.services.guardrails(),
        );
        if let Err(e) = self.services.check(Layer::Platform, &at_platform, t).await {
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

    pub(super) fn platform_for(
        &self,
        decision: &RouteDecision,
    ) -> Result<Arc<dyn Platform>, PlatformError> {
        self.services.registry().require(&decision.platform)
    }

    /// Takes the task's lease for this process (so a resume elsewhere waits).
    pub(super) async fn claim(&self, task: &Task) -> Result<(), PlatformError> {
        let owner = crate::lease::owner_id();
        if !self
            .services
            .store
            .claim_task(&task.id, &owner, crate::lease::TTL)
            .await?
        {
            return Err(PlatformError::NotResumable {
                task_id: task.id.clone(),
                reason: crate::error::NotResumable::Held {
                    owner: None,
                    until: None,
                },
            });
        }
        Ok(())
    }

    pub(super) async fn run_stage(
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
            .services
            .execute_on_platform(task, platform, stage, None, t)
            .await?;
        // The stage's end and the run's are one commit: nothing acts between them.
        self.services
            .queue_stage(task, stage, position, result, t)
            .await
    }
}

/// What the platform-layer guardrails see: the task (with its estimated
/// cost computed by the platform when it gave none and a platform-layer
/// guardrail could look at it), the route, the stage.
pub(super) fn platform_context(
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
