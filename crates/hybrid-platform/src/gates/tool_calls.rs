//! The gate of a run: what stands between a model's tool call and the tool.
//!
//! | tool | decided by |
//! | --- | --- |
//! | `bash` | the command policy on its `command` (every command that would run) |
//! | `mcp:<server>:<tool>` | the command policy on the tool's name, so `[policy]` lists can name MCP tools |
//! | file tools, `glob`, `grep` | allowed: they are confined to the workspace by the tools themselves |
//! | `http_request`, `notify` | allowed: they exist only when the configuration enables them |
//!
//! The guardrail engine's L3 (execution) rules run first: a block refuses
//! the call, a needs-approval turns an allowed call into one that waits.
//! A policy verdict of `approve` asks the run's [`Approver`]; while it waits
//! the task is `awaiting_approval`. Last, a call that may run takes a cell
//! from the `tool:` rate limits (waiting up to their bound). Denials,
//! rejections and rate-limit refusals go back to the model as tool errors.
//! Every decision is a task event.

use std::sync::Arc;

use async_trait::async_trait;
use hybrid_agents::{GateDecision, ToolGate, ToolRequest};
use hybrid_core::{EventKind, TaskStatus};
use hybrid_guard::{CommandPolicy, PolicyVerdict};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use crate::approval::{ApprovalAnswer, ApprovalAsk, ApprovalContext, Approver};
use crate::context::{AuditNote, EventSink};

/// The command policy and the approver, for one run.
pub struct PolicyGate {
    policy: Arc<CommandPolicy>,
    guardrails: Option<(Arc<hybrid_guard::GuardrailEngine>, hybrid_core::Task)>,
    approver: Arc<dyn Approver>,
    events: Arc<EventSink>,
    cancel: CancellationToken,
    waiting: Mutex<usize>,
    rates: Option<Arc<hybrid_guard::RateLimits>>,
}

impl std::fmt::Debug for PolicyGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyGate").finish_non_exhaustive()
    }
}

impl PolicyGate {
    /// A gate judging with `policy`, asking `approver`, reporting to `events`.
    pub fn new(
        policy: Arc<CommandPolicy>,
        approver: Arc<dyn Approver>,
        events: Arc<EventSink>,
        cancel: CancellationToken,
    ) -> Self {
        PolicyGate {
            policy,
            guardrails: None,
            approver,
            events,
            cancel,
            waiting: Mutex::new(0),
            rates: None,
        }
    }

    /// Also holds tool calls to the `tool:` rate limits (checked last, right
    /// before the call would run, so time spent waiting for approval does
    /// not use up the quota).
    pub fn with_rate_limits(mut self, rates: Option<Arc<hybrid_guard::RateLimits>>) -> Self {
        self.rates = rates;
        self
    }

    /// The last step before a call runs: its tool's rate limit.
    async fn admit(&self, request: &ToolRequest<'_>) -> GateDecision {
        let Some(rates) = &self.rates else {
            return GateDecision::Allow;
        };
        let keys = hybrid_guard::RateKeys::default().tool(request.tool);
        match rates.acquire(&keys).await {
            Ok(()) => GateDecision::Allow,
            Err(limited) => {
                let rule = format!("rate_limit:{}", limited.scope);
                let reason = format!(
                    "{} calls are over the limit {} (retry after {:.1}s)",
                    limited.key,
                    limited.rule,
                    limited.retry_after.as_secs_f64()
                );
                let block = hybrid_guard::Outcome::Block {
                    guardrail: rule.clone(),
                    kind: hybrid_guard::GuardrailKind::RateLimit,
                    message: reason.clone(),
                };
                let decision = hybrid_guard::Decision {
                    layer: hybrid_guard::Layer::Execution,
                    outcome: block.clone(),
                    triggered: vec![block],
                };
                if let Err(e) =
                    crate::gates::guardrail_layers::record(&decision, &self.events).await
                {
                    // The decision stands (a block still blocks); only its record is missing.
                    tracing::warn!(error = %e, "could not record a guardrail decision");
                }
                GateDecision::Deny { rule, reason }
            }
        }
    }

    /// Also evaluates the engine's L3 (execution) guardrails for `task`'s tool calls.
    pub fn with_guardrails(
        mut self,
        engine: Arc<hybrid_guard::GuardrailEngine>,
        task: hybrid_core::Task,
    ) -> Self {
        self.guardrails = Some((engine, task));
        self
    }

