//! Words as the shell would pass them: quotes removed, backslashes and
//! `$'…'` decoded, known literal variables substituted, and program names
//! reduced to what they run.
//!
//! | written | value | literal? |
//! | --- | --- | --- |
//! | `rm`, `"rm"`, `'rm'`, `r\m`, `$'\x72m'` | `rm` | yes |
//! | `/bin/rm`, `./rm` | program name `rm` | yes |
//! | `$x` where `x=rm` was set literally before | `rm` | resolved from a variable |
//! | `$x`, `${x:-y}`, `$(cmd)`, `` `cmd` ``, `$((1+1))` | as written | no |
//!
//! Command substitutions found in a word are returned so that the commands in
//! them are judged too.

use std::collections::HashMap;

use brush_parser::ParserOptions;
use brush_parser::word::{self, Parameter, ParameterExpr, WordPiece, WordPieceWithSource};

/// One word after expansion of what can be known without running anything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Expanded {
    /// The value (when literal) or the word as written (when not).
    pub text: String,
    /// The value is exactly what the shell would pass.
    pub literal: bool,
    /// A variable was replaced by the literal value it was last given.
    pub from_variable: bool,
    /// A substitution hides inside an expansion we do not model (`${x:-$(cmd)}`).
    pub opaque: bool,
    /// Unquoted glob or brace pattern (`r?`, `/bin/r*`, `{rm,-rf,/}`): expands to other words.
    pub pattern: bool,
}

/// Expands `raw`; pushes the scripts of its command substitutions onto `scripts`.
pub(crate) fn expand(
    raw: &str,
    vars: &HashMap<String, String>,
    options: &ParserOptions,
    scripts: &mut Vec<String>,
) -> Result<Expanded, String> {
    if !raw.contains(['\'', '"', '\\', '$', '`', '~']) {
        return Ok(Expanded {
            text: raw.to_owned(),
            literal: true,
            pattern: is_pattern(raw),
            ..Expanded::default()
        });
    }
    let pieces = word::parse(raw, options).map_err(|e| format!("word `{raw}`: {e}"))?;
    let mut out = Expanded {
        literal: true,
        ..Expanded::default()
    };
    pieces_into(raw, &pieces, vars, scripts, &mut out, false);
    Ok(out)
}

/// Scans a here-document body (expanded form) for substitutions; returns its text.
pub(crate) fn expand_heredoc(
    body: &str,
    vars: &HashMap<String, String>,
    options: &ParserOptions,
    scripts: &mut Vec<String>,
) -> Result<Expanded, String> {
    if !body.contains(['\\', '$', '`']) {
        return Ok(Expanded {
            text: body.to_owned(),
            literal: true,
            ..Expanded::default()
        });
    }
    let pieces = word::parse_heredoc(body, options).map_err(|e| format!("here-document: {e}"))?;
    let mut out = Expanded {
        literal: true,
        ..Expanded::default()
    };
    pieces_into(body, &pieces, vars, scripts, &mut out, true);
    Ok(out)
}

fn pieces_into(
    raw: &str,
    pieces: &[WordPieceWithSource],
    vars: &HashMap<String, String>,
    scripts: &mut Vec<String>,
    out: &mut Expanded,
    quoted: bool,
) {
    for p in pieces {
        let source = raw.get(p.start_index..p.end_index).unwrap_or_default();
        match &p.piece {
            WordPiece::Text(s) => {
                out.pattern |= !quoted && is_pattern(s);
                out.text.push_str(s);
            }
            WordPiece::SingleQuotedText(s) => out.text.push_str(s),
            WordPiece::AnsiCQuotedText(s) => out.text.push_str(&decode_ansi_c(s)),
            WordPiece::DoubleQuotedSequence(inner)
            | WordPiece::GettextDoubleQuotedSequence(inner) => {
                pieces_into(raw, inner, vars, scripts, out, true);
            }
            WordPiece::TildeExpansion(_) => out.text.push('~'),
            WordPiece::EscapeSequence(s) => {
                let mut chars = s.chars();
                chars.next();
                let rest: String = chars.collect();
                if rest != "\n" {
                    out.text.push_str(&rest);
                }
            }
            WordPiece::ParameterExpansion(ParameterExpr::Parameter {
                parameter: Parameter::Named(name),
                indirect: false,
            }) if vars.contains_key(name) => {
                out.text.push_str(vars.get(name).map_or("", String::as_str));
                out.from_variable = true;
            }
            WordPiece::ParameterExpansion(_) | WordPiece::ArithmeticExpression(_) => {
                if source.contains("$(") || source.contains('`') || source.contains("<(") {
                    out.opaque = true;
                }
                out.literal = false;
                out.text.push_str(source);
            }
            WordPiece::CommandSubstitution(s) => {
                scripts.push(s.clone());
                out.literal = false;
                out.text.push_str(source);
            }
            WordPiece::BackquotedCommandSubstitution(s) => {
                scripts.push(unescape_backquoted(s));
                out.literal = false;
                out.text.push_str(source);
            }
        }
    }
}

