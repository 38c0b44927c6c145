//! The execution layer through the facade: a model's tool calls pass the
//! command policy, run in the sandbox in the task's workspace, and come back
//! to the model; denials and refusals are tool errors the run survives.

use std::sync::Arc;

use hybrid_core::{EventKind, Task, TaskStatus};
use hybrid_llm::{AnthropicClient, AnthropicConfig};
use hybrid_platform::roles::PlatformKind;
use hybrid_platform::{HybridPlatform, LlmPlatform, PreApproved, RunOptions};
use hybrid_testkit::{MockLlmServer, Turn};
use hybrid_tools::{ToolRegistry, ToolsConfig};
use serde_json::{Value, json};

async fn claude_with_tools(mock: &MockLlmServer) -> HybridPlatform {
    let store = hybrid_store::connect("sqlite::memory:").await.unwrap();
    let client = AnthropicClient::new(
        AnthropicConfig::new("sk-ant", "claude-sonnet-4-5")
            .with_base_url(mock.anthropic_base_url()),
    )
    .unwrap();
    let registry = ToolRegistry::builtin(&ToolsConfig::default());
    let tools = ["bash", "read_file"]
        .iter()
        .filter_map(|n| registry.get(n))
        .collect();
    HybridPlatform::builder()
        .store(store)
        .platform(Arc::new(
            LlmPlatform::new("claude", PlatformKind::Execution, Arc::new(client)).with_tools(tools),
        ))
        .build()
        .await
        .unwrap()
}

/// `tool_result` blocks of the last request: (content, is_error).
fn results(body: &Value) -> Vec<(String, bool)> {
    body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["content"].as_array())
        .flatten()
        .filter(|b| b["type"] == "tool_result")
        .map(|b| {
            let c = match &b["content"] {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (c, b["is_error"].as_bool().unwrap_or(false))
        })
        .collect()
}

#[tokio::test]
async fn allowed_runs_denied_is_refused_and_approval_needs_an_approver() {
    let support = hybrid_tools::sandbox::support();
    if support.filesystem.is_err() || support.network.is_err() {
        eprintln!("SKIP: the kernel lacks the sandbox features: {support:?}");
        return;
    }
    let mock = MockLlmServer::start().await.unwrap();
    let hp = claude_with_tools(&mock).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), "hello").unwrap();
    for approver in [None, Some("ops-team@company.com")] {
        mock.enqueue(
            Turn::tool_call("bash", json!({"command": "ls"}))
                .and_tool_call("bash", json!({"command": "rm -rf /"}))
                .and_tool_call("bash", json!({"command": "git push origin main"})),
        );
        mock.enqueue(Turn::text(
            "Listed the files; refused to delete; push handled.",
        ));
        let task = Task::new("Tidy the workspace").with_system_access(true);
        let id = task.id.clone();
        let options = RunOptions {
            workdir: Some(dir.path().to_path_buf()),
            approver: approver.map(|n| Arc::new(PreApproved { name: n.into() }) as _),
            ..RunOptions::default()
        };
        let r = hp.run_with(task, options).await.unwrap();
        assert_eq!(r.status, TaskStatus::Completed);
        let stage = &r.stages["execution"];
        assert_eq!(stage.tools_used, vec!["bash".to_owned()]);
        assert_eq!(stage.tool_calls.len(), 3);
        let sent = results(&mock.last_request().unwrap().body);
        assert_eq!(sent.len(), 3, "{sent:?}");
        assert_eq!(
            sent[0],
            ("notes.txt\n".to_owned(), false),
            "ls ran in the workspace"
        );
        assert!(
            sent[1].1 && sent[1].0.contains("deny:"),
            "rm -rf / denied: {:?}",
            sent[1]
        );
        match approver {
            None => {
                assert!(
                    sent[2].1 && sent[2].0.contains("not approved"),
                    "{:?}",
                    sent[2]
                );
            }
            Some(_) => {
                // Approved, so it ran: git fails here (no repository), which is the tool's answer.
                assert!(!sent[2].0.contains("not approved"), "{:?}", sent[2]);
                assert!(
                    sent[2].0.contains("git") || sent[2].0.contains("repository"),
                    "{:?}",
                    sent[2]
                );
            }
        }
        let events = hp.store().events(&id).await.unwrap();
        let kinds: Vec<&str> = events.iter().map(|e| e.kind.name()).collect();
        assert_eq!(kinds.iter().filter(|k| **k == "tool_call").count(), 3);
        assert_eq!(kinds.iter().filter(|k| **k == "tool_result").count(), 3);
        if approver.is_some() {
            let statuses: Vec<TaskStatus> = hp
                .store()
                .status_history(&id)
                .await
                .unwrap()
                .into_iter()
                .map(|c| c.to)
                .collect();
            assert!(
                statuses.contains(&TaskStatus::AwaitingApproval),
                "{statuses:?}"
            );
            assert!(events.iter().any(|e| matches!(&e.kind,
                EventKind::Warning { message } if message.contains("approved by ops-team@company.com"))));
        }
    }
}

