//! Contract tests for `/command` (foreground, background, status, logs, interrupt).

mod common;

use common::*;
use serde_json::json;
use std::time::{Duration, Instant};

#[actix_rt::test]
async fn exact_byte_framing_of_a_simple_command() {
    let ex = Executor::start();
    let (status, body, _) = post_json(&ex.url("/command"), json!({"command": "echo hi"})).await;
    assert_eq!(status, 200);
    let text = String::from_utf8(body).unwrap();
    let re_id = text
        .split("\"text\":\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    assert_eq!(re_id.len(), 32);
    assert!(re_id.chars().all(|c| c.is_ascii_hexdigit()));
    // Replace the volatile fields and compare the whole byte stream.
    let mut normalized = String::new();
    for frame in text.split_terminator("\n\n") {
        let mut v: serde_json::Value = serde_json::from_str(frame).unwrap();
        assert!(v["timestamp"].as_i64().unwrap() > 1_600_000_000_000);
        v["timestamp"] = json!(0);
        if v["type"] == "execution_complete" {
            v.as_object_mut().unwrap().remove("execution_time");
        }
        normalized.push_str(&serde_json::to_string(&v).unwrap());
        normalized.push_str("\n\n");
    }
    let expected = format!(
        "{{\"text\":\"{re_id}\",\"timestamp\":0,\"type\":\"init\"}}\n\n{{\"text\":\"hi\",\"timestamp\":0,\"type\":\"stdout\"}}\n\n{{\"timestamp\":0,\"type\":\"execution_complete\"}}\n\n"
    );
    assert_eq!(normalized, expected);
    // Raw frames are compact, key order type-first, no `data:` prefix.
    assert!(text.starts_with("{\"type\":\"init\",\"text\":\""));
    assert!(text.contains("\n\n{\"type\":\"stdout\",\"text\":\"hi\",\"timestamp\":"));
}

#[actix_rt::test]
async fn blank_lines_are_sent_as_newline_text() {
    let ex = Executor::start();
    let ev = run(&ex, json!({"command": "printf 'a\\n\\nb\\n\\n\\nc\\n'"})).await;
    assert_eq!(texts(&ev, "stdout"), vec!["a", "\n", "b", "\n", "\n", "c"]);
    let ev = run(&ex, json!({"command": "printf 'x\\r\\ny\\rz'"})).await;
    assert_eq!(texts(&ev, "stdout"), vec!["x", "y", "z"]);
}

#[actix_rt::test]
async fn exit_codes_and_event_order() {
    let ex = Executor::start();
    let ev = run(&ex, json!({"command": "echo out; echo err >&2; exit 3"})).await;
    assert_eq!(ev[0]["type"], "init");
    assert_eq!(texts(&ev, "stdout"), vec!["out"]);
    assert_eq!(texts(&ev, "stderr"), vec!["err"]);
    let last = ev.last().unwrap();
    assert_eq!(last["type"], "error");
    assert_eq!(last["error"]["ename"], "CommandExecError");
    assert_eq!(last["error"]["evalue"], "3");
    assert_eq!(last["error"]["traceback"][0], "exit status 3");
    assert!(!kinds(&ev).contains(&"execution_complete".to_string()));

    let ev = run(&ex, json!({"command": "nonexistent-cmd-xyz"})).await;
    assert_eq!(ev.last().unwrap()["error"]["evalue"], "127");
    assert!(
        texts(&ev, "stderr")
            .concat()
            .contains("nonexistent-cmd-xyz")
    );

    let ev = run(&ex, json!({"command": "true"})).await;
    assert_eq!(kinds(&ev), vec!["init", "execution_complete"]);
}

#[actix_rt::test]
async fn argv_envs_cwd_and_env_file() {
    let ex = Executor::start();
    let ev = run(&ex, json!({"argv": ["printf", "%s|", "a b", "$HOME"]})).await;
    assert_eq!(texts(&ev, "stdout"), vec!["a b|$HOME|"]);

    std::fs::write(
        ex.path("envs"),
        "# comment\nPLAIN=p1\nSQ='lit $HOME'\nDQ=\"q\\\"x\"\nPLAIN=p2\n",
    )
    .unwrap();
    let ev = run(
        &ex,
        json!({"command": "echo $PLAIN; echo \"$SQ\"; echo \"$DQ\"; echo $REQ; pwd; test -n \"$EXECD_ENVS\" && echo has-envs",
               "envs": {"REQ": "r", "PLAIN": "overridden"}, "cwd": "/tmp"}),
    )
    .await;
    assert_eq!(
        texts(&ev, "stdout"),
        vec!["overridden", "lit $HOME", "q\"x", "r", "/tmp", "has-envs"]
    );
    // `commands.set_env` style append is visible to the next command.
    run(
        &ex,
        json!({"command": "echo \"NEWVAR='v 1'\" >> \"$EXECD_ENVS\""}),
    )
    .await;
    let ev = run(&ex, json!({"command": "echo $NEWVAR"})).await;
    assert_eq!(texts(&ev, "stdout"), vec!["v 1"]);
}

#[actix_rt::test]
async fn request_errors() {
    let ex = Executor::start();
    let cases = [
        (json!({"command": ""}), "invalid request, validation error"),
        (json!({}), "invalid request, validation error"),
        (
            json!({"command": "x", "gid": 1}),
            "uid is required when gid is provided",
        ),
        (json!({"command": "x", "argv": ["x"]}), "exactly one"),
        (json!({"argv": [""]}), "argv"),
        (json!({"argv": ["echo", "a\0b"]}), "NUL"),
        (json!({"command": "echo a\0b"}), "NUL"),
        (
            json!({"command": "x", "cwd": "/definitely/not/here"}),
            "cwd",
        ),
    ];
    for (body, msg) in cases {
        let (status, bytes, _) = post_json(&ex.url("/command"), body.clone()).await;
        assert_error(status, &bytes, 400, "INVALID_REQUEST_BODY");
        assert!(
            json(&bytes)["message"].as_str().unwrap().contains(msg),
            "{body}: {}",
            String::from_utf8_lossy(&bytes)
        );
    }
    let mut resp = client()
        .post(ex.url("/command"))
        .insert_header(("content-type", "application/json"))
        .send_body("{not json")
        .await
        .unwrap();
    let bytes = resp.body().await.unwrap();
    assert_error(resp.status().as_u16(), &bytes, 400, "INVALID_REQUEST_BODY");
    assert!(
        json(&bytes)["message"]
            .as_str()
            .unwrap()
            .starts_with("error parsing request, MAYBE invalid body format.")
    );
    let (status, bytes, _) = post_json(
        &ex.url("/command"),
        json!({"command": "x", "cwd": "$UNDEFINED_VAR_XYZ/a"}),
    )
    .await;
    assert_error(status, &bytes, 500, "RUNTIME_ERROR");
    assert!(
        json(&bytes)["message"]
            .as_str()
            .unwrap()
            .starts_with("error running commands")
    );
    // Unknown routes and wrong methods: 404 plain text.
    let (status, body, _) = get(&ex.url("/command")).await;
    assert_eq!((status, body.as_slice()), (404, &b"404 page not found"[..]));
}

#[actix_rt::test]
async fn timeout_kills_with_minus_one() {
    let ex = Executor::start();
    let started = Instant::now();
    let ev = run(
        &ex,
        json!({"command": "echo start; sleep 30", "timeout": 500}),
    )
    .await;
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(texts(&ev, "stdout"), vec!["start"]);
    assert_eq!(ev.last().unwrap()["error"]["evalue"], "-1");
}

#[actix_rt::test]
async fn background_logs_with_cursor_and_status() {
    let ex = Executor::start();
    let started = Instant::now();
    let ev = run(&ex, json!({"command": "echo one; echo two >&2; sleep 1; echo three; exit 4", "background": true})).await;
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(kinds(&ev), vec!["init", "execution_complete"]);
    let id = ev[0]["text"].as_str().unwrap().to_string();

    let (status, body, _) = get(&ex.url(&format!("/command/status/{id}"))).await;
    assert_eq!(status, 200);
    let st = json(&body);
    assert_eq!(st["running"], true);
    assert_eq!(
        st["content"],
        "echo one; echo two >&2; sleep 1; echo three; exit 4"
    );
    assert!(st.get("exit_code").is_none() && st.get("finished_at").is_none());
    assert!(st["started_at"].as_str().unwrap().contains('T'));

    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, body, headers) = get(&ex.url(&format!("/command/{id}/logs"))).await;
    assert_eq!(status, 200);
    assert_eq!(String::from_utf8(body.clone()).unwrap(), "one\ntwo\n");
    let cursor: u64 = headers
        .get("EXECD-COMMANDS-TAIL-CURSOR")
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(cursor, 8);

    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (_, body, headers) = get(&ex.url(&format!("/command/{id}/logs?cursor={cursor}"))).await;
    assert_eq!(String::from_utf8(body).unwrap(), "three\n");
    assert_eq!(headers.get("EXECD-COMMANDS-TAIL-CURSOR").unwrap(), "14");
    let (_, body, _) = get(&ex.url(&format!("/command/{id}/logs?cursor=14"))).await;
    assert!(body.is_empty());

    let (_, body, _) = get(&ex.url(&format!("/command/status/{id}"))).await;
    let st = json(&body);
    assert_eq!(st["running"], false);
    assert_eq!(st["exit_code"], 4);
    assert_eq!(st["error"], "exit status 4");
    assert!(st["finished_at"].is_string());
}

