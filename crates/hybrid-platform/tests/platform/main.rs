//! The platform's integration tests, as one test binary (each file was its own
//! binary, and each relinked everything). Filter by module:
//! `cargo test -p hybrid-platform --test platform workflows::`.
//!
//! | module | what |
//! | --- | --- |
//! | `run` | routing, committing every step, streaming, provider failures, cancellation, custom platforms and routers |
//! | `execution` | the tool gate through a run: policy, approvals, bad tool calls, agent sections |
//! | `guardrails` | L1/L2/L3/L4 through runs; held-back streamed output |
//! | `budgets`, `rate_limits`, `fallback` | the model gate: budgets, rate limits, 429 fallback |
//! | `workflows` | the workflow engine: the hybrid route, resume, stage kinds, handoffs, caching |
//! | `e2e_incident_response`, `e2e_code_review_deploy` | the built-in workflows against real fixtures |
//! | `live_tool_calls` | the tool-call eval against the live local model (`scripts/test.sh`) |
//!
//! Platforms come from `hybrid_testkit::platform::TestPlatform` where the
//! common two-layer set-up fits.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod budgets;
mod e2e_code_review_deploy;
mod e2e_incident_response;
mod execution;
mod fallback;
mod guardrails;
mod live_tool_calls;
mod rate_limits;
mod run;
mod workflows;
