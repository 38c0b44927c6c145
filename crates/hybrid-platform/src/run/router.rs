//! The router: picks where a task runs.
//!
//! [`DefaultRouter`] applies DESIGN.md's decision tree, in order, and records
//! which rule fired and why:
//!
//! | # | rule | when | route |
//! | - | --- | --- | --- |
//! | 1 | `system_access_multi_step` | needs system access **and** several steps | `hybrid` |
//! | 2 | `system_access` | needs bash or files | `claude` |
//! | 3 | `multi_step` | needs several steps | `hybrid` |
//! | 4 | `type_reasoning` | type `conversation` or `analysis` | `openai` |
//! | 5 | `type_execution` | type `system_operation` or `research` | `claude` |
//! | 6 | `default` | anything else | the configured default |
//!
//! Custom routers implement [`Router`]; they can wrap the default one.
//!
//! ```
//! use hybrid_core::Task;
//! use hybrid_platform::router::{DefaultRouter, Router};
//! let d = DefaultRouter::default().route(&Task::new("Explain quantum computing"), &[]);
//! assert_eq!((d.platform.as_str(), d.rule), ("openai", "type_reasoning"));
//! ```

use hybrid_core::{RouteInfo, Task, TaskType};

/// The platform name of the reasoning layer.
pub const OPENAI: &str = "openai";
/// The platform name of the execution layer.
pub const CLAUDE: &str = "claude";
/// The route name of hybrid workflows.
pub const HYBRID: &str = "hybrid";

/// A routing decision: where, by which rule, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteDecision {
    /// The platform (or `hybrid`).
    pub platform: String,
    /// The rule that fired.
    pub rule: &'static str,
    /// A sentence for people.
    pub reason: String,
}

impl RouteDecision {
    /// The serializable form stored with the task.
    pub fn to_info(&self) -> RouteInfo {
        RouteInfo {
            platform: self.platform.clone(),
            rule: self.rule.to_owned(),
            reason: self.reason.clone(),
        }
    }
}

/// Chooses a platform for a task. `platforms` lists the registered platform ids.
pub trait Router: Send + Sync + std::fmt::Debug {
    /// Decide; must not do I/O.
    fn route(&self, task: &Task, platforms: &[&str]) -> RouteDecision;
}

/// DESIGN.md's decision tree.
#[derive(Debug, Clone)]
pub struct DefaultRouter {
    default_platform: String,
}

impl Default for DefaultRouter {
    fn default() -> Self {
        DefaultRouter {
            default_platform: OPENAI.to_owned(),
        }
    }
}

impl DefaultRouter {
    /// A router whose rule 6 sends to `default_platform`.
    pub fn with_default(default_platform: impl Into<String>) -> Self {
        DefaultRouter {
            default_platform: default_platform.into(),
        }
    }

    fn decide(platform: &str, rule: &'static str, reason: String) -> RouteDecision {
        RouteDecision {
            platform: platform.to_owned(),
            rule,
            reason,
        }
    }
}

impl Router for DefaultRouter {
    fn route(&self, task: &Task, _platforms: &[&str]) -> RouteDecision {
        if task.requires_system_access && task.requires_multi_step {
            return Self::decide(
                HYBRID,
                "system_access_multi_step",
                "needs system access and several steps: plan, execute with tools, verify".into(),
            );
        }
        if task.requires_system_access {
            return Self::decide(
                CLAUDE,
                "system_access",
                "needs bash or file access, which the execution layer has".into(),
            );
        }
        if task.requires_multi_step {
            return Self::decide(
                HYBRID,
                "multi_step",
                "needs a multi-step workflow across both layers".into(),
            );
        }
        match task.task_type {
            TaskType::Conversation | TaskType::Analysis => Self::decide(
                OPENAI,
                "type_reasoning",
                format!(
                    "type {} is reasoning work, best on the reasoning layer",
                    task.task_type
                ),
            ),
            TaskType::SystemOperation | TaskType::Research => Self::decide(
                CLAUDE,
                "type_execution",
                format!(
                    "type {} is execution work, best on the execution layer",
                    task.task_type
                ),
            ),
            TaskType::CodeReview | TaskType::IncidentResponse => Self::decide(
                &self.default_platform,
                "default",
                format!(
                    "no rule covers type {}; using the configured default platform",
                    task.task_type
                ),
            ),
        }
    }
}

/// A decision forced by the user (`--platform NAME`).
pub fn explicit(platform: &str) -> RouteDecision {
    RouteDecision {
        platform: platform.to_owned(),
        rule: "explicit",
        reason: format!("platform {platform} was chosen by the submitter"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(task: Task) -> RouteDecision {
        DefaultRouter::default().route(&task, &[OPENAI, CLAUDE])
    }

    #[test]
    fn rule1_both_flags_go_hybrid() {
        let d = route(
            Task::new("Audit codebase")
                .with_system_access(true)
                .with_multi_step(true),
        );
        assert_eq!(
            (d.platform.as_str(), d.rule),
            (HYBRID, "system_access_multi_step")
        );
    }

    #[test]
    fn rule2_system_access_goes_claude_whatever_the_type() {
        for t in TaskType::ALL {
            let d = route(Task::new("x").with_type(t).with_system_access(true));
            assert_eq!(
                (d.platform.as_str(), d.rule),
                (CLAUDE, "system_access"),
                "{t}"
            );
        }
    }

    #[test]
    fn rule3_multi_step_goes_hybrid_whatever_the_type() {
        for t in TaskType::ALL {
            let d = route(Task::new("x").with_type(t).with_multi_step(true));
            assert_eq!((d.platform.as_str(), d.rule), (HYBRID, "multi_step"), "{t}");
        }
    }

    #[test]
    fn rule4_reasoning_types_go_openai() {
        for t in [TaskType::Conversation, TaskType::Analysis] {
            let d = route(Task::new("x").with_type(t));
            assert_eq!((d.platform.as_str(), d.rule), (OPENAI, "type_reasoning"));
            assert!(d.reason.contains(t.as_str()));
        }
    }

    #[test]
    fn rule5_execution_types_go_claude() {
        for t in [TaskType::SystemOperation, TaskType::Research] {
            let d = route(Task::new("x").with_type(t));
            assert_eq!((d.platform.as_str(), d.rule), (CLAUDE, "type_execution"));
        }
    }

    #[test]
    fn rule6_other_types_go_to_the_configured_default() {
        let r = DefaultRouter::with_default("claude");
        for t in [TaskType::CodeReview, TaskType::IncidentResponse] {
            let d = r.route(&Task::new("x").with_type(t), &[]);
            assert_eq!((d.platform.as_str(), d.rule), (CLAUDE, "default"));
        }
        let d = route(Task::new("x").with_type(TaskType::CodeReview));
        assert_eq!(d.platform, OPENAI);
    }

    #[test]
    fn seed_examples() {
        // "Explain quantum computing" → OpenAI.
        assert_eq!(
            route(Task::new("Explain quantum computing")).platform,
            OPENAI
        );
        // test_route_task_with_system_access → "claude".
        assert_eq!(
            route(Task::new("x").with_system_access(true)).platform,
            CLAUDE
        );
    }
}
