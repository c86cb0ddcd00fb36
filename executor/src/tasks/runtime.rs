//! Process runtime of tasks: a `/bin/sh` shim per task that records pid and exit code in
//! the task directory, so state survives an executor restart.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use std::os::unix::process::CommandExt;

use super::model::ProcessSpec;
use super::state::Observed;

/// The shim: runs the command in the background with output appended to the log files,
/// forwards SIGTERM to it, and writes its exit code to `exit` atomically. Where `head` and
/// `mkfifo` exist, each stream goes through a pipe that keeps its first `max` bytes and
/// drains the rest, so a log never grows past its bound; otherwise the executor's periodic
/// [`bound_logs`] cuts it. Shim variables are prefixed: the command inherits the
/// environment and must see its own values.
const SHIM: &str = r#"__osb_d=$1; __osb_max=$2; shift 2
__osb_cap() { head -c "$__osb_max"; cat >/dev/null; }
if [ "$__osb_max" -gt 0 ] 2>/dev/null && command -v head >/dev/null 2>&1 &&
   command -v mkfifo >/dev/null 2>&1 && rm -f "$__osb_d/out.pipe" "$__osb_d/err.pipe" &&
   mkfifo "$__osb_d/out.pipe" "$__osb_d/err.pipe" 2>/dev/null; then
  __osb_cap <"$__osb_d/out.pipe" >>"$__osb_d/stdout.log" &
  __osb_cap <"$__osb_d/err.pipe" >>"$__osb_d/stderr.log" &
  "$@" >"$__osb_d/out.pipe" 2>"$__osb_d/err.pipe" </dev/null &
else
  "$@" >>"$__osb_d/stdout.log" 2>>"$__osb_d/stderr.log" </dev/null &
fi
__osb_c=$!
trap 'kill -TERM $__osb_c 2>/dev/null' TERM
while :; do wait $__osb_c; __osb_rc=$?; kill -0 $__osb_c 2>/dev/null || break; done
echo $__osb_rc > "$__osb_d/exit.tmp" && mv "$__osb_d/exit.tmp" "$__osb_d/exit"
exit $__osb_rc
"#;

/// Why a task cannot start; it becomes a failed task rather than an API error, so the
/// controller sees a clear failure instead of retrying forever.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unstartable {
    pub exit_code: i32,
    pub reason: &'static str,
    pub message: String,
}

impl Unstartable {
    fn new(exit_code: i32, reason: &'static str, message: String) -> Self {
        Self {
            exit_code,
            reason,
            message,
        }
    }
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Checks what the shim cannot report well: command (on the task's PATH), env names,
/// working dir. Exit codes follow the shell: 127 not found, 126 not executable.
pub fn preflight(spec: &ProcessSpec) -> Result<(), Unstartable> {
    let Some(program) = spec.command.first().filter(|c| !c.is_empty()) else {
        return Err(Unstartable::new(
            1,
            "InvalidCommand",
            "process.command is empty".into(),
        ));
    };
    for e in spec.env.iter().flatten() {
        if e.name.is_empty() || e.name.contains(['=', '\0']) {
            return Err(Unstartable::new(
                1,
                "InvalidEnv",
                format!("invalid environment variable name {:?}", e.name),
            ));
        }
        if e.value.as_deref().is_some_and(|v| v.contains('\0')) {
            return Err(Unstartable::new(
                1,
                "InvalidEnv",
                format!("environment variable {} contains a NUL byte", e.name),
            ));
        }
    }
    let wd = spec.working_dir.as_deref().filter(|w| !w.is_empty());
    if let Some(wd) = wd
        && !Path::new(wd).is_dir()
    {
        return Err(Unstartable::new(
            1,
            "InvalidWorkingDir",
            format!("workingDir {wd} does not exist or is not a directory"),
        ));
    }
    if spec.command.iter().any(|a| a.contains('\0'))
        || spec.args.iter().flatten().any(|a| a.contains('\0'))
    {
        return Err(Unstartable::new(
            1,
            "InvalidCommand",
            "the command line contains a NUL byte".into(),
        ));
    }
    if program.contains('/') {
        let path = match wd {
            Some(wd) if !program.starts_with('/') => Path::new(wd).join(program),
            _ => PathBuf::from(program),
        };
        if !path.exists() {
            return Err(Unstartable::new(
                127,
                "CommandNotFound",
                format!("{program}: no such file"),
            ));
        }
        if !is_executable(&path) {
            return Err(Unstartable::new(
                126,
                "CommandNotExecutable",
                format!("{program}: not an executable file"),
            ));
        }
        return Ok(());
    }
    let path_var = spec
        .env
        .iter()
        .flatten()
        .rev()
        .find(|e| e.name == "PATH")
        .and_then(|e| e.value.clone())
        .or_else(|| std::env::var("PATH").ok())
        .unwrap_or_default();
    let found = path_var
        .split(':')
        .filter(|d| !d.is_empty())
        .any(|d| is_executable(&Path::new(d).join(program)));
    if !found {
        return Err(Unstartable::new(
            127,
            "CommandNotFound",
            format!("{program}: command not found in PATH {path_var}"),
        ));
    }
    Ok(())
}

/// Starts the task's shim; each log keeps at most `max_log` bytes (0: unbounded here).
pub fn start(dir: &Path, spec: &ProcessSpec, max_log: u64) -> std::io::Result<u32> {
    if spec.command.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "process.command is empty",
        ));
    }
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(SHIM)
        .arg("sh")
        .arg(dir)
        .arg(max_log.to_string())
        .args(&spec.command)
        .args(spec.args.iter().flatten())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0);
    for e in spec.env.iter().flatten() {
        cmd.env(&e.name, e.value.as_deref().unwrap_or_default());
    }
    if let Some(wd) = spec.working_dir.as_deref().filter(|w| !w.is_empty()) {
        if !Path::new(wd).is_dir() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("workingDir {wd} does not exist"),
            ));
        }
        cmd.current_dir(wd);
    }
    let mut child = cmd.spawn()?;
    let pid = child.id();
    let tmp = dir.join("pid.tmp");
    std::fs::write(&tmp, pid.to_string())?;
    std::fs::rename(&tmp, dir.join("pid"))?;
    // Reap the shim so a finished task does not linger as a zombie.
    std::thread::spawn(move || {
        let _ = child.wait();
    });
    Ok(pid)
}

