//! Commands that run other commands.
//!
//! | program | what else runs |
//! | --- | --- |
//! | `sudo`, `doas`, `env`, `nice`, `nohup`, `timeout`, `command`, `exec`, `setsid`, `stdbuf`, `ionice`, `time`, `chroot` | the command after their options |
//! | `xargs` | its command (default `echo`) with unknown extra arguments |
//! | `busybox` | the applet named by its first argument |
//! | `find … -exec/-execdir/-ok/-okdir … ;` | `find`, and each `-exec` command |
//! | `bash`/`sh`/`zsh`/… `-c STRING` | the commands in STRING (parsed again); non-literal STRING is dynamic |
//! | `bash`/`sh`/… reading stdin | a here-document or here-string is parsed; piped text is dynamic |
//! | `eval WORDS` | the commands in WORDS if literal, else dynamic |
//! | `su -c CMD`, `runuser -c CMD`, `script -c CMD` | themselves, and the commands in CMD |
//! | `python -c`, `perl -e`, `node -e`, …, or code on stdin | dynamic (interpreter code; piped: pipe to shell) |
//!
//! A wrapper is *transparent*: it is judged only by rules that name it
//! (`sudo` on the seed's deny list), never by the default.

use super::parse::{Dynamic, Extractor, Invocation};

const SHELLS: [&str; 9] = [
    "sh",
    "bash",
    "zsh",
    "dash",
    "ksh",
    "mksh",
    "ash",
    "fish",
    "busybox-sh",
];

/// Records `inv` and whatever it runs.
pub(crate) fn unwrap(ex: &mut Extractor<'_>, mut inv: Invocation) -> Result<(), String> {
    let Some(program) = inv.program().map(str::to_owned) else {
        ex.out.push(inv);
        return Ok(());
    };
    let args: Vec<&str> = inv.argv.iter().skip(1).map(String::as_str).collect();
    let env_split = program == "env"
        && args
            .iter()
            .any(|a| *a == "-S" || a.starts_with("--split-string"));
    if let Some(skip) = wrapped_command_start(&program, &args).filter(|_| !env_split) {
        inv.transparent = true;
        let inner = inv.inner(skip + 1);
        ex.out.push(inv);
        if !inner.argv.is_empty() {
            unwrap(ex, inner)?;
        }
        return Ok(());
    }
    match program.as_str() {
        "env" => {
            // `env -S "cmd args"` splits a string.
            if let Some(pos) = args
                .iter()
                .position(|a| *a == "-S" || a.starts_with("--split-string"))
            {
                let script = match args[pos].split_once('=') {
                    Some((_, v)) => Some(v.to_owned()),
                    None => args.get(pos + 1).map(|s| (*s).to_owned()),
                };
                inv.transparent = true;
                ex.out.push(inv);
                if let Some(s) = script {
                    ex.nested(&s)?;
                }
                return Ok(());
            }
            ex.out.push(inv);
            Ok(())
        }
        "xargs" => {
            let start = xargs_command_start(&args);
            inv.transparent = true;
            let inner = match start {
                Some(i) => inv.inner(i + 1),
                None => Invocation {
                    argv: vec!["echo".to_owned()],
                    literal: vec![true],
                    ..Invocation::default()
                },
            };
            ex.out.push(inv);
            unwrap(ex, inner)
        }
        "find" => {
            let mut execs = Vec::new();
            let mut i = 1;
            while i < inv.argv.len() {
                if matches!(
                    inv.argv[i].as_str(),
                    "-exec" | "-execdir" | "-ok" | "-okdir"
                ) {
                    let start = i + 1;
                    let mut end = start;
                    while end < inv.argv.len() && !matches!(inv.argv[end].as_str(), ";" | "+") {
                        end += 1;
                    }
                    let mut inner = inv.inner(start);
                    inner.argv.truncate(end - start);
                    inner.literal.truncate(end - start);
                    inner.stdin.clear();
                    inner.piped = false;
                    execs.push(inner);
                    i = end;
                }
                i += 1;
            }
            ex.out.push(inv);
            for inner in execs.into_iter().filter(|i| !i.argv.is_empty()) {
                unwrap(ex, inner)?;
            }
            Ok(())
        }
        "busybox" | "toybox" => {
            inv.transparent = true;
            let inner = inv.inner(1);
            ex.out.push(inv);
            if inner.argv.is_empty() {
                return Ok(());
            }
            unwrap(ex, inner)
        }
        "eval" => {
            inv.transparent = true;
            let all_literal = inv.literal.iter().skip(1).all(|l| *l);
            let code = inv.argv.get(1..).unwrap_or_default().join(" ");
            if all_literal {
                ex.out.push(inv);
                ex.nested(&code)
            } else {
                inv.dynamic.push(Dynamic::Eval);
                ex.out.push(inv);
                Ok(())
            }
        }
        p if SHELLS.contains(&p) => shell(ex, inv),
        "su" | "runuser" | "script" => {
            // `su -c CMD`, `runuser -c CMD`, `script -c CMD`: CMD goes to a shell.
            let code = option_value(&inv, "-c", "--command");
            match code {
                Some((idx, text)) if inv.literal.get(idx).copied().unwrap_or(false) => {
                    ex.out.push(inv);
                    ex.nested(&text)
                }
                Some(_) => {
                    inv.dynamic.push(Dynamic::Eval);
                    ex.out.push(inv);
                    Ok(())
                }
                None => {
                    ex.out.push(inv);
                    Ok(())
                }
            }
        }
        p if interpreter_code_flag(p, &args) => {
            inv.dynamic.push(Dynamic::InterpreterCode);
            ex.out.push(inv);
            Ok(())
        }
        p if is_interpreter(p)
            && (inv.piped || !inv.stdin.is_empty())
            && args.iter().all(|a| a.starts_with('-')) =>
        {
            // No script file: the code is read from stdin.
            inv.dynamic.push(if inv.piped {
                Dynamic::PipeToShell
            } else {
                Dynamic::InterpreterCode
            });
            ex.out.push(inv);
            Ok(())
        }
        _ => {
            ex.out.push(inv);
            Ok(())
        }
    }
}

