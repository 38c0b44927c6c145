//! `read_file`, `write_file`, `edit_file`.

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::Deserialize;

use crate::args::{parse_args, schema_of};
use crate::output::{binary_reason, cap_text};
use crate::paths::{display_relative, resolve, roots};
use crate::{Tool, ToolContext, ToolOutput, ToolSpec};

/// Arguments of `read_file`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ReadArgs {
    /// File path, relative to the workspace (or absolute inside it).
    path: String,
    /// First line to return, 1-based (default 1).
    #[serde(default)]
    offset: Option<usize>,
    /// Number of lines to return (default: all, within the output cap).
    #[serde(default)]
    limit: Option<usize>,
}

/// Arguments of `write_file`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct WriteArgs {
    /// File path, relative to the workspace (or absolute inside it). Parent directories are
    /// created.
    path: String,
    /// The whole new content of the file.
    content: String,
}

/// Arguments of `edit_file`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct EditArgs {
    /// File path, relative to the workspace (or absolute inside it).
    path: String,
    /// Exact text to replace; must occur exactly once unless `replace_all` is set.
    old_string: String,
    /// Replacement text.
    new_string: String,
    /// Replace every occurrence (default false).
    #[serde(default)]
    replace_all: bool,
}

/// Reads a text file in the workspace.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReadFileTool;

/// Writes a file in the workspace.
#[derive(Debug, Clone, Copy, Default)]
pub struct WriteFileTool;

/// Replaces an exact string in a file in the workspace.
#[derive(Debug, Clone, Copy, Default)]
pub struct EditFileTool;

/// Why [`read_text`] does not read a file.
enum Refused {
    Directory,
    TooLarge(u64),
}

async fn read_text(
    ctx: &ToolContext,
    tool: &str,
    raw: &str,
) -> Result<(std::path::PathBuf, String), ToolOutput> {
    let path = resolve(ctx, raw).map_err(|e| ToolOutput::error(format!("{tool}: {e}")))?;
    // One trip to a blocking thread for the size check and the read.
    let limit = ctx.limits.max_file_bytes;
    let read = {
        let path = path.clone();
        tokio::task::spawn_blocking(move || -> std::io::Result<Result<Vec<u8>, Refused>> {
            let meta = std::fs::metadata(&path)?;
            if meta.is_dir() {
                return Ok(Err(Refused::Directory));
            }
            if meta.len() > limit {
                return Ok(Err(Refused::TooLarge(meta.len())));
            }
            std::fs::read(&path).map(Ok)
        })
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e)))
    };
    let bytes = match read {
        Err(e) => {
            return Err(ToolOutput::error(format!(
                "{tool}: cannot read `{raw}`: {e}"
            )));
        }
        Ok(Err(Refused::Directory)) => {
            return Err(ToolOutput::error(format!(
                "{tool}: `{raw}` is a directory; use glob to list files"
            )));
        }
        Ok(Err(Refused::TooLarge(len))) => {
            return Err(ToolOutput::error(format!(
                "{tool}: `{raw}` is {len} bytes; the limit is {limit} bytes"
            )));
        }
        Ok(Ok(bytes)) => bytes,
    };
    if let Some(reason) = binary_reason(&bytes, false) {
        return Err(ToolOutput::error(format!(
            "{tool}: `{raw}` is a binary file ({} bytes) and is not shown: it {reason}",
            bytes.len()
        ))
        .with_meta("bytes", bytes.len()));
    }
    let text = String::from_utf8_lossy(&bytes).into_owned();
    Ok((path, text))
}

#[async_trait]
impl Tool for ReadFileTool {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "read_file".to_owned(),
            description: "Read a UTF-8 text file in the workspace, optionally a range of lines \
                (offset is 1-based). Output is capped."
                .to_owned(),
            parameters: schema_of::<ReadArgs>(),
        }
    }

    async fn call(&self, args: serde_json::Value, ctx: &ToolContext) -> ToolOutput {
        let args: ReadArgs = match parse_args("read_file", args) {
            Ok(a) => a,
            Err(e) => return e,
        };
        if args.offset == Some(0) {
            return ToolOutput::error(
                "invalid arguments for read_file: field `offset`: lines are numbered from 1",
            );
        }
        let (_, text) = match read_text(ctx, "read_file", &args.path).await {
            Ok(t) => t,
            Err(e) => return e,
        };
        let total_lines = text.lines().count();
        let selected = if args.offset.is_some() || args.limit.is_some() {
            let start = args.offset.unwrap_or(1) - 1;
            let limit = args.limit.unwrap_or(usize::MAX);
            text.split_inclusive('\n')
                .skip(start)
                .take(limit)
                .collect::<String>()
        } else {
            text.clone()
        };
        let (content, truncated) = cap_text(
            &selected,
            selected.len() as u64,
            ctx.limits.max_output_bytes,
        );
        ToolOutput {
            content,
            is_error: false,
            truncated,
            metadata: serde_json::json!({
                "bytes": text.len(),
                "total_lines": total_lines,
            }),
        }
    }
}