    /// The L3 guardrails' outcome for one call.
    async fn execution_guardrails(&self, request: &ToolRequest<'_>) -> hybrid_guard::Outcome {
        let Some((engine, task)) = &self.guardrails else {
            return hybrid_guard::Outcome::Pass;
        };
        if engine.at(hybrid_guard::Layer::Execution).next().is_none() {
            return hybrid_guard::Outcome::Pass;
        }
        let ctx = hybrid_guard::GuardContext::for_task(task).with_tool(
            hybrid_guard::ToolCall::new(request.tool, request.arguments.clone()),
        );
        let decision = engine.evaluate(hybrid_guard::Layer::Execution, &ctx).await;
        if !decision.is_pass()
            && let Err(e) = crate::gates::guardrail_layers::record(&decision, &self.events).await
        {
            // The decision stands (a block still blocks); only its record is missing.
            tracing::warn!(error = %e, "could not record a guardrail decision");
        }
        decision.outcome
    }

    async fn note(&self, message: String) {
        if let Err(e) = self.events.emit(EventKind::Warning { message }).await {
            tracing::warn!(error = %e, "could not record a gate event");
        }
    }

    /// Moves the task to `awaiting_approval` for the first waiter and back for the last.
    async fn set_waiting(&self, delta: isize) {
        let mut n = self.waiting.lock().await;
        let before = *n;
        *n = before.saturating_add_signed(delta);
        let change = match (before, *n) {
            (0, 1) => Some(TaskStatus::AwaitingApproval),
            (1, 0) => Some(TaskStatus::InProgress),
            _ => None,
        };
        if let Some(to) = change
            && let Err(e) = self.events.transition(to, None).await
        {
            tracing::warn!(error = %e, "could not record the approval status change");
        }
    }
}

#[async_trait]
impl ToolGate for PolicyGate {
    /// The decision; before a call is allowed, everything the run has
    /// queued for the store is committed (the step before it is durable
    /// before this one acts), or the call is denied.
    async fn check(&self, request: ToolRequest<'_>) -> GateDecision {
        let decision = self.decide(request).await;
        if decision == GateDecision::Allow
            && let Err(e) = self.events.flush().await
        {
            return GateDecision::Deny {
                rule: "store".into(),
                reason: format!("the run's records could not be committed before the call: {e}"),
            };
        }
        decision
    }
}

