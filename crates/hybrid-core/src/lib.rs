//! The shared vocabulary of HybridPlatform: what a task is, the states it moves
//! through, the events it emits, and the result it ends with.
//!
//! Every other crate speaks in these types; this crate does no I/O.
//!
//! | module | what it holds |
//! | --- | --- |
//! | [`clock`] | [`Clock`]: the system's, or a [`ManualClock`] for tests |
//! | [`task`] | [`Task`], [`TaskType`], [`Priority`], [`TaskId`] |
//! | [`status`] | [`TaskStatus`], the task state machine |
//! | [`event`] | [`Event`] and [`EventKind`], everything a run reports |
//! | [`result`] | [`TaskResult`], [`StageResult`], [`RouteInfo`] |
//! | [`money`] | [`Money`] (exact integer nano-dollars) and [`Usage`] |
//! | [`redact`] | [`Redact`](hybrid_secrets::Redact) for tasks, routes, events and results |
//!
//! ```
//! use hybrid_core::{Task, TaskType, TaskStatus};
//! let task = Task::new("Explain quantum computing").with_type(TaskType::Conversation);
//! assert_eq!(task.priority.get(), 3);
//! assert!(TaskStatus::Pending.transition(TaskStatus::Routing).is_ok());
//! assert!(TaskStatus::Pending.transition(TaskStatus::Completed).is_err());
//! ```

pub mod clock;
pub mod error;
pub mod event;
pub mod money;
pub mod redact;
pub mod result;
pub mod status;
pub mod task;

pub use clock::{Clock, ManualClock, SystemClock};
pub use error::CoreError;
pub use event::{Event, EventKind};
pub use money::{Money, Usage, add_costs, usd};
pub use result::{RouteInfo, StageResult, Stages, TaskResult, ToolCallRecord};
pub use status::TaskStatus;
pub use task::{Priority, Task, TaskId, TaskType};
