//! Events: everything a run reports while it happens.
//!
//! Every event is stored, forwarded to streaming subscribers (`run_streaming`,
//! `hybrid run --stream`), and counted. On the wire an event is one JSON object
//! with a `type` tag:
//!
//! ```json
//! {"task_id":"…","seq":3,"at":"2026-…Z","type":"text_delta","stage":"answer","text":"Hel"}
//! ```

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{RouteInfo, StageResult, TaskId, TaskResult, TaskStatus, Usage};

/// One thing that happened to a task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// The task it belongs to.
    pub task_id: TaskId,
    /// Position in the task's event sequence, from 0.
    pub seq: u64,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// What happened.
    #[serde(flatten)]
    pub kind: EventKind,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    /// The task was accepted.
    Submitted {
        /// A copy of the task.
        task: Box<crate::Task>,
    },
    /// The task changed status.
    Status {
        /// Old status.
        from: TaskStatus,
        /// New status.
        to: TaskStatus,
        /// Why, when there is something to say.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// The router decided.
    Routed {
        /// The decision.
        route: RouteInfo,
    },
    /// A stage began.
    StageStarted {
        /// Stage name.
        stage: String,
        /// Agent running it.
        agent: String,
        /// Platform it runs on.
        platform: String,
        /// Model, when known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        model: Option<String>,
    },
    /// A piece of streamed model text.
    TextDelta {
        /// Stage name.
        stage: String,
        /// The text.
        text: String,
    },
    /// A model call finished.
    ModelCall {
        /// Stage name.
        stage: String,
        /// Model that answered.
        model: String,
        /// Tokens used.
        usage: Usage,
        /// Cost in USD, `null` when unknown.
        cost_usd: Option<crate::Money>,
        /// Wall time of the call.
        duration_ms: u64,
    },
    /// A model asked for a tool.
    ToolCall {
        /// Stage name.
        stage: String,
        /// Call id.
        id: String,
        /// Tool name.
        name: String,
        /// Arguments.
        arguments: Value,
    },
    /// A tool returned.
    ToolResult {
        /// Stage name.
        stage: String,
        /// Call id.
        id: String,
        /// Output (capped).
        output: String,
        /// Whether it was an error.
        is_error: bool,
    },
    /// A stage finished.
    StageCompleted {
        /// Stage name.
        stage: String,
        /// Its result.
        result: Box<StageResult>,
    },
    /// A tool call waits for a person's approval.
    ApprovalRequested {
        /// The approval's id (answer with `hybrid approvals approve ID`).
        approval_id: String,
        /// The tool.
        tool: String,
        /// What would run.
        command: String,
        /// The rule that asked.
        rule: String,
        /// Why.
        reason: String,
    },
    /// An approval was answered (or timed out).
    ApprovalAnswered {
        /// The approval's id.
        approval_id: String,
        /// Yes or no.
        approved: bool,
        /// Who answered (`timeout` when nobody did).
        by: String,
        /// Their note or reason.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    },
    /// A non-fatal problem worth showing (a retry, a fallback).
    Warning {
        /// What happened.
        message: String,
    },
    /// The task ended; the last event of a run.
    Finished {
        /// The final document.
        result: Box<TaskResult>,
    },
}

impl EventKind {
    /// The stage the event belongs to, for the kinds that name one.
    pub fn stage(&self) -> Option<&str> {
        match self {
            EventKind::StageStarted { stage, .. }
            | EventKind::TextDelta { stage, .. }
            | EventKind::ModelCall { stage, .. }
            | EventKind::ToolCall { stage, .. }
            | EventKind::ToolResult { stage, .. }
            | EventKind::StageCompleted { stage, .. } => Some(stage),
            _ => None,
        }
    }

    /// The `type` tag.
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::Submitted { .. } => "submitted",
            EventKind::Status { .. } => "status",
            EventKind::Routed { .. } => "routed",
            EventKind::StageStarted { .. } => "stage_started",
            EventKind::TextDelta { .. } => "text_delta",
            EventKind::ModelCall { .. } => "model_call",
            EventKind::ToolCall { .. } => "tool_call",
            EventKind::ToolResult { .. } => "tool_result",
            EventKind::StageCompleted { .. } => "stage_completed",
            EventKind::ApprovalRequested { .. } => "approval_requested",
            EventKind::ApprovalAnswered { .. } => "approval_answered",
            EventKind::Warning { .. } => "warning",
            EventKind::Finished { .. } => "finished",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_is_flat_json_with_type_tag() {
        let e = Event {
            task_id: "t".into(),
            seq: 2,
            at: Utc::now(),
            kind: EventKind::TextDelta {
                stage: "answer".into(),
                text: "Hi".into(),
            },
        };
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["type"], "text_delta");
        assert_eq!(v["text"], "Hi");
        assert_eq!(v["seq"], 2);
        let back: Event = serde_json::from_value(v).unwrap();
        assert_eq!(back, e);
        assert_eq!(e.kind.name(), "text_delta");
    }
}
