//! HybridPlatform's library examples, one topic per file:
//!
//! | example | shows |
//! | --- | --- |
//! | `quickstart` | `HybridPlatform::from_env()` → `run` → a result, in ten lines |
//! | `streaming` | `run_streaming`: the route, text deltas, tool calls and the result as they happen |
//! | `custom_guardrail` | `add_guardrail`: the seed's `cost_limit` closure, a CEL rule, a `CustomGuardrail` |
//! | `custom_platform` | `register_platform`: a third provider (Gemini through its OpenAI-compatible endpoint) beside `openai` and `claude` |
//! | `custom_agent` | `register_agent`: a Rust `CustomAgent` used from a workflow stage like a built-in role |
//!
//! Run one with `cargo run -p hybrid-examples --example NAME`. Each example's
//! logic is also run by this package's tests against the testkit's mock server.
