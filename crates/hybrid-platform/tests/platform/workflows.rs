//! The workflow engine end to end against the mock: the hybrid route runs
//! plan → execute → verify, stages are committed as they finish, and a
//! failed task resumes from its first unfinished stage without running
//! anything twice.

use std::sync::Arc;

use hybrid_core::{Task, TaskStatus};
use hybrid_platform::{AgentInput, CustomAgent, HybridPlatform, PlatformError, RunOptions};
use hybrid_store::AuditFilter;
use hybrid_testkit::platform::TestPlatform;
use hybrid_testkit::{Fault, MockLlmServer, Turn};
use serde_json::json;

/// `openai` and `claude` (with bash) on one mock.
async fn hybrid(mock: &MockLlmServer) -> HybridPlatform {
    TestPlatform::on(mock)
        .claude_tools(&["bash"])
        .build()
        .await
        .unwrap()
}

fn audit_task() -> Task {
    let mut task = Task::new("Audit codebase for security issues");
    task.requires_system_access = true;
    task.requires_multi_step = true;
    task
}

fn options(dir: &std::path::Path) -> RunOptions {
    RunOptions {
        workdir: Some(dir.to_path_buf()),
        ..RunOptions::default()
    }
}

fn script_plan_and_execution(mock: &MockLlmServer) {
    mock.enqueue(Turn::text(
        "1. List the files with `ls`.\nDone when: the files are listed.",
    ));
    mock.enqueue(Turn::tool_call("bash", json!({"command": "ls"})));
    mock.enqueue(Turn::text("Ran `ls`: found notes.txt. No secrets in it."));
}

#[tokio::test]
async fn a_multi_step_system_task_runs_plan_execute_verify_in_three_stages() {
    let mock = MockLlmServer::start().await.unwrap();
    let hp = hybrid(&mock).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), "hello").unwrap();
    script_plan_and_execution(&mock);
    mock.enqueue(Turn::text("The listing proves it.\nPASS"));

    let result = hp
        .run_with(audit_task(), options(dir.path()))
        .await
        .unwrap();
    assert_eq!(result.status, TaskStatus::Completed);
    assert_eq!(result.platform, "hybrid");
    assert_eq!(result.route.rule, "system_access_multi_step");
    let names: Vec<&str> = result.stages.keys().map(String::as_str).collect();
    assert_eq!(names, ["planning", "execution", "verification"]);
    let planning = &result.stages["planning"];
    assert_eq!(
        (planning.agent.as_str(), planning.platform.as_str()),
        ("coordinator", "openai")
    );
    let execution = &result.stages["execution"];
    assert_eq!(
        (execution.agent.as_str(), execution.platform.as_str()),
        ("executor", "claude")
    );
    assert_eq!(execution.tools_used, ["bash"]);
    assert!(
        execution.tool_calls[0]
            .output
            .as_deref()
            .unwrap()
            .contains("notes.txt")
    );
    let verification = &result.stages["verification"];
    assert_eq!(verification.agent, "validator");
    assert_eq!(verification.verdict.as_deref(), Some("pass"));
    assert_eq!(result.output, verification.output);

    // The execution prompt carried the plan; the verifier saw the report.
    let requests = mock.requests();
    assert_eq!(requests.len(), 4);
    assert!(
        requests[1]
            .body
            .to_string()
            .contains("List the files with `ls`")
    );
    assert!(requests[3].body.to_string().contains("found notes.txt"));

    // Committed in order, with their positions.
    let stored = hp.store().stages(&result.task_id).await.unwrap();
    let stored: Vec<&str> = stored.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(stored, ["planning", "execution", "verification"]);
}

