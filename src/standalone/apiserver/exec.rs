//! `pods/exec` over WebSocket (subprotocols `v5.channel.k8s.io` and `v4.channel.k8s.io`).
//!
//! Every binary message starts with a channel byte: 0 stdin, 1 stdout, 2 stderr, 3 error
//! (one `Status` JSON at the end: Success, or Failure with an `ExitCode` cause), 4 resize;
//! v5 adds 255 (close: `[255, channel]` half-closes that channel, in practice stdin).
//! The server only frames; running the command is the job of whatever runs pods, behind
//! [`PodExecutor`] (the test kubelet, the node agent).

use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::{SinkExt, StreamExt};
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use super::registry::ResourceKey;
use super::reqlog::LoggedRequest;
use super::request::ResourcePath;
use super::server::{Body, Core, error_response};
use super::status::ApiError;

pub const STDIN: u8 = 0;
pub const STDOUT: u8 = 1;
pub const STDERR: u8 = 2;
pub const ERROR: u8 = 3;
pub const RESIZE: u8 = 4;
/// v5 only: `[CLOSE, channel]` closes one channel.
pub const CLOSE: u8 = 255;

pub const V5: &str = "v5.channel.k8s.io";
pub const V4: &str = "v4.channel.k8s.io";

/// One command to run in one container of a pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecRequest {
    pub namespace: String,
    pub pod: String,
    pub pod_uid: String,
    pub container: String,
    pub command: Vec<String>,
    pub tty: bool,
}

/// The command's streams; a stream the client did not ask for is None.
pub struct ExecIo {
    pub stdin: Option<mpsc::Receiver<Bytes>>,
    pub stdout: Option<mpsc::Sender<Bytes>>,
    pub stderr: Option<mpsc::Sender<Bytes>>,
}

/// Why a command could not run (a command that ran and exited non-zero is not an error).
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum ExecError {
    #[error("container {container:?} not found in pod {pod:?}")]
    ContainerNotFound { pod: String, container: String },
    #[error("pod {0:?} is not running on this node")]
    PodNotRunning(String),
    #[error("{0}")]
    Failed(String),
}

/// Runs commands in pods: implemented by whatever runs the pods.
pub trait PodExecutor: Send + Sync {
    /// Runs the command to completion and returns its exit code.
    fn exec(&self, req: ExecRequest, io: ExecIo) -> BoxFuture<'static, Result<i32, ExecError>>;
}

/// A binary message on `channel`.
pub fn frame(channel: u8, data: &[u8]) -> Bytes {
    let mut v = Vec::with_capacity(data.len() + 1);
    v.push(channel);
    v.extend_from_slice(data);
    Bytes::from(v)
}

/// The `Status` sent on the error channel when the command is over.
pub fn final_status(command: &[String], result: &Result<i32, ExecError>) -> Value {
    match result {
        Ok(0) => json!({"metadata": {}, "status": "Success"}),
        Ok(code) => json!({
            "metadata": {},
            "status": "Failure",
            "message": format!("command terminated with non-zero exit code: error executing command {command:?}, exit code {code}"),
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
        }),
        Err(e) => json!({
            "metadata": {},
            "status": "Failure",
            "message": e.to_string(),
            "reason": "InternalError",
        }),
    }
}

/// Picks our subprotocol from the client's offer (comma-separated, possibly several headers).
pub fn negotiate<'a>(offered: impl Iterator<Item = &'a str>) -> Option<&'static str> {
    let offered: Vec<String> = offered
        .flat_map(|h| h.split(','))
        .map(|p| p.trim().to_string())
        .collect();
    [V5, V4]
        .into_iter()
        .find(|ours| offered.iter().any(|o| o == ours))
}

/// The parsed query of an exec request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecParams {
    pub container: Option<String>,
    pub command: Vec<String>,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

