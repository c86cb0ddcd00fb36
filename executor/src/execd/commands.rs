//! `/command`: foreground streaming and background runs, status, logs, interrupt.

use std::collections::{BTreeMap, HashMap};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use nix::sys::signal::Signal;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;

use super::state::{Shared, lock};
use crate::error::{ApiError, ApiResult};
use crate::process;
use crate::stream::{Event, LineSplitter, frame, midstream_error};

#[derive(Debug, Deserialize, Default)]
pub struct RunCommandRequest {
    #[serde(default)]
    pub command: Option<String>,
    #[serde(default)]
    pub argv: Option<Vec<String>>,
    #[serde(default)]
    pub cwd: Option<String>,
    #[serde(default)]
    pub background: Option<bool>,
    #[serde(default)]
    pub timeout: Option<i64>,
    #[serde(default)]
    pub uid: Option<u32>,
    #[serde(default)]
    pub gid: Option<u32>,
    #[serde(default)]
    pub envs: Option<BTreeMap<String, String>>,
}

/// What to execute, after validation.
#[derive(Debug, Clone, PartialEq)]
pub enum Program {
    Shell(String),
    Argv(Vec<String>),
}

impl Program {
    pub fn display(&self) -> String {
        match self {
            Program::Shell(s) => s.clone(),
            Program::Argv(a) => a.join(" "),
        }
    }
}

/// Validation rules of `RunCommandRequest` (pure).
pub fn validate(req: &RunCommandRequest) -> Result<Program, String> {
    let program = match (&req.command, &req.argv) {
        (Some(_), Some(_)) => return Err("exactly one of command and argv is allowed".into()),
        (Some(c), None) if c.trim().is_empty() => return Err("command is required".into()),
        (Some(c), None) => Program::Shell(c.clone()),
        (None, Some(a)) => {
            if a.first().is_none_or(|f| f.is_empty()) {
                return Err("argv[0] must be non-empty".into());
            }
            if a.iter().any(|s| s.contains('\0')) {
                return Err("argv must not contain NUL bytes".into());
            }
            Program::Argv(a.clone())
        }
        (None, None) => return Err("command is required".into()),
    };
    if let Program::Shell(c) = &program
        && c.contains('\0')
    {
        return Err("command must not contain NUL bytes".into());
    }
    if req.gid.is_some() && req.uid.is_none() {
        return Err("uid is required when gid is provided".into());
    }
    if req.timeout.is_some_and(|t| t < 0) {
        return Err("timeout must be >= 1".into());
    }
    Ok(program)
}

#[derive(Debug, Clone, Serialize)]
pub struct CommandStatus {
    pub id: String,
    pub content: String,
    pub running: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub started_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
}

pub struct CommandRecord {
    pub status: Mutex<CommandStatus>,
    pub pgid: i32,
    /// Combined output file of a background command.
    pub output: Option<std::path::PathBuf>,
}

impl CommandRecord {
    fn finish(&self, code: i32, error: Option<String>) {
        let mut st = lock(&self.status);
        st.running = false;
        st.exit_code = Some(code);
        st.error = error;
        st.finished_at = Some(Utc::now());
    }
    pub fn running(&self) -> bool {
        lock(&self.status).running
    }
}

#[derive(Default)]
pub struct CommandRegistry {
    map: Mutex<HashMap<String, Arc<CommandRecord>>>,
}

impl CommandRegistry {
    pub fn get(&self, id: &str) -> Option<Arc<CommandRecord>> {
        lock(&self.map).get(id).cloned()
    }
    fn insert(&self, id: String, rec: Arc<CommandRecord>) {
        lock(&self.map).insert(id, rec);
    }
}

pub struct Prepared {
    pub id: String,
    pub program: Program,
    pub cmd: tokio::process::Command,
    pub timeout: Option<Duration>,
}

