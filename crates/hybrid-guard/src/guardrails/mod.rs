//! The guardrail engine: five kinds at four layers, with conditions written
//! as Rust closures, CEL expressions or [`CustomGuardrail`] implementations.
//!
//! A guardrail *fires* when its condition is true: the condition describes
//! the situation to stop (`task.estimated_cost > 10.0`), for every kind.
//! [`GuardrailEngine::evaluate`] runs every guardrail of one layer
//! concurrently and returns only once all have finished, so the caller runs
//! the guarded step only after the [`Decision`]. The strictest outcome wins:
//! block > needs approval > pass.
//!
//! | kind \ layer | L1 `input` (before routing) | L2 `platform` (before a platform or stage) | L3 `execution` (before each tool call) | L4 `output` (before release) |
//! | --- | --- | --- | --- | --- |
//! | `validation` | block: malformed task | block: stage/route not allowed | block: bad tool arguments | block: output fails a check ([`Guardrail::json_schema`]) |
//! | `block` | block | block | block ([`Guardrail::command_policy`] deny) | block ([`Guardrail::secrets_in_output`]) |
//! | `approval_required` | needs approval | needs approval | needs approval (policy approve) | needs approval before release |
//! | `rate_limit` | block (condition-based; governor limits live elsewhere) | block | block | block |
//! | `cost_limit` | block on `task.estimated_cost` | block on estimate / spend | block on `usage.spent_usd` | block on `usage.spent_usd` |
//!
//! Every kind may be placed at every layer; the table gives the usual use.
//! Validation, block, rate-limit and cost-limit guardrails fire as
//! [`Outcome::Block`] carrying their kind; approval guardrails fire as
//! [`Outcome::NeedsApproval`].
//!
//! **Fail closed.** A guardrail that cannot be evaluated at a layer it
//! targets — a CEL expression that errors or is not a boolean (e.g. reads
//! `output` at L1, where there is none), or a `when_task` closure with no
//! task in the context — blocks, with a message saying why. (An approval
//! guardrail that cannot be evaluated blocks too, as kind `block`.)
//!
//! | condition | built with | `source` in [`GuardrailInfo`] |
//! | --- | --- | --- |
//! | closure over [`GuardContext`] or [`Task`] | [`Guardrail::when`], [`Guardrail::when_task`] | `closure` |
//! | CEL (variables in [`context`]) | [`Guardrail::when_cel`], [`Guardrail::from_rule`] | `cel: <expr>` |
//! | [`CustomGuardrail`] | [`Guardrail::custom`] | `custom` |
//! | built-in | [`Guardrail::secrets_in_output`], [`Guardrail::json_schema`], [`Guardrail::command_policy`] | `builtin: <what>` |
//!
//! [`Guardrail::json_schema`] uses a small subset validator, not the
//! `jsonschema` crate (kept out for build weight): `type`, `enum`, `const`,
//! `properties`, `required`, `additionalProperties`, `items`,
//! `minItems`/`maxItems`, `minLength`/`maxLength`, `minimum`/`maximum`;
//! other keywords are ignored. Output is parsed as JSON as-is or inside a
//! `` ```json `` fence.
//!
//! CEL parse failures inside the parser (it panics on some malformed input,
//! e.g. a trailing operator) are caught and reported as parse errors.

mod builtin;
mod cel;
pub mod context;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;
use hybrid_core::Task;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{CommandPolicy, GuardError, PolicyVerdict};
use cel::{CelCondition, CelVars};
pub use context::{GuardContext, OutputInfo, StageInfo, ToolCall};

/// What a guardrail does when it fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GuardrailKind {
    /// Input or output does not satisfy a check: block.
    Validation,
    /// Forbidden: block.
    Block,
    /// Allowed once a person approves.
    ApprovalRequired,
    /// Too many calls: block.
    RateLimit,
    /// Too expensive: block.
    CostLimit,
}

