//! `glob` and `grep`: walk the workspace (respecting .gitignore, skipping `.git`).

use std::path::{Component, Path, PathBuf};

use async_trait::async_trait;
use globset::{Glob, GlobMatcher};
use schemars::JsonSchema;
use serde::Deserialize;

use crate::args::{parse_args, schema_of};
use crate::output::{binary_reason, cap_text};
use crate::paths::{resolve, roots};
use crate::{Tool, ToolContext, ToolOutput, ToolSpec};

/// Most paths `glob` lists.
const MAX_GLOB_RESULTS: usize = 1000;
/// Longest line `grep` shows (longer ones are cut).
const MAX_LINE_CHARS: usize = 400;

/// Arguments of `glob`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct GlobArgs {
    /// Glob relative to the workspace, e.g. `src/**/*.rs` or `*.toml`.
    pattern: String,
}

/// Arguments of `grep`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct GrepArgs {
    /// Regular expression (Rust regex syntax).
    pattern: String,
    /// File or directory to search, relative to the workspace (default: the workspace).
    #[serde(default)]
    path: Option<String>,
    /// Only search files whose path (relative to the workspace) or name matches this glob.
    #[serde(default)]
    glob: Option<String>,
}

/// Lists workspace files matching a glob.
#[derive(Debug, Clone, Copy, Default)]
pub struct GlobTool;

/// Searches workspace files with a regex.
#[derive(Debug, Clone, Copy, Default)]
pub struct GrepTool;

fn matcher(field: &str, tool: &str, pattern: &str) -> Result<GlobMatcher, ToolOutput> {
    let p = Path::new(pattern);
    if pattern.is_empty()
        || p.is_absolute()
        || p.components().any(|c| matches!(c, Component::ParentDir))
    {
        return Err(ToolOutput::error(format!(
            "invalid arguments for {tool}: field `{field}`: must be a non-empty glob relative to \
             the workspace, without `..`"
        )));
    }
    Glob::new(pattern)
        .map(|g| g.compile_matcher())
        .map_err(|e| {
            ToolOutput::error(format!(
                "invalid arguments for {tool}: field `{field}`: {e}"
            ))
        })
}

/// Files under `start` (a file or directory), as (absolute, relative-to-workspace) pairs.
fn walk(workspace: &Path, start: &Path) -> impl Iterator<Item = (PathBuf, String)> {
    let base = workspace.to_path_buf();
    ignore::WalkBuilder::new(start)
        .hidden(false)
        .git_ignore(true)
        .git_global(false)
        .require_git(false)
        .follow_links(false)
        .filter_entry(|e| e.file_name() != ".git")
        .build()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_some_and(|t| t.is_file()))
        .map(move |e| {
            let abs = e.into_path();
            let rel = abs
                .strip_prefix(&base)
                .map(|r| r.display().to_string())
                .unwrap_or_else(|_| abs.display().to_string());
            (abs, rel)
        })
}

#[async_trait]
impl Tool for GlobTool {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "glob".to_owned(),
            description: "List files in the workspace whose path matches a glob (`**` crosses \
                directories). Honours .gitignore; sorted; at most 1000 paths."
                .to_owned(),
            parameters: schema_of::<GlobArgs>(),
        }
    }

    async fn call(&self, args: serde_json::Value, ctx: &ToolContext) -> ToolOutput {
        let args: GlobArgs = match parse_args("glob", args) {
            Ok(a) => a,
            Err(e) => return e,
        };
        let glob = match matcher("pattern", "glob", &args.pattern) {
            Ok(m) => m,
            Err(e) => return e,
        };
        let workspace = match roots(ctx) {
            Ok(r) => r[0].clone(),
            Err(e) => return ToolOutput::error(format!("glob: {e}")),
        };
        let max = ctx.limits.max_output_bytes;
        let pattern = args.pattern;
        let job = tokio::task::spawn_blocking(move || {
            let mut found: Vec<String> = walk(&workspace, &workspace)
                .filter(|(_, rel)| glob.is_match(rel))
                .map(|(_, rel)| rel)
                .collect();
            found.sort();
            found
        });
        let found = match job.await {
            Ok(f) => f,
            Err(e) => return ToolOutput::error(format!("glob: the search failed: {e}")),
        };
        if found.is_empty() {
            return ToolOutput::ok(format!("no files match `{pattern}`")).with_meta("matches", 0);
        }
        let count = found.len();
        let mut text = found
            .iter()
            .take(MAX_GLOB_RESULTS)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n");
        if count > MAX_GLOB_RESULTS {
            text.push_str(&format!(
                "\n[{} more paths not shown; narrow the pattern]",
                count - MAX_GLOB_RESULTS
            ));
        }
        let (content, truncated) = cap_text(&text, text.len() as u64, max);
        ToolOutput {
            content,
            is_error: false,
            truncated: truncated || count > MAX_GLOB_RESULTS,
            metadata: serde_json::json!({ "matches": count }),
        }
    }
}

