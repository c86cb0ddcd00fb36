//! `/proxy/{port}/{rest}`: HTTP (streamed both ways) and WebSocket reverse proxy to
//! `127.0.0.1:{port}`.

use std::time::Duration;

use actix_web::http::header::{self, HeaderName};
use actix_web::{HttpRequest, HttpResponse, web};
use futures::{SinkExt, StreamExt};

const TIMEOUT: Duration = Duration::from_secs(600);

thread_local! {
    static CLIENT: awc::Client = awc::Client::builder()
        .timeout(TIMEOUT)
        .disable_redirects()
        .no_default_headers()
        .finish();
}

fn client() -> awc::Client {
    CLIENT.with(Clone::clone)
}

/// Hop-by-hop headers, never forwarded.
pub fn is_hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "proxy-connection"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
    )
}

/// Target URL for the proxied request; `None` when the port is missing or invalid.
pub fn target(port: &str, tail: &str, query: &str) -> Option<String> {
    let port: u16 = port.parse().ok()?;
    let mut url = format!("http://127.0.0.1:{port}/{}", tail.trim_start_matches('/'));
    if !query.is_empty() {
        url.push('?');
        url.push_str(query);
    }
    Some(url)
}

fn forwarded_for(req: &HttpRequest) -> String {
    let h = |n: &str| {
        req.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    h("x-forwarded-for")
        .and_then(|v| v.split(',').next().map(|s| s.trim().to_string()))
        .filter(|s| !s.is_empty())
        .or_else(|| h("x-real-ip"))
        .or_else(|| req.peer_addr().map(|a| a.ip().to_string()))
        .unwrap_or_default()
}

fn text(status: actix_web::http::StatusCode, body: &'static str) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/plain; charset=utf-8")
        .body(body)
}

fn bad_gateway() -> HttpResponse {
    text(actix_web::http::StatusCode::BAD_GATEWAY, "Bad Gateway")
}

pub async fn handle(req: HttpRequest, payload: web::Payload) -> HttpResponse {
    let port = req.match_info().get("port").unwrap_or_default();
    if port.is_empty() {
        return text(actix_web::http::StatusCode::BAD_REQUEST, "port is required");
    }
    let tail = req.match_info().get("tail").unwrap_or_default();
    let Some(url) = target(port, tail, req.query_string()) else {
        return bad_gateway();
    };
    let is_ws = req
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    if is_ws {
        return websocket(req, payload, url).await;
    }
    let mut fwd = client()
        .request(req.method().clone(), &url)
        .timeout(TIMEOUT);
    for (name, value) in req.headers() {
        if is_hop_by_hop(name) || name == header::HOST || name.as_str() == "x-forwarded-host" {
            continue;
        }
        fwd = fwd.append_header((name.clone(), value.clone()));
    }
    fwd = fwd
        .insert_header(("X-Forwarded-For", forwarded_for(&req)))
        .insert_header(("X-Forwarded-Proto", "http"));
    let has_body = req.headers().contains_key(header::CONTENT_LENGTH)
        || req.headers().contains_key(header::TRANSFER_ENCODING);
    let sent = if has_body {
        fwd.send_stream(payload).await
    } else {
        fwd.send().await
    };
    let upstream = match sent {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(error = %e, %url, "proxy upstream failed");
            return bad_gateway();
        }
    };
    let mut resp = HttpResponse::build(upstream.status());
    let mut length = None;
    for (name, value) in upstream.headers() {
        if name == header::CONTENT_LENGTH {
            length = value.to_str().ok().and_then(|v| v.parse::<u64>().ok());
            continue;
        }
        if !is_hop_by_hop(name) {
            resp.append_header((name.clone(), value.clone()));
        }
    }
    if let Some(len) = length {
        resp.no_chunking(len);
    }
    resp.streaming(upstream)
}

