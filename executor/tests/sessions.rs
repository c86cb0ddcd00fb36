//! Contract tests for bash sessions.

mod common;

use common::*;
use serde_json::json;

async fn create(ex: &Executor, body: Option<serde_json::Value>) -> String {
    let req = client()
        .post(ex.url("/session"))
        .insert_header(("content-type", "application/json"));
    let mut resp = match body {
        Some(b) => req.send_json(&b).await.unwrap(),
        None => req.send().await.unwrap(),
    };
    assert_eq!(resp.status(), 200);
    let v = json(&resp.body().await.unwrap());
    let id = v["session_id"].as_str().unwrap().to_string();
    assert_eq!(id.len(), 36, "uuid with dashes");
    id
}

async fn run_in(ex: &Executor, id: &str, body: serde_json::Value) -> Vec<serde_json::Value> {
    let (status, bytes, headers) = post_json(&ex.url(&format!("/session/{id}/run")), body).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&bytes));
    assert_eq!(headers.get("content-type").unwrap(), "text/event-stream");
    frames(&bytes)
}

#[actix_rt::test]
async fn env_and_cwd_persist_between_runs() {
    let ex = Executor::start();
    let dir = ex.path("work");
    let id = create(&ex, Some(json!({"cwd": dir}))).await;
    assert!(std::path::Path::new(&dir).is_dir(), "cwd is created");

    let ev = run_in(
        &ex,
        &id,
        json!({"command": "pwd; export FOO='a b'; mkdir -p sub; cd sub; LOCAL=1"}),
    )
    .await;
    assert_eq!(ev[0]["type"], "init");
    assert_eq!(ev[0]["text"], id);
    assert_eq!(texts(&ev, "stdout"), vec![dir.clone()]);
    assert_eq!(ev.last().unwrap()["type"], "execution_complete");

    let ev = run_in(&ex, &id, json!({"command": "pwd; echo \"$FOO\""})).await;
    assert_eq!(
        texts(&ev, "stdout"),
        vec![format!("{dir}/sub"), "a b".to_string()]
    );

    // A per-run cwd overrides and then sticks.
    let ev = run_in(&ex, &id, json!({"command": "pwd", "cwd": "/tmp"})).await;
    assert_eq!(texts(&ev, "stdout"), vec!["/tmp"]);
    let ev = run_in(&ex, &id, json!({"command": "pwd; echo $FOO"})).await;
    assert_eq!(texts(&ev, "stdout"), vec!["/tmp", "a b"]);
}

#[actix_rt::test]
async fn output_is_merged_empty_lines_dropped_and_exit_codes_reported() {
    let ex = Executor::start();
    let id = create(&ex, None).await;
    let ev = run_in(
        &ex,
        &id,
        json!({"command": "echo a; echo; echo b >&2; printf '\\n\\nc\\n'"}),
    )
    .await;
    assert_eq!(texts(&ev, "stdout"), vec!["a", "b", "c"]);
    assert!(texts(&ev, "stderr").is_empty());

    let ev = run_in(
        &ex,
        &id,
        json!({"command": "sh -c 'echo session-fail >&2; exit 7'"}),
    )
    .await;
    assert_eq!(texts(&ev, "stdout"), vec!["session-fail"]);
    let last = ev.last().unwrap();
    assert_eq!(last["type"], "error");
    assert_eq!(last["error"]["ename"], "CommandExecError");
    assert_eq!(last["error"]["evalue"], "7");
    assert_eq!(last["error"]["traceback"][0], "command exited with code 7");
    assert!(!kinds(&ev).contains(&"execution_complete".to_string()));

    // `exit` inside the session still reports the code and keeps the state.
    let ev = run_in(&ex, &id, json!({"command": "export KEEP=1; exit 5"})).await;
    assert_eq!(ev.last().unwrap()["error"]["evalue"], "5");
    let ev = run_in(&ex, &id, json!({"command": "echo $KEEP"})).await;
    assert_eq!(texts(&ev, "stdout"), vec!["1"]);
}

#[actix_rt::test]
async fn empty_and_braces_bodies_create_sessions() {
    let ex = Executor::start();
    create(&ex, None).await;
    create(&ex, Some(json!({}))).await;
}

