//! The built-in `incident-response` workflow end to end (issue 5): a real local
//! service ([`ServiceFixture`]) is faulty — `/health` answers 503 and its log
//! fills with `ERROR pool: …` lines. The diagnostics (runbooks plus one agent)
//! find it, the analyst recommends `./restart-service.sh`, a person approves
//! the fix, the command policy asks again for the command itself, the restart
//! runs, the verification loop sees a 200, and the incident report reaches the
//! webhook. Only the models are mocked.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_trait::async_trait;
use hybrid_core::{Task, TaskStatus};
use hybrid_platform::{
    ApprovalAnswer, ApprovalAsk, ApprovalContext, Approver, HybridPlatform, RunOptions,
};
use hybrid_store::AuditFilter;
use hybrid_testkit::fixtures::ServiceFixture;
use hybrid_testkit::platform::TestPlatform;
use hybrid_testkit::{MockLlmServer, Protocol, Turn, WebhookRecorder};
use hybrid_tools::SandboxPolicy;
use serde_json::{Value, json};

const APPROVER: &str = "oncall@example.com";
const REPORT_MARKER: &str = "INC-4711: connection pool exhausted on api, resolved by a restart";

/// `openai`, and `claude` with bash/read_file/grep, on one mock; the built-in
/// tools plus `notify` posting to `webhook`.
async fn hybrid(mock: &MockLlmServer, webhook: &str) -> HybridPlatform {
    TestPlatform::on(mock)
        .claude_tools(&["bash", "read_file", "grep"])
        .notify_to(webhook)
        .build()
        .await
        .unwrap()
}

/// One ask, with what `service.state` said at that moment.
#[derive(Debug, Clone)]
struct Asked {
    ask: ApprovalAsk,
    service_state: String,
    at: Instant,
}

/// Approves everything in [`APPROVER`]'s name and records every ask.
struct RecordingApprover {
    service_dir: PathBuf,
    asks: Mutex<Vec<Asked>>,
}

#[async_trait]
impl Approver for RecordingApprover {
    async fn ask(&self, ask: &ApprovalAsk, _ctx: &ApprovalContext) -> ApprovalAnswer {
        let service_state = std::fs::read_to_string(self.service_dir.join("service.state"))
            .unwrap_or_default()
            .trim()
            .to_owned();
        self.asks.lock().unwrap().push(Asked {
            ask: ask.clone(),
            service_state,
            at: Instant::now(),
        });
        ApprovalAnswer::Approved {
            by: APPROVER.into(),
            note: Some("go ahead".into()),
        }
    }
}

/// The model turns, in the order the workflow asks for them. Every wave has at
/// most one agent stage, so the mock's FIFO order is the workflow's order.
fn script(mock: &MockLlmServer, restart: &str) {
    // assess (coordinator, openai)
    mock.enqueue(Turn::text(
        "SEV2: the API answers 503s but the process is up.\n\
         Hypotheses: connection pool exhausted, dependency down, crash loop.\n\
         Diagnostics: look for pool errors in the log and the health status.",
    ));
    // diag_* runbooks need no model; diag_service (executor, claude): one
    // tool call, then its findings.
    mock.enqueue(Turn::tool_call(
        "grep",
        json!({"pattern": "ERROR pool", "path": "service.log"}),
    ));
    mock.enqueue(Turn::text(
        "`grep 'ERROR pool' service.log`: repeated `connection pool exhausted (50/50 in use)`; \
         the process has not restarted since it started. Nothing else is wrong.",
    ));
    // recommend (analyst, openai, JSON)
    mock.enqueue(Turn::text(
        json!({
            "severity": "SEV2",
            "root_cause": "connection pool exhausted (50/50 in use, leaked connections)",
            "evidence": "ERROR pool lines in the log; /health answers 503",
            "command": restart,
            "rollback": "none needed: a restart only resets the pool",
        })
        .to_string(),
    ));
    // heal_check / health_verdict (validator, openai), attempt 1
    mock.enqueue(Turn::text(
        "The health endpoint answers 200 and the log shows the pool reset.\nPASS",
    ));
    // report (coordinator, openai)
    mock.enqueue(Turn::text(format!(
        "# Incident report\n\n## Summary\n{REPORT_MARKER}.\n\n## Resolution\n\
         `{restart}` was approved and applied; /health answers 200.\n"
    )));
}