#[actix_rt::test]
async fn status_logs_interrupt_errors() {
    let ex = Executor::start();
    let (status, body, _) = get(&ex.url("/command/status/nope")).await;
    assert_error(status, &body, 404, "INVALID_REQUEST_BODY");
    assert_eq!(json(&body)["message"], "command not found: nope");
    let (status, body, _) = get(&ex.url("/command/nope/logs")).await;
    assert_error(status, &body, 400, "INVALID_REQUEST_BODY");
    let (status, body) = delete(&ex.url("/command?id=nope")).await;
    assert_error(status, &body, 500, "RUNTIME_ERROR");
    let (status, body) = delete(&ex.url("/command")).await;
    assert_error(status, &body, 400, "MISSING_QUERY");

    // Foreground commands have no logs; finished commands cannot be interrupted.
    let ev = run(&ex, json!({"command": "echo done"})).await;
    let id = ev[0]["text"].as_str().unwrap();
    let (status, body, _) = get(&ex.url(&format!("/command/{id}/logs"))).await;
    assert_error(status, &body, 400, "INVALID_REQUEST_BODY");
    let (_, body, _) = get(&ex.url(&format!("/command/status/{id}"))).await;
    assert_eq!(json(&body)["exit_code"], 0);
    let (status, body) = delete(&ex.url(&format!("/command?id={id}"))).await;
    assert_error(status, &body, 500, "RUNTIME_ERROR");
    assert!(
        json(&body)["message"]
            .as_str()
            .unwrap()
            .contains("is not running")
    );
}

