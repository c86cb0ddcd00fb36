//! Starting a pod's init process in its own namespaces (or a plain process group), waiting
//! for it and killing its tree. The only unsafe code of the agent lives here.

use std::ffi::{CString, c_char};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;

use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::Pid;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum SpawnError {
    #[error("invalid argument (NUL byte): {0}")]
    Nul(#[from] std::ffi::NulError),
    #[error("empty command")]
    EmptyCommand,
    #[error("pipe: {0}")]
    Pipe(nix::Error),
    #[error("clone: {0}")]
    Clone(nix::Error),
    #[error("{stage} failed in the child: {errno}")]
    Child {
        stage: &'static str,
        errno: nix::Error,
    },
}

impl SpawnError {
    /// Whether retrying without namespaces may help.
    pub fn namespaces_denied(&self) -> bool {
        match self {
            Self::Clone(e) => matches!(
                e,
                nix::Error::EPERM | nix::Error::EINVAL | nix::Error::ENOSPC | nix::Error::EUSERS
            ),
            Self::Child { stage, .. } => STAGES[..NS_STAGES].contains(stage),
            _ => false,
        }
    }
}

// Stage names reported by the child; the first NS_STAGES only run with namespaces.
const STAGES: [&str; 7] = [
    "make mounts private",
    "bind-mount /tmp",
    "mount /proc",
    "sethostname",
    "chdir",
    "setsid",
    "execve",
];
const NS_STAGES: usize = 4;

/// What the child reports on its error pipe, one record each: a stage that failed (the child
/// then exits) or a cgroup it could not join (it goes on without that limit).
const RECORD_FAILED: u8 = 0;
const RECORD_CGROUP_NOT_JOINED: u8 = 1;
const RECORD_LEN: usize = 6;

/// What to run and where.
#[derive(Clone, Debug)]
pub struct SpawnSpec {
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub cwd: PathBuf,
    /// Bound over /tmp inside the mount namespace.
    pub tmp_dir: PathBuf,
    pub hostname: String,
    /// `cgroup.procs` files the child joins before it execs.
    pub cgroup_procs: Vec<PathBuf>,
}

/// A started init process: its pid in the agent's pid namespace, which is also its process
/// group (it calls setsid).
#[derive(Debug)]
pub struct Spawned {
    pub pid: i32,
    /// Cgroup joins that failed (the pod runs without that limit).
    pub cgroup_warnings: Vec<String>,
}

struct Prepared {
    argv: Vec<CString>,
    envp: Vec<CString>,
    cwd: CString,
    tmp_dir: CString,
    hostname: Vec<u8>,
    cgroup_procs: Vec<CString>,
}

fn cstr(s: impl Into<Vec<u8>>) -> Result<CString, SpawnError> {
    Ok(CString::new(s)?)
}

fn pointers(v: &[CString]) -> Vec<*const c_char> {
    v.iter()
        .map(|c| c.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
}

/// Everything the child touches, prepared before cloning. The child shares our memory until it
/// execs (CLONE_VM, see `spawn`), so it must not allocate or take locks: only async-signal-safe
/// calls on this data.
struct ChildCtx<'a> {
    p: &'a Prepared,
    argv: &'a [*const c_char],
    envp: &'a [*const c_char],
    namespaces: bool,
    err_w: i32,
}

fn report(ctx: &ChildCtx<'_>, kind: u8, index: usize) {
    let errno = nix::errno::Errno::last_raw();
    let mut buf = [0u8; RECORD_LEN];
    buf[0] = kind;
    buf[1] = index as u8;
    buf[2..].copy_from_slice(&errno.to_ne_bytes());
    // SAFETY: a plain write of a stack buffer to a valid fd.
    unsafe {
        libc::write(ctx.err_w, buf.as_ptr().cast(), buf.len());
    }
}

fn fail(ctx: &ChildCtx<'_>, stage: usize) -> ! {
    report(ctx, RECORD_FAILED, stage);
    // SAFETY: _exit never returns and runs no exit handlers (they belong to the parent).
    unsafe { libc::_exit(127) }
}

/// Moves the calling process into each cgroup ("0" names the writer, whatever its pid
/// namespace calls it); a cgroup it cannot join is reported, not fatal.
fn join_cgroups(ctx: &ChildCtx<'_>) {
    for (i, path) in ctx.p.cgroup_procs.iter().enumerate() {
        // SAFETY: open/write/close on a NUL-terminated path and a static byte.
        let joined = unsafe {
            let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            fd >= 0 && {
                let n = libc::write(fd, c"0".as_ptr().cast(), 1);
                libc::close(fd);
                n == 1
            }
        };
        if !joined {
            report(ctx, RECORD_CGROUP_NOT_JOINED, i);
        }
    }
}

/// Puts every signal with a handler back to its default: handlers are the parent's code and
/// would run on the parent's memory.
fn default_signal_handlers() {
    // SAFETY: sigaction with a zeroed action (SIG_DFL) on each signal number; numbers the kernel
    // refuses (SIGKILL, SIGSTOP, out of range) fail harmlessly.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        let default: libc::sigaction = std::mem::zeroed();
        for sig in 1..65 {
            if libc::sigaction(sig, std::ptr::null(), &mut old) == 0
                && old.sa_sigaction != libc::SIG_DFL
                && old.sa_sigaction != libc::SIG_IGN
            {
                libc::sigaction(sig, &default, std::ptr::null_mut());
            }
        }
        // The Rust runtime ignores SIGPIPE; programs expect the default.
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn child(ctx: &ChildCtx<'_>) -> ! {
    let c = |s: &str| s.as_ptr().cast::<c_char>();
    default_signal_handlers();
    // SAFETY: only async-signal-safe libc calls on data prepared by the parent (NUL-terminated
    // strings and pointer arrays that outlive this function); no allocation.
    unsafe {
        let set: libc::sigset_t = {
            let mut set = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            set
        };
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
        if libc::setsid() < 0 {
            fail(ctx, 5);
        }
        if ctx.namespaces {
            if libc::mount(
                c("none\0"),
                c("/\0"),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ) != 0
            {
                fail(ctx, 0);
            }
            // Before /tmp is covered: the workspace may live under the host's /tmp.
            if libc::chdir(ctx.p.cwd.as_ptr()) != 0 {
                fail(ctx, 4);
            }
            if libc::mount(
                ctx.p.tmp_dir.as_ptr(),
                c("/tmp\0"),
                std::ptr::null(),
                libc::MS_BIND | libc::MS_REC,
                std::ptr::null(),
            ) != 0
            {
                fail(ctx, 1);
            }
            if libc::mount(
                c("proc\0"),
                c("/proc\0"),
                c("proc\0"),
                libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                std::ptr::null(),
            ) != 0
            {
                fail(ctx, 2);
            }
            if libc::sethostname(ctx.p.hostname.as_ptr().cast(), ctx.p.hostname.len()) != 0 {
                fail(ctx, 3);
            }
        } else if libc::chdir(ctx.p.cwd.as_ptr()) != 0 {
            fail(ctx, 4);
        }
        join_cgroups(ctx);
        libc::execve(ctx.argv[0], ctx.argv.as_ptr(), ctx.envp.as_ptr());
        fail(ctx, 6)
    }
}

extern "C" fn child_entry(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the `ChildCtx` that `spawn` keeps alive until the child has exec'd or
    // exited (CLONE_VFORK suspends `spawn` until then).
    let ctx = unsafe { &*arg.cast::<ChildCtx<'_>>() };
    child(ctx)
}

/// Starts the init process. Must be called on a thread that lives as long as the child
/// (normally the thread that then calls [`wait`]): the child gets SIGKILL when the thread that
/// created it exits.
///
/// The child shares this process's memory until it execs (CLONE_VM, with CLONE_VFORK holding
/// this thread until then, as posix_spawn does): a copy of the address space of a process
/// holding thousands of cached objects cost more than everything else a pod start does.
pub fn spawn(spec: &SpawnSpec, namespaces: bool) -> Result<Spawned, SpawnError> {
    if spec.argv.is_empty() {
        return Err(SpawnError::EmptyCommand);
    }
    let mut hostname = spec.hostname.as_bytes().to_vec();
    hostname.truncate(63);
    let p = Prepared {
        argv: spec
            .argv
            .iter()
            .map(|a| cstr(a.as_str()))
            .collect::<Result<_, _>>()?,
        envp: spec
            .env
            .iter()
            .map(|(k, v)| cstr(format!("{k}={v}")))
            .collect::<Result<_, _>>()?,
        cwd: cstr(spec.cwd.as_os_str().as_encoded_bytes())?,
        tmp_dir: cstr(spec.tmp_dir.as_os_str().as_encoded_bytes())?,
        hostname,
        cgroup_procs: spec
            .cgroup_procs
            .iter()
            .map(|f| cstr(f.as_os_str().as_encoded_bytes()))
            .collect::<Result<_, _>>()?,
    };
    let argv = pointers(&p.argv);
    let envp = pointers(&p.envp);
    let (err_r, err_w) = pipe()?;
    let ctx = ChildCtx {
        p: &p,
        argv: &argv,
        envp: &envp,
        namespaces,
        err_w: err_w.as_raw_fd(),
    };
    let mut flags = libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD;
    if namespaces {
        flags |= libc::CLONE_NEWNS | libc::CLONE_NEWPID | libc::CLONE_NEWUTS | libc::CLONE_NEWIPC;
    }
    let mut stack = vec![0u8; 64 * 1024];
    // SAFETY: the stack top stays inside `stack` (16-byte aligned, stacks grow down); `ctx`,
    // `p`, `argv`, `envp` and `stack` live until this function returns, and CLONE_VFORK keeps
    // this thread here until the child has exec'd or exited. Every signal stays blocked in this
    // thread across the clone, so no handler runs in the child before it resets them.
    let pid = unsafe {
        let top = stack.as_mut_ptr().add(stack.len()) as usize & !15;
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut previous: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut previous);
        let pid = libc::clone(
            child_entry,
            top as *mut libc::c_void,
            flags,
            (&raw const ctx).cast_mut().cast(),
        );
        let clone_errno = nix::errno::Errno::last();
        libc::pthread_sigmask(libc::SIG_SETMASK, &previous, std::ptr::null_mut());
        if pid < 0 {
            return Err(SpawnError::Clone(clone_errno));
        }
        pid
    };
    drop(err_w);
    let records = read_records(&err_r);
    let mut cgroup_warnings = Vec::new();
    for [kind, index, e0, e1, e2, e3] in records {
        let errno = nix::Error::from_raw(i32::from_ne_bytes([e0, e1, e2, e3]));
        if kind == RECORD_CGROUP_NOT_JOINED {
            let file = spec.cgroup_procs.get(usize::from(index));
            let file = file.map_or_else(|| "?".into(), |f| f.display().to_string());
            cgroup_warnings.push(format!("join {file}: {errno}"));
            continue;
        }
        let _ = waitpid(Pid::from_raw(pid), None);
        let stage = STAGES.get(usize::from(index)).copied().unwrap_or("unknown");
        return Err(SpawnError::Child { stage, errno });
    }
    Ok(Spawned {
        pid,
        cgroup_warnings,
    })
}

fn pipe() -> Result<(OwnedFd, OwnedFd), SpawnError> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(SpawnError::Pipe)
}

/// The child's records, read until the pipe closes (at its exec or exit).
fn read_records(err_r: &OwnedFd) -> Vec<[u8; RECORD_LEN]> {
    let mut bytes = Vec::new();
    let mut buf = [0u8; 64];
    loop {
        match nix::unistd::read(err_r, &mut buf) {
            Ok(0) => break,
            Ok(n) => bytes.extend_from_slice(&buf[..n]),
            Err(nix::Error::EINTR) => {}
            Err(_) => break,
        }
    }
    bytes
        .chunks_exact(RECORD_LEN)
        .filter_map(|c| c.try_into().ok())
        .collect()
}

/// How a process ended: exit code (128 + signal when killed) and the signal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exit {
    pub code: i32,
    pub signal: Option<i32>,
}

