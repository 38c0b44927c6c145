//! The guardrail engine: kinds × layers, closures, CEL, custom guardrails,
//! concurrency, built-in L4 rules and construction errors.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use hybrid_core::{RouteInfo, StageResult, Task, TaskType, Usage, usd};
use hybrid_guard::{
    CommandPolicy, CustomGuardrail, GuardContext, GuardError, Guardrail, GuardrailEngine,
    GuardrailKind, Layer, Outcome, ToolCall,
};
use serde_json::json;

fn task(cost: f64) -> Task {
    Task::new("deploy the thing")
        .with_type(TaskType::SystemOperation)
        .with_estimated_cost(usd(cost))
        .with_submitter("alice")
}

/// A context with every part filled, as at L4 of a stage.
fn full_ctx(cost: f64) -> GuardContext {
    GuardContext::for_task(&task(cost))
        .with_route(RouteInfo {
            platform: "claude".into(),
            rule: "system_access".into(),
            reason: "needs bash".into(),
        })
        .with_stage("execute", "executor", "claude")
        .with_command("ls -la")
        .with_output(r#"{"status": "ok"}"#)
        .with_usage(Usage {
            input_tokens: 100,
            output_tokens: 50,
            ..Usage::default()
        })
        .with_spent(usd(0.25))
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
}

#[test]
fn seed_cost_limit_as_closure() {
    let mut engine = GuardrailEngine::new();
    engine.add_guardrail(
        Guardrail::block("cost_limit")
            .when(|t: &Task| t.estimated_cost > Some(usd(10.0)))
            .message("Task exceeds $10 cost limit"),
    );
    let rt = rt();
    let d = rt.block_on(engine.evaluate(Layer::Input, &GuardContext::for_task(&task(12.0))));
    assert_eq!(
        d.outcome,
        Outcome::Block {
            guardrail: "cost_limit".into(),
            kind: GuardrailKind::Block,
            message: "Task exceeds $10 cost limit".into()
        }
    );
    let d = rt.block_on(engine.evaluate(Layer::Input, &GuardContext::for_task(&task(5.0))));
    assert!(d.is_pass());
    assert!(d.triggered.is_empty());
    // A task without an estimate does not exceed it.
    let d = rt.block_on(engine.evaluate(Layer::Input, &GuardContext::for_task(&Task::new("x"))));
    assert!(d.is_pass());
}

#[test]
fn seed_cost_limit_as_cel_rule() {
    let g = Guardrail::from_rule(
        "cost_limit",
        "cost_limit",
        Some("input"),
        Some("task.estimated_cost > 10.0"),
        Some("Task exceeds $10 cost limit"),
    )
    .unwrap();
    assert_eq!(g.info().source, "cel: task.estimated_cost > 10.0");
    let engine = GuardrailEngine::new().with(g);
    let rt = rt();
    let d = rt.block_on(engine.evaluate(Layer::Input, &GuardContext::for_task(&task(12.0))));
    assert_eq!(
        d.outcome,
        Outcome::Block {
            guardrail: "cost_limit".into(),
            kind: GuardrailKind::CostLimit,
            message: "Task exceeds $10 cost limit".into()
        }
    );
    let d = rt.block_on(engine.evaluate(Layer::Input, &GuardContext::for_task(&task(9.99))));
    assert!(d.is_pass());
}

#[test]
fn closure_over_context_and_when_task() {
    let engine = GuardrailEngine::new()
        .with(
            Guardrail::approval_required("big_bash")
                .at(Layer::Execution)
                .when(|c: &GuardContext| {
                    c.tool
                        .as_ref()
                        .and_then(|t| t.command.as_deref())
                        .is_some_and(|c| c.contains("kubectl"))
                }),
        )
        .with(Guardrail::validation("needs_submitter").when_task(|t| t.submitted_by.is_none()));
    let rt = rt();
    let ctx = GuardContext::for_task(&task(1.0)).with_command("kubectl get pods");
    assert!(
        rt.block_on(engine.evaluate(Layer::Execution, &ctx))
            .needs_approval()
    );
    assert!(rt.block_on(engine.evaluate(Layer::Input, &ctx)).is_pass());
    let anon = GuardContext::for_task(&Task::new("x"));
    assert!(
        rt.block_on(engine.evaluate(Layer::Input, &anon))
            .is_blocked()
    );
}

/// For each kind at each layer, a CEL rule reading that layer's part fires
/// with the kind's outcome, and passes when its condition is false.
#[test]
fn every_kind_at_every_layer() {
    let rt = rt();
    let conds = [
        (
            Layer::Input,
            "task.priority >= 3 && task.type == 'system_operation'",
        ),
        (
            Layer::Platform,
            "route.platform == 'claude' && stage.agent == 'executor'",
        ),
        (
            Layer::Execution,
            "tool.name == 'bash' && tool.command.startsWith('ls')",
        ),
        (
            Layer::Output,
            "output.json.status == 'ok' && usage.spent_usd < 1.0",
        ),
    ];
    for kind in GuardrailKind::ALL {
        for (layer, cond) in conds {
            let name = format!("{kind}_{layer}");
            let fires =
                Guardrail::from_rule(&name, kind.as_str(), Some(layer.as_str()), Some(cond), None)
                    .unwrap();
            let quiet = Guardrail::from_rule(
                &format!("{name}_quiet"),
                kind.as_str(),
                Some(layer.as_str()),
                Some(&format!("!({cond})")),
                None,
            )
            .unwrap();
            let engine = GuardrailEngine::new().with(fires).with(quiet);
            let d = rt.block_on(engine.evaluate(layer, &full_ctx(1.0)));
            assert_eq!(d.triggered.len(), 1, "{name}: {d:?}");
            match (&d.outcome, kind) {
                (Outcome::NeedsApproval { guardrail, .. }, GuardrailKind::ApprovalRequired) => {
                    assert_eq!(guardrail, &name);
                }
                (
                    Outcome::Block {
                        guardrail, kind: k, ..
                    },
                    _,
                ) => {
                    assert_ne!(kind, GuardrailKind::ApprovalRequired);
                    assert_eq!(guardrail, &name);
                    assert_eq!(*k, kind);
                }
                other => panic!("{name}: unexpected {other:?}"),
            }
            // Other layers are untouched.
            for other in Layer::ALL.into_iter().filter(|l| *l != layer) {
                assert!(
                    rt.block_on(engine.evaluate(other, &full_ctx(1.0)))
                        .is_pass()
                );
            }
        }
    }
}

#[test]
fn cel_fails_closed_when_a_part_is_missing() {
    let g = Guardrail::from_rule(
        "too_long",
        "approval_required",
        Some("input"),
        Some("size(output.text) > 10"),
        None,
    )
    .unwrap();
    let engine = GuardrailEngine::new().with(g);
    let d = rt().block_on(engine.evaluate(Layer::Input, &GuardContext::for_task(&task(1.0))));
    match d.outcome {
        Outcome::Block {
            guardrail,
            kind,
            message,
        } => {
            assert_eq!(guardrail, "too_long");
            assert_eq!(kind, GuardrailKind::Block);
            assert!(message.contains("could not be evaluated"), "{message}");
            assert!(message.contains("fail closed"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    // Not a boolean: fails closed too.
    let g = Guardrail::block("num").when_cel("task.priority").unwrap();
    let d = rt().block_on(
        GuardrailEngine::new()
            .with(g)
            .evaluate(Layer::Input, &full_ctx(1.0)),
    );
    assert!(d.is_blocked());
}

#[test]
fn cel_errors_are_one_line_and_name_the_rule() {
    let cases = [
        ("syntax", "task.estimated_cost >", "does not parse"),
        ("unbalanced", "(task.priority > 1", "does not parse"),
        ("bad_token", "task.priority > 1 @@ 2", "does not parse"),
        (
            "unknown_var",
            "budget.remaining < 1.0",
            "unknown variable `budget`",
        ),
        (
            "unknown_field",
            "task.estimated_costs > 10.0",
            "unknown field `task.estimated_costs`",
        ),
        ("empty", "  ", "empty CEL expression"),
    ];
    for (rule, expr, want) in cases {
        let err = Guardrail::from_rule(rule, "block", None, Some(expr), None).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, GuardError::BadGuardrail { .. }), "{text}");
        assert!(text.starts_with(&format!("guardrail `{rule}`: ")), "{text}");
        assert!(text.contains(want), "{text}");
        assert!(!text.contains('\n'), "{text}");
        eprintln!("{text}");
    }
    // Comprehension variables, fields of context maps and strings are fine.
    for ok in [
        "task.context.env == 'prod'",
        "tool.arguments.paths.exists(p, p.startsWith('/etc'))",
        "task.description.contains('task.nope')",
        "has(output.json.status)",
    ] {
        assert!(Guardrail::block("ok").when_cel(ok).is_ok(), "{ok}");
    }
}

#[test]
fn unknown_kind_or_layer_is_an_error_naming_the_rule() {
    let e = Guardrail::from_rule("r1", "forbid", None, None, None)
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "guardrail `r1`: unknown guardrail kind `forbid` (expected one of: validation, block, approval_required, rate_limit, cost_limit)"
    );
    let e = Guardrail::from_rule("r2", "block", Some("l5"), None, None)
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "guardrail `r2`: unknown guardrail layer `l5` (expected one of: input, platform, execution, output)"
    );
    for k in GuardrailKind::ALL {
        assert_eq!(k.to_string().parse::<GuardrailKind>().unwrap(), k);
    }
    for l in Layer::ALL {
        assert_eq!(l.to_string().parse::<Layer>().unwrap(), l);
    }
    assert_eq!("L3".parse::<Layer>().unwrap(), Layer::Execution);
}

struct Slow {
    done: Arc<AtomicUsize>,
    outcome: Outcome,
    delay: Duration,
}

#[async_trait]
impl CustomGuardrail for Slow {
    async fn evaluate(&self, _ctx: &GuardContext) -> Outcome {
        tokio::time::sleep(self.delay).await;
        self.done.fetch_add(1, Ordering::SeqCst);
        self.outcome.clone()
    }
}

#[tokio::test(start_paused = true)]
async fn guardrails_at_a_layer_run_concurrently_and_all_finish() {
    let done = Arc::new(AtomicUsize::new(0));
    let mut engine = GuardrailEngine::new();
    engine
        .add_custom(
            "slow_block",
            GuardrailKind::Block,
            Layer::Platform,
            Slow {
                done: done.clone(),
                delay: Duration::from_secs(5),
                outcome: Outcome::Block {
                    guardrail: "slow_block".into(),
                    kind: GuardrailKind::Block,
                    message: "slow says no".into(),
                },
            },
        )
        .add_custom(
            "fast_approve",
            GuardrailKind::ApprovalRequired,
            Layer::Platform,
            Slow {
                done: done.clone(),
                delay: Duration::from_secs(4),
                outcome: Outcome::NeedsApproval {
                    guardrail: "fast_approve".into(),
                    message: "fast wants a human".into(),
                },
            },
        );
    let start = tokio::time::Instant::now();
    let d = engine.evaluate(Layer::Platform, &full_ctx(1.0)).await;
    let took = start.elapsed();
    assert_eq!(
        done.load(Ordering::SeqCst),
        2,
        "both finished before evaluate returned"
    );
    assert!(
        took >= Duration::from_secs(5),
        "waited for the slow one: {took:?}"
    );
    assert!(
        took < Duration::from_secs(9),
        "ran concurrently, not in sequence: {took:?}"
    );
    assert!(d.is_blocked());
    assert_eq!(d.triggered.len(), 2);
    let json = serde_json::to_value(&d).unwrap();
    assert_eq!(json["outcome"]["outcome"], "block");
    assert_eq!(json["triggered"][1]["outcome"], "needs_approval");
    assert_eq!(json["layer"], "platform");
}

#[test]
fn secrets_in_output_blocks_a_fake_key() {
    let engine = GuardrailEngine::new().with(Guardrail::secrets_in_output());
    let rt = rt();
    let leak = GuardContext::for_task(&task(1.0))
        .with_output("here you go: sk-ant-api03-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA done");
    let d = rt.block_on(engine.evaluate(Layer::Output, &leak));
    match &d.outcome {
        Outcome::Block {
            guardrail,
            kind,
            message,
        } => {
            assert_eq!(guardrail, "secrets_in_output");
            assert_eq!(*kind, GuardrailKind::Block);
            assert!(message.contains("API key"), "{message}");
            assert!(
                !message.contains("sk-ant"),
                "never echoes the secret: {message}"
            );
        }
        other => panic!("{other:?}"),
    }
    for leak in [
        "AKIAABCDEFGHIJKLMNOP",
        "token ghp_abcdefghijklmnopqrstuvwxyz0123456789",
        "password = hunter2hunter2",
        // A key's body, not its header alone: detection finds what redaction removes.
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7bq9yWc1Jv0Y3xkq8hP2n4sT6uV8",
        "xoxb-1234567890-1234567890123-AbCdEfGhIjKlMnOp",
        "AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q",
    ] {
        let ctx = GuardContext::for_task(&task(1.0)).with_output(leak);
        assert!(
            rt.block_on(engine.evaluate(Layer::Output, &ctx))
                .is_blocked(),
            "{leak}"
        );
    }
    let clean =
        GuardContext::for_task(&task(1.0)).with_output("all 3 pods are healthy; task-skip ok");
    assert!(
        rt.block_on(engine.evaluate(Layer::Output, &clean))
            .is_pass()
    );
}

#[test]
fn json_schema_blocks_non_conforming_output() {
    let schema = json!({
        "type": "object",
        "required": ["status", "count"],
        "additionalProperties": false,
        "properties": {
            "status": {"enum": ["ok", "failed"]},
            "count": {"type": "integer", "minimum": 0},
            "tags": {"type": "array", "items": {"type": "string"}}
        }
    });
    let engine =
        GuardrailEngine::new().with(Guardrail::json_schema("report_shape", schema).unwrap());
    let rt = rt();
    let eval = |text: &str| {
        let ctx = GuardContext::for_task(&task(1.0)).with_output(text);
        rt.block_on(engine.evaluate(Layer::Output, &ctx))
    };
    assert!(eval(r#"{"status": "ok", "count": 3, "tags": ["a"]}"#).is_pass());
    assert!(eval("```json\n{\"status\": \"failed\", \"count\": 0}\n```").is_pass());
    for (bad, why) in [
        (r#"{"status": "ok"}"#, "missing required property `count`"),
        (r#"{"status": "meh", "count": 1}"#, "$.status"),
        (r#"{"status": "ok", "count": -1}"#, "below the minimum"),
        (
            r#"{"status": "ok", "count": 1, "extra": 1}"#,
            "`extra` is not allowed",
        ),
        (
            r#"{"status": "ok", "count": 1, "tags": [1]}"#,
            "$.tags[0]: expected string",
        ),
        ("not json at all", "output is not JSON"),
    ] {
        match eval(bad).outcome {
            Outcome::Block { kind, message, .. } => {
                assert_eq!(kind, GuardrailKind::Validation);
                assert!(message.contains(why), "{bad}: {message}");
            }
            other => panic!("{bad}: {other:?}"),
        }
    }
    let e = Guardrail::json_schema("bad_schema", json!(3))
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("guardrail `bad_schema`: "), "{e}");
}

#[test]
fn command_policy_is_an_l3_guardrail() {
    let engine =
        GuardrailEngine::new().with(Guardrail::command_policy(CommandPolicy::seed_default()));
    let rt = rt();
    let at = |cmd: &str| {
        let ctx = GuardContext::for_task(&task(1.0)).with_command(cmd);
        rt.block_on(engine.evaluate(Layer::Execution, &ctx))
    };
    assert!(at("ls -la").is_pass());
    assert!(at("git push origin main").needs_approval());
    assert!(at("rm -rf /").is_blocked());
    let no_command = GuardContext::for_task(&task(1.0))
        .with_tool(ToolCall::new("read_file", json!({"path": "a.txt"})));
    assert!(
        rt.block_on(engine.evaluate(Layer::Execution, &no_command))
            .is_pass()
    );
}

#[test]
fn strictest_wins_and_list_describes_each() {
    struct Never;
    #[async_trait]
    impl CustomGuardrail for Never {
        async fn evaluate(&self, _ctx: &GuardContext) -> Outcome {
            Outcome::Pass
        }
    }
    let engine = GuardrailEngine::new()
        .with(Guardrail::approval_required("ask").when(|_: &GuardContext| true))
        .with(
            Guardrail::cost_limit("spend")
                .at(Layer::Output)
                .when_cel("usage.spent_usd > 0.2")
                .unwrap()
                .message("over budget"),
        )
        .with(Guardrail::secrets_in_output())
        .with(Guardrail::custom(
            "noop",
            GuardrailKind::Validation,
            Layer::Platform,
            Never,
        ))
        .with(
            Guardrail::rate_limit("burst")
                .at(Layer::Output)
                .when(|_: &GuardContext| true),
        );
    let rt = rt();
    let d = rt.block_on(engine.evaluate(Layer::Output, &full_ctx(1.0)));
    assert_eq!(d.triggered.len(), 2);
    assert!(matches!(&d.outcome, Outcome::Block { guardrail, .. } if guardrail == "spend"));
    assert!(
        rt.block_on(engine.evaluate(Layer::Input, &full_ctx(1.0)))
            .needs_approval()
    );
    assert!(
        rt.block_on(engine.evaluate(Layer::Platform, &full_ctx(1.0)))
            .is_pass()
    );

    let list = engine.list();
    let rows: Vec<(String, String, String, String)> = list
        .iter()
        .map(|i| {
            (
                i.name.clone(),
                i.kind.to_string(),
                i.layer.to_string(),
                i.source.clone(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("ask", "approval_required", "input", "closure"),
            ("noop", "validation", "platform", "custom"),
            (
                "spend",
                "cost_limit",
                "output",
                "cel: usage.spent_usd > 0.2"
            ),
            (
                "secrets_in_output",
                "block",
                "output",
                "builtin: secrets_in_output"
            ),
            ("burst", "rate_limit", "output", "closure"),
        ]
        .map(|(a, b, c, d)| (a.to_owned(), b.to_owned(), c.to_owned(), d.to_owned()))
    );
    assert_eq!(list[2].message, "over budget");
}

#[test]
fn stage_result_helper_fills_stage_output_and_usage() {
    let r = StageResult {
        agent: "analyst".into(),
        platform: "openai".into(),
        model: None,
        output: "[1, 2]".into(),
        usage: Usage {
            input_tokens: 10,
            output_tokens: 5,
            ..Usage::default()
        },
        cost_usd: Some(usd(0.5)),
        tools_used: vec![],
        tool_calls: vec![],
        verdict: None,
        detail: None,
        finish_reason: None,
        duration_ms: 1,
    };
    let ctx = GuardContext::for_task(&task(1.0)).with_stage_result("analyze", &r);
    let g = Guardrail::cost_limit("stage_spend")
        .at(Layer::Output)
        .when_cel("stage.name == 'analyze' && usage.total_tokens == 15 && usage.spent_usd >= 0.5 && size(output.json) == 2")
        .unwrap();
    let d = rt().block_on(GuardrailEngine::new().with(g).evaluate(Layer::Output, &ctx));
    assert!(d.is_blocked(), "{d:?}");
}

#[test]
fn engine_is_shareable_and_its_future_is_send() {
    fn send_sync<T: Send + Sync>(_: &T) {}
    fn send<T: Send>(_: T) {}
    let engine = GuardrailEngine::new()
        .with(Guardrail::block("c").when_cel("task.priority > 1").unwrap())
        .with(Guardrail::secrets_in_output());
    send_sync(&engine);
    let ctx = full_ctx(1.0);
    send_sync(&ctx);
    send(engine.evaluate(Layer::Input, &ctx));
}