#[actix_rt::test]
async fn interrupt_ends_foreground_stream_with_minus_one() {
    let ex = Executor::start();
    let mut resp = client()
        .post(ex.url("/command"))
        .send_json(&json!({"command": "echo ready; sleep 60"}))
        .await
        .unwrap();
    use futures::StreamExt;
    let mut buf = Vec::new();
    while !String::from_utf8_lossy(&buf).contains("ready") {
        buf.extend_from_slice(&resp.next().await.unwrap().unwrap());
    }
    let id = frames(
        &buf[..buf.len() - (buf.len() - String::from_utf8_lossy(&buf).rfind("\n\n").unwrap() - 2)],
    )[0]["text"]
        .as_str()
        .unwrap()
        .to_string();
    let started = Instant::now();
    let (status, _) = delete(&ex.url(&format!("/command?id={id}"))).await;
    assert_eq!(status, 200);
    assert!(started.elapsed() < Duration::from_secs(4));
    while let Some(chunk) = resp.next().await {
        buf.extend_from_slice(&chunk.unwrap());
    }
    let ev = frames(&buf);
    assert_eq!(ev.last().unwrap()["error"]["evalue"], "-1");
    let (_, body, _) = get(&ex.url(&format!("/command/status/{id}"))).await;
    assert_eq!(json(&body)["running"], false);
}