/// Builds the child command (env, cwd, identity, process group) without spawning it.
pub fn prepare(state: &Shared, req: &RunCommandRequest) -> ApiResult<Prepared> {
    let program = validate(req)
        .map_err(|m| ApiError::bad_request(format!("invalid request, validation error: {m}")))?;
    let env = process::command_env(&state.cfg.envs_file, req.envs.as_ref());
    let cwd = match req.cwd.as_deref().filter(|c| !c.is_empty()) {
        Some(raw) => {
            let lookup = |n: &str| env.get(n).cloned();
            let path = crate::paths::Resolver {
                home: &state.home,
                cwd: &state.cwd,
                lookup: &lookup,
            }
            .resolve(raw)
            .map_err(|e| match e {
                // execd fails the variable expansion itself before the run starts (500).
                crate::paths::PathError::Undefined(_) => {
                    ApiError::runtime(format!("error running commands: cwd: {e}"))
                }
                _ => ApiError::bad_request(format!("invalid request, validation error: cwd: {e}")),
            })?;
            if !path.is_dir() {
                return Err(ApiError::bad_request(format!(
                    "invalid request, validation error: cwd {} is not an existing directory",
                    path.display()
                )));
            }
            path
        }
        None => state.cwd.clone(),
    };
    let mut cmd = match &program {
        Program::Shell(c) => {
            let mut cmd = tokio::process::Command::new(process::shell());
            cmd.arg("-c").arg(c);
            cmd
        }
        Program::Argv(a) => {
            let exe = resolve_argv0(&a[0], env.get("PATH").map(String::as_str), &cwd);
            let mut cmd = tokio::process::Command::new(exe);
            cmd.arg0(&a[0]).args(&a[1..]);
            cmd
        }
    };
    cmd.env_clear()
        .envs(&env)
        .current_dir(&cwd)
        .stdin(Stdio::null())
        .kill_on_drop(false);
    process::configure(&mut cmd, req.uid, req.gid);
    let timeout = req
        .timeout
        .filter(|t| *t > 0)
        .map(|t| Duration::from_millis(t as u64));
    Ok(Prepared {
        id: uuid::Uuid::new_v4().simple().to_string(),
        program,
        cmd,
        timeout,
    })
}

/// Bare names are looked up in the child's PATH; anything with a slash is relative to cwd.
fn resolve_argv0(name: &str, path: Option<&str>, cwd: &std::path::Path) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    if name.contains('/') {
        return cwd.join(name);
    }
    for dir in path.unwrap_or("/usr/local/bin:/usr/bin:/bin").split(':') {
        let candidate = std::path::Path::new(dir).join(name);
        if let Ok(meta) = std::fs::metadata(&candidate)
            && meta.is_file()
            && meta.permissions().mode() & 0o111 != 0
        {
            return candidate;
        }
    }
    std::path::PathBuf::from(name)
}

/// Forwards stream frames to the client; after the client has gone, frames are dropped.
pub struct Sink {
    tx: Option<mpsc::Sender<Bytes>>,
}

impl Sink {
    pub fn new(tx: mpsc::Sender<Bytes>) -> Self {
        Sink { tx: Some(tx) }
    }
    pub async fn send(&mut self, bytes: Bytes) {
        if let Some(tx) = &self.tx
            && tx.send(bytes).await.is_err()
        {
            self.tx = None;
        }
    }
    pub async fn event(&mut self, ev: Event) {
        self.send(frame(&ev)).await;
    }
    /// Sends many events as one chunk (one channel message and one socket write).
    pub async fn batch(&mut self, kind: fn(String) -> Event, lines: &mut Vec<String>) {
        if lines.is_empty() {
            return;
        }
        let mut buf = Vec::new();
        for l in lines.drain(..) {
            buf.extend_from_slice(&frame(&kind(l)));
        }
        self.send(Bytes::from(buf)).await;
    }
    pub fn gone(&self) -> bool {
        self.tx.as_ref().is_none_or(|t| t.is_closed())
    }
}

pub const PING_EVERY: Duration = Duration::from_secs(3);
/// How long output is still collected after the process exited (orphans may hold the pipe).
const DRAIN_AFTER_EXIT: Duration = Duration::from_millis(250);

