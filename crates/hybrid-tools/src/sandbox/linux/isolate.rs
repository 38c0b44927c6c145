//! Process isolation: every command runs in PID, mount and IPC namespaces of its own, as the
//! only child of a small init, with no capabilities.
//!
//! The process tree of one call (the orchestrator spawns `A` through `std::process::Command`;
//! everything else happens in `A`'s `pre_exec` hook, before any `exec`):
//!
//! ```text
//! orchestrator ─► A  (old PID namespace; the `Child` the runner waits for and kills)
//!                 └► B  pid 1 of a new PID namespace: the init
//!                    └► C  pid 2: `exec`s the command; its own tree lives under it
//! ```
//!
//! | step | in | what it closes |
//! | --- | --- | --- |
//! | `unshare(NEWPID\|NEWNS\|NEWIPC)`, with `NEWUSER` as an ordinary user | A | the command's `/proc` (mounted fresh by B) lists only its own tree: no `/proc/<orchestrator>/environ`, no other process of the same user |
//! | uid and gid mapped to themselves (user namespace only) | A | files keep their owners; the command runs as the caller |
//! | `PR_SET_PDEATHSIG(SIGKILL)` | A, B | B dies with A, and A with the thread that spawned it |
//! | B is the namespace's init | B | when the command ends, B exits and the kernel kills every process left in the namespace: `setsid`, `nohup`, `disown` and double forks included |
//! | bounding set, ambient set and all capability sets emptied | B | the command cannot unmount `/proc`, mount, `ptrace` past the checks below, or regain capabilities by `exec` (even as uid 0) |
//! | `PR_SET_DUMPABLE(0)` | A, B | B is a copy of the orchestrator (its memory and environment): the command cannot read B's `environ` or `mem` |
//! | landlock and seccomp (built by [`rules`](super::rules)) | B | writes outside the workspace; sockets other than Unix ones |
//!
//! B reports C's wait status to A through a pipe, and A ends the same way (exit code or
//! signal), so the runner sees the command's own status.
//!
//! Which way of making the namespaces works is probed once per process ([`mode`]): as root
//! directly (root has `CAP_SYS_ADMIN`), else — as an ordinary user, or as root in a container
//! without it — inside a new user namespace. Where neither works the runner refuses to run
//! commands (fails closed) with the failing step and why ([`IsolationError`]).
//!
//! The hook runs after `fork` in a multi-threaded program, so it must not allocate or take
//! locks: everything it needs ([`Plan`]) is prepared in the parent, and it makes only raw,
//! async-signal-safe calls (`unshare`, `open`/`write`/`close`, `prctl`, `mount`, `capset`,
//! `fork` of a single-threaded process, `waitpid`, `kill`, `_exit`).
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::OnceLock;

use rustix::pipe::{PipeFlags, pipe_with};
use rustix::thread::{CapabilitySet, CapabilitySets, set_capabilities};

/// How the namespaces are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Directly: the caller has `CAP_SYS_ADMIN` (root).
    Privileged,
    /// In a new user namespace mapping the caller's uid and gid to themselves.
    UserNamespace,
}

/// The step of the child's set-up that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Step {
    DeathSignal = 1,
    UserNamespace,
    Namespaces,
    IdMaps,
    StatusPipe,
    ForkInit,
    MountPrivate,
    MountProc,
    Capabilities,
    Dumpable,
    Confine,
    ForkCommand,
}

impl Step {
    const ALL: [Step; 12] = [
        Step::DeathSignal,
        Step::UserNamespace,
        Step::Namespaces,
        Step::IdMaps,
        Step::StatusPipe,
        Step::ForkInit,
        Step::MountPrivate,
        Step::MountProc,
        Step::Capabilities,
        Step::Dumpable,
        Step::Confine,
        Step::ForkCommand,
    ];

    fn from_code(code: u8) -> Option<Step> {
        Step::ALL.into_iter().find(|s| *s as u8 == code)
    }

