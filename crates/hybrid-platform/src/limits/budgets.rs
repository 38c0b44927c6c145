//! Spending limits: per task, per platform, per submitter and per UTC day.
//!
//! | limit | scope key | counts |
//! | --- | --- | --- |
//! | `per_task_usd` | `task:<id>` | every model call of one task |
//! | `per_platform_usd` | `platform:<name>` | every call to that platform, all tasks, ever (in this store) |
//! | `per_submitter_usd` | `submitter:<name>` | every call for one submitter's tasks, ever (tasks without a submitter have none) |
//! | `per_day_usd` | `day:<YYYY-MM-DD>` | every call on one UTC day |
//!
//! The amounts live in the store (see `hybrid_store::budget`), so they hold
//! across processes and restarts; the limits come from the configuration in
//! force, so a changed limit applies from the next call.

use hybrid_core::{Money, TaskId};
use hybrid_store::BudgetScope;

/// The configured limits; `None` is no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Budgets {
    /// Per task.
    pub per_task: Option<Money>,
    /// Per platform.
    pub per_platform: Option<Money>,
    /// Per submitter.
    pub per_submitter: Option<Money>,
    /// Per UTC day.
    pub per_day: Option<Money>,
}

impl Budgets {
    /// Whether any limit is set.
    pub fn is_empty(&self) -> bool {
        self.per_task.is_none()
            && self.per_platform.is_none()
            && self.per_submitter.is_none()
            && self.per_day.is_none()
    }

    /// The scopes a call of `task` on `platform` for `submitter` is charged
    /// to, each with its limit.
    pub fn scopes(
        &self,
        task: &TaskId,
        platform: &str,
        submitter: Option<&str>,
    ) -> Vec<(BudgetScope, Money)> {
        let mut scopes = Vec::with_capacity(4);
        if let Some(limit) = self.per_task {
            scopes.push((BudgetScope::Task(task.clone()), limit));
        }
        if let Some(limit) = self.per_platform {
            scopes.push((BudgetScope::Platform(platform.to_owned()), limit));
        }
        if let (Some(limit), Some(who)) = (self.per_submitter, submitter) {
            scopes.push((BudgetScope::Submitter(who.to_owned()), limit));
        }
        if let Some(limit) = self.per_day {
            scopes.push((BudgetScope::today(), limit));
        }
        scopes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_configured_scopes_are_charged() {
        let b = Budgets {
            per_task: Some(hybrid_core::usd(1.0)),
            per_submitter: Some(hybrid_core::usd(2.0)),
            ..Budgets::default()
        };
        let id = TaskId::from("t1");
        let with = b.scopes(&id, "openai", Some("alice"));
        assert_eq!(
            with.iter().map(|(s, _)| s.key()).collect::<Vec<_>>(),
            ["task:t1", "submitter:alice"]
        );
        // No submitter, no submitter scope.
        assert_eq!(b.scopes(&id, "openai", None).len(), 1);
        assert!(Budgets::default().is_empty());
        assert!(!b.is_empty());
    }
}
