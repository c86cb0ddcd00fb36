//! A thin client of the executor's task API (`POST /setTasks`, `GET /getTasks`, port 5758),
//! on hyper: one short connection per call, every call bounded by a timeout.

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;

use super::task_policy::TaskReport;

/// The executor's task API port.
pub const TASK_PORT: u16 = 5758;
/// Bound of one call (connect, request and response); upstream uses 3 s too.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(3);
/// Calls of one round in flight at once.
const CONCURRENCY: usize = 32;
/// A task list larger than this is not a task list.
const MAX_RESPONSE: usize = 4 << 20;

/// What one call asks of an executor.
#[derive(Clone, Debug, PartialEq)]
pub enum Call {
    /// `POST /setTasks` with this one task (idempotent: an existing name is kept).
    Push(Value),
    /// `GET /getTasks`.
    Get,
    /// `POST /setTasks` with `[]`: stop and remove every task.
    Stop,
}

/// Why a call did not return a task list.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// No answer: connection refused, timeout, broken or unparsable response.
    #[error("{0}")]
    Unreachable(String),
    /// The executor answered with an error status.
    #[error("{0}")]
    Rejected(String),
    /// Nothing serves the task API at this address (404/405): no task of ours runs there.
    #[error("{0}")]
    NoTaskApi(String),
}

/// One call to one pod's executor, tagged with what it is for.
#[derive(Clone, Debug)]
pub struct Probe {
    pub index: u32,
    pub pod_uid: String,
    pub ip: String,
    pub call: Call,
}

#[derive(Clone, Debug)]
pub struct ProbeResult {
    pub probe: Probe,
    pub outcome: Result<Vec<TaskReport>, CallError>,
}

/// Runs every probe (bounded concurrency) and returns all results.
pub async fn run_round(probes: Vec<Probe>) -> Vec<ProbeResult> {
    futures::stream::iter(probes)
        .map(|probe| async move {
            let outcome = call(&probe.ip, &probe.call).await;
            ProbeResult { probe, outcome }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await
}

/// One call with the [`CALL_TIMEOUT`] bound.
pub async fn call(ip: &str, what: &Call) -> Result<Vec<TaskReport>, CallError> {
    let addr = if ip.contains(':') {
        format!("[{ip}]:{TASK_PORT}")
    } else {
        format!("{ip}:{TASK_PORT}")
    };
    let (method, path, body) = match what {
        Call::Push(task) => (
            Method::POST,
            "/setTasks",
            Value::Array(vec![task.clone()]).to_string(),
        ),
        Call::Get => (Method::GET, "/getTasks", String::new()),
        Call::Stop => (Method::POST, "/setTasks", "[]".to_string()),
    };
    match tokio::time::timeout(CALL_TIMEOUT, request(&addr, method, path, body)).await {
        Ok(r) => r,
        Err(_) => Err(CallError::Unreachable(format!(
            "the executor at {addr} did not answer within {}s",
            CALL_TIMEOUT.as_secs()
        ))),
    }
}

async fn request(
    addr: &str,
    method: Method,
    path: &str,
    body: String,
) -> Result<Vec<TaskReport>, CallError> {
    let unreachable = |what: &str, e: &dyn std::fmt::Display| {
        CallError::Unreachable(format!("the executor at {addr}: {what}: {e}"))
    };
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| unreachable("connect", &e))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| unreachable("handshake", &e))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header(hyper::header::HOST, addr)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| unreachable("request", &e))?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| unreachable("request", &e))?;
    let status = resp.status();
    let bytes = Limited::new(resp.into_body(), MAX_RESPONSE)
        .collect()
        .await
        .map_err(|e| unreachable("response body", &e))?
        .to_bytes();
    if status != StatusCode::OK {
        let message = serde_json::from_slice::<Value>(&bytes)
            .ok()
            .and_then(|v| v.get("message").and_then(Value::as_str).map(String::from))
            .unwrap_or_else(|| String::from_utf8_lossy(&bytes).chars().take(512).collect());
        let reason = format!("the executor at {addr} answered {path} with {status}: {message}");
        return Err(match status {
            StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED => CallError::NoTaskApi(reason),
            _ => CallError::Rejected(reason),
        });
    }
    serde_json::from_slice(&bytes).map_err(|e| unreachable("task list", &e))
}
