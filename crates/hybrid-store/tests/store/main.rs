//! The store's integration tests, in one binary (every test binary links
//! the whole store and sqlx again, which two cores feel):
//!
//! | module | runs |
//! | --- | --- |
//! | [`suite`] | the cases every backend must pass, each on a fresh database |
//! | [`sqlite`] | the suite on a SQLite file and in memory, and SQLite's own cases |
//! | [`postgres`] | the suite on PostgreSQL (a schema per case), and its own cases |
//! | [`connect`] | opening stores by URL |
//! | [`harness`] | [`Harness`](harness::Harness), [`store_suite!`], bounded waits |
//!
//! PostgreSQL comes from `HYBRID_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`); unreachable, its cases are
//! skipped with a message, unless `CI` is set: then they fail.

#![cfg(test)]

#[macro_use]
mod harness;
mod connect;
mod postgres;
mod sqlite;
mod suite;