impl GuardrailKind {
    /// Every kind.
    pub const ALL: [GuardrailKind; 5] = [
        GuardrailKind::Validation,
        GuardrailKind::Block,
        GuardrailKind::ApprovalRequired,
        GuardrailKind::RateLimit,
        GuardrailKind::CostLimit,
    ];

    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            GuardrailKind::Validation => "validation",
            GuardrailKind::Block => "block",
            GuardrailKind::ApprovalRequired => "approval_required",
            GuardrailKind::RateLimit => "rate_limit",
            GuardrailKind::CostLimit => "cost_limit",
        }
    }
}

impl fmt::Display for GuardrailKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl FromStr for GuardrailKind {
    type Err = GuardError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let norm = s.trim().to_ascii_lowercase().replace('-', "_");
        GuardrailKind::ALL
            .into_iter()
            .find(|k| k.as_str() == norm)
            .ok_or_else(|| GuardError::UnknownName {
                what: "guardrail kind",
                name: s.to_owned(),
                valid: GuardrailKind::ALL.map(GuardrailKind::as_str).join(", "),
            })
    }
}

/// Where in the data flow a guardrail is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Layer {
    /// L1: before routing.
    Input,
    /// L2: before a platform or stage runs.
    Platform,
    /// L3: before each tool call.
    Execution,
    /// L4: before a result or stage output is released.
    Output,
}

impl Layer {
    /// Every layer, in data-flow order.
    pub const ALL: [Layer; 4] = [
        Layer::Input,
        Layer::Platform,
        Layer::Execution,
        Layer::Output,
    ];

    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Layer::Input => "input",
            Layer::Platform => "platform",
            Layer::Execution => "execution",
            Layer::Output => "output",
        }
    }
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl FromStr for Layer {
    type Err = GuardError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let norm = s.trim().to_ascii_lowercase();
        let by_alias = match norm.as_str() {
            "l1" => Some(Layer::Input),
            "l2" => Some(Layer::Platform),
            "l3" => Some(Layer::Execution),
            "l4" => Some(Layer::Output),
            _ => None,
        };
        by_alias
            .or_else(|| Layer::ALL.into_iter().find(|l| l.as_str() == norm))
            .ok_or_else(|| GuardError::UnknownName {
                what: "guardrail layer",
                name: s.to_owned(),
                valid: Layer::ALL.map(Layer::as_str).join(", "),
            })
    }
}

/// What one guardrail says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// Did not fire.
    Pass,
    /// Fired: the step must not run.
    Block {
        /// The guardrail's name.
        guardrail: String,
        /// Its kind (never `approval_required`).
        kind: GuardrailKind,
        /// Why.
        message: String,
    },
    /// Fired: the step runs only once approved.
    NeedsApproval {
        /// The guardrail's name.
        guardrail: String,
        /// Why.
        message: String,
    },
}

impl Outcome {
    /// 0 pass, 1 needs approval, 2 block.
    pub fn strictness(&self) -> u8 {
        match self {
            Outcome::Pass => 0,
            Outcome::NeedsApproval { .. } => 1,
            Outcome::Block { .. } => 2,
        }
    }

    /// Whether it fired.
    pub fn is_triggered(&self) -> bool {
        !matches!(self, Outcome::Pass)
    }
}

/// The decision at one layer: the strictest outcome, and every guardrail that fired.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// The layer evaluated.
    pub layer: Layer,
    /// The strictest outcome (the first registered among equals).
    pub outcome: Outcome,
    /// Every outcome that was not `pass`, in registration order.
    pub triggered: Vec<Outcome>,
}

impl Decision {
    /// Whether the step must not run.
    pub fn is_blocked(&self) -> bool {
        matches!(self.outcome, Outcome::Block { .. })
    }

    /// Whether the step needs approval (and is not blocked).
    pub fn needs_approval(&self) -> bool {
        matches!(self.outcome, Outcome::NeedsApproval { .. })
    }

    /// Whether the step may run.
    pub fn is_pass(&self) -> bool {
        matches!(self.outcome, Outcome::Pass)
    }
}

/// A guardrail whose condition is arbitrary (async) code.
#[async_trait]
pub trait CustomGuardrail: Send + Sync {
    /// Decides for one context.
    async fn evaluate(&self, ctx: &GuardContext) -> Outcome;
}

