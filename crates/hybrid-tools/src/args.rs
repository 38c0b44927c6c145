//! Typed tool arguments: parsing (errors name the field) and schemas (from schemars).

use std::any::TypeId;
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock, PoisonError};

use schemars::JsonSchema;
use serde::de::DeserializeOwned;

use crate::ToolOutput;

/// The JSON schema of `T`, without the `$schema` and `title` keys models don't need.
/// Generated once per type and then cloned: a tool's spec is asked for on
/// every model request.
pub(crate) fn schema_of<T: JsonSchema + 'static>() -> serde_json::Value {
    static SCHEMAS: OnceLock<Mutex<HashMap<TypeId, serde_json::Value>>> = OnceLock::new();
    let schemas = SCHEMAS.get_or_init(Mutex::default);
    // A map of finished schemas: a panic elsewhere cannot leave one half written.
    if let Some(known) = schemas
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&TypeId::of::<T>())
    {
        return known.clone();
    }
    let schema = schemars::schema_for!(T);
    let mut value =
        serde_json::to_value(&schema).unwrap_or_else(|_| serde_json::json!({ "type": "object" }));
    if let serde_json::Value::Object(map) = &mut value {
        map.remove("$schema");
        map.remove("title");
    }
    schemas
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(TypeId::of::<T>(), value.clone());
    value
}

/// Parses a tool's arguments. Accepts an object, `null` (as `{}`) or a string holding JSON
/// (some providers hand over the raw argument text). Errors are tool errors that name the tool
/// and the offending field.
pub(crate) fn parse_args<T: DeserializeOwned>(
    tool: &str,
    args: serde_json::Value,
) -> Result<T, ToolOutput> {
    let value = match args {
        serde_json::Value::Null => serde_json::Value::Object(serde_json::Map::new()),
        serde_json::Value::String(text) => match serde_json::from_str(&text) {
            Ok(v) => v,
            Err(e) => {
                return Err(ToolOutput::error(format!(
                    "invalid arguments for {tool}: not valid JSON ({e})"
                )));
            }
        },
        other => other,
    };
    if !value.is_object() {
        return Err(ToolOutput::error(format!(
            "invalid arguments for {tool}: expected a JSON object, got {}",
            kind_of(&value)
        )));
    }
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path.is_empty() || path == "." || inner.to_string().contains(&format!("`{path}`")) {
            ToolOutput::error(format!("invalid arguments for {tool}: {inner}"))
        } else {
            ToolOutput::error(format!(
                "invalid arguments for {tool}: field `{path}`: {inner}"
            ))
        }
    })
}

fn kind_of(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}
