//! Which of the seed's roles a single-platform run takes, and the task as the
//! user message. The roles' instructions are [`hybrid_agents::presets`].

use hybrid_core::{Task, TaskType};

/// Which kind of work a platform does — the seed's reasoning or execution
/// layer — deciding the roles its agents take. (Not a guardrail layer: those
/// are [`hybrid_guard::Layer`].)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlatformKind {
    /// Plans, analyses, judges.
    Reasoning,
    /// Acts on systems.
    Execution,
}

/// The role a single-agent run of `task` takes on a platform of `kind`.
pub fn role_for(kind: PlatformKind, task: &Task) -> &'static str {
    match (kind, task.task_type) {
        (PlatformKind::Reasoning, TaskType::Analysis | TaskType::CodeReview) => "analyst",
        (PlatformKind::Reasoning, _) => "coordinator",
        (PlatformKind::Execution, TaskType::Research) => "researcher",
        (PlatformKind::Execution, _) => "executor",
    }
}

/// The user message for a task: its description, then its context as JSON.
pub fn user_prompt(task: &Task) -> String {
    if task.context.is_empty() {
        return task.description.clone();
    }
    let context = serde_json::to_string_pretty(&task.context).unwrap_or_default();
    format!("{}\n\nContext:\n```json\n{context}\n```", task.description)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_follow_layer_and_type() {
        let t = Task::new("x");
        assert_eq!(role_for(PlatformKind::Reasoning, &t), "coordinator");
        assert_eq!(role_for(PlatformKind::Execution, &t), "executor");
        let r = Task::new("x").with_type(TaskType::Research);
        assert_eq!(role_for(PlatformKind::Execution, &r), "researcher");
        let a = Task::new("x").with_type(TaskType::Analysis);
        assert_eq!(role_for(PlatformKind::Reasoning, &a), "analyst");
    }

    #[test]
    fn context_is_appended_as_json() {
        let t = Task::new("Check it").with_context("host", serde_json::json!("web-1"));
        let p = user_prompt(&t);
        assert!(p.starts_with("Check it\n\nContext:"));
        assert!(p.contains("\"host\": \"web-1\""));
        assert_eq!(user_prompt(&Task::new("plain")), "plain");
    }
}
