//! Running a task: the facade, single-platform runs, and the router.
//!
//! | module | what it holds |
//! | --- | --- |
//! | [`facade`] | [`HybridPlatform`]: `run`, `run_streaming`, `resume`, `dry_run`, `register_*`, `get_metrics` |
//! | [`builder`] | [`HybridPlatformBuilder`] |
//! | [`from_config`] | the platform `hybrid` builds: [`HybridPlatform::from_config`], [`HybridPlatform::from_env`] |
//! | [`options`] | [`RunOptions`], [`DryRun`] |
//! | [`single`] | one task's course: guardrails, routing, one stage (or the route's workflow), the recorded end; resume |
//! | [`router`] | [`Router`], DESIGN.md's decision tree ([`DefaultRouter`]), [`RouteDecision`] |

pub(crate) mod builder;
pub(crate) mod facade;
pub mod from_config;
pub(crate) mod options;
pub mod router;
pub(crate) mod single;

pub use builder::HybridPlatformBuilder;
pub use facade::HybridPlatform;
pub use options::{DryRun, RunOptions};
pub use router::{DefaultRouter, RouteDecision, Router};

/// The stage name of a single-platform run.
pub const SINGLE_STAGE: &str = "execution";

/// The workflow of the hybrid route when the task names none.
pub const DEFAULT_WORKFLOW: &str = "plan-execute-verify";
