//! CEL conditions (`cel-interpreter`): compiled and checked once, when the
//! guardrail is built; evaluated against [`GuardContext::cel_variables`].
//!
//! Checked at construction: the expression parses; every top-level variable
//! is one of `task`, `route`, `stage`, `tool`, `output`, `usage` (or a
//! comprehension variable such as `x` in `list.exists(x, …)`); every field
//! read directly off one of those (`task.estimated_cost`) exists. Each
//! failure is a one-line reason; the caller wraps it with the rule's name.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, LazyLock};

use cel_interpreter::{Context, Program, Value as CelValue};
use regex::Regex;

use super::context::{CEL_VARIABLES, GuardContext};

static STRINGS: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r#""(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'"#).ok());
static FIELD: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"(?:^|[^.\w])([A-Za-z_]\w*)\s*\.\s*([A-Za-z_]\w*)").ok());
static BOUND: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(r"\.\s*(?:all|exists|exists_one|map|filter)\s*\(\s*([A-Za-z_]\w*)\s*,").ok()
});

/// The CEL variables of one context, converted once per evaluation.
pub(crate) type CelVars = HashMap<&'static str, CelValue>;

/// Converts a context's variables for CEL.
pub(crate) fn cel_vars(ctx: &GuardContext) -> CelVars {
    ctx.cel_variables()
        .into_iter()
        .filter_map(|(k, v)| cel_interpreter::to_value(v).ok().map(|v| (k, v)))
        .collect()
}

/// A compiled CEL condition.
#[derive(Clone)]
pub(crate) struct CelCondition {
    source: String,
    program: Arc<Program>,
}

impl fmt::Debug for CelCondition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CelCondition")
            .field("source", &self.source)
            .finish()
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `ERROR: <input>:1:19: Syntax error: missing ')' …` (plus caret lines) →
/// `1:19: Syntax error: missing ')' …`.
fn first_parse_error(text: &str) -> String {
    let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or(text);
    let first = first.trim();
    let first = first.strip_prefix("ERROR:").unwrap_or(first).trim();
    let first = first.strip_prefix("<input>:").unwrap_or(first);
    one_line(first)
}

/// Serialises the panic-hook swap around the CEL parser.
static SILENCE: std::sync::Mutex<()> = std::sync::Mutex::new(());

impl CelCondition {
    /// Compiles and checks `source`; the error is one line, without the rule name.
    pub(crate) fn compile(source: &str) -> Result<Self, String> {
        if source.trim().is_empty() {
            return Err("empty CEL expression".to_owned());
        }
        // The ANTLR-generated parser panics on some malformed input (e.g. a
        // trailing operator); that is a parse error too, never a crash, and
        // its panic message must not reach the user: the hook is silenced
        // while the parser runs (compiles are serialised: the hook is global).
        let parsed = {
            let _one_at_a_time = SILENCE
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let previous = std::panic::take_hook();
            std::panic::set_hook(Box::new(|_| {}));
            let parsed = std::panic::catch_unwind(|| Program::compile(source));
            std::panic::set_hook(previous);
            parsed
        };
        let program = match parsed {
            Ok(Ok(p)) => p,
            Ok(Err(e)) => {
                return Err(format!(
                    "CEL expression `{}` does not parse: {}",
                    one_line(source),
                    first_parse_error(&e.to_string())
                ));
            }
            Err(_) => {
                return Err(format!(
                    "CEL expression `{}` does not parse (the parser gave up)",
                    one_line(source)
                ));
            }
        };
        let stripped = match STRINGS.as_ref() {
            Some(re) => re.replace_all(source, "\"\"").into_owned(),
            None => source.to_owned(),
        };
        let bound: HashSet<&str> = BOUND
            .as_ref()
            .map(|re| {
                re.captures_iter(&stripped)
                    .filter_map(|c| c.get(1).map(|m| m.as_str()))
                    .collect()
            })
            .unwrap_or_default();
        let known = |v: &str| CEL_VARIABLES.iter().any(|(name, _)| *name == v);
        let refs = program.references();
        let mut vars = refs.variables();
        vars.sort_unstable();
        for v in vars {
            if !known(v) && !bound.contains(v) {
                return Err(format!(
                    "CEL expression `{}` uses unknown variable `{v}` (known: {})",
                    one_line(source),
                    CEL_VARIABLES
                        .iter()
                        .map(|(n, _)| *n)
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
        }
        if let Some(re) = FIELD.as_ref() {
            for c in re.captures_iter(&stripped) {
                let (Some(var), Some(field)) = (c.get(1), c.get(2)) else {
                    continue;
                };
                let Some((_, fields)) = CEL_VARIABLES.iter().find(|(n, _)| *n == var.as_str())
                else {
                    continue;
                };
                if bound.contains(var.as_str()) || fields.contains(&field.as_str()) {
                    continue;
                }
                return Err(format!(
                    "CEL expression `{}` uses unknown field `{}.{}` (fields of {}: {})",
                    one_line(source),
                    var.as_str(),
                    field.as_str(),
                    var.as_str(),
                    fields.join(", ")
                ));
            }
        }
        Ok(CelCondition {
            source: source.to_owned(),
            program: Arc::new(program),
        })
    }

    /// The expression as written.
    pub(crate) fn source(&self) -> &str {
        &self.source
    }

    /// Evaluates; `Err` when it cannot be evaluated or is not a boolean.
    pub(crate) fn eval(&self, vars: &CelVars) -> Result<bool, String> {
        let mut ctx = Context::default();
        for (k, v) in vars {
            ctx.add_variable_from_value(*k, v.clone());
        }
        let run = std::panic::catch_unwind(AssertUnwindSafe(|| self.program.execute(&ctx)));
        let Ok(result) = run else {
            return Err(format!(
                "CEL expression `{}` crashed the interpreter",
                one_line(&self.source)
            ));
        };
        match result {
            Ok(CelValue::Bool(b)) => Ok(b),
            Ok(other) => Err(format!(
                "CEL expression `{}` gave {:?}, not a boolean",
                one_line(&self.source),
                other.type_of()
            )),
            Err(e) => Err(format!(
                "CEL expression `{}` failed: {}",
                one_line(&self.source),
                one_line(&e.to_string())
            )),
        }
    }
}
