//! hybrid-tools' integration tests, one binary: each former `tests/NAME.rs` is module `NAME`
//! here (`cargo test -p hybrid-tools --test tools sandbox::`), and `common` holds what they
//! share. A test that needs a process of its own re-runs this binary as a child
//! ([`common::run_in_child`]) instead of getting a binary of its own.

mod common;

mod env;
mod mcp_everything;
mod mcp_testkit;
mod sandbox;
mod tools;
