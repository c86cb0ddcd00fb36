//! Contract tests for `/proxy/{port}/...` and the access token.

mod common;

use std::time::{Duration, Instant};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use common::*;
use futures::{SinkExt, StreamExt};
use serde_json::json;

async fn echo(req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let h = |n: &str| {
        req.headers()
            .get(n)
            .map(|v| v.to_str().unwrap().to_string())
    };
    HttpResponse::Ok()
        .insert_header(("X-Upstream", "yes"))
        .json(json!({
            "method": req.method().as_str(),
            "path": req.path(),
            "query": req.query_string(),
            "body": String::from_utf8_lossy(&body),
            "xff": h("x-forwarded-for"),
            "proto": h("x-forwarded-proto"),
            "xfh": h("x-forwarded-host"),
            "custom": h("x-custom"),
        }))
}

async fn slow_stream() -> HttpResponse {
    let s = futures::stream::unfold(0, |i| async move {
        if i == 3 {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(400)).await;
        Some((
            Ok::<_, std::io::Error>(web::Bytes::from(format!("data: {i}\n\n"))),
            i + 1,
        ))
    });
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .streaming(s)
}

async fn ws_echo(req: HttpRequest, body: web::Payload) -> actix_web::Result<HttpResponse> {
    let (resp, mut session, mut stream) = actix_ws::handle(&req, body)?;
    actix_web::rt::spawn(async move {
        while let Some(Ok(msg)) = stream.recv().await {
            match msg {
                actix_ws::Message::Text(t) => {
                    let _ = session.text(format!("echo:{t}")).await;
                }
                actix_ws::Message::Binary(b) => {
                    let _ = session.binary(b).await;
                }
                actix_ws::Message::Close(r) => {
                    let _ = session.close(r).await;
                    return;
                }
                _ => {}
            }
        }
    });
    Ok(resp)
}

fn upstream() -> u16 {
    let port = free_port();
    let server = HttpServer::new(|| {
        App::new()
            .route("/sse", web::get().to(slow_stream))
            .route("/ws", web::get().to(ws_echo))
            .default_service(web::to(echo))
    })
    .workers(1)
    .bind(("127.0.0.1", port))
    .unwrap()
    .run();
    actix_rt::spawn(server);
    port
}

#[actix_rt::test]
async fn http_requests_are_forwarded_with_headers_and_body() {
    let ex = Executor::start();
    let up = upstream();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut resp = client()
        .post(ex.url(&format!("/proxy/{up}/some/path?a=1&b=2")))
        .insert_header(("X-Custom", "c"))
        .insert_header(("X-Forwarded-Host", "evil"))
        .insert_header(("X-Forwarded-For", "1.2.3.4, 5.6.7.8"))
        .send_body("payload")
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers().get("x-upstream").unwrap(), "yes");
    let v = json(&resp.body().await.unwrap());
    assert_eq!(v["method"], "POST");
    assert_eq!(v["path"], "/some/path");
    assert_eq!(v["query"], "a=1&b=2");
    assert_eq!(v["body"], "payload");
    assert_eq!(v["custom"], "c");
    assert_eq!(v["xff"], "1.2.3.4");
    assert_eq!(v["proto"], "http");
    assert!(v["xfh"].is_null());

    // Empty rest ⇒ "/"; chunked request bodies are streamed through.
    let (_, body, _) = get(&ex.url(&format!("/proxy/{up}"))).await;
    assert_eq!(json(&body)["path"], "/");
    let chunks: Vec<Result<web::Bytes, std::io::Error>> = vec![Ok("ab".into()), Ok("cd".into())];
    let mut resp = client()
        .put(ex.url(&format!("/proxy/{up}/x")))
        .send_stream(futures::stream::iter(chunks))
        .await
        .unwrap();
    assert_eq!(json(&resp.body().await.unwrap())["body"], "abcd");
}

#[actix_rt::test]
async fn streaming_responses_pass_through_incrementally() {
    let ex = Executor::start();
    let up = upstream();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    let mut resp = client()
        .get(ex.url(&format!("/proxy/{up}/sse")))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.headers().get("content-type").unwrap(),
        "text/event-stream"
    );
    let first = resp.next().await.unwrap().unwrap();
    assert_eq!(&first[..], b"data: 0\n\n");
    assert!(
        started.elapsed() < Duration::from_millis(1000),
        "first event must not wait for the whole stream"
    );
    let mut rest = Vec::new();
    while let Some(c) = resp.next().await {
        rest.extend_from_slice(&c.unwrap());
    }
    assert_eq!(rest, b"data: 1\n\ndata: 2\n\n");
}