    /// What could not be done, in words.
    fn what(self) -> &'static str {
        match self {
            Step::DeathSignal => {
                "cannot tie the command's lifetime to the runner (PR_SET_PDEATHSIG)"
            }
            Step::UserNamespace => "cannot create a user namespace for the command",
            Step::Namespaces => "cannot create PID, mount and IPC namespaces for the command",
            Step::IdMaps => "cannot map the user and group ids into the command's user namespace",
            Step::StatusPipe => "cannot create the status pipe of the command's init",
            Step::ForkInit => "cannot start the init of the command's PID namespace",
            Step::MountPrivate => "cannot make the command's mounts private",
            Step::MountProc => "cannot mount a /proc of the command's own PID namespace",
            Step::Capabilities => "cannot drop the command's capabilities",
            Step::Dumpable => "cannot make the command's init non-dumpable",
            Step::Confine => "cannot apply landlock and seccomp to the command",
            Step::ForkCommand => "cannot start the command inside its PID namespace",
        }
    }

    /// What usually causes it.
    fn hint(self) -> &'static str {
        match self {
            Step::UserNamespace | Step::IdMaps => {
                "; unprivileged user namespaces may be disabled (sysctl user.max_user_namespaces, \
                 kernel.unprivileged_userns_clone or kernel.apparmor_restrict_unprivileged_userns) \
                 or refused by a seccomp profile"
            }
            Step::Namespaces => {
                "; the runner needs CAP_SYS_ADMIN (root) or user namespaces, and a kernel with \
                 CONFIG_PID_NS"
            }
            Step::MountProc => "; /proc may be partly masked (as in some containers)",
            _ => "",
        }
    }
}

/// Why commands cannot be isolated here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IsolationError {
    step: Step,
    errno: i32,
}

impl std::fmt::Display for IsolationError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let cause = io::Error::from_raw_os_error(self.errno);
        write!(f, "{} ({cause}){}", self.step.what(), self.step.hint())
    }
}

/// One line of `/proc/self/{uid,gid}_map`, formatted in the parent.
#[derive(Debug)]
struct MapLine(Vec<u8>);

impl MapLine {
    fn identity(id: u32) -> MapLine {
        MapLine(format!("{id} {id} 1\n").into_bytes())
    }
}

/// Everything the hook needs, prepared in the parent.
#[derive(Debug)]
struct Plan {
    mode: Mode,
    parent: libc::pid_t,
    uid_map: MapLine,
    gid_map: MapLine,
    /// Write end of the report pipe.
    report: RawFd,
}

/// The pipe through which a failing child names the step, read by the parent after `spawn`
/// failed.
#[derive(Debug)]
pub(crate) struct Report {
    read: OwnedFd,
    write: OwnedFd,
}

impl Report {
    fn new() -> io::Result<Report> {
        let (read, write) = pipe_with(PipeFlags::CLOEXEC | PipeFlags::NONBLOCK)?;
        Ok(Report { read, write })
    }

    /// The step that failed, if a child reported one.
    pub(crate) fn failure(&self) -> Option<IsolationError> {
        let mut buf = [0u8; 5];
        let n = rustix::io::read(&self.read, &mut buf).ok()?;
        if n != buf.len() {
            return None;
        }
        let step = Step::from_code(buf[0])?;
        let errno = i32::from_ne_bytes([buf[1], buf[2], buf[3], buf[4]]);
        Some(IsolationError { step, errno })
    }
}

/// The confinement B applies to itself (and so to C) after the namespaces are set up.
pub(crate) type Confine = Box<dyn FnMut() -> io::Result<()> + Send + Sync>;

/// The way of making namespaces that works in this process, probed once.
pub(crate) fn mode() -> Result<Mode, IsolationError> {
    static MODE: OnceLock<Result<Mode, IsolationError>> = OnceLock::new();
    MODE.get_or_init(probe).clone()
}

/// Tries each mode on `/bin/sh -c 'exit 0'`: as root the privileged one first.
fn probe() -> Result<Mode, IsolationError> {
    let candidates: &[Mode] = if rustix::process::geteuid().is_root() {
        &[Mode::Privileged, Mode::UserNamespace]
    } else {
        &[Mode::UserNamespace]
    };
    let mut last = IsolationError {
        step: Step::Namespaces,
        errno: libc::ENOSYS,
    };
    for &mode in candidates {
        match probe_mode(mode) {
            Ok(()) => return Ok(mode),
            Err(e) => {
                tracing::debug!(?mode, error = %e, "process isolation mode unavailable");
                last = e;
            }
        }
    }
    Err(last)
}

fn probe_mode(mode: Mode) -> Result<(), IsolationError> {
    let mut cmd = std::process::Command::new("/bin/sh");
    cmd.args(["-c", "exit 0"])
        .env_clear()
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let io_error = |e: io::Error| IsolationError {
        step: Step::ForkInit,
        errno: e.raw_os_error().unwrap_or(libc::EIO),
    };
    let report = install(&mut cmd, mode, Box::new(|| Ok(()))).map_err(io_error)?;
    match cmd.spawn() {
        Ok(mut child) => {
            let status = child.wait().map_err(io_error)?;
            if status.success() {
                Ok(())
            } else {
                Err(IsolationError {
                    step: Step::ForkCommand,
                    errno: libc::ECHILD,
                })
            }
        }
        Err(e) => Err(report.failure().unwrap_or_else(|| io_error(e))),
    }
}

