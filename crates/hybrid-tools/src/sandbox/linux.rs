//! Linux confinement: landlock (writes) and seccomp (network), applied in the child between
//! `fork` and `exec`.
//!
//! Everything that allocates — the landlock ruleset with its path rules, the seccomp BPF
//! program — is built in the parent. The `pre_exec` hook only makes raw syscalls
//! (`prctl(NO_NEW_PRIVS)`, `landlock_restrict_self`, `seccomp(SET_MODE_FILTER)`), which are
//! async-signal-safe, as required after `fork` in a multi-threaded process.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use landlock::{
    ABI, Access, AccessFs, CompatLevel, Compatible, Ruleset, RulesetAttr, RulesetCreated,
    RulesetCreatedAttr, RulesetStatus, Scope, path_beneath_rules,
};
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

use super::Support;

/// Device files commands may write to.
const WRITABLE_DEVICES: &[&str] = &["/dev/null", "/dev/zero", "/dev/full", "/dev/tty"];

/// Write rights the sandbox handles. ABI v3 covers writes, removes, creates, renames across
/// directories (refer) and truncate; ioctl rights (v5) are left alone.
const WRITE_ABI: ABI = ABI::V3;

pub(super) fn support() -> Support {
    let tmp = std::env::temp_dir();
    let filesystem = ruleset(&[tmp]).map(|_| ());
    let network = match std::fs::read_to_string("/proc/self/status") {
        Ok(status) if status.lines().any(|l| l.starts_with("Seccomp:")) => {
            network_filter().map(|_| ())
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
    Support {
        filesystem,
        network,
        signals,
    }
}

/// Builds a landlock ruleset that allows writes only beneath `writable` (and a few devices).
fn ruleset(writable: &[PathBuf]) -> Result<RulesetCreated, String> {
    let devices: Vec<&Path> = WRITABLE_DEVICES
        .iter()
        .map(Path::new)
        .filter(|p| p.exists())
        .collect();
    let fail = |e: landlock::RulesetError| format!("landlock: {e}");
    Ruleset::default()
        // Landlock itself (ABI v1 write rights) is required: without it we fail closed.
        .set_compatibility(CompatLevel::HardRequirement)
        .handle_access(AccessFs::from_write(ABI::V1))
        .map_err(|e| format!("the kernel lacks landlock (needed to confine writes): {e}"))?
        // Newer rights (refer, truncate) when the kernel has them.
        .set_compatibility(CompatLevel::BestEffort)
        .handle_access(AccessFs::from_write(WRITE_ABI))
        .map_err(fail)?
        // ABI v6: no signals to processes outside the sandbox (e.g. the agent), no connects to
        // abstract Unix sockets created outside it.
        .scope(Scope::from_all(ABI::V6))
        .map_err(fail)?
        .create()
        .map_err(|e| format!("the kernel lacks landlock (needed to confine writes): {e}"))?
        .add_rules(path_beneath_rules(
            writable,
            AccessFs::from_write(WRITE_ABI),
        ))
        .map_err(fail)?
        .add_rules(path_beneath_rules(devices, AccessFs::from_write(WRITE_ABI)))
        .map_err(fail)
}

/// A seccomp program that makes `socket()` for any family but `AF_UNIX`, and `io_uring_setup`
/// (which could open sockets behind seccomp's back), fail with EACCES.
fn network_filter() -> Result<BpfProgram, String> {
    let fail = |e: seccompiler::BackendError| format!("seccomp: {e}");
    let arch = TargetArch::try_from(std::env::consts::ARCH).map_err(fail)?;
    let not_unix = SeccompCondition::new(
        0,
        SeccompCmpArgLen::Dword,
        SeccompCmpOp::Ne,
        libc::AF_UNIX as u64,
    )
    .map_err(fail)?;
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    rules.insert(
        libc::SYS_socket,
        vec![SeccompRule::new(vec![not_unix]).map_err(fail)?],
    );
    rules.insert(libc::SYS_io_uring_setup, Vec::new());
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EACCES as u32),
        arch,
    )
    .map_err(fail)?;
    BpfProgram::try_from(filter).map_err(fail)
}

/// Arranges for `cmd`'s child to be confined. Returns a label for the confinement.
pub(super) fn confine(
    cmd: &mut std::process::Command,
    writable: &[PathBuf],
    allow_network: bool,
) -> Result<&'static str, String> {
    let ruleset = ruleset(writable)?;
    let filter = if allow_network {
        None
    } else {
        Some(network_filter().map_err(|e| format!("cannot deny network access: {e}"))?)
    };
    let label = if allow_network {
        "landlock"
    } else {
        "landlock+seccomp"
    };
    let mut ruleset = Some(ruleset);
    let hook = move || -> io::Result<()> {
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
    #[allow(unsafe_code)]
    // SAFETY: `pre_exec` runs the hook in the forked child before `exec`. The hook does not
    // allocate, lock or touch shared state: the ruleset (an fd plus plain flags) and the BPF
    // program were built in the parent; it only calls prctl, landlock_restrict_self and
    // seccomp, all async-signal-safe syscalls, and builds `io::Error`s from raw OS codes
    // (no allocation). Failing makes `spawn` return that error in the parent.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(cmd, hook);
    }
    Ok(label)
}
