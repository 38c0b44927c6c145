//! `agent` stages: a custom agent, or an agent on its platform behind the
//! stage's gates; handoffs to other agents, the stage cache, and the check of
//! a JSON answer against the stage's schema.

use hybrid_core::{EventKind, StageResult};
use hybrid_guard::{GuardContext, Layer};
use hybrid_workflow::{AgentStage, OutputKind, Stage, StageOutcome, StageStatus, Verdict};
use serde_json::Value;

use super::default_platform;
use crate::PlatformError;
use crate::custom_agent::AgentInput;
use crate::platform::StageRequest;

impl super::WorkflowRun<'_> {
    pub(super) async fn agent_stage(
        &self,
        stage: &Stage,
        a: &AgentStage,
        ctx: &Value,
    ) -> Result<(StageOutcome, StageResult), PlatformError> {
        let mut prompt = a
            .render_prompt(ctx)
            .map_err(|e| self.template_error(stage, e))?;
        if !a.handoffs.is_empty() {
            prompt.push_str(&format!(
                "\n\nIf one of these agents should take over from you, end your answer \
                 with a line `HANDOFF: <name>` after a short note for them: {}.",
                a.handoffs.join(", ")
            ));
        }
        if let Some(custom) = self.services.custom_agent(&a.agent) {
            let output = custom
                .handle(AgentInput {
                    task: self.task,
                    stage: &stage.id,
                    prompt: &prompt,
                    context: ctx,
                })
                .await
                .map_err(|source| PlatformError::CustomAgent {
                    agent: a.agent.clone(),
                    source,
                })?;
            let result = StageResult {
                agent: a.agent.clone(),
                platform: "custom".into(),
                output: output.clone(),
                ..StageResult::default()
            };
            return Ok((outcome_of(a, &output)?, result));
        }
        let platform_name = a
            .platform
            .clone()
            .unwrap_or_else(|| default_platform(&a.agent).to_owned());
        let platform = self.services.platform_named(&platform_name)?;
        let cache_key = match (&a.cache, a.render_cache_key(ctx)) {
            (Some(policy), Ok(Some(key))) => Some((
                format!(
                    "{}/{}/{platform_name}/{key}",
                    self.workflow.name(),
                    stage.id
                ),
                policy.ttl,
            )),
            (_, Err(e)) => return Err(self.template_error(stage, e)),
            _ => None,
        };
        if let Some((key, _)) = &cache_key
            && let Some(mut hit) = self.services.stage_cache.get(key).await
        {
            self.t
                .sink
                .emit(EventKind::Warning {
                    message: format!("stage {}: cached result reused (key {key})", stage.id),
                })
                .await?;
            hit.usage = hybrid_core::Usage::default();
            hit.cost_usd = Some(hybrid_core::Money::ZERO);
            let outcome = outcome_of(a, &hit.output)?;
            return Ok((outcome, hit));
        }
        let guard =
            GuardContext::for_task(self.task).with_stage(&stage.id, a.agent.clone(), platform.id());
        self.services.check(Layer::Platform, &guard, self.t).await?;
        let request = StageRequest {
            task: self.task,
            agent: &a.agent,
            prompt: &prompt,
            tools: a.tools.as_deref(),
            cache_prompt: a.cache.is_some(),
        };
        let mut result = self
            .services
            .execute_on_platform(
                self.task,
                platform.as_ref(),
                &stage.id,
                Some(request),
                self.t,
            )
            .await?;
        let mut chain = vec![a.agent.clone()];
        while let Some(next) = handoff_target(&result.output, &a.handoffs, &chain) {
            let from = chain.last().cloned().unwrap_or_default();
            self.t
                .sink
                .emit(EventKind::Warning {
                    message: format!("stage {}: {from} hands off to {next}", stage.id),
                })
                .await?;
            let handed = format!(
                "{prompt}\n\nHanded over to you by {from} with this note:\n{}",
                result.output
            );
            let next_platform = self.services.platform_named(default_platform(&next))?;
            let request = StageRequest {
                task: self.task,
                agent: &next,
                prompt: &handed,
                tools: None,
                cache_prompt: false,
            };
            let later = self
                .services
                .execute_on_platform(
                    self.task,
                    next_platform.as_ref(),
                    &stage.id,
                    Some(request),
                    self.t,
                )
                .await?;
            result = merge_handoff(result, later);
            chain.push(next);
        }
        if chain.len() > 1 {
            result.finish_reason = Some(format!("handoffs: {}", chain.join(" → ")));
        }
        let mut outcome = outcome_of(a, &result.output)?;
        if let (Some(schema), Some(json)) = (&a.schema, &outcome.json)
            && let Some(why) = self.schema_violation(stage, schema, json).await
        {
            outcome.status = StageStatus::Failed;
            outcome.ok = false;
            outcome.error = Some(why);
        }
        // Only a good answer is worth reusing.
        if let Some((key, ttl)) = cache_key
            && outcome.status != StageStatus::Failed
        {
            self.services
                .stage_cache
                .insert(key, result.clone(), ttl)
                .await;
        }
        Ok((outcome, result))
    }

    /// Why `json` does not match the stage's `schema` (the same validator
    /// as the `json_schema` output guardrail), or `None` when it does.
    async fn schema_violation(
        &self,
        stage: &Stage,
        schema: &Value,
        json: &Value,
    ) -> Option<String> {
        let rule = match hybrid_guard::Guardrail::json_schema(
            format!("{}.schema", stage.id),
            schema.clone(),
        ) {
            Ok(rule) => rule,
            Err(e) => return Some(e.to_string()),
        };
        let mut engine = hybrid_guard::GuardrailEngine::default();
        engine.add_guardrail(rule);
        let ctx = GuardContext::for_task(self.task).with_output(json.to_string());
        let decision = engine.evaluate(Layer::Output, &ctx).await;
        match decision.outcome {
            hybrid_guard::Outcome::Pass => None,
            hybrid_guard::Outcome::Block { message, .. }
            | hybrid_guard::Outcome::NeedsApproval { message, .. } => Some(format!(
                "the agent's JSON does not match the stage's schema: {message}"
            )),
        }
    }
}