type CtxFn = Arc<dyn Fn(&GuardContext) -> bool + Send + Sync>;
type TaskFn = Arc<dyn Fn(&Task) -> bool + Send + Sync>;

#[derive(Clone)]
enum Condition {
    Always,
    Closure(CtxFn),
    TaskClosure(TaskFn),
    Cel(CelCondition),
    Custom(Arc<dyn CustomGuardrail>),
    Secrets,
    JsonSchema(Arc<Value>),
    Policy(Arc<CommandPolicy>),
}

impl Condition {
    fn source(&self) -> String {
        match self {
            Condition::Always => "always".to_owned(),
            Condition::Closure(_) | Condition::TaskClosure(_) => "closure".to_owned(),
            Condition::Cel(c) => format!("cel: {}", c.source()),
            Condition::Custom(_) => "custom".to_owned(),
            Condition::Secrets => "builtin: secrets_in_output".to_owned(),
            Condition::JsonSchema(_) => "builtin: json_schema".to_owned(),
            Condition::Policy(_) => "builtin: command_policy".to_owned(),
        }
    }
}

/// Marker for closures over [`GuardContext`] in [`Guardrail::when`].
#[derive(Debug)]
pub enum OnContext {}
/// Marker for closures over [`Task`] in [`Guardrail::when`].
#[derive(Debug)]
pub enum OnTask {}

/// A closure usable as a condition: `Fn(&GuardContext) -> bool` or `Fn(&Task) -> bool`.
pub trait IntoCondition<M> {
    #[doc(hidden)]
    fn into_condition(self) -> ConditionFn;
}

/// A closure condition, ready to store.
#[doc(hidden)]
pub struct ConditionFn(Condition);

impl fmt::Debug for ConditionFn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ConditionFn")
    }
}

impl<F> IntoCondition<OnContext> for F
where
    F: Fn(&GuardContext) -> bool + Send + Sync + 'static,
{
    fn into_condition(self) -> ConditionFn {
        ConditionFn(Condition::Closure(Arc::new(self)))
    }
}

impl<F> IntoCondition<OnTask> for F
where
    F: Fn(&Task) -> bool + Send + Sync + 'static,
{
    fn into_condition(self) -> ConditionFn {
        ConditionFn(Condition::TaskClosure(Arc::new(self)))
    }
}

/// One guardrail: name, kind, layer, condition and message.
#[derive(Clone)]
pub struct Guardrail {
    name: String,
    kind: GuardrailKind,
    layer: Layer,
    condition: Condition,
    message: Option<String>,
    hold_output: bool,
}

impl fmt::Debug for Guardrail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Guardrail")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("layer", &self.layer)
            .field("source", &self.condition.source())
            .field("message", &self.message)
            .field("hold_output", &self.hold_output)
            .finish()
    }
}

/// How `hybrid guardrails list` shows a guardrail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuardrailInfo {
    /// Name.
    pub name: String,
    /// Kind.
    pub kind: GuardrailKind,
    /// Layer.
    pub layer: Layer,
    /// `closure`, `cel: <expr>`, `custom` or `builtin: <what>`.
    pub source: String,
    /// The message it gives when it fires.
    pub message: String,
    /// Whether a streaming run keeps output back until this guardrail passed.
    #[serde(default)]
    pub hold_output: bool,
}

impl Guardrail {
    /// A guardrail of `kind`, at L1, that always fires until given a condition.
    pub fn new(name: impl Into<String>, kind: GuardrailKind) -> Self {
        Guardrail {
            name: name.into(),
            kind,
            layer: Layer::Input,
            condition: Condition::Always,
            message: None,
            hold_output: false,
        }
    }

    /// A `validation` guardrail.
    pub fn validation(name: impl Into<String>) -> Self {
        Guardrail::new(name, GuardrailKind::Validation)
    }

    /// A `block` guardrail.
    pub fn block(name: impl Into<String>) -> Self {
        Guardrail::new(name, GuardrailKind::Block)
    }

