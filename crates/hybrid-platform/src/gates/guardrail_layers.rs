//! The guardrail engine at the run's layers: L1 input (before routing), L2
//! platform (before a stage runs), L3 execution (before each tool call, beside
//! the command policy, in [`crate::gate`]) and L4 output (before a stage's
//! output is released). Each layer finishes before its step starts.
//!
//! | outcome | what the run does |
//! | --- | --- |
//! | pass | goes on |
//! | needs approval | asks the run's approver; a no blocks |
//! | block | stops: the task ends `blocked`, the guardrail and its message in the result |
//!
//! Every decision that is not a pass is a task event and an audit record.

use hybrid_core::EventKind;
use hybrid_guard::{Decision, GuardContext, GuardrailEngine, Layer, Outcome};
use hybrid_store::StoreError;

use crate::PlatformError;
use crate::approval::{ApprovalAnswer, ApprovalAsk, ApprovalContext, Approver};
use crate::context::{AuditNote, EventSink};

/// Evaluates `layer` and turns its decision into "go on" or the error that stops the run.
pub async fn check_layer(
    engine: &GuardrailEngine,
    layer: Layer,
    ctx: &GuardContext,
    sink: &std::sync::Arc<EventSink>,
    approver: &dyn Approver,
    approval: &ApprovalContext,
) -> Result<(), PlatformError> {
    let decision = engine.evaluate(layer, ctx).await;
    if decision.is_pass() {
        return Ok(());
    }
    record(&decision, sink).await?;
    match decision.outcome {
        Outcome::Pass => Ok(()),
        Outcome::Block {
            guardrail, message, ..
        } => Err(PlatformError::Blocked {
            guardrail,
            layer: layer.as_str().to_owned(),
            message,
        }),
        Outcome::NeedsApproval { guardrail, message } => {
            let ask = ApprovalAsk {
                agent: "platform".into(),
                call_id: format!("guardrail:{guardrail}:{}", layer.as_str()),
                tool: format!("guardrail:{guardrail}"),
                command: ctx
                    .task
                    .as_ref()
                    .map(|t| t.description.clone())
                    .unwrap_or_default(),
                rule: format!("guardrail:{guardrail}"),
                reason: message.clone(),
            };
            // Only a running task can wait; at L1 the task is still pending.
            let running = sink.status().await == hybrid_core::TaskStatus::InProgress;
            if running {
                sink.transition(
                    hybrid_core::TaskStatus::AwaitingApproval,
                    Some(message.clone()),
                )
                .await?;
            }
            let answer = approver.ask(&ask, approval).await;
            if running {
                sink.transition(hybrid_core::TaskStatus::InProgress, None)
                    .await?;
            }
            match answer {
                ApprovalAnswer::Approved { .. } => Ok(()),
                ApprovalAnswer::Rejected { by, reason } => Err(PlatformError::Blocked {
                    guardrail,
                    layer: layer.as_str().to_owned(),
                    message: format!(
                        "{message} (not approved: rejected by {by}{})",
                        reason.map(|r| format!(": {r}")).unwrap_or_default()
                    ),
                }),
            }
        }
    }
}

/// Records every triggered outcome of `decision` as an event and an audit record.
pub(crate) async fn record(decision: &Decision, sink: &EventSink) -> Result<(), StoreError> {
    for o in &decision.triggered {
        let (name, verdict, message) = match o {
            Outcome::Pass => continue,
            Outcome::Block {
                guardrail,
                kind,
                message,
            } => (guardrail, format!("block ({kind})"), message),
            Outcome::NeedsApproval { guardrail, message } => {
                (guardrail, "needs approval".to_owned(), message)
            }
        };
        let line = format!(
            "guardrail {name} at {}: {verdict}: {message}",
            decision.layer.as_str()
        );
        sink.emit(EventKind::Warning {
            message: line.clone(),
        })
        .await?;
        sink.audit(AuditNote {
            agent: "guardrails".into(),
            action: "guardrail".into(),
            command: Some(name.clone()),
            output: Some(line),
            detail: serde_json::to_value(o).unwrap_or_default(),
            ..AuditNote::default()
        })
        .await;
    }
    Ok(())
}
