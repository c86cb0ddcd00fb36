//! The files API confined to the sandbox's directory (`EXECD_FS_ROOTS`, as standalone mode
//! sets it): `..`, absolute paths and symlinks out of it are refused with 403, on every
//! route; slow clients are cut off.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn code(body: &[u8]) -> String {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v["code"].as_str().map(str::to_string))
        .unwrap_or_default()
}

/// Uploads `data` to `path` (one metadata part, one file part).
async fn upload(ex: &Executor, path: &str, data: &[u8]) -> (u16, Vec<u8>) {
    let meta = json!({"path": path}).to_string();
    let (ct, body) = multipart(&[
        ("metadata", "metadata", "application/json", meta.as_bytes()),
        ("file", "f", "application/octet-stream", data),
    ]);
    let mut resp = client()
        .post(ex.url("/files/upload"))
        .insert_header(("content-type", ct))
        .send_body(body)
        .await
        .unwrap();
    (resp.status().as_u16(), resp.body().await.unwrap().to_vec())
}

#[actix_rt::test]
async fn files_api_stays_inside_the_sandbox_root() {
    let root = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let secret = outside.path().join("secret.txt");
    std::fs::write(&secret, "host secret").unwrap();
    std::fs::write(root.path().join("mine.txt"), "mine").unwrap();
    std::os::unix::fs::symlink(outside.path(), root.path().join("escape")).unwrap();
    let ex = Executor::start_with(Opts {
        envs: vec![("EXECD_FS_ROOTS", root.path().display().to_string())],
        ..Opts::default()
    });
    let r = root.path().display().to_string();
    let s = secret.display().to_string();
    let o = outside.path().display().to_string();
    let escapes = [
        s.clone(),
        format!(
            "{r}/../{}/secret.txt",
            outside.path().file_name().unwrap().to_string_lossy()
        ),
        format!("{r}/escape/secret.txt"),
        format!("{r}/escape/new.txt"),
        "/etc/passwd".to_string(),
        "/".to_string(),
        "~/.bashrc".to_string(),
    ];
    let (mut requests, mut refused, mut violations) = (0, 0, Vec::new());
    let mut expect = |what: String, status: u16, body: &[u8], want_ok: bool| {
        requests += 1;
        let ok = if want_ok {
            status == 200
        } else {
            refused += 1;
            status == 403 && code(body) == "PATH_NOT_ALLOWED"
        };
        if !ok {
            violations.push(format!(
                "{what}: {status} {}",
                String::from_utf8_lossy(body)
            ));
        }
    };
    for p in &escapes {
        let (st, b, _) = get(&ex.url(&format!("/files/download?path={}", enc(p)))).await;
        expect(format!("download {p}"), st, &b, false);
        let (st, b, _) = get(&ex.url(&format!("/files/info?path={}", enc(p)))).await;
        expect(format!("info {p}"), st, &b, false);
        let (st, b, _) = get(&ex.url(&format!("/directories/list?path={}", enc(p)))).await;
        expect(format!("list {p}"), st, &b, false);
        let (st, b, _) = get(&ex.url(&format!("/files/search?path={}&pattern=*", enc(p)))).await;
        expect(format!("search {p}"), st, &b, false);
        let (st, b) = upload(&ex, p, b"overwritten").await;
        expect(format!("upload {p}"), st, &b, false);
        let (st, b) = delete(&ex.url(&format!("/files?path={}", enc(p)))).await;
        expect(format!("delete {p}"), st, &b, false);
        let (st, b, _) =
            post_json(&ex.url("/directories"), json!({p.as_str(): {"mode": 755}})).await;
        expect(format!("mkdir {p}"), st, &b, false);
        let (st, b, _) = post_json(
            &ex.url("/files/mv"),
            json!([{"src": format!("{r}/mine.txt"), "dest": p}]),
        )
        .await;
        expect(format!("mv into {p}"), st, &b, false);
        let (st, b, _) = post_json(
            &ex.url("/files/replace"),
            json!({p.as_str(): {"old": "host", "new": "pwned"}}),
        )
        .await;
        expect(format!("replace {p}"), st, &b, false);
        let (st, b, _) = post_json(
            &ex.url("/files/permissions"),
            json!({p.as_str(): {"mode": 777}}),
        )
        .await;
        expect(format!("chmod {p}"), st, &b, false);
    }
    // Inside the root everything still works.
    let (st, b, _) = get(&ex.url(&format!(
        "/files/download?path={}",
        enc(&format!("{r}/mine.txt"))
    )))
    .await;
    expect("download own file".into(), st, &b, true);
    let (st, b) = upload(&ex, &format!("{r}/sub/new.txt"), b"fresh").await;
    expect("upload own file".into(), st, &b, true);
    let (st, b, _) = get(&ex.url(&format!("/directories/list?path={}", enc(&r)))).await;
    expect("list own dir".into(), st, &b, true);

    assert_eq!(std::fs::read_to_string(&secret).unwrap(), "host secret");
    assert!(!outside.path().join("new.txt").exists());
    assert_eq!(std::fs::read_dir(&o).unwrap().count(), 1);
    println!(
        "FIGURES scenario=executor-path-escape requests={requests} errors_seen={refused} violations={}",
        violations.len()
    );
    assert!(violations.is_empty(), "{violations:#?}");
}

#[actix_rt::test]
async fn slow_clients_are_cut_off() {
    let ex = Executor::start();
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", ex.port))
        .await
        .unwrap();
    let started = Instant::now();
    let headers = format!("GET /ping HTTP/1.1\r\nx-pad: {}", "a".repeat(200));
    let mut buf = [0u8; 256];
    let mut closed = None;
    for b in headers.as_bytes() {
        if s.write_all(std::slice::from_ref(b)).await.is_err() {
            closed = Some(started.elapsed());
            break;
        }
        match tokio::time::timeout(Duration::from_millis(200), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Ok(Ok(_)) => {
                closed = Some(started.elapsed());
                break;
            }
            Err(_) => {}
        }
        if started.elapsed() > Duration::from_secs(20) {
            break;
        }
    }
    println!(
        "FIGURES scenario=executor-slow-headers requests=1 errors_seen=1 violations={}",
        u8::from(closed.is_none())
    );
    let closed = closed.expect("the executor never cut off a client trickling its headers");
    assert!(closed < Duration::from_secs(12), "closed after {closed:?}");
}