    /// An `approval_required` guardrail.
    pub fn approval_required(name: impl Into<String>) -> Self {
        Guardrail::new(name, GuardrailKind::ApprovalRequired)
    }

    /// A `rate_limit` guardrail.
    pub fn rate_limit(name: impl Into<String>) -> Self {
        Guardrail::new(name, GuardrailKind::RateLimit)
    }

    /// A `cost_limit` guardrail.
    pub fn cost_limit(name: impl Into<String>) -> Self {
        Guardrail::new(name, GuardrailKind::CostLimit)
    }

    /// Sets the condition to a closure over [`GuardContext`] or over [`Task`]
    /// (annotate the argument: `|t: &Task| …`). A task closure with no task
    /// in the context fails closed.
    pub fn when<M, F: IntoCondition<M>>(mut self, condition: F) -> Self {
        self.condition = condition.into_condition().0;
        self
    }

    /// Sets the condition to a closure over [`Task`].
    pub fn when_task<F>(mut self, condition: F) -> Self
    where
        F: Fn(&Task) -> bool + Send + Sync + 'static,
    {
        self.condition = Condition::TaskClosure(Arc::new(condition));
        self
    }

    /// Sets the condition to a CEL expression, compiled and checked now.
    pub fn when_cel(mut self, expr: &str) -> Result<Self, GuardError> {
        let cel = CelCondition::compile(expr).map_err(|reason| GuardError::BadGuardrail {
            rule: self.name.clone(),
            reason,
        })?;
        self.condition = Condition::Cel(cel);
        Ok(self)
    }

    /// Sets the message given when it fires.
    pub fn message(mut self, message: impl Into<String>) -> Self {
        self.message = Some(message.into());
        self
    }

    /// At the output layer (L4): in a streaming run, keep the stage's text
    /// back from subscribers until this guardrail has passed, so a blocked
    /// output never reaches them. Ignored at other layers.
    pub fn hold_output(mut self, hold: bool) -> Self {
        self.hold_output = hold;
        self
    }

    /// Whether it holds streamed output back (see [`Guardrail::hold_output`]).
    pub fn holds_output(&self) -> bool {
        self.hold_output && self.layer == Layer::Output
    }

    /// Sets the layer.
    pub fn at(mut self, layer: Layer) -> Self {
        self.layer = layer;
        self
    }

    /// A guardrail from a declarative rule (`[[guardrails]]` in `hybrid.toml`):
    /// `kind` and `layer` by name (layer defaults to `input`), `when` a CEL
    /// expression (none: always fires). Errors name the rule.
    pub fn from_rule(
        name: &str,
        kind: &str,
        layer: Option<&str>,
        when: Option<&str>,
        message: Option<&str>,
    ) -> Result<Self, GuardError> {
        let bad = |e: GuardError| GuardError::BadGuardrail {
            rule: name.to_owned(),
            reason: e.to_string(),
        };
        if name.trim().is_empty() {
            return Err(GuardError::BadGuardrail {
                rule: name.to_owned(),
                reason: "a guardrail needs a name".to_owned(),
            });
        }
        let kind: GuardrailKind = kind.parse().map_err(bad)?;
        let layer: Layer = layer.map_or(Ok(Layer::Input), str::parse).map_err(bad)?;
        let mut g = Guardrail::new(name, kind).at(layer);
        if let Some(expr) = when {
            g = g.when_cel(expr)?;
        }
        if let Some(m) = message {
            g = g.message(m);
        }
        Ok(g)
    }

    /// A guardrail whose outcome is decided by `imp`, at `layer`.
    pub fn custom(
        name: impl Into<String>,
        kind: GuardrailKind,
        layer: Layer,
        imp: impl CustomGuardrail + 'static,
    ) -> Self {
        Guardrail {
            name: name.into(),
            kind,
            layer,
            condition: Condition::Custom(Arc::new(imp)),
            message: None,
            hold_output: false,
        }
    }

    /// L4 `block`: the output text carries an API key, token or password.
    pub fn secrets_in_output() -> Self {
        Guardrail {
            name: "secrets_in_output".to_owned(),
            kind: GuardrailKind::Block,
            layer: Layer::Output,
            condition: Condition::Secrets,
            message: Some("output contains a secret".to_owned()),
            // Streaming a leaked key before the check would defeat it.
            hold_output: true,
        }
    }

