//! Bash sessions: saved environment and working directory, one fresh bash per run.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use nix::sys::signal::Signal;
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;

use super::commands::{PING_EVERY, Sink, sleep_opt};
use super::state::lock;
use crate::error::{ApiError, ApiResult};
use crate::process;
use crate::stream::{Event, LineSplitter, midstream_error};

pub struct SessionData {
    pub env: BTreeMap<String, String>,
    pub cwd: PathBuf,
    pub running_pgid: Option<i32>,
}

pub struct Session {
    pub id: String,
    pub data: Mutex<SessionData>,
}

#[derive(Default)]
pub struct SessionRegistry {
    map: Mutex<HashMap<String, Arc<Session>>>,
}

impl SessionRegistry {
    pub fn create(&self, env: BTreeMap<String, String>, cwd: PathBuf) -> String {
        let id = uuid::Uuid::new_v4().to_string();
        let s = Arc::new(Session {
            id: id.clone(),
            data: Mutex::new(SessionData {
                env,
                cwd,
                running_pgid: None,
            }),
        });
        lock(&self.map).insert(id.clone(), s);
        id
    }
    pub fn get(&self, id: &str) -> Option<Arc<Session>> {
        lock(&self.map).get(id).cloned()
    }
    /// Forgets the session and SIGKILLs a running process group.
    pub fn remove(&self, id: &str) -> bool {
        let Some(s) = lock(&self.map).remove(id) else {
            return false;
        };
        if let Some(pgid) = lock(&s.data).running_pgid {
            process::kill_group(pgid, Signal::SIGKILL);
        }
        true
    }
}

/// Single-quotes a string for bash.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The script of one run: saves exported variables (NUL separated) and the final
/// directory into side files on exit, whatever way the command ends.
pub fn run_script(state_base: &Path, cwd: &Path, command: &str) -> String {
    let base = state_base.to_string_lossy();
    format!(
        "__osb_env={env}\n__osb_pwd={pwd}\n\
         trap '__osb_rc=$?; for __osb_n in $(compgen -e); do printf \"%s=%s\\0\" \"$__osb_n\" \"${{!__osb_n}}\"; done > \"$__osb_env\" 2>/dev/null; pwd > \"$__osb_pwd\" 2>/dev/null; exit $__osb_rc' EXIT\n\
         cd -- {cwd} || exit 1\n{command}\n",
        env = shell_quote(&format!("{base}.env")),
        pwd = shell_quote(&format!("{base}.pwd")),
        cwd = shell_quote(&cwd.to_string_lossy()),
    )
}

/// Parses `NAME=value\0...` as written by the run script.
pub fn parse_env_dump(bytes: &[u8]) -> BTreeMap<String, String> {
    bytes
        .split(|b| *b == 0)
        .filter_map(|entry| {
            let s = String::from_utf8_lossy(entry);
            let (k, v) = s.split_once('=')?;
            (!k.is_empty() && !k.starts_with("__osb_")).then(|| (k.to_string(), v.to_string()))
        })
        .collect()
}

pub struct RunRequest {
    pub command: String,
    pub cwd: Option<PathBuf>,
    pub timeout: Option<Duration>,
}

pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

pub fn start_run(
    tmp: &Path,
    session: Arc<Session>,
    req: RunRequest,
) -> ApiResult<mpsc::Receiver<Bytes>> {
    let (env, cwd) = {
        let d = lock(&session.data);
        (
            d.env.clone(),
            req.cwd.clone().unwrap_or_else(|| d.cwd.clone()),
        )
    };
    let state_base = tmp.join(format!(
        "session-{}-{}",
        session.id,
        uuid::Uuid::new_v4().simple()
    ));
    let script = run_script(&state_base, &cwd, &req.command);
    let (rd, wr) = nix::unistd::pipe()
        .map_err(|e| ApiError::runtime(format!("error running in session. {e}")))?;
    let wr2 = wr
        .try_clone()
        .map_err(|e| ApiError::runtime(format!("error running in session. {e}")))?;
    let mut cmd = tokio::process::Command::new("bash");
    cmd.arg("--noprofile")
        .arg("--norc")
        .arg("-c")
        .arg(script)
        .env_clear()
        .envs(&env)
        .current_dir(if cwd.is_dir() {
            cwd.as_path()
        } else {
            Path::new("/")
        })
        .stdin(Stdio::null())
        .stdout(Stdio::from(wr))
        .stderr(Stdio::from(wr2));
    process::configure(&mut cmd, None, None);
    let child = cmd
        .spawn()
        .map_err(|e| ApiError::runtime(format!("error running in session. {e}")))?;
    // The parent's copies of the write end were moved into `cmd`; drop it so EOF arrives.
    drop(cmd);
    let reader = tokio::net::unix::pipe::Receiver::from_owned_fd(rd)
        .map_err(|e| ApiError::runtime(format!("error running in session. {e}")))?;
    let pgid = child.id().map_or(0, |p| p as i32);
    lock(&session.data).running_pgid = Some(pgid);
    let (tx, rx) = mpsc::channel(32);
    tokio::spawn(pump(
        session,
        child,
        reader,
        tx,
        pgid,
        state_base,
        req.timeout.unwrap_or(DEFAULT_TIMEOUT),
    ));
    Ok(rx)
}

