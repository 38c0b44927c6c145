//! What a run ends with: the [`TaskResult`] document of DESIGN.md.
//!
//! ```json
//! { "task_id": "…", "status": "completed", "platform": "openai",
//!   "route": {"platform": "openai", "rule": "type_reasoning", "reason": "…"},
//!   "stages": { "answer": {"agent": "…", "platform": "openai", "model": "…", "output": "…"} },
//!   "output": "…", "usage": {"input_tokens": 0, "output_tokens": 0},
//!   "cost_usd": 0.0, "duration_ms": 0 }
//! ```
//! `stages` keeps stage order. `cost_usd` is `null` when any call could not be priced.

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Money, TaskId, TaskStatus, Usage};

/// Which platform the router chose, by which rule, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteInfo {
    /// The chosen platform or `hybrid`.
    pub platform: String,
    /// The rule that fired (`system_access`, `multi_step`, …).
    pub rule: String,
    /// A sentence saying why.
    pub reason: String,
}

/// One tool call an agent made, with its result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCallRecord {
    /// Provider-assigned call id.
    pub id: String,
    /// Tool name.
    pub name: String,
    /// Arguments as the model sent them.
    pub arguments: Value,
    /// What the tool returned (possibly truncated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    /// Whether the result was an error.
    #[serde(default)]
    pub is_error: bool,
}

/// The outcome of one stage: one agent's run on one platform.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct StageResult {
    /// The agent (role) that ran the stage.
    pub agent: String,
    /// The platform it ran on.
    pub platform: String,
    /// The model that answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The stage's final text.
    pub output: String,
    /// Tokens the stage used.
    #[serde(default)]
    pub usage: Usage,
    /// What the stage cost; `None` when a call could not be priced.
    #[serde(default)]
    pub cost_usd: Option<Money>,
    /// Distinct tool names used, in first-use order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools_used: Vec<String>,
    /// Every tool call, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCallRecord>,
    /// A verifier's verdict (`pass` / `fail`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<String>,
    /// A workflow stage's facts for later stages and for resuming: its
    /// status (`completed`, `skipped`, `failed`), `ok`, `json`, `commands`,
    /// `attempt`, `error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<serde_json::Value>,
    /// Why the model stopped (`stop`, `end_turn`, `max_tokens`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<String>,
    /// Wall time of the stage.
    #[serde(default)]
    pub duration_ms: u64,
}

/// Stages by name, in the order they ran.
pub type Stages = IndexMap<String, StageResult>;

/// The final document of a task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskResult {
    /// The task.
    pub task_id: TaskId,
    /// Final status.
    pub status: TaskStatus,
    /// The platform that ran it (`hybrid` for workflows).
    pub platform: String,
    /// The routing decision.
    pub route: RouteInfo,
    /// Stage results, in order.
    pub stages: Stages,
    /// The final answer.
    pub output: String,
    /// Tokens over all stages.
    pub usage: Usage,
    /// Cost over all stages; `null` when any call could not be priced.
    pub cost_usd: Option<Money>,
    /// Wall time.
    pub duration_ms: u64,
    /// Why the task did not complete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::usd;

    #[test]
    fn stages_keep_order_and_unknown_cost_is_null() {
        let mut stages = Stages::new();
        for name in ["planning", "execution", "verification"] {
            stages.insert(
                name.into(),
                StageResult {
                    agent: name.into(),
                    ..Default::default()
                },
            );
        }
        let r = TaskResult {
            task_id: "t1".into(),
            status: TaskStatus::Completed,
            platform: "hybrid".into(),
            route: RouteInfo {
                platform: "hybrid".into(),
                rule: "multi_step".into(),
                reason: "r".into(),
            },
            stages,
            output: "ok".into(),
            usage: Usage::default(),
            cost_usd: None,
            duration_ms: 3,
            error: None,
        };
        let text = serde_json::to_string(&r).unwrap();
        let p = text.find("planning").unwrap();
        let e = text.find("execution").unwrap();
        let v = text.find("verification").unwrap();
        assert!(p < e && e < v);
        let json: Value = serde_json::from_str(&text).unwrap();
        assert!(json["cost_usd"].is_null());
        assert_eq!(json["status"], "completed");
        let back: TaskResult = serde_json::from_str(&text).unwrap();
        assert_eq!(back, r);
        let priced = TaskResult {
            cost_usd: Some(usd(0.25)),
            ..r
        };
        assert_eq!(serde_json::to_value(priced).unwrap()["cost_usd"], 0.25);
    }
}
