//! `loop` stages: their stages again, until `until` holds or `max_attempts`
//! (act → verify loops).

use hybrid_core::StageResult;
use hybrid_workflow::{Stage, StageOutcome};

use crate::PlatformError;

impl super::WorkflowRun<'_> {
    pub(super) async fn loop_stage(
        &self,
        stage: &Stage,
        l: &hybrid_workflow::LoopStage,
    ) -> Result<(StageOutcome, StageResult), PlatformError> {
        let mut attempt = 0;
        let mut done = false;
        let order = l.topological_order();
        while attempt < l.max_attempts {
            attempt += 1;
            if attempt > 1
                && let Some(delay) = l.delay
            {
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = self.t.options.cancel.cancelled() => return Err(PlatformError::Cancelled),
                }
            }
            for nested in &order {
                self.run_stage(nested, Some(attempt)).await?;
            }
            let ctx = self.context(Some(attempt)).await;
            done = l.is_done(&ctx).map_err(|e| self.template_error(stage, e))?;
            if done {
                break;
            }
        }
        let last = order.last().map(|s| s.id.clone()).unwrap_or_default();
        let last_output = self
            .results
            .lock()
            .await
            .get(&last)
            .map(|r| r.output.clone())
            .unwrap_or_default();
        let summary = format!(
            "{} after {attempt} attempt{} (until: {})",
            if done { "done" } else { "not done" },
            if attempt == 1 { "" } else { "s" },
            l.until
        );
        let mut outcome = StageOutcome::completed(last_output.clone());
        outcome.ok = done;
        outcome.attempt = attempt;
        let result = StageResult {
            agent: "loop".into(),
            platform: "loop".into(),
            output: format!("{summary}\n{last_output}"),
            ..StageResult::default()
        };
        Ok((outcome, result))
    }
}