fn prompt_of(body: &Value) -> String {
    body.to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn incident_response_restarts_the_faulty_service_after_approval_and_reports() {
    let support = hybrid_tools::sandbox::support();
    if let Err(why) = &support.filesystem {
        eprintln!("SKIP: the kernel lacks the sandbox's write confinement: {why}");
        return;
    }
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let fixture = ServiceFixture::start(&dir.path().join("api")).unwrap();
    let first_pid = fixture.pid().unwrap();
    assert_eq!(fixture.health_status().await, Some(503), "faulty at first");

    let mock = MockLlmServer::start().await.unwrap();
    let webhook = WebhookRecorder::start().await.unwrap();
    let hp = hybrid(&mock, webhook.url()).await;
    script(&mock, fixture.restart_command());

    let approver = Arc::new(RecordingApprover {
        service_dir: fixture.dir().to_path_buf(),
        asks: Mutex::new(Vec::new()),
    });
    let options = RunOptions {
        workdir: Some(fixture.dir().to_path_buf()),
        approver: Some(approver.clone()),
        // The health checks `curl` the service on 127.0.0.1.
        sandbox: SandboxPolicy {
            allow_network: true,
            ..SandboxPolicy::default()
        },
        ..RunOptions::default()
    };
    let task = Task::new("API returns 503s")
        .with_workflow("incident-response")
        .with_context("service", json!("api"))
        .with_context("log_file", json!(fixture.log_path().display().to_string()))
        .with_context("health_url", json!(fixture.health_url()))
        .with_context("notify_mention", json!("@oncall"));
    let task_id = task.id.clone();

    let result = hp.run_with(task, options).await.unwrap();
    let ran_for = started.elapsed();
    assert_eq!(result.status, TaskStatus::Completed, "{:?}", result.error);
    assert_eq!(result.route.rule, "workflow");
    let names: Vec<&str> = result.stages.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "assess",
            "diag_processes",
            "diag_memory",
            "diag_disk",
            "diag_logs",
            "diag_health",
            "diag_service",
            "recommend",
            "approve_fix",
            "apply_fix",
            "health_probe",
            "health_verdict",
            "heal_check",
            "report",
            "notify",
        ]
    );
    assert_eq!(mock.queued_replies(), 0, "every scripted turn was used");
    assert_eq!(mock.request_count(), 6);

    // The fault was visible: the log tail runbook shows the ERROR lines, the
    // health runbook the 503, the agent found them too.
    let logs = &result.stages["diag_logs"];
    assert!(
        logs.output
            .contains("ERROR pool: connection pool exhausted (50/50 in use)"),
        "{}",
        logs.output
    );
    let health = &result.stages["diag_health"].output;
    assert!(
        health
            .lines()
            .nth(1)
            .unwrap_or_default()
            .starts_with("503 "),
        "{health}"
    );
    let diag_service = &result.stages["diag_service"];
    assert_eq!(diag_service.platform, "claude");
    assert_eq!(diag_service.tools_used, ["grep"]);
    assert!(
        diag_service.tool_calls[0]
            .output
            .as_deref()
            .unwrap()
            .contains("connection pool exhausted"),
        "{:?}",
        diag_service.tool_calls
    );
    // The analyst was shown all of it.
    let requests = mock.requests();
    let protocols: Vec<Protocol> = requests.iter().map(|r| r.protocol).collect();
    assert_eq!(
        protocols,
        [
            Protocol::OpenAi,
            Protocol::Anthropic,
            Protocol::Anthropic,
            Protocol::OpenAi,
            Protocol::OpenAi,
            Protocol::OpenAi,
        ]
    );
    let recommend_prompt = prompt_of(&requests[3].body);
    for seen in [
        "ERROR pool: connection pool exhausted",
        "503 ",
        "repeated `connection pool exhausted",
    ] {
        assert!(
            recommend_prompt.contains(seen),
            "{seen}: {recommend_prompt}"
        );
    }
    let recommend = result.stages["recommend"].detail.as_ref().unwrap();
    assert_eq!(recommend["json"]["command"], fixture.restart_command());

    // Approvals: the gate stage asked with the command in its message, then
    // the policy asked for the command itself (not on the seed's allow list),
    // both while the service was still the faulty first process.
    let asks = approver.asks.lock().unwrap().clone();
    let degraded = format!("degraded {first_pid}");
    let gate: Vec<&Asked> = asks.iter().filter(|a| a.ask.tool == "approval").collect();
    assert_eq!(gate.len(), 1, "{asks:#?}");
    assert_eq!(gate[0].ask.rule, "workflow:incident-response:approve_fix");
    assert!(
        gate[0]
            .ask
            .command
            .contains(&format!("Apply: {}", fixture.restart_command())),
        "{}",
        gate[0].ask.command
    );
    assert!(
        gate[0]
            .ask
            .command
            .starts_with("SEV2 on api: connection pool exhausted")
    );
    assert_eq!(gate[0].service_state, degraded);
    let fix: Vec<&Asked> = asks
        .iter()
        .filter(|a| a.ask.tool == "bash" && a.ask.command == fixture.restart_command())
        .collect();
    assert_eq!(fix.len(), 1, "the policy asked once for the fix: {asks:#?}");
    assert_eq!(fix[0].ask.call_id, "stage:apply_fix/tool/attempt:1");
    assert_eq!(
        fix[0].service_state, degraded,
        "not restarted before approval"
    );
    assert!(gate[0].at < fix[0].at);
    assert_eq!(
        result.stages["approve_fix"].verdict.as_deref(),
        Some("approved")
    );
    let applied = &result.stages["apply_fix"];
    assert!(
        applied.output.contains("healthy again"),
        "{}",
        applied.output
    );

    // Fixed: a new, healthy process on the same port.
    assert!(fixture.is_healthy().await, "healthy after the fix");
    let new_pid = fixture.pid().unwrap();
    assert_ne!(new_pid, first_pid);
    let state = std::fs::read_to_string(fixture.dir().join("service.state")).unwrap();
    assert_eq!(state.trim(), format!("ok {new_pid}"));
    let log = std::fs::read_to_string(fixture.log_path()).unwrap();
    let (before, after) = log.split_once("restarted; pool reset").unwrap();
    assert!(before.contains("ERROR pool: connection pool exhausted"));
    assert!(!after.contains("ERROR"), "{after}");

    // The verification loop: one attempt, probe 200, verdict pass, loop ok.
    let probe = result.stages["health_probe"].detail.as_ref().unwrap();
    assert_eq!(probe["commands"][0]["output"], "200", "{probe:#}");
    assert_eq!(
        result.stages["health_verdict"].verdict.as_deref(),
        Some("pass")
    );
    let heal = result.stages["heal_check"].detail.as_ref().unwrap();
    assert_eq!(heal["ok"], true, "{heal:#}");
    assert_eq!(heal["attempt"], 1, "{heal:#}");
    assert!(prompt_of(&requests[4].body).contains("Health endpoint HTTP status: 200"));

    // The report reached the webhook.
    assert!(result.stages["report"].output.contains(REPORT_MARKER));
    assert!(
        result.stages["notify"].output.contains("notification sent"),
        "{}",
        result.stages["notify"].output
    );
    let bodies = webhook.bodies();
    assert_eq!(bodies.len(), 1, "{bodies:#?}");
    assert_eq!(bodies[0]["title"], "[SEV2] api: resolved");
    let message = bodies[0]["message"].as_str().unwrap();
    assert!(
        message.starts_with("@oncall # Incident report"),
        "{message}"
    );
    assert!(message.contains(REPORT_MARKER), "{message}");

    // The audit trail: the restart ran exactly once, approved by the on-call
    // person, after its approval was recorded.
    let audit = hp
        .store()
        .audit_records(&AuditFilter {
            task_id: Some(task_id.clone()),
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    let runs: Vec<_> = audit
        .iter()
        .filter(|r| {
            r.action == "bash_command" && r.command.as_deref() == Some(fixture.restart_command())
        })
        .collect();
    assert_eq!(runs.len(), 1, "{runs:#?}");
    assert_eq!(runs[0].approved_by.as_deref(), Some(APPROVER));
    let approvals: Vec<_> = audit
        .iter()
        .filter(|r| r.action == "approval" && r.approved_by.as_deref() == Some(APPROVER))
        .collect();
    let gate_record = approvals
        .iter()
        .find(|r| r.detail["stage"] == "approve_fix")
        .unwrap();
    let policy_record = approvals
        .iter()
        .find(|r| r.command.as_deref() == Some(fixture.restart_command()))
        .unwrap();
    assert!(gate_record.seq < policy_record.seq);
    assert!(policy_record.seq < runs[0].seq);
    assert!(
        audit
            .iter()
            .filter(|r| r.action == "bash_command")
            .all(|r| r.approved_by.is_some()
                || r.command.as_deref().is_some_and(|c| c.starts_with("ps "))),
        "every runbook command off the allow list was approved"
    );
    assert!(hp.store().verify_audit().await.unwrap().first_bad.is_none());

    eprintln!("incident-response ran in {ran_for:?}");
    drop(hp);
    drop(fixture);
    assert!(!is_running(new_pid), "the service outlived the test");
}

fn is_running(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| !s.contains(") Z "))
            .unwrap_or(false)
}