/// Arranges for `cmd` to run isolated (see the module docs), with `confine` applied in the
/// init before the command starts. Keep the returned [`Report`] until `spawn` returns; if it
/// fails, [`Report::failure`] names the step.
pub(crate) fn install(
    cmd: &mut std::process::Command,
    mode: Mode,
    mut confine: Confine,
) -> io::Result<Report> {
    let report = Report::new()?;
    let plan = Plan {
        mode,
        parent: i32::try_from(std::process::id()).unwrap_or(0),
        uid_map: MapLine::identity(rustix::process::getuid().as_raw()),
        gid_map: MapLine::identity(rustix::process::getgid().as_raw()),
        report: report.write.as_raw_fd(),
    };
    let hook = move || -> io::Result<()> { child_main(&plan, &mut confine) };
    // SAFETY: `pre_exec` runs the hook in the forked child before `exec`. The hook follows
    // the rules of that context (see the module docs): it uses only what `plan` and
    // `confine` hold, prepared in the parent, makes raw async-signal-safe calls, allocates
    // nothing and takes no lock.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(cmd, hook);
    }
    Ok(report)
}

/// Runs in A (see the module docs). Returns only in C, which then `exec`s the command; A and
/// B end in `_exit`.
fn child_main(plan: &Plan, confine: &mut Confine) -> io::Result<()> {
    // A: die with the runner.
    check(
        plan,
        Step::DeathSignal,
        prctl(libc::PR_SET_PDEATHSIG, sig(libc::SIGKILL)),
    )?;
    if getppid() != plan.parent {
        exit(1);
    }
    reset_sigchld();
    let mut flags = libc::CLONE_NEWPID | libc::CLONE_NEWNS | libc::CLONE_NEWIPC;
    let step = match plan.mode {
        Mode::Privileged => Step::Namespaces,
        Mode::UserNamespace => {
            flags |= libc::CLONE_NEWUSER;
            Step::UserNamespace
        }
    };
    // SAFETY: unshare(2) changes only this (single-threaded) process's namespaces.
    check(plan, step, cvt(unsafe { libc::unshare(flags) }))?;
    if plan.mode == Mode::UserNamespace {
        // The maps can be written only while this process is dumpable.
        check(plan, Step::IdMaps, prctl(libc::PR_SET_DUMPABLE, 1))?;
        check(
            plan,
            Step::IdMaps,
            write_file(c"/proc/self/setgroups", b"deny"),
        )?;
        check(
            plan,
            Step::IdMaps,
            write_file(c"/proc/self/uid_map", &plan.uid_map.0),
        )?;
        check(
            plan,
            Step::IdMaps,
            write_file(c"/proc/self/gid_map", &plan.gid_map.0),
        )?;
    }
    // A is a copy of the orchestrator: no core file, no ptrace, no /proc reads of it.
    check(plan, Step::Dumpable, prctl(libc::PR_SET_DUMPABLE, 0))?;

    let mut status_pipe = [0 as libc::c_int; 2];
    // SAFETY: pipe2 writes two fds into the array it is given.
    let rc = unsafe { libc::pipe2(status_pipe.as_mut_ptr(), libc::O_CLOEXEC) };
    check(plan, Step::StatusPipe, cvt(rc))?;
    let [status_read, status_write] = status_pipe;

    let init = check(plan, Step::ForkInit, fork())?;
    if init > 0 {
        // A: wait for B and end as the command ended.
        close_all_but(status_read);
        let init_status = wait_for(init);
        let status = read_status(status_read).unwrap_or(init_status);
        end_like(status);
    }

    // B: pid 1 of the new PID namespace.
    check(
        plan,
        Step::DeathSignal,
        prctl(libc::PR_SET_PDEATHSIG, sig(libc::SIGKILL)),
    )?;
    close_fd(status_read);
    // SAFETY: mount(2) with constant C strings; changes only this mount namespace.
    let rc = unsafe {
        libc::mount(
            std::ptr::null(),
            c"/".as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        )
    };
    check(plan, Step::MountPrivate, cvt(rc))?;
    // SAFETY: as above; a fresh proc instance over /proc shows this PID namespace only.
    let rc = unsafe {
        libc::mount(
            c"proc".as_ptr(),
            c"/proc".as_ptr(),
            c"proc".as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            std::ptr::null(),
        )
    };
    check(plan, Step::MountProc, cvt(rc))?;
    check(plan, Step::Capabilities, drop_capabilities())?;
    if let Err(e) = confine() {
        return fail(plan, Step::Confine, e.raw_os_error().unwrap_or(libc::EPERM));
    }
    // Credential changes may reset it: set it last.
    check(plan, Step::Dumpable, prctl(libc::PR_SET_DUMPABLE, 0))?;

    let command = check(plan, Step::ForkCommand, fork())?;
    if command == 0 {
        // C: std `exec`s the command when the hook returns.
        close_fd(status_write);
        return Ok(());
    }
    // B: the init. Reap everything until the command ends, then report and exit, which
    // makes the kernel kill whatever is left in the namespace.
    close_all_but(status_write);
    let status = reap_until(command);
    let raw = status.to_ne_bytes();
    // SAFETY: writes 4 bytes from a 4-byte buffer.
    let _ = unsafe { libc::write(status_write, raw.as_ptr().cast(), raw.len()) };
    exit(exit_code(status));
}