fn new_status(id: &str, program: &Program) -> CommandStatus {
    CommandStatus {
        id: id.to_string(),
        content: program.display(),
        running: true,
        exit_code: None,
        error: None,
        started_at: Utc::now(),
        finished_at: None,
    }
}

/// Starts a foreground command; returns the frame receiver for the response body.
pub fn start_foreground(state: &Shared, mut p: Prepared) -> mpsc::Receiver<Bytes> {
    let (tx, rx) = mpsc::channel(32);
    p.cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let spawned = p.cmd.spawn();
    let mut sink = Sink::new(tx);
    match spawned {
        Err(e) => {
            let rec = Arc::new(CommandRecord {
                status: Mutex::new(new_status(&p.id, &p.program)),
                pgid: 0,
                output: None,
            });
            rec.finish(-1, Some(e.to_string()));
            state.commands.insert(p.id.clone(), rec);
            tokio::spawn(async move {
                sink.event(Event::init(&p.id)).await;
                sink.event(Event::exec_error(e.to_string(), e.to_string()))
                    .await;
            });
        }
        Ok(child) => {
            let pgid = child.id().map_or(0, |p| p as i32);
            let rec = Arc::new(CommandRecord {
                status: Mutex::new(new_status(&p.id, &p.program)),
                pgid,
                output: None,
            });
            state.commands.insert(p.id.clone(), rec.clone());
            tokio::spawn(pump_foreground(p.id, child, sink, rec, p.timeout));
        }
    }
    rx
}

async fn pump_foreground(
    id: String,
    mut child: tokio::process::Child,
    mut sink: Sink,
    rec: Arc<CommandRecord>,
    timeout: Option<Duration>,
) {
    let started = Instant::now();
    sink.event(Event::init(&id)).await;
    let mut out = child.stdout.take();
    let mut err = child.stderr.take();
    let (mut out_split, mut err_split) = (LineSplitter::new(false), LineSplitter::new(false));
    let (mut obuf, mut ebuf) = (vec![0u8; 64 * 1024], vec![0u8; 64 * 1024]);
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + PING_EVERY, PING_EVERY);
    let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
    let mut exit: Option<std::io::Result<std::process::ExitStatus>> = None;
    let mut drain_until = None;
    let (mut lines, mut elines) = (Vec::new(), Vec::new());
    loop {
        if out.is_none() && err.is_none() && exit.is_some() {
            break;
        }
        tokio::select! {
            n = read_opt(&mut out, &mut obuf) => match n {
                Some(n) if n > 0 => out_split.push(&obuf[..n], &mut lines),
                _ => { out = None; out_split.finish(&mut lines); }
            },
            n = read_opt(&mut err, &mut ebuf) => match n {
                Some(n) if n > 0 => err_split.push(&ebuf[..n], &mut elines),
                _ => { err = None; err_split.finish(&mut elines); }
            },
            _ = ping.tick() => {
                if !sink.gone() { sink.event(Event::ping()).await; }
            }
            _ = sleep_opt(deadline), if exit.is_none() => {
                process::kill_group(rec.pgid, Signal::SIGKILL);
            }
            st = child.wait(), if exit.is_none() => {
                exit = Some(st);
                drain_until = Some(tokio::time::Instant::now() + DRAIN_AFTER_EXIT);
            }
            _ = sleep_opt(drain_until) => {
                out_split.finish(&mut lines);
                err_split.finish(&mut elines);
                sink.batch(Event::stdout, &mut lines).await;
                sink.batch(Event::stderr, &mut elines).await;
                break;
            }
        }
        sink.batch(Event::stdout, &mut lines).await;
        sink.batch(Event::stderr, &mut elines).await;
    }
    let elapsed = started.elapsed().as_millis() as u64;
    match exit {
        Some(Ok(status)) => {
            let code = process::exit_code(&status);
            if code == 0 {
                rec.finish(0, None);
                sink.event(Event::complete(elapsed)).await;
            } else {
                let desc = process::describe(&status);
                rec.finish(code, Some(desc.clone()));
                sink.event(Event::exec_error(code.to_string(), desc)).await;
            }
        }
        Some(Err(e)) => {
            rec.finish(-1, Some(e.to_string()));
            sink.event(Event::exec_error("-1".into(), e.to_string()))
                .await;
        }
        None => {}
    }
}