#[actix_rt::test]
async fn execd_serves_itself_through_the_proxy() {
    let ex = Executor::start();
    let (status, _, _) = get(&ex.url(&format!("/proxy/{}/ping", ex.port))).await;
    assert_eq!(status, 200);
    let (status, bytes, headers) = post_json(
        &ex.url(&format!("/proxy/{}/command", ex.port)),
        json!({"command": "echo via-proxy"}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(headers.get("content-type").unwrap(), "text/event-stream");
    assert_eq!(texts(&frames(&bytes), "stdout"), vec!["via-proxy"]);
}

#[actix_rt::test]
async fn websocket_upgrades_are_proxied() {
    let ex = Executor::start();
    let up = upstream();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (resp, mut ws) = client()
        .ws(format!("ws://127.0.0.1:{}/proxy/{up}/ws", ex.port))
        .connect()
        .await
        .unwrap();
    assert_eq!(resp.status(), 101);
    ws.send(awc::ws::Message::Text("hello".into()))
        .await
        .unwrap();
    match ws.next().await.unwrap().unwrap() {
        awc::ws::Frame::Text(t) => assert_eq!(&t[..], b"echo:hello"),
        other => panic!("unexpected {other:?}"),
    }
    ws.send(awc::ws::Message::Binary(web::Bytes::from_static(&[
        1, 2, 3,
    ])))
    .await
    .unwrap();
    match ws.next().await.unwrap().unwrap() {
        awc::ws::Frame::Binary(b) => assert_eq!(&b[..], &[1, 2, 3]),
        other => panic!("unexpected {other:?}"),
    }
    ws.send(awc::ws::Message::Close(None)).await.unwrap();
}

#[actix_rt::test]
async fn proxy_errors() {
    let ex = Executor::start();
    let (status, body, _) = get(&ex.url("/proxy/")).await;
    assert_eq!((status, body.as_slice()), (400, &b"port is required"[..]));
    let dead = free_port();
    let (status, body, _) = get(&ex.url(&format!("/proxy/{dead}/x"))).await;
    assert_eq!((status, body.as_slice()), (502, &b"Bad Gateway"[..]));
    let (status, _, _) = get(&ex.url("/proxy/notaport/x")).await;
    assert_eq!(status, 502);
}

#[actix_rt::test]
async fn access_token_guards_every_route() {
    let ex = Executor::start_with(Opts {
        args: vec!["--access-token", "s3cret"],
        ..Default::default()
    });
    for path in [
        "/ping",
        "/metrics",
        &format!("/proxy/{}/ping", ex.port),
        "/nope",
    ] {
        let mut resp = client().get(ex.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), 401, "{path}");
        assert_eq!(
            json(&resp.body().await.unwrap()),
            json!({"error": "Unauthorized: invalid or missing header X-EXECD-ACCESS-TOKEN"})
        );
    }
    let resp = client()
        .get(ex.url("/ping"))
        .insert_header(("X-EXECD-ACCESS-TOKEN", "wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let resp = client()
        .get(ex.url("/ping"))
        .insert_header(("X-EXECD-ACCESS-TOKEN", "s3cret"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    // The env form works too, and Go-style single-dash flags are accepted.
    let ex = Executor::start_with(Opts {
        envs: vec![
            ("EXECD_ACCESS_TOKEN", "envtok".into()),
            ("EXECD_API_GRACE_SHUTDOWN", "3s".into()),
            ("EXECD_JUPYTER_IDLE_POLL_INTERVAL", "200ms".into()),
        ],
        args: vec!["-log-level=7"],
        ..Default::default()
    });
    let resp = client().get(ex.url("/ping")).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    let resp = client()
        .get(ex.url("/ping"))
        .insert_header(("X-EXECD-ACCESS-TOKEN", "envtok"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

#[actix_rt::test]
async fn code_routes_answer_501_and_identity_routes_503() {
    let ex = Executor::start();
    let (status, body, _) = post_json(
        &ex.url("/code"),
        json!({"code": "print(1)", "context": {"language": "python"}}),
    )
    .await;
    assert_error(status, &body, 501, "NOT_SUPPORTED");
    // Without a language `/code` is a plain shell command.
    let (status, body, _) = post_json(&ex.url("/code"), json!({"code": "echo from-code"})).await;
    assert_eq!(status, 200);
    assert_eq!(texts(&frames(&body), "stdout"), vec!["from-code"]);
    let (status, body, _) = get(&ex.url("/code/contexts?language=python")).await;
    assert_error(status, &body, 501, "NOT_SUPPORTED");
    let (status, body, _) = get(&ex.url("/v1/filesystem/0/0/files/info?path=/")).await;
    assert_error(status, &body, 503, "NOT_SUPPORTED");
    let (status, body, _) = post_json(&ex.url("/v1/isolated/session"), json!({})).await;
    assert_error(status, &body, 503, "NOT_SUPPORTED");
    let (status, body, _) = get(&ex.url("/v1/isolated/capabilities")).await;
    assert_eq!((status, json(&body)), (200, json!({"available": false})));
}
