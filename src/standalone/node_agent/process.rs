//! Starting a pod's init process in its own namespaces (or a plain process group), waiting
//! for it and killing its tree. The only unsafe code of the agent lives here.

use std::ffi::{CString, c_char};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;

use nix::sched::CloneFlags;
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
const STAGES: [&str; 8] = [
    "make mounts private",
    "bind-mount /tmp",
    "mount /proc",
    "sethostname",
    "chdir",
    "setsid",
    "sync with parent",
    "execve",
];
const NS_STAGES: usize = 4;

/// What to run and where.
#[derive(Clone, Debug)]
pub struct SpawnSpec {
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub cwd: PathBuf,
    /// Bound over /tmp inside the mount namespace.
    pub tmp_dir: PathBuf,
    pub hostname: String,
    /// `cgroup.procs` files the child is put into before it execs.
    pub cgroup_procs: Vec<PathBuf>,
}

/// A started init process: its pid in the agent's pid namespace, which is also its process
/// group (it calls setsid).
#[derive(Debug)]
pub struct Spawned {
    pub pid: i32,
    /// Cgroup writes that failed (the pod runs without that limit).
    pub cgroup_warnings: Vec<String>,
}

struct Prepared {
    argv: Vec<CString>,
    envp: Vec<CString>,
    cwd: CString,
    tmp_dir: CString,
    hostname: Vec<u8>,
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

/// Everything the child touches, prepared before cloning: the child of a multi-threaded
/// process may only make async-signal-safe calls, so it must not allocate.
struct ChildCtx<'a> {
    p: &'a Prepared,
    argv: &'a [*const c_char],
    envp: &'a [*const c_char],
    namespaces: bool,
    sync_r: i32,
    sync_w: i32,
    err_r: i32,
    err_w: i32,
}

fn fail(ctx: &ChildCtx<'_>, stage: usize) -> ! {
    let errno = nix::errno::Errno::last_raw();
    let mut buf = [0u8; 5];
    buf[0] = stage as u8;
    buf[1..].copy_from_slice(&errno.to_ne_bytes());
    // SAFETY: plain syscalls on valid fds and a stack buffer; _exit never returns.
    unsafe {
        libc::write(ctx.err_w, buf.as_ptr().cast(), buf.len());
        libc::_exit(127)
    }
}

fn child(ctx: &ChildCtx<'_>) -> isize {
    let c = |s: &str| s.as_ptr().cast::<c_char>();
    // SAFETY: only async-signal-safe libc calls on data prepared by the parent (NUL-terminated
    // strings and pointer arrays that outlive this function); no allocation.
    unsafe {
        libc::close(ctx.sync_w);
        libc::close(ctx.err_r);
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
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
        let mut b = 0u8;
        if libc::read(ctx.sync_r, (&raw mut b).cast(), 1) != 1 {
            // The parent gave up on us.
            libc::_exit(127);
        }
        libc::close(ctx.sync_r);
        libc::execve(ctx.argv[0], ctx.argv.as_ptr(), ctx.envp.as_ptr());
        fail(ctx, 7)
    }
}

fn pipe() -> Result<(OwnedFd, OwnedFd), SpawnError> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(SpawnError::Pipe)
}

/// Starts the init process. Must be called on a thread that lives as long as the child
/// (normally the thread that then calls [`wait`]): the child gets SIGKILL when the thread that
/// created it exits.
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
    };
    let argv = pointers(&p.argv);
    let envp = pointers(&p.envp);
    let (sync_r, sync_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let ctx = ChildCtx {
        p: &p,
        argv: &argv,
        envp: &envp,
        namespaces,
        sync_r: sync_r.as_raw_fd(),
        sync_w: sync_w.as_raw_fd(),
        err_r: err_r.as_raw_fd(),
        err_w: err_w.as_raw_fd(),
    };
    let flags = if namespaces {
        CloneFlags::CLONE_NEWNS
            | CloneFlags::CLONE_NEWPID
            | CloneFlags::CLONE_NEWUTS
            | CloneFlags::CLONE_NEWIPC
    } else {
        CloneFlags::empty()
    };
    let mut stack = vec![0u8; 256 * 1024];
    // SAFETY: without CLONE_VM the child runs on a copy-on-write copy of our memory, so `ctx`
    // and `stack` stay valid for it; `child` only makes async-signal-safe calls and never
    // returns (execve or _exit).
    let pid = unsafe {
        nix::sched::clone(
            Box::new(|| child(&ctx)),
            &mut stack,
            flags,
            Some(libc::SIGCHLD),
        )
    }
    .map_err(SpawnError::Clone)?;
    drop(sync_r);
    drop(err_w);
    let mut cgroup_warnings = Vec::new();
    for f in &spec.cgroup_procs {
        if let Err(e) = std::fs::write(f, pid.as_raw().to_string()) {
            cgroup_warnings.push(format!("join {}: {e}", f.display()));
        }
    }
    let _ = nix::unistd::write(&sync_w, &[1]);
    drop(sync_w);
    let mut buf = [0u8; 5];
    let mut got = 0;
    while got < buf.len() {
        match nix::unistd::read(&err_r, &mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(nix::Error::EINTR) => {}
            Err(_) => break,
        }
    }
    if got == 0 {
        return Ok(Spawned {
            pid: pid.as_raw(),
            cgroup_warnings,
        });
    }
    let _ = waitpid(pid, None);
    let stage = STAGES
        .get(usize::from(buf[0]))
        .copied()
        .unwrap_or("unknown");
    let errno = i32::from_ne_bytes([buf[1], buf[2], buf[3], buf[4]]);
    Err(SpawnError::Child {
        stage,
        errno: nix::Error::from_raw(errno),
    })
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
