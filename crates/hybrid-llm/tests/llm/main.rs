//! hybrid-llm's integration tests, one binary: each former `tests/NAME.rs` is module `NAME`
//! here (`cargo test -p hybrid-llm --test llm mock_faults::`), and `common` holds what they
//! share (declared first: its `each_provider_and_mode!` macro is used by the others). The
//! golden request bodies stay in `tests/golden/`.

#[macro_use]
mod common;

mod estimate_usage;
mod golden_requests;
mod live_llama;
mod mock_faults;
mod mock_turns;
mod prompt_cache;
mod transport_edges;