    /// L4 `validation`: the output must be JSON conforming to `schema`
    /// (a small subset validator; see the module docs). Errors name the rule.
    pub fn json_schema(name: impl Into<String>, schema: Value) -> Result<Self, GuardError> {
        let name = name.into();
        builtin::check_schema(&schema).map_err(|reason| GuardError::BadGuardrail {
            rule: name.clone(),
            reason,
        })?;
        Ok(Guardrail {
            name,
            kind: GuardrailKind::Validation,
            layer: Layer::Output,
            condition: Condition::JsonSchema(Arc::new(schema)),
            message: Some("output does not match its JSON schema".to_owned()),
            hold_output: false,
        })
    }

    /// L3 `block`: the command policy on the tool call's command line
    /// (deny → block, approve → needs approval; a call without a command passes).
    pub fn command_policy(policy: CommandPolicy) -> Self {
        Guardrail {
            name: "command_policy".to_owned(),
            kind: GuardrailKind::Block,
            layer: Layer::Execution,
            condition: Condition::Policy(Arc::new(policy)),
            message: None,
            hold_output: false,
        }
    }

    /// The name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The kind.
    pub fn kind(&self) -> GuardrailKind {
        self.kind
    }

    /// The layer.
    pub fn layer(&self) -> Layer {
        self.layer
    }

    /// How `hybrid guardrails list` shows it.
    pub fn info(&self) -> GuardrailInfo {
        GuardrailInfo {
            name: self.name.clone(),
            kind: self.kind,
            layer: self.layer,
            source: self.condition.source(),
            message: self.default_message(),
            hold_output: self.hold_output,
        }
    }

    fn default_message(&self) -> String {
        self.message
            .clone()
            .unwrap_or_else(|| format!("guardrail `{}` ({}) triggered", self.name, self.kind))
    }

    fn fire(&self, detail: Option<String>) -> Outcome {
        let mut message = self.default_message();
        if let Some(d) = detail {
            message = format!("{message}: {d}");
        }
        match self.kind {
            GuardrailKind::ApprovalRequired => Outcome::NeedsApproval {
                guardrail: self.name.clone(),
                message,
            },
            kind => Outcome::Block {
                guardrail: self.name.clone(),
                kind,
                message,
            },
        }
    }

    fn fail_closed(&self, why: &str) -> Outcome {
        let kind = match self.kind {
            GuardrailKind::ApprovalRequired => GuardrailKind::Block,
            k => k,
        };
        Outcome::Block {
            guardrail: self.name.clone(),
            kind,
            message: format!(
                "guardrail `{}` could not be evaluated at layer {} (fail closed): {why}",
                self.name, self.layer
            ),
        }
    }

    fn outcome_of(&self, fired: bool) -> Outcome {
        if fired {
            self.fire(None)
        } else {
            Outcome::Pass
        }
    }

    /// Evaluates this guardrail alone (CEL variables converted on the fly).
    pub async fn evaluate(&self, ctx: &GuardContext) -> Outcome {
        let vars = match self.condition {
            Condition::Cel(_) => Some(cel::cel_vars(ctx)),
            _ => None,
        };
        self.evaluate_with(ctx, vars.as_ref()).await
    }

