//! The bootstrap role (`opensandbox-executor -- <entrypoint>`) and PID 1 duties.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

fn wait_exit(
    child: &mut std::process::Child,
    within: Duration,
) -> Option<std::process::ExitStatus> {
    let until = Instant::now() + within;
    while Instant::now() < until {
        if let Some(st) = child.try_wait().unwrap() {
            return Some(st);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

#[test]
fn exits_with_the_entrypoint_status_and_serves_meanwhile() {
    let mut ex = Executor::start_with(Opts {
        entrypoint: vec!["sh", "-c", "sleep 1; exit 7"],
        ..Default::default()
    });
    assert!(std::net::TcpStream::connect(("127.0.0.1", ex.port)).is_ok());
    let st =
        wait_exit(&mut ex.child, Duration::from_secs(10)).expect("executor exits after entrypoint");
    assert_eq!(st.code(), Some(7));
}

#[test]
fn sigterm_is_forwarded_to_the_entrypoint() {
    let marker = tempfile::tempdir().unwrap();
    let file = marker.path().join("got-term");
    let script = format!(
        "trap 'echo term > {}; exit 0' TERM; while true; do sleep 0.1; done",
        file.display()
    );
    let mut ex = Executor::start_with(Opts {
        entrypoint: vec!["sh", "-c", &script],
        ..Default::default()
    });
    std::thread::sleep(Duration::from_millis(300));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(ex.pid() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let st =
        wait_exit(&mut ex.child, Duration::from_secs(10)).expect("executor exits after SIGTERM");
    assert_eq!(st.code(), Some(0));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "term\n");
}

#[test]
fn a_sigterm_at_any_moment_of_the_start_stops_the_executor() {
    // Pods are often deleted right after they start; a SIGTERM that arrives while the
    // executor is still starting its server must stop it like any other.
    for delay_us in (0..40u64).map(|i| i * 250) {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_opensandbox-executor"))
            .arg(format!("--port={}", free_port()))
            .arg("--task-listen-addr")
            .arg(format!("127.0.0.1:{}", free_port()))
            .arg("--task-data-dir")
            .arg(dir.path().join("tasks"))
            .args(["--", "sleep", "60"])
            .env("EXECD_ENVS", dir.path().join("envs"))
            .env("EXECD_LOG", "error")
            .stdin(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_micros(delay_us));
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        let st = wait_exit(&mut child, Duration::from_secs(10));
        if st.is_none() {
            let _ = child.kill();
        }
        assert!(
            st.is_some(),
            "still running 10 s after a SIGTERM {delay_us} us into its start"
        );
    }
}

#[test]
fn the_entrypoint_sees_execd_envs() {
    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("env");
    let script = format!("echo \"$EXECD_ENVS\" > {}; sleep 1", file.display());
    let mut ex = Executor::start_with(Opts {
        entrypoint: vec!["sh", "-c", &script],
        ..Default::default()
    });
    wait_exit(&mut ex.child, Duration::from_secs(10)).unwrap();
    assert!(
        std::fs::read_to_string(&file)
            .unwrap()
            .trim()
            .ends_with("envs")
    );
}

/// Runs the executor as PID 1 of a new PID namespace (needs root and util-linux unshare).
#[test]
fn reaps_orphaned_zombies_as_pid1() {
    if !nix::unistd::getuid().is_root()
        || Command::new("unshare").arg("--version").output().is_err()
    {
        eprintln!("skipping: needs root and unshare");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("zombies");
    // The entrypoint orphans 20 short-lived grandchildren, waits for them to die, then
    // counts zombies in the namespace.
    let script = format!(
        "for i in $(seq 20); do sh -c 'sleep 0.1 &'; done; sleep 1.5; \
         grep -l '^State:.*Z' /proc/[0-9]*/status 2>/dev/null | wc -l > {}",
        report.display()
    );
    let port = free_port().to_string();
    let task = format!("127.0.0.1:{}", free_port());
    let mut child = Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc"])
        .arg(env!("CARGO_BIN_EXE_opensandbox-executor"))
        .args([
            "--port",
            &port,
            "--task-listen-addr",
            &task,
            "--no-task-api",
            "--",
            "sh",
            "-c",
            &script,
        ])
        .env("EXECD_ENVS", dir.path().join("envs"))
        .spawn()
        .unwrap();
    let st = wait_exit(&mut child, Duration::from_secs(20)).expect("finishes");
    if !st.success() && !report.exists() {
        eprintln!("skipping: unshare not permitted here ({st:?})");
        return;
    }
    assert_eq!(std::fs::read_to_string(&report).unwrap().trim(), "0");
}

#[test]
fn install_copies_the_binary_for_init_containers() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("bin/opensandbox-executor");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_opensandbox-executor"))
        .arg("install")
        .arg(&dest)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(&dest).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o755);
    let version = std::process::Command::new(&dest)
        .arg("--version")
        .output()
        .unwrap();
    assert!(version.status.success());
}