#[tokio::test]
async fn a_failed_task_resumes_from_its_first_unfinished_stage_and_runs_nothing_twice() {
    let mock = MockLlmServer::start().await.unwrap();
    let hp = hybrid(&mock).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), "hello").unwrap();
    script_plan_and_execution(&mock);
    mock.enqueue(Fault::ServerError);

    let task = audit_task();
    let id = task.id.clone();
    let err = hp.run_with(task, options(dir.path())).await.unwrap_err();
    assert!(
        matches!(
            err,
            PlatformError::Task {
                status: TaskStatus::Failed,
                ..
            }
        ),
        "{err}"
    );
    let stored = hp.store().stages(&id).await.unwrap();
    assert_eq!(stored.len(), 2, "planning and execution were committed");
    assert_eq!(mock.request_count(), 4);

    mock.enqueue(Turn::text("Proven by the listing.\nPASS"));
    let result = hp.resume(&id, options(dir.path()), false).await.unwrap();
    assert_eq!(result.status, TaskStatus::Completed);
    assert_eq!(
        result.stages.keys().map(String::as_str).collect::<Vec<_>>(),
        ["planning", "execution", "verification"]
    );
    assert_eq!(
        mock.request_count(),
        5,
        "only the verification was asked again"
    );
    let audit = hp
        .store()
        .audit_records(&AuditFilter {
            task_id: Some(id.clone()),
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    let bash: Vec<_> = audit
        .iter()
        .filter(|r| r.action == "bash_command")
        .collect();
    assert_eq!(bash.len(), 1, "ls ran once: {bash:#?}");
    // A completed task has nothing to resume.
    let again = hp
        .resume(&id, options(dir.path()), false)
        .await
        .unwrap_err();
    assert!(again.to_string().contains("nothing to resume"), "{again}");
}

const RUNBOOK_FLOW: &str = r#"
name: runbook-flow
stages:
  - id: gather
    runbook:
      commands: ["echo one > one.txt && cat one.txt", "echo two"]
  - id: gate
    check:
      - { name: gathered, expect: "stages.gather.ok", message: "gathering failed" }
  - id: summary
    agent: summariser
    prompt: "Summarise: {{ stages.gather.output }}"
"#;

struct Summariser;

#[async_trait::async_trait]
impl CustomAgent for Summariser {
    async fn handle(
        &self,
        input: AgentInput<'_>,
    ) -> Result<String, hybrid_platform::CustomAgentError> {
        Ok(format!("{} lines", input.prompt.lines().count()))
    }
}

#[tokio::test]
async fn runbook_check_and_custom_agent_stages_run_without_a_model() {
    let mock = MockLlmServer::start().await.unwrap();
    let hp = hybrid(&mock).await;
    hp.register_agent("summariser", Summariser);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("flow.yaml");
    std::fs::write(&file, RUNBOOK_FLOW).unwrap();
    let task = Task::new("gather").with_workflow(file.display().to_string());
    // `echo` is not on the seed's allow list: it needs (and gets) approval.
    let approved = RunOptions {
        approver: Some(Arc::new(hybrid_platform::PreApproved {
            name: "tester".into(),
        })),
        ..options(dir.path())
    };
    let result = hp.run_with(task, approved).await.unwrap();
    assert_eq!(result.status, TaskStatus::Completed);
    assert_eq!(result.route.rule, "workflow");
    let gather = &result.stages["gather"];
    assert_eq!(gather.tools_used, ["bash"]);
    assert!(
        gather.output.contains("$ echo two\ntwo"),
        "{}",
        gather.output
    );
    assert_eq!(result.stages["gate"].verdict.as_deref(), Some("pass"));
    assert_eq!(result.stages["summary"].output, "4 lines");
    assert!(dir.path().join("one.txt").exists());
    assert_eq!(mock.request_count(), 0, "no model was asked");
}

#[tokio::test]
async fn a_failing_check_rejects_the_task_naming_the_rule() {
    let mock = MockLlmServer::start().await.unwrap();
    let hp = hybrid(&mock).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("flow.yaml");
    std::fs::write(
        &file,
        "name: strict\nstages:\n  - id: test\n    runbook:\n      commands: [\"echo 'FAIL test_divide' && exit 1\"]\n      continue_on_error: true\n  - id: decide\n    check:\n      - { name: tests_pass, expect: \"stages.test.ok\", message: \"tests failed: {{ stages.test.output }}\" }\n  - id: deploy\n    runbook:\n      commands: [\"touch deployed\"]\n",
    )
    .unwrap();
    let task = Task::new("ship").with_workflow(file.display().to_string());
    let approved = RunOptions {
        approver: Some(Arc::new(hybrid_platform::PreApproved {
            name: "tester".into(),
        })),
        ..options(dir.path())
    };
    let err = hp.run_with(task, approved).await.unwrap_err();
    let PlatformError::Task { status, source, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!(*status, TaskStatus::Blocked);
    assert!(
        matches!(**source, PlatformError::Rejected { .. }),
        "{source}"
    );
    assert!(err.to_string().contains("test_divide"), "{err}");
    assert!(!dir.path().join("deployed").exists(), "deploy never ran");
}

/// Never answers.
struct Silent;

#[async_trait::async_trait]
impl hybrid_platform::Approver for Silent {
    async fn ask(
        &self,
        _ask: &hybrid_platform::ApprovalAsk,
        ctx: &hybrid_platform::ApprovalContext,
    ) -> hybrid_platform::ApprovalAnswer {
        ctx.cancel.cancelled().await;
        hybrid_platform::ApprovalAnswer::Rejected {
            by: "cancelled".into(),
            reason: None,
        }
    }
}

#[tokio::test]
async fn an_unanswered_approval_gate_times_out_as_a_rejection() {
    let mock = MockLlmServer::start().await.unwrap();
    let hp = hybrid(&mock).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("gate.yaml");
    std::fs::write(
        &file,
        "name: gate\nstages:\n  - id: approve\n    approval: { message: \"ship it?\", timeout: \"200ms\" }\n  - id: ship\n    runbook:\n      commands: [\"touch shipped\"]\n",
    )
    .unwrap();
    let task = Task::new("ship").with_workflow(file.display().to_string());
    let id = task.id.clone();
    let options = RunOptions {
        approver: Some(Arc::new(Silent)),
        ..options(dir.path())
    };
    let err = hp.run_with(task, options).await.unwrap_err();
    assert!(err.to_string().contains("rejected by timeout"), "{err}");
    assert!(!dir.path().join("shipped").exists());
    let rec = hp.store().get_task(&id).await.unwrap().unwrap();
    assert_eq!(rec.status, TaskStatus::Blocked);
}

#[tokio::test]
async fn an_agent_hands_the_stage_off_to_another() {
    let mock = MockLlmServer::start().await.unwrap();
    let hp = hybrid(&mock).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), "hello").unwrap();
    let file = dir.path().join("handoff.yaml");
    std::fs::write(
        &file,
        "name: handoff\nstages:\n  - id: look\n    agent: coordinator\n    handoffs: [executor]\n    prompt: \"What files are here?\"\n",
    )
    .unwrap();
    mock.enqueue(Turn::text(
        "This needs a shell: list the directory.\nHANDOFF: executor",
    ));
    mock.enqueue(Turn::tool_call("bash", json!({"command": "ls"})));
    mock.enqueue(Turn::text("One file: notes.txt."));
    let task = Task::new("look").with_workflow(file.display().to_string());
    let result = hp.run_with(task, options(dir.path())).await.unwrap();
    let look = &result.stages["look"];
    assert_eq!(look.agent, "executor");
    assert_eq!(look.output, "One file: notes.txt.");
    assert_eq!(look.tools_used, ["bash"]);
    assert_eq!(
        look.finish_reason.as_deref(),
        Some("handoffs: coordinator → executor")
    );
    let requests = mock.requests();
    assert_eq!(requests[0].path, "/v1/chat/completions");
    assert_eq!(requests[1].path, "/v1/messages");
    assert!(requests[1].body.to_string().contains("list the directory"));
}