fn mtime(p: &Path) -> Option<DateTime<Utc>> {
    std::fs::metadata(p)
        .ok()?
        .modified()
        .ok()
        .map(DateTime::<Utc>::from)
}

pub fn read_pid(dir: &Path) -> Option<i32> {
    std::fs::read_to_string(dir.join("pid"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

pub fn observe(dir: &Path) -> Observed {
    let pid = read_pid(dir);
    let exit = std::fs::read_to_string(dir.join("exit"))
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok())
        .and_then(|code| Some((code, mtime(&dir.join("exit"))?)));
    Observed {
        started: pid.and_then(|_| mtime(&dir.join("pid"))),
        alive: pid.is_some_and(|p| p > 0 && kill(Pid::from_raw(p), None).is_ok()),
        exit,
    }
}

/// SIGTERM the shim (it forwards to the command), wait up to 10 s, then SIGKILL the group.
pub fn stop(dir: &Path) {
    let Some(pid) = read_pid(dir).filter(|p| *p > 0) else {
        return;
    };
    let target = Pid::from_raw(pid);
    let _ = kill(target, Signal::SIGTERM);
    let until = Instant::now() + Duration::from_secs(10);
    while Instant::now() < until {
        if kill(target, None).is_err() || dir.join("exit").exists() {
            return;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let _ = killpg(target, Signal::SIGKILL);
    let _ = kill(target, Signal::SIGKILL);
}

/// The last bytes of a task's stderr, for the message of a failed task.
pub fn stderr_tail(dir: &Path, max: u64) -> Option<String> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(dir.join("stderr.log")).ok()?;
    let len = f.metadata().ok()?.len();
    f.seek(SeekFrom::Start(len.saturating_sub(max))).ok()?;
    let mut buf = Vec::new();
    f.take(max).read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf).trim().to_string();
    (!text.is_empty()).then_some(text)
}

/// Keeps each log file at most `max` bytes (the head is kept; the shim appends, so later
/// writes land at the truncated end and are cut again on the next pass).
pub fn bound_logs(dir: &Path, max: u64) {
    for name in ["stdout.log", "stderr.log"] {
        let p: PathBuf = dir.join(name);
        if std::fs::metadata(&p).is_ok_and(|m| m.len() > max)
            && let Ok(f) = std::fs::OpenOptions::new().write(true).open(&p)
        {
            let _ = f.set_len(max);
        }
    }
}
