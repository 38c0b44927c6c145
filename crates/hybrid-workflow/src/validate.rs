//! Validation: everything serde cannot check. Exactly one kind per stage,
//! known agents and platforms, unique ids, `needs` that name siblings and form
//! no cycle, durations, and templates that parse and read only what exists and
//! what is certain to have finished (a dependency, or a dependency's nested
//! stages). Each problem is one [`WorkflowError::Invalid`] naming file, line
//! and key.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Duration;

use serde_json::{Map, Value};

use crate::error::WorkflowError;
use crate::load::Parsed;
use crate::spec::{OutputKind, StageSpec};
use crate::template::{self, BUILTIN_GLOBALS, TemplateError};
use crate::workflow::{
    AgentStage, ApprovalStage, CachePolicy, CheckRule, Input, LoopStage, RunbookStage,
    STAGE_RESULT_FIELDS, Stage, StageKind, TASK_FIELDS, ToolStage, Workflow, WorkflowSource,
    transitive_needs,
};

/// The roles every installation knows.
pub const DEFAULT_AGENTS: &[&str] = &[
    "coordinator",
    "analyst",
    "validator",
    "executor",
    "researcher",
    "verifier",
];

/// The platforms every installation knows.
pub const DEFAULT_PLATFORMS: &[&str] = &["openai", "claude"];

/// Default for `max_concurrency` (workflow and runbook).
pub const DEFAULT_MAX_CONCURRENCY: usize = 4;

/// What the caller knows exists, so a file can be checked against it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidateOptions {
    /// Agent names a stage may use (roles and registered agents).
    pub known_agents: Vec<String>,
    /// Platform names a stage may use.
    pub known_platforms: Vec<String>,
    /// Tool names a `tool:` stage or `tools:` may use; `None` = do not check.
    pub known_tools: Option<Vec<String>>,
}

impl Default for ValidateOptions {
    fn default() -> Self {
        ValidateOptions {
            known_agents: DEFAULT_AGENTS.iter().map(|s| (*s).to_owned()).collect(),
            known_platforms: DEFAULT_PLATFORMS.iter().map(|s| (*s).to_owned()).collect(),
            known_tools: None,
        }
    }
}

const KINDS: &[&str] = &["agent", "runbook", "approval", "tool", "loop", "check"];
const AGENT_ONLY: &[&str] = &[
    "platform", "prompt", "output", "schema", "cache", "handoffs", "tools",
];

/// Facts about every stage id in the file, for reference checks.
#[derive(Debug)]
struct StageFacts {
    /// The loop it is nested in, if any.
    parent: Option<String>,
    /// `agent`, `runbook`, …
    kind: &'static str,
    /// For agent stages.
    output: Option<OutputKind>,
    /// Nested ids (loops).
    children: Vec<String>,
}

struct Validator<'a> {
    parsed: &'a Parsed,
    options: &'a ValidateOptions,
    facts: HashMap<String, StageFacts>,
    inputs: BTreeSet<String>,
    vars: BTreeSet<String>,
}