#[tokio::test]
async fn a_cached_stage_is_reused_within_its_ttl_and_marks_the_prompt_for_caching() {
    let mock = MockLlmServer::start().await.unwrap();
    let hp = hybrid(&mock).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cached.yaml");
    std::fs::write(
        &file,
        "name: cached\ninputs:\n  commit: {}\nstages:\n  - id: analysis\n    agent: executor\n    cache: { ttl: \"1h\", key: \"{{ inputs.commit }}\" }\n    prompt: \"Analyse commit {{ inputs.commit }}\"\n",
    )
    .unwrap();
    mock.enqueue(Turn::text("Risky: auth.rs changed."));
    let run = |commit: &str| {
        Task::new("analyse")
            .with_workflow(file.display().to_string())
            .with_context("commit", json!(commit))
    };
    let first = hp
        .run_with(run("abc123"), options(dir.path()))
        .await
        .unwrap();
    assert_eq!(first.stages["analysis"].output, "Risky: auth.rs changed.");
    // The executor's system prompt and tools were marked for Anthropic's cache.
    let body = &mock.requests()[0].body;
    assert_eq!(
        body["system"][0]["cache_control"]["type"], "ephemeral",
        "{body}"
    );

    let second = hp
        .run_with(run("abc123"), options(dir.path()))
        .await
        .unwrap();
    assert_eq!(second.stages["analysis"].output, "Risky: auth.rs changed.");
    assert_eq!(
        second.stages["analysis"].cost_usd,
        Some(hybrid_core::Money::ZERO)
    );
    assert_eq!(
        mock.request_count(),
        1,
        "the same commit was not analysed again"
    );

    mock.enqueue(Turn::text("Nothing risky."));
    let other = hp
        .run_with(run("def456"), options(dir.path()))
        .await
        .unwrap();
    assert_eq!(other.stages["analysis"].output, "Nothing risky.");
    assert_eq!(mock.request_count(), 2);
}