/// Unquoted text the shell would expand as a glob or a brace list.
fn is_pattern(text: &str) -> bool {
    if text.contains(['*', '?', '[']) {
        return true;
    }
    match (text.find('{'), text.rfind('}')) {
        (Some(open), Some(close)) if open < close => {
            let inner = &text[open + 1..close];
            inner.contains(',') || inner.contains("..")
        }
        _ => false,
    }
}

/// Inside backquotes, `\\`, `` \` `` and `\$` stand for the character.
fn unescape_backquoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\'
            && let Some(&n) = chars.peek()
            && matches!(n, '\\' | '`' | '$')
        {
            out.push(n);
            chars.next();
            continue;
        }
        out.push(c);
    }
    out
}

/// Decodes the body of `$'…'`.
pub(crate) fn decode_ansi_c(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        if c != '\\' || i >= chars.len() {
            out.push(c);
            continue;
        }
        let e = chars[i];
        i += 1;
        match e {
            'n' => out.push('\n'),
            't' => out.push('\t'),
            'r' => out.push('\r'),
            'a' => out.push('\u{7}'),
            'b' => out.push('\u{8}'),
            'e' | 'E' => out.push('\u{1b}'),
            'f' => out.push('\u{c}'),
            'v' => out.push('\u{b}'),
            'x' | 'u' | 'U' => {
                let max = match e {
                    'x' => 2,
                    'u' => 4,
                    _ => 8,
                };
                let start = i;
                while i < chars.len() && i - start < max && chars[i].is_ascii_hexdigit() {
                    i += 1;
                }
                let digits: String = chars[start..i].iter().collect();
                match u32::from_str_radix(&digits, 16)
                    .ok()
                    .and_then(char::from_u32)
                {
                    Some(ch) if !digits.is_empty() => out.push(ch),
                    _ => {
                        out.push('\\');
                        out.push(e);
                    }
                }
            }
            '0'..='7' => {
                let start = i - 1;
                while i < chars.len() && i - start < 3 && ('0'..='7').contains(&chars[i]) {
                    i += 1;
                }
                let digits: String = chars[start..i].iter().collect();
                if let Some(ch) = u32::from_str_radix(&digits, 8)
                    .ok()
                    .and_then(char::from_u32)
                {
                    out.push(ch);
                }
            }
            'c' if i < chars.len() => {
                let ch = chars[i];
                i += 1;
                out.push(char::from_u32(u32::from(ch) & 0x1f).unwrap_or(ch));
            }
            other => out.push(other),
        }
    }
    out
}

/// The name a program word runs: the last path component (`/bin/rm` → `rm`).
pub(crate) fn program_name(text: &str) -> &str {
    let trimmed = text.trim_end_matches('/');
    match trimmed.rsplit('/').next() {
        Some(name) if !name.is_empty() => name,
        _ => text,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn lit(raw: &str) -> Expanded {
        let vars = HashMap::from([("x".to_owned(), "rm".to_owned())]);
        let mut scripts = Vec::new();
        expand(raw, &vars, &ParserOptions::default(), &mut scripts).unwrap()
    }

    #[test]
    fn quotes_and_escapes_are_removed() {
        for raw in [
            "rm",
            "\"rm\"",
            "'rm'",
            "r\\m",
            "$'rm'",
            "$'\\x72m'",
            "$'\\162m'",
            "r\"\"m",
        ] {
            let e = lit(raw);
            assert_eq!(e.text, "rm", "{raw}");
            assert!(e.literal, "{raw}");
        }
    }

    #[test]
    fn variables_and_substitutions_are_not_literal() {
        assert!(!lit("$y").literal);
        assert!(!lit("${y:-rm}").literal);
        let x = lit("$x");
        assert!(x.literal && x.from_variable);
        assert_eq!(x.text, "rm");
        let mut scripts = Vec::new();
        let e = expand(
            "a$(rm -rf /)`ls`",
            &HashMap::new(),
            &ParserOptions::default(),
            &mut scripts,
        )
        .unwrap();
        assert!(!e.literal);
        assert_eq!(scripts, vec!["rm -rf /".to_owned(), "ls".to_owned()]);
        assert!(lit("${y:-$(rm -rf /)}").opaque);
    }

    #[test]
    fn patterns_are_flagged() {
        for raw in ["r?", "/bin/r*", "{rm,-rf,/}", "x{1..3}", "[r]m"] {
            assert!(lit(raw).pattern, "{raw}");
        }
        for raw in ["rm", "'r?'", "\"{a,b}\"", "{}", "a{b}"] {
            assert!(!lit(raw).pattern, "{raw}");
        }
    }

    #[test]
    fn program_names_drop_paths() {
        assert_eq!(program_name("/bin/rm"), "rm");
        assert_eq!(program_name("./rm"), "rm");
        assert_eq!(program_name("rm"), "rm");
        assert_eq!(program_name("/usr/bin/"), "bin");
    }

    #[test]
    fn ansi_c_decodes() {
        assert_eq!(decode_ansi_c("a\\nb\\t\\'"), "a\nb\t'");
        assert_eq!(decode_ansi_c("\\u0072m"), "rm");
    }
}
