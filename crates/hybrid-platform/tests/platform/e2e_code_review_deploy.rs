//! The built-in `code-review-deploy` workflow end to end on a real git
//! repository ([`GitRepoFixture`]): every runbook command runs through the
//! real sandbox and the command policy, only the two model calls (analysis,
//! summary) are scripted. `feature/good` (tests pass) is approved, merged,
//! deployed, health-checked and announced on a webhook; `feature/bad` (a
//! failing test) is rejected by the guardrails, naming the test, before
//! anyone is asked and before anything is merged or deployed.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use hybrid_core::{Task, TaskStatus};
use hybrid_platform::{
    ApprovalAnswer, ApprovalAsk, ApprovalContext, Approver, HybridPlatform, PlatformError,
    RunOptions,
};
use hybrid_store::{AuditFilter, AuditRecord};
use hybrid_testkit::fixtures::GitRepoFixture;
use hybrid_testkit::platform::TestPlatform;
use hybrid_testkit::{MockLlmServer, Protocol, Turn, WebhookRecorder};
use serde_json::{Value, json};

const WORKFLOW: &str = "code-review-deploy";

const ANALYSIS: &str = r#"{"summary": "Adds power() to the calculator, with a test.", "risky_areas": ["src/calc.sh: new public function"], "risk": "low"}"#;

const SUMMARY: &str = "**feature/good → main**: adds `power()` with its test. Deployed and healthy; nothing needs attention.";

/// Approves everything and remembers every ask.
#[derive(Default)]
struct RecordingApprover {
    asks: Mutex<Vec<ApprovalAsk>>,
}

impl RecordingApprover {
    fn asks(&self) -> Vec<ApprovalAsk> {
        self.asks.lock().unwrap().clone()
    }

    /// The asks of approval stages (the others are the command policy's).
    fn stage_asks(&self) -> Vec<ApprovalAsk> {
        self.asks()
            .into_iter()
            .filter(|a| a.tool == "approval")
            .collect()
    }
}

#[async_trait]
impl Approver for RecordingApprover {
    async fn ask(&self, ask: &ApprovalAsk, _ctx: &ApprovalContext) -> ApprovalAnswer {
        self.asks.lock().unwrap().push(ask.clone());
        ApprovalAnswer::Approved {
            by: "reviewer".into(),
            note: None,
        }
    }
}

/// `openai` and `claude` (with bash, read_file and grep) on one mock; the
/// workflow tools include `notify`, posting to `webhook`.
async fn hybrid(mock: &MockLlmServer, webhook: &WebhookRecorder) -> HybridPlatform {
    TestPlatform::on(mock)
        .claude_tools(&["bash", "read_file", "grep"])
        .notify_to(webhook.url())
        .build()
        .await
        .unwrap()
}

/// The task for `branch`, with every input the workflow needs.
fn review_task(repo: &GitRepoFixture, branch: &str) -> Task {
    let inputs = [
        ("repo", repo.path().display().to_string()),
        ("branch", branch.to_owned()),
        ("base", repo.base_branch().to_owned()),
        ("test_command", repo.test_command().to_owned()),
        ("lint_command", repo.lint_command().to_owned()),
        ("security_command", repo.security_command().to_owned()),
        ("coverage_command", repo.coverage_command().to_owned()),
        ("deploy_command", repo.deploy_command().to_owned()),
        ("health_command", repo.health_command().to_owned()),
    ];
    inputs.into_iter().fold(
        Task::new(format!("Review and deploy {branch}")).with_workflow(WORKFLOW),
        |task, (key, value)| task.with_context(key, json!(value)),
    )
}

fn options(repo: &GitRepoFixture, approver: &Arc<RecordingApprover>) -> RunOptions {
    RunOptions {
        workdir: Some(repo.path().to_path_buf()),
        approver: Some(approver.clone()),
        ..RunOptions::default()
    }
}

/// The runbook commands the workflow renders for `branch`, in workflow order.
fn change_and_check_commands(repo: &GitRepoFixture, branch: &str) -> Vec<String> {
    let (r, base) = (repo.path().display(), repo.base_branch());
    vec![
        format!("git -C {r} rev-parse {branch}"),
        format!("git -C {r} log --oneline {base}..{branch}"),
        format!("git -C {r} diff --stat {base}...{branch}"),
        format!("git -C {r} diff {base}...{branch}"),
        format!("git -C {r} checkout --quiet {branch} --"),
        format!("cd {r} && {}", repo.test_command()),
        format!("cd {r} && {}", repo.lint_command()),
        format!("cd {r} && {}", repo.security_command()),
        format!("cd {r} && {}", repo.coverage_command()),
    ]
}