/// Validates a parsed file into a [`Workflow`].
pub fn validate(
    parsed: &Parsed,
    options: &ValidateOptions,
    source: WorkflowSource,
) -> Result<Workflow, WorkflowError> {
    let spec = &parsed.spec;
    if spec.name.is_empty()
        || !spec
            .name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return Err(parsed.error(
            "name",
            format!(
                "`{}` is not a valid name (lowercase letters, digits and `-`)",
                spec.name
            ),
        ));
    }
    let max_concurrency = spec.max_concurrency.unwrap_or(DEFAULT_MAX_CONCURRENCY);
    if max_concurrency == 0 {
        return Err(parsed.error("max_concurrency", "must be at least 1"));
    }
    if spec.stages.is_empty() {
        return Err(parsed.error("stages", "a workflow needs at least one stage"));
    }
    for name in spec.inputs.keys() {
        check_identifier(parsed, &format!("inputs.{name}"), name)?;
    }
    for name in spec.vars.keys() {
        check_identifier(parsed, &format!("vars.{name}"), name)?;
    }
    let mut v = Validator {
        parsed,
        options,
        facts: HashMap::new(),
        inputs: spec.inputs.keys().cloned().collect(),
        vars: spec.vars.keys().cloned().collect(),
    };
    v.check_input_defaults()?;
    let mut first_seen = HashMap::new();
    v.collect_ids(&spec.stages, "stages", None, &mut first_seen)?;
    let stages = v.build_list(&spec.stages, "stages")?;
    v.check_cycles(&stages, "stages")?;
    v.check_templates(&stages, "stages", &HashSet::new(), None)?;

    let inputs = spec
        .inputs
        .iter()
        .map(|(name, i)| {
            (
                name.clone(),
                Input {
                    name: name.clone(),
                    description: i.description.clone(),
                    default: i.default.clone(),
                },
            )
        })
        .collect();
    let vars: Map<String, Value> = spec
        .vars
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Ok(Workflow {
        name: spec.name.clone(),
        description: spec.description.clone().unwrap_or_default(),
        max_concurrency,
        inputs,
        vars,
        stages,
        source,
        spec: spec.clone(),
    })
}

fn check_identifier(parsed: &Parsed, key: &str, name: &str) -> Result<(), WorkflowError> {
    let mut chars = name.chars();
    let ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(parsed.error(
            key,
            format!("`{name}` is not usable in templates (letters, digits and `_`, not starting with a digit)"),
        ))
    }
}

fn parse_duration(parsed: &Parsed, key: &str, text: &str) -> Result<Duration, WorkflowError> {
    humantime::parse_duration(text.trim()).map_err(|_| {
        parsed.error(
            key,
            format!("`{text}` is not a duration (e.g. 30s, 15m, 1h, 7d)"),
        )
    })
}

fn list(names: impl IntoIterator<Item = impl AsRef<str>>) -> String {
    let v: Vec<String> = names.into_iter().map(|s| s.as_ref().to_owned()).collect();
    if v.is_empty() {
        "none".to_owned()
    } else {
        v.join(", ")
    }
}

