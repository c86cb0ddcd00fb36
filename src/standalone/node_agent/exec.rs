//! `pods/exec` for pods the agent runs: the command enters the pod init's ipc, uts, mount
//! and pid namespaces (like `nsenter`), joins the pod's cgroups and runs there, so `kill 1`
//! signals the pod's init and the agent's restart logic brings the container back with a
//! new containerID.

use std::ffi::CString;
use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::Shared;
use crate::standalone::apiserver::{ExecError, ExecIo, ExecRequest, PodExecutor};

/// Namespaces entered, in order (pid only affects the forked command).
const NAMESPACES: [&str; 4] = ["pid", "ipc", "uts", "mnt"];

/// The agent's [`PodExecutor`].
pub struct AgentExec {
    pub(super) shared: Arc<Shared>,
}

/// Everything the forked child needs, opened before the fork (it must not allocate).
struct Entry {
    namespaces: Vec<OwnedFd>,
    cgroup_procs: Vec<OwnedFd>,
    cwd: CString,
}

fn same_namespace(pid: i32, ns: &str) -> bool {
    match (
        std::fs::metadata(format!("/proc/{pid}/ns/{ns}")),
        std::fs::metadata(format!("/proc/self/ns/{ns}")),
    ) {
        (Ok(a), Ok(b)) => {
            use std::os::unix::fs::MetadataExt;
            a.ino() == b.ino() && a.dev() == b.dev()
        }
        _ => true,
    }
}