/// Reports `step` and the errno if `result` is an error.
fn check<T>(plan: &Plan, step: Step, result: Result<T, i32>) -> io::Result<T> {
    result.or_else(|errno| fail(plan, step, errno))
}

/// Writes the step and errno to the report pipe and fails the hook with the errno.
fn fail<T>(plan: &Plan, step: Step, errno: i32) -> io::Result<T> {
    let e = errno.to_ne_bytes();
    let msg = [step as u8, e[0], e[1], e[2], e[3]];
    // SAFETY: writes 5 bytes from a 5-byte buffer to the report pipe's write end.
    let _ = unsafe { libc::write(plan.report, msg.as_ptr().cast(), msg.len()) };
    Err(io::Error::from_raw_os_error(errno))
}

/// A raw call's result: its non-negative value, or the errno.
fn cvt<T: Copy + Default + PartialOrd>(rc: T) -> Result<T, i32> {
    if rc < T::default() {
        Err(errno())
    } else {
        Ok(rc)
    }
}

fn errno() -> i32 {
    io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

fn sig(signal: libc::c_int) -> libc::c_ulong {
    libc::c_ulong::try_from(signal).unwrap_or(0)
}

fn prctl(option: libc::c_int, arg: libc::c_ulong) -> Result<libc::c_int, i32> {
    // SAFETY: prctl(2) with integer arguments only.
    cvt(unsafe {
        libc::prctl(
            option,
            arg,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        )
    })
}

fn getppid() -> libc::pid_t {
    // SAFETY: getppid(2) has no arguments and cannot fail.
    unsafe { libc::getppid() }
}

fn fork() -> Result<libc::pid_t, i32> {
    // SAFETY: called only in a single-threaded child (A or B), where fork(2) is safe; the
    // child continues with this same hook's code.
    cvt(unsafe { libc::fork() })
}

fn exit(code: libc::c_int) -> ! {
    // SAFETY: _exit(2) ends the process without running destructors or atexit handlers,
    // which belong to the orchestrator this process was forked from.
    unsafe { libc::_exit(code) }
}

/// The runtime's SIGCHLD handler came along with the fork; A and B wait for their children
/// themselves.
fn reset_sigchld() {
    // SAFETY: signal(2) with the default disposition.
    unsafe {
        libc::signal(libc::SIGCHLD, libc::SIG_DFL);
    }
}

fn close_fd(fd: RawFd) {
    // SAFETY: closes an fd this process owns and no longer uses.
    unsafe {
        libc::close(fd);
    }
}

/// Closes every fd but `keep`: the stdio pipes (so they reach EOF when the command's tree is
/// gone), std's exec-error pipe, the report pipe and whatever else came with the fork.
fn close_all_but(keep: RawFd) {
    let keep = u32::try_from(keep).unwrap_or(0);
    if keep > 0 {
        close_range(0, keep - 1);
    }
    close_range(keep.saturating_add(1), u32::MAX);
}

fn close_range(first: u32, last: u32) {
    // SAFETY: close_range(2) closes fds of this process only.
    let rc = unsafe { libc::syscall(libc::SYS_close_range, first, last, 0u32) };
    if rc == 0 {
        return;
    }
    // Kernels before 5.9: close them one by one, up to a sane bound.
    for fd in first..=last.min(65_535) {
        close_fd(i32::try_from(fd).unwrap_or(i32::MAX));
    }
}

/// Empties the bounding and ambient sets, then the effective, permitted and inheritable sets:
/// after `exec` the command has no capability, even as uid 0.
fn drop_capabilities() -> Result<(), i32> {
    for cap in 0..64 {
        match prctl(libc::PR_CAPBSET_DROP, cap) {
            Ok(_) => {}
            Err(libc::EINVAL) => break, // past the last capability this kernel knows
            Err(e) => return Err(e),
        }
    }
    // SAFETY: prctl(2) with integer arguments only.
    let rc = unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        )
    };
    match cvt(rc) {
        Ok(_) | Err(libc::EINVAL) => {} // EINVAL: a kernel without ambient sets
        Err(e) => return Err(e),
    }
    let none = CapabilitySets {
        effective: CapabilitySet::empty(),
        permitted: CapabilitySet::empty(),
        inheritable: CapabilitySet::empty(),
    };
    set_capabilities(None, none).map_err(|e| e.raw_os_error())
}

