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
use hybrid_guard::{CommandPolicy, Verdict};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use crate::context::{AuditNote, EventSink};

/// A tool call that needs a person's yes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalAsk {
    /// The agent asking.
    pub agent: String,
    /// The provider's call id.
    pub call_id: String,
    /// The tool.
    pub tool: String,
    /// What would run (the command line, or the tool name).
    pub command: String,
    /// The rule that asked for approval.
    pub rule: String,
    /// Why.
    pub reason: String,
}

/// A person's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApprovalAnswer {
    /// Yes.
    Approved {
        /// Who.
        by: String,
        /// Their note.
        note: Option<String>,
    },
    /// No.
    Rejected {
        /// Who (or `timeout`).
        by: String,
        /// Why.
        reason: Option<String>,
    },
}

/// What an approver may use: the run's events (and through them the store).
#[derive(Debug, Clone)]
pub struct ApprovalContext {
    /// The run's event sink.
    pub events: Arc<EventSink>,
    /// Cancelled when the run is.
    pub cancel: CancellationToken,
}

/// Asks for and waits for approvals.
#[async_trait]
pub trait Approver: Send + Sync {
    /// Waits for the answer to one ask.
    async fn ask(&self, ask: &ApprovalAsk, ctx: &ApprovalContext) -> ApprovalAnswer;
}

/// Answers no: for runs that nobody can approve.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoApprover;

#[async_trait]
impl Approver for NoApprover {
    async fn ask(&self, _ask: &ApprovalAsk, _ctx: &ApprovalContext) -> ApprovalAnswer {
        ApprovalAnswer::Rejected {
            by: "platform".into(),
            reason: Some("approval is required and this run has no way to ask for it".into()),
        }
    }
}

/// Answers yes in a given name (`hybrid run --approve-as NAME`).
#[derive(Debug, Clone)]
pub struct PreApproved {
    /// Recorded as the approver.
    pub name: String,
}

#[async_trait]
impl Approver for PreApproved {
    async fn ask(&self, _ask: &ApprovalAsk, _ctx: &ApprovalContext) -> ApprovalAnswer {
        ApprovalAnswer::Approved {
            by: self.name.clone(),
            note: Some("--approve-as".into()),
        }
    }
}

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
                crate::guardrail_layers::record(&decision, &self.events).await;
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
        if !decision.is_pass() {
            crate::guardrail_layers::record(&decision, &self.events).await;
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
    async fn check(&self, request: ToolRequest<'_>) -> GateDecision {
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
            None => (Verdict::Allow, "tool".to_owned(), String::new()),
        };
        if let (Verdict::Allow, hybrid_guard::Outcome::NeedsApproval { guardrail, message }) =
            (verdict, &guarded)
        {
            verdict = Verdict::Approve;
            rule = format!("guardrail:{guardrail}");
            reason = message.clone();
        }
        let command = command.unwrap_or_else(|| format!("{} {}", request.tool, request.arguments));
        match verdict {
            Verdict::Allow => self.admit(&request).await,
            Verdict::Deny => GateDecision::Deny { rule, reason },
            Verdict::Approve => {
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
