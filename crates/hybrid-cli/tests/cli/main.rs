//! hybrid-cli's integration tests, one binary: each former `tests/NAME.rs` is module `NAME`
//! here (`cargo test -p hybrid-cli --test cli cli_execution::`), and `common` holds what they
//! share: the `hybrid` command builder, output readers and a deadline-bounded wait.

mod common;

mod cli_execution;
mod cli_guardrails;
mod cli_live;
mod cli_policy;
mod cli_resume;
mod cli_run;
mod cli_sandbox;
mod cli_secrets;
mod cli_workflows;
