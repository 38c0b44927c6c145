//! HybridPlatform's library examples, one topic per file:
//!
//! | example | shows |
//! | --- | --- |
//! | `custom_platform` | `register_platform`: a third provider (Gemini through its OpenAI-compatible endpoint) beside `openai` and `claude` |
//! | `custom_agent` | `register_agent`: a Rust `CustomAgent` used from a workflow stage like a built-in role |
//!
//! Run one with `cargo run -p hybrid-examples --example NAME`. Each example's
//! logic is also run by this package's tests against the testkit's mock server.
