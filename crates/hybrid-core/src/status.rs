//! The task state machine.
//!
//! ```text
//! PENDING → ROUTING → IN_PROGRESS → COMPLETED
//!                         │  ↑ ↓
//!                         │  AWAITING_APPROVAL
//!                         ↓
//!                       FAILED
//! ```
//! Any non-terminal state may also go to `BLOCKED` (a guardrail said no),
//! `FAILED` or `CANCELLED`. `FAILED` and `CANCELLED` tasks may be resumed
//! (back to `IN_PROGRESS`); `COMPLETED` and `BLOCKED` are final.
//!
//! Resuming (`hybrid tasks resume ID`) needs no pair of its own; whatever
//! status a failed, cancelled or dead process left the task in, a legal path
//! back to `IN_PROGRESS` already exists:
//!
//! | left in | resume does |
//! | --- | --- |
//! | `FAILED`, `CANCELLED` | `→ IN_PROGRESS` |
//! | `AWAITING_APPROVAL` | `→ IN_PROGRESS` (the approval is asked again or read from the store) |
//! | `ROUTING` | `→ IN_PROGRESS` (routing again first if no route was stored) |
//! | `PENDING` | `→ ROUTING → IN_PROGRESS`, as a first run |
//! | `IN_PROGRESS` | nothing: the task stays `IN_PROGRESS` (`IN_PROGRESS → IN_PROGRESS` is not a transition) |
//! | `COMPLETED`, `BLOCKED` | cannot be resumed |

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::CoreError;

/// Where a task is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    /// Created, not yet routed.
    Pending,
    /// The router is choosing a platform.
    Routing,
    /// A platform or workflow is running it.
    InProgress,
    /// Waiting for a human to approve a step.
    AwaitingApproval,
    /// Finished with a result.
    Completed,
    /// Ended by an error.
    Failed,
    /// Stopped by a guardrail.
    Blocked,
    /// Stopped by a user.
    Cancelled,
}

impl TaskStatus {
    /// Every status.
    pub const ALL: [TaskStatus; 8] = [
        TaskStatus::Pending,
        TaskStatus::Routing,
        TaskStatus::InProgress,
        TaskStatus::AwaitingApproval,
        TaskStatus::Completed,
        TaskStatus::Failed,
        TaskStatus::Blocked,
        TaskStatus::Cancelled,
    ];

    /// The wire name (`in_progress`).
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Pending => "pending",
            TaskStatus::Routing => "routing",
            TaskStatus::InProgress => "in_progress",
            TaskStatus::AwaitingApproval => "awaiting_approval",
            TaskStatus::Completed => "completed",
            TaskStatus::Failed => "failed",
            TaskStatus::Blocked => "blocked",
            TaskStatus::Cancelled => "cancelled",
        }
    }

    /// Whether the task has stopped (it may still be resumed if failed or cancelled).
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            TaskStatus::Completed
                | TaskStatus::Failed
                | TaskStatus::Blocked
                | TaskStatus::Cancelled
        )
    }

    /// Whether the state machine allows `self → to`.
    pub fn can_transition(self, to: TaskStatus) -> bool {
        use TaskStatus::*;
        matches!(
            (self, to),
            (Pending, Routing)
                | (Routing, InProgress)
                | (InProgress, Completed | AwaitingApproval)
                | (AwaitingApproval, InProgress)
                | (
                    Pending | Routing | InProgress | AwaitingApproval,
                    Failed | Blocked | Cancelled
                )
                | (Failed | Cancelled, InProgress)
        )
    }

    /// `to` if the state machine allows it, else [`CoreError::IllegalTransition`].
    pub fn transition(self, to: TaskStatus) -> Result<TaskStatus, CoreError> {
        if self.can_transition(to) {
            Ok(to)
        } else {
            Err(CoreError::IllegalTransition { from: self, to })
        }
    }
}

impl fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TaskStatus {
    type Err = CoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TaskStatus::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| CoreError::UnknownStatus(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::TaskStatus::*;
    use super::*;

    #[test]
    fn happy_path_is_legal() {
        let mut s = Pending;
        for next in [Routing, InProgress, AwaitingApproval, InProgress, Completed] {
            s = s.transition(next).unwrap();
        }
        assert_eq!(s, Completed);
    }

    #[test]
    fn every_pair_matches_the_table() {
        let legal = [
            (Pending, Routing),
            (Routing, InProgress),
            (InProgress, Completed),
            (InProgress, AwaitingApproval),
            (AwaitingApproval, InProgress),
            (Failed, InProgress),
            (Cancelled, InProgress),
        ];
        for from in TaskStatus::ALL {
            for to in TaskStatus::ALL {
                let expected = legal.contains(&(from, to))
                    || (!from.is_terminal() && matches!(to, Failed | Blocked | Cancelled));
                assert_eq!(from.can_transition(to), expected, "{from} -> {to}");
            }
        }
    }

    /// Every status a failed, cancelled or dead run can leave a task in has
    /// a legal path back to `in_progress`; final ones have none.
    #[test]
    fn resume_paths_are_legal() {
        for from in [Failed, Cancelled, AwaitingApproval, Routing] {
            assert_eq!(from.transition(InProgress), Ok(InProgress), "{from}");
        }
        // A task that never got routed goes through routing, as a first run.
        assert_eq!(
            Pending
                .transition(Routing)
                .and_then(|s| s.transition(InProgress)),
            Ok(InProgress)
        );
        // Left in progress: kept as is, not re-entered.
        assert!(!InProgress.can_transition(InProgress));
        for from in [Completed, Blocked] {
            for to in TaskStatus::ALL {
                assert!(!from.can_transition(to), "{from} -> {to}");
            }
        }
        // A resumed run can fail again and be resumed again.
        let mut s = Failed;
        for next in [
            InProgress, Failed, InProgress, Cancelled, InProgress, Completed,
        ] {
            s = s.transition(next).unwrap();
        }
        assert_eq!(s, Completed);
    }

    #[test]
    fn illegal_transitions_are_errors() {
        assert_eq!(
            Pending.transition(Completed),
            Err(CoreError::IllegalTransition {
                from: Pending,
                to: Completed
            })
        );
        assert!(Completed.transition(InProgress).is_err());
        assert!(Blocked.transition(InProgress).is_err());
        assert!(Routing.transition(Completed).is_err());
    }

    #[test]
    fn names_round_trip() {
        for s in TaskStatus::ALL {
            assert_eq!(s.as_str().parse::<TaskStatus>(), Ok(s));
        }
    }
}
