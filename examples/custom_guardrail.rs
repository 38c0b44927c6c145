//! Custom guardrails: a closure, a declarative CEL rule, and a `CustomGuardrail` of your
//! own, added to a platform (the seed's `platform.add_guardrail(...)`).
//!
//! ```sh
//! cargo run -p hybrid-examples --example custom_guardrail
//! ```
//!
//! | guardrail | layer | says |
//! | --- | --- | --- |
//! | `cost_limit` (the seed's, as a closure) | platform (L2) | block a task estimated over $10 |
//! | `no_weekend_deploys` (CEL) | input (L1) | a deploy needs approval |
//! | `business_hours` (a `CustomGuardrail`) | input (L1) | block outside the hours it is built with |
//!
//! A blocked task never reaches a model: it ends `blocked`, naming the guardrail.

use async_trait::async_trait;
use hybrid_core::{Task, TaskStatus, usd};
use hybrid_guard::{CustomGuardrail, GuardContext, Guardrail, GuardrailKind, Layer, Outcome};
use hybrid_platform::{HybridConfig, HybridPlatform, HybridPlatformBuilder, PlatformError};

/// Blocks tasks when the hour (given, so the example is reproducible) is outside 9–17.
#[derive(Debug, Clone, Copy)]
pub struct BusinessHours {
    /// The hour of day, 0–23.
    pub hour: u32,
}

#[async_trait]
impl CustomGuardrail for BusinessHours {
    async fn evaluate(&self, _ctx: &GuardContext) -> Outcome {
        if (9..17).contains(&self.hour) {
            Outcome::Pass
        } else {
            Outcome::Block {
                guardrail: "business_hours".into(),
                kind: GuardrailKind::Block,
                message: format!("no tasks at {}:00, outside 9–17", self.hour),
            }
        }
    }
}

/// The default platforms with the three guardrails. No key is needed to see them decide:
/// a blocked task never reaches a model (without a key, one that passes fails at its call).
pub async fn guarded_platform(
    hour: u32,
) -> Result<HybridPlatform, Box<dyn std::error::Error + Send + Sync>> {
    let no_keys = |_: &str| None;
    let platform = HybridPlatformBuilder::from_config(&HybridConfig::default(), &no_keys)
        .await?
        .build()
        .await?;
    // The seed's cost_limit, as written there.
    platform.add_guardrail(
        Guardrail::block("cost_limit")
            .at(Layer::Platform)
            .when(|task: &Task| task.estimated_cost.is_some_and(|c| c > usd(10.0)))
            .message("Task exceeds $10 cost limit"),
    );
    platform.add_guardrail(Guardrail::from_rule(
        "no_weekend_deploys",
        "approval_required",
        Some("input"),
        Some("task.description.contains('deploy')"),
        Some("deploys need a person's yes"),
    )?);
    platform.add_guardrail(Guardrail::custom(
        "business_hours",
        GuardrailKind::Block,
        Layer::Input,
        BusinessHours { hour },
    ));
    Ok(platform)
}

/// What `description` comes to at `hour`: the final status and, if blocked, why.
pub async fn verdict(
    hour: u32,
    description: &str,
) -> Result<(TaskStatus, String), Box<dyn std::error::Error + Send + Sync>> {
    let platform = guarded_platform(hour).await?;
    match platform.run(Task::new(description)).await {
        Ok(result) => Ok((result.status, result.output)),
        Err(PlatformError::Task { status, source, .. }) => Ok((status, source.to_string())),
        Err(e) => Err(e.into()),
    }
}

#[allow(dead_code)] // `main` is unused when the tests include this file.
#[allow(clippy::print_stdout)] // printing the result is what the example is for.
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    for (hour, description) in [(3, "Rotate the logs"), (10, "deploy the API")] {
        let (status, why) = verdict(hour, description).await?;
        println!("{hour:>2}:00 {description:<18} → {status}: {why}");
    }
    Ok(())
}