/// An agent's answer as the stage's outcome: its verdict or JSON when the
/// stage asks for one.
fn outcome_of(a: &AgentStage, output: &str) -> Result<StageOutcome, PlatformError> {
    let mut outcome = StageOutcome::completed(output);
    match a.output {
        OutputKind::Text => {}
        OutputKind::Verdict => {
            outcome.verdict = Verdict::parse(output);
            outcome.ok = outcome.verdict == Some(Verdict::Pass);
        }
        OutputKind::Json => match parse_json_answer(output) {
            Some(v) => outcome.json = Some(v),
            None => {
                outcome.status = StageStatus::Failed;
                outcome.ok = false;
                outcome.error = Some("the agent's answer is not JSON".into());
            }
        },
    }
    Ok(outcome)
}

/// The JSON in an answer: the whole text, or a fenced ```json block.
fn parse_json_answer(text: &str) -> Option<Value> {
    let trimmed = text.trim();
    if let Ok(v) = serde_json::from_str(trimmed) {
        return Some(v);
    }
    let start = trimmed.find("```")?;
    let rest = &trimmed[start + 3..];
    let rest = rest.strip_prefix("json").unwrap_or(rest);
    let end = rest.find("```")?;
    serde_json::from_str(rest[..end].trim()).ok()
}

/// The agent an answer hands off to: its last line `HANDOFF: name`, when
/// `name` is allowed and has not had the stage yet.
fn handoff_target(answer: &str, allowed: &[String], chain: &[String]) -> Option<String> {
    let last = answer.lines().rev().find(|l| !l.trim().is_empty())?;
    let name = last
        .trim()
        .trim_matches(|c| c == '*' || c == '`')
        .strip_prefix("HANDOFF:")?
        .trim()
        .trim_matches(|c| c == '*' || c == '`' || c == '.');
    (allowed.iter().any(|a| a == name) && !chain.iter().any(|c| c == name)).then(|| name.to_owned())
}

/// The stage result after a handoff: the later agent's answer, everyone's usage and calls.
fn merge_handoff(earlier: StageResult, later: StageResult) -> StageResult {
    let mut tools_used = earlier.tools_used;
    for t in later.tools_used {
        if !tools_used.contains(&t) {
            tools_used.push(t);
        }
    }
    let mut tool_calls = earlier.tool_calls;
    tool_calls.extend(later.tool_calls);
    StageResult {
        usage: earlier.usage + later.usage,
        cost_usd: hybrid_core::add_costs(earlier.cost_usd, later.cost_usd),
        tools_used,
        tool_calls,
        ..later
    }
}