/// `sh -c STRING`, `bash -lc STRING`, `bash script`, `… | sh`, `sh <<EOF`.
fn shell(ex: &mut Extractor<'_>, mut inv: Invocation) -> Result<(), String> {
    let mut has_c = false;
    let mut reads_stdin = false;
    let mut operand = None;
    let mut i = 1;
    while i < inv.argv.len() {
        let a = inv.argv[i].as_str();
        if a == "--" || a == "-" {
            operand = (i + 1 < inv.argv.len()).then_some(i + 1);
            break;
        }
        if matches!(a, "-o" | "+o" | "-O" | "+O" | "--rcfile" | "--init-file") {
            i += 2;
            continue;
        }
        if a.starts_with("--") {
            i += 1;
            continue;
        }
        if (a.starts_with('-') || a.starts_with('+')) && a.len() > 1 {
            if a.starts_with('-') && a.contains('c') {
                has_c = true;
            }
            if a.starts_with('-') && a.contains('s') {
                // `sh -s ARGS`: the script is stdin; ARGS are its parameters.
                reads_stdin = true;
                break;
            }
            i += 1;
            continue;
        }
        operand = Some(i);
        break;
    }
    if has_c {
        inv.transparent = true;
        match operand {
            Some(idx) if inv.literal.get(idx).copied().unwrap_or(false) => {
                let code = inv.argv[idx].clone();
                ex.out.push(inv);
                ex.nested(&code)
            }
            Some(_) => {
                inv.dynamic.push(Dynamic::Eval);
                ex.out.push(inv);
                Ok(())
            }
            None => {
                ex.out.push(inv);
                Ok(())
            }
        }
    } else if operand.is_some() && !reads_stdin {
        // Runs a script file: judged as itself.
        ex.out.push(inv);
        Ok(())
    } else {
        inv.transparent = true;
        let texts = std::mem::take(&mut inv.stdin);
        let piped = inv.piped;
        if piped {
            inv.dynamic.push(Dynamic::PipeToShell);
        }
        ex.out.push(inv);
        for (n, t) in texts.iter().enumerate() {
            // The last stdin text is the piped one when piped; it may not be code.
            if piped && n + 1 == texts.len() {
                ex.maybe_nested(t);
            } else {
                ex.nested(t)?;
            }
        }
        Ok(())
    }
}

