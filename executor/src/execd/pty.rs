//! `/pty` sessions: an interactive shell (PTY or pipe mode) attached over WebSocket, with a
//! 1 MiB replay buffer and single-client attach (takeover evicts the current client).

use std::collections::{HashMap, VecDeque};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use bytes::Bytes;
use serde::Deserialize;
use tokio::sync::{broadcast, oneshot};

use super::files::parse_json;
use super::query;
use super::state::{Shared, lock};
use crate::error::{ApiError, ApiResult, CONTEXT_NOT_FOUND};
use crate::process;

pub const RING_BYTES: usize = 1024 * 1024;

/// Output history: the last `RING_BYTES` bytes and the total ever produced.
#[derive(Default)]
pub struct Ring {
    buf: VecDeque<u8>,
    total: u64,
}

impl Ring {
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend(data);
        self.total += data.len() as u64;
        let excess = self.buf.len().saturating_sub(RING_BYTES);
        self.buf.drain(..excess);
    }
    pub fn total(&self) -> u64 {
        self.total
    }
    /// Bytes from offset `since` (clamped to what is still held) and the actual start offset.
    pub fn since(&self, since: u64) -> (u64, Vec<u8>) {
        let start = self.total - self.buf.len() as u64;
        let from = since.clamp(start, self.total);
        let skip = (from - start) as usize;
        (from, self.buf.iter().skip(skip).copied().collect())
    }
}

#[derive(Clone, Debug)]
enum Out {
    Data(u8, Bytes),
    Exit(i32),
}

enum Input {
    Data(Vec<u8>),
    Resize(u16, u16),
}

#[derive(Default)]
struct Inner {
    started: bool,
    pty_mode: bool,
    pgid: i32,
    exit_code: Option<i32>,
    ring: Ring,
    input: Option<std::sync::mpsc::Sender<Input>>,
    attached: Option<(u64, oneshot::Sender<()>)>,
    next_client: u64,
}

pub struct PtySession {
    pub id: String,
    cwd: PathBuf,
    command: Option<String>,
    inner: Mutex<Inner>,
    events: broadcast::Sender<Out>,
}

#[derive(Default)]
pub struct PtyRegistry {
    map: Mutex<HashMap<String, Arc<PtySession>>>,
}

impl PtyRegistry {
    fn get(&self, id: &str) -> Option<Arc<PtySession>> {
        lock(&self.map).get(id).cloned()
    }
}

#[derive(Deserialize, Default)]
struct CreatePty {
    #[serde(default)]
    cwd: Option<String>,
    #[serde(default)]
    command: Option<String>,
}

fn not_found(id: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        CONTEXT_NOT_FOUND,
        format!("pty session {id} not found"),
    )
}

pub async fn create(state: web::Data<Shared>, body: web::Bytes) -> ApiResult<HttpResponse> {
    let req: CreatePty = if body.iter().all(u8::is_ascii_whitespace) {
        CreatePty::default()
    } else {
        parse_json(&body)?
    };
    let cwd = match req.cwd.filter(|c| !c.is_empty()) {
        Some(raw) => {
            let p = state.resolve(&raw)?;
            std::fs::create_dir_all(&p).map_err(|e| ApiError::runtime(e.to_string()))?;
            p
        }
        None => state.cwd.clone(),
    };
    let id = uuid::Uuid::new_v4().to_string();
    let (events, _) = broadcast::channel(1024);
    lock(&state.ptys.map).insert(
        id.clone(),
        Arc::new(PtySession {
            id: id.clone(),
            cwd,
            command: req.command.filter(|c| !c.is_empty()),
            inner: Mutex::new(Inner::default()),
            events,
        }),
    );
    Ok(HttpResponse::Created().json(serde_json::json!({ "session_id": id })))
}

pub async fn status(state: web::Data<Shared>, id: web::Path<String>) -> ApiResult<HttpResponse> {
    let s = state.ptys.get(&id).ok_or_else(|| not_found(&id))?;
    let inner = lock(&s.inner);
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "session_id": s.id,
        "running": inner.started && inner.exit_code.is_none(),
        "output_offset": inner.ring.total(),
    })))
}