fn ship_commands(repo: &GitRepoFixture, branch: &str) -> Vec<String> {
    let (r, base) = (repo.path().display(), repo.base_branch());
    vec![
        format!(
            "cd {r} && git checkout {base} && git merge --no-ff {branch} && {}",
            repo.deploy_command()
        ),
        format!("cd {r} && {}", repo.health_command()),
    ]
}

/// Every `bash_command` audit record of the task.
async fn commands_run(hp: &HybridPlatform, task_id: &hybrid_core::TaskId) -> Vec<AuditRecord> {
    hp.store()
        .audit_records(&AuditFilter {
            task_id: Some(task_id.clone()),
            ..AuditFilter::default()
        })
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.action == "bash_command")
        .collect()
}

/// Each expected command ran exactly once, and nothing else ran.
fn assert_ran_once_each(audit: &[AuditRecord], expected: &[String]) {
    let mut ran: Vec<&str> = audit
        .iter()
        .map(|r| r.command.as_deref().unwrap())
        .collect();
    ran.sort_unstable();
    let mut want: Vec<&str> = expected.iter().map(String::as_str).collect();
    want.sort_unstable();
    assert_eq!(ran, want, "the audited commands");
}

fn detail(result: &hybrid_core::StageResult) -> &Value {
    result.detail.as_ref().unwrap()
}

