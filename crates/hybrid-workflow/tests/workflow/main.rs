//! hybrid-workflow's integration tests, one binary: each former `tests/NAME.rs` is module
//! `NAME` here (`cargo test -p hybrid-workflow --test workflow schema::`).

mod load_and_validate;
mod schema;