#[actix_rt::test]
async fn session_errors() {
    let ex = Executor::start();
    let (status, body, _) =
        post_json(&ex.url("/session/nope/run"), json!({"command": "true"})).await;
    assert_error(status, &body, 500, "RUNTIME_ERROR");
    assert!(
        json(&body)["message"]
            .as_str()
            .unwrap()
            .contains("context not found")
    );
    let (status, body) = delete(&ex.url("/session/nope")).await;
    assert_error(status, &body, 404, "CONTEXT_NOT_FOUND");
    assert_eq!(json(&body)["message"], "session nope not found");

    let id = create(&ex, None).await;
    let (status, body, _) = post_json(
        &ex.url(&format!("/session/{id}/run")),
        json!({"command": "true", "cwd": "/no/such/dir"}),
    )
    .await;
    assert_error(status, &body, 400, "INVALID_REQUEST_BODY");
    let (status, body, _) = post_json(
        &ex.url(&format!("/session/{id}/run")),
        json!({"command": ""}),
    )
    .await;
    assert_error(status, &body, 400, "INVALID_REQUEST_BODY");
    let mut resp = client()
        .post(ex.url("/session"))
        .insert_header(("content-type", "application/json"))
        .send_body("{bad")
        .await
        .unwrap();
    let body = resp.body().await.unwrap();
    assert_error(resp.status().as_u16(), &body, 400, "INVALID_REQUEST_BODY");

    let (status, _) = delete(&ex.url(&format!("/session/{id}"))).await;
    assert_eq!(status, 200);
    let (status, body) = delete(&ex.url(&format!("/session/{id}"))).await;
    assert_error(status, &body, 404, "CONTEXT_NOT_FOUND");
}

#[actix_rt::test]
async fn timeout_writes_a_midstream_error_object() {
    let ex = Executor::start();
    let id = create(&ex, None).await;
    let (status, bytes, _) = post_json(
        &ex.url(&format!("/session/{id}/run")),
        json!({"command": "echo started; sleep 30", "timeout": 500}),
    )
    .await;
    assert_eq!(status, 200);
    let text = String::from_utf8(bytes).unwrap();
    let (events, trailer) = text.rsplit_once("\n\n").unwrap();
    let ev = frames(format!("{events}\n\n").as_bytes());
    assert_eq!(texts(&ev, "stdout"), vec!["started"]);
    let err = json(trailer.as_bytes());
    assert_eq!(err["code"], "RUNTIME_ERROR");
    assert!(err["message"].as_str().unwrap().contains("timeout"));
}

#[actix_rt::test]
async fn delete_kills_a_running_session_and_interrupt_accepts_session_ids() {
    let ex = Executor::start();
    let id = create(&ex, None).await;
    let url = ex.url(&format!("/session/{id}/run"));
    let handle =
        actix_rt::spawn(async move { post_json(&url, json!({"command": "sleep 30"})).await });
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let started = std::time::Instant::now();
    let (status, _) = delete(&ex.url(&format!("/command?id={id}"))).await;
    assert_eq!(status, 200);
    let (status, _, _) = handle.await.unwrap();
    assert_eq!(status, 200);
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    let (status, _, _) = post_json(
        &ex.url(&format!("/session/{id}/run")),
        json!({"command": "true"}),
    )
    .await;
    assert_eq!(status, 500);
}

#[actix_rt::test]
async fn client_disconnect_cancels_the_session_run() {
    let ex = Executor::start();
    let id = create(&ex, None).await;
    let pidfile = ex.path("run.pid");
    {
        let mut resp = client()
            .post(ex.url(&format!("/session/{id}/run")))
            .send_json(&json!({"command": format!("echo $$ > {pidfile}; echo started; sleep 30")}))
            .await
            .unwrap();
        use futures::StreamExt;
        let mut seen = Vec::new();
        while !String::from_utf8_lossy(&seen).contains("started") {
            seen.extend_from_slice(&resp.next().await.unwrap().unwrap());
        }
    }
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok() {
        assert!(
            std::time::Instant::now() < until,
            "session process survived the disconnect"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let (status, _, _) = get(&ex.url("/ping")).await;
    assert_eq!(status, 200);
    let ev = run_in(&ex, &id, json!({"command": "echo again"})).await;
    assert_eq!(texts(&ev, "stdout"), vec!["again"]);
}