async fn websocket(req: HttpRequest, payload: web::Payload, url: String) -> HttpResponse {
    let mut ws = client().ws(url.replacen("http://", "ws://", 1));
    for (name, value) in req.headers() {
        let n = name.as_str();
        if is_hop_by_hop(name)
            || name == header::HOST
            || n.starts_with("sec-websocket-")
            || n == "x-forwarded-host"
        {
            continue;
        }
        ws = ws.header(name.clone(), value.clone());
    }
    if let Some(protos) = req
        .headers()
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok())
    {
        ws = ws.protocols(
            protos
                .split(',')
                .map(|p| p.trim().to_string())
                .collect::<Vec<_>>(),
        );
    }
    ws = ws
        .set_header("X-Forwarded-For", forwarded_for(&req))
        .set_header("X-Forwarded-Proto", "http");
    let (up_resp, framed) = match ws.connect().await {
        Ok(x) => x,
        Err(e) => {
            tracing::debug!(error = %e, "proxy websocket upstream failed");
            return bad_gateway();
        }
    };
    let (mut resp, mut session, mut from_client) = match actix_ws::handle(&req, payload) {
        Ok(x) => x,
        Err(e) => return e.error_response(),
    };
    if let Some(p) = up_resp.headers().get(header::SEC_WEBSOCKET_PROTOCOL) {
        resp.headers_mut()
            .insert(header::SEC_WEBSOCKET_PROTOCOL, p.clone());
    }
    let (mut up_tx, mut up_rx) = framed.split();
    actix_web::rt::spawn(async move {
        use awc::ws::{Frame, Message as Up};
        loop {
            tokio::select! {
                m = from_client.recv() => {
                    let msg = match m {
                        Some(Ok(actix_ws::Message::Text(t))) => Up::Text(t),
                        Some(Ok(actix_ws::Message::Binary(b))) => Up::Binary(b),
                        Some(Ok(actix_ws::Message::Ping(b))) => Up::Ping(b),
                        Some(Ok(actix_ws::Message::Pong(b))) => Up::Pong(b),
                        Some(Ok(actix_ws::Message::Continuation(i))) => Up::Continuation(i),
                        Some(Ok(actix_ws::Message::Nop)) => continue,
                        Some(Ok(actix_ws::Message::Close(r))) => {
                            let _ = up_tx.send(Up::Close(r)).await;
                            break;
                        }
                        Some(Err(_)) | None => {
                            let _ = up_tx.send(Up::Close(None)).await;
                            break;
                        }
                    };
                    if up_tx.send(msg).await.is_err() {
                        break;
                    }
                }
                f = up_rx.next() => {
                    let ok = match f {
                        Some(Ok(Frame::Text(b))) => match bytestring::ByteString::try_from(b) {
                            Ok(s) => session.text(s).await.is_ok(),
                            Err(_) => false,
                        },
                        Some(Ok(Frame::Binary(b))) => session.binary(b).await.is_ok(),
                        Some(Ok(Frame::Ping(b))) => session.ping(&b).await.is_ok(),
                        Some(Ok(Frame::Pong(b))) => session.pong(&b).await.is_ok(),
                        Some(Ok(Frame::Continuation(i))) => session.continuation(i).await.is_ok(),
                        Some(Ok(Frame::Close(r))) => {
                            let _ = session.close(r).await;
                            return;
                        }
                        Some(Err(_)) | None => {
                            let _ = session.close(None).await;
                            return;
                        }
                    };
                    if !ok {
                        break;
                    }
                }
            }
        }
        let _ = session.close(None).await;
    });
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        assert_eq!(
            target("80", "", "").as_deref(),
            Some("http://127.0.0.1:80/")
        );
        assert_eq!(
            target("8080", "a/b", "x=1").as_deref(),
            Some("http://127.0.0.1:8080/a/b?x=1")
        );
        assert_eq!(target("abc", "", ""), None);
        assert_eq!(target("70000", "", ""), None);
    }
}