/// Parses the query (`command` repeats, one argument each).
pub fn parse_params(query: Option<&str>) -> ExecParams {
    let mut p = ExecParams {
        container: None,
        command: Vec::new(),
        stdin: false,
        stdout: false,
        stderr: false,
        tty: false,
    };
    let flag = |v: &str| matches!(v, "true" | "1" | "True");
    for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match k.as_ref() {
            "container" if !v.is_empty() => p.container = Some(v.into_owned()),
            "command" => p.command.push(v.into_owned()),
            "stdin" => p.stdin = flag(&v),
            "stdout" => p.stdout = flag(&v),
            "stderr" => p.stderr = flag(&v),
            "tty" => p.tty = flag(&v),
            _ => {}
        }
    }
    p
}

/// True for `/api/v1/namespaces/{ns}/pods/{name}/exec`.
pub fn is_exec(rp: &ResourcePath) -> bool {
    rp.group.is_empty()
        && rp.plural == "pods"
        && rp.subresource.as_deref() == Some("exec")
        && rp.name.is_some()
        && rp.namespace.is_some()
}

fn pod_containers(pod: &Value) -> Vec<String> {
    pod["spec"]["containers"]
        .as_array()
        .map(|cs| {
            cs.iter()
                .filter_map(|c| c["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Checks an exec request against the stored pod; returns what to run.
fn validate(core: &Core, rp: &ResourcePath, params: &ExecParams) -> Result<ExecRequest, ApiError> {
    let ns = rp.namespace.clone().unwrap_or_default();
    let name = rp.name.clone().unwrap_or_default();
    let key = ResourceKey {
        group: String::new(),
        plural: "pods".to_string(),
    };
    let Some(pod) = core.store.get(&key, &ns, &name) else {
        return Err(match core.registry.get("", "v1", "pods") {
            Some(res) => ApiError::not_found(&res, &name),
            None => ApiError::new(404, "NotFound", format!("pods \"{name}\" not found")),
        });
    };
    let containers = pod_containers(&pod.value);
    let container = match &params.container {
        Some(c) if containers.contains(c) => c.clone(),
        Some(c) => {
            return Err(ApiError::bad_request(format!(
                "container {c} is not valid for pod {name}"
            )));
        }
        None if containers.len() == 1 => containers[0].clone(),
        None => {
            return Err(ApiError::bad_request(format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                containers.join(" ")
            )));
        }
    };
    if params.command.is_empty() {
        return Err(ApiError::bad_request(
            "you must specify at least one command for the container",
        ));
    }
    if !(params.stdin || params.stdout || params.stderr) {
        return Err(ApiError::bad_request(
            "you must specify at least 1 of stdin, stdout, stderr",
        ));
    }
    if pod.value["metadata"]["deletionTimestamp"].is_string()
        || matches!(
            pod.value["status"]["phase"].as_str(),
            Some("Succeeded") | Some("Failed")
        )
    {
        return Err(ApiError::bad_request(format!(
            "cannot exec into a container in a completed pod; current phase is {}",
            pod.value["status"]["phase"].as_str().unwrap_or("Unknown")
        )));
    }
    Ok(ExecRequest {
        namespace: ns,
        pod: name,
        pod_uid: pod.uid().to_string(),
        container,
        command: params.command.clone(),
        tty: params.tty,
    })
}

/// True for a request that asks to switch to WebSocket.
pub fn wants_upgrade<B>(req: &Request<B>) -> bool {
    req.headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// Serves one exec request: validates it, answers 101 and runs the session once the
/// connection is upgraded.
pub async fn serve<B>(core: Arc<Core>, rp: ResourcePath, mut req: Request<B>) -> Response<Body>
where
    B: Send + 'static,
{
    let mut entry = LoggedRequest {
        verb: "create".to_string(),
        resource: "pods/exec".to_string(),
        group: String::new(),
        namespace: rp.namespace.clone(),
        name: rp.name.clone(),
        code: 0,
        user_agent: req
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string(),
        field_manager: None,
    };
    let resp = match prepare(&core, &rp, &req) {
        Ok((exec, protocol, params)) => {
            let upgrade = hyper::upgrade::on(&mut req);
            let executor = core.executor.read().clone();
            tokio::spawn(async move {
                let Some(executor) = executor else { return };
                match upgrade.await {
                    Ok(upgraded) => {
                        let ws = WebSocketStream::from_raw_socket(
                            TokioIo::new(upgraded),
                            Role::Server,
                            None,
                        )
                        .await;
                        session(ws, executor, exec, params, protocol == V5).await;
                    }
                    Err(e) => tracing::debug!(error = %e, "exec upgrade failed"),
                }
            });
            switching_protocols(&req, protocol)
        }
        Err(e) => error_response(&e),
    };
    entry.code = resp.status().as_u16();
    core.log.record(entry);
    resp
}

fn prepare<B>(
    core: &Core,
    rp: &ResourcePath,
    req: &Request<B>,
) -> Result<(ExecRequest, &'static str, ExecParams), ApiError> {
    if !matches!(*req.method(), Method::GET | Method::POST) {
        return Err(ApiError::method_not_allowed(format!(
            "{} is not supported on pods/exec",
            req.method()
        )));
    }
    let decision = core.faults.decide("create", "pods/exec");
    if let Some(code) = decision.error {
        return Err(ApiError::new(
            code,
            "InternalError",
            format!("injected error {code}"),
        ));
    }
    let params = parse_params(req.uri().query());
    let exec = validate(core, rp, &params)?;
    // The upgrade handle is there only on a connection that can be taken over.
    if !wants_upgrade(req)
        || req
            .extensions()
            .get::<hyper::upgrade::OnUpgrade>()
            .is_none()
    {
        return Err(ApiError::bad_request("Upgrade request required"));
    }
    let protocol = negotiate(
        req.headers()
            .get_all(header::SEC_WEBSOCKET_PROTOCOL)
            .iter()
            .filter_map(|v| v.to_str().ok()),
    )
    .ok_or_else(|| {
        ApiError::bad_request(format!(
            "no supported WebSocket subprotocol offered (supported: {V5}, {V4})"
        ))
    })?;
    if core.executor.read().is_none() {
        return Err(ApiError::service_unavailable(format!(
            "no container runtime serves exec for pod {}",
            exec.pod
        )));
    }
    Ok((exec, protocol, params))
}

fn switching_protocols<B>(req: &Request<B>, protocol: &'static str) -> Response<Body> {
    let key = req
        .headers()
        .get(header::SEC_WEBSOCKET_KEY)
        .map(|k| derive_accept_key(k.as_bytes()))
        .unwrap_or_default();
    let mut resp = Response::new(Full::new(Bytes::new()).boxed_unsync());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(v) = HeaderValue::from_str(&key) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    h.insert(
        header::SEC_WEBSOCKET_PROTOCOL,
        HeaderValue::from_static(protocol),
    );
    resp
}

/// Pumps one exec session: client stdin to the command, its output to the client, then the
/// final status on the error channel and a close frame.
async fn session<S>(
    mut ws: WebSocketStream<S>,
    executor: Arc<dyn PodExecutor>,
    exec: ExecRequest,
    params: ExecParams,
    v5: bool,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let (stdin_tx, stdin_rx) = mpsc::channel::<Bytes>(16);
    let (out_tx, mut out_rx) = mpsc::channel::<Bytes>(64);
    let (err_tx, mut err_rx) = mpsc::channel::<Bytes>(64);
    let io = ExecIo {
        stdin: params.stdin.then_some(stdin_rx),
        stdout: params.stdout.then_some(out_tx),
        stderr: (params.stderr && !params.tty).then_some(err_tx),
    };
    let command = exec.command.clone();
    let mut stdin_tx = Some(stdin_tx);
    let mut run = executor.exec(exec, io);
    let mut client_open = true;
    let result = loop {
        tokio::select! {
            r = &mut run => break Some(r),
            Some(b) = out_rx.recv() => {
                if ws.send(Message::Binary(frame(STDOUT, &b))).await.is_err() { client_open = false; }
            }
            Some(b) = err_rx.recv() => {
                if ws.send(Message::Binary(frame(STDERR, &b))).await.is_err() { client_open = false; }
            }
            msg = ws.next(), if client_open => match msg {
                Some(Ok(Message::Binary(b))) => match b.first() {
                    Some(&STDIN) => {
                        if let Some(tx) = &stdin_tx {
                            let _ = tx.send(b.slice(1..)).await;
                        }
                    }
                    Some(&CLOSE) if v5 && b.get(1) == Some(&STDIN) => stdin_tx = None,
                    _ => {}
                },
                // The client went away: stop the command (dropping it ends it).
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break None,
                Some(Ok(_)) => {}
            },
        }
    };
    drop(stdin_tx);
    let Some(result) = result else {
        tracing::debug!(command = ?command, "exec client disconnected; command stopped");
        return;
    };
    while let Ok(b) = out_rx.try_recv() {
        let _ = ws.send(Message::Binary(frame(STDOUT, &b))).await;
    }
    while let Ok(b) = err_rx.try_recv() {
        let _ = ws.send(Message::Binary(frame(STDERR, &b))).await;
    }
    let status = final_status(&command, &result);
    let body = serde_json::to_vec(&status).unwrap_or_default();
    let _ = ws.send(Message::Binary(frame(ERROR, &body))).await;
    // A normal-closure code: Go clients treat a close without a status (1005) as an error.
    let _ = ws
        .close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: "".into(),
        }))
        .await;
}

/// Builds a body-less response with `parts` (the 101 of an in-process upgrade).
pub(crate) fn empty_body(parts: http::response::Parts) -> Response<Body> {
    Response::from_parts(parts, Full::new(Bytes::new()).boxed_unsync())
}

/// Query helper for tests: the exec query string of `command` in `container`.
pub fn exec_query(container: &str, command: &[&str]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    s.append_pair("container", container);
    for c in command {
        s.append_pair("command", c);
    }
    s.append_pair("stdout", "true");
    s.append_pair("stderr", "true");
    s.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_carry_the_channel_byte() {
        assert_eq!(&frame(STDOUT, b"hi")[..], &[1, b'h', b'i']);
        assert_eq!(&frame(ERROR, b"")[..], &[3]);
    }

    #[test]
    fn statuses() {
        let cmd = vec!["kill".to_string(), "1".to_string()];
        assert_eq!(final_status(&cmd, &Ok(0))["status"], "Success");
        let f = final_status(&cmd, &Ok(137));
        assert_eq!(f["status"], "Failure");
        assert_eq!(f["reason"], "NonZeroExitCode");
        assert_eq!(f["details"]["causes"][0]["reason"], "ExitCode");
        assert_eq!(f["details"]["causes"][0]["message"], "137");
        let e = final_status(&cmd, &Err(ExecError::Failed("boom".into())));
        assert_eq!(e["status"], "Failure");
        assert_eq!(e["message"], "boom");
    }

    #[test]
    fn negotiation_prefers_v5() {
        assert_eq!(
            negotiate(["v4.channel.k8s.io, v5.channel.k8s.io"].into_iter()),
            Some(V5)
        );
        assert_eq!(
            negotiate(["channel.k8s.io", "v4.channel.k8s.io"].into_iter()),
            Some(V4)
        );
        assert_eq!(negotiate(["base64.channel.k8s.io"].into_iter()), None);
    }

    #[test]
    fn params_keep_every_command_argument() {
        let p = parse_params(Some(
            "container=main&command=sh&command=-c&command=echo+a%26b&stdout=true&stderr=1&tty=false",
        ));
        assert_eq!(p.container.as_deref(), Some("main"));
        assert_eq!(p.command, vec!["sh", "-c", "echo a&b"]);
        assert!(p.stdout && p.stderr && !p.stdin && !p.tty);
        assert_eq!(
            parse_params(Some(&exec_query("c", &["kill", "1"]))).command,
            vec!["kill", "1"]
        );
    }
}
