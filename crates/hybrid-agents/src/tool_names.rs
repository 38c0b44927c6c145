//! Tool names as the providers accept them.
//!
//! OpenAI and Anthropic both require tool names matching
//! `^[a-zA-Z0-9_-]{1,64}$`, while MCP tools are named `mcp:<server>:<tool>`
//! here. The loop offers each tool under a wire name — `:` becomes `__`, any
//! other character outside the set becomes `_`, long names are cut to 64 with
//! a numeric suffix keeping them unique — and maps the model's calls back.
//!
//! ```
//! use hybrid_agents::tool_names::WireNames;
//! let names = WireNames::new(["bash", "mcp:github:list_issues"]);
//! assert_eq!(names.wire("mcp:github:list_issues"), Some("mcp__github__list_issues"));
//! assert_eq!(names.internal("mcp__github__list_issues"), Some("mcp:github:list_issues"));
//! assert_eq!(names.wire("bash"), Some("bash"));
//! ```

use std::collections::HashMap;

/// The longest name the providers accept.
pub const MAX_WIRE_NAME: usize = 64;

/// Both directions of the name mapping for one run's tools.
#[derive(Debug, Clone, Default)]
pub struct WireNames {
    to_wire: HashMap<String, String>,
    to_internal: HashMap<String, String>,
}

fn sanitize(name: &str) -> String {
    let replaced = name.replace(':', "__");
    let mut out: String = replaced
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() {
        out.push('_');
    }
    out.truncate(MAX_WIRE_NAME);
    out
}

impl WireNames {
    /// The mapping for these tool names, in order (earlier names keep the plain form).
    pub fn new<I, S>(names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut m = WireNames::default();
        for name in names {
            let name = name.as_ref();
            let base = sanitize(name);
            let mut wire = base.clone();
            let mut n = 2;
            while m.to_internal.contains_key(&wire) {
                let suffix = format!("_{n}");
                let keep = MAX_WIRE_NAME.saturating_sub(suffix.len()).min(base.len());
                wire = format!("{}{suffix}", &base[..keep]);
                n += 1;
            }
            m.to_wire.insert(name.to_owned(), wire.clone());
            m.to_internal.insert(wire, name.to_owned());
        }
        m
    }

    /// The name the model sees.
    pub fn wire(&self, internal: &str) -> Option<&str> {
        self.to_wire.get(internal).map(String::as_str)
    }

    /// The tool a model's call names (the wire name itself when it is unknown).
    pub fn internal(&self, wire: &str) -> Option<&str> {
        self.to_internal.get(wire).map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_valid_unique_and_reversible() {
        let long = format!("mcp:srv:{}", "x".repeat(80));
        let names = [
            "bash",
            "mcp:a:b",
            "mcp__a__b",
            "mcp:a.b:c d",
            long.as_str(),
            "mcp:srv:é",
        ];
        let m = WireNames::new(names);
        let mut seen = std::collections::HashSet::new();
        for n in names {
            let w = m.wire(n).unwrap();
            assert!(!w.is_empty() && w.len() <= MAX_WIRE_NAME, "{w}");
            assert!(
                w.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'),
                "{w}"
            );
            assert!(seen.insert(w.to_owned()), "duplicate wire name {w}");
            assert_eq!(m.internal(w), Some(n));
        }
        assert_eq!(m.wire("mcp__a__b"), Some("mcp__a__b_2"));
    }
}
