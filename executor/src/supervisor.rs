//! PID 1 duties and the bootstrap role.
//!
//! As PID 1 the executor forks itself (no second exec): the parent only reaps every zombie
//! and forwards signals to the child, which runs the real executor. This keeps the reaper from stealing
//! exit statuses of commands the executor itself waits for.

use nix::sys::signal::{SigSet, Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

pub const CHILD_ENV: &str = "OPENSANDBOX_EXECUTOR_CHILD";

const FORWARDED: [Signal; 7] = [
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
];

pub fn should_run_init(disabled: bool) -> bool {
    !disabled && nix::unistd::getpid().as_raw() == 1 && std::env::var_os(CHILD_ENV).is_none()
}

/// What [`fork_init`] made of this process.
pub enum Role {
    /// The child: go on and run the executor.
    Executor,
    /// The init: the executor child ended with this exit code.
    InitDone(i32),
}

/// Runs as init: forks the executor (no second exec: the child simply returns and goes on
/// with `main`), then reaps every zombie and forwards signals until that child ends.
/// Must be called while the process has a single thread.
pub fn fork_init() -> std::io::Result<Role> {
    let mut set = SigSet::empty();
    set.add(Signal::SIGCHLD);
    for s in FORWARDED {
        set.add(s);
    }
    // Blocked before the fork so a signal sent to the init in between is forwarded, not lost
    // (an init without a handler never sees it); the child restores the mask it had.
    let previous = set.thread_swap_mask(nix::sys::signal::SigmaskHow::SIG_BLOCK)?;
    // SAFETY: the process is single-threaded here (the caller's contract), so the child gets a
    // consistent copy of every lock and allocator.
    match unsafe { nix::unistd::fork() }? {
        nix::unistd::ForkResult::Child => {
            previous.thread_set_mask()?;
            // SAFETY: still single-threaded; the variable only marks the executor's own
            // environment as "not the init" for anything it starts.
            unsafe { std::env::set_var(CHILD_ENV, "1") };
            Ok(Role::Executor)
        }
        nix::unistd::ForkResult::Parent { child } => loop {
            // Reap before waiting so a SIGCHLD that arrived before blocking is not missed.
            if let Some(code) = reap_all(child) {
                return Ok(Role::InitDone(code));
            }
            match set.wait() {
                Ok(Signal::SIGCHLD) | Err(_) => {}
                Ok(sig) => {
                    let _ = kill(child, sig);
                }
            }
        },
    }
}

/// Reaps every exited child; returns the main child's exit code when it was among them.
fn reap_all(main: Pid) -> Option<i32> {
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) if pid == main => return Some(code),
            Ok(WaitStatus::Signaled(pid, sig, _)) if pid == main => return Some(128 + sig as i32),
            Ok(WaitStatus::StillAlive) | Err(_) => return None,
            Ok(_) => continue,
        }
    }
}