    async fn evaluate_with(&self, ctx: &GuardContext, vars: Option<&CelVars>) -> Outcome {
        match &self.condition {
            Condition::Always => self.fire(None),
            Condition::Closure(f) => self.outcome_of(f(ctx)),
            Condition::TaskClosure(f) => match &ctx.task {
                Some(t) => self.outcome_of(f(t)),
                None => self.fail_closed("no task in the context"),
            },
            Condition::Cel(c) => {
                let owned;
                let vars = match vars {
                    Some(v) => v,
                    None => {
                        owned = cel::cel_vars(ctx);
                        &owned
                    }
                };
                match c.eval(vars) {
                    Ok(b) => self.outcome_of(b),
                    Err(why) => self.fail_closed(&why),
                }
            }
            Condition::Custom(imp) => imp.evaluate(ctx).await,
            Condition::Secrets => match &ctx.output {
                Some(o) => match builtin::find_secret(&o.text) {
                    Some(what) => self.fire(Some(what.to_owned())),
                    None => Outcome::Pass,
                },
                None => self.fail_closed("no output in the context"),
            },
            Condition::JsonSchema(schema) => match &ctx.output {
                Some(OutputInfo { json: Some(v), .. }) => match builtin::validate(schema, v, "") {
                    Ok(()) => Outcome::Pass,
                    Err(why) => self.fire(Some(why)),
                },
                Some(_) => self.fire(Some("output is not JSON".to_owned())),
                None => self.fail_closed("no output in the context"),
            },
            Condition::Policy(policy) => {
                let Some(command) = ctx.tool.as_ref().and_then(|t| t.command.as_deref()) else {
                    return Outcome::Pass;
                };
                let d = policy.check(command);
                let message = format!("command policy: {} ({}): {}", d.decision, d.rule, d.reason);
                match d.decision {
                    PolicyVerdict::Allow => Outcome::Pass,
                    PolicyVerdict::Approve => Outcome::NeedsApproval {
                        guardrail: self.name.clone(),
                        message,
                    },
                    PolicyVerdict::Deny => Outcome::Block {
                        guardrail: self.name.clone(),
                        kind: self.kind,
                        message,
                    },
                }
            }
        }
    }
}

/// Guardrails by layer; [`GuardrailEngine::evaluate`] decides a layer.
#[derive(Debug, Clone, Default)]
pub struct GuardrailEngine {
    guardrails: Vec<Guardrail>,
}

impl GuardrailEngine {
    /// No guardrails: every layer passes.
    pub fn new() -> Self {
        GuardrailEngine::default()
    }

    /// Registers a guardrail.
    pub fn add_guardrail(&mut self, guardrail: Guardrail) -> &mut Self {
        self.guardrails.push(guardrail);
        self
    }

    /// Registers a guardrail, builder style.
    pub fn with(mut self, guardrail: Guardrail) -> Self {
        self.guardrails.push(guardrail);
        self
    }

    /// Registers a custom guardrail.
    pub fn add_custom(
        &mut self,
        name: impl Into<String>,
        kind: GuardrailKind,
        layer: Layer,
        imp: impl CustomGuardrail + 'static,
    ) -> &mut Self {
        self.add_guardrail(Guardrail::custom(name, kind, layer, imp))
    }

    /// The guardrails at `layer`, in registration order.
    pub fn at(&self, layer: Layer) -> impl Iterator<Item = &Guardrail> {
        self.guardrails.iter().filter(move |g| g.layer == layer)
    }

    /// Whether any output guardrail holds streamed output back.
    pub fn holds_output(&self) -> bool {
        self.guardrails.iter().any(Guardrail::holds_output)
    }

    /// Every guardrail, by layer then registration order.
    pub fn list(&self) -> Vec<GuardrailInfo> {
        Layer::ALL
            .iter()
            .flat_map(|l| self.at(*l).map(Guardrail::info))
            .collect()
    }

    /// Runs every guardrail of `layer` concurrently and waits for all of them;
    /// the strictest outcome wins.
    pub async fn evaluate(&self, layer: Layer, ctx: &GuardContext) -> Decision {
        let needs_cel = self
            .at(layer)
            .any(|g| matches!(g.condition, Condition::Cel(_)));
        let vars = needs_cel.then(|| cel::cel_vars(ctx));
        let outcomes =
            futures::future::join_all(self.at(layer).map(|g| g.evaluate_with(ctx, vars.as_ref())))
                .await;
        let mut outcome = Outcome::Pass;
        let mut triggered = Vec::new();
        for o in outcomes {
            if o.strictness() > outcome.strictness() {
                outcome = o.clone();
            }
            if o.is_triggered() {
                triggered.push(o);
            }
        }
        Decision {
            layer,
            outcome,
            triggered,
        }
    }
}
