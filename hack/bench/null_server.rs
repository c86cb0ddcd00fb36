//! `bench-sdk-create --null-server ADDR`: a lifecycle server that does nothing. It answers the
//! requests of the official SDK's `SandboxSync.create` + `kill` from memory (create, the execd
//! and egress endpoints, which point back at itself, the execd `/ping`, delete) without any
//! sandbox, pod or API server behind them, until it is killed.
//!
//! Driving it with the same SDK load as the real servers measures what that load can reach on
//! this machine when the server costs (almost) nothing: the ceiling of any server's creates/s
//! under it, and so of the ours/upstream ratio.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http::{Method, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

/// Sandbox ids handed out; each create gets a new one, as a real server's would.
static CREATED: AtomicU64 = AtomicU64::new(0);

/// The answer to one request: the routes the SDK's create flow calls, 404 for anything else.
pub fn answer(method: &Method, path: &str, self_addr: SocketAddr) -> (StatusCode, String) {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (method, segments.as_slice()) {
        (&Method::POST, ["v1", "sandboxes"]) => {
            let n = CREATED.fetch_add(1, Ordering::Relaxed);
            let body = serde_json::json!({
                "id": format!("00000000-0000-4000-8000-{n:012x}"),
                "status": {"state": "Running", "reason": "IP_ASSIGNED",
                           "message": "null server", "lastTransitionAt": "2026-01-01T00:00:00Z"},
                "expiresAt": "2026-01-01T00:10:00Z",
                "createdAt": "2026-01-01T00:00:00Z",
                "entrypoint": ["tail", "-f", "/dev/null"],
            });
            (StatusCode::ACCEPTED, body.to_string())
        }
        (&Method::GET, ["v1", "sandboxes", _, "endpoints", port]) if port.parse::<u16>().is_ok() => {
            let body = serde_json::json!({ "endpoint": self_addr.to_string() });
            (StatusCode::OK, body.to_string())
        }
        (&Method::GET, ["ping"]) => (StatusCode::OK, String::new()),
        (&Method::DELETE, ["v1", "sandboxes", _]) => (StatusCode::NO_CONTENT, String::new()),
        _ => (
            StatusCode::NOT_FOUND,
            serde_json::json!({"code": "NOT_FOUND", "message": format!("the null server does not serve {method} {path}")})
                .to_string(),
        ),
    }
}

/// Serves `addr` until the process is killed.
pub async fn serve(addr: SocketAddr) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let self_addr = listener.local_addr()?;
    eprintln!("null server listening on {self_addr}");
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        tokio::spawn(async move {
            let service = service_fn(move |req: http::Request<Incoming>| async move {
                let (parts, incoming) = req.into_parts();
                // Read the request body so the connection stays usable for the next request.
                let _ = incoming.collect().await;
                let (status, body) = answer(&parts.method, parts.uri.path(), self_addr);
                let mut resp = Response::builder().status(status);
                if !body.is_empty() {
                    resp = resp.header("content-type", "application/json");
                }
                Ok::<_, Infallible>(
                    resp.body(Full::new(Bytes::from(body)))
                        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()))),
                )
            });
            // A client that goes away mid-request is no concern of a null server.
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
