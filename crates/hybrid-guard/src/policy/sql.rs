//! SQL reaching a database client, matched by meaning.
//!
//! Text is SQL only when a client reads it: the arguments of `psql`,
//! `mysql`, `mariadb`, `sqlite3`, `duckdb`, `sqlcmd`, `clickhouse-client`, …
//! (which covers `-c`/`-e`/`--execute=`/positional statements) and what they
//! read on stdin (here-documents, here-strings, literals piped in).
//! `grep "DROP TABLE" file` is not SQL.
//!
//! | text | tokens |
//! | --- | --- |
//! | `drop   table users` | `DROP TABLE USERS` |
//! | `DROP/*x*/TABLE t;` | `DROP TABLE T ;` |
//! | `DROP -- note`⏎`TABLE t` | `DROP TABLE T` |
//! | `SELECT 'drop table'` | `SELECT` (string literals are skipped) |
//!
//! A SQL rule (`DROP TABLE`) matches when its tokens occur consecutively.

/// Programs that send their input to a database as SQL.
pub(crate) fn is_client(program: &str) -> bool {
    matches!(
        program,
        "psql"
            | "mysql"
            | "mariadb"
            | "sqlite3"
            | "sqlite"
            | "duckdb"
            | "sqlcmd"
            | "clickhouse-client"
            | "clickhouse"
            | "cockroach"
            | "isql"
            | "bq"
            | "snowsql"
            | "sqlplus"
            | "usql"
            | "pgcli"
            | "mycli"
            | "litecli"
    )
}

/// The text's tokens under each dialect's reading (standard SQL; MySQL's `#`
/// comments and backslash escapes), so that neither can hide a statement.
pub(crate) fn readings(text: &str) -> [Vec<String>; 2] {
    [tokens(text, false), tokens(text, true)]
}

/// SQL text as upper-case word and punctuation tokens, without comments or string literals.
pub(crate) fn tokens(text: &str, mysql: bool) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '-' && chars.get(i + 1) == Some(&'-') || (mysql && c == '#') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && chars.get(i + 1) == Some(&'*') {
            i += 2;
            while i < chars.len() && !(chars[i] == '*' && chars.get(i + 1) == Some(&'/')) {
                i += 1;
            }
            i += 2;
        } else if c == '\'' {
            i += 1;
            while i < chars.len() {
                if chars[i] == '\'' {
                    if chars.get(i + 1) == Some(&'\'') {
                        i += 2;
                        continue;
                    }
                    break;
                }
                if mysql && chars[i] == '\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
        } else if c == '"' || c == '`' {
            // Quoted identifier: a word.
            let close = c;
            let start = i + 1;
            i += 1;
            while i < chars.len() && chars[i] != close {
                i += 1;
            }
            let word: String = chars[start..i.min(chars.len())].iter().collect();
            out.push(word.to_uppercase());
            i += 1;
        } else if c.is_alphanumeric() || c == '_' || c == '$' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_alphanumeric() || matches!(chars[i], '_' | '$' | '.'))
            {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            out.push(word.to_uppercase());
        } else {
            out.push(c.to_string());
            i += 1;
        }
    }
    out
}

/// Whether `needle` occurs as consecutive tokens of `haystack`.
pub(crate) fn contains(haystack: &[String], needle: &[String]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// SQL statement keywords that make an upper-case rule a SQL rule.
pub(crate) const KEYWORDS: [&str; 14] = [
    "DROP", "DELETE", "TRUNCATE", "ALTER", "UPDATE", "INSERT", "GRANT", "REVOKE", "CREATE",
    "SELECT", "MERGE", "REPLACE", "COPY", "VACUUM",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn has(text: &str, rule: &str) -> bool {
        let needle = tokens(rule, false);
        readings(text).iter().any(|r| contains(r, &needle))
    }

    #[test]
    fn case_whitespace_and_comments_do_not_matter() {
        assert!(has("drop   table users", "DROP TABLE"));
        assert!(has("DROP/*x*/TABLE t;", "DROP TABLE"));
        assert!(has("DROP -- c\n TABLE t", "DROP TABLE"));
        assert!(has("select 1;\nDelete\tFrom t", "DELETE FROM"));
        assert!(has("\"x\";drop table x", "DROP TABLE"));
        assert!(has("DROP #x\nTABLE t", "DROP TABLE"));
        assert!(has("SELECT 1 # 2; DROP TABLE t", "DROP TABLE"));
        assert!(has("SELECT 'a\\'; DROP TABLE t; --'", "DROP TABLE"));
    }

    #[test]
    fn strings_and_other_words_do_not_match() {
        assert!(!has("SELECT 'drop table'", "DROP TABLE"));
        assert!(!has("DROPTABLE", "DROP TABLE"));
        assert!(!has("DROP INDEX t", "DROP TABLE"));
        assert!(!has("anything", ""));
    }
}
