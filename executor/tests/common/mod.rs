//! Test harness: starts the real executor binary on free ports.
#![allow(dead_code)]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A loopback port nothing listens on, for an executor to bind next. Taken below the kernel's
/// ephemeral range (32768 and up): a port the kernel hands out for `:0` can be handed out again,
/// or taken by one of the tests' own outgoing connections, before the executor binds it. Each
/// test process walks its own slice (by pid), so concurrent tests never pick the same port.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    const SLICE: u16 = 200;
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let base = 20_000 + (std::process::id() % 60) as u16 * SLICE;
    for _ in 0..SLICE {
        let port = base + NEXT.fetch_add(1, Ordering::Relaxed) % SLICE;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in 127.0.0.1:{base}..{}", base + SLICE)
}

pub struct Executor {
    pub child: Child,
    pub port: u16,
    pub task_port: u16,
    pub dir: tempfile::TempDir,
}

#[derive(Default)]
pub struct Opts<'a> {
    pub args: Vec<&'a str>,
    pub envs: Vec<(&'a str, String)>,
    pub task_dir: Option<std::path::PathBuf>,
    pub entrypoint: Vec<&'a str>,
}

impl Executor {
    pub fn start() -> Self {
        Self::start_with(Opts::default())
    }

    pub fn start_with(opts: Opts) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let task_port = free_port();
        let task_dir = opts
            .task_dir
            .clone()
            .unwrap_or_else(|| dir.path().join("tasks"));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_opensandbox-executor"));
        cmd.arg(format!("--port={port}"))
            .arg("--task-listen-addr")
            .arg(format!("127.0.0.1:{task_port}"))
            .arg("--task-data-dir")
            .arg(&task_dir)
            .args(&opts.args)
            .env("EXECD_ENVS", dir.path().join("envs"))
            .env("EXECD_LOG", "warn")
            .env_remove("EXECD_ACCESS_TOKEN")
            .stdin(Stdio::null());
        for (k, v) in &opts.envs {
            cmd.env(k, v);
        }
        if !opts.entrypoint.is_empty() {
            cmd.arg("--").args(&opts.entrypoint);
        }
        let child = cmd.spawn().expect("start executor");
        let ex = Executor {
            child,
            port,
            task_port,
            dir,
        };
        ex.wait_ready();
        ex
    }

    fn wait_ready(&self) {
        let until = Instant::now() + Duration::from_secs(15);
        while Instant::now() < until {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok()
                && std::net::TcpStream::connect(("127.0.0.1", self.task_port)).is_ok()
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("executor did not become ready");
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    pub fn task_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.task_port, path)
    }

    pub fn path(&self, rel: &str) -> String {
        self.dir.path().join(rel).to_string_lossy().into_owned()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Executor {
    /// SIGTERM first so the executor removes its temp dir, SIGKILL if it lingers.
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let until = Instant::now() + Duration::from_secs(3);
        while Instant::now() < until {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn client() -> awc::Client {
    awc::Client::builder()
        .timeout(Duration::from_secs(60))
        .disable_redirects()
        .finish()
}

/// Splits a stream body into frames; asserts each is `{json}` + blank line.
pub fn frames(body: &[u8]) -> Vec<Value> {
    let text = std::str::from_utf8(body).expect("utf8 stream");
    assert!(
        text.is_empty() || text.ends_with("\n\n"),
        "stream must end with a blank line: {text:?}"
    );
    text.split_terminator("\n\n")
        .map(|f| {
            assert!(f.starts_with('{') && !f.contains('\n'), "bad frame {f:?}");
            let v: Value = serde_json::from_str(f).unwrap();
            assert!(v["type"].is_string(), "no type: {f}");
            assert!(v["timestamp"].is_i64(), "no integer timestamp: {f}");
            v
        })
        .collect()
}

pub fn texts(events: &[Value], kind: &str) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["type"] == kind)
        .map(|e| e["text"].as_str().unwrap().to_string())
        .collect()
}

pub fn kinds(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_string())
        .filter(|k| k != "ping")
        .collect()
}

pub async fn post_json(url: &str, body: Value) -> (u16, Vec<u8>, awc::http::header::HeaderMap) {
    let mut resp = client().post(url).send_json(&body).await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let bytes = resp.body().limit(512 * 1024 * 1024).await.unwrap();
    (status, bytes.to_vec(), headers)
}

pub async fn run(ex: &Executor, body: Value) -> Vec<Value> {
    let (status, bytes, headers) = post_json(&ex.url("/command"), body).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&bytes));
    assert_eq!(headers.get("content-type").unwrap(), "text/event-stream");
    frames(&bytes)
}

pub async fn get(url: &str) -> (u16, Vec<u8>, awc::http::header::HeaderMap) {
    let mut resp = client().get(url).send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let bytes = resp.body().limit(512 * 1024 * 1024).await.unwrap();
    (status, bytes.to_vec(), headers)
}

pub async fn delete(url: &str) -> (u16, Vec<u8>) {
    let mut resp = client().delete(url).send().await.unwrap();
    let status = resp.status().as_u16();
    let bytes = resp.body().await.unwrap();
    (status, bytes.to_vec())
}

pub fn json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(bytes)))
}

/// Asserts an execd error body `{code, message}` with the given code.
pub fn assert_error(status: u16, bytes: &[u8], want_status: u16, want_code: &str) {
    assert_eq!(status, want_status, "{}", String::from_utf8_lossy(bytes));
    let v = json(bytes);
    assert_eq!(v["code"], want_code, "{v}");
    assert!(v["message"].is_string(), "{v}");
}

pub fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// One multipart part: (name, filename, content-type, bytes).
pub type Part<'a> = (&'a str, &'a str, &'a str, &'a [u8]);

/// Builds a multipart body.
pub fn multipart(parts: &[Part]) -> (String, Vec<u8>) {
    let boundary = "opensandbox_0123456789abcdef_1700000000";
    let mut body = Vec::new();
    for (name, filename, ct, data) in parts {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\nContent-Type: {ct}\r\n\r\n").as_bytes(),
        );
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}