#[async_trait]
impl Tool for GrepTool {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "grep".to_owned(),
            description: "Search text files in the workspace for a regular expression; prints \
                `path:line:text` for each matching line. Binary and oversized files are skipped; \
                honours .gitignore."
                .to_owned(),
            parameters: schema_of::<GrepArgs>(),
        }
    }

    async fn call(&self, args: serde_json::Value, ctx: &ToolContext) -> ToolOutput {
        let args: GrepArgs = match parse_args("grep", args) {
            Ok(a) => a,
            Err(e) => return e,
        };
        let regex = match regex::RegexBuilder::new(&args.pattern)
            .size_limit(10 * 1024 * 1024)
            .build()
        {
            Ok(r) => r,
            Err(e) => {
                let first = e.to_string();
                return ToolOutput::error(format!(
                    "invalid arguments for grep: field `pattern` is not a valid regex: {}",
                    first.trim()
                ));
            }
        };
        let filter = match &args.glob {
            Some(g) => match matcher("glob", "grep", g) {
                Ok(m) => Some(m),
                Err(e) => return e,
            },
            None => None,
        };
        let workspace = match roots(ctx) {
            Ok(r) => r[0].clone(),
            Err(e) => return ToolOutput::error(format!("grep: {e}")),
        };
        let start = match &args.path {
            Some(p) => match resolve(ctx, p) {
                Ok(p) if p.exists() => p,
                Ok(_) => return ToolOutput::error(format!("grep: `{p}` does not exist")),
                Err(e) => return ToolOutput::error(format!("grep: {e}")),
            },
            None => workspace.clone(),
        };
        let max_out = ctx.limits.max_output_bytes;
        let max_file = ctx.limits.max_file_bytes;
        let job = tokio::task::spawn_blocking(move || {
            let mut out = String::new();
            let mut matches = 0u64;
            let mut files = 0u64;
            let mut skipped = 0u64;
            let mut cut = false;
            let mut total_bytes = 0u64;
            for (abs, rel) in walk(&workspace, &start) {
                if let Some(f) = &filter {
                    let name = abs.file_name().map(|n| n.to_string_lossy().into_owned());
                    if !f.is_match(&rel) && !name.is_some_and(|n| f.is_match(n)) {
                        continue;
                    }
                }
                let too_big = std::fs::metadata(&abs).map_or(true, |m| m.len() > max_file);
                if too_big {
                    skipped += 1;
                    continue;
                }
                let Ok(bytes) = std::fs::read(&abs) else {
                    skipped += 1;
                    continue;
                };
                if binary_reason(&bytes, false).is_some() {
                    skipped += 1;
                    continue;
                }
                files += 1;
                let text = String::from_utf8_lossy(&bytes);
                for (i, line) in text.lines().enumerate() {
                    if !regex.is_match(line) {
                        continue;
                    }
                    matches += 1;
                    let shown: String = line.chars().take(MAX_LINE_CHARS).collect();
                    let ellipsis = if shown.len() < line.len() { " …" } else { "" };
                    let entry = format!("{rel}:{}:{shown}{ellipsis}\n", i + 1);
                    total_bytes += entry.len() as u64;
                    if !cut {
                        out.push_str(&entry);
                        cut = out.len() > max_out;
                    }
                }
            }
            (out, matches, files, skipped, total_bytes)
        });
        let (out, matches, files, skipped, total_bytes) = match job.await {
            Ok(r) => r,
            Err(e) => return ToolOutput::error(format!("grep: the search failed: {e}")),
        };
        let meta = serde_json::json!({
            "matches": matches,
            "files_searched": files,
            "files_skipped": skipped,
        });
        if matches == 0 {
            return ToolOutput {
                metadata: meta,
                ..ToolOutput::ok(format!("no matches for `{}`", args.pattern))
            };
        }
        let (mut content, truncated) = cap_text(&out, total_bytes, max_out);
        if truncated {
            content.push_str(&format!("\n[{matches} matching lines in all]"));
        }
        ToolOutput {
            content,
            is_error: false,
            truncated,
            metadata: meta,
        }
    }
}
