//! `approval` stages: nothing runs; a person says yes or no (journaled, so a
//! resumed task does not ask again), or the stage's timeout says no.

use std::sync::Arc;

use hybrid_core::{StageResult, TaskStatus};
use hybrid_workflow::{Stage, StageOutcome};
use serde_json::{Value, json};

use crate::PlatformError;
use crate::approval::{ApprovalAnswer, ApprovalAsk, ApprovalContext, NoApprover};
use crate::context::AuditNote;
use hybrid_store::JournalBegin;

impl super::WorkflowRun<'_> {
    pub(super) async fn approval_stage(
        &self,
        stage: &Stage,
        message: &str,
        timeout: Option<std::time::Duration>,
        attempt: u32,
    ) -> Result<(StageOutcome, StageResult), PlatformError> {
        let key = format!("stage:{}/approval/attempt:{attempt}", stage.id);
        let answer = match self.t.store.journal_begin(&self.task.id, &key).await? {
            JournalBegin::Finished(v) => serde_json::from_value::<Answer>(v).ok(),
            JournalBegin::Interrupted { .. } | JournalBegin::Started => None,
        };
        let answer = match answer {
            Some(a) => a,
            None => {
                let answer = self.ask(stage, message, &key, timeout).await?;
                let value = serde_json::to_value(&answer).unwrap_or(Value::Null);
                // An interrupted ask has no row to finish: begin again is a no-op.
                if self
                    .t
                    .store
                    .journal_finish(&self.task.id, &key, &value)
                    .await
                    .is_err()
                {
                    tracing::debug!(key, "approval answer not journaled (already finished)");
                }
                answer
            }
        };
        let text = if answer.approved {
            format!("approved by {}{}", answer.by, note(&answer.note))
        } else {
            format!("rejected by {}{}", answer.by, note(&answer.note))
        };
        let mut outcome = StageOutcome::completed(text.clone());
        outcome.ok = answer.approved;
        outcome.attempt = attempt;
        let result = StageResult {
            agent: "approval".into(),
            platform: "approval".into(),
            output: format!("{message}\n{text}"),
            verdict: Some(
                if answer.approved {
                    "approved"
                } else {
                    "rejected"
                }
                .into(),
            ),
            ..StageResult::default()
        };
        Ok((outcome, result))
    }

    /// Asks the run's approver; no answer within `timeout` is a rejection
    /// by `timeout` (the approver is cancelled, so a stored ask expires).
    async fn ask(
        &self,
        stage: &Stage,
        message: &str,
        key: &str,
        timeout: Option<std::time::Duration>,
    ) -> Result<Answer, PlatformError> {
        let approver = self
            .t
            .options
            .approver
            .clone()
            .unwrap_or_else(|| Arc::new(NoApprover));
        let ask = ApprovalAsk {
            agent: "workflow".into(),
            call_id: key.to_owned(),
            tool: "approval".into(),
            command: message.to_owned(),
            rule: format!("workflow:{}:{}", self.workflow.name(), stage.id),
            reason: format!(
                "stage `{}` of workflow {} asks for approval",
                stage.id,
                self.workflow.name()
            ),
        };
        let waiting = self.t.sink.status().await == TaskStatus::InProgress;
        if waiting {
            self.t
                .go(TaskStatus::AwaitingApproval, Some(message.to_owned()))
                .await?;
        }
        let cancel = self.t.options.cancel.child_token();
        let ctx = ApprovalContext {
            events: self.t.sink.clone(),
            cancel: cancel.clone(),
        };
        let answer = match timeout {
            None => approver.ask(&ask, &ctx).await,
            Some(limit) => match tokio::time::timeout(limit, approver.ask(&ask, &ctx)).await {
                Ok(answer) => answer,
                Err(_) => {
                    cancel.cancel();
                    ApprovalAnswer::Rejected {
                        by: "timeout".into(),
                        reason: Some(format!("no answer within {}", humantime_secs(limit))),
                    }
                }
            },
        };
        if waiting {
            self.t.go(TaskStatus::InProgress, None).await?;
        }
        let answer = match answer {
            ApprovalAnswer::Approved { by, note } => Answer {
                approved: true,
                by,
                note,
            },
            ApprovalAnswer::Rejected { by, reason } => Answer {
                approved: false,
                by,
                note: reason,
            },
        };
        self.t
            .sink
            .audit(AuditNote {
                agent: "workflow".into(),
                action: "approval".into(),
                command: Some(message.to_owned()),
                output: Some(format!(
                    "{} by {}{}",
                    if answer.approved {
                        "approved"
                    } else {
                        "rejected"
                    },
                    answer.by,
                    note(&answer.note)
                )),
                approved_by: answer.approved.then(|| answer.by.clone()),
                detail: json!({"stage": stage.id, "call_id": key}),
            })
            .await;
        Ok(answer)
    }
}

/// An approval's answer as journaled.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Answer {
    approved: bool,
    by: String,
    note: Option<String>,
}

fn humantime_secs(d: std::time::Duration) -> String {
    format!("{}s", d.as_secs())
}

fn note(n: &Option<String>) -> String {
    n.as_ref().map(|n| format!(": {n}")).unwrap_or_default()
}
