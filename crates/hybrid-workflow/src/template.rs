//! Templates and conditions (minijinja, strict undefined): rendering a
//! template or evaluating an expression against a JSON context, building that
//! context, and finding which variables a template reads (for validation).
//!
//! The context a stage sees:
//!
//! | name | value |
//! | --- | --- |
//! | `task` | `{id, description, type, priority, context, submitted_by, estimated_cost}` |
//! | `inputs` | the workflow's inputs, resolved against the task's context |
//! | `vars` | the workflow's `vars` |
//! | `stages.<id>` | a finished stage: [`StageOutcome`](crate::StageOutcome) as JSON |
//! | `attempt` | inside a loop: the attempt, 1-based |
//!
//! Besides minijinja's built-in filters there is `truncate(length=255, end="…")`.

use std::collections::BTreeSet;
use std::sync::LazyLock;

use minijinja::{Environment, UndefinedBehavior, Value as JinjaValue};
use serde_json::{Map, Value};

/// A template that does not parse or fails to render.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("template error: {message}")]
pub struct TemplateError {
    /// What went wrong, one line.
    pub message: String,
    /// The 1-based line inside the template, when known.
    pub line: Option<usize>,
}

impl TemplateError {
    fn from_jinja(e: &minijinja::Error) -> Self {
        let kind = e.kind().to_string();
        let message = match e.detail() {
            Some(detail) => format!("{kind}: {detail}"),
            None => kind,
        };
        TemplateError {
            message: message.split_whitespace().collect::<Vec<_>>().join(" "),
            line: e.line(),
        }
    }
}

static ENV: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_keep_trailing_newline(true);
    env.add_filter("truncate", truncate);
    env
});

/// Names minijinja itself provides (functions), allowed as free variables.
pub(crate) const BUILTIN_GLOBALS: &[&str] = &["range", "dict", "namespace", "debug"];

fn truncate(value: String, length: Option<usize>, end: Option<String>) -> String {
    let length = length.unwrap_or(255);
    let end = end.unwrap_or_else(|| "…".to_owned());
    if value.chars().count() <= length {
        return value;
    }
    let keep = length.saturating_sub(end.chars().count());
    let mut out: String = value.chars().take(keep).collect();
    out.push_str(&end);
    out
}

/// Renders `template` with `context` (a JSON object). An undefined variable is
/// an error.
///
/// ```
/// let ctx = serde_json::json!({"inputs": {"service": "web"}});
/// assert_eq!(hybrid_workflow::render("on {{ inputs.service }}", &ctx).unwrap(), "on web");
/// assert!(hybrid_workflow::render("{{ inputs.nope }}", &ctx).is_err());
/// ```
pub fn render(template: &str, context: &Value) -> Result<String, TemplateError> {
    ENV.render_str(template, context)
        .map_err(|e| TemplateError::from_jinja(&e))
}

/// Evaluates an expression to a JSON value.
pub fn eval(expression: &str, context: &Value) -> Result<Value, TemplateError> {
    let expr = ENV
        .compile_expression(expression)
        .map_err(|e| TemplateError::from_jinja(&e))?;
    let value = expr
        .eval(context)
        .map_err(|e| TemplateError::from_jinja(&e))?;
    serde_json::to_value(&value).map_err(|e| TemplateError {
        message: format!("the result is not JSON: {e}"),
        line: None,
    })
}

/// Evaluates a condition (`when:`, `until:`, `expect:`) with Jinja truthiness:
/// false, none, 0, "" and empty lists/maps are false.
///
/// ```
/// let ctx = serde_json::json!({"stages": {"verify": {"verdict": "pass"}}});
/// assert!(hybrid_workflow::eval_condition("stages.verify.verdict == 'pass'", &ctx).unwrap());
/// ```
pub fn eval_condition(expression: &str, context: &Value) -> Result<bool, TemplateError> {
    let expr = ENV
        .compile_expression(expression)
        .map_err(|e| TemplateError::from_jinja(&e))?;
    let value: JinjaValue = expr
        .eval(context)
        .map_err(|e| TemplateError::from_jinja(&e))?;
    if value.is_undefined() {
        return Err(TemplateError {
            message: "the condition is undefined".into(),
            line: None,
        });
    }
    Ok(value.is_true())
}

