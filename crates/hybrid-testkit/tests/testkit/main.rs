//! hybrid-testkit's integration tests, one binary: each former `tests/NAME.rs` is module
//! `NAME` here (`cargo test -p hybrid-testkit --test testkit openai::`), and `common` holds
//! what they share.

mod common;

mod anthropic;
mod fixtures;
mod openai;
mod prompt_cache;
mod server;
