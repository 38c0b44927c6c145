//! Guardrail evaluation cost per step: one closure rule, one CEL rule, the
//! command policy as an L3 guardrail, and the built-in secrets check.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use criterion::{Criterion, criterion_group, criterion_main};
use hybrid_core::{Task, TaskType, usd};
use hybrid_guard::{CommandPolicy, GuardContext, Guardrail, GuardrailEngine, Layer};

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let task = Task::new("restart the web tier")
        .with_type(TaskType::SystemOperation)
        .with_estimated_cost(usd(12.0))
        .with_submitter("alice");
    let l1 = GuardContext::for_task(&task);
    let l3 = GuardContext::for_task(&task).with_command("git status && ls -la | grep foo");
    let l4 = GuardContext::for_task(&task)
        .with_output("done: 3 pods restarted, all healthy ".repeat(20));

    let closure = GuardrailEngine::new().with(
        Guardrail::block("cost_limit")
            .when(|t: &Task| t.estimated_cost > Some(usd(10.0)))
            .message("Task exceeds $10 cost limit"),
    );
    let cel = GuardrailEngine::new().with(
        Guardrail::cost_limit("cost_limit")
            .when_cel("task.estimated_cost > 10.0")
            .unwrap(),
    );
    let policy =
        GuardrailEngine::new().with(Guardrail::command_policy(CommandPolicy::seed_default()));
    let secrets = GuardrailEngine::new().with(Guardrail::secrets_in_output());

    let mut g = c.benchmark_group("guardrail_step");
    g.bench_function("closure_l1", |b| {
        b.iter(|| rt.block_on(closure.evaluate(Layer::Input, &l1)))
    });
    g.bench_function("cel_l1", |b| {
        b.iter(|| rt.block_on(cel.evaluate(Layer::Input, &l1)))
    });
    g.bench_function("command_policy_l3", |b| {
        b.iter(|| rt.block_on(policy.evaluate(Layer::Execution, &l3)))
    });
    g.bench_function("secrets_l4", |b| {
        b.iter(|| rt.block_on(secrets.evaluate(Layer::Output, &l4)))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