/// Renders every string inside `value` (recursively) as a template; other
/// values are kept. Used for a tool stage's `arguments`.
pub fn render_value(value: &Value, context: &Value) -> Result<Value, TemplateError> {
    Ok(match value {
        Value::String(s) => Value::String(render(s, context)?),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| render_value(v, context))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), render_value(v, context)?)))
                .collect::<Result<_, TemplateError>>()?,
        ),
        other => other.clone(),
    })
}

/// Builds the context templates see from its pieces: the task as JSON (see
/// the table above), the resolved inputs, the workflow's vars and the results
/// of finished stages (id → [`StageOutcome`](crate::StageOutcome) as JSON).
///
/// ```
/// use serde_json::{json, Map};
/// let ctx = hybrid_workflow::build_context(&json!({"description": "disk full"}), &Map::new(), &Map::new(), &Map::new());
/// assert_eq!(hybrid_workflow::render("{{ task.description }}", &ctx).unwrap(), "disk full");
/// ```
pub fn build_context(
    task: &Value,
    inputs: &Map<String, Value>,
    vars: &Map<String, Value>,
    stages: &Map<String, Value>,
) -> Value {
    let mut ctx = Map::new();
    ctx.insert("task".into(), task.clone());
    ctx.insert("inputs".into(), Value::Object(inputs.clone()));
    ctx.insert("vars".into(), Value::Object(vars.clone()));
    ctx.insert("stages".into(), Value::Object(stages.clone()));
    Value::Object(ctx)
}

/// The same context with `attempt` set (inside a loop).
pub fn with_attempt(context: &Value, attempt: u32) -> Value {
    let mut ctx = context.clone();
    if let Value::Object(map) = &mut ctx {
        map.insert("attempt".into(), Value::from(attempt));
    }
    ctx
}

/// Checks that `template` parses; returns the dotted variable paths it reads
/// (e.g. `stages.recommend.json.command`).
pub(crate) fn template_variables(template: &str) -> Result<BTreeSet<String>, TemplateError> {
    let tmpl = ENV
        .template_from_str(template)
        .map_err(|e| TemplateError::from_jinja(&e))?;
    Ok(tmpl.undeclared_variables(true).into_iter().collect())
}

/// Checks that `expression` parses; returns the dotted variable paths it reads.
pub(crate) fn expression_variables(expression: &str) -> Result<BTreeSet<String>, TemplateError> {
    let expr = ENV
        .compile_expression(expression)
        .map_err(|e| TemplateError::from_jinja(&e))?;
    Ok(expr.undeclared_variables(true).into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn truncates_by_characters() {
        let ctx = json!({"s": "ééééé"});
        assert_eq!(render("{{ s | truncate(3) }}", &ctx).unwrap(), "éé…");
        assert_eq!(render("{{ s | truncate(10) }}", &ctx).unwrap(), "ééééé");
        assert_eq!(render("{{ s | truncate(4, '..') }}", &ctx).unwrap(), "éé..");
    }

    #[test]
    fn nested_variables_are_found() {
        let vars = template_variables("{{ stages.a.json.command }} {% for c in stages.b.commands %}{{ c.output }}{% endfor %}").unwrap();
        assert!(vars.contains("stages.a.json.command"), "{vars:?}");
        assert!(vars.iter().any(|v| v.starts_with("stages.b")), "{vars:?}");
        assert!(!vars.iter().any(|v| v.starts_with('c')), "{vars:?}");
        let vars = expression_variables("stages.x.verdict == 'pass' and attempt < 3").unwrap();
        assert!(
            vars.contains("stages.x.verdict") && vars.contains("attempt"),
            "{vars:?}"
        );
    }
}
