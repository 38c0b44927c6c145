//! The task: the unit of work the platform routes and runs.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use crate::{CoreError, Money};

/// A task's identifier. Generated ids are UUIDv7, so they sort by creation time.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TaskId(String);

impl TaskId {
    /// A fresh, time-ordered id.
    pub fn generate() -> Self {
        TaskId(uuid::Uuid::now_v7().to_string())
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<String> for TaskId {
    fn from(s: String) -> Self {
        TaskId(s)
    }
}

impl From<&str> for TaskId {
    fn from(s: &str) -> Self {
        TaskId(s.to_owned())
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The category of work, which the router uses when no flag decides.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskType {
    /// Talk, explain, answer.
    #[default]
    Conversation,
    /// Reason over given material.
    Analysis,
    /// Act on a system (commands, files).
    SystemOperation,
    /// Gather and read sources.
    Research,
    /// Review a change.
    CodeReview,
    /// Respond to an operational incident.
    IncidentResponse,
}

impl TaskType {
    /// Every type, in the order the CLI lists them.
    pub const ALL: [TaskType; 6] = [
        TaskType::Conversation,
        TaskType::Analysis,
        TaskType::SystemOperation,
        TaskType::Research,
        TaskType::CodeReview,
        TaskType::IncidentResponse,
    ];

    /// The wire name (`system_operation`).
    pub fn as_str(self) -> &'static str {
        match self {
            TaskType::Conversation => "conversation",
            TaskType::Analysis => "analysis",
            TaskType::SystemOperation => "system_operation",
            TaskType::Research => "research",
            TaskType::CodeReview => "code_review",
            TaskType::IncidentResponse => "incident_response",
        }
    }
}

impl fmt::Display for TaskType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TaskType {
    type Err = CoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TaskType::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| CoreError::UnknownTaskType(s.to_owned()))
    }
}

/// Task priority, 1 (lowest) to 5 (highest). Construction validates the range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Priority(u8);

impl Priority {
    /// The lowest priority.
    pub const MIN: Priority = Priority(1);
    /// The highest priority.
    pub const MAX: Priority = Priority(5);

    /// A validated priority.
    pub fn new(value: i64) -> Result<Self, CoreError> {
        match u8::try_from(value) {
            Ok(v @ 1..=5) => Ok(Priority(v)),
            _ => Err(CoreError::InvalidPriority(value)),
        }
    }

    /// The number, 1..=5.
    pub fn get(self) -> u8 {
        self.0
    }
}

impl Default for Priority {
    fn default() -> Self {
        Priority(3)
    }
}

impl<'de> Deserialize<'de> for Priority {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = i64::deserialize(d)?;
        Priority::new(v).map_err(serde::de::Error::custom)
    }
}

/// A unit of work: the seed's `Task` with an id, a cost estimate, an optional
/// workflow and who submitted it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    /// Unique id.
    pub id: TaskId,
    /// What to do, in words.
    pub description: String,
    /// Category of work.
    #[serde(rename = "type", default)]
    pub task_type: TaskType,
    /// Needs bash or file access.
    #[serde(default)]
    pub requires_system_access: bool,
    /// Needs a multi-step workflow.
    #[serde(default)]
    pub requires_multi_step: bool,
    /// Additional data for the agents.
    #[serde(default)]
    pub context: Map<String, Value>,
    /// 1..=5, 5 highest.
    #[serde(default)]
    pub priority: Priority,
    /// What the submitter expects the task to cost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimated_cost: Option<Money>,
    /// A named or file workflow to run instead of the router's choice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow: Option<String>,
    /// Who asked for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub submitted_by: Option<String>,
    /// When it was created.
    #[serde(default = "Utc::now")]
    pub created_at: DateTime<Utc>,
}

impl Task {
    /// A conversation task of priority 3 with a fresh id.
    pub fn new(description: impl Into<String>) -> Self {
        Task {
            id: TaskId::generate(),
            description: description.into(),
            task_type: TaskType::default(),
            requires_system_access: false,
            requires_multi_step: false,
            context: Map::new(),
            priority: Priority::default(),
            estimated_cost: None,
            workflow: None,
            submitted_by: None,
            created_at: Utc::now(),
        }
    }

    /// Sets the type.
    pub fn with_type(mut self, task_type: TaskType) -> Self {
        self.task_type = task_type;
        self
    }

    /// Marks the task as needing system access.
    pub fn with_system_access(mut self, yes: bool) -> Self {
        self.requires_system_access = yes;
        self
    }

    /// Marks the task as multi-step.
    pub fn with_multi_step(mut self, yes: bool) -> Self {
        self.requires_multi_step = yes;
        self
    }

    /// Sets the priority.
    pub fn with_priority(mut self, priority: Priority) -> Self {
        self.priority = priority;
        self
    }

    /// Adds one context entry.
    pub fn with_context(mut self, key: impl Into<String>, value: Value) -> Self {
        self.context.insert(key.into(), value);
        self
    }

    /// Sets the estimated cost.
    pub fn with_estimated_cost(mut self, cost: Money) -> Self {
        self.estimated_cost = Some(cost);
        self
    }

    /// Sets who submitted the task.
    pub fn with_submitter(mut self, who: impl Into<String>) -> Self {
        self.submitted_by = Some(who.into());
        self
    }

    /// Runs the named workflow (a built-in, a file in the workspace's
    /// `workflows/`, or a path to a YAML file).
    pub fn with_workflow(mut self, workflow: impl Into<String>) -> Self {
        self.workflow = Some(workflow.into());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priority_range_is_validated() {
        assert!(Priority::new(0).is_err());
        assert!(Priority::new(6).is_err());
        assert!(Priority::new(-1).is_err());
        assert_eq!(Priority::new(5).map(Priority::get), Ok(5));
        assert!(serde_json::from_str::<Priority>("7").is_err());
    }

    #[test]
    fn task_type_names_round_trip() {
        for t in TaskType::ALL {
            assert_eq!(t.as_str().parse::<TaskType>(), Ok(t));
            assert_eq!(serde_json::to_value(t).ok(), Some(Value::from(t.as_str())));
        }
        assert_eq!(
            "chat".parse::<TaskType>(),
            Err(CoreError::UnknownTaskType("chat".into()))
        );
    }

    #[test]
    fn task_serializes_type_field_as_type() {
        let t = Task::new("x").with_type(TaskType::Research);
        let v = serde_json::to_value(&t).unwrap();
        assert_eq!(v["type"], "research");
        let back: Task = serde_json::from_value(v).unwrap();
        assert_eq!(back, t);
    }
}
