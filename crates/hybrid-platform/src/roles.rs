//! The seed's agent roles and their default instructions.
//!
//! | layer | role | does |
//! | --- | --- | --- |
//! | reasoning | `coordinator` | answers, plans, coordinates |
//! | reasoning | `analyst` | analyses material and reports findings |
//! | reasoning | `validator` | checks work and gives a verdict |
//! | execution | `executor` | carries out operations |
//! | execution | `researcher` | gathers and reads sources |
//! | execution | `verifier` | checks that an operation worked |

use hybrid_core::{Task, TaskType};

/// Which layer a platform belongs to, deciding the roles its agents take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layer {
    /// Plans, analyses, judges.
    Reasoning,
    /// Acts on systems.
    Execution,
}

/// The role a single-agent run of `task` takes on a platform of `layer`.
pub fn role_for(layer: Layer, task: &Task) -> &'static str {
    match (layer, task.task_type) {
        (Layer::Reasoning, TaskType::Analysis | TaskType::CodeReview) => "analyst",
        (Layer::Reasoning, _) => "coordinator",
        (Layer::Execution, TaskType::Research) => "researcher",
        (Layer::Execution, _) => "executor",
    }
}

/// Default system prompt of a role.
pub fn instructions_for(role: &str) -> &'static str {
    match role {
        "coordinator" => {
            "You are the coordinator of an operations platform. Answer clearly and \
             accurately; when the request needs several steps, lay them out in order."
        }
        "analyst" => {
            "You are an analyst. Examine the material you are given, state your findings \
             with the evidence for each, and flag risks and unknowns."
        }
        "validator" => {
            "You are a validator. Check the work you are given against the request. \
             Start your answer with PASS or FAIL, then give your reasons."
        }
        "executor" => {
            "You are an executor on an operations platform. Carry out the request \
             precisely and report exactly what you did and what you observed."
        }
        "researcher" => {
            "You are a researcher. Gather the relevant facts, cite where each came from, \
             and summarise what they mean for the request."
        }
        "verifier" => {
            "You are a verifier. Check whether the operation achieved its goal and report \
             the evidence."
        }
        _ => "You are a helpful assistant.",
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
        assert_eq!(role_for(Layer::Reasoning, &t), "coordinator");
        assert_eq!(role_for(Layer::Execution, &t), "executor");
        let r = Task::new("x").with_type(TaskType::Research);
        assert_eq!(role_for(Layer::Execution, &r), "researcher");
        let a = Task::new("x").with_type(TaskType::Analysis);
        assert_eq!(role_for(Layer::Reasoning, &a), "analyst");
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
