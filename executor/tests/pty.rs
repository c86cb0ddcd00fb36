//! PTY sessions over WebSocket.

mod common;

use std::time::Duration;

use awc::ws::{Frame, Message};
use common::*;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};

type Ws = actix_codec::Framed<awc::BoxedSocket, awc::ws::Codec>;

async fn create(ex: &Executor, body: Value) -> String {
    let (status, bytes, _) = post_json(&ex.url("/pty"), body).await;
    assert_eq!(status, 201);
    json(&bytes)["session_id"].as_str().unwrap().to_string()
}

async fn connect(ex: &Executor, id: &str, query: &str) -> Ws {
    let (resp, ws) = client()
        .ws(format!("ws://127.0.0.1:{}/pty/{id}/ws{query}", ex.port))
        .connect()
        .await
        .unwrap();
    assert_eq!(resp.status(), 101);
    ws
}

/// Reads frames until `done` says so; returns (collected output bytes per channel, texts).
async fn read_until(
    ws: &mut Ws,
    mut done: impl FnMut(&[u8], &[Value]) -> bool,
) -> (Vec<u8>, Vec<u8>, Vec<Value>) {
    let (mut out, mut err, mut texts) = (Vec::new(), Vec::new(), Vec::new());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !done(&out, &texts) {
        let frame = tokio::time::timeout_at(deadline, ws.next())
            .await
            .expect("timed out")
            .expect("closed")
            .unwrap();
        match frame {
            Frame::Binary(b) if b[0] == 1 => out.extend_from_slice(&b[1..]),
            Frame::Binary(b) if b[0] == 2 => err.extend_from_slice(&b[1..]),
            Frame::Binary(b) if b[0] == 3 => out.extend_from_slice(&b[9..]),
            Frame::Text(t) => texts.push(serde_json::from_slice(&t).unwrap()),
            Frame::Close(r) => {
                texts.push(json!({"type": "closed", "code": r.map(|r| u16::from(r.code))}));
            }
            _ => {}
        }
    }
    (out, err, texts)
}

fn has(texts: &[Value], kind: &str) -> bool {
    texts.iter().any(|t| t["type"] == kind)
}

