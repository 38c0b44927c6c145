//! Linux confinement of one command, in layers:
//!
//! | layer | module | what it covers |
//! | --- | --- | --- |
//! | PID, mount and IPC namespaces (in a user namespace as an ordinary user), an init of its own, no capabilities, non-dumpable init | [`isolate`] | the command sees only its own process tree (no `/proc/<pid>/environ` of the orchestrator or of any other process of the user); every process it starts ends with it |
//! | landlock | [`rules`] | writes only beneath the workspace, the call's `TMPDIR`, extra writable paths and a few devices; with ABI v6 no signals or abstract-socket connects out of the sandbox |
//! | seccomp | [`rules`] | no sockets but Unix ones (and no io_uring) unless the network is allowed |
//!
//! Each layer fails closed: where the kernel lacks one, the runner refuses to run commands
//! and says what is missing.

mod isolate;
mod rules;

use std::io;
use std::path::PathBuf;

use landlock::{CompatLevel, Compatible, Ruleset, RulesetAttr, RulesetStatus, Scope};

use super::{SandboxError, Support};

pub(super) fn support() -> Support {
    let tmp = std::env::temp_dir();
    let filesystem = rules::ruleset(&[tmp]).map(|_| ());
    let network = match std::fs::read_to_string("/proc/self/status") {
        Ok(status) if status.lines().any(|l| l.starts_with("Seccomp:")) => {
            rules::network_filter().map(|_| ())
        }
        Ok(_) => Err(
            "the kernel was built without seccomp (no `Seccomp:` in /proc/self/status)".to_owned(),
        ),
        Err(e) => Err(format!("cannot read /proc/self/status: {e}")),
    };
    let signals = Ruleset::default()
        .set_compatibility(CompatLevel::HardRequirement)
        .scope(Scope::Signal)
        .map(|_| ())
        .map_err(|e| format!("landlock ABI v6 (signal scoping) is missing: {e}"));
    let processes = isolate::mode().map(|_| ()).map_err(|e| e.to_string());
    Support {
        filesystem,
        network,
        signals,
        processes,
    }
}

/// A command set up to run confined; keep it until `spawn` has returned.
#[derive(Debug)]
pub(super) struct Confined {
    /// How the command is confined, for the tool's metadata.
    pub(super) label: &'static str,
    report: isolate::Report,
}

impl Confined {
    /// The error to show for a failed `spawn`: the isolation step that failed, if one did.
    pub(super) fn spawn_error(&self, program: &str, error: io::Error) -> SandboxError {
        match self.report.failure() {
            Some(failure) => SandboxError::Unavailable(failure.to_string()),
            None => SandboxError::Spawn {
                what: format!("`{program}`"),
                source: error,
            },
        }
    }
}

/// Arranges for `cmd`'s child to run isolated and confined: see the module docs.
pub(super) fn confine(
    cmd: &mut std::process::Command,
    writable: &[PathBuf],
    allow_network: bool,
) -> Result<Confined, SandboxError> {
    let mode = isolate::mode().map_err(|e| SandboxError::Unavailable(e.to_string()))?;
    let ruleset = rules::ruleset(writable).map_err(SandboxError::Unavailable)?;
    let filter =
        if allow_network {
            None
        } else {
            Some(rules::network_filter().map_err(|e| {
                SandboxError::Unavailable(format!("cannot deny network access: {e}"))
            })?)
        };
    let label = if allow_network {
        "namespaces+landlock"
    } else {
        "namespaces+landlock+seccomp"
    };
    let mut ruleset = Some(ruleset);
    // Runs in the namespace's init, after its set-up: raw syscalls only.
    let apply = move || -> io::Result<()> {
        if let Some(ruleset) = ruleset.take() {
            match ruleset.restrict_self() {
                Ok(status) if status.ruleset != RulesetStatus::NotEnforced => {}
                Ok(_) => return Err(io::Error::from_raw_os_error(libc::ENOSYS)),
                Err(_) => return Err(io::Error::last_os_error()),
            }
        }
        if let Some(filter) = &filter
            && seccompiler::apply_filter(filter).is_err()
        {
            return Err(io::Error::from_raw_os_error(libc::EPERM));
        }
        Ok(())
    };
    let report =
        isolate::install(cmd, mode, Box::new(apply)).map_err(|source| SandboxError::Spawn {
            what: "the sandbox's report pipe".into(),
            source,
        })?;
    Ok(Confined { label, report })
}