/// Blocks until `pid` (a child of this thread's process) exits.
pub fn wait(pid: i32) -> Exit {
    loop {
        match waitpid(Pid::from_raw(pid), None) {
            Ok(WaitStatus::Exited(_, code)) => return Exit { code, signal: None },
            Ok(WaitStatus::Signaled(_, sig, _)) => {
                return Exit {
                    code: 128 + sig as i32,
                    signal: Some(sig as i32),
                };
            }
            Ok(_) | Err(nix::Error::EINTR) => {}
            Err(_) => {
                return Exit {
                    code: 255,
                    signal: None,
                };
            }
        }
    }
}

/// Signals the pod's process group and its init (in a pid namespace, SIGKILL to the init
/// kills every process of the namespace).
pub fn signal_tree(pid: i32, sig: Signal) {
    let _ = kill(Pid::from_raw(-pid), sig);
    let _ = kill(Pid::from_raw(pid), sig);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(argv: &[&str], cgroup_procs: Vec<PathBuf>) -> SpawnSpec {
        SpawnSpec {
            argv: argv.iter().map(|a| a.to_string()).collect(),
            env: vec![("PATH".into(), "/usr/bin:/bin".into())],
            cwd: std::env::temp_dir(),
            tmp_dir: std::env::temp_dir(),
            hostname: "unit".into(),
            cgroup_procs,
        }
    }

    #[test]
    fn a_started_process_runs_in_its_own_session_and_its_exit_is_seen() {
        let spawned = spawn(&spec(&["/bin/sh", "-c", "exit 7"], vec![]), false).unwrap();
        assert!(spawned.cgroup_warnings.is_empty());
        assert_eq!(
            wait(spawned.pid),
            Exit {
                code: 7,
                signal: None
            }
        );
    }

    #[test]
    fn a_failed_exec_names_its_stage_and_errno() {
        let err = spawn(&spec(&["/nonexistent/program"], vec![]), false).unwrap_err();
        match err {
            SpawnError::Child { stage, errno } => {
                assert_eq!((stage, errno), ("execve", nix::Error::ENOENT));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn a_cgroup_that_cannot_be_joined_is_a_warning_and_the_process_still_runs() {
        let missing = PathBuf::from("/nonexistent/cgroup.procs");
        let spawned = spawn(&spec(&["/bin/sh", "-c", "exit 0"], vec![missing]), false).unwrap();
        assert_eq!(
            spawned.cgroup_warnings,
            vec!["join /nonexistent/cgroup.procs: ENOENT: No such file or directory".to_string()]
        );
        assert_eq!(wait(spawned.pid).code, 0);
    }
}
