//! Path resolution for the file tools: everything stays inside the workspace or one of the
//! extra writable roots, after following symlinks.

use std::path::{Component, Path, PathBuf};

use crate::ToolContext;

/// The canonical roots the file tools may touch: the workspace first, then the extra
/// writable paths that exist.
pub(crate) fn roots(ctx: &ToolContext) -> Result<Vec<PathBuf>, String> {
    let workspace = std::fs::canonicalize(&ctx.workspace)
        .map_err(|e| format!("workspace `{}` is not usable: {e}", ctx.workspace.display()))?;
    let mut roots = vec![workspace];
    for extra in &ctx.sandbox.extra_writable {
        if let Ok(p) = std::fs::canonicalize(extra) {
            roots.push(p);
        }
    }
    Ok(roots)
}

/// Resolves `raw` (relative to the workspace, or absolute) to a canonical path inside one of
/// the roots. The path need not exist (for writes); its deepest existing ancestor is
/// canonicalized and the rest must be plain names.
pub(crate) fn resolve(ctx: &ToolContext, raw: &str) -> Result<PathBuf, String> {
    if raw.is_empty() {
        return Err("field `path`: must not be empty".to_owned());
    }
    if raw.contains('\0') {
        return Err("field `path`: must not contain NUL bytes".to_owned());
    }
    let roots = roots(ctx)?;
    let workspace = &roots[0];
    let candidate = if Path::new(raw).is_absolute() {
        PathBuf::from(raw)
    } else {
        workspace.join(raw)
    };
    let resolved = canonicalize_lenient(&candidate)
        .map_err(|e| format!("path `{raw}` cannot be resolved: {e}"))?;
    if roots.iter().any(|root| resolved.starts_with(root)) {
        Ok(resolved)
    } else {
        Err(format!(
            "path `{raw}` resolves to `{}`, outside the workspace `{}`{}",
            resolved.display(),
            workspace.display(),
            if roots.len() > 1 {
                " and the extra writable paths"
            } else {
                ""
            }
        ))
    }
}

/// Canonicalizes the deepest existing ancestor and appends the rest, which must consist of
/// normal components only (a `..` after a missing directory cannot be resolved safely).
fn canonicalize_lenient(path: &Path) -> Result<PathBuf, String> {
    let mut existing = path.to_path_buf();
    let mut rest: Vec<std::ffi::OsString> = Vec::new();
    loop {
        match std::fs::canonicalize(&existing) {
            Ok(canon) => {
                let mut out = canon;
                for part in rest.iter().rev() {
                    out.push(part);
                }
                return Ok(out);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let name = match existing.components().next_back() {
                    Some(Component::Normal(name)) => name.to_os_string(),
                    Some(Component::CurDir) => std::ffi::OsString::new(),
                    _ => return Err("`..` after a directory that does not exist".to_owned()),
                };
                if !name.is_empty() {
                    rest.push(name);
                }
                if !existing.pop() {
                    return Err(e.to_string());
                }
            }
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// `path` relative to the first root that holds it (for display).
pub(crate) fn display_relative(roots: &[PathBuf], path: &Path) -> String {
    if let Ok(rel) = path.strip_prefix(&roots[0]) {
        let s = rel.display().to_string();
        return if s.is_empty() { ".".to_owned() } else { s };
    }
    path.display().to_string()
}
