//! `[platforms.X] fallback = "Y"`: when X's provider answers 429, the call
//! goes to Y at once (X is not retried), and the task completes there.

use std::path::Path;

use hybrid_core::{EventKind, Task, TaskStatus, TaskType};
use hybrid_platform::{HybridConfig, HybridPlatform, HybridPlatformBuilder, RunOptions};
use hybrid_store::AuditFilter;
use hybrid_testkit::{Fault, MockLlmServer, Turn};

async fn hybrid(primary: &MockLlmServer, backup: &MockLlmServer, stream: bool) -> HybridPlatform {
    let toml = format!(
        r#"
[platforms.openai]
provider = "openai"
model = "gpt-4o"
base_url = "{}"
stream = {stream}
fallback = "backup"

[platforms.backup]
provider = "anthropic"
model = "claude-sonnet-4-5"
base_url = "{}"
stream = {stream}
tools = []
"#,
        primary.openai_base_url(),
        backup.anthropic_base_url()
    );
    let config = HybridConfig::parse(&toml, Path::new("hybrid.toml")).unwrap();
    let env = |k: &str| match k {
        "OPENAI_API_KEY" => Some("sk-openai".to_owned()),
        "ANTHROPIC_API_KEY" => Some("sk-ant-x".to_owned()),
        _ => None,
    };
    let b = HybridPlatformBuilder::from_config(&config, &env)
        .await
        .unwrap();
    b.build().await.unwrap()
}

async fn falls_back(stream: bool) {
    let primary = MockLlmServer::start().await.unwrap();
    let backup = MockLlmServer::start().await.unwrap();
    // A 429 that asks for 30 s: without a fallback the client would wait.
    primary.enqueue(Fault::RateLimited {
        retry_after_secs: Some(30),
        retry_after_ms: None,
    });
    backup.enqueue(Turn::text("answered by the backup"));
    let hp = hybrid(&primary, &backup, stream).await;
    let dir = tempfile::tempdir().unwrap();
    let task = Task::new("explain rate limits").with_type(TaskType::Conversation);
    let id = task.id.clone();
    let started = std::time::Instant::now();
    let result = hp
        .run_with(
            task,
            RunOptions {
                platform: Some("openai".into()),
                workdir: Some(dir.path().to_path_buf()),
                ..RunOptions::default()
            },
        )
        .await
        .unwrap();
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "the 429 was not waited out"
    );
    assert_eq!(result.status, TaskStatus::Completed);
    assert_eq!(result.output, "answered by the backup");
    assert_eq!(primary.request_count(), 1, "the primary was not retried");
    assert_eq!(backup.request_count(), 1);
    assert_eq!(
        result.stages["execution"].model.as_deref(),
        Some("claude-sonnet-4-5")
    );

    let events = hp.store().events(&id).await.unwrap();
    assert!(
        events.iter().any(|e| matches!(&e.kind,
            EventKind::Warning { message } if message.contains("rate limited (429)")
                && message.contains("fallback platform backup"))),
        "{events:#?}"
    );
    let audit = hp
        .store()
        .audit_records(&AuditFilter {
            task_id: Some(id),
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert!(
        audit
            .iter()
            .any(|r| r.action == "fallback" && r.command.as_deref() == Some("backup"))
    );
}

#[tokio::test]
async fn a_rate_limited_primary_falls_back_streamed() {
    falls_back(true).await;
}

#[tokio::test]
async fn a_rate_limited_primary_falls_back_whole() {
    falls_back(false).await;
}

#[tokio::test]
async fn without_a_fallback_the_429_is_the_tasks_error() {
    let primary = MockLlmServer::start().await.unwrap();
    primary.set_default(Some(
        Fault::RateLimited {
            retry_after_secs: None,
            retry_after_ms: Some(1),
        }
        .into(),
    ));
    let toml = format!(
        "[platforms.openai]\nprovider = \"openai\"\nmodel = \"gpt-4o\"\nbase_url = \"{}\"\nmax_attempts = 2\n",
        primary.openai_base_url()
    );
    let config = HybridConfig::parse(&toml, Path::new("hybrid.toml")).unwrap();
    let env = |k: &str| (k == "OPENAI_API_KEY").then(|| "sk-openai".to_owned());
    let b = HybridPlatformBuilder::from_config(&config, &env)
        .await
        .unwrap();
    let hp = b.build().await.unwrap();
    let task = Task::new("x").with_type(TaskType::Conversation);
    let err = hp.run(task).await.unwrap_err();
    assert!(err.to_string().contains("rate limited"), "{err}");
    assert_eq!(primary.request_count(), 2, "retried as configured");
}

#[test]
fn a_fallback_must_name_another_known_platform() {
    let bad = [
        (
            "[platforms.a]\nprovider = \"openai\"\nfallback = \"nope\"\n",
            "hybrid.toml:3: platforms.a.fallback: no platform named `nope` (known: a)",
        ),
        (
            "[platforms.a]\nprovider = \"openai\"\nfallback = \"a\"\n",
            "hybrid.toml:3: platforms.a.fallback: a platform cannot be its own fallback",
        ),
    ];
    for (toml, want) in bad {
        let e = HybridConfig::parse(toml, Path::new("hybrid.toml")).unwrap_err();
        assert_eq!(e.to_string(), want);
    }
}
