//! From a command line to every command that would run.
//!
//! The line is parsed with `brush-parser` (a full bash grammar) and walked:
//!
//! | construct | what is judged |
//! | --- | --- |
//! | `a; b`, `a && b`, `a \|\| b`, `a & b`, newlines | each command |
//! | `a \| b` | each command; `b` gets `a`'s literal words as its stdin text |
//! | `( … )`, `{ …; }`, `f() { … }`, `if`/`for`/`while`/`until`/`case` | every command inside (functions as if called) |
//! | `$(…)`, `` `…` ``, `<(…)`, `>(…)` | every command inside |
//! | `cmd <<EOF … EOF`, `cmd <<< text` | `cmd`, with the text as its stdin (SQL, shell code) |
//! | `> file`, `>> file`, `&> file` | a write outside the workspace is dynamic |
//! | `x=rm; $x …` | the command with `x` replaced, and dynamic |
//!
//! Wrappers, shells' `-c` strings, `eval` and `find -exec` are unwrapped by
//! [`super::wrappers`], which parses nested code through [`Extractor::nested`].

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

use brush_parser::ParserOptions;
use brush_parser::ast::{
    AndOr, AndOrList, AssignmentValue, Command, CommandPrefixOrSuffixItem, CompoundCommand,
    CompoundList, ExtendedTestExpr, IoFileRedirectKind, IoFileRedirectTarget, IoRedirect, Pipeline,
    RedirectList, SimpleCommand,
};

use super::normalize::{self, Expanded};
use super::wrappers;

/// How deep `bash -c "bash -c '…'"`, `eval` and substitutions may nest.
const MAX_DEPTH: usize = 12;

/// Why a command needs approval whatever its program (rule `dynamic:<kind>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dynamic {
    /// The program name comes from a variable, a substitution or a glob/brace pattern.
    VariableProgram,
    /// `eval`, or a shell's `-c`, of something that is not a literal.
    Eval,
    /// Text piped into a shell or an interpreter.
    PipeToShell,
    /// An interpreter running code from its arguments (`python -c`, `perl -e`).
    InterpreterCode,
    /// A write through redirection outside the workspace (or to a computed path).
    RedirectOutsideWorkspace,
    /// A substitution inside an expansion that is not modelled (`${x:-$(…)}`).
    NestedExpansion,
}

impl Dynamic {
    /// The rule name.
    pub(crate) fn rule(self) -> &'static str {
        match self {
            Dynamic::VariableProgram => "dynamic:variable-program",
            Dynamic::Eval => "dynamic:eval",
            Dynamic::PipeToShell => "dynamic:pipe-to-shell",
            Dynamic::InterpreterCode => "dynamic:interpreter-code",
            Dynamic::RedirectOutsideWorkspace => "dynamic:redirect-outside-workspace",
            Dynamic::NestedExpansion => "dynamic:nested-expansion",
        }
    }

    /// Why.
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Dynamic::VariableProgram => {
                "the program name comes from a variable, substitution or pattern, so what runs is not known"
            }
            Dynamic::Eval => "it evaluates shell code that is not a literal",
            Dynamic::PipeToShell => "text is piped into a shell or interpreter",
            Dynamic::InterpreterCode => "an interpreter runs code given on its command line",
            Dynamic::RedirectOutsideWorkspace => {
                "it writes through a redirection outside the workspace"
            }
            Dynamic::NestedExpansion => "a substitution hides inside a parameter expansion",
        }
    }
}

/// One command that would run.
#[derive(Debug, Clone, Default)]
pub(crate) struct Invocation {
    /// Its words: values where literal, else as written.
    pub argv: Vec<String>,
    /// Which words are literal.
    pub literal: Vec<bool>,
    /// Reasons it needs approval at least.
    pub dynamic: Vec<Dynamic>,
    /// Text it reads on stdin that is known: here-documents, here-strings, piped literals.
    pub stdin: Vec<String>,
    /// Its stdin comes from a pipe.
    pub piped: bool,
    /// A wrapper (`sudo`, `env`, `bash -c`, …): judged only by rules naming it.
    pub transparent: bool,
}

impl Invocation {
    /// The program's name (basename) if literal.
    pub(crate) fn program(&self) -> Option<&str> {
        match (self.argv.first(), self.literal.first()) {
            (Some(p), Some(true)) => Some(normalize::program_name(p)),
            _ => None,
        }
    }