#[actix_rt::test]
async fn huge_output_is_streamed_with_bounded_memory() {
    let ex = Executor::start();
    // 50 MB of output: 500,000 lines of 100 bytes.
    let mut resp = client()
        .post(ex.url("/command"))
        .send_json(&json!({"command": "yes aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa | head -n 500000"}))
        .await
        .unwrap();
    use futures::StreamExt;
    let mut lines = 0usize;
    let mut tail = Vec::new();
    let mut carry = Vec::new();
    let mut max_rss = 0;
    let mut n = 0;
    while let Some(chunk) = resp.next().await {
        let chunk = chunk.unwrap();
        let mut joined = std::mem::take(&mut carry);
        joined.extend_from_slice(&chunk);
        lines += joined
            .windows(15)
            .filter(|w| w == b"\"type\":\"stdout\"")
            .count();
        carry = joined[joined.len().saturating_sub(14)..].to_vec();
        tail = chunk[chunk.len().saturating_sub(300)..].to_vec();
        n += 1;
        if n % 500 == 0 {
            max_rss = max_rss.max(rss_kib(ex.pid()));
        }
    }
    assert_eq!(lines, 500_000);
    assert!(String::from_utf8_lossy(&tail).contains("execution_complete"));
    assert!(max_rss < 200 * 1024, "executor RSS grew to {max_rss} KiB");
}

#[actix_rt::test]
async fn long_line_without_newline_is_cut_into_chunks() {
    let ex = Executor::start();
    let ev = run(
        &ex,
        json!({"command": "head -c 300000 /dev/zero | tr '\\0' x"}),
    )
    .await;
    let out = texts(&ev, "stdout");
    assert!(out.len() >= 4);
    assert_eq!(out.concat().len(), 300_000);
}

#[actix_rt::test]
async fn client_disconnect_mid_stream_keeps_executor_healthy() {
    let ex = Executor::start();
    {
        let mut resp = client()
            .post(ex.url("/command"))
            .send_json(&json!({"command": "while true; do echo spam; done", "timeout": 3000}))
            .await
            .unwrap();
        use futures::StreamExt;
        let _ = resp.next().await;
        // Response dropped here: the client goes away mid-stream.
    }
    let started = Instant::now();
    let (status, _, _) = get(&ex.url("/ping")).await;
    assert_eq!(status, 200);
    assert!(started.elapsed() < Duration::from_secs(1));
    let ev = run(&ex, json!({"command": "echo still-ok"})).await;
    assert_eq!(texts(&ev, "stdout"), vec!["still-ok"]);
}

#[actix_rt::test]
async fn ping_events_keep_long_streams_alive() {
    let ex = Executor::start();
    let ev = run(&ex, json!({"command": "sleep 3.5; echo done"})).await;
    let pings: Vec<_> = ev.iter().filter(|e| e["type"] == "ping").collect();
    assert!(!pings.is_empty());
    assert_eq!(pings[0]["text"], "pong");
}

