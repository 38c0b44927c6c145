//! Parsing a workflow file: YAML with positions (marked-yaml), an index from
//! key paths (`stages[2].approval.timeout`) to lines, and serde over the parsed
//! tree with the failing path tracked (serde_path_to_error), so every error —
//! syntax, unknown key, bad value, or later a semantic problem — names the
//! file, the line and the key.

use std::collections::HashMap;
use std::path::Path;

use marked_yaml::{LoadError, LoaderOptions, Node};
use serde_json::{Map, Number, Value};

use crate::error::WorkflowError;
use crate::spec::WorkflowSpec;
use crate::validate::{ValidateOptions, validate};
use crate::workflow::{Workflow, WorkflowSource};

/// Where each key of a file is: key path → 1-based line.
///
/// Paths look like `name`, `stages[2]`, `stages[2].approval.timeout`. A
/// mapping entry's line is its key's line; a sequence item's line is where the
/// item starts.
#[derive(Debug, Clone, Default)]
pub struct SpanIndex {
    lines: HashMap<String, usize>,
}

impl SpanIndex {
    /// The line of `path`, or of its nearest enclosing key, or 1.
    pub fn line(&self, path: &str) -> usize {
        let mut p = path;
        loop {
            if let Some(line) = self.lines.get(p) {
                return *line;
            }
            match parent(p) {
                Some(up) => p = up,
                None => return 1,
            }
        }
    }

    /// The line of exactly `path`, if the file has it.
    pub fn exact(&self, path: &str) -> Option<usize> {
        self.lines.get(path).copied()
    }
}

/// `a.b[2].c` → `a.b[2]` → `a.b` → `a` → None.
fn parent(path: &str) -> Option<&str> {
    let cut = path.rfind(['.', '['])?;
    Some(&path[..cut])
}

/// A parsed, not yet validated file: the spec plus where its keys are.
#[derive(Debug, Clone)]
pub struct Parsed {
    /// The file's name for messages.
    pub file: String,
    /// The content.
    pub spec: WorkflowSpec,
    /// Key positions.
    pub spans: SpanIndex,
}

impl Parsed {
    /// An error at `key` (its line looked up in the index).
    pub fn error(&self, key: impl Into<String>, message: impl Into<String>) -> WorkflowError {
        let key = key.into();
        WorkflowError::Invalid {
            file: self.file.clone(),
            line: self.spans.line(&key),
            key,
            message: message.into(),
        }
    }
}

/// Parses YAML text into the spec; `file` names it in errors.
pub fn parse(file: &str, text: &str) -> Result<Parsed, WorkflowError> {
    let node = marked_yaml::parse_yaml_with_options(0, text, loader_options())
        .map_err(|e| syntax_error(file, text, &e))?;
    let mut spans = SpanIndex::default();
    index(&node, "", &mut spans);
    let value = to_json(&node);
    let spec: WorkflowSpec = serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        let (key, message) = explain(&path, &e.inner().to_string());
        WorkflowError::Invalid {
            file: file.to_owned(),
            line: spans.line(&key),
            key: if key.is_empty() {
                "(top level)".into()
            } else {
                key
            },
            message,
        }
    })?;
    Ok(Parsed {
        file: file.to_owned(),
        spec,
        spans,
    })
}

/// Parses and validates YAML text; `file` names it in errors.
pub fn load_str(
    file: &str,
    text: &str,
    options: &ValidateOptions,
) -> Result<Workflow, WorkflowError> {
    let parsed = parse(file, text)?;
    validate(&parsed, options, WorkflowSource::Inline(file.to_owned()))
}

/// Reads, parses and validates a file. Errors name the path as given.
pub fn load_file(path: &Path, options: &ValidateOptions) -> Result<Workflow, WorkflowError> {
    let text = std::fs::read_to_string(path).map_err(|e| WorkflowError::Io {
        path: path.to_owned(),
        kind: e.kind(),
        message: e.to_string(),
    })?;
    let file = path.display().to_string();
    let parsed = parse(&file, &text)?;
    validate(&parsed, options, WorkflowSource::File(path.to_owned()))
}

/// Duplicate keys are errors; only plain (unquoted) scalars are typed.
fn loader_options() -> LoaderOptions {
    LoaderOptions::default()
        .error_on_duplicate_keys(true)
        .prevent_coercion(true)
        .toplevel_mapping()
}