#[tokio::test]
async fn the_passing_branch_is_approved_merged_deployed_checked_and_announced() {
    let dir = tempfile::tempdir().unwrap();
    let repo = GitRepoFixture::create(dir.path()).unwrap();
    let branch = repo.good_branch();
    // The repository is on main: the workflow checks the branch out itself.
    assert_eq!(repo.current_branch().unwrap(), repo.base_branch());
    let branch_head = repo.head_of(branch).unwrap();
    let mock = MockLlmServer::start().await.unwrap();
    let webhook = WebhookRecorder::start().await.unwrap();
    let hp = hybrid(&mock, &webhook).await;
    // The only agent stages, analysis and summary, run one after the other.
    mock.enqueue(Turn::text(ANALYSIS));
    mock.enqueue(Turn::text(SUMMARY));
    let approver = Arc::new(RecordingApprover::default());

    let result = hp
        .run_with(review_task(&repo, branch), options(&repo, &approver))
        .await
        .unwrap();

    assert_eq!(result.status, TaskStatus::Completed, "{:?}", result.error);
    assert_eq!(result.route.rule, "workflow");
    assert_eq!(
        result.stages.keys().map(String::as_str).collect::<Vec<_>>(),
        [
            "change",
            "checkout",
            "analysis",
            "test",
            "lint",
            "security",
            "coverage",
            "decide",
            "approve",
            "ship",
            "health_probe",
            "health",
            "summary",
            "notify"
        ]
    );
    let change = detail(&result.stages["change"]);
    assert_eq!(
        change["commands"][0]["output"].as_str().unwrap().trim(),
        branch_head
    );
    assert!(
        change["commands"][3]["output"]
            .as_str()
            .unwrap()
            .contains("+power() {"),
        "{change}"
    );
    let analysis = &result.stages["analysis"];
    assert_eq!(
        (analysis.agent.as_str(), analysis.platform.as_str()),
        ("analyst", "openai")
    );
    assert_eq!(detail(analysis)["json"]["risk"], "low");

    // The checks ran on the branch and passed the guardrails.
    let test = &result.stages["test"];
    assert!(test.output.contains("PASS test_power"), "{}", test.output);
    assert!(test.output.contains("0 failed"), "{}", test.output);
    assert_eq!(detail(&result.stages["lint"])["ok"], true);
    assert!(
        result.stages["security"]
            .output
            .contains("security scan: no findings"),
        "{}",
        result.stages["security"].output
    );
    assert_eq!(
        detail(&result.stages["coverage"])["commands"][0]["output"]
            .as_str()
            .unwrap()
            .trim(),
        "83"
    );
    let decide = &result.stages["decide"];
    assert_eq!(decide.verdict.as_deref(), Some("pass"));
    assert_eq!(
        decide.output,
        "PASS tests_pass\nPASS coverage_threshold\nPASS no_critical_findings"
    );

    // A person was asked once, with the analysis and the checks in the message.
    let asked = approver.stage_asks();
    assert_eq!(asked.len(), 1, "{asked:#?}");
    assert_eq!(asked[0].rule, "workflow:code-review-deploy:approve");
    let message = &asked[0].command;
    for part in [
        "Merge `feature/good` into `main` and deploy?",
        "Risk: low — Adds power() to the calculator, with a test.",
        "Risky areas: src/calc.sh: new public function",
        "Tests passed, coverage 83%, lint clean.",
    ] {
        assert!(message.contains(part), "{part:?} not in {message}");
    }
    assert_eq!(
        result.stages["approve"].verdict.as_deref(),
        Some("approved")
    );
    // The command policy asked for the commands not on its allow list.
    assert!(
        approver
            .asks()
            .iter()
            .any(|a| a.tool == "bash" && a.command.contains("git merge --no-ff")),
        "{:#?}",
        approver.asks()
    );

    // Merged into main and deployed: the deployed commit is main's merge commit.
    assert!(repo.is_merged(branch));
    assert_eq!(repo.current_branch().unwrap(), repo.base_branch());
    let main_head = repo.head_of(repo.base_branch()).unwrap();
    assert_ne!(main_head, branch_head, "a merge commit (--no-ff)");
    assert!(repo.path().join("deployed.txt").exists());
    assert_eq!(repo.deployed_commit().as_deref(), Some(main_head.as_str()));
    assert!(
        result.stages["ship"]
            .output
            .contains(&format!("deployed {main_head}")),
        "{}",
        result.stages["ship"].output
    );

    // Healthy on the first check.
    let health = &result.stages["health"];
    assert_eq!(detail(health)["ok"], true);
    assert_eq!(detail(health)["attempt"], 1);
    assert!(
        health.output.starts_with("done after 1 attempt"),
        "{}",
        health.output
    );
    assert!(
        result.stages["health_probe"]
            .output
            .contains(&format!("healthy (deployed {main_head})")),
        "{}",
        result.stages["health_probe"].output
    );

    // The summary was written from the results and posted to the webhook.
    let summary = &result.stages["summary"];
    assert_eq!(
        (summary.agent.as_str(), summary.platform.as_str()),
        ("coordinator", "openai")
    );
    assert_eq!(summary.output, SUMMARY);
    let requests = mock.requests();
    assert_eq!(requests.len(), 2, "analysis and summary only");
    assert!(requests.iter().all(|r| r.protocol == Protocol::OpenAi));
    let analysis_prompt = requests[0].body.to_string();
    assert!(analysis_prompt.contains("+power() {"), "{analysis_prompt}");
    let summary_prompt = requests[1].body.to_string();
    for part in [
        "Deploy: completed",
        "Health: healthy after 1 check(s)",
        "Lint: clean",
    ] {
        assert!(
            summary_prompt.contains(part),
            "{part:?} not in {summary_prompt}"
        );
    }
    let notify = &result.stages["notify"];
    assert_eq!(notify.tools_used, ["notify"]);
    assert!(
        notify.output.contains("notification sent"),
        "{}",
        notify.output
    );
    let posts = webhook.bodies();
    assert_eq!(posts.len(), 1, "{posts:#?}");
    assert_eq!(posts[0]["title"], "feature/good → main: deployed");
    assert_eq!(posts[0]["message"], SUMMARY);
    assert_eq!(result.output, notify.output);

    // Every runbook command ran once, and was audited once.
    let mut expected = change_and_check_commands(&repo, branch);
    expected.extend(ship_commands(&repo, branch));
    assert_ran_once_each(&commands_run(&hp, &result.task_id).await, &expected);
    let record = hp.store().get_task(&result.task_id).await.unwrap().unwrap();
    assert_eq!(record.status, TaskStatus::Completed);
}