    /// The invocation that `argv[from..]` would be, inheriting stdin and redirections.
    pub(crate) fn inner(&self, from: usize) -> Invocation {
        Invocation {
            argv: self.argv.get(from..).unwrap_or_default().to_vec(),
            literal: self.literal.get(from..).unwrap_or_default().to_vec(),
            dynamic: self
                .dynamic
                .iter()
                .copied()
                .filter(|d| *d == Dynamic::RedirectOutsideWorkspace)
                .collect(),
            stdin: self.stdin.clone(),
            piped: self.piped,
            transparent: false,
        }
    }
}

/// Walks parsed shell code and collects [`Invocation`]s.
pub(crate) struct Extractor<'a> {
    /// Every command found, in the order it would start.
    pub out: Vec<Invocation>,
    vars: HashMap<String, String>,
    options: ParserOptions,
    workspace: Option<&'a Path>,
    depth: usize,
    pipe_in: Option<String>,
}

impl std::fmt::Debug for Extractor<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Extractor")
            .field("out", &self.out)
            .field("depth", &self.depth)
            .finish_non_exhaustive()
    }
}

impl<'a> Extractor<'a> {
    pub(crate) fn new(workspace: Option<&'a Path>) -> Self {
        Extractor {
            out: Vec::new(),
            vars: HashMap::new(),
            options: ParserOptions::default(),
            workspace,
            depth: 0,
            pipe_in: None,
        }
    }

    /// Parses and walks a whole command line.
    pub(crate) fn script(&mut self, source: &str) -> Result<(), String> {
        if self.depth > MAX_DEPTH {
            return Err(format!(
                "shell code nested more than {MAX_DEPTH} levels deep"
            ));
        }
        let mut parser = brush_parser::Parser::new(std::io::Cursor::new(source), &self.options);
        let program = parser.parse_program().map_err(|e| e.to_string())?;
        for list in &program.complete_commands {
            self.compound_list(list)?;
        }
        Ok(())
    }

    /// Walks code nested in the current command (substitution, `bash -c`, `eval`).
    pub(crate) fn nested(&mut self, source: &str) -> Result<(), String> {
        let saved_pipe = self.pipe_in.take();
        self.depth += 1;
        let result = self.script(source);
        self.depth -= 1;
        self.pipe_in = saved_pipe;
        result
    }

    /// Walks code that may not be code (text piped into a shell); failures are ignored.
    pub(crate) fn maybe_nested(&mut self, source: &str) {
        let before = self.out.len();
        if self.nested(source).is_err() {
            self.out.truncate(before);
        }
    }

    fn compound_list(&mut self, list: &CompoundList) -> Result<(), String> {
        for item in &list.0 {
            self.and_or(&item.0)?;
        }
        Ok(())
    }

    fn and_or(&mut self, list: &AndOrList) -> Result<(), String> {
        self.pipeline(&list.first)?;
        for next in &list.additional {
            match next {
                AndOr::And(p) | AndOr::Or(p) => self.pipeline(p)?,
            }
        }
        Ok(())
    }

    fn pipeline(&mut self, p: &Pipeline) -> Result<(), String> {
        if p.seq.len() == 1
            && let Some(c) = p.seq.first()
        {
            return self.command(c);
        }
        let saved = self.pipe_in.take();
        let mut upstream = String::new();
        for (i, cmd) in p.seq.iter().enumerate() {
            self.pipe_in = (i > 0).then(|| upstream.clone());
            let start = self.out.len();
            self.command(cmd)?;
            for inv in self.out.get(start..).unwrap_or_default() {
                for (w, lit) in inv.argv.iter().zip(&inv.literal).skip(1) {
                    if *lit {
                        upstream.push_str(w);
                        upstream.push('\n');
                    }
                }
                for s in &inv.stdin {
                    upstream.push_str(s);
                    upstream.push('\n');
                }
            }
        }
        self.pipe_in = saved;
        Ok(())
    }

    fn command(&mut self, cmd: &Command) -> Result<(), String> {
        match cmd {
            Command::Simple(sc) => self.simple(sc),
            Command::Compound(cc, redirects) => {
                let start = self.out.len();
                self.compound(cc)?;
                self.redirect_list(redirects.as_ref(), start)
            }
            Command::Function(f) => {
                let start = self.out.len();
                self.compound(&f.body.0)?;
                self.redirect_list(f.body.1.as_ref(), start)
            }
            Command::ExtendedTest(t, redirects) => {
                let start = self.out.len();
                self.test_expr(&t.expr)?;
                self.redirect_list(redirects.as_ref(), start)
            }
        }
    }

