//! The landlock ruleset (writes) and the seccomp program (network) a command is confined by.
//!
//! Both are built in the parent, where allocating is allowed; the init of the command's
//! namespace ([`isolate`](super::isolate)) only applies them, with raw syscalls
//! (`prctl(NO_NEW_PRIVS)`, `landlock_restrict_self`, `seccomp(SET_MODE_FILTER)`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use landlock::{
    ABI, Access, AccessFs, CompatLevel, Compatible, Ruleset, RulesetAttr, RulesetCreated,
    RulesetCreatedAttr, Scope, path_beneath_rules,
};
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

/// Device files commands may write to.
const WRITABLE_DEVICES: &[&str] = &["/dev/null", "/dev/zero", "/dev/full", "/dev/tty"];

/// Write rights the sandbox handles. ABI v3 covers writes, removes, creates, renames across
/// directories (refer) and truncate; ioctl rights (v5) are left alone.
const WRITE_ABI: ABI = ABI::V3;

/// Builds a landlock ruleset that allows writes only beneath `writable` (and a few devices).
pub(super) fn ruleset(writable: &[PathBuf]) -> Result<RulesetCreated, String> {
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
pub(super) fn network_filter() -> Result<BpfProgram, String> {
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
