//! Approvals stored in the database, answered from any process that shares it.
//!
//! [`StoreApprover`] records the request (`hybrid approvals list` shows it),
//! reports an `approval_requested` event, then waits: it polls the store until
//! someone answers (`hybrid approvals approve|reject ID --by NAME`, from this
//! or another process), an optional local prompt answers, the request expires
//! (then it is marked `expired` and counts as a rejection), or the run is
//! cancelled.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use hybrid_core::EventKind;
use hybrid_store::{ApprovalStatus, NewApproval, StoreError};

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
            Err(e) => return store_failed("record the approval request", &e),
        };
        let id = approval.id.clone();
        let announced = async {
            ctx.events
                .emit(EventKind::ApprovalRequested {
                    approval_id: id.clone(),
                    tool: ask.tool.clone(),
                    command: ask.command.clone(),
                    rule: ask.rule.clone(),
                    reason: ask.reason.clone(),
                })
                .await?;
            ctx.events.flush().await
        };
        if let Err(e) = announced.await {
            // Nobody may learn of it: close it rather than wait for an answer.
            if let Err(closing) = store
                .expire_approval(&id, "the request could not be announced")
                .await
            {
                tracing::warn!(error = %closing, approval = %id, "could not close an unannounced approval");
            }
            return store_failed("announce the approval request", &e);
        }

        let local = async {
            match &self.prompt {
                Some((p, name)) => match p.prompt(ask, &id).await {
                    Some(yes) => {
                        let note = Some("answered at the terminal");
                        // The store decides: an answer recorded first elsewhere wins, and
                        // the wait below reads whichever answer stands.
                        if let Err(e) = store.decide_approval(&id, yes, name, note).await {
                            tracing::warn!(error = %e, approval = %id, "the terminal's answer was not recorded");
                        }
                        std::future::pending::<Infallible>().await
                    }
                    None => std::future::pending::<Infallible>().await,
                },
                None => std::future::pending::<Infallible>().await,
            }
        };
        let wait = self.wait_for_answer(&store, &id);
        tokio::pin!(local);
        tokio::pin!(wait);
        let decided = tokio::select! {
            a = &mut wait => a,
            never = &mut local => match never {},
            () = ctx.cancel.cancelled() => {
                if let Err(e) = store.expire_approval(&id, "the run was cancelled").await {
                    tracing::warn!(error = %e, approval = %id, "could not close a cancelled run's approval");
                }
                return rejected("platform", "the run was cancelled".into());
            }
        };
        let a = match decided {
            Ok(a) => a,
            Err(e) => return store_failed("read the approval's answer", &e),
        };
        let approved = a.status == ApprovalStatus::Approved;
        let by = a.decided_by.clone().unwrap_or_else(|| "timeout".to_owned());
        if let Err(e) = ctx
            .events
            .emit(EventKind::ApprovalAnswered {
                approval_id: id.clone(),
                approved,
                by: by.clone(),
                note: a.note.clone(),
            })
            .await
        {
            // The answer stands in the store; only its event is missing.
            tracing::warn!(error = %e, approval = %id, "could not record the approval_answered event");
        }
        if approved {
            ApprovalAnswer::Approved { by, note: a.note }
        } else {
            ApprovalAnswer::Rejected { by, reason: a.note }
        }
    }
}

impl StoreApprover {
    /// Polls the store until the request is answered or, past its timeout,
    /// expires it. The deadline is tokio's clock, so a paused test clock runs
    /// through it at once. A store that keeps failing past the deadline ends
    /// the wait with its error instead of polling forever.
    async fn wait_for_answer(
        &self,
        store: &Arc<dyn hybrid_store::Store>,
        id: &str,
    ) -> Result<hybrid_store::Approval, StoreError> {
        let deadline = tokio::time::Instant::now() + self.timeout;
        loop {
            match store.get_approval(id).await {
                Ok(Some(a)) if a.status != ApprovalStatus::Pending => return Ok(a),
                Ok(_) => {}
                Err(e) if tokio::time::Instant::now() >= deadline => return Err(e),
                Err(e) => {
                    tracing::debug!(error = %e, approval = id, "polling the approval failed; retrying")
                }
            }
            if tokio::time::Instant::now() >= deadline {
                let note = format!("no answer within {}s", self.timeout.as_secs());
                match store.expire_approval(id, &note).await {
                    Ok(a) => return Ok(a),
                    // Answered at the last moment: the next read returns it.
                    Err(StoreError::ApprovalClosed { .. }) => continue,
                    Err(e) => return Err(e),
                }
            }
            tokio::time::sleep(self.poll).await;
        }
    }
}

/// The answer when the store cannot carry the approval: no (fail closed).
fn store_failed(what: &str, e: &StoreError) -> ApprovalAnswer {
    rejected("platform", format!("could not {what}: {e}"))
}
