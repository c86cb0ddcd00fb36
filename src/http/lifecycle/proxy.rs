//! Server-side proxy: `/sandboxes/{id}/proxy/{port}/{path...}` streamed to that sandbox's own
//! pod IP (never any other host), without auth, cookie or hop-by-hop headers. WebSocket
//! upgrades are relayed as raw bytes once the backend answers 101.

use std::time::Duration;

use actix_web::body::SizedStream;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use bytes::Bytes;
use futures::StreamExt;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyDataStream, BodyExt, Empty, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::LifecycleState;
use super::error::ApiError;
use super::sandboxes::{parse_port, resolve_ip};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(180);

/// Hop-by-hop headers: they describe one connection and are never relayed.
pub(super) const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Request headers never forwarded besides the hop-by-hop ones: credentials, and the
/// forwarding headers we rebuild.
const DROP_REQUEST: &[&str] = &[
    "host",
    "authorization",
    "cookie",
    "open-sandbox-api-key",
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-forwarded-port",
    "x-real-ip",
    "opensandbox-access-renew",
];

const DROP_RESPONSE: &[&str] = &["server", "content-length"];

fn backend_error(status: StatusCode, code: &str, message: String) -> ApiError {
    ApiError::new(status, code, message)
}

/// Names listed in the request's `Connection` header (also hop-by-hop).
fn connection_listed(req: &HttpRequest) -> Vec<String> {
    req.headers()
        .get_all("connection")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .collect()
}

/// Addresses a pod can never legitimately have: unspecified, multicast, broadcast and
/// link-local (169.254.0.0/16 holds cloud metadata services).
pub fn allowed_target(ip: std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V4(v4) => {
            !(v4.is_unspecified() || v4.is_multicast() || v4.is_broadcast() || v4.is_link_local())
        }
        std::net::IpAddr::V6(v6) => {
            !(v6.is_unspecified()
                || v6.is_multicast()
                || v6.is_unicast_link_local()
                || v6
                    .to_ipv4_mapped()
                    .is_some_and(|v4| !allowed_target(v4.into())))
        }
    }
}

pub async fn proxy(
    state: web::Data<LifecycleState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let id = req.match_info().get("id").unwrap_or_default().to_string();
    let port = parse_port(req.match_info().get("port").unwrap_or_default())?;
    let tail = req.match_info().get("tail").unwrap_or_default();
    let is_ws = req
        .headers()
        .get("upgrade")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let ip = resolve_ip(&state, &id)?;
    if !allowed_target(ip) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "PROXY::TARGET_NOT_ALLOWED",
            format!("Sandbox '{id}' reports address {ip}, which the proxy never connects to"),
        ));
    }
    let mut uri = format!("/{tail}");
    if !req.query_string().is_empty() {
        uri.push('?');
        uri.push_str(req.query_string());
    }
    let listed = connection_listed(&req);
    let mut builder = http::Request::builder()
        .method(req.method().as_str())
        .uri(&uri);
    for (name, value) in req.headers() {
        let n = name.as_str();
        if HOP_BY_HOP.contains(&n) || DROP_REQUEST.contains(&n) || listed.iter().any(|l| l == n) {
            continue;
        }
        builder = builder.header(n, value.as_bytes());
    }
    if is_ws {
        builder = builder
            .header("connection", "upgrade")
            .header("upgrade", "websocket");
    }
    let host = if ip.is_ipv6() {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    };
    let conn = req.connection_info().clone();
    builder = builder
        .header("host", &host)
        .header("x-forwarded-proto", conn.scheme())
        .header("x-forwarded-host", conn.host());
    if let Some(peer) = conn.peer_addr() {
        let peer = peer
            .parse::<std::net::SocketAddr>()
            .map(|a| a.ip().to_string())
            .unwrap_or_else(|_| peer.to_string());
        builder = builder.header("x-forwarded-for", peer);
    }
    let has_body = !is_ws && req.headers().contains_key("content-length")
        || req.headers().contains_key("transfer-encoding");
    let mut payload = Some(payload);
    let body: UnsyncBoxBody<Bytes, std::io::Error> =
        if has_body && let Some(mut payload) = payload.take() {
            // actix's payload is !Send; a bounded channel hands its chunks to hyper.
            let (tx, rx) = tokio::sync::mpsc::channel(4);
            actix_rt::spawn(async move {
                while let Some(chunk) = payload.next().await {
                    let frame = chunk
                        .map(Frame::data)
                        .map_err(|e| std::io::Error::other(e.to_string()));
                    if tx.send(frame).await.is_err() {
                        break;
                    }
                }
            });
            UnsyncBoxBody::new(StreamBody::new(
                tokio_stream::wrappers::ReceiverStream::new(rx),
            ))
        } else {
            UnsyncBoxBody::new(Empty::new().map_err(|never| match never {}))
        };
    let request = builder
        .body(body)
        .map_err(|e| ApiError::validation(format!("cannot forward request: {e}")))?;

    let target = std::net::SocketAddr::new(ip, port);
    let stream =
        match tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(target)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                return Err(backend_error(
                    StatusCode::BAD_GATEWAY,
                    "BACKEND_CONNECTION_FAILED",
                    format!("Could not connect to the backend sandbox {id}:{port}: {e}"),
                ));
            }
            Err(_) => {
                return Err(backend_error(
                    StatusCode::BAD_GATEWAY,
                    "BACKEND_CONNECTION_FAILED",
                    format!("Timed out connecting to the backend sandbox {id}:{port}"),
                ));
            }
        };
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| {
            backend_error(
                StatusCode::BAD_GATEWAY,
                "BACKEND_CONNECTION_FAILED",
                format!("Handshake with the backend sandbox failed: {e}"),
            )
        })?;
    actix_rt::spawn(async move {
        if let Err(e) = connection.with_upgrades().await {
            tracing::debug!(error = %e, "proxy backend connection ended");
        }
    });
    let response = match tokio::time::timeout(RESPONSE_TIMEOUT, sender.send_request(request)).await
    {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            return Err(backend_error(
                StatusCode::BAD_GATEWAY,
                "BACKEND_RESPONSE_FAILED",
                format!("The backend sandbox failed to respond: {e}"),
            ));
        }
        Err(_) => {
            return Err(backend_error(
                StatusCode::GATEWAY_TIMEOUT,
                "BACKEND_TIMEOUT",
                "The backend sandbox did not respond in time".to_string(),
            ));
        }
    };
    if is_ws && response.status() == hyper::StatusCode::SWITCHING_PROTOCOLS {
        return websocket_relay(response, payload).await;
    }
    let mount = match &state.config.eip {
        Some(eip) => {
            let eip = eip.trim_end_matches('/');
            let eip = eip
                .strip_prefix("http://")
                .or_else(|| eip.strip_prefix("https://"))
                .unwrap_or(eip);
            eip.find('/')
                .map(|i| eip[i..].to_string())
                .unwrap_or_default()
        }
        None if req.path().starts_with("/v1/") => "/v1".to_string(),
        None => String::new(),
    };
    let prefix = format!("{mount}/sandboxes/{id}/proxy/{port}");
    Ok(relay_response(
        response,
        &prefix,
        req.method() == actix_web::http::Method::HEAD,
    ))
}

