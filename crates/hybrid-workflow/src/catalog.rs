//! Finding workflows: the built-ins plus every `*.yaml`/`*.yml` in a
//! directory (by convention `<cwd>/workflows/`). A file whose workflow has a
//! built-in's name overrides the built-in, and its entry says so.

use std::path::{Path, PathBuf};

use crate::builtin::BUILTINS;
use crate::error::WorkflowError;
use crate::load::load_file;
use crate::validate::ValidateOptions;
use crate::workflow::{Workflow, WorkflowSource};

/// One workflow the catalog knows, loaded or not.
#[derive(Debug, Clone)]
pub struct CatalogEntry {
    /// The workflow's name (for a file that fails to load: its stem).
    pub name: String,
    /// Where it comes from.
    pub source: WorkflowSource,
    /// `true` when this file replaces the built-in of the same name.
    pub overrides_builtin: bool,
    /// The workflow, or why it could not be loaded.
    pub workflow: Result<Workflow, WorkflowError>,
}

impl CatalogEntry {
    /// `built-in`, the file's path, or `PATH (overrides the built-in)`.
    pub fn source_label(&self) -> String {
        if self.overrides_builtin {
            format!("{} (overrides the built-in)", self.source)
        } else {
            self.source.to_string()
        }
    }
}

/// Built-ins and a directory's workflow files.
#[derive(Debug, Clone)]
pub struct Catalog {
    entries: Vec<CatalogEntry>,
    options: ValidateOptions,
}

impl Catalog {
    /// Only the built-ins.
    pub fn builtins(options: &ValidateOptions) -> Self {
        let entries = BUILTINS
            .iter()
            .map(|b| CatalogEntry {
                name: b.name.to_owned(),
                source: WorkflowSource::Builtin,
                overrides_builtin: false,
                workflow: b.load(options),
            })
            .collect();
        Catalog {
            entries,
            options: options.clone(),
        }
    }

    /// The built-ins plus the `*.yaml`/`*.yml` files directly in `dir` (a
    /// missing directory adds nothing). Files are read in name order; a file
    /// that fails to load is listed with its error.
    pub fn discover(dir: &Path, options: &ValidateOptions) -> Result<Self, WorkflowError> {
        let mut catalog = Catalog::builtins(options);
        let read = match std::fs::read_dir(dir) {
            Ok(read) => read,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(catalog),
            Err(e) => {
                return Err(WorkflowError::Io {
                    path: dir.to_owned(),
                    kind: e.kind(),
                    message: e.to_string(),
                });
            }
        };
        let mut files: Vec<PathBuf> = read
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.is_file()
                    && p.extension()
                        .and_then(|x| x.to_str())
                        .is_some_and(|x| x == "yaml" || x == "yml")
            })
            .collect();
        files.sort();
        for path in files {
            let workflow = load_file(&path, options);
            let name = match &workflow {
                Ok(w) => w.name().to_owned(),
                Err(_) => path
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            };
            catalog.add(CatalogEntry {
                name,
                source: WorkflowSource::File(path),
                overrides_builtin: false,
                workflow,
            });
        }
        Ok(catalog)
    }

    fn add(&mut self, mut entry: CatalogEntry) {
        if let Some(pos) = self.entries.iter().position(|e| e.name == entry.name) {
            let replaced = &self.entries[pos];
            entry.overrides_builtin =
                replaced.source == WorkflowSource::Builtin || replaced.overrides_builtin;
            self.entries[pos] = entry;
        } else {
            self.entries.push(entry);
        }
    }

    /// Every entry: built-ins first (or the files overriding them), then files.
    pub fn entries(&self) -> &[CatalogEntry] {
        &self.entries
    }

    /// The entry with this name.
    pub fn get(&self, name: &str) -> Option<&CatalogEntry> {
        self.entries.iter().find(|e| e.name == name)
    }

    /// Resolves `NAME|FILE` as `hybrid run --workflow` does: an existing
    /// path (or anything ending in `.yaml`/`.yml` or containing `/`) is loaded
    /// as a file; otherwise the name is looked up in the catalog.
    pub fn resolve(&self, name_or_file: &str) -> Result<Workflow, WorkflowError> {
        let path = Path::new(name_or_file);
        let looks_like_file = name_or_file.ends_with(".yaml")
            || name_or_file.ends_with(".yml")
            || name_or_file.contains('/')
            || name_or_file.contains(std::path::MAIN_SEPARATOR);
        if looks_like_file || (path.is_file() && self.get(name_or_file).is_none()) {
            return load_file(path, &self.options);
        }
        match self.get(name_or_file) {
            Some(entry) => entry.workflow.clone(),
            None => Err(WorkflowError::NotFound {
                name: name_or_file.to_owned(),
                known: self
                    .entries
                    .iter()
                    .map(|e| e.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
    }
}
