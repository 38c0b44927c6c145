//! [`Redact`] for the records every boundary redacts: tasks, routes, events, stage and task
//! results. Every text field is redacted (ids and the names of stages, the keys of
//! [`Stages`](crate::Stages), are identifiers and stay); a test fills each string of each
//! record with a secret, one at a time, and checks that none survives, so a field added
//! later cannot slip through.

use hybrid_secrets::{Redact, Redactor, redact_all};

use crate::{Event, EventKind, RouteInfo, StageResult, Task, TaskResult, ToolCallRecord};

impl Redact for Task {
    fn redact(&mut self, r: &Redactor) -> bool {
        redact_all!(r; self.description, self.context, self.workflow, self.submitted_by)
    }
}

impl Redact for RouteInfo {
    fn redact(&mut self, r: &Redactor) -> bool {
        redact_all!(r; self.platform, self.rule, self.reason)
    }
}

impl Redact for ToolCallRecord {
    fn redact(&mut self, r: &Redactor) -> bool {
        redact_all!(r; self.id, self.name, self.arguments, self.output)
    }
}

impl Redact for StageResult {
    fn redact(&mut self, r: &Redactor) -> bool {
        redact_all!(r;
            self.agent, self.platform, self.model, self.output, self.tools_used,
            self.tool_calls, self.verdict, self.detail, self.finish_reason)
    }
}

impl Redact for TaskResult {
    fn redact(&mut self, r: &Redactor) -> bool {
        let mut changed = redact_all!(r; self.platform, self.route, self.output, self.error);
        for stage in self.stages.values_mut() {
            changed |= stage.redact(r);
        }
        changed
    }
}

impl Redact for Event {
    fn redact(&mut self, r: &Redactor) -> bool {
        self.kind.redact(r)
    }
}

impl Redact for EventKind {
    fn redact(&mut self, r: &Redactor) -> bool {
        match self {
            EventKind::Submitted { task } => task.redact(r),
            EventKind::Status { reason, .. } => reason.redact(r),
            EventKind::Routed { route } => route.redact(r),
            EventKind::StageStarted {
                stage,
                agent,
                platform,
                model,
            } => redact_all!(r; *stage, *agent, *platform, *model),
            EventKind::TextDelta { stage, text } => redact_all!(r; *stage, *text),
            EventKind::ModelCall { stage, model, .. } => redact_all!(r; *stage, *model),
            EventKind::ToolCall {
                stage,
                id,
                name,
                arguments,
            } => redact_all!(r; *stage, *id, *name, *arguments),
            EventKind::ToolResult {
                stage, id, output, ..
            } => redact_all!(r; *stage, *id, *output),
            EventKind::StageCompleted { stage, result } => redact_all!(r; *stage, *result),
            EventKind::ApprovalRequested {
                approval_id,
                tool,
                command,
                rule,
                reason,
            } => redact_all!(r; *approval_id, *tool, *command, *rule, *reason),
            EventKind::ApprovalAnswered {
                approval_id,
                by,
                note,
                ..
            } => redact_all!(r; *approval_id, *by, *note),
            EventKind::Warning { message } => message.redact(r),
            EventKind::Finished { result } => result.redact(r),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde::Serialize;
    use serde::de::DeserializeOwned;
    use serde_json::{Value, json};

    use super::*;
    use crate::{Money, TaskStatus, Usage};

    const SECRET: &str = "sk-ant-api03-filled-into-every-field-0123456789";

    /// Every path to a string leaf of `value`.
    fn string_paths(value: &Value, at: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
        match value {
            Value::String(_) => out.push(at.clone()),
            Value::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    at.push(i.to_string());
                    string_paths(v, at, out);
                    at.pop();
                }
            }
            Value::Object(map) => {
                for (k, v) in map {
                    at.push(k.clone());
                    string_paths(v, at, out);
                    at.pop();
                }
            }
            _ => {}
        }
    }

