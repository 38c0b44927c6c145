//! The tool-call eval against the live local model (`scripts/test.sh` starts
//! it): the executor's own tools, asked twenty operations requests over both
//! protocols.

use hybrid_testkit::tool_call_eval::{CASES, evaluate, live_models};

/// Every request with the executor's six tools and their schemas is accepted by
/// llama-server on both protocols (OpenAI `tools`, Anthropic `tools`), and the
/// eval's figures are printed. How many calls are valid is the model's part,
/// not this test's: the default model makes none (see scripts/LOCAL_MODEL.md).
#[tokio::test]
async fn executor_tools_are_accepted_over_both_protocols() {
    let Some(models) = live_models() else {
        eprintln!("skipped: HYBRID_LIVE_* not set (scripts/test.sh starts the local model server)");
        return;
    };
    for (label, model) in models {
        let report = evaluate(label, model.as_ref(), 32).await;
        assert_eq!(report.outcomes.len(), CASES.len());
        let failed: Vec<&str> = report
            .outcomes
            .iter()
            .filter(|o| o.failed)
            .map(|o| o.detail.as_str())
            .collect();
        assert!(
            failed.is_empty(),
            "{label}: {} requests failed: {failed:?}",
            failed.len()
        );
        eprintln!(
            "{label}: {} of {} cases called a tool, {} valid, {} fit",
            report.called(),
            CASES.len(),
            report.valid(),
            report.fit()
        );
    }
}