#[async_trait]
impl Tool for WriteFileTool {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "write_file".to_owned(),
            description: "Create or overwrite a file in the workspace with the given content. \
                Parent directories are created."
                .to_owned(),
            parameters: schema_of::<WriteArgs>(),
        }
    }

    async fn call(&self, args: serde_json::Value, ctx: &ToolContext) -> ToolOutput {
        let args: WriteArgs = match parse_args("write_file", args) {
            Ok(a) => a,
            Err(e) => return e,
        };
        if args.content.len() as u64 > ctx.limits.max_file_bytes {
            return ToolOutput::error(format!(
                "write_file: content is {} bytes; the limit is {} bytes",
                args.content.len(),
                ctx.limits.max_file_bytes
            ));
        }
        let path = match resolve(ctx, &args.path) {
            Ok(p) => p,
            Err(e) => return ToolOutput::error(format!("write_file: {e}")),
        };
        if path.is_dir() {
            return ToolOutput::error(format!("write_file: `{}` is a directory", args.path));
        }
        if let Some(parent) = path.parent()
            && let Err(e) = tokio::fs::create_dir_all(parent).await
        {
            return ToolOutput::error(format!(
                "write_file: cannot create the directory of `{}`: {e}",
                args.path
            ));
        }
        let existed = path.exists();
        match tokio::fs::write(&path, args.content.as_bytes()).await {
            Ok(()) => {
                let shown = roots(ctx)
                    .map(|r| display_relative(&r, &path))
                    .unwrap_or_else(|_| args.path.clone());
                ToolOutput::ok(format!(
                    "{} {shown} ({} bytes)",
                    if existed { "wrote" } else { "created" },
                    args.content.len()
                ))
                .with_meta("bytes", args.content.len())
                .with_meta("created", !existed)
            }
            Err(e) => ToolOutput::error(format!("write_file: cannot write `{}`: {e}", args.path)),
        }
    }
}

#[async_trait]
impl Tool for EditFileTool {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "edit_file".to_owned(),
            description: "Replace an exact string in a text file in the workspace. `old_string` \
                must occur exactly once (include surrounding lines to make it unique) unless \
                `replace_all` is true."
                .to_owned(),
            parameters: schema_of::<EditArgs>(),
        }
    }

    async fn call(&self, args: serde_json::Value, ctx: &ToolContext) -> ToolOutput {
        let args: EditArgs = match parse_args("edit_file", args) {
            Ok(a) => a,
            Err(e) => return e,
        };
        if args.old_string.is_empty() {
            return ToolOutput::error(
                "invalid arguments for edit_file: field `old_string`: must not be empty",
            );
        }
        if args.old_string == args.new_string {
            return ToolOutput::error(
                "invalid arguments for edit_file: `old_string` and `new_string` are the same",
            );
        }
        let (path, text) = match read_text(ctx, "edit_file", &args.path).await {
            Ok(t) => t,
            Err(e) => return e,
        };
        let count = text.matches(&args.old_string).count();
        if count == 0 {
            return ToolOutput::error(format!(
                "edit_file: `old_string` not found in `{}`",
                args.path
            ));
        }
        if count > 1 && !args.replace_all {
            return ToolOutput::error(format!(
                "edit_file: `old_string` occurs {count} times in `{}`; add surrounding text to \
                 make it unique, or set `replace_all`",
                args.path
            ));
        }
        let updated = if args.replace_all {
            text.replace(&args.old_string, &args.new_string)
        } else {
            text.replacen(&args.old_string, &args.new_string, 1)
        };
        if updated.len() as u64 > ctx.limits.max_file_bytes {
            return ToolOutput::error(format!(
                "edit_file: the result would be {} bytes; the limit is {} bytes",
                updated.len(),
                ctx.limits.max_file_bytes
            ));
        }
        match tokio::fs::write(&path, updated.as_bytes()).await {
            Ok(()) => ToolOutput::ok(format!(
                "replaced {count} occurrence{} in {}",
                if count == 1 { "" } else { "s" },
                args.path
            ))
            .with_meta("replacements", count),
            Err(e) => ToolOutput::error(format!("edit_file: cannot write `{}`: {e}", args.path)),
        }
    }
}