/// The value of `-c VALUE`, `-cVALUE`, `--command VALUE` or `--command=VALUE`, with its word index.
fn option_value(inv: &Invocation, short: &str, long: &str) -> Option<(usize, String)> {
    let mut i = 1;
    while i < inv.argv.len() {
        let a = inv.argv[i].as_str();
        if a == short || a == long {
            return inv.argv.get(i + 1).map(|v| (i + 1, v.clone()));
        }
        if let Some(v) = a.strip_prefix(&format!("{long}=")) {
            return Some((i, v.to_owned()));
        }
        // A cluster of letters ending in the option (`-qc CMD`) or followed by the value (`-cCMD`).
        let letter = short.trim_start_matches('-');
        if let Some(cluster) = a.strip_prefix('-').filter(|c| !c.starts_with('-'))
            && let Some(pos) = cluster.find(letter)
            && cluster[..pos].chars().all(|c| c.is_ascii_alphabetic())
        {
            let rest = &cluster[pos + letter.len()..];
            if rest.is_empty() {
                return inv.argv.get(i + 1).map(|v| (i + 1, v.clone()));
            }
            return Some((i, rest.to_owned()));
        }
        i += 1;
    }
    None
}

/// For a plain wrapper, the index in `args` (after the program) where the wrapped command starts.
fn wrapped_command_start(program: &str, args: &[&str]) -> Option<usize> {
    // (short options that take a value, long options that take a value, leading operands before the command)
    let (short_val, long_val, operands): (&str, &[&str], usize) = match program {
        "sudo" | "doas" => (
            "ugCDhprtTUc",
            &[
                "--user",
                "--group",
                "--close-from",
                "--chdir",
                "--host",
                "--prompt",
                "--role",
                "--type",
                "--command-timeout",
                "--other-user",
                "--login-class",
            ],
            0,
        ),
        "env" => ("uC", &["--unset", "--chdir"], 0),
        "nice" => ("n", &["--adjustment"], 0),
        "nohup" | "setsid" | "time" => ("fo", &["--output", "--format"], 0),
        "timeout" => ("sk", &["--signal", "--kill-after"], 1),
        "command" | "builtin" => ("", &[], 0),
        "exec" => ("a", &[], 0),
        "stdbuf" => ("ioe", &["--input", "--output", "--error"], 0),
        "ionice" => ("cnp", &["--class", "--classdata", "--pid"], 0),
        "chroot" => ("", &["--userspec", "--groups"], 1),
        "watch" => ("nd", &["--interval", "--differences"], 0),
        "strace" | "ltrace" => ("eoOpPsSuE", &[], 0),
        "flock" => ("wE", &["--timeout", "--conflict-exit-code"], 1),
        "caffeinate" | "unbuffer" | "fakeroot" | "proxychains" | "proxychains4" | "torsocks" => {
            ("", &[], 0)
        }
        _ => return None,
    };
    let mut i = 0;
    while i < args.len() {
        let a = args[i];
        if a == "--" {
            i += 1;
            break;
        }
        if program == "env" && !a.starts_with('-') && a.contains('=') {
            i += 1;
            continue;
        }
        if program == "sudo" && !a.starts_with('-') && a.contains('=') && !a.starts_with('=') {
            i += 1;
            continue;
        }
        if (program == "command" || program == "builtin") && (a == "-v" || a == "-V") {
            return Some(args.len()); // only looks the name up
        }
        if program == "nice"
            && a.len() > 1
            && a.starts_with('-')
            && a[1..].chars().all(|c| c.is_ascii_digit())
        {
            i += 1;
            continue;
        }
        if let Some(long) = a.strip_prefix("--") {
            let name = long.split('=').next().unwrap_or(long);
            let takes = long_val.iter().any(|l| l.trim_start_matches("--") == name);
            i += if takes && !long.contains('=') { 2 } else { 1 };
            continue;
        }
        if a.starts_with('-') && a.len() > 1 {
            let flags = &a[1..];
            let mut skip_next = false;
            for (pos, c) in flags.char_indices() {
                if short_val.contains(c) {
                    skip_next = pos + c.len_utf8() == flags.len();
                    break;
                }
            }
            i += if skip_next { 2 } else { 1 };
            continue;
        }
        break;
    }
    let start = i + operands;
    (start < args.len()).then_some(start).or(Some(args.len()))
}