async fn pump(
    session: Arc<Session>,
    mut child: tokio::process::Child,
    mut reader: tokio::net::unix::pipe::Receiver,
    tx: mpsc::Sender<Bytes>,
    pgid: i32,
    state_base: PathBuf,
    timeout: Duration,
) {
    let started = Instant::now();
    let closed_tx = tx.clone();
    let mut sink = Sink::new(tx);
    sink.event(Event::init(&session.id)).await;
    let mut split = LineSplitter::new(true);
    let mut buf = vec![0u8; 64 * 1024];
    let mut lines = Vec::new();
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + PING_EVERY, PING_EVERY);
    let deadline = tokio::time::Instant::now() + timeout;
    let mut reading = true;
    let mut exit = None;
    let mut drain_until = None;
    let mut timed_out = false;
    loop {
        if !reading && exit.is_some() {
            break;
        }
        tokio::select! {
            n = reader.read(&mut buf), if reading => match n {
                Ok(n) if n > 0 => split.push(&buf[..n], &mut lines),
                _ => { reading = false; split.finish(&mut lines); }
            },
            st = child.wait(), if exit.is_none() => {
                exit = Some(st);
                drain_until = Some(tokio::time::Instant::now() + Duration::from_millis(250));
            }
            _ = sleep_opt(drain_until) => { split.finish(&mut lines); reading = false; }
            _ = ping.tick() => sink.event(Event::ping()).await,
            _ = tokio::time::sleep_until(deadline), if !timed_out => {
                timed_out = true;
                process::kill_group(pgid, Signal::SIGKILL);
            }
            _ = closed_tx.closed() => {
                // Client went away: the run is cancelled.
                process::kill_group(pgid, Signal::SIGKILL);
                let _ = child.wait().await;
                break;
            }
        }
        sink.batch(Event::stdout, &mut lines).await;
    }
    drop(closed_tx);
    lock(&session.data).running_pgid = None;
    let env_path = PathBuf::from(format!("{}.env", state_base.display()));
    let pwd_path = PathBuf::from(format!("{}.pwd", state_base.display()));
    if let Ok(dump) = tokio::fs::read(&env_path).await {
        let env = parse_env_dump(&dump);
        if !env.is_empty() {
            lock(&session.data).env = env;
        }
    }
    if let Ok(pwd) = tokio::fs::read_to_string(&pwd_path).await {
        let pwd = pwd.trim_end_matches('\n');
        if !pwd.is_empty() {
            lock(&session.data).cwd = PathBuf::from(pwd);
        }
    }
    let _ = tokio::fs::remove_file(&env_path).await;
    let _ = tokio::fs::remove_file(&pwd_path).await;
    if timed_out {
        sink.send(midstream_error(
            crate::error::RUNTIME_ERROR,
            &format!("error running in session. timeout after {timeout:?}"),
        ))
        .await;
        return;
    }
    match exit {
        Some(Ok(status)) => {
            let code = process::exit_code(&status);
            if code == 0 {
                sink.event(Event::complete(started.elapsed().as_millis() as u64))
                    .await;
            } else {
                sink.event(Event::exec_error(
                    code.to_string(),
                    format!("command exited with code {code}"),
                ))
                .await;
            }
        }
        Some(Err(e)) => {
            sink.event(Event::exec_error("-1".into(), e.to_string()))
                .await;
        }
        None => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("a'b"), r"'a'\''b'");
    }

    #[test]
    fn env_dump() {
        let m = parse_env_dump(b"A=1\0B=x=y\0__osb_rc=0\0\0C=\n2\0");
        assert_eq!(m.get("A").map(String::as_str), Some("1"));
        assert_eq!(m.get("B").map(String::as_str), Some("x=y"));
        assert_eq!(m.get("C").map(String::as_str), Some("\n2"));
        assert!(!m.contains_key("__osb_rc"));
    }
}
