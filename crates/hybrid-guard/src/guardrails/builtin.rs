//! Built-in L4 checks: secrets in output text (the patterns of hybrid-secrets),
//! and a JSON schema on structured output.
//!
//! The schema check is a small subset validator (no `jsonschema` crate, to
//! keep the build light): `type` (one or a list), `enum`, `const`,
//! `properties`, `required`, `additionalProperties` (`false` or a schema),
//! `items`, `minItems`/`maxItems`, `minLength`/`maxLength`,
//! `minimum`/`maximum`. Other keywords are ignored.

use std::sync::LazyLock;

use hybrid_secrets::Redactor;
use serde_json::Value;

/// What the first secret found in `text` is, in words (the secrets module's table: whatever it
/// finds, redaction removes).
pub(crate) fn find_secret(text: &str) -> Option<&'static str> {
    static REDACTOR: LazyLock<Redactor> = LazyLock::new(Redactor::default);
    REDACTOR.detect(text).map(|f| f.what)
}

/// Checks that a schema is an object (or `true`); one-line reason otherwise.
pub(crate) fn check_schema(schema: &Value) -> Result<(), String> {
    match schema {
        Value::Object(_) | Value::Bool(true) => Ok(()),
        other => Err(format!("JSON schema must be an object, got {other}")),
    }
}

fn type_matches(name: &str, v: &Value) -> bool {
    match name {
        "null" => v.is_null(),
        "boolean" => v.is_boolean(),
        "string" => v.is_string(),
        "number" => v.is_number(),
        "integer" => v.is_i64() || v.is_u64() || v.as_f64().is_some_and(|f| f.fract() == 0.0),
        "array" => v.is_array(),
        "object" => v.is_object(),
        _ => false,
    }
}

/// Validates `v` against the subset; the first violation, with its JSON path.
pub(crate) fn validate(schema: &Value, v: &Value, path: &str) -> Result<(), String> {
    let Value::Object(s) = schema else {
        return match schema {
            Value::Bool(false) => Err(format!("{path}: not allowed")),
            _ => Ok(()),
        };
    };
    let at = if path.is_empty() { "$" } else { path };
    if let Some(t) = s.get("type") {
        let names: Vec<&str> = match t {
            Value::String(n) => vec![n.as_str()],
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        if !names.is_empty() && !names.iter().any(|n| type_matches(n, v)) {
            return Err(format!("{at}: expected {}", names.join(" or ")));
        }
    }
    if let Some(Value::Array(options)) = s.get("enum")
        && !options.contains(v)
    {
        return Err(format!("{at}: not one of the allowed values"));
    }
    if let Some(c) = s.get("const")
        && c != v
    {
        return Err(format!("{at}: must equal {c}"));
    }
    if let Some(n) = v.as_f64() {
        if let Some(min) = s.get("minimum").and_then(Value::as_f64)
            && n < min
        {
            return Err(format!("{at}: {n} is below the minimum {min}"));
        }
        if let Some(max) = s.get("maximum").and_then(Value::as_f64)
            && n > max
        {
            return Err(format!("{at}: {n} is above the maximum {max}"));
        }
    }
    if let Some(text) = v.as_str() {
        let len = text.chars().count() as u64;
        if s.get("minLength")
            .and_then(Value::as_u64)
            .is_some_and(|m| len < m)
        {
            return Err(format!("{at}: string shorter than minLength"));
        }
        if s.get("maxLength")
            .and_then(Value::as_u64)
            .is_some_and(|m| len > m)
        {
            return Err(format!("{at}: string longer than maxLength"));
        }
    }
    if let Value::Array(items) = v {
        let len = items.len() as u64;
        if s.get("minItems")
            .and_then(Value::as_u64)
            .is_some_and(|m| len < m)
        {
            return Err(format!("{at}: fewer items than minItems"));
        }
        if s.get("maxItems")
            .and_then(Value::as_u64)
            .is_some_and(|m| len > m)
        {
            return Err(format!("{at}: more items than maxItems"));
        }
        if let Some(item_schema) = s.get("items") {
            for (i, item) in items.iter().enumerate() {
                validate(item_schema, item, &format!("{at}[{i}]"))?;
            }
        }
    }
    if let Value::Object(obj) = v {
        if let Some(Value::Array(required)) = s.get("required") {
            for r in required.iter().filter_map(Value::as_str) {
                if !obj.contains_key(r) {
                    return Err(format!("{at}: missing required property `{r}`"));
                }
            }
        }
        let props = s.get("properties").and_then(Value::as_object);
        for (k, val) in obj {
            let child = format!("{at}.{k}");
            match props.and_then(|p| p.get(k)) {
                Some(ps) => validate(ps, val, &child)?,
                None => match s.get("additionalProperties") {
                    Some(Value::Bool(false)) => {
                        return Err(format!("{at}: property `{k}` is not allowed"));
                    }
                    Some(extra @ Value::Object(_)) => validate(extra, val, &child)?,
                    _ => {}
                },
            }
        }
    }
    Ok(())
}