    fn test_expr(&mut self, e: &ExtendedTestExpr) -> Result<(), String> {
        match e {
            ExtendedTestExpr::And(a, b) | ExtendedTestExpr::Or(a, b) => {
                self.test_expr(a)?;
                self.test_expr(b)
            }
            ExtendedTestExpr::Not(a) | ExtendedTestExpr::Parenthesized(a) => self.test_expr(a),
            ExtendedTestExpr::UnaryTest(_, w) => self.scan(&w.value).map(|_| ()),
            ExtendedTestExpr::BinaryTest(_, a, b) => {
                self.scan(&a.value)?;
                self.scan(&b.value).map(|_| ())
            }
        }
    }

    fn compound(&mut self, cc: &CompoundCommand) -> Result<(), String> {
        match cc {
            CompoundCommand::Arithmetic(a) => self.scan(&a.expr.value).map(|_| ()),
            CompoundCommand::ArithmeticForClause(f) => {
                for e in [&f.initializer, &f.condition, &f.updater]
                    .into_iter()
                    .flatten()
                {
                    self.scan(&e.value)?;
                }
                self.compound_list(&f.body.list)
            }
            CompoundCommand::BraceGroup(b) => self.compound_list(&b.list),
            CompoundCommand::Subshell(s) => self.compound_list(&s.list),
            CompoundCommand::ForClause(f) => {
                for w in f.values.iter().flatten() {
                    self.scan(&w.value)?;
                }
                self.compound_list(&f.body.list)
            }
            CompoundCommand::CaseClause(c) => {
                self.scan(&c.value.value)?;
                for item in &c.cases {
                    for p in &item.patterns {
                        self.scan(&p.value)?;
                    }
                    if let Some(list) = &item.cmd {
                        self.compound_list(list)?;
                    }
                }
                Ok(())
            }
            CompoundCommand::IfClause(i) => {
                self.compound_list(&i.condition)?;
                self.compound_list(&i.then)?;
                for e in i.elses.iter().flatten() {
                    if let Some(c) = &e.condition {
                        self.compound_list(c)?;
                    }
                    self.compound_list(&e.body)?;
                }
                Ok(())
            }
            CompoundCommand::WhileClause(w) | CompoundCommand::UntilClause(w) => {
                self.compound_list(&w.0)?;
                self.compound_list(&w.1.list)
            }
            CompoundCommand::Coprocess(c) => self.command(&c.body),
        }
    }

    /// Expands a word and walks the commands of its substitutions.
    fn scan(&mut self, raw: &str) -> Result<Expanded, String> {
        let mut scripts = Vec::new();
        let e = normalize::expand(raw, &self.vars, &self.options, &mut scripts)?;
        for s in &scripts {
            self.nested(s)?;
        }
        Ok(e)
    }

    fn simple(&mut self, sc: &SimpleCommand) -> Result<(), String> {
        let mut inv = Invocation {
            piped: self.pipe_in.is_some(),
            ..Invocation::default()
        };
        if let Some(text) = &self.pipe_in
            && !text.is_empty()
        {
            inv.stdin.push(text.clone());
        }
        let mut assignments: Vec<(String, Expanded)> = Vec::new();
        let mut redirects: Vec<&IoRedirect> = Vec::new();
        let mut words: Vec<Expanded> = Vec::new();

        for item in sc.prefix.iter().flat_map(|p| p.0.iter()) {
            match item {
                CommandPrefixOrSuffixItem::AssignmentWord(a, _) => {
                    let name = match &a.name {
                        brush_parser::ast::AssignmentName::VariableName(n) => n.clone(),
                        brush_parser::ast::AssignmentName::ArrayElementName(n, _) => n.clone(),
                    };
                    match &a.value {
                        AssignmentValue::Scalar(w) => {
                            let e = self.scan(&w.value)?;
                            assignments.push((name, e));
                        }
                        AssignmentValue::Array(items) => {
                            for (k, v) in items {
                                if let Some(k) = k {
                                    self.scan(&k.value)?;
                                }
                                self.scan(&v.value)?;
                            }
                        }
                    }
                }
                other => self.item(other, &mut words, &mut redirects, &mut inv)?,
            }
        }
        if let Some(w) = &sc.word_or_name {
            words.push(self.scan(&w.value)?);
        }
        for item in sc.suffix.iter().flat_map(|s| s.0.iter()) {
            self.item(item, &mut words, &mut redirects, &mut inv)?;
        }

        for r in redirects {
            self.redirect(r, &mut inv)?;
        }

        if words.is_empty() {
            for (name, value) in assignments {
                if value.literal {
                    self.vars.insert(name, value.text);
                } else {
                    self.vars.remove(&name);
                }
            }
            if !inv.dynamic.is_empty() {
                // `> /etc/passwd` alone still writes.
                inv.argv.push(String::new());
                inv.literal.push(false);
                self.out.push(inv);
            }
            return Ok(());
        }

        for (i, w) in words.into_iter().enumerate() {
            if w.opaque && !inv.dynamic.contains(&Dynamic::NestedExpansion) {
                inv.dynamic.push(Dynamic::NestedExpansion);
            }
            if i == 0 && (!w.literal || w.from_variable || w.pattern) {
                inv.dynamic.push(Dynamic::VariableProgram);
            }
            if w.from_variable && w.text.contains(char::is_whitespace) {
                // An unquoted variable splits into words (`x="rm -rf /"; $x`).
                for part in w.text.split_whitespace() {
                    inv.argv.push(part.to_owned());
                    inv.literal.push(w.literal);
                }
            } else {
                inv.argv.push(w.text);
                inv.literal.push(w.literal);
            }
        }
        wrappers::unwrap(self, inv)
    }