fn write_file(path: &std::ffi::CStr, data: &[u8]) -> Result<(), i32> {
    // SAFETY: open(2) on a constant path.
    let fd = cvt(unsafe { libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) })?;
    // SAFETY: writes from a buffer that outlives the call.
    let written = cvt(unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) });
    close_fd(fd);
    match written {
        Ok(n) if usize::try_from(n).ok() == Some(data.len()) => Ok(()),
        Ok(_) => Err(libc::EIO),
        Err(e) => Err(e),
    }
}

/// The 4-byte wait status B wrote, if it did.
fn read_status(fd: RawFd) -> Option<libc::c_int> {
    let mut raw = [0u8; 4];
    // SAFETY: reads at most 4 bytes into a 4-byte buffer.
    let n = unsafe { libc::read(fd, raw.as_mut_ptr().cast(), raw.len()) };
    (n == 4).then(|| i32::from_ne_bytes(raw))
}

/// Waits for `pid` (retrying on EINTR); its wait status, or a SIGKILL status if it cannot be
/// waited for.
fn wait_for(pid: libc::pid_t) -> libc::c_int {
    loop {
        let mut status = 0;
        // SAFETY: waitpid(2) writes the status into a local.
        match cvt(unsafe { libc::waitpid(pid, &mut status, 0) }) {
            Ok(_) => return status,
            Err(libc::EINTR) => {}
            Err(_) => return libc::SIGKILL,
        }
    }
}

/// The init's loop: reaps every child (orphans included) until `command` has ended.
fn reap_until(command: libc::pid_t) -> libc::c_int {
    loop {
        let mut status = 0;
        // SAFETY: waitpid(2) writes the status into a local.
        match cvt(unsafe { libc::waitpid(-1, &mut status, 0) }) {
            Ok(pid) if pid == command => return status,
            Ok(_) | Err(libc::EINTR) => {}
            Err(_) => return libc::SIGKILL,
        }
    }
}

/// The exit code that stands for a wait status (128 + signal for a signal).
fn exit_code(status: libc::c_int) -> libc::c_int {
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        1
    }
}

/// Ends A the way the command ended: the same exit code, or killed by the same signal.
fn end_like(status: libc::c_int) -> ! {
    if libc::WIFSIGNALED(status) {
        let signal = libc::WTERMSIG(status);
        // SAFETY: restores the default action of one signal, unblocks it and sends it to
        // this process, which is not dumpable, so a core-dumping signal leaves no core.
        unsafe {
            libc::signal(signal, libc::SIG_DFL);
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, signal);
            libc::sigprocmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
            libc::kill(libc::getpid(), signal);
        }
    }
    exit(exit_code(status));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_round_trip_through_their_codes() {
        for step in Step::ALL {
            assert_eq!(Step::from_code(step as u8), Some(step));
        }
        assert_eq!(Step::from_code(0), None);
        assert_eq!(Step::from_code(200), None);
    }

    #[test]
    fn errors_name_the_step_and_the_cause() {
        let e = IsolationError {
            step: Step::UserNamespace,
            errno: libc::EPERM,
        };
        let text = e.to_string();
        assert!(
            text.starts_with("cannot create a user namespace for the command ("),
            "{text}"
        );
        assert!(text.contains("max_user_namespaces"), "{text}");
    }

    #[test]
    fn exit_codes_of_wait_statuses() {
        assert_eq!(exit_code(3 << 8), 3);
        assert_eq!(exit_code(libc::SIGKILL), 128 + libc::SIGKILL);
    }
}
