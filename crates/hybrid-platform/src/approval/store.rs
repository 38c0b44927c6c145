//! Approvals stored in the database, answered from any process that shares it.
//!
//! [`StoreApprover`] records the request (`hybrid approvals list` shows it),
//! reports an `approval_requested` event, then waits: it polls the store until
//! someone answers (`hybrid approvals approve|reject ID --by NAME`, from this
//! or another process), an optional local prompt answers, the request expires
//! (then it is marked `expired` and counts as a rejection), or the run is
//! cancelled.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use hybrid_core::EventKind;
use hybrid_store::{ApprovalStatus, NewApproval};

use crate::approval::{ApprovalAnswer, ApprovalAsk, ApprovalContext, Approver};

/// Answers a pending approval locally (e.g. a terminal prompt), or not at all.
#[async_trait]
pub trait LocalPrompt: Send + Sync {
    /// `Some(yes)` when answered here, `None` when this prompt cannot answer.
    async fn prompt(&self, ask: &ApprovalAsk, approval_id: &str) -> Option<bool>;
}

/// Waits for an answer recorded in the store.
pub struct StoreApprover {
    /// How long a request waits before it expires.
    pub timeout: Duration,
    /// How often the store is asked.
    pub poll: Duration,
    /// A local way to answer, raced against the store.
    pub prompt: Option<(Arc<dyn LocalPrompt>, String)>,
}

impl std::fmt::Debug for StoreApprover {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreApprover")
            .field("timeout", &self.timeout)
            .field("poll", &self.poll)
            .field("prompt", &self.prompt.is_some())
            .finish()
    }
}

impl Default for StoreApprover {
    fn default() -> Self {
        StoreApprover {
            timeout: Duration::from_secs(900),
            poll: Duration::from_millis(300),
            prompt: None,
        }
    }
}

impl StoreApprover {
    /// Also lets `prompt` answer, recording its answers as `name`.
    pub fn with_prompt(mut self, prompt: Arc<dyn LocalPrompt>, name: impl Into<String>) -> Self {
        self.prompt = Some((prompt, name.into()));
        self
    }
}

fn rejected(by: &str, reason: String) -> ApprovalAnswer {
    ApprovalAnswer::Rejected {
        by: by.to_owned(),
        reason: Some(reason),
    }
}

#[async_trait]
impl Approver for StoreApprover {
    async fn ask(&self, ask: &ApprovalAsk, ctx: &ApprovalContext) -> ApprovalAnswer {
        let store = ctx.events.store().clone();
        let expires =
            Utc::now() + chrono::Duration::from_std(self.timeout).unwrap_or(chrono::Duration::MAX);
        let new = NewApproval {
            task_id: ctx.events.task_id().clone(),
            call_id: ask.call_id.clone(),
            agent: ask.agent.clone(),
            tool: ask.tool.clone(),
            command: ask.command.clone(),
            rule: ask.rule.clone(),
            reason: ask.reason.clone(),
            expires_at: Some(expires),
        };
        let approval = match store.create_approval(&new).await {
            Ok(a) => a,
            Err(e) => {
                return rejected(
                    "platform",
                    format!("could not record the approval request: {e}"),
                );
            }
        };
        let id = approval.id.clone();
        let _ = ctx
            .events
            .emit(EventKind::ApprovalRequested {
                approval_id: id.clone(),
                tool: ask.tool.clone(),
                command: ask.command.clone(),
                rule: ask.rule.clone(),
                reason: ask.reason.clone(),
            })
            .await;
        let _ = ctx.events.flush().await;

        let local = async {
            match &self.prompt {
                Some((p, name)) => match p.prompt(ask, &id).await {
                    Some(yes) => {
                        let note = Some("answered at the terminal");
                        let _ = store.decide_approval(&id, yes, name, note).await;
                    }
                    None => std::future::pending::<()>().await,
                },
                None => std::future::pending::<()>().await,
            }
        };
        let wait = async {
            loop {
                match store.get_approval(&id).await {
                    Ok(Some(a)) if a.status != ApprovalStatus::Pending => return a,
                    Ok(_) | Err(_) => {}
                }
                if Utc::now() >= expires {
                    let note = format!("no answer within {}s", self.timeout.as_secs());
                    // An error means someone answered at the last moment: read it next turn.
                    if let Ok(a) = store.expire_approval(&id, &note).await {
                        return a;
                    }
                }
                tokio::time::sleep(self.poll).await;
            }
        };
        tokio::pin!(local);
        tokio::pin!(wait);
        let decided = loop {
            tokio::select! {
                a = &mut wait => break Some(a),
                () = &mut local => {}
                () = ctx.cancel.cancelled() => break None,
            }
        };
        let Some(a) = decided else {
            let _ = store.expire_approval(&id, "the run was cancelled").await;
            return rejected("platform", "the run was cancelled".into());
        };
        let approved = a.status == ApprovalStatus::Approved;
        let by = a.decided_by.clone().unwrap_or_else(|| "timeout".to_owned());
        let _ = ctx
            .events
            .emit(EventKind::ApprovalAnswered {
                approval_id: id.clone(),
                approved,
                by: by.clone(),
                note: a.note.clone(),
            })
            .await;
        if approved {
            ApprovalAnswer::Approved { by, note: a.note }
        } else {
            ApprovalAnswer::Rejected { by, reason: a.note }
        }
    }
}
