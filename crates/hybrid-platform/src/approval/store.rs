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
use hybrid_core::{Clock, EventKind, SystemClock};
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
    /// Where the expiry's "now" comes from (tests use a [`ManualClock`](hybrid_core::ManualClock)).
    pub clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for StoreApprover {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreApprover")
            .field("timeout", &self.timeout)
            .field("poll", &self.poll)
            .field("prompt", &self.prompt.is_some())
            .field("clock", &self.clock)
            .finish()
    }
}

impl Default for StoreApprover {
    fn default() -> Self {
        StoreApprover {
            timeout: Duration::from_secs(900),
            poll: Duration::from_millis(300),
            prompt: None,
            clock: Arc::new(SystemClock),
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
        let expires = self
            .clock
            .now()
            .checked_add_signed(
                chrono::Duration::from_std(self.timeout).unwrap_or(chrono::Duration::MAX),
            )
            .unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC);
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
        let wait = self.wait_for_answer(&store, &id, expires);
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
    /// Polls the store until the request is answered or, once the clock
    /// passes `expires`, expires it. A store that keeps failing past the
    /// deadline ends the wait with its error instead of polling forever.
    async fn wait_for_answer(
        &self,
        store: &Arc<dyn hybrid_store::Store>,
        id: &str,
        expires: chrono::DateTime<chrono::Utc>,
    ) -> Result<hybrid_store::Approval, StoreError> {
        loop {
            match store.get_approval(id).await {
                Ok(Some(a)) if a.status != ApprovalStatus::Pending => return Ok(a),
                Ok(_) => {}
                Err(e) if self.clock.now() >= expires => return Err(e),
                Err(e) => {
                    tracing::debug!(error = %e, approval = id, "polling the approval failed; retrying")
                }
            }
            if self.clock.now() >= expires {
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::sync::Arc;
    use std::time::Duration;

    use hybrid_core::{ManualClock, Task};
    use hybrid_store::{ApprovalFilter, Store};
    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::context::EventSink;

    fn ask() -> ApprovalAsk {
        ApprovalAsk {
            agent: "executor".into(),
            call_id: "call_1".into(),
            tool: "bash".into(),
            command: "git push origin main".into(),
            rule: "approve:git push".into(),
            reason: "pushes need a person".into(),
        }
    }

    async fn context() -> (Arc<dyn Store>, ApprovalContext) {
        let store = hybrid_store::connect("sqlite::memory:").await.unwrap();
        let task = Task::new("push");
        store.create_task(&task).await.unwrap();
        let events = Arc::new(EventSink::new(task.id.clone(), store.clone(), None));
        let ctx = ApprovalContext {
            events,
            cancel: CancellationToken::new(),
        };
        (store, ctx)
    }

    /// A fast-polling approver on `clock`.
    fn approver(clock: &Arc<ManualClock>) -> StoreApprover {
        StoreApprover {
            poll: Duration::from_millis(5),
            clock: clock.clone(),
            ..StoreApprover::default()
        }
    }

    /// The request, once stored (within 10 s).
    async fn stored(store: &Arc<dyn Store>) -> hybrid_store::Approval {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let all = store
                .list_approvals(&ApprovalFilter::default())
                .await
                .unwrap();
            if let Some(a) = all.into_iter().next() {
                return a;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no request was stored"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[tokio::test]
    async fn an_unanswered_request_expires_at_its_timeout_as_a_rejection() {
        let (store, ctx) = context().await;
        let clock = Arc::new(ManualClock::starting_now());
        let asking = tokio::spawn({
            let approver = approver(&clock);
            async move { approver.ask(&ask(), &ctx).await }
        });
        let request = stored(&store).await;
        assert_eq!(request.status, ApprovalStatus::Pending);
        // 14 minutes: still waiting.
        clock.advance(Duration::from_secs(14 * 60));
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!asking.is_finished());
        // Past the 15 minutes: it expires, as a rejection by `timeout`.
        clock.advance(Duration::from_secs(61));
        let answer = tokio::time::timeout(Duration::from_secs(10), asking)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            answer,
            ApprovalAnswer::Rejected {
                by: "timeout".into(),
                reason: Some("no answer within 900s".into()),
            }
        );
        assert_eq!(stored(&store).await.status, ApprovalStatus::Expired);
    }

    #[tokio::test]
    async fn an_answer_from_another_process_ends_the_wait() {
        let (store, ctx) = context().await;
        let clock = Arc::new(ManualClock::starting_now());
        let asking = tokio::spawn({
            let approver = approver(&clock);
            async move { approver.ask(&ask(), &ctx).await }
        });
        // Whoever lists the pending requests (another `hybrid` process) answers.
        let request = stored(&store).await;
        store
            .decide_approval(&request.id, true, "alice", Some("release window"))
            .await
            .unwrap();
        let answer = tokio::time::timeout(Duration::from_secs(10), asking)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            answer,
            ApprovalAnswer::Approved {
                by: "alice".into(),
                note: Some("release window".into()),
            }
        );
    }

    #[tokio::test]
    async fn a_cancelled_run_closes_its_request() {
        let (store, ctx) = context().await;
        let cancel = ctx.cancel.clone();
        let clock = Arc::new(ManualClock::starting_now());
        let asking = tokio::spawn({
            let approver = approver(&clock);
            async move { approver.ask(&ask(), &ctx).await }
        });
        stored(&store).await;
        cancel.cancel();
        let answer = tokio::time::timeout(Duration::from_secs(10), asking)
            .await
            .unwrap()
            .unwrap();
        assert!(matches!(answer, ApprovalAnswer::Rejected { ref by, .. } if by == "platform"));
        assert_eq!(stored(&store).await.status, ApprovalStatus::Expired);
    }
}