impl Validator<'_> {
    fn err(&self, key: impl Into<String>, message: impl Into<String>) -> WorkflowError {
        self.parsed.error(key, message)
    }

    /// An error whose line is that of `line_key` but which names `key`.
    fn err_at(&self, key: &str, line_key: &str, message: impl Into<String>) -> WorkflowError {
        WorkflowError::Invalid {
            file: self.parsed.file.clone(),
            line: self.parsed.spans.line(line_key),
            key: key.to_owned(),
            message: message.into(),
        }
    }

    /// String defaults are templates over `vars` and earlier inputs.
    fn check_input_defaults(&self) -> Result<(), WorkflowError> {
        let mut earlier: Vec<&str> = Vec::new();
        for (name, input) in &self.parsed.spec.inputs {
            if let Some(Value::String(d)) = &input.default {
                let key = format!("inputs.{name}.default");
                let vars = template::template_variables(d)
                    .map_err(|e| self.template_error(&key, d, &e))?;
                for var in &vars {
                    let parts: Vec<&str> = var.split('.').collect();
                    let problem = match parts.as_slice() {
                        ["vars"] | ["inputs"] => None,
                        ["vars", n, ..] => (!self.vars.contains(*n))
                            .then(|| format!("unknown var `{n}` (declared: {})", list(&self.vars))),
                        ["inputs", n, ..] => (!earlier.contains(n)).then(|| {
                            format!(
                                "an input default may read only earlier inputs (`{n}` is not one)"
                            )
                        }),
                        [n, ..] if BUILTIN_GLOBALS.contains(n) => None,
                        [n, ..] => Some(format!(
                            "unknown variable `{n}` (an input default may read vars and earlier inputs)"
                        )),
                        [] => None,
                    };
                    if let Some(problem) = problem {
                        return Err(self.err(key, format!("{problem} (in `{var}`)")));
                    }
                }
            }
            earlier.push(name);
        }
        Ok(())
    }

    fn collect_ids(
        &mut self,
        specs: &[StageSpec],
        base: &str,
        parent: Option<&str>,
        first_seen: &mut HashMap<String, usize>,
    ) -> Result<(), WorkflowError> {
        for (i, s) in specs.iter().enumerate() {
            let path = format!("{base}[{i}]");
            let id_key = format!("{path}.id");
            if s.id.is_empty()
                || !s
                    .id
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            {
                return Err(self.err(
                    id_key,
                    format!(
                        "`{}` is not a valid stage id (lowercase letters, digits and `_`)",
                        s.id
                    ),
                ));
            }
            let line = self.parsed.spans.line(&id_key);
            if let Some(first) = first_seen.get(&s.id) {
                return Err(self.err(
                    id_key,
                    format!("duplicate stage id `{}` (first at line {first})", s.id),
                ));
            }
            first_seen.insert(s.id.clone(), line);
            let kind = KINDS
                .iter()
                .copied()
                .find(|k| kind_present(s, k))
                .unwrap_or("none");
            let children = s
                .loop_
                .as_ref()
                .map(|l| l.stages.iter().map(|c| c.id.clone()).collect())
                .unwrap_or_default();
            self.facts.insert(
                s.id.clone(),
                StageFacts {
                    parent: parent.map(str::to_owned),
                    kind,
                    output: s.agent.as_ref().map(|_| s.output.unwrap_or_default()),
                    children,
                },
            );
            if let Some(l) = &s.loop_ {
                self.collect_ids(
                    &l.stages,
                    &format!("{path}.loop.stages"),
                    Some(&s.id),
                    first_seen,
                )?;
            }
        }
        Ok(())
    }

    fn build_list(&self, specs: &[StageSpec], base: &str) -> Result<Vec<Stage>, WorkflowError> {
        let siblings: Vec<&str> = specs.iter().map(|s| s.id.as_str()).collect();
        let mut out = Vec::with_capacity(specs.len());
        for (i, s) in specs.iter().enumerate() {
            let path = format!("{base}[{i}]");
            let kind = self.build_kind(s, &path)?;
            let needs = match &s.needs {
                None => i
                    .checked_sub(1)
                    .and_then(|p| specs.get(p))
                    .map(|p| vec![p.id.clone()])
                    .unwrap_or_default(),
                Some(needs) => {
                    let mut seen = HashSet::new();
                    for (j, n) in needs.iter().enumerate() {
                        let key = format!("{path}.needs");
                        let line_key = format!("{path}.needs[{j}]");
                        if !seen.insert(n.as_str()) {
                            return Err(self.err_at(
                                &key,
                                &line_key,
                                format!("`{n}` is listed twice"),
                            ));
                        }
                        if siblings.contains(&n.as_str()) {
                            continue;
                        }
                        let message = match self.facts.get(n) {
                            None => format!(
                                "unknown stage `{n}` (known: {})",
                                list(siblings.iter().filter(|x| **x != s.id))
                            ),
                            Some(f) => match &f.parent {
                                Some(l) => format!(
                                    "stage `{n}` is inside loop `{l}`: depend on `{l}` instead"
                                ),
                                None => format!(
                                    "stage `{n}` is outside this loop: put it in the loop's own `needs`"
                                ),
                            },
                        };
                        return Err(self.err_at(&key, &line_key, message));
                    }
                    needs.clone()
                }
            };
            out.push(Stage {
                id: s.id.clone(),
                description: s.description.clone(),
                needs,
                when: s.when.clone(),
                kind,
                line: self.parsed.spans.line(&path),
            });
        }
        Ok(out)
    }

    fn build_kind(&self, s: &StageSpec, path: &str) -> Result<StageKind, WorkflowError> {
        let present: Vec<&str> = KINDS
            .iter()
            .copied()
            .filter(|k| kind_present(s, k))
            .collect();
        let Some(first) = present.first().copied() else {
            return Err(self.err(
                path,
                format!(
                    "stage `{}` does nothing: give exactly one of {}",
                    s.id,
                    KINDS.join(", ")
                ),
            ));
        };
        if let Some(second) = present.get(1) {
            return Err(self.err(
                format!("{path}.{second}"),
                format!(
                    "stage `{}` has both `{first}` and `{second}`: give exactly one of {}",
                    s.id,
                    KINDS.join(", ")
                ),
            ));
        }
        if first != "agent" {
            for key in AGENT_ONLY {
                if agent_key_present(s, key) {
                    return Err(self.err(
                        format!("{path}.{key}"),
                        format!("only agent stages take `{key}` (this is a {first} stage)"),
                    ));
                }
            }
        }
        Ok(match first {
            "agent" => StageKind::Agent(self.build_agent(s, path)?),
            "runbook" => {
                let Some(r) = &s.runbook else {
                    return Err(self.err(path, "internal: runbook missing"));
                };
                let key = format!("{path}.runbook");
                if r.commands.is_empty() {
                    return Err(self.err(format!("{key}.commands"), "give at least one command"));
                }
                if let Some((j, _)) = r
                    .commands
                    .iter()
                    .enumerate()
                    .find(|(_, c)| c.trim().is_empty())
                {
                    return Err(self.err(format!("{key}.commands[{j}]"), "empty command"));
                }
                let max_concurrency = r.max_concurrency.unwrap_or(DEFAULT_MAX_CONCURRENCY);
                if max_concurrency == 0 {
                    return Err(self.err(format!("{key}.max_concurrency"), "must be at least 1"));
                }
                let timeout = match &r.timeout {
                    Some(t) => Some(parse_duration(self.parsed, &format!("{key}.timeout"), t)?),
                    None => None,
                };
                StageKind::Runbook(RunbookStage {
                    commands: r.commands.clone(),
                    max_concurrency,
                    continue_on_error: r.continue_on_error,
                    timeout,
                })
            }
            "approval" => {
                let Some(a) = &s.approval else {
                    return Err(self.err(path, "internal: approval missing"));
                };
                let timeout = match &a.timeout {
                    Some(t) => Some(parse_duration(
                        self.parsed,
                        &format!("{path}.approval.timeout"),
                        t,
                    )?),
                    None => None,
                };
                StageKind::Approval(ApprovalStage {
                    message: a.message.clone(),
                    timeout,
                    on_reject: a.on_reject.unwrap_or_default(),
                })
            }
            "tool" => {
                let Some(t) = &s.tool else {
                    return Err(self.err(path, "internal: tool missing"));
                };
                self.check_tool_name(&format!("{path}.tool.name"), &t.name)?;
                StageKind::Tool(ToolStage {
                    name: t.name.clone(),
                    arguments: t
                        .arguments
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                })
            }
            "loop" => {
                let Some(l) = &s.loop_ else {
                    return Err(self.err(path, "internal: loop missing"));
                };
                let key = format!("{path}.loop");
                if l.max_attempts == 0 {
                    return Err(self.err(format!("{key}.max_attempts"), "must be at least 1"));
                }
                if l.stages.is_empty() {
                    return Err(
                        self.err(format!("{key}.stages"), "a loop needs at least one stage")
                    );
                }
                let delay = match &l.delay {
                    Some(d) => Some(parse_duration(self.parsed, &format!("{key}.delay"), d)?),
                    None => None,
                };
                let stages = self.build_list(&l.stages, &format!("{key}.stages"))?;
                self.check_cycles(&stages, &format!("{key}.stages"))?;
                StageKind::Loop(LoopStage {
                    max_attempts: l.max_attempts,
                    until: l.until.clone(),
                    delay,
                    stages,
                })
            }
            _ => {
                let Some(rules) = &s.check else {
                    return Err(self.err(path, "internal: check missing"));
                };
                if rules.is_empty() {
                    return Err(self.err(format!("{path}.check"), "give at least one rule"));
                }
                let mut names = HashSet::new();
                for (j, r) in rules.iter().enumerate() {
                    if !names.insert(r.name.as_str()) {
                        return Err(self.err(
                            format!("{path}.check[{j}].name"),
                            format!("duplicate rule name `{}`", r.name),
                        ));
                    }
                }
                StageKind::Check(
                    rules
                        .iter()
                        .map(|r| CheckRule {
                            name: r.name.clone(),
                            expect: r.expect.clone(),
                            message: r.message.clone(),
                        })
                        .collect(),
                )
            }
        })
    }

    fn check_agent(&self, key: &str, name: &str) -> Result<(), WorkflowError> {
        if self.options.known_agents.iter().any(|a| a == name) {
            Ok(())
        } else {
            Err(self.err(
                key,
                format!(
                    "unknown agent `{name}` (known: {})",
                    list(&self.options.known_agents)
                ),
            ))
        }
    }

    fn check_tool_name(&self, key: &str, name: &str) -> Result<(), WorkflowError> {
        if name.trim().is_empty() {
            return Err(self.err(key, "empty tool name"));
        }
        match &self.options.known_tools {
            Some(known) if !known.iter().any(|t| t == name) && !name.starts_with("mcp:") => {
                Err(self.err(
                    key,
                    format!("unknown tool `{name}` (known: {})", list(known)),
                ))
            }
            _ => Ok(()),
        }
    }

    fn build_agent(&self, s: &StageSpec, path: &str) -> Result<AgentStage, WorkflowError> {
        let agent = s.agent.clone().unwrap_or_default();
        self.check_agent(&format!("{path}.agent"), &agent)?;
        if let Some(p) = &s.platform
            && !self.options.known_platforms.iter().any(|k| k == p)
        {
            return Err(self.err(
                format!("{path}.platform"),
                format!(
                    "unknown platform `{p}` (known: {})",
                    list(&self.options.known_platforms)
                ),
            ));
        }
        let Some(prompt) = s.prompt.clone() else {
            return Err(self.err(
                format!("{path}.prompt"),
                format!("agent stage `{}` needs a `prompt`", s.id),
            ));
        };
        let output = s.output.unwrap_or_default();
        if let Some(schema) = &s.schema {
            if output != OutputKind::Json {
                return Err(self.err(format!("{path}.schema"), "`schema` needs `output: json`"));
            }
            if !schema.is_object() {
                return Err(self.err(format!("{path}.schema"), "must be a JSON Schema object"));
            }
        }
        let cache = match &s.cache {
            Some(c) => Some(CachePolicy {
                ttl: parse_duration(self.parsed, &format!("{path}.cache.ttl"), &c.ttl)?,
                key: c.key.clone(),
            }),
            None => None,
        };
        let handoffs = s.handoffs.clone().unwrap_or_default();
        for (j, h) in handoffs.iter().enumerate() {
            self.check_agent(&format!("{path}.handoffs[{j}]"), h)?;
            if *h == agent {
                return Err(self.err(
                    format!("{path}.handoffs[{j}]"),
                    format!("agent `{h}` cannot hand off to itself"),
                ));
            }
        }
        if let Some(tools) = &s.tools {
            for (j, t) in tools.iter().enumerate() {
                self.check_tool_name(&format!("{path}.tools[{j}]"), t)?;
            }
        }
        Ok(AgentStage {
            agent,
            platform: s.platform.clone(),
            prompt,
            output,
            schema: s.schema.clone(),
            cache,
            handoffs,
            tools: s.tools.clone(),
        })
    }

    fn check_cycles(&self, stages: &[Stage], base: &str) -> Result<(), WorkflowError> {
        let index: HashMap<&str, usize> = stages
            .iter()
            .enumerate()
            .map(|(i, s)| (s.id.as_str(), i))
            .collect();
        // 0 = unvisited, 1 = on the stack, 2 = done.
        let mut state = vec![0u8; stages.len()];
        for start in 0..stages.len() {
            let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
            let mut trail: Vec<usize> = Vec::new();
            if state[start] != 0 {
                continue;
            }
            while let Some((node, next)) = stack.pop() {
                if next == 0 {
                    state[node] = 1;
                    trail.push(node);
                }
                let needs = &stages[node].needs;
                if let Some(dep) = needs.get(next) {
                    stack.push((node, next + 1));
                    let Some(&d) = index.get(dep.as_str()) else {
                        continue;
                    };
                    match state[d] {
                        0 => stack.push((d, 0)),
                        1 => {
                            let pos = trail.iter().position(|&t| t == d).unwrap_or(0);
                            let cycle: Vec<usize> = trail[pos..].to_vec();
                            // Report at the stage of the cycle that comes last in the file.
                            let at = cycle
                                .iter()
                                .position(|&c| c == *cycle.iter().max().unwrap_or(&d))
                                .unwrap_or(0);
                            let mut rotated: Vec<usize> = cycle[at..].to_vec();
                            rotated.extend_from_slice(&cycle[..at]);
                            let Some(&head) = rotated.first() else {
                                continue;
                            };
                            let mut through: Vec<String> = rotated[1..]
                                .iter()
                                .map(|&c| format!("`{}`", stages[c].id))
                                .collect();
                            through.push(format!("`{}`", stages[head].id));
                            let message = if rotated.len() == 1 {
                                format!("stage `{}` depends on itself (cycle)", stages[head].id)
                            } else {
                                format!(
                                    "stage `{}` depends on itself through {} (cycle)",
                                    stages[head].id,
                                    through.join(" → ")
                                )
                            };
                            let path = format!("{base}[{head}]");
                            let key = format!("{path}.needs");
                            let line_key = if self.parsed.spans.exact(&key).is_some() {
                                key.clone()
                            } else {
                                path
                            };
                            return Err(self.err_at(&key, &line_key, message));
                        }
                        _ => {}
                    }
                } else {
                    state[node] = 2;
                    trail.pop();
                }
            }
        }
        Ok(())
    }

    /// The ids whose results are certain to exist when a stage with these
    /// direct visible ids runs: each, plus (for loops) their nested stages.
    fn expand(&self, ids: impl IntoIterator<Item = String>) -> HashSet<String> {
        let mut out = HashSet::new();
        let mut todo: Vec<String> = ids.into_iter().collect();
        while let Some(id) = todo.pop() {
            if let Some(f) = self.facts.get(&id) {
                todo.extend(f.children.iter().cloned());
            }
            out.insert(id);
        }
        out
    }

    fn check_templates(
        &self,
        stages: &[Stage],
        base: &str,
        outer: &HashSet<String>,
        in_loop: Option<&str>,
    ) -> Result<(), WorkflowError> {
        let by_id: HashMap<&str, &Stage> = stages.iter().map(|s| (s.id.as_str(), s)).collect();
        for (i, stage) in stages.iter().enumerate() {
            let path = format!("{base}[{i}]");
            let mut direct: Vec<String> = transitive_needs(&by_id, &stage.id)
                .into_iter()
                .map(str::to_owned)
                .collect();
            if in_loop.is_some() {
                // Inside a loop a stage may read any sibling: from this attempt
                // if it depends on it, else from the previous attempt (guard
                // with `{% if attempt > 1 %}`).
                direct.extend(stages.iter().map(|s| s.id.clone()));
            }
            let mut visible = self.expand(direct);
            visible.extend(outer.iter().cloned());
            let scope = Scope {
                stage: &stage.id,
                visible: &visible,
                in_loop: in_loop.is_some(),
            };
            if let Some(when) = &stage.when {
                self.check_expression(&format!("{path}.when"), when, &scope)?;
            }
            match &stage.kind {
                StageKind::Agent(a) => {
                    self.check_template(&format!("{path}.prompt"), &a.prompt, &scope)?;
                    if let Some(CachePolicy { key: Some(k), .. }) = &a.cache {
                        self.check_template(&format!("{path}.cache.key"), k, &scope)?;
                    }
                }
                StageKind::Runbook(r) => {
                    for (j, c) in r.commands.iter().enumerate() {
                        self.check_template(&format!("{path}.runbook.commands[{j}]"), c, &scope)?;
                    }
                }
                StageKind::Approval(a) => {
                    self.check_template(&format!("{path}.approval.message"), &a.message, &scope)?;
                }
                StageKind::Tool(t) => {
                    for (k, v) in &t.arguments {
                        self.check_value(&format!("{path}.tool.arguments.{k}"), v, &scope)?;
                    }
                }
                StageKind::Check(rules) => {
                    for (j, r) in rules.iter().enumerate() {
                        self.check_expression(
                            &format!("{path}.check[{j}].expect"),
                            &r.expect,
                            &scope,
                        )?;
                        self.check_template(
                            &format!("{path}.check[{j}].message"),
                            &r.message,
                            &scope,
                        )?;
                    }
                }
                StageKind::Loop(l) => {
                    let mut inner = visible.clone();
                    inner.extend(self.expand(l.stages.iter().map(|s| s.id.clone())));
                    let until_scope = Scope {
                        stage: &stage.id,
                        visible: &inner,
                        in_loop: true,
                    };
                    self.check_expression(&format!("{path}.loop.until"), &l.until, &until_scope)?;
                    self.check_templates(
                        &l.stages,
                        &format!("{path}.loop.stages"),
                        &visible,
                        Some(&stage.id),
                    )?;
                }
            }
        }
        Ok(())
    }

    fn check_value(
        &self,
        key: &str,
        value: &Value,
        scope: &Scope<'_>,
    ) -> Result<(), WorkflowError> {
        match value {
            Value::String(s) => self.check_template(key, s, scope),
            Value::Array(items) => items
                .iter()
                .enumerate()
                .try_for_each(|(j, v)| self.check_value(&format!("{key}[{j}]"), v, scope)),
            Value::Object(map) => map
                .iter()
                .try_for_each(|(k, v)| self.check_value(&format!("{key}.{k}"), v, scope)),
            _ => Ok(()),
        }
    }

    fn template_error(&self, key: &str, source: &str, e: &TemplateError) -> WorkflowError {
        let mut line = self.parsed.spans.line(key);
        // A block scalar (`|`) starts on the line after its key.
        if source.contains('\n')
            && let Some(l) = e.line
        {
            line += l;
        }
        WorkflowError::Invalid {
            file: self.parsed.file.clone(),
            line,
            key: key.to_owned(),
            message: e.to_string(),
        }
    }

    fn check_template(
        &self,
        key: &str,
        source: &str,
        scope: &Scope<'_>,
    ) -> Result<(), WorkflowError> {
        let vars = template::template_variables(source)
            .map_err(|e| self.template_error(key, source, &e))?;
        self.check_refs(key, &vars, scope)
    }

    fn check_expression(
        &self,
        key: &str,
        source: &str,
        scope: &Scope<'_>,
    ) -> Result<(), WorkflowError> {
        if source.trim().is_empty() {
            return Err(self.err(key, "empty expression"));
        }
        let vars = template::expression_variables(source)
            .map_err(|e| self.template_error(key, source, &e))?;
        self.check_refs(key, &vars, scope)
    }

    fn check_refs(
        &self,
        key: &str,
        vars: &BTreeSet<String>,
        scope: &Scope<'_>,
    ) -> Result<(), WorkflowError> {
        for var in vars {
            let parts: Vec<&str> = var.split('.').collect();
            let problem = match parts.as_slice() {
                ["task"] | ["inputs"] | ["vars"] | ["stages"] => None,
                ["task", field, ..] => (!TASK_FIELDS.contains(field)).then(|| {
                    format!(
                        "unknown task field `{field}` (known: {})",
                        TASK_FIELDS.join(", ")
                    )
                }),
                ["inputs", name, ..] => (!self.inputs.contains(*name))
                    .then(|| format!("unknown input `{name}` (declared: {})", list(&self.inputs))),
                ["vars", name, ..] => (!self.vars.contains(*name))
                    .then(|| format!("unknown var `{name}` (declared: {})", list(&self.vars))),
                ["stages", id, rest @ ..] => {
                    self.stage_ref_problem(id, rest.first().copied(), scope)
                }
                ["attempt", ..] => {
                    (!scope.in_loop).then(|| "`attempt` is only defined inside a loop".to_owned())
                }
                [name, ..] if BUILTIN_GLOBALS.contains(name) || *name == "loop" => None,
                [name, ..] => Some(format!(
                    "unknown variable `{name}` (known: task, inputs, vars, stages{})",
                    if scope.in_loop { ", attempt" } else { "" }
                )),
                [] => None,
            };
            if let Some(problem) = problem {
                return Err(self.err(key, format!("{problem} (in `{var}`)")));
            }
        }
        Ok(())
    }

    fn stage_ref_problem(
        &self,
        id: &str,
        field: Option<&str>,
        scope: &Scope<'_>,
    ) -> Option<String> {
        let Some(facts) = self.facts.get(id) else {
            let mut known: Vec<&String> = self.facts.keys().collect();
            known.sort();
            return Some(format!("unknown stage `{id}` (stages: {})", list(known)));
        };
        if id == scope.stage && !scope.in_loop {
            return Some(format!("stage `{id}` cannot read its own result"));
        }
        if !scope.visible.contains(id) {
            return Some(format!(
                "stage `{}` reads `{id}`, which is not among its dependencies: add `{id}` to its `needs` (else the two could run at the same time)",
                scope.stage
            ));
        }
        let field = field?;
        if !STAGE_RESULT_FIELDS.contains(&field) {
            return Some(format!(
                "unknown stage result field `{field}` (known: {})",
                STAGE_RESULT_FIELDS.join(", ")
            ));
        }
        match field {
            "verdict" if facts.output != Some(OutputKind::Verdict) => Some(format!(
                "stage `{id}` has no verdict (only agent stages with `output: verdict` do)"
            )),
            "json" if facts.output != Some(OutputKind::Json) && facts.kind != "tool" => {
                Some(format!(
                    "stage `{id}` has no json (only agent stages with `output: json` and tool stages do)"
                ))
            }
            _ => None,
        }
    }
}

struct Scope<'a> {
    stage: &'a str,
    visible: &'a HashSet<String>,
    in_loop: bool,
}

fn kind_present(s: &StageSpec, kind: &str) -> bool {
    match kind {
        "agent" => s.agent.is_some(),
        "runbook" => s.runbook.is_some(),
        "approval" => s.approval.is_some(),
        "tool" => s.tool.is_some(),
        "loop" => s.loop_.is_some(),
        "check" => s.check.is_some(),
        _ => false,
    }
}

fn agent_key_present(s: &StageSpec, key: &str) -> bool {
    match key {
        "platform" => s.platform.is_some(),
        "prompt" => s.prompt.is_some(),
        "output" => s.output.is_some(),
        "schema" => s.schema.is_some(),
        "cache" => s.cache.is_some(),
        "handoffs" => s.handoffs.is_some(),
        "tools" => s.tools.is_some(),
        _ => false,
    }
}