    fn item<'i>(
        &mut self,
        item: &'i CommandPrefixOrSuffixItem,
        words: &mut Vec<Expanded>,
        redirects: &mut Vec<&'i IoRedirect>,
        _inv: &mut Invocation,
    ) -> Result<(), String> {
        match item {
            CommandPrefixOrSuffixItem::IoRedirect(r) => redirects.push(r),
            CommandPrefixOrSuffixItem::Word(w)
            | CommandPrefixOrSuffixItem::AssignmentWord(_, w) => {
                words.push(self.scan(&w.value)?);
            }
            CommandPrefixOrSuffixItem::ProcessSubstitution(_, sub) => {
                let saved = self.pipe_in.take();
                self.depth += 1;
                let r = self.compound_list(&sub.list);
                self.depth -= 1;
                self.pipe_in = saved;
                r?;
                words.push(Expanded {
                    text: "/dev/fd/63".to_owned(),
                    literal: false,
                    ..Expanded::default()
                });
            }
        }
        Ok(())
    }

    fn redirect_list(&mut self, list: Option<&RedirectList>, start: usize) -> Result<(), String> {
        let Some(list) = list else { return Ok(()) };
        let mut carrier = Invocation::default();
        for r in &list.0 {
            self.redirect(r, &mut carrier)?;
        }
        if !carrier.dynamic.is_empty() {
            let end = self.out.len();
            for inv in self.out.get_mut(start..end).into_iter().flatten() {
                inv.dynamic.extend(carrier.dynamic.iter().copied());
            }
        }
        Ok(())
    }

    fn redirect(&mut self, r: &IoRedirect, inv: &mut Invocation) -> Result<(), String> {
        match r {
            IoRedirect::File(_, kind, target) => match target {
                IoFileRedirectTarget::Filename(w) => {
                    let e = self.scan(&w.value)?;
                    let writes = matches!(
                        kind,
                        IoFileRedirectKind::Write
                            | IoFileRedirectKind::Append
                            | IoFileRedirectKind::Clobber
                            | IoFileRedirectKind::ReadAndWrite
                            | IoFileRedirectKind::DuplicateOutput
                    );
                    if writes && self.outside(&e) {
                        inv.dynamic.push(Dynamic::RedirectOutsideWorkspace);
                    }
                }
                IoFileRedirectTarget::Duplicate(w) => {
                    let e = self.scan(&w.value)?;
                    let fd_like = e.literal
                        && (e.text == "-"
                            || e.text
                                .trim_end_matches('-')
                                .chars()
                                .all(|c| c.is_ascii_digit()));
                    if !fd_like
                        && matches!(kind, IoFileRedirectKind::DuplicateOutput)
                        && self.outside(&e)
                    {
                        inv.dynamic.push(Dynamic::RedirectOutsideWorkspace);
                    }
                }
                IoFileRedirectTarget::Fd(_) => {}
                IoFileRedirectTarget::ProcessSubstitution(_, sub) => {
                    let saved = self.pipe_in.take();
                    self.depth += 1;
                    let result = self.compound_list(&sub.list);
                    self.depth -= 1;
                    self.pipe_in = saved;
                    result?;
                }
            },
            IoRedirect::HereDocument(_, doc) => {
                let text = if doc.requires_expansion {
                    let mut scripts = Vec::new();
                    let e = normalize::expand_heredoc(
                        &doc.doc.value,
                        &self.vars,
                        &self.options,
                        &mut scripts,
                    )?;
                    for s in &scripts {
                        self.nested(s)?;
                    }
                    e.text
                } else {
                    doc.doc.value.clone()
                };
                inv.stdin.push(text);
            }
            IoRedirect::HereString(_, w) => {
                let e = self.scan(&w.value)?;
                inv.stdin.push(e.text);
            }
            IoRedirect::OutputAndError(w, _) => {
                let e = self.scan(&w.value)?;
                if self.outside(&e) {
                    inv.dynamic.push(Dynamic::RedirectOutsideWorkspace);
                }
            }
        }
        Ok(())
    }

    /// A write target outside the workspace (a computed target counts as outside).
    fn outside(&self, target: &Expanded) -> bool {
        if !target.literal {
            return true;
        }
        outside_workspace(&target.text, self.workspace)
    }
}