#[tokio::test]
async fn the_failing_branch_is_rejected_naming_the_failing_test_and_nothing_ships() {
    let dir = tempfile::tempdir().unwrap();
    let repo = GitRepoFixture::create(dir.path()).unwrap();
    let branch = repo.bad_branch();
    assert_eq!(repo.current_branch().unwrap(), repo.base_branch());
    let main_before = repo.head_of(repo.base_branch()).unwrap();
    let mock = MockLlmServer::start().await.unwrap();
    let webhook = WebhookRecorder::start().await.unwrap();
    let hp = hybrid(&mock, &webhook).await;
    mock.enqueue(Turn::text(
        r#"{"summary": "Rounds divide() to the nearest integer.", "risky_areas": ["src/calc.sh: divide() semantics change"], "risk": "medium"}"#,
    ));
    let approver = Arc::new(RecordingApprover::default());
    let task = review_task(&repo, branch);
    let id = task.id.clone();

    let err = hp
        .run_with(task, options(&repo, &approver))
        .await
        .unwrap_err();

    let PlatformError::Task { status, source, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!(*status, TaskStatus::Blocked, "{err}");
    let PlatformError::Rejected { stage, message } = &**source else {
        panic!("{source}")
    };
    assert_eq!(stage, "decide");
    assert!(
        message.starts_with("tests_pass: tests failed (exit 1)"),
        "{message}"
    );
    let failing = format!(
        "FAIL {}: {}",
        repo.failing_test_name(),
        repo.failing_test_message()
    );
    assert!(message.contains(&failing), "{message}");
    assert!(
        !message.contains("coverage_threshold") && !message.contains("no_critical_findings"),
        "only the tests failed: {message}"
    );
    assert!(err.to_string().contains(repo.failing_test_name()), "{err}");
    let record = hp.store().get_task(&id).await.unwrap().unwrap();
    assert_eq!(record.status, TaskStatus::Blocked);

    // The checks ran on the branch; nothing merged, nothing deployed, nobody
    // asked, nothing announced.
    assert_eq!(repo.current_branch().unwrap(), branch);
    assert!(!repo.is_merged(branch));
    assert_eq!(repo.head_of(repo.base_branch()).unwrap(), main_before);
    assert!(!repo.path().join("deployed.txt").exists());
    assert_eq!(repo.deployed_commit(), None);
    assert!(approver.stage_asks().is_empty(), "{:#?}", approver.asks());
    assert_eq!(mock.request_count(), 1, "only the analysis was asked");
    assert!(webhook.bodies().is_empty());

    // The stages up to the decision ran; approve, ship, health, summary and notify never did.
    let stored = hp.store().stages(&id).await.unwrap();
    let mut names: Vec<&str> = stored.iter().map(|(n, _)| n.as_str()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "analysis", "change", "checkout", "coverage", "decide", "lint", "security", "test"
        ]
    );
    let decide = &stored.iter().find(|(n, _)| n == "decide").unwrap().1;
    assert_eq!(decide.verdict.as_deref(), Some("fail"));
    let audit = commands_run(&hp, &id).await;
    assert_ran_once_each(&audit, &change_and_check_commands(&repo, branch));
    assert!(
        audit
            .iter()
            .all(|r| !r.command.as_deref().unwrap().contains("merge")
                && !r.command.as_deref().unwrap().contains("deploy")),
        "{audit:#?}"
    );
}

#[tokio::test]
async fn a_branch_with_a_hard_coded_secret_is_rejected_by_the_security_guardrail() {
    let dir = tempfile::tempdir().unwrap();
    let repo = GitRepoFixture::create(dir.path()).unwrap();
    let branch = repo.insecure_branch();
    let mock = MockLlmServer::start().await.unwrap();
    let webhook = WebhookRecorder::start().await.unwrap();
    let hp = hybrid(&mock, &webhook).await;
    mock.enqueue(Turn::text(
        r#"{"summary": "Adds the production database configuration.", "risky_areas": ["config/database.env: configuration"], "risk": "high"}"#,
    ));
    let approver = Arc::new(RecordingApprover::default());
    let task = review_task(&repo, branch);
    let id = task.id.clone();

    let err = hp
        .run_with(task, options(&repo, &approver))
        .await
        .unwrap_err();

    let PlatformError::Task { status, source, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!(*status, TaskStatus::Blocked, "{err}");
    let PlatformError::Rejected { stage, message } = &**source else {
        panic!("{source}")
    };
    assert_eq!(stage, "decide");
    assert!(message.starts_with("no_critical_findings: "), "{message}");
    assert!(
        message.contains("CRITICAL: config/database.env:4: hard-coded secret (PASSWORD)"),
        "{message}"
    );
    assert!(!repo.is_merged(branch));
    assert_eq!(repo.deployed_commit(), None);
    assert!(approver.stage_asks().is_empty(), "{:#?}", approver.asks());
    assert!(webhook.bodies().is_empty());
    assert_ran_once_each(
        &commands_run(&hp, &id).await,
        &change_and_check_commands(&repo, branch),
    );
}
