//! PID 1 duties and the bootstrap role.
//!
//! As PID 1 the executor forks itself: the parent only reaps every zombie and forwards
//! signals to the child, which runs the real executor. This keeps the reaper from stealing
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

/// Runs as init: spawns the executor as a child and returns its exit code once it ends.
pub fn run_init() -> std::io::Result<i32> {
    let exe = std::env::current_exe().unwrap_or_else(|_| "/proc/self/exe".into());
    let child = std::process::Command::new(exe)
        .args(std::env::args_os().skip(1))
        .env(CHILD_ENV, "1")
        .spawn()?;
    let main = Pid::from_raw(child.id() as i32);
    let mut set = SigSet::empty();
    set.add(Signal::SIGCHLD);
    for s in FORWARDED {
        set.add(s);
    }
    set.thread_block().map_err(std::io::Error::from)?;
    loop {
        // Reap before waiting so a SIGCHLD that arrived before blocking is not missed.
        if let Some(code) = reap_all(main) {
            return Ok(code);
        }
        match set.wait() {
            Ok(Signal::SIGCHLD) | Err(_) => {}
            Ok(sig) => {
                let _ = kill(main, sig);
            }
        }
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