#[tokio::test]
async fn bad_tool_calls_become_clear_tool_errors_with_clean_audit_records() {
    let support = hybrid_tools::sandbox::support();
    if support.filesystem.is_err() || support.network.is_err() {
        eprintln!("SKIP: the kernel lacks the sandbox features: {support:?}");
        return;
    }
    let mock = MockLlmServer::start().await.unwrap();
    let hp = claude_with_tools(&mock).await;
    let dir = tempfile::tempdir().unwrap();
    let huge = format!("echo {}", "x".repeat(20_000));
    mock.enqueue(
        Turn::raw_tool_call("bash", "{\"command\": \"ls")
            .and_tool_call("launch_missiles", json!({}))
            .and_tool_call("bash", json!({"command": huge}))
            .and_tool_call("bash", json!({"command": "head -c 64 /dev/urandom"}))
            .and_tool_call("bash", json!({"command": "sleep 30"})),
    );
    mock.enqueue(Turn::text("handled"));
    let task = Task::new("misbehave").with_system_access(true);
    let id = task.id.clone();
    let limits = hybrid_tools::Limits {
        timeout: std::time::Duration::from_secs(1),
        ..Default::default()
    };
    let options = RunOptions {
        workdir: Some(dir.path().to_path_buf()),
        approver: Some(Arc::new(PreApproved {
            name: "tester".into(),
        })),
        tool_limits: Some(limits),
        ..RunOptions::default()
    };
    let r = hp.run_with(task, options).await.unwrap();
    assert_eq!(r.status, TaskStatus::Completed);
    let sent = results(&mock.last_request().unwrap().body);
    assert_eq!(sent.len(), 5, "{sent:?}");
    assert!(
        sent.iter().all(|(_, is_error)| *is_error),
        "every call failed: {sent:?}"
    );
    let expect = [
        "not valid JSON",
        "unknown tool `launch_missiles`",
        "too long",
        "binary output",
        "timed out",
    ];
    for ((text, _), want) in sent.iter().zip(expect) {
        assert!(
            text.to_lowercase().contains(&want.to_lowercase()),
            "`{want}` not in: {text}"
        );
    }
    let audit = hp
        .store()
        .audit_records(&hybrid_store::AuditFilter {
            task_id: Some(id),
            ..Default::default()
        })
        .await
        .unwrap();
    let tool_records: Vec<_> = audit
        .iter()
        .filter(|a| a.action == "bash_command" || a.action == "tool_call")
        .collect();
    assert_eq!(tool_records.len(), 5, "{audit:?}");
    assert!(
        tool_records
            .iter()
            .all(|a| a.detail["is_error"] == true && a.output.is_some())
    );
    assert!(hp.store().verify_audit().await.unwrap().is_valid());
}