/// Where `xargs`'s command starts in `args`, if it has one.
fn xargs_command_start(args: &[&str]) -> Option<usize> {
    const SHORT_VAL: &str = "aEdIiLlnPs";
    const LONG_VAL: [&str; 8] = [
        "arg-file",
        "delimiter",
        "eof",
        "replace",
        "max-lines",
        "max-args",
        "max-procs",
        "max-chars",
    ];
    let mut i = 0;
    while i < args.len() {
        let a = args[i];
        if a == "--" {
            return (i + 1 < args.len()).then_some(i + 1);
        }
        if let Some(long) = a.strip_prefix("--") {
            let name = long.split('=').next().unwrap_or(long);
            let takes = LONG_VAL.contains(&name) && !long.contains('=');
            i += if takes { 2 } else { 1 };
            continue;
        }
        if a.starts_with('-') && a.len() > 1 {
            let flags = &a[1..];
            let mut skip_next = false;
            for (pos, c) in flags.char_indices() {
                if SHORT_VAL.contains(c) {
                    // -i and -l take an optional attached value only.
                    skip_next = !matches!(c, 'i' | 'l') && pos + c.len_utf8() == flags.len();
                    break;
                }
            }
            i += if skip_next { 2 } else { 1 };
            continue;
        }
        return Some(i);
    }
    None
}

fn is_interpreter(p: &str) -> bool {
    p.starts_with("python")
        || matches!(
            p,
            "perl"
                | "ruby"
                | "node"
                | "nodejs"
                | "php"
                | "lua"
                | "Rscript"
                | "deno"
                | "bun"
                | "pwsh"
                | "powershell"
                | "osascript"
                | "tclsh"
                | "irb"
        )
}

/// `python -c`, `perl -e`, `node --eval`, `php -r`, `deno eval`, …
fn interpreter_code_flag(p: &str, args: &[&str]) -> bool {
    if !is_interpreter(p) {
        return false;
    }
    let (short, long): (&[char], &[&str]) = if p.starts_with("python") {
        (&['c'], &[])
    } else {
        match p {
            "perl" => (&['e', 'E'], &[]),
            "ruby" | "lua" | "Rscript" | "osascript" | "irb" => (&['e'], &[]),
            "node" | "nodejs" | "bun" => (&['e', 'p'], &["--eval", "--print"]),
            "php" => (&['r'], &[]),
            "deno" => (&[], &["eval"]),
            "pwsh" | "powershell" => (&['c'], &["-command", "-encodedcommand", "-c", "-ec"]),
            "tclsh" => (&[], &[]),
            _ => (&[], &[]),
        }
    };
    for a in args {
        let lower = a.to_ascii_lowercase();
        if long
            .iter()
            .any(|l| lower == *l || lower.starts_with(&format!("{l}=")))
        {
            return true;
        }
        if let Some(cluster) = a.strip_prefix('-') {
            if cluster.starts_with('-') {
                continue;
            }
            if cluster
                .chars()
                .take_while(|c| c.is_ascii_alphabetic())
                .any(|c| short.contains(&c))
            {
                return true;
            }
        } else {
            // The first operand is a script file: what follows are its arguments.
            return false;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapper_options_are_skipped() {
        assert_eq!(
            wrapped_command_start("sudo", &["-u", "root", "ls"]),
            Some(2)
        );
        assert_eq!(wrapped_command_start("env", &["-i", "A=1", "rm"]), Some(2));
        assert_eq!(
            wrapped_command_start("timeout", &["-s", "KILL", "5", "ls"]),
            Some(3)
        );
        assert_eq!(wrapped_command_start("nice", &["-n", "10", "ls"]), Some(2));
        assert_eq!(wrapped_command_start("nice", &["-10", "ls"]), Some(1));
        assert_eq!(wrapped_command_start("command", &["-v", "ls"]), Some(2));
        assert_eq!(wrapped_command_start("ls", &[]), None);
    }

    #[test]
    fn xargs_command_is_found() {
        assert_eq!(
            xargs_command_start(&["-0", "-n", "1", "rm", "-rf"]),
            Some(3)
        );
        assert_eq!(xargs_command_start(&["-I{}", "rm", "{}"]), Some(1));
        assert_eq!(xargs_command_start(&["-0"]), None);
    }

    #[test]
    fn interpreter_code_flags() {
        assert!(interpreter_code_flag("python3", &["-c", "print(1)"]));
        assert!(interpreter_code_flag("python", &["-Bc", "x"]));
        assert!(interpreter_code_flag("perl", &["-e", "x"]));
        assert!(interpreter_code_flag("node", &["--eval=x"]));
        assert!(!interpreter_code_flag("python3", &["script.py", "-c"]));
        assert!(!interpreter_code_flag("ls", &["-c"]));
    }
}
