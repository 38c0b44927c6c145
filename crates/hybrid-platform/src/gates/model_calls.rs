//! The gate of a run's model calls: rate limits, then budgets.
//!
//! Before each call:
//!
//! 1. the rate limits for the call's platform, agent and submitter
//!    ([`RateLimits::acquire`]: waits up to the configured bound, then refuses);
//! 2. when any budget is set, the call's worst-case cost
//!    ([`hybrid_llm::ChatModel::estimate`]: input tokens counted, the output
//!    cap assumed spent, at the model's prices) is reserved against every
//!    budget scope at once; if one would go over, nothing is reserved and the
//!    call is refused before any byte is sent.
//!
//! After each call the reservation is settled to what the provider reported
//! (a failed call settles to zero: providers do not bill refused requests),
//! so actual usage is what counts, and a run whose actual usage crossed a
//! budget is refused at its next call.
//!
//! A refusal stops the task `blocked`, naming the rule (`rate_limit:…`,
//! `budget:task`, …) in the result, a `warning` event and an audit record
//! (counted by `get_metrics` like any guardrail). A model the price table does
//! not know cannot be held to a budget: its calls go on, with one warning per
//! run saying so.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use hybrid_agents::{ModelCallRequest, ModelGate, ModelPermit, ModelRefusal};
use hybrid_core::{EventKind, Money, TaskId};
use hybrid_guard::rate_limit::{RateKeys, RateLimits};
use hybrid_guard::{Decision, GuardrailKind, Layer, Outcome};
use hybrid_llm::ChatResponse;
use hybrid_store::{BudgetCharge, BudgetScope, ChargeOutcome};

use crate::context::EventSink;
use crate::limits::Budgets;

/// Rate limits and budgets for one run's model calls on one platform.
pub struct MeteredModelGate {
    /// Spending limits.
    pub budgets: Budgets,
    /// Rate limits, shared by every run of the platform object.
    pub rates: Option<Arc<RateLimits>>,
    /// The task.
    pub task: TaskId,
    /// Who submitted it.
    pub submitter: Option<String>,
    /// The platform the calls go to.
    pub platform: String,
    /// The stage, for the ledger.
    pub stage: String,
    /// The run's events and audit trail (and through them the store).
    pub events: Arc<EventSink>,
    warned_unpriced: AtomicBool,
}

impl std::fmt::Debug for MeteredModelGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeteredModelGate")
            .field("budgets", &self.budgets)
            .field("task", &self.task)
            .field("platform", &self.platform)
            .finish_non_exhaustive()
    }
}

/// Dollars with four decimals, for messages.
fn dollars(m: Money) -> String {
    format!("${:.4}", m.as_usd())
}

impl MeteredModelGate {
    /// A gate for `task`'s calls to `platform` in `stage`.
    pub fn new(
        budgets: Budgets,
        rates: Option<Arc<RateLimits>>,
        task: &hybrid_core::Task,
        platform: impl Into<String>,
        stage: impl Into<String>,
        events: Arc<EventSink>,
    ) -> Self {
        MeteredModelGate {
            budgets,
            rates,
            task: task.id.clone(),
            submitter: task.submitted_by.clone(),
            platform: platform.into(),
            stage: stage.into(),
            events,
            warned_unpriced: AtomicBool::new(false),
        }
    }

    fn scopes(&self) -> Vec<(BudgetScope, Money)> {
        self.budgets
            .scopes(&self.task, &self.platform, self.submitter.as_deref())
    }

    /// Records a refusal like a guardrail's block, and returns it.
    async fn refuse(&self, rule: String, kind: GuardrailKind, reason: String) -> ModelRefusal {
        let decision = Decision {
            layer: Layer::Platform,
            outcome: Outcome::Block {
                guardrail: rule.clone(),
                kind,
                message: reason.clone(),
            },
            triggered: vec![Outcome::Block {
                guardrail: rule.clone(),
                kind,
                message: reason.clone(),
            }],
        };
        if let Err(e) = crate::gates::guardrail_layers::record(&decision, &self.events).await {
            // The decision stands (a block still blocks); only its record is missing.
            tracing::warn!(error = %e, "could not record a guardrail decision");
        }
        ModelRefusal {
            rule,
            kind: kind.as_str().to_owned(),
            reason,
        }
    }