#[tokio::test]
async fn an_agent_section_gives_its_role_other_tools() {
    let mock = MockLlmServer::start().await.unwrap();
    let toml = format!(
        "[platforms.claude]\nprovider = \"anthropic\"\nbase_url = \"{}\"\n\n[agents.executor]\nplatform = \"claude\"\ntools = [\"read_file\"]\ninstructions = \"Only read.\"\n",
        mock.anthropic_base_url()
    );
    let config =
        hybrid_platform::HybridConfig::parse(&toml, std::path::Path::new("hybrid.toml")).unwrap();
    let env = |k: &str| (k == "ANTHROPIC_API_KEY").then(|| "sk-ant".to_owned());
    let b = hybrid_platform::HybridPlatformBuilder::from_config(&config, &env)
        .await
        .unwrap();
    let hp = b.build().await.unwrap();
    mock.enqueue(Turn::tool_call("bash", json!({"command": "ls"})));
    mock.enqueue(Turn::text("could not"));
    let dir = tempfile::tempdir().unwrap();
    let options = RunOptions {
        workdir: Some(dir.path().to_path_buf()),
        ..RunOptions::default()
    };
    let task = Task::new("list").with_system_access(true);
    let r = hp.run_with(task, options).await.unwrap();
    assert_eq!(r.stages["execution"].agent, "executor");
    let first = &mock.requests()[0].body;
    assert_eq!(first["system"], "Only read.");
    let offered: Vec<&str> = first["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(offered, vec!["read_file"]);
    let sent = results(&mock.last_request().unwrap().body);
    assert!(
        sent[0].1
            && sent[0]
                .0
                .contains("unknown tool `bash` (available: read_file)"),
        "{sent:?}"
    );
}

/// A tool that reports what another connection to the run's database sees
/// when it is called: the task's status, its audit records, its events.
struct StoreProbe {
    url: String,
}

#[async_trait::async_trait]
impl hybrid_tools::Tool for StoreProbe {
    fn spec(&self) -> hybrid_tools::ToolSpec {
        hybrid_tools::ToolSpec {
            name: "probe".into(),
            description: "Report what the store holds.".into(),
            parameters: json!({"type": "object", "properties": {}}),
        }
    }

    async fn call(&self, _: Value, _: &hybrid_tools::ToolContext) -> hybrid_tools::ToolOutput {
        let other = hybrid_store::connect(&self.url).await.unwrap();
        let tasks = other
            .list_tasks(&hybrid_store::TaskFilter::default())
            .await
            .unwrap();
        let id = tasks[0].id.clone();
        let status = other.get_task(&id).await.unwrap().unwrap().status;
        let audit: Vec<String> = other
            .audit_records(&hybrid_store::AuditFilter {
                task_id: Some(id.clone()),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.action)
            .collect();
        let events: Vec<String> = other
            .events(&id)
            .await
            .unwrap()
            .iter()
            .map(|e| e.kind.name().to_owned())
            .collect();
        hybrid_tools::ToolOutput::ok(
            json!({"status": status.as_str(), "audit": audit, "events": events}).to_string(),
        )
    }
}

/// Every step is durable before the next one acts: when a tool runs, another
/// connection already sees the task in progress, the model call that asked
/// for the tool in the audit trail, and the run's events up to the call.
/// (The run's writes are committed in batches, one per step, not one per record.)
#[tokio::test]
async fn each_step_is_committed_before_the_next_acts() {
    let mock = MockLlmServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("durable.db").display());
    let store = hybrid_store::connect(&url).await.unwrap();
    let client = AnthropicClient::new(
        AnthropicConfig::new("sk-ant", "claude-sonnet-4-5")
            .with_base_url(mock.anthropic_base_url()),
    )
    .unwrap();
    let hp = HybridPlatform::builder()
        .store(store.clone())
        .platform(Arc::new(
            LlmPlatform::new("claude", PlatformKind::Execution, Arc::new(client))
                .with_tools(vec![Arc::new(StoreProbe { url: url.clone() })]),
        ))
        .build()
        .await
        .unwrap();
    mock.enqueue(Turn::tool_call("probe", json!({})));
    mock.enqueue(Turn::text("Probed."));
    let task = Task::new("Probe the store");
    let id = task.id.clone();
    let options = RunOptions {
        workdir: Some(dir.path().to_path_buf()),
        platform: Some("claude".into()),
        ..RunOptions::default()
    };
    let result = hp.run_with(task, options).await.unwrap();
    assert_eq!(result.status, TaskStatus::Completed);

    let seen = results(&mock.requests().last().unwrap().body);
    let seen: Value = serde_json::from_str(&seen[0].0).unwrap();
    assert_eq!(seen["status"], "in_progress", "{seen}");
    assert_eq!(seen["audit"], json!(["model_call"]), "{seen}");
    let events: Vec<&str> = seen["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    for kind in [
        "submitted",
        "routed",
        "stage_started",
        "model_call",
        "tool_call",
    ] {
        assert!(events.contains(&kind), "no {kind} event yet: {events:?}");
    }
    // And at the end, everything: the tool call's audit, the second model
    // call, the result, with the lease let go.
    let record = store.get_task(&id).await.unwrap().unwrap();
    assert_eq!(record.status, TaskStatus::Completed);
    assert!(record.lease_owner.is_none());
    let audit: Vec<String> = store
        .audit_records(&hybrid_store::AuditFilter {
            task_id: Some(id.clone()),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.action)
        .collect();
    assert_eq!(audit, ["model_call", "tool_call", "model_call"]);
    let last = store.events(&id).await.unwrap();
    assert_eq!(last.last().unwrap().kind.name(), "finished");
}
