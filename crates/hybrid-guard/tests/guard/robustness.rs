//! Arbitrary input never panics and always gets a decision with a rule.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use hybrid_guard::CommandPolicy;

const PIECES: [&str; 40] = [
    "rm",
    " ",
    "-rf",
    "/",
    "'",
    "\"",
    "\\",
    "$",
    "(",
    ")",
    "`",
    "{",
    "}",
    ";",
    "&",
    "|",
    "<",
    ">",
    "<<",
    "EOF",
    "\n",
    "$(",
    "${",
    "<(",
    "bash -c ",
    "sudo ",
    "xargs ",
    "find -exec ",
    "psql -c ",
    "DROP TABLE",
    "=",
    "x",
    "*",
    "?",
    "[",
    "]",
    "!",
    "#",
    "$'",
    "eval ",
];

#[test]
fn random_lines_never_panic() {
    let policy = CommandPolicy::seed_default();
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    for _ in 0..5_000 {
        let mut line = String::new();
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let len = (state % 24) as usize;
        for _ in 0..len {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            line.push_str(PIECES[(state % PIECES.len() as u64) as usize]);
        }
        let d = policy.check(&line);
        assert!(!d.rule.is_empty(), "{line:?}");
        assert!(d.commands.iter().all(|c| !c.rule.is_empty()), "{line:?}");
    }
}