    fn leaf<'a>(value: &'a mut Value, path: &[String]) -> &'a mut Value {
        path.iter().fold(value, |v, key| match v {
            Value::Array(items) => &mut items[key.parse::<usize>().unwrap()],
            Value::Object(map) => map.get_mut(key).unwrap(),
            _ => unreachable!(),
        })
    }

    /// Puts the secret into each string of `sample` in turn; wherever the record still
    /// deserializes (the string is free text, not an id, a tag or a time), redaction must
    /// take it out again. Returns how many fields were checked.
    fn every_text_field_is_redacted<T: Serialize + DeserializeOwned + Redact>(sample: &T) -> usize {
        every_text_field_but_ids_is_redacted(sample, &[])
    }

    /// As above; strings equal to one of `ids` (task ids) are identifiers and stay.
    fn every_text_field_but_ids_is_redacted<T: Serialize + DeserializeOwned + Redact>(
        sample: &T,
        ids: &[&str],
    ) -> usize {
        let base = serde_json::to_value(sample).unwrap();
        let mut paths = Vec::new();
        string_paths(&base, &mut Vec::new(), &mut paths);
        let mut checked = 0;
        for path in paths {
            let mut filled = base.clone();
            if leaf(&mut filled, &path)
                .as_str()
                .is_some_and(|s| ids.contains(&s))
            {
                continue;
            }
            *leaf(&mut filled, &path) = Value::String(format!("see {SECRET} here"));
            let Ok(mut record) = serde_json::from_value::<T>(filled) else {
                continue;
            };
            assert!(
                record.redact(&Redactor::default()),
                "{}: {path:?} not redacted",
                std::any::type_name::<T>()
            );
            let out = serde_json::to_string(&record).unwrap();
            assert!(!out.contains(SECRET), "{path:?} kept the secret: {out}");
            checked += 1;
        }
        checked
    }

    fn stage() -> StageResult {
        StageResult {
            agent: "executor".into(),
            platform: "claude".into(),
            model: Some("claude-sonnet-4-5".into()),
            output: "done".into(),
            usage: Usage::default(),
            cost_usd: Some(Money::ZERO),
            tools_used: vec!["bash".into()],
            tool_calls: vec![ToolCallRecord {
                id: "toolu_1".into(),
                name: "bash".into(),
                arguments: json!({"command": "ls", "env": {"x": ["y"]}}),
                output: Some("app.log".into()),
                is_error: false,
            }],
            verdict: Some("pass".into()),
            detail: Some(json!({"status": "ok", "commands": ["ls"]})),
            finish_reason: Some("end_turn".into()),
            duration_ms: 3,
        }
    }

    fn result() -> TaskResult {
        let task = Task::new("x");
        let mut stages = crate::Stages::new();
        stages.insert("execution".into(), stage());
        TaskResult {
            task_id: task.id,
            status: TaskStatus::Completed,
            platform: "claude".into(),
            route: RouteInfo {
                platform: "claude".into(),
                rule: "explicit".into(),
                reason: "chosen".into(),
            },
            stages,
            output: "done".into(),
            usage: Usage::default(),
            cost_usd: None,
            duration_ms: 5,
            error: Some("none".into()),
        }
    }

    #[test]
    fn every_text_field_of_every_record_is_redacted() {
        let mut task = Task::new("describe");
        task.context.insert("k".into(), json!({"v": ["w"]}));
        task.workflow = Some("plan-execute-verify".into());
        task.submitted_by = Some("alice".into());
        let task_id = task.id.to_string();
        assert!(every_text_field_but_ids_is_redacted(&task, &[&task_id]) >= 4);
        assert!(every_text_field_is_redacted(&stage()) >= 12);
        let r = result();
        assert!(every_text_field_but_ids_is_redacted(&r, &[&r.task_id.to_string()]) >= 16);
        let id = task.id.clone();
        let kinds = vec![
            EventKind::Submitted {
                task: Box::new(task),
            },
            EventKind::Status {
                from: TaskStatus::Pending,
                to: TaskStatus::Routing,
                reason: Some("r".into()),
            },
            EventKind::Routed {
                route: result().route,
            },
            EventKind::StageStarted {
                stage: "s".into(),
                agent: "a".into(),
                platform: "p".into(),
                model: Some("m".into()),
            },
            EventKind::TextDelta {
                stage: "s".into(),
                text: "t".into(),
            },
            EventKind::ModelCall {
                stage: "s".into(),
                model: "m".into(),
                usage: Usage::default(),
                cost_usd: None,
                duration_ms: 1,
            },
            EventKind::ToolCall {
                stage: "s".into(),
                id: "i".into(),
                name: "n".into(),
                arguments: json!({"command": "c"}),
            },
            EventKind::ToolResult {
                stage: "s".into(),
                id: "i".into(),
                output: "o".into(),
                is_error: false,
            },
            EventKind::StageCompleted {
                stage: "s".into(),
                result: Box::new(stage()),
            },
            EventKind::ApprovalRequested {
                approval_id: "ap".into(),
                tool: "t".into(),
                command: "c".into(),
                rule: "r".into(),
                reason: "w".into(),
            },
            EventKind::ApprovalAnswered {
                approval_id: "ap".into(),
                approved: true,
                by: "b".into(),
                note: Some("n".into()),
            },
            EventKind::Warning {
                message: "m".into(),
            },
            EventKind::Finished {
                result: Box::new(result()),
            },
        ];
        for kind in kinds {
            let name = kind.name();
            let mut ids = vec![id.to_string()];
            if let EventKind::Finished { result } = &kind {
                ids.push(result.task_id.to_string());
            }
            let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
            let event = Event {
                task_id: id.clone(),
                seq: 1,
                at: chrono::Utc::now(),
                kind,
            };
            assert!(
                every_text_field_but_ids_is_redacted(&event, &ids) >= 1,
                "{name}"
            );
        }
    }
}
