//! hybrid-guard's integration tests, one binary: each former `tests/NAME.rs` is module `NAME`
//! here (`cargo test -p hybrid-guard --test guard policy_table::`).

mod guardrails;
mod policy_table;
mod robustness;
