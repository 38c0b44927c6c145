//! The tool-call eval of a real model over both protocols: the twenty
//! operations requests of [`hybrid_testkit::tool_call_eval`], asked over
//! OpenAI Chat Completions and Anthropic Messages, and a table of how many
//! times the model called a tool, well formed, and fit for the job.
//!
//! ```text
//! eval "$(scripts/local-model.sh start --env)"
//! cargo run --release -p hybrid-testkit --features platform --bin hybrid-tool-call-eval
//! ```
//!
//! Reads `OPENAI_BASE_URL`, `ANTHROPIC_BASE_URL` and `HYBRID_LOCAL_MODEL` (what
//! `local-model.sh start --env` exports); `EVAL_MAX_TOKENS` (default 160) caps
//! each answer; `EVAL_VERBOSE=1` prints every case. Exit codes: 0 done,
//! 2 a variable missing or malformed, 1 a client could not be built.

// A report binary prints; that is its whole purpose.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::process::ExitCode;

use hybrid_testkit::tool_call_eval::{CASES, Report, clients, evaluate};

fn var(name: &str) -> Result<String, String> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .ok_or_else(|| {
            format!("{name} is not set (eval \"$(scripts/local-model.sh start --env)\" sets it)")
        })
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let config = (|| {
        let max_tokens = match std::env::var("EVAL_MAX_TOKENS") {
            Ok(v) => v
                .trim()
                .parse::<u32>()
                .map_err(|e| format!("EVAL_MAX_TOKENS={v:?}: {e}"))?,
            Err(_) => 160,
        };
        Ok::<_, String>((
            var("OPENAI_BASE_URL")?,
            var("ANTHROPIC_BASE_URL")?,
            var("HYBRID_LOCAL_MODEL")?,
            max_tokens,
        ))
    })();
    let (openai_url, anthropic_url, model, max_tokens) = match config {
        Ok(c) => c,
        Err(e) => {
            eprintln!("hybrid-tool-call-eval: {e}");
            return ExitCode::from(2);
        }
    };
    let models = match clients(&openai_url, &anthropic_url, &model) {
        Ok(models) => models,
        Err(e) => {
            eprintln!("hybrid-tool-call-eval: cannot build a client: {e}");
            return ExitCode::from(1);
        }
    };
    let verbose = std::env::var("EVAL_VERBOSE").is_ok_and(|v| v == "1");
    let mut reports = Vec::new();
    for (label, client) in &models {
        let report = evaluate(label, client.as_ref(), max_tokens).await;
        if verbose {
            print_cases(&report);
        }
        reports.push(report);
    }
    println!(
        "tool-call eval: model {model}, {} cases, temperature 0, max_tokens {max_tokens}",
        CASES.len()
    );
    println!(
        "{:<10} {:>7} {:>7} {:>7} {:>8} {:>9}",
        "protocol", "called", "valid", "fit", "valid %", "tokens/s"
    );
    for r in &reports {
        println!(
            "{:<10} {:>7} {:>7} {:>7} {:>7.0}% {:>9.1}",
            r.label,
            r.called(),
            r.valid(),
            r.fit(),
            r.valid_fraction() * 100.0,
            r.tokens_per_second()
        );
    }
    ExitCode::SUCCESS
}

fn print_cases(report: &Report) {
    for o in &report.outcomes {
        let mark = match (o.valid, o.fit) {
            (true, true) => "fit",
            (true, false) => "valid",
            (false, _) if o.called => "bad",
            (false, _) => "none",
        };
        let prompt = CASES.get(o.case).map_or("", |c| c.prompt);
        println!(
            "{:<9} {:>2} {:<5} {:>6.1}s  {prompt}  ->  {}",
            report.label,
            o.case,
            mark,
            o.took.as_secs_f64(),
            o.detail
        );
    }
}