#[actix_rt::test]
async fn metrics_shape() {
    let ex = Executor::start();
    let (status, body, _) = get(&ex.url("/metrics")).await;
    assert_eq!(status, 200);
    let m = json(&body);
    assert!(m["cpu_count"].as_f64().unwrap() > 0.0);
    let pct = m["cpu_used_pct"].as_f64().unwrap();
    assert!((0.0..=100.0).contains(&pct));
    assert!(m["mem_used_mib"].as_f64().unwrap() <= m["mem_total_mib"].as_f64().unwrap());
    assert!(m["timestamp"].is_i64());
    let (status, body) = delete(&ex.url("/metrics")).await;
    assert_eq!((status, body.as_slice()), (404, &b"404 page not found"[..]));

    // /metrics/watch: one JSON object per line, until the client leaves.
    let mut resp = client().get(ex.url("/metrics/watch")).send().await.unwrap();
    assert_eq!(
        resp.headers().get("content-type").unwrap(),
        "text/event-stream"
    );
    use futures::StreamExt;
    let mut buf = Vec::new();
    while !buf.contains(&b'\n') {
        buf.extend_from_slice(&resp.next().await.unwrap().unwrap());
    }
    let line = buf.split(|b| *b == b'\n').next().unwrap();
    assert!(json(line)["mem_total_mib"].as_f64().unwrap() > 0.0);
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

#[actix_rt::test]
async fn uid_and_gid_switch_identity() {
    if !nix::unistd::getuid().is_root() {
        return;
    }
    let ex = Executor::start();
    let ev = run(&ex, json!({"command": "id -u; id -g", "uid": 65534})).await;
    let out = texts(&ev, "stdout");
    assert_eq!(out[0], "65534");
    let ev = run(
        &ex,
        json!({"command": "id -u; id -g", "uid": 65534, "gid": 12345}),
    )
    .await;
    assert_eq!(texts(&ev, "stdout"), vec!["65534", "12345"]);
}

#[actix_rt::test]
async fn spawn_failures_after_init() {
    let ex = Executor::start();
    // Foreground: init, then an error whose evalue is the OS error text (no exit code).
    let ev = run(&ex, json!({"argv": ["/no/such/binary"]})).await;
    assert_eq!(kinds(&ev), vec!["init", "error"]);
    let evalue = ev[1]["error"]["evalue"].as_str().unwrap();
    assert!(
        evalue.parse::<i32>().is_err() && evalue.contains("No such file"),
        "{evalue}"
    );
    let id = ev[0]["text"].as_str().unwrap();
    let (_, body, _) = get(&ex.url(&format!("/command/status/{id}"))).await;
    assert_eq!(json(&body)["running"], false);

    // Background: init, then a `{code,message}` object mid-stream; recorded as exit 255.
    let (status, bytes, _) = post_json(
        &ex.url("/command"),
        json!({"argv": ["/no/such/binary"], "background": true}),
    )
    .await;
    assert_eq!(status, 200);
    let text = String::from_utf8(bytes).unwrap();
    let (events, trailer) = text.rsplit_once("\n\n").unwrap();
    let ev = frames(format!("{events}\n\n").as_bytes());
    assert_eq!(kinds(&ev), vec!["init"]);
    assert_eq!(json(trailer.as_bytes())["code"], "RUNTIME_ERROR");
    let id = ev[0]["text"].as_str().unwrap();
    let (_, body, _) = get(&ex.url(&format!("/command/status/{id}"))).await;
    assert_eq!(json(&body)["exit_code"], 255);
}

#[actix_rt::test]
async fn the_scratch_dir_is_created_only_when_a_background_command_needs_it() {
    let tmp = tempfile::tempdir().unwrap();
    let ex = Executor::start_with(Opts {
        envs: vec![("TMPDIR", tmp.path().display().to_string())],
        ..Default::default()
    });
    let scratch = tmp
        .path()
        .join(format!("opensandbox-executor-{}", ex.pid()));
    assert!(!scratch.exists(), "an idle executor wrote its scratch dir");
    let (status, _, _) = post_json(
        &ex.url("/command"),
        serde_json::json!({"command": "true", "background": true}),
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        scratch.is_dir(),
        "a background command needs the scratch dir"
    );
}

#[actix_rt::test]
async fn a_scratch_dir_that_cannot_be_created_is_named_in_the_error() {
    let tmp = tempfile::tempdir().unwrap();
    let not_a_dir = tmp.path().join("file");
    std::fs::write(&not_a_dir, b"").unwrap();
    let ex = Executor::start_with(Opts {
        envs: vec![("TMPDIR", not_a_dir.display().to_string())],
        ..Default::default()
    });
    // The stream has begun (init) when the output file is opened, so the error arrives as the
    // mid-stream `{code, message}` envelope.
    let (status, body, _) = post_json(
        &ex.url("/command"),
        serde_json::json!({"command": "true", "background": true}),
    )
    .await;
    assert_eq!(status, 200);
    let text = String::from_utf8_lossy(&body);
    assert!(
        text.contains("RUNTIME_ERROR")
            && text.contains("creating the scratch directory")
            && text.contains(&not_a_dir.display().to_string()),
        "{text}"
    );
    // The executor still serves everything that needs no scratch space.
    let events = run(&ex, serde_json::json!({"command": "echo still here"})).await;
    assert!(
        events
            .iter()
            .any(|e| e["type"] == "stdout"
                && e["text"].as_str().unwrap_or("").contains("still here")),
        "{events:?}"
    );
}