/// Keeps root-relative redirects inside the proxy prefix.
fn rewrite_location(location: &str, prefix: &str) -> Option<String> {
    (!prefix.is_empty() && location.starts_with('/') && !location.starts_with("//"))
        .then(|| format!("{prefix}{location}"))
}

/// Streams a backend response back, without hop-by-hop headers or `server`.
pub(super) fn relay_response(
    response: hyper::Response<hyper::body::Incoming>,
    prefix: &str,
    head: bool,
) -> HttpResponse {
    let (parts, incoming) = response.into_parts();
    let status = StatusCode::from_u16(parts.status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut out = HttpResponse::build(status);
    let listed: Vec<String> = parts
        .headers
        .get_all("connection")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().to_ascii_lowercase())
        .collect();
    for (name, value) in &parts.headers {
        let n = name.as_str();
        if HOP_BY_HOP.contains(&n) || DROP_RESPONSE.contains(&n) || listed.iter().any(|l| l == n) {
            continue;
        }
        if n == "location"
            && let Some(loc) = value
                .to_str()
                .ok()
                .and_then(|l| rewrite_location(l, prefix))
        {
            out.append_header((n, loc));
            continue;
        }
        out.append_header((n, value.as_bytes()));
    }
    if head || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
        return out.finish();
    }
    let length = parts
        .headers
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let chunks = BodyDataStream::new(incoming).map(|r| r.map_err(std::io::Error::other));
    match length {
        Some(len) => out.body(SizedStream::new(len, chunks.boxed())),
        None => out.streaming(chunks),
    }
}

/// After the backend accepted a WebSocket upgrade: answers 101 to the client and relays raw
/// bytes both ways (frames pass through untouched).
async fn websocket_relay(
    response: hyper::Response<hyper::body::Incoming>,
    payload: Option<web::Payload>,
) -> Result<HttpResponse, ApiError> {
    let mut out = HttpResponse::build(StatusCode::SWITCHING_PROTOCOLS);
    out.upgrade("websocket");
    for (name, value) in response.headers() {
        if name.as_str().starts_with("sec-websocket-") {
            out.append_header((name.as_str(), value.as_bytes()));
        }
    }
    let upgraded = hyper::upgrade::on(response).await.map_err(|e| {
        backend_error(
            StatusCode::BAD_GATEWAY,
            "BACKEND_RESPONSE_FAILED",
            format!("WebSocket upgrade with the backend failed: {e}"),
        )
    })?;
    let (rd, mut wr) = tokio::io::split(TokioIo::new(upgraded));
    if let Some(mut payload) = payload {
        actix_rt::spawn(async move {
            while let Some(Ok(chunk)) = payload.next().await {
                if wr.write_all(&chunk).await.is_err() {
                    break;
                }
            }
            let _ = wr.shutdown().await;
        });
    }
    let down =
        futures::stream::unfold((rd, vec![0u8; 16 * 1024]), |(mut rd, mut buf)| async move {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => None,
                Ok(n) => {
                    let chunk = Bytes::copy_from_slice(&buf[..n]);
                    Some((Ok::<_, std::io::Error>(chunk), (rd, buf)))
                }
            }
        });
    Ok(out.streaming(down))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_connects_to_metadata_or_unspecified_addresses() {
        for bad in [
            "0.0.0.0",
            "169.254.169.254",
            "224.0.0.1",
            "255.255.255.255",
            "::",
            "fe80::1",
            "::ffff:169.254.169.254",
        ] {
            assert!(!allowed_target(bad.parse().unwrap()), "{bad}");
        }
        for ok in ["10.1.2.3", "127.0.0.5", "192.168.1.1", "fd00::1"] {
            assert!(allowed_target(ok.parse().unwrap()), "{ok}");
        }
    }
}