#[actix_rt::test]
async fn interactive_shell_in_pty_mode() {
    let ex = Executor::start();
    let id = create(&ex, json!({"cwd": ex.path("ptycwd")})).await;
    let (_, body, _) = get(&ex.url(&format!("/pty/{id}"))).await;
    assert_eq!(
        json(&body),
        json!({"session_id": id, "running": false, "output_offset": 0})
    );

    let mut ws = connect(&ex, &id, "").await;
    let (_, _, texts) = read_until(&mut ws, |_, t| has(t, "connected")).await;
    assert_eq!(
        texts[0],
        json!({"type": "connected", "session_id": id, "mode": "pty"})
    );

    ws.send(Message::Text(
        r#"{"type":"resize","cols":120,"rows":40}"#.into(),
    ))
    .await
    .unwrap();
    ws.send(Message::Binary(bytes::Bytes::from_static(
        b"\x00stty size; pwd; tty\n",
    )))
    .await
    .unwrap();
    let (out, _, _) = read_until(&mut ws, |o, _| {
        String::from_utf8_lossy(o).contains("/dev/pts")
    })
    .await;
    let out = String::from_utf8_lossy(&out);
    assert!(out.contains("40 120"), "{out}");
    assert!(out.contains("ptycwd"), "{out}");

    ws.send(Message::Text(r#"{"type":"ping"}"#.into()))
        .await
        .unwrap();
    let (_, _, texts) = read_until(&mut ws, |_, t| has(t, "pong")).await;
    assert!(has(&texts, "pong"));
    ws.send(Message::Text("not json".into())).await.unwrap();
    let (_, _, texts) = read_until(&mut ws, |_, t| has(t, "error")).await;
    assert_eq!(
        texts.iter().find(|t| t["type"] == "error").unwrap()["code"],
        "INVALID_FRAME"
    );

    let (_, body, _) = get(&ex.url(&format!("/pty/{id}"))).await;
    let st = json(&body);
    assert_eq!(st["running"], true);
    assert!(st["output_offset"].as_u64().unwrap() > 0);

    ws.send(Message::Text(
        r#"{"type":"stdin","data":"exit 3\n"}"#.into(),
    ))
    .await
    .unwrap();
    let (_, _, texts) = read_until(&mut ws, |_, t| has(t, "closed")).await;
    assert_eq!(
        texts.iter().find(|t| t["type"] == "exit").unwrap()["exit_code"],
        3
    );
    assert_eq!(texts.last().unwrap()["code"], 1000);
}

#[actix_rt::test]
async fn pipe_mode_separates_stderr_and_replays_output() {
    let ex = Executor::start();
    let id = create(&ex, json!({})).await;
    let mut ws = connect(&ex, &id, "?pty=0").await;
    let (_, _, texts) = read_until(&mut ws, |_, t| has(t, "connected")).await;
    assert_eq!(texts[0]["mode"], "pipe");
    ws.send(Message::Text(
        r#"{"type":"stdin","data":"echo out; echo err >&2\n"}"#.into(),
    ))
    .await
    .unwrap();
    // stderr may arrive before stdout: keep what read_until collected on the way.
    let (out, mut got_err, _) =
        read_until(&mut ws, |o, _| String::from_utf8_lossy(o).contains("out")).await;
    assert_eq!(out, b"out\n");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !String::from_utf8_lossy(&got_err).contains("err") {
        match tokio::time::timeout_at(deadline, ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
        {
            Frame::Binary(b) if b[0] == 2 => got_err.extend_from_slice(&b[1..]),
            _ => {}
        }
    }

    // A second client is refused; takeover evicts the first with 4001.
    let resp = client()
        .ws(format!("ws://127.0.0.1:{}/pty/{id}/ws", ex.port))
        .connect()
        .await;
    match resp {
        Err(awc::error::WsClientError::InvalidResponseStatus(s)) => assert_eq!(s, 409),
        other => panic!("expected 409, got {:?}", other.map(|r| r.0.status())),
    }
    let mut ws2 = connect(&ex, &id, "?takeover=1&since=0").await;
    let (_, _, texts) = read_until(&mut ws, |_, t| has(t, "closed")).await;
    assert_eq!(texts.last().unwrap()["code"], 4001);
    // The replay frame carries everything since offset 0 (stdout and stderr interleaved).
    let first = tokio::time::timeout(Duration::from_secs(5), ws2.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    match first {
        Frame::Binary(b) => {
            assert_eq!(b[0], 3);
            assert_eq!(u64::from_be_bytes(b[1..9].try_into().unwrap()), 0);
            let replay = String::from_utf8_lossy(&b[9..]).to_string();
            assert!(
                replay.contains("out\n") && replay.contains("err\n"),
                "{replay}"
            );
        }
        other => panic!("expected replay frame, got {other:?}"),
    }
    let (status, _) = delete(&ex.url(&format!("/pty/{id}"))).await;
    assert_eq!(status, 200);
    let (status, body, _) = get(&ex.url(&format!("/pty/{id}"))).await;
    assert_error(status, &body, 404, "CONTEXT_NOT_FOUND");
}

#[actix_rt::test]
async fn command_sessions_and_errors() {
    let ex = Executor::start();
    let id = create(&ex, json!({"command": "echo from-command"})).await;
    let mut ws = connect(&ex, &id, "").await;
    let (out, _, texts) = read_until(&mut ws, |_, t| has(t, "closed")).await;
    assert!(String::from_utf8_lossy(&out).contains("from-command"));
    assert_eq!(
        texts.iter().find(|t| t["type"] == "exit").unwrap()["exit_code"],
        0
    );

    let resp = client()
        .ws(format!("ws://127.0.0.1:{}/pty/nope/ws", ex.port))
        .connect()
        .await;
    assert!(matches!(resp, Err(awc::error::WsClientError::InvalidResponseStatus(s)) if s == 404));
    let (status, body) = delete(&ex.url("/pty/nope")).await;
    assert_error(status, &body, 404, "CONTEXT_NOT_FOUND");
    let (status, body, _) = post_json(&ex.url("/pty"), json!({"cwd": 5})).await;
    assert_error(status, &body, 400, "INVALID_REQUEST_BODY");
}