async fn read_opt<R: tokio::io::AsyncRead + Unpin>(
    r: &mut Option<R>,
    buf: &mut [u8],
) -> Option<usize> {
    match r {
        Some(r) => r.read(buf).await.ok(),
        None => std::future::pending().await,
    }
}

pub async fn sleep_opt(t: Option<tokio::time::Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// Starts a background command writing combined output to `<tmp>/<id>.output`.
pub fn start_background(state: &Shared, mut p: Prepared) -> mpsc::Receiver<Bytes> {
    let (tx, rx) = mpsc::channel(4);
    let mut sink = Sink::new(tx);
    let path = state.cfg.tmp_dir.join(format!("{}.output", p.id));
    let spawned = state
        .scratch_dir()
        .and_then(|_| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
        })
        .and_then(|f| Ok((f.try_clone()?, f)))
        .and_then(|(a, b)| {
            p.cmd.stdout(Stdio::from(a)).stderr(Stdio::from(b));
            p.cmd.spawn()
        });
    let pgid = spawned
        .as_ref()
        .ok()
        .and_then(|c| c.id())
        .map_or(0, |p| p as i32);
    let rec = Arc::new(CommandRecord {
        status: Mutex::new(new_status(&p.id, &p.program)),
        pgid,
        output: Some(path),
    });
    state.commands.insert(p.id.clone(), rec.clone());
    let id = p.id.clone();
    let timeout = p.timeout;
    tokio::spawn(async move {
        sink.event(Event::init(&id)).await;
        match spawned {
            Ok(mut child) => {
                sink.event(Event::complete(0)).await;
                drop(sink);
                let status = match timeout {
                    Some(t) => match tokio::time::timeout(t, child.wait()).await {
                        Ok(s) => s,
                        Err(_) => {
                            process::kill_group(rec.pgid, Signal::SIGKILL);
                            child.wait().await
                        }
                    },
                    None => child.wait().await,
                };
                match status {
                    Ok(s) if s.success() => rec.finish(0, None),
                    Ok(s) => rec.finish(process::exit_code(&s), Some(process::describe(&s))),
                    Err(e) => rec.finish(-1, Some(e.to_string())),
                }
            }
            Err(e) => {
                rec.finish(255, Some(e.to_string()));
                sink.send(midstream_error(
                    crate::error::RUNTIME_ERROR,
                    &format!("error running commands {e}"),
                ))
                .await;
            }
        }
    });
    rx
}

/// Interrupt: SIGTERM the group, wait up to 3 s, then SIGKILL.
pub async fn interrupt(rec: &CommandRecord) {
    process::kill_group(rec.pgid, Signal::SIGTERM);
    let until = Instant::now() + Duration::from_secs(3);
    while rec.running() && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if rec.running() {
        process::kill_group(rec.pgid, Signal::SIGKILL);
        let until = Instant::now() + Duration::from_secs(2);
        while rec.running() && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(json: &str) -> RunCommandRequest {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn validation() {
        assert_eq!(
            validate(&req(r#"{"command":"ls"}"#)),
            Ok(Program::Shell("ls".into()))
        );
        assert!(validate(&req(r#"{"command":""}"#)).is_err());
        assert!(validate(&req(r#"{}"#)).is_err());
        assert!(validate(&req(r#"{"command":"a","argv":["a"]}"#)).is_err());
        assert!(validate(&req(r#"{"argv":[""]}"#)).is_err());
        assert!(validate(&req(r#"{"argv":[]}"#)).is_err());
        assert_eq!(
            validate(&req(r#"{"argv":["echo","a b"]}"#)),
            Ok(Program::Argv(vec!["echo".into(), "a b".into()]))
        );
        assert_eq!(
            validate(&req(r#"{"command":"x","gid":5}"#)),
            Err("uid is required when gid is provided".into())
        );
        assert!(validate(&req(r#"{"command":"x","timeout":-1}"#)).is_err());
    }
}