    async fn warn_unpriced(&self, model: &str) {
        if self.warned_unpriced.swap(true, Ordering::Relaxed) {
            return;
        }
        let message = format!(
            "budgets are set but model `{model}` has no price (add [prices.\"{model}\"]): \
             its calls are not held to them"
        );
        if let Err(e) = self.events.emit(EventKind::Warning { message }).await {
            tracing::warn!(error = %e, "could not record a warning");
        }
    }
}

#[async_trait]
impl ModelGate for MeteredModelGate {
    /// Commits what the run has queued for the store first (the step before
    /// is durable before a call spends money), then the rate limits and the
    /// budgets.
    async fn before_call(&self, call: ModelCallRequest<'_>) -> Result<ModelPermit, ModelRefusal> {
        if let Err(e) = self.events.flush().await {
            return Err(ModelRefusal {
                rule: "store".into(),
                kind: "store".into(),
                reason: format!("the run's records could not be committed before the call: {e}"),
            });
        }
        if let Some(rates) = &self.rates {
            let mut keys = RateKeys::default()
                .platform(self.platform.clone())
                .agent(call.agent);
            if let Some(who) = &self.submitter {
                keys = keys.submitter(who.clone());
            }
            if let Err(limited) = rates.acquire(&keys).await {
                let rule = format!("rate_limit:{}", limited.scope);
                let reason = format!(
                    "{} calls are over the limit {} (retry after {:.1}s)",
                    limited.key,
                    limited.rule,
                    limited.retry_after.as_secs_f64()
                );
                return Err(self.refuse(rule, GuardrailKind::RateLimit, reason).await);
            }
        }
        if self.budgets.is_empty() {
            return Ok(ModelPermit::default());
        }
        let estimate = call.model.estimate(call.request);
        let Some(amount) = estimate.as_ref().and_then(|e| e.cost) else {
            self.warn_unpriced(call.model.model()).await;
            return Ok(ModelPermit {
                estimate,
                ..ModelPermit::default()
            });
        };
        let (input, output) = estimate
            .as_ref()
            .map(|e| (e.input_tokens, e.max_output_tokens))
            .unwrap_or_default();
        let scopes = self.scopes();
        let booked = scopes.iter().map(|(s, _)| s.key()).collect();
        let charge = BudgetCharge {
            scopes,
            amount,
            task_id: self.task.clone(),
            note: format!(
                "estimate {} {} stage {}: {input} input + up to {output} output tokens",
                self.platform,
                call.model.model(),
                self.stage
            ),
        };
        match self.events.store().reserve_budget(&charge).await {
            Ok(ChargeOutcome::Charged { .. }) => Ok(ModelPermit {
                reserved: Some(amount),
                estimate,
                booked,
            }),
            Ok(ChargeOutcome::WouldExceed {
                scope,
                spent,
                limit,
                amount,
            }) => {
                let kind = scope.key();
                let kind = kind.split(':').next().unwrap_or("budget");
                let reason = format!(
                    "budget {scope} would go over its limit of {}: {} spent, and the next \
                     {} call could cost up to {} ({input} input + up to {output} output tokens)",
                    dollars(limit),
                    dollars(spent),
                    call.model.model(),
                    dollars(amount),
                );
                Err(self
                    .refuse(format!("budget:{kind}"), GuardrailKind::CostLimit, reason)
                    .await)
            }
            Err(e) => Err(self
                .refuse(
                    "budget".into(),
                    GuardrailKind::CostLimit,
                    format!("the budget could not be checked, so the call is not sent: {e}"),
                )
                .await),
        }
    }

    async fn after_call(
        &self,
        call: ModelCallRequest<'_>,
        permit: ModelPermit,
        response: Option<&ChatResponse>,
    ) {
        if let (Some(estimate), Some(r)) = (&permit.estimate, response) {
            call.model.observe_usage(estimate, &r.usage);
        }
        let Some(reserved) = permit.reserved else {
            return;
        };
        // A failed call is not billed; a response the price table cannot
        // price keeps its reservation.
        let actual = match response {
            None => Money::ZERO,
            Some(r) => r.cost.unwrap_or(reserved),
        };
        let scopes: Vec<BudgetScope> = permit
            .booked
            .iter()
            .filter_map(|k| BudgetScope::parse(k).ok())
            .collect();
        let note = format!(
            "actual {} {} stage {}",
            self.platform,
            call.model.model(),
            self.stage
        );
        if let Err(e) = self
            .events
            .store()
            .settle_budget(&scopes, reserved, actual, &self.task, &note)
            .await
        {
            tracing::error!(error = %e, task = %self.task, "could not settle a budget reservation");
        }
    }
}
