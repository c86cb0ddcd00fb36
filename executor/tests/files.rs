//! Contract tests for `/files/*` and `/directories*`.

mod common;

use common::*;
use serde_json::json;

fn meta(path: &str, mode: u32) -> Vec<u8> {
    serde_json::to_vec(&json!({"path": path, "owner": null, "group": null, "mode": mode})).unwrap()
}

async fn upload(
    ex: &Executor,
    parts: &[(&str, &str, &str, &[u8])],
    chunked: bool,
) -> (u16, Vec<u8>) {
    let (ct, body) = multipart(parts);
    let req = client()
        .post(ex.url("/files/upload"))
        .insert_header(("content-type", ct));
    let mut resp = if chunked {
        let chunks: Vec<Result<bytes::Bytes, std::io::Error>> = body
            .chunks(7)
            .map(|c| Ok(bytes::Bytes::copy_from_slice(c)))
            .collect();
        req.send_stream(futures::stream::iter(chunks))
            .await
            .unwrap()
    } else {
        req.send_body(body).await.unwrap()
    };
    (resp.status().as_u16(), resp.body().await.unwrap().to_vec())
}

#[actix_rt::test]
async fn upload_pairs_by_order_chunked_and_download() {
    let ex = Executor::start();
    let a = ex.path("up/a.txt");
    let b = ex.path("up/deep/b.bin");
    let ma = meta(&a, 600);
    let mb = meta(&b, 755);
    let (status, body) = upload(
        &ex,
        &[
            ("metadata", "metadata", "application/json", &ma),
            ("file", "a.txt", "text/plain; charset=utf-8", b"hello\n"),
            ("metadata", "metadata", "application/json", &mb),
            (
                "file",
                "ignored-name",
                "application/octet-stream",
                &[0u8, 1, 2, 255],
            ),
        ],
        true,
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(std::fs::read(&a).unwrap(), b"hello\n");
    assert_eq!(std::fs::read(&b).unwrap(), vec![0u8, 1, 2, 255]);

    let (status, body, _) =
        get(&ex.url(&format!("/files/info?path={}&path={}", enc(&a), enc(&b)))).await;
    assert_eq!(status, 200);
    let info = json(&body);
    assert_eq!(info[&a]["mode"], 600);
    assert_eq!(info[&b]["mode"], 755);
    assert_eq!(info[&a]["size"], 6);
    assert_eq!(info[&a]["type"], "file");
    for key in [
        "path",
        "size",
        "modified_at",
        "created_at",
        "owner",
        "group",
        "mode",
    ] {
        assert!(!info[&a][key].is_null(), "{key}");
    }

    let (status, body, headers) = get(&ex.url(&format!("/files/download?path={}", enc(&a)))).await;
    assert_eq!(status, 200);
    assert_eq!(body, b"hello\n");
    assert_eq!(
        headers.get("content-type").unwrap(),
        "application/octet-stream"
    );
    assert_eq!(
        headers.get("content-disposition").unwrap(),
        "attachment; filename=\"a.txt\""
    );
    assert_eq!(headers.get("content-length").unwrap(), "6");
}

#[actix_rt::test]
async fn upload_file_before_metadata_is_paired_too() {
    let ex = Executor::start();
    let p = ex.path("late.txt");
    let m = meta(&p, 644);
    let (status, _) = upload(
        &ex,
        &[
            ("file", "x", "application/octet-stream", b"late"),
            ("metadata", "metadata", "application/json", &m),
        ],
        false,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(std::fs::read(&p).unwrap(), b"late");
}

#[actix_rt::test]
async fn bad_multipart_uploads() {
    let ex = Executor::start();
    let p = ex.path("x.txt");
    let m = meta(&p, 644);
    let cases: Vec<(Vec<Part>, &str)> = vec![
        (
            vec![("file", "f", "text/plain", b"x")],
            "INVALID_FILE_METADATA",
        ),
        (
            vec![("metadata", "metadata", "application/json", &m)],
            "INVALID_FILE_CONTENT",
        ),
        (
            vec![
                ("metadata", "metadata", "application/json", &m),
                ("file", "f", "text/plain", b"x"),
                ("file", "g", "text/plain", b"y"),
            ],
            "INVALID_FILE",
        ),
        (
            vec![
                ("metadata", "metadata", "application/json", b"{nope"),
                ("file", "f", "text/plain", b"x"),
            ],
            "INVALID_FILE_METADATA",
        ),
        (
            vec![
                (
                    "metadata",
                    "metadata",
                    "application/json",
                    b"{\"path\":\"\"}",
                ),
                ("file", "f", "text/plain", b"x"),
            ],
            "INVALID_FILE_METADATA",
        ),
    ];
    for (parts, code) in cases {
        let (status, body) = upload(&ex, &parts, false).await;
        assert_error(status, &body, 400, code);
    }
    // Not multipart at all, and a truncated multipart body.
    let mut resp = client()
        .post(ex.url("/files/upload"))
        .insert_header(("content-type", "application/json"))
        .send_body("{}")
        .await
        .unwrap();
    let body = resp.body().await.unwrap();
    assert_error(resp.status().as_u16(), &body, 400, "INVALID_FILE");
    let mut resp = client()
        .post(ex.url("/files/upload"))
        .insert_header(("content-type", "multipart/form-data; boundary=zz"))
        .send_body(
            "--zz\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f\"\r\n\r\nabc",
        )
        .await
        .unwrap();
    let body = resp.body().await.unwrap();
    assert_error(resp.status().as_u16(), &body, 400, "INVALID_FILE");
    let mut resp = client()
        .post(ex.url("/files/upload"))
        .insert_header(("content-type", "multipart/form-data; boundary=zz"))
        .send_body("--zz--\r\n")
        .await
        .unwrap();
    let body = resp.body().await.unwrap();
    assert_eq!(resp.status(), 400, "{}", String::from_utf8_lossy(&body));
}

#[actix_rt::test]
async fn range_downloads() {
    let ex = Executor::start();
    let p = ex.path("r.bin");
    std::fs::write(&p, b"0123456789").unwrap();
    let url = ex.url(&format!("/files/download?path={}", enc(&p)));
    let cases = [
        ("bytes=0-3", "0123", "bytes 0-3/10"),
        ("bytes=7-", "789", "bytes 7-9/10"),
        ("bytes=-2", "89", "bytes 8-9/10"),
        ("bytes=8-100", "89", "bytes 8-9/10"),
        ("bytes=1-2,5-6", "12", "bytes 1-2/10"),
    ];
    for (range, body, content_range) in cases {
        let mut resp = client()
            .get(&url)
            .insert_header(("Range", range))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 206, "{range}");
        assert_eq!(resp.headers().get("content-range").unwrap(), content_range);
        assert_eq!(resp.body().await.unwrap(), body.as_bytes());
    }
    let mut resp = client()
        .get(&url)
        .insert_header(("Range", "bytes=x-y"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 416);
    assert_eq!(
        json(&resp.body().await.unwrap()),
        json!({"code": "UNKNOWN"})
    );
    let resp = client()
        .get(&url)
        .insert_header(("Range", "bytes=50-60"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 416);
    assert_eq!(resp.headers().get("content-range").unwrap(), "bytes */10");

    // Line mode (offset/limit) and its exclusivity with Range.
    let lines = ex.path("lines.txt");
    std::fs::write(&lines, "l1\r\nl2\nl3\nl4\n").unwrap();
    let (status, body, headers) = get(&ex.url(&format!(
        "/files/download?path={}&offset=2&limit=2",
        enc(&lines)
    )))
    .await;
    assert_eq!(status, 200);
    assert_eq!(body, b"l2\nl3");
    assert!(
        headers
            .get("content-type")
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let (_, body, _) = get(&ex.url(&format!("/files/download?path={}&limit=1", enc(&lines)))).await;
    assert_eq!(body, b"l1");
    let (status, body, _) =
        get(&ex.url(&format!("/files/download?path={}&offset=0", enc(&lines)))).await;
    assert_error(status, &body, 400, "INVALID_REQUEST_BODY");
    let mut resp = client()
        .get(ex.url(&format!("/files/download?path={}&offset=1", enc(&lines))))
        .insert_header(("Range", "bytes=0-1"))
        .send()
        .await
        .unwrap();
    let body = resp.body().await.unwrap();
    assert_error(resp.status().as_u16(), &body, 400, "INVALID_REQUEST_BODY");
}

#[actix_rt::test]
async fn large_download_streams() {
    let ex = Executor::start();
    let p = ex.path("big.bin");
    let data: Vec<u8> = (0..20_000_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&p, &data).unwrap();
    let (status, body, _) = get(&ex.url(&format!("/files/download?path={}", enc(&p)))).await;
    assert_eq!(status, 200);
    assert!(body == data);
}

#[actix_rt::test]
async fn download_and_info_errors() {
    let ex = Executor::start();
    let (status, body, _) = get(&ex.url("/files/download")).await;
    assert_error(status, &body, 400, "MISSING_QUERY");
    let (status, body, _) = get(&ex.url("/files/download?path=/no/such/file")).await;
    assert_error(status, &body, 404, "FILE_NOT_FOUND");
    let (status, body, _) = get(&ex.url("/files/info?path=/no/such/file")).await;
    assert_error(status, &body, 404, "FILE_NOT_FOUND");
    let (status, body, _) = get(&ex.url("/files/download?path=%2Ftmp")).await;
    assert_error(status, &body, 400, "INVALID_REQUEST_BODY");
    let (status, body, _) = get(&ex.url("/files/info")).await;
    assert_eq!((status, json(&body)), (200, json!({})));
    // NUL bytes are rejected before touching the filesystem.
    let (status, body, _) = get(&ex.url("/files/info?path=%2Ftmp%2Fa%00b")).await;
    assert_error(status, &body, 400, "INVALID_REQUEST_BODY");
    let (status, body, _) = get(&ex.url("/files/download?path=%2Ftmp%00")).await;
    assert_error(status, &body, 400, "INVALID_REQUEST_BODY");
    // Undefined variables in paths are errors.
    let (status, body, _) = get(&ex.url("/files/info?path=%24NO_SUCH_VAR_XYZ%2Fa")).await;
    assert_error(status, &body, 400, "INVALID_REQUEST_BODY");
}

#[actix_rt::test]
async fn dotdot_paths_are_cleaned_lexically() {
    let ex = Executor::start();
    let real = ex.path("real.txt");
    std::fs::write(&real, b"x").unwrap();
    std::fs::create_dir_all(ex.path("sub")).unwrap();
    let dotted = format!("{}/sub/../real.txt", ex.dir.path().display());
    let (status, body, _) = get(&ex.url(&format!("/files/info?path={}", enc(&dotted)))).await;
    assert_eq!(status, 200);
    let v = json(&body);
    assert_eq!(
        v[&dotted]["path"], real,
        "keyed by the caller's string, reports the cleaned path"
    );
    // `..` above the root stays at the root.
    let (status, body, _) = get(&ex.url(&format!(
        "/files/info?path={}",
        enc("/../../../etc/hostname")
    )))
    .await;
    if std::path::Path::new("/etc/hostname").exists() {
        assert_eq!(status, 200);
        assert_eq!(
            json(&body)["/../../../etc/hostname"]["path"],
            "/etc/hostname"
        );
    }
}

#[actix_rt::test]
async fn search_replace_move_permissions_delete() {
    let ex = Executor::start();
    let root = ex.path("s");
    std::fs::create_dir_all(format!("{root}/d/e")).unwrap();
    for f in ["a.txt", "b.txt", "c.log", "d/x.txt", "d/e/y.txt"] {
        std::fs::write(format!("{root}/{f}"), "foo bar foo").unwrap();
    }
    let (status, body, _) = get(&ex.url(&format!(
        "/files/search?path={}&pattern={}",
        enc(&root),
        enc("*.txt")
    )))
    .await;
    assert_eq!(status, 200);
    let mut found: Vec<String> = json(&body)
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap().to_string())
        .collect();
    found.sort();
    assert_eq!(
        found,
        ["a.txt", "b.txt", "d/e/y.txt", "d/x.txt"].map(|f| format!("{root}/{f}"))
    );
    let (_, body, _) = get(&ex.url(&format!(
        "/files/search?path={}&pattern=*",
        enc(&format!("{root}/d/e"))
    )))
    .await;
    assert_eq!(
        json(&body).as_array().unwrap().len(),
        1,
        "directories are never returned"
    );
    let (status, body, _) = get(&ex.url("/files/search?pattern=*")).await;
    assert_error(status, &body, 400, "MISSING_QUERY");
    let (status, body, _) = get(&ex.url("/files/search?path=/no/such/dir&pattern=*")).await;
    assert_error(status, &body, 404, "FILE_NOT_FOUND");
    let (status, body, _) = get(&ex.url(&format!(
        "/files/search?path={}&pattern={}",
        enc(&root),
        enc("a[")
    )))
    .await;
    assert_error(status, &body, 500, "RUNTIME_ERROR");

    // Replace (non-verbose and verbose).
    let a = format!("{root}/a.txt");
    let (status, body, _) = post_json(
        &ex.url("/files/replace?verbose=false"),
        json!({a.clone(): {"old": "foo", "new": "baz"}}),
    )
    .await;
    assert_eq!((status, body.len()), (200, 0));
    assert_eq!(std::fs::read_to_string(&a).unwrap(), "baz bar baz");
    let (status, body, _) = post_json(
        &ex.url("/files/replace?verbose=true"),
        json!({a.clone(): {"old": "baz", "new": "q"}}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(json(&body), json!({a.clone(): {"replacedCount": 2}}));
    let (status, body, _) = post_json(
        &ex.url("/files/replace"),
        json!({a.clone(): {"old": "", "new": "q"}}),
    )
    .await;
    assert_error(status, &body, 400, "INVALID_REQUEST_BODY");
    let (status, body, _) = post_json(
        &ex.url("/files/replace"),
        json!({"/no/such": {"old": "a", "new": "q"}}),
    )
    .await;
    assert_error(status, &body, 404, "FILE_NOT_FOUND");

    // Move.
    let dest = format!("{root}/moved/deep/a2.txt");
    let (status, _, _) = post_json(
        &ex.url("/files/mv"),
        json!([{"src": a.clone(), "dest": dest.clone()}]),
    )
    .await;
    assert_eq!(status, 200);
    assert!(!std::path::Path::new(&a).exists() && std::path::Path::new(&dest).exists());
    let (status, body, _) = post_json(
        &ex.url("/files/mv"),
        json!([{"src": a.clone(), "dest": dest.clone()}]),
    )
    .await;
    assert_error(status, &body, 404, "FILE_NOT_FOUND");
    let b = format!("{root}/b.txt");
    let (status, body, _) = post_json(
        &ex.url("/files/mv"),
        json!([{"src": b.clone(), "dest": dest.clone()}]),
    )
    .await;
    assert_error(status, &body, 500, "RUNTIME_ERROR");

    // Permissions.
    let (status, body, _) = post_json(
        &ex.url("/files/permissions"),
        json!({b.clone(): {"mode": 640, "owner": null, "group": null}}),
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let (_, body, _) = get(&ex.url(&format!("/files/info?path={}", enc(&b)))).await;
    assert_eq!(json(&body)[&b]["mode"], 640);
    if nix::unistd::getuid().is_root() {
        let (status, _, _) = post_json(
            &ex.url("/files/permissions"),
            json!({b.clone(): {"mode": 600, "owner": "nobody", "group": "nogroup"}}),
        )
        .await;
        assert_eq!(status, 200);
        let (_, body, _) = get(&ex.url(&format!("/files/info?path={}", enc(&b)))).await;
        assert_eq!(json(&body)[&b]["owner"], "nobody");
    }
    let (status, body, _) = post_json(
        &ex.url("/files/permissions"),
        json!({"/no/such/file": {"mode": 644}}),
    )
    .await;
    assert_error(status, &body, 500, "RUNTIME_ERROR");
    let (status, body, _) = post_json(
        &ex.url("/files/permissions"),
        json!({b.clone(): {"mode": 788}}),
    )
    .await;
    assert_error(status, &body, 400, "INVALID_REQUEST_BODY");
    let mut resp = client()
        .post(ex.url("/files/permissions"))
        .insert_header(("content-type", "application/json"))
        .send_body("[")
        .await
        .unwrap();
    let body = resp.body().await.unwrap();
    assert_error(resp.status().as_u16(), &body, 400, "INVALID_REQUEST_BODY");

    // Delete files: missing ignored, directory refused.
    let (status, _) = delete(&ex.url(&format!("/files?path={}&path=%2Fno%2Fsuch", enc(&b)))).await;
    assert_eq!(status, 200);
    assert!(!std::path::Path::new(&b).exists());
    let (status, body) =
        delete(&ex.url(&format!("/files?path={}", enc(&format!("{root}/d"))))).await;
    assert_error(status, &body, 500, "RUNTIME_ERROR");
    let (status, _) = delete(&ex.url("/files")).await;
    assert_eq!(status, 200);
}

#[actix_rt::test]
async fn directories_create_list_delete() {
    let ex = Executor::start();
    let root = ex.path("tree");
    let (status, body, _) = post_json(
        &ex.url("/directories"),
        json!({format!("{root}/a/b"): {"mode": 755}, format!("{root}/c"): {"mode": 644}}),
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    std::fs::write(format!("{root}/a/f.txt"), "x").unwrap();
    std::os::unix::fs::symlink(format!("{root}/a"), format!("{root}/link")).unwrap();

    let (status, body, _) =
        get(&ex.url(&format!("/directories/list?path={}&depth=3", enc(&root)))).await;
    assert_eq!(status, 200);
    let list = json(&body);
    let got: Vec<(String, String, u64)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap().replace(&root, ""),
                f["type"].as_str().unwrap().to_string(),
                f["mode"].as_u64().unwrap(),
            )
        })
        .collect();
    let link_mode = got.iter().find(|g| g.0 == "/link").map(|g| g.2).unwrap();
    assert_eq!(
        got,
        vec![
            ("/a".into(), "directory".into(), 755),
            ("/a/b".into(), "directory".into(), 755),
            ("/a/f.txt".into(), "file".into(), got[2].2),
            ("/c".into(), "directory".into(), 644),
            ("/link".into(), "symlink".into(), link_mode),
        ]
    );
    let (_, body, _) = get(&ex.url(&format!("/directories/list?path={}", enc(&root)))).await;
    assert_eq!(
        json(&body).as_array().unwrap().len(),
        3,
        "depth defaults to 1"
    );
    let (_, body, _) =
        get(&ex.url(&format!("/directories/list?path={}&depth=0", enc(&root)))).await;
    assert_eq!(json(&body), json!([]));

    let (status, body, _) = get(&ex.url("/directories/list")).await;
    assert_error(status, &body, 400, "MISSING_QUERY");
    let (status, body, _) =
        get(&ex.url(&format!("/directories/list?path={}&depth=-1", enc(&root)))).await;
    assert_error(status, &body, 400, "INVALID_REQUEST_BODY");
    let (status, body, _) = get(&ex.url("/directories/list?path=/no/such")).await;
    assert_error(status, &body, 404, "FILE_NOT_FOUND");
    let (status, body, _) = get(&ex.url(&format!(
        "/directories/list?path={}",
        enc(&format!("{root}/link"))
    )))
    .await;
    assert_error(status, &body, 400, "INVALID_REQUEST_BODY");
    let (status, body, _) = get(&ex.url(&format!(
        "/directories/list?path={}",
        enc(&format!("{root}/a/f.txt"))
    )))
    .await;
    assert_error(status, &body, 400, "INVALID_REQUEST_BODY");

    let (status, _) = delete(&ex.url(&format!(
        "/directories?path={}&path=%2Fno%2Fsuch",
        enc(&format!("{root}/a"))
    )))
    .await;
    assert_eq!(status, 200);
    assert!(!std::path::Path::new(&format!("{root}/a")).exists());
}

#[actix_rt::test]
async fn bad_json_bodies_are_400() {
    let ex = Executor::start();
    for path in [
        "/files/permissions",
        "/files/mv",
        "/files/replace",
        "/directories",
        "/session/x/run",
        "/pty",
    ] {
        let mut resp = client()
            .post(ex.url(path))
            .insert_header(("content-type", "application/json"))
            .send_body("{\"unterminated\": ")
            .await
            .unwrap();
        let body = resp.body().await.unwrap();
        assert_error(resp.status().as_u16(), &body, 400, "INVALID_REQUEST_BODY");
    }
}
