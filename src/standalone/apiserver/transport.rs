//! Serving the API: in-process as a `tower::Service` for `kube::Client`, and over loopback
//! HTTP/1.1 for real binaries (kubectl, helm, the manager in another process).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body as HttpBody;
use http_body_util::BodyExt;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::auth::{self, BearerToken};
use super::exec;
use super::server::{Body, Core, error_response};
use super::status::ApiError;

/// Reads a whole request body, refusing more than `limit` bytes.
async fn collect_limited<B>(body: B, limit: usize) -> Result<Bytes, ApiError>
where
    B: HttpBody<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let limited = http_body_util::Limited::new(body, limit + 1);
    match limited.collect().await {
        Ok(c) => {
            let b = c.to_bytes();
            if b.len() > limit {
                Err(ApiError::too_large(limit))
            } else {
                Ok(b)
            }
        }
        Err(e) => {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                Err(ApiError::too_large(limit))
            } else {
                Err(ApiError::bad_request(format!(
                    "error reading the request body: {e}"
                )))
            }
        }
    }
}

async fn serve_request<B>(core: Arc<Core>, req: Request<B>) -> Response<Body>
where
    B: HttpBody<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (parts, body) = req.into_parts();
    match collect_limited(body, core.config.max_body_bytes).await {
        Ok(bytes) => core.handle(Request::from_parts(parts, bytes)).await,
        Err(e) => error_response(&e),
    }
}

/// The in-process service handed to `kube::Client::new`.
#[derive(Clone)]
pub struct InProcess {
    pub(crate) core: Arc<Core>,
    /// Sent as `User-Agent` when set, so the request log can tell clients apart.
    pub(crate) user_agent: Option<http::HeaderValue>,
}

impl tower::Service<Request<kube::client::Body>> for InProcess {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: Request<kube::client::Body>) -> Self::Future {
        if let Some(ua) = &self.user_agent {
            req.headers_mut()
                .insert(http::header::USER_AGENT, ua.clone());
        }
        let core = self.core.clone();
        if exec::wants_upgrade(&req) {
            return Box::pin(async move { Ok(upgrade_in_process(core, req).await) });
        }
        // Served on the runtime's workers, as a separate API server would be: otherwise the
        // whole request runs inside the caller's task, and every write an actor makes costs
        // the actor thread the API server's work too.
        // Spawned when first polled, not here: a layer above (the write fence) may still
        // refuse the request after calling this.
        Box::pin(async move {
            Ok(tokio::spawn(serve_request(core, req))
                .await
                .unwrap_or_else(|e| {
                    error_response(&ApiError::internal(format!("API server request task: {e}")))
                }))
        })
    }
}

/// An upgrade needs a real connection to take over: serve the request over an in-memory
/// HTTP/1.1 connection, so the response carries hyper's upgrade handle to the client.
async fn upgrade_in_process(core: Arc<Core>, req: Request<kube::client::Body>) -> Response<Body> {
    let (client_io, server_io) = tokio::io::duplex(64 * 1024);
    tokio::spawn(async move {
        let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
            let core = core.clone();
            async move { Ok::<_, Infallible>(serve_request(core, req).await) }
        });
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(server_io), svc)
            .with_upgrades()
            .await;
    });
    let connected = hyper::client::conn::http1::handshake(TokioIo::new(client_io)).await;
    let (mut sender, conn) = match connected {
        Ok(c) => c,
        Err(e) => return error_response(&ApiError::internal(format!("in-process upgrade: {e}"))),
    };
    tokio::spawn(async move {
        let _ = conn.with_upgrades().await;
    });
    match sender.send_request(req).await {
        Ok(resp) if resp.status() == http::StatusCode::SWITCHING_PROTOCOLS => {
            let (parts, _) = resp.into_parts();
            exec::empty_body(parts)
        }
        Ok(resp) => {
            let (parts, body) = resp.into_parts();
            let bytes = body
                .collect()
                .await
                .map(|c| c.to_bytes())
                .unwrap_or_default();
            Response::from_parts(parts, http_body_util::Full::new(bytes).boxed_unsync())
        }
        Err(e) => error_response(&ApiError::internal(format!("in-process upgrade: {e}"))),
    }
}

/// Reads the body within the configured time (slow-loris clients are cut off) and serves
/// the request.
async fn serve_remote(
    core: Arc<Core>,
    auth: Option<&BearerToken>,
    req: Request<hyper::body::Incoming>,
) -> Response<Body> {
    let (mut parts, body) = req.into_parts();
    if let Some(token) = auth {
        match without_token_prefix(token, &parts.uri) {
            Some(uri) => parts.uri = uri,
            None if token.admits(&parts.headers) => {}
            None => return error_response(&auth::unauthorized()),
        }
    }
    let limit = core.config.max_body_bytes;
    let timeout = core.config.body_read_timeout;
    match tokio::time::timeout(timeout, collect_limited(body, limit)).await {
        Ok(Ok(bytes)) => core.handle(Request::from_parts(parts, bytes)).await,
        Ok(Err(e)) => error_response(&e),
        Err(_) => error_response(&ApiError::new(
            408,
            "Timeout",
            format!("the request body was not received within {timeout:?}"),
        )),
    }
}

/// `uri` with its `/t/<token>` prefix removed, when it has the right one.
fn without_token_prefix(token: &BearerToken, uri: &http::Uri) -> Option<http::Uri> {
    let rest = token.strip_path(uri.path())?;
    let path = if rest.is_empty() { "/" } else { rest };
    let pq = match uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path.to_string(),
    };
    pq.parse().ok()
}

/// Serves HTTP/1.1 on `listener` until the task is aborted; with `auth`, every request
/// must carry its bearer token.
pub fn serve_http(
    core: Arc<Core>,
    listener: TcpListener,
    auth: Option<BearerToken>,
) -> JoinHandle<()> {
    let auth = auth.map(Arc::new);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let core = core.clone();
            let auth = auth.clone();
            let header_timeout = core.config.header_read_timeout;
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                    let core = core.clone();
                    let auth = auth.clone();
                    async move { Ok::<_, Infallible>(serve_remote(core, auth.as_deref(), req).await) }
                });
                let mut builder =
                    hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                builder
                    .http1()
                    .timer(TokioTimer::new())
                    .header_read_timeout(header_timeout);
                let _ = builder
                    .serve_connection_with_upgrades(TokioIo::new(stream), svc)
                    .await;
            });
        }
    })
}

/// Binds `addr` (port 0 for any free port) and returns the bound address.
pub async fn bind(addr: SocketAddr) -> std::io::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    Ok((listener, local))
}

/// A kubeconfig pointing at `http://addr{path}` with namespace `default`, presenting `token`.
pub fn kubeconfig(addr: SocketAddr, path: &str, token: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: opensandbox\n  cluster:\n    server: http://{addr}{path}\ncontexts:\n- name: opensandbox\n  context:\n    cluster: opensandbox\n    user: opensandbox\n    namespace: default\ncurrent-context: opensandbox\nusers:\n- name: opensandbox\n  user:\n    token: {token}\n"
    )
}