impl PolicyGate {
    async fn decide(&self, request: ToolRequest<'_>) -> GateDecision {
        let guarded = self.execution_guardrails(&request).await;
        if let hybrid_guard::Outcome::Block {
            guardrail, message, ..
        } = &guarded
        {
            return GateDecision::Deny {
                rule: format!("guardrail:{guardrail}"),
                reason: message.clone(),
            };
        }
        let command = match request.tool {
            "bash" => request
                .arguments
                .get("command")
                .and_then(|c| c.as_str())
                .map(str::to_owned),
            t if t.starts_with("mcp:") => Some(t.to_owned()),
            _ => None,
        };
        // (verdict, rule, reason) of the command policy, for the tools it judges.
        let (mut verdict, mut rule, mut reason) = match &command {
            Some(command) => {
                let decision = self.policy.check(command);
                self.note(format!(
                    "policy: {} `{}` (rule {}: {})",
                    decision.decision, command, decision.rule, decision.reason
                ))
                .await;
                self.events
                    .audit(AuditNote {
                        agent: request.agent.to_owned(),
                        action: "policy_decision".into(),
                        command: Some(command.clone()),
                        output: Some(format!(
                            "{} (rule {}): {}",
                            decision.decision, decision.rule, decision.reason
                        )),
                        detail: serde_json::json!({
                            "call_id": request.call_id, "tool": request.tool,
                            "decision": decision.decision, "rule": decision.rule,
                            "commands": decision.commands,
                        }),
                        ..AuditNote::default()
                    })
                    .await;
                (decision.decision, decision.rule, decision.reason)
            }
            // File tools are confined by the tools; a bash call without a
            // command is reported by the tool itself; nothing else is judged.
            None => (PolicyVerdict::Allow, "tool".to_owned(), String::new()),
        };
        if let (PolicyVerdict::Allow, hybrid_guard::Outcome::NeedsApproval { guardrail, message }) =
            (verdict, &guarded)
        {
            verdict = PolicyVerdict::Approve;
            rule = format!("guardrail:{guardrail}");
            reason = message.clone();
        }
        let command = command.unwrap_or_else(|| format!("{} {}", request.tool, request.arguments));
        match verdict {
            PolicyVerdict::Allow => self.admit(&request).await,
            PolicyVerdict::Deny => GateDecision::Deny { rule, reason },
            PolicyVerdict::Approve => {
                let ask = ApprovalAsk {
                    agent: request.agent.to_owned(),
                    call_id: request.call_id.to_owned(),
                    tool: request.tool.to_owned(),
                    command: command.clone(),
                    rule: rule.clone(),
                    reason: reason.clone(),
                };
                self.set_waiting(1).await;
                let ctx = ApprovalContext {
                    events: self.events.clone(),
                    cancel: self.cancel.clone(),
                };
                let answer = self.approver.ask(&ask, &ctx).await;
                self.set_waiting(-1).await;
                let (approved_by, output) = match &answer {
                    ApprovalAnswer::Approved { by, note } => (
                        Some(by.clone()),
                        format!(
                            "approved by {by}{}",
                            note.as_ref().map(|n| format!(": {n}")).unwrap_or_default()
                        ),
                    ),
                    ApprovalAnswer::Rejected { by, reason } => (
                        None,
                        format!(
                            "rejected by {by}{}",
                            reason
                                .as_ref()
                                .map(|r| format!(": {r}"))
                                .unwrap_or_default()
                        ),
                    ),
                };
                if let Some(by) = &approved_by {
                    self.events.note_approval(request.call_id, by).await;
                }
                self.events
                    .audit(AuditNote {
                        agent: request.agent.to_owned(),
                        action: "approval".into(),
                        command: Some(command.clone()),
                        output: Some(output),
                        approved_by,
                        detail: serde_json::json!({"call_id": request.call_id, "tool": request.tool, "rule": rule}),
                    })
                    .await;
                match answer {
                    ApprovalAnswer::Approved { by, .. } => {
                        self.note(format!("approved by {by}: `{command}`")).await;
                        self.admit(&request).await
                    }
                    ApprovalAnswer::Rejected { by, reason } => GateDecision::Deny {
                        rule,
                        reason: format!(
                            "not approved (rejected by {by}{})",
                            reason.map(|r| format!(": {r}")).unwrap_or_default()
                        ),
                    },
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::time::Duration;

    use hybrid_agents::{GateDecision, ToolGate, ToolRequest};
    use hybrid_core::Task;
    use hybrid_guard::{RateLimits, RateRule, RateScope};
    use serde_json::json;

    use super::*;
    use crate::approval::NoApprover;

    fn glob_call<'a>(id: &'a str, args: &'a serde_json::Value) -> ToolRequest<'a> {
        ToolRequest {
            agent: "executor",
            call_id: id,
            tool: "glob",
            arguments: args,
        }
    }

    #[tokio::test]
    async fn a_tool_over_its_limit_waits_within_the_bound_and_is_refused_beyond_it() {
        // The store is opened on the real clock; the limiter then runs on a
        // paused one, so the waits below are exact and take no time.
        let store = hybrid_store::connect("sqlite::memory:").await.unwrap();
        let task = Task::new("t");
        store.create_task(&task).await.unwrap();
        let sink = Arc::new(EventSink::new(task.id.clone(), store, None));
        tokio::time::pause();
        // Two glob calls a minute: a cell every 30 s.
        let rates = |max_wait| {
            Arc::new(
                RateLimits::new(
                    vec![RateRule::per_minute(RateScope::Tool("glob".into()), 2)],
                    Duration::from_secs(max_wait),
                )
                .unwrap(),
            )
        };
        let gate = |max_wait| {
            PolicyGate::new(
                Arc::new(CommandPolicy::seed_default()),
                Arc::new(NoApprover),
                sink.clone(),
                CancellationToken::new(),
            )
            .with_rate_limits(Some(rates(max_wait)))
        };
        let args = json!({"pattern": "*"});

        // Waits up to 40 s: the third call waits 30 s, then runs.
        let patient = gate(40);
        let start = tokio::time::Instant::now();
        for id in ["1", "2"] {
            assert_eq!(
                patient.check(glob_call(id, &args)).await,
                GateDecision::Allow
            );
        }
        assert_eq!(start.elapsed(), Duration::ZERO, "the burst is free");
        assert_eq!(
            patient.check(glob_call("3", &args)).await,
            GateDecision::Allow
        );
        // (Tokio's timer rounds a sleep up to the next millisecond.)
        let waited = start.elapsed();
        assert!(
            waited >= Duration::from_secs(30) && waited <= Duration::from_millis(30_001),
            "waited {waited:?}"
        );

        // Waits up to 10 s: the third call would need 30 s, so it is refused at once.
        let impatient = gate(10);
        for id in ["1", "2"] {
            assert_eq!(
                impatient.check(glob_call(id, &args)).await,
                GateDecision::Allow
            );
        }
        match impatient.check(glob_call("3", &args)).await {
            GateDecision::Deny { rule, reason } => {
                assert_eq!(rule, "rate_limit:tool:glob");
                assert!(reason.contains("retry after 30.0s"), "{reason}");
            }
            GateDecision::Allow => panic!("over the limit and beyond the bound"),
        }
        // Other tools are not limited by a glob rule.
        let grep = ToolRequest {
            tool: "grep",
            ..glob_call("4", &args)
        };
        assert_eq!(impatient.check(grep).await, GateDecision::Allow);
    }
}