/// Whether writing to `path` leaves the workspace (lexically; `~` is outside).
pub(crate) fn outside_workspace(path: &str, workspace: Option<&Path>) -> bool {
    const SAFE: [&str; 5] = [
        "/dev/null",
        "/dev/stdout",
        "/dev/stderr",
        "/dev/tty",
        "/dev/zero",
    ];
    if SAFE.contains(&path) || path.starts_with("/dev/fd/") {
        return false;
    }
    if path.is_empty() || path.starts_with('~') {
        return true;
    }
    let p = Path::new(path);
    let base = workspace.map(normalize_path);
    let full = match (&base, p.is_absolute()) {
        (_, true) => normalize_path(p),
        (Some(b), false) => normalize_path(&b.join(p)),
        (None, false) => {
            // Relative to an unknown workspace: outside only if `..` escapes it.
            let mut depth: i64 = 0;
            for c in p.components() {
                match c {
                    Component::ParentDir => depth -= 1,
                    Component::Normal(_) => depth += 1,
                    _ => {}
                }
                if depth < 0 {
                    return true;
                }
            }
            return false;
        }
    };
    match base {
        Some(b) => !full.starts_with(&b),
        None => true,
    }
}

fn normalize_path(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other.as_os_str()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn argvs(line: &str) -> Vec<Vec<String>> {
        let mut ex = Extractor::new(None);
        ex.script(line).unwrap();
        ex.out.into_iter().map(|i| i.argv).collect()
    }

    #[test]
    fn every_construct_yields_its_commands() {
        let found = argvs(
            "a 1 | b && { c; } || (d) & e\nif f; then g; fi; for i in $(h); do j; done; k() { l; }; m <(n) `o`",
        );
        let names: Vec<&str> = found.iter().map(|a| a[0].as_str()).collect();
        assert_eq!(
            names,
            [
                "a", "b", "c", "d", "e", "f", "g", "h", "j", "l", "n", "o", "m"
            ]
        );
    }

    #[test]
    fn heredocs_become_stdin() {
        let mut ex = Extractor::new(None);
        ex.script("psql <<EOF\nDROP TABLE t;\nEOF\n").unwrap();
        assert_eq!(ex.out[0].stdin, vec!["DROP TABLE t;\n".to_owned()]);
    }

    #[test]
    fn workspace_boundaries() {
        let ws = Path::new("/work/ws");
        assert!(!outside_workspace("out.txt", Some(ws)));
        assert!(!outside_workspace("/work/ws/a/b", Some(ws)));
        assert!(outside_workspace("../x", Some(ws)));
        assert!(outside_workspace("/etc/passwd", Some(ws)));
        assert!(outside_workspace("/etc/passwd", None));
        assert!(!outside_workspace("a/../b", None));
        assert!(outside_workspace("a/../../b", None));
        assert!(!outside_workspace("/dev/null", None));
        assert!(outside_workspace("~/.bashrc", None));
    }

    #[test]
    fn bad_syntax_is_an_error() {
        assert!(Extractor::new(None).script("ls \"unterminated").is_err());
        assert!(Extractor::new(None).script("if then fi").is_err());
    }
}
