//! Tool-name patterns as configs list them: `bash`, `mcp:github:*`, `mcp:*:read_*`.
//!
//! `*` matches any run of characters (including `:`), `?` exactly one character; everything
//! else matches itself, case-sensitively. A pattern without wildcards is an exact name.

/// Whether `name` matches the glob `pattern`.
pub fn tool_pattern_matches(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    // Iterative wildcard matching with backtracking to the last `*`.
    let (mut pi, mut ni) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ni));
                pi += 1;
            }
            Some(&c) if c == '?' || c == n[ni] => {
                pi += 1;
                ni += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    pi = sp + 1;
                    ni = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Whether any of `patterns` matches `name`.
pub fn any_tool_pattern_matches<S: AsRef<str>>(patterns: &[S], name: &str) -> bool {
    patterns
        .iter()
        .any(|p| tool_pattern_matches(p.as_ref(), name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        for (pattern, name, expected) in [
            ("bash", "bash", true),
            ("bash", "bash2", false),
            ("mcp:github:*", "mcp:github:create_issue", true),
            ("mcp:github:*", "mcp:github:", true),
            ("mcp:github:*", "mcp:gitlab:x", false),
            ("mcp:github:*", "bash", false),
            ("mcp:*", "mcp:a:b", true),
            ("mcp:*:read_*", "mcp:fs:read_file", true),
            ("mcp:*:read_*", "mcp:fs:write_file", false),
            ("mcp:?s:*", "mcp:fs:x", true),
            ("mcp:?s:*", "mcp:xfs:x", false),
            ("*", "anything", true),
            ("", "", true),
            ("", "x", false),
            ("a*b*c", "aXXbYYc", true),
            ("a*b*c", "aXXbYY", false),
            ("MCP:*", "mcp:a:b", false),
        ] {
            assert_eq!(
                tool_pattern_matches(pattern, name),
                expected,
                "{pattern} vs {name}"
            );
        }
        assert!(any_tool_pattern_matches(&["bash", "mcp:gh:*"], "mcp:gh:x"));
        assert!(!any_tool_pattern_matches::<&str>(&[], "bash"));
    }
}
