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
//!
//! How a single-platform run and a resume go is in [`single`](super::single);
//! workflows are the [`workflow`](crate::workflow) engine's.

use std::sync::Arc;
use std::time::Instant;

use futures::Stream;
use hybrid_core::{Event, EventKind, Task, TaskResult, TaskStatus};
use hybrid_guard::{GuardContext, Guardrail, Layer};
use hybrid_store::{MetricsSnapshot, Store};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::builder::HybridPlatformBuilder;
use super::options::{DryRun, RunOptions};
use super::router::{self, RouteDecision};
use super::single::platform_context;
use super::{DEFAULT_WORKFLOW, SINGLE_STAGE};
use crate::PlatformError;
use crate::context::EventSink;
use crate::custom_agent::CustomAgent;
use crate::error::NotResumable;
use crate::platform::Platform;
use crate::services::{Run, Services};

/// Routes tasks to platforms, runs them, records everything.
#[derive(Debug, Clone)]
pub struct HybridPlatform {
    pub(crate) services: Arc<Services>,
}

impl HybridPlatform {
    /// Starts a builder.
    pub fn builder() -> HybridPlatformBuilder {
        HybridPlatformBuilder::default()
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.services.store
    }

    /// Adds or replaces a platform at run time (the seed's `register_platform`).
    pub fn register_platform(&self, platform: Arc<dyn Platform>) {
        self.services.register_platform(platform);
    }

    /// Registers an agent written in Rust under `name` (the seed's
    /// `register_agent`): workflow stages with `agent: NAME` call it.
    pub fn register_agent(&self, name: impl Into<String>, agent: impl CustomAgent + 'static) {
        self.services.register_agent(name.into(), Arc::new(agent));
    }

    /// Names of the registered custom agents, sorted.
    pub fn custom_agent_names(&self) -> Vec<String> {
        self.services.custom_agent_names()
    }

    /// Registered platform names, in order.
    pub fn platform_names(&self) -> Vec<String> {
        self.services.platform_names()
    }

    /// The router's decision for a task; no network, nothing stored.
    pub fn route(&self, task: &Task) -> RouteDecision {
        self.services.route(task)
    }

    /// Metrics computed from the store (the seed's `get_metrics`).
    pub async fn get_metrics(&self) -> Result<MetricsSnapshot, PlatformError> {
        Ok(self.services.store.metrics().await?)
    }

    /// Runs a task to its end. A task that ends other than `completed` is
    /// still recorded, and returned as [`PlatformError::Task`].
    pub async fn run(&self, task: Task) -> Result<TaskResult, PlatformError> {
        self.run_with(task, RunOptions::default()).await
    }

    /// Runs a task, yielding every event as it happens; the last is
    /// [`EventKind::Finished`] with the result (also for failed runs). Errors
    /// that stop the run before a result exists end the stream with a
    /// `warning` event.
    pub fn run_streaming(
        &self,
        task: Task,
        mut options: RunOptions,
    ) -> impl Stream<Item = Event> + Send + 'static {
        let (tx, rx) = mpsc::channel(256);
        options.events = Some(tx.clone());
        let this = self.clone();
        tokio::spawn(async move {
            let task_id = task.id.clone();
            if let Err(e) = this.run_with(task, options).await
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

    /// Runs a task with options (events to [`RunOptions::events`], if set).
    pub async fn run_with(
        &self,
        task: Task,
        options: RunOptions,
    ) -> Result<TaskResult, PlatformError> {
        let started = Instant::now();
        let store = self.services.store.clone();
        store.create_task(&task).await?;
        let user = task
            .submitted_by
            .clone()
            .unwrap_or_else(|| "system".to_owned());
        let sink = Arc::new(EventSink::with_audit(
            task.id.clone(),
            store.clone(),
            options.events.clone(),
            user,
            self.services.redactor.clone(),
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
        force: bool,
    ) -> Result<TaskResult, PlatformError> {
        let started = Instant::now();
        let store = self.services.store.clone();
        let record = store
            .get_task(id)
            .await?
            .ok_or_else(|| PlatformError::TaskNotFound { id: id.clone() })?;
        if matches!(record.status, TaskStatus::Completed | TaskStatus::Blocked) {
            return Err(PlatformError::NotResumable {
                task_id: id.clone(),
                reason: NotResumable::Finished(record.status),
            });
        }
        let owner = crate::lease::owner_id();
        if force && let Some(holder) = &record.lease_owner {
            // Taking over: the holder is gone, by the caller's word.
            store.release_task(id, holder).await?;
        }
        if !store.claim_task(id, &owner, crate::lease::TTL).await? {
            return Err(PlatformError::NotResumable {
                task_id: id.clone(),
                reason: NotResumable::Held {
                    owner: record.lease_owner.clone(),
                    until: record.lease_until,
                },
            });
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
                options.events.clone(),
                user,
                self.services.redactor.clone(),
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
        Ok(
            hybrid_workflow::Catalog::discover(&workdir.join("workflows"), &options)?
                .resolve(name)?,
        )
    }

    /// Adds a guardrail (the seed's `platform.add_guardrail(...)`); runs from then on.
    pub fn add_guardrail(&self, guardrail: Guardrail) {
        self.services.add_guardrail(guardrail);
    }

    /// Routing plus the L1 and L2 guardrails for `task`, without calling a
    /// model or storing anything (`hybrid run --dry-run`).
    pub async fn dry_run(&self, task: &Task, platform: Option<&str>) -> DryRun {
        let decision = match platform {
            Some(p) if p != "auto" => router::explicit(p),
            _ => self.route(task),
        };
        let engine = self.services.guardrails();
        let input = GuardContext::for_task(task);
        let input_decision = engine.evaluate(Layer::Input, &input).await;
        let at_platform = match self.services.registry().get(&decision.platform) {
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
        self.services.guardrails().list()
    }
}