fn prepare(
    pid: i32,
    cgroup_procs: &[std::path::PathBuf],
    cwd: &std::path::Path,
) -> Result<Entry, ExecError> {
    if same_namespace(pid, "pid") {
        // Without its own pid namespace "1" would be the host's init.
        return Err(ExecError::Failed(
            "the pod runs without its own pid namespace (process-group fallback): exec is not supported"
                .to_string(),
        ));
    }
    let namespaces = NAMESPACES
        .iter()
        .map(|ns| {
            File::open(format!("/proc/{pid}/ns/{ns}"))
                .map(OwnedFd::from)
                .map_err(|e| ExecError::Failed(format!("opening the pod's {ns} namespace: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let cgroup_procs = cgroup_procs
        .iter()
        .filter_map(|p| std::fs::OpenOptions::new().write(true).open(p).ok())
        .map(OwnedFd::from)
        .collect();
    let cwd = CString::new(cwd.as_os_str().as_encoded_bytes())
        .map_err(|e| ExecError::Failed(e.to_string()))?;
    Ok(Entry {
        namespaces,
        cgroup_procs,
        cwd,
    })
}

/// Writes `n` in decimal to `fd` without allocating.
fn write_decimal(fd: i32, mut n: u32) {
    let mut buf = [0u8; 10];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    // SAFETY: writes a stack buffer to an open fd.
    unsafe {
        libc::write(fd, buf[i..].as_ptr().cast(), buf.len() - i);
    }
}

/// Runs in the forked child before exec: enter the namespaces, then fork once more so the
/// command is born inside the pod's pid namespace. The middle process joins the command to
/// the pod's cgroups, waits for it and exits with its status.
fn enter(ns: &[i32], procs: &[i32], cwd: &CString) -> std::io::Result<()> {
    // SAFETY: only async-signal-safe syscalls on fds and strings prepared before the fork.
    unsafe {
        for fd in ns {
            if libc::setns(*fd, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        if libc::chdir(cwd.as_ptr()) != 0 && libc::chdir(c"/".as_ptr()) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let child = libc::fork();
        if child < 0 {
            return Err(std::io::Error::last_os_error());
        }
        if child == 0 {
            // The command dies with the middle process (killed when the client goes away).
            // Its parent lives outside the pod's pid namespace, so it reads as ppid 0 while
            // alive; a non-zero ppid means the middle process is already gone.
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
            if libc::getppid() != 0 {
                libc::_exit(137);
            }
            return Ok(());
        }
        for fd in procs {
            write_decimal(*fd, child as u32);
        }
        // Let the spawner see the command's exec succeed: drop every inherited fd but stdio
        // (it holds std's exec-error pipe), then stdio too (only the command uses it).
        if libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) != 0 {
            for fd in 3..4096 {
                libc::close(fd);
            }
        }
        for fd in 0..3 {
            libc::close(fd);
        }
        let mut status = 0;
        loop {
            let r = libc::waitpid(child, &mut status, 0);
            if r == child {
                break;
            }
            if r < 0 && *libc::__errno_location() != libc::EINTR {
                libc::_exit(127);
            }
        }
        if libc::WIFEXITED(status) {
            libc::_exit(libc::WEXITSTATUS(status));
        }
        if libc::WIFSIGNALED(status) {
            libc::_exit(128 + libc::WTERMSIG(status));
        }
        libc::_exit(127)
    }
}

async fn pump<R: tokio::io::AsyncRead + Unpin>(mut r: R, tx: mpsc::Sender<Bytes>) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if tx.send(Bytes::copy_from_slice(&buf[..n])).await.is_err() {
                    return;
                }
            }
        }
    }
}

async fn run(entry: Entry, req: ExecRequest, io: ExecIo) -> Result<i32, ExecError> {
    let mut cmd = tokio::process::Command::new(&req.command[0]);
    cmd.args(&req.command[1..])
        .env_clear()
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .env("HOME", "/root")
        .env("HOSTNAME", &req.pod)
        .stdin(if io.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(if io.stdout.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stderr(if io.stderr.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .kill_on_drop(true);
    let ns: Vec<i32> = entry.namespaces.iter().map(|f| f.as_raw_fd()).collect();
    let procs: Vec<i32> = entry.cgroup_procs.iter().map(|f| f.as_raw_fd()).collect();
    let cwd = entry.cwd.clone();
    // SAFETY: `enter` only makes async-signal-safe calls on data prepared here.
    unsafe {
        cmd.pre_exec(move || enter(&ns, &procs, &cwd));
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| ExecError::Failed(format!("{:?}: {e}", req.command)))?;
    drop(entry);
    let mut tasks = Vec::new();
    if let (Some(mut stdin), Some(mut rx)) = (child.stdin.take(), io.stdin) {
        tasks.push(tokio::spawn(async move {
            while let Some(b) = rx.recv().await {
                if stdin.write_all(&b).await.is_err() {
                    break;
                }
            }
        }));
    }
    let mut readers = Vec::new();
    if let (Some(out), Some(tx)) = (child.stdout.take(), io.stdout) {
        readers.push(tokio::spawn(pump(out, tx)));
    }
    if let (Some(err), Some(tx)) = (child.stderr.take(), io.stderr) {
        readers.push(tokio::spawn(pump(err, tx)));
    }
    let status = child
        .wait()
        .await
        .map_err(|e| ExecError::Failed(e.to_string()))?;
    for r in readers {
        let _ = r.await;
    }
    for t in tasks {
        t.abort();
    }
    Ok(status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(255))
}

impl PodExecutor for AgentExec {
    fn exec(&self, req: ExecRequest, io: ExecIo) -> BoxFuture<'static, Result<i32, ExecError>> {
        let key = format!("{}/{}", req.namespace, req.pod);
        let live = self.shared.live.lock().get(&key).cloned();
        Box::pin(async move {
            let Some(live) = live else {
                return Err(ExecError::PodNotRunning(key));
            };
            if live.container != req.container {
                return Err(ExecError::ContainerNotFound {
                    pod: req.pod,
                    container: req.container,
                });
            }
            if req.command.is_empty() {
                return Err(ExecError::Failed("empty command".to_string()));
            }
            let entry = prepare(live.pid, &live.cgroup.procs_files(), &live.cwd)?;
            run(entry, req, io).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_without_allocation() {
        let (r, w) = nix::unistd::pipe().unwrap();
        for n in [0u32, 7, 42, 4_294_967_295] {
            write_decimal(w.as_raw_fd(), n);
            let mut buf = [0u8; 16];
            let got = nix::unistd::read(&r, &mut buf).unwrap();
            assert_eq!(std::str::from_utf8(&buf[..got]).unwrap(), n.to_string());
        }
    }

    #[test]
    fn own_namespace_is_detected() {
        assert!(same_namespace(std::process::id() as i32, "pid"));
    }
}