pub async fn delete(state: web::Data<Shared>, id: web::Path<String>) -> ApiResult<HttpResponse> {
    let s = lock(&state.ptys.map)
        .remove(id.as_str())
        .ok_or_else(|| not_found(&id))?;
    let mut inner = lock(&s.inner);
    if inner.started && inner.exit_code.is_none() {
        process::kill_group(inner.pgid, nix::sys::signal::Signal::SIGKILL);
    }
    if let Some((_, evict)) = inner.attached.take() {
        let _ = evict.send(());
    }
    Ok(HttpResponse::Ok().finish())
}

fn shell_command(command: Option<&str>) -> Command {
    let mut cmd = Command::new(process::shell());
    if process::shell() == "bash" {
        cmd.args(["--norc", "--noprofile"]);
    }
    if let Some(c) = command {
        cmd.arg("-c").arg(c);
    }
    cmd
}

fn set_winsize(fd: i32, cols: u16, rows: u16) {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a winsize struct that lives for the duration of the call.
    unsafe {
        libc::ioctl(fd, libc::TIOCSWINSZ, &ws);
    }
}

/// Starts the shell; output is recorded in the ring and broadcast to the attached client.
fn start(session: &Arc<PtySession>, pty_mode: bool) -> std::io::Result<()> {
    let mut cmd = shell_command(session.command.as_deref());
    cmd.current_dir(&session.cwd).env("TERM", "xterm-256color");
    let (input_tx, input_rx) = std::sync::mpsc::channel::<Input>();
    let mut readers: Vec<(u8, Box<dyn Read + Send>)> = Vec::new();
    let child;
    let mut writer: Box<dyn Write + Send>;
    let mut master_fd: Option<Arc<OwnedFd>> = None;
    if pty_mode {
        let ws = nix::pty::Winsize {
            ws_row: 24,
            ws_col: 80,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        let pty = nix::pty::openpty(Some(&ws), None).map_err(std::io::Error::from)?;
        let slave = pty.slave;
        cmd.stdin(Stdio::from(slave.try_clone()?))
            .stdout(Stdio::from(slave.try_clone()?))
            .stderr(Stdio::from(slave));
        // SAFETY: setsid and ioctl are async-signal-safe; nothing is allocated here.
        unsafe {
            use std::os::unix::process::CommandExt;
            cmd.pre_exec(|| {
                nix::unistd::setsid().map_err(std::io::Error::from)?;
                if libc::ioctl(0, libc::TIOCSCTTY, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        child = cmd.spawn()?;
        drop(cmd);
        let master = Arc::new(pty.master);
        master_fd = Some(master.clone());
        readers.push((1, Box::new(std::fs::File::from(master.try_clone()?))));
        writer = Box::new(std::fs::File::from(master.try_clone()?));
    } else {
        use std::os::unix::process::CommandExt;
        cmd.process_group(0)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut c = cmd.spawn()?;
        let (stdin, stdout, stderr) = (c.stdin.take(), c.stdout.take(), c.stderr.take());
        child = c;
        writer = Box::new(stdin.ok_or_else(|| std::io::Error::other("no stdin"))?);
        readers.push((
            1,
            Box::new(stdout.ok_or_else(|| std::io::Error::other("no stdout"))?),
        ));
        readers.push((
            2,
            Box::new(stderr.ok_or_else(|| std::io::Error::other("no stderr"))?),
        ));
    }
    {
        let mut inner = lock(&session.inner);
        inner.started = true;
        inner.pty_mode = pty_mode;
        inner.pgid = child.id() as i32;
        inner.input = Some(input_tx);
    }
    std::thread::spawn(move || {
        while let Ok(msg) = input_rx.recv() {
            match msg {
                Input::Data(d) => {
                    if writer.write_all(&d).and_then(|_| writer.flush()).is_err() {
                        break;
                    }
                }
                Input::Resize(cols, rows) => {
                    if let Some(fd) = &master_fd {
                        set_winsize(fd.as_raw_fd(), cols, rows);
                    }
                }
            }
        }
    });
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let n_readers = readers.len();
    for (channel, mut reader) in readers {
        let s = session.clone();
        let done = done_tx.clone();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                match reader.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let mut inner = lock(&s.inner);
                        inner.ring.push(&buf[..n]);
                        let _ = s
                            .events
                            .send(Out::Data(channel, Bytes::copy_from_slice(&buf[..n])));
                    }
                }
            }
            let _ = done.send(());
        });
    }
    let s = session.clone();
    let mut child = child;
    std::thread::spawn(move || {
        let code = child.wait().map(|st| process::exit_code(&st)).unwrap_or(-1);
        // Let the readers drain what the shell wrote before it exited.
        for _ in 0..n_readers {
            if done_rx.recv_timeout(Duration::from_millis(500)).is_err() {
                break;
            }
        }
        let mut inner = lock(&s.inner);
        inner.exit_code = Some(code);
        inner.input = None;
        let _ = s.events.send(Out::Exit(code));
    });
    Ok(())
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum ClientMsg {
    Stdin { data: String },
    Resize { cols: u16, rows: u16 },
    Signal { signal: String },
    Ping,
}

fn signal_named(name: &str) -> Option<nix::sys::signal::Signal> {
    use nix::sys::signal::Signal::*;
    Some(match name {
        "SIGINT" => SIGINT,
        "SIGTERM" => SIGTERM,
        "SIGKILL" => SIGKILL,
        "SIGQUIT" => SIGQUIT,
        "SIGHUP" => SIGHUP,
        _ => return None,
    })
}

fn ws_error(code: &str, error: &str) -> String {
    serde_json::json!({"type": "error", "error": error, "code": code}).to_string()
}

pub async fn attach(
    state: web::Data<Shared>,
    id: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
) -> ApiResult<HttpResponse> {
    let session = state.ptys.get(&id).ok_or_else(|| not_found(&id))?;
    let qs = req.query_string();
    let takeover = query::one(qs, "takeover").is_some_and(|v| v == "1" || v == "true");
    let pty_mode = query::one(qs, "pty").is_none_or(|v| v != "0");
    let since = query::one(qs, "since").and_then(|v| v.parse::<u64>().ok());
    let (evict_rx, client_id) = {
        let mut inner = lock(&session.inner);
        if inner.attached.is_some() && !takeover {
            return Ok(HttpResponse::Conflict().json(serde_json::json!({
                "code": "ALREADY_CONNECTED", "message": "another client is attached"
            })));
        }
        if let Some((_, old)) = inner.attached.take() {
            let _ = old.send(());
        }
        let (tx, rx) = oneshot::channel();
        inner.next_client += 1;
        let client_id = inner.next_client;
        inner.attached = Some((client_id, tx));
        (rx, client_id)
    };
    let (resp, ws, msgs) =
        actix_ws::handle(&req, payload).map_err(|e| ApiError::bad_request(e.to_string()))?;
    actix_web::rt::spawn(serve_client(
        session, ws, msgs, evict_rx, client_id, pty_mode, since,
    ));
    Ok(resp)
}

async fn serve_client(
    session: Arc<PtySession>,
    mut ws: actix_ws::Session,
    mut msgs: actix_ws::MessageStream,
    mut evict: oneshot::Receiver<()>,
    client_id: u64,
    pty_mode: bool,
    since: Option<u64>,
) {
    // Subscribe and snapshot under the lock the readers append under: nothing is lost or
    // duplicated, and a freshly started shell's first output is already subscribed to.
    let (mut events, replay, needs_start, exited) = {
        let inner = lock(&session.inner);
        let replay = since.map(|s| inner.ring.since(s));
        (
            session.events.subscribe(),
            replay,
            !inner.started,
            inner.exit_code,
        )
    };
    if needs_start && let Err(e) = start(&session, pty_mode) {
        let _ = ws.text(ws_error("START_FAILED", &e.to_string())).await;
        let _ = ws.close(None).await;
        detach(&session, client_id);
        return;
    }
    let mode = if lock(&session.inner).pty_mode {
        "pty"
    } else {
        "pipe"
    };
    if let Some((offset, bytes)) = replay {
        let mut frame = vec![0x03];
        frame.extend_from_slice(&offset.to_be_bytes());
        frame.extend_from_slice(&bytes);
        let _ = ws.binary(frame).await;
    }
    let connected =
        serde_json::json!({"type": "connected", "session_id": session.id, "mode": mode});
    let _ = ws.text(connected.to_string()).await;
    if let Some(code) = exited {
        let _ = ws
            .text(serde_json::json!({"type": "exit", "exit_code": code}).to_string())
            .await;
        let _ = ws
            .close(Some((actix_ws::CloseCode::Normal, "process exited").into()))
            .await;
        detach(&session, client_id);
        return;
    }
    let mut ping = tokio::time::interval(Duration::from_secs(30));
    ping.tick().await;
    loop {
        tokio::select! {
            _ = &mut evict => {
                let _ = ws.text(ws_error("TAKEN_OVER", "another client took over the session")).await;
                let _ = ws.close(Some((actix_ws::CloseCode::Other(4001), "TAKEN_OVER").into())).await;
                return;
            }
            ev = events.recv() => match ev {
                Ok(Out::Data(ch, data)) => {
                    let mut frame = Vec::with_capacity(data.len() + 1);
                    frame.push(ch);
                    frame.extend_from_slice(&data);
                    if ws.binary(frame).await.is_err() { break; }
                }
                Ok(Out::Exit(code)) => {
                    let _ = ws.text(serde_json::json!({"type": "exit", "exit_code": code}).to_string()).await;
                    let _ = ws.close(Some((actix_ws::CloseCode::Normal, "process exited").into())).await;
                    detach(&session, client_id);
                    return;
                }
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => break,
            },
            _ = ping.tick() => {
                if ws.ping(b"").await.is_err() { break; }
            }
            m = tokio::time::timeout(Duration::from_secs(60), msgs.recv()) => {
                let m = match m {
                    Err(_) => break,
                    Ok(None) | Ok(Some(Err(_))) => break,
                    Ok(Some(Ok(m))) => m,
                };
                let input = lock(&session.inner).input.clone();
                match m {
                    actix_ws::Message::Binary(b) => {
                        if b.first() == Some(&0x00) {
                            if let Some(tx) = input { let _ = tx.send(Input::Data(b[1..].to_vec())); }
                        } else {
                            let _ = ws.text(ws_error("INVALID_FRAME", "binary frames must start with 0x00")).await;
                        }
                    }
                    actix_ws::Message::Text(t) => match serde_json::from_str::<ClientMsg>(&t) {
                        Ok(ClientMsg::Stdin { data }) => {
                            match input {
                                Some(tx) => { let _ = tx.send(Input::Data(data.into_bytes())); }
                                None => { let _ = ws.text(ws_error("STDIN_WRITE_FAILED", "process is not running")).await; }
                            }
                        }
                        Ok(ClientMsg::Resize { cols, rows }) => {
                            if let Some(tx) = input { let _ = tx.send(Input::Resize(cols, rows)); }
                        }
                        Ok(ClientMsg::Signal { signal }) => match signal_named(&signal) {
                            Some(sig) => { process::kill_group(lock(&session.inner).pgid, sig); }
                            None => { let _ = ws.text(ws_error("INVALID_FRAME", &format!("unknown signal {signal}"))).await; }
                        },
                        Ok(ClientMsg::Ping) => { let _ = ws.text(r#"{"type":"pong"}"#).await; }
                        Err(e) => { let _ = ws.text(ws_error("INVALID_FRAME", &e.to_string())).await; }
                    },
                    actix_ws::Message::Ping(p) => { let _ = ws.pong(&p).await; }
                    actix_ws::Message::Close(_) => break,
                    _ => {}
                }
            }
        }
    }
    detach(&session, client_id);
    let _ = ws.close(None).await;
}

fn detach(session: &PtySession, client_id: u64) {
    let mut inner = lock(&session.inner);
    if inner
        .attached
        .as_ref()
        .is_some_and(|(id, _)| *id == client_id)
    {
        inner.attached = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_keeps_the_tail_and_offsets() {
        let mut r = Ring::default();
        r.push(b"hello");
        assert_eq!(r.since(0), (0, b"hello".to_vec()));
        assert_eq!(r.since(3), (3, b"lo".to_vec()));
        assert_eq!(r.since(99), (5, vec![]));
        let big = vec![7u8; RING_BYTES];
        r.push(&big);
        assert_eq!(r.total(), 5 + RING_BYTES as u64);
        let (from, bytes) = r.since(0);
        assert_eq!(from, 5);
        assert_eq!(bytes.len(), RING_BYTES);
    }
}