#[tokio::test]
async fn a_streamed_workflow_shows_every_stage_boundary_in_order() {
    use futures::StreamExt;
    let mock = MockLlmServer::start().await.unwrap();
    let hp = hybrid(&mock).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), "hello").unwrap();
    script_plan_and_execution(&mock);
    mock.enqueue(Turn::text("Proven.\nPASS"));
    let events: Vec<hybrid_core::Event> = hp
        .run_streaming(audit_task(), options(dir.path()))
        .collect()
        .await;
    let boundaries: Vec<String> = events
        .iter()
        .filter_map(|e| match &e.kind {
            hybrid_core::EventKind::StageStarted { stage, .. } => Some(format!("start {stage}")),
            hybrid_core::EventKind::StageCompleted { stage, .. } => Some(format!("done {stage}")),
            hybrid_core::EventKind::ToolCall { name, .. } => Some(format!("tool {name}")),
            _ => None,
        })
        .collect();
    assert_eq!(
        boundaries,
        [
            "start planning",
            "done planning",
            "start execution",
            "tool bash",
            "done execution",
            "start verification",
            "done verification"
        ]
    );
    assert!(
        events
            .iter()
            .any(|e| matches!(e.kind, hybrid_core::EventKind::TextDelta { .. }))
    );
    assert!(matches!(
        events.last().map(|e| &e.kind),
        Some(hybrid_core::EventKind::Finished { .. })
    ));
}

#[tokio::test]
async fn a_json_stage_whose_answer_breaks_its_schema_fails() {
    let mock = MockLlmServer::start().await.unwrap();
    let hp = hybrid(&mock).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("json.yaml");
    std::fs::write(
        &file,
        "name: json\nstages:\n  - id: rec\n    agent: analyst\n    output: json\n    schema: { type: object, required: [command], properties: { command: { type: string } } }\n    prompt: \"Recommend a command as JSON\"\n",
    )
    .unwrap();
    mock.enqueue(Turn::text("{\"cmd\": \"restart\"}"));
    let task = Task::new("rec").with_workflow(file.display().to_string());
    let err = hp.run_with(task, options(dir.path())).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("does not match the stage's schema"),
        "{err}"
    );
    mock.enqueue(Turn::text("```json\n{\"command\": \"./restart.sh\"}\n```"));
    let task = Task::new("rec").with_workflow(file.display().to_string());
    let ok = hp.run_with(task, options(dir.path())).await.unwrap();
    assert_eq!(
        ok.stages["rec"].detail.as_ref().unwrap()["json"]["command"],
        "./restart.sh"
    );
}
