//! Limits on what a task may spend and how fast it may call: budgets, rate
//! limits, and the fallback when a provider says "too many".
//!
//! | module | what |
//! | --- | --- |
//! | [`budgets`] | [`Budgets`]: spending limits per task, platform, submitter and UTC day, held in the store |
//! | [`config`] | `[budgets]` and `[rate_limits]` of `hybrid.toml` |
//! | [`fallback`] | a model that moves to another platform's model when the first is rate limited |
//!
//! The rate limiter itself is hybrid-guard's [`RateLimits`](hybrid_guard::RateLimits);
//! [`gates::model_calls`](crate::gates::model_calls) applies both before every model call.

pub(crate) mod budgets;
pub(crate) mod config;
pub(crate) mod fallback;

pub use budgets::Budgets;
pub use config::{BudgetsConfig, RateLimitsConfig, RateRuleConfig};