fn syntax_error(file: &str, _text: &str, e: &LoadError) -> WorkflowError {
    let (marker, message) = match e {
        LoadError::TopLevelMustBeMapping(m) => {
            (Some(*m), "the top level must be a mapping".to_owned())
        }
        LoadError::TopLevelMustBeSequence(m) => {
            (Some(*m), "the top level must be a sequence".to_owned())
        }
        LoadError::UnexpectedAnchor(m) => {
            (Some(*m), "anchors and aliases are not supported".to_owned())
        }
        LoadError::MappingKeyMustBeScalar(m) => {
            (Some(*m), "mapping keys must be plain scalars".to_owned())
        }
        LoadError::UnexpectedTag(m) => (Some(*m), "YAML tags are not supported".to_owned()),
        LoadError::ScanError(m, _) => {
            let full = e.to_string();
            let prefix = format!("{m}: ");
            let msg = full.strip_prefix(&prefix).unwrap_or(&full).to_owned();
            (Some(*m), msg)
        }
        LoadError::DuplicateKey(inner) => {
            let first = inner.prev_key.span().start().map(|m| m.line()).unwrap_or(0);
            return WorkflowError::Syntax {
                file: file.to_owned(),
                line: inner.key.span().start().map(|m| m.line()).unwrap_or(1),
                message: format!(
                    "duplicate key `{}` (first at line {first})",
                    inner.key.as_str()
                ),
            };
        }
    };
    WorkflowError::Syntax {
        file: file.to_owned(),
        line: marker.map(|m| m.line()).unwrap_or(1).max(1),
        message: one_line(&message),
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn index(node: &Node, path: &str, spans: &mut SpanIndex) {
    match node {
        Node::Mapping(map) => {
            for (key, value) in map.iter() {
                let child = if path.is_empty() {
                    key.as_str().to_owned()
                } else {
                    format!("{path}.{}", key.as_str())
                };
                if let Some(m) = key.span().start() {
                    spans.lines.insert(child.clone(), m.line());
                }
                index(value, &child, spans);
            }
        }
        Node::Sequence(seq) => {
            for (i, item) in seq.iter().enumerate() {
                let child = format!("{path}[{i}]");
                if let Some(m) = item.span().start() {
                    spans.lines.insert(child.clone(), m.line());
                }
                index(item, &child, spans);
            }
        }
        Node::Scalar(_) => {}
    }
}

/// YAML 1.2 core-schema typing for unquoted scalars; quoted ones stay strings.
fn to_json(node: &Node) -> Value {
    match node {
        Node::Mapping(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.as_str().to_owned(), to_json(v)))
                .collect::<Map<_, _>>(),
        ),
        Node::Sequence(seq) => Value::Array(seq.iter().map(to_json).collect()),
        Node::Scalar(s) => {
            let text = s.as_str();
            if !s.may_coerce() {
                return Value::String(text.to_owned());
            }
            match text {
                "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
                _ => {}
            }
            if let Some(b) = s.as_bool() {
                return Value::Bool(b);
            }
            if let Ok(i) = text.parse::<i64>() {
                return Value::Number(i.into());
            }
            if text.chars().any(|c| c.is_ascii_digit())
                && !text
                    .chars()
                    .any(|c| c.is_alphabetic() && c != 'e' && c != 'E')
                && let Ok(f) = text.parse::<f64>()
                && let Some(n) = Number::from_f64(f)
            {
                return Value::Number(n);
            }
            Value::String(text.to_owned())
        }
    }
}

/// Turns serde's message into this crate's words, and the path into the key
/// the problem is about.
fn explain(path: &str, message: &str) -> (String, String) {
    let join = |name: &str| {
        if path.is_empty() {
            name.to_owned()
        } else {
            format!("{path}.{name}")
        }
    };
    if let Some(rest) = message.strip_prefix("unknown field `") {
        // serde_path_to_error's path already ends with the unknown key.
        let (_name, expected) = rest.split_once('`').unwrap_or((rest, ""));
        let expected = expected
            .trim_start_matches(", ")
            .trim_start_matches("expected one of ")
            .trim_start_matches("expected ")
            .replace('`', "");
        let message = if expected.contains("there are no fields") || expected.is_empty() {
            "unknown key".to_owned()
        } else {
            format!("unknown key (expected one of: {expected})")
        };
        return (path.to_owned(), message);
    }
    if let Some(rest) = message.strip_prefix("missing field `") {
        let name = rest.split('`').next().unwrap_or(rest);
        return (join(name), "required key is missing".to_owned());
    }
    if let Some(rest) = message.strip_prefix("unknown variant `") {
        let (value, expected) = rest.split_once('`').unwrap_or((rest, ""));
        let expected = expected
            .trim_start_matches(", ")
            .trim_start_matches("expected one of ")
            .trim_start_matches("expected ")
            .replace('`', "");
        return (
            path.to_owned(),
            format!("unknown value `{value}` (expected one of: {expected})"),
        );
    }
    let message = message
        .replace("invalid type: ", "wrong type: ")
        .replace("a sequence", "a list")
        .replace("map", "mapping")
        .replace("mappingping", "mapping");
    (path.to_owned(), one_line(&message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parents() {
        assert_eq!(parent("a.b[2].c"), Some("a.b[2]"));
        assert_eq!(parent("a.b[2]"), Some("a.b"));
        assert_eq!(parent("a"), None);
    }

    #[test]
    fn scalars_are_typed_like_yaml() {
        let node = marked_yaml::parse_yaml_with_options(
            0,
            "a: 1\nb: '1'\nc: true\nd: 1.5\ne:\nf: web\ng: 1h\n",
            loader_options(),
        )
        .unwrap();
        let v = to_json(&node);
        assert_eq!(
            v,
            serde_json::json!({"a": 1, "b": "1", "c": true, "d": 1.5, "e": null, "f": "web", "g": "1h"})
        );
    }
}
