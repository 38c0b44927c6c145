//! `check` stages: rules over earlier results; a failing rule rejects the task.

use hybrid_core::StageResult;
use hybrid_workflow::{Stage, StageOutcome, Verdict};
use serde_json::Value;

use crate::PlatformError;

impl super::WorkflowRun<'_> {
    pub(super) fn check_stage(
        &self,
        stage: &Stage,
        rules: &[hybrid_workflow::CheckRule],
        ctx: &Value,
    ) -> Result<(StageOutcome, StageResult), PlatformError> {
        let mut lines = Vec::with_capacity(rules.len());
        let mut failures = Vec::new();
        for rule in rules {
            let checked = rule
                .evaluate(ctx)
                .map_err(|e| self.template_error(stage, e))?;
            if checked.passed {
                lines.push(format!("PASS {}", checked.name));
            } else {
                let why = checked.message.unwrap_or_default();
                lines.push(format!("FAIL {}: {why}", checked.name));
                failures.push(format!("{}: {why}", checked.name));
            }
        }
        let ok = failures.is_empty();
        let mut outcome = StageOutcome::completed(lines.join("\n"));
        outcome.ok = ok;
        outcome.verdict = Some(if ok { Verdict::Pass } else { Verdict::Fail });
        let result = StageResult {
            agent: "check".into(),
            platform: "check".into(),
            output: if ok {
                lines.join("\n")
            } else {
                failures.join("; ")
            },
            ..StageResult::default()
        };
        Ok((outcome, result))
    }
}
