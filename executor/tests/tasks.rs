//! Contract tests for the task API (port 5758 role).

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

async fn set_tasks(ex: &Executor, tasks: Value) -> (u16, Value) {
    let (status, body, _) = post_json(&ex.task_url("/setTasks"), tasks).await;
    (status, json(&body))
}

async fn get_tasks(ex: &Executor) -> Vec<Value> {
    let (status, body, _) = get(&ex.task_url("/getTasks")).await;
    assert_eq!(status, 200);
    json(&body).as_array().unwrap().clone()
}

async fn wait_for(ex: &Executor, name: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let tasks = get_tasks(ex).await;
        if let Some(t) = tasks.iter().find(|t| t["name"] == name)
            && pred(t)
        {
            return t.clone();
        }
        assert!(
            Instant::now() < until,
            "timed out waiting for {name}: {tasks:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn terminated(t: &Value) -> bool {
    t["processStatus"]["terminated"].is_object()
}

#[actix_rt::test]
async fn set_and_get_tasks_run_a_process() {
    let ex = Executor::start();
    let (status, body, _) = get(&ex.task_url("/health")).await;
    assert_eq!((status, json(&body)), (200, json!({"status": "healthy"})));
    assert!(get_tasks(&ex).await.is_empty());

    let (status, list) = set_tasks(
        &ex,
        json!([{"name": "t-0", "process": {"command": ["sh", "-c"], "args": ["echo out-$FOO; echo err >&2; pwd; exit 3"],
               "env": [{"name": "FOO", "value": "bar"}], "workingDir": "/tmp"}}]),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["name"], "t-0");
    assert!(list[0].get("deletionTimestamp").is_none());

    let t = wait_for(&ex, "t-0", terminated).await;
    let term = &t["processStatus"]["terminated"];
    assert_eq!(term["exitCode"], 3);
    assert_eq!(term["reason"], "Failed");
    assert!(term["startedAt"].is_string() && term["finishedAt"].is_string());
    assert_eq!(t["process"]["command"], json!(["sh", "-c"]));

    let dir = ex.dir.path().join("tasks/t-0");
    assert_eq!(
        std::fs::read_to_string(dir.join("stdout.log")).unwrap(),
        "out-bar\n/tmp\n"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("stderr.log")).unwrap(),
        "err\n"
    );
    assert!(
        dir.join("task.json").is_file() && dir.join("pid").is_file() && dir.join("exit").is_file()
    );

    let (status, body, _) = get(&ex.task_url("/tasks/t-0")).await;
    assert_eq!(status, 200);
    assert_eq!(json(&body)["name"], "t-0");
}

#[actix_rt::test]
async fn the_data_dir_is_created_with_the_first_task_and_must_be_writable() {
    // Nothing is written at start: the data dir appears with the first task.
    let ex = Executor::start();
    let data = ex.dir.path().join("tasks");
    assert!(
        !data.exists(),
        "an executor without tasks wrote its data dir"
    );
    let (status, _) = set_tasks(
        &ex,
        json!([{"name": "t-first", "process": {"command": ["true"]}}]),
    )
    .await;
    assert_eq!(status, 200);
    wait_for(&ex, "t-first", terminated).await;
    assert!(data.join("t-first/task.json").is_file());

    // A data dir that cannot be created still disables the task API at start, with a reason.
    let blocker = tempfile::tempdir().unwrap();
    let file = blocker.path().join("not-a-dir");
    std::fs::write(&file, b"").unwrap();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_opensandbox-executor"));
    let port = free_port();
    let task_port = free_port();
    let out = cmd
        .arg(format!("--port={port}"))
        .arg("--task-listen-addr")
        .arg(format!("127.0.0.1:{task_port}"))
        .arg("--task-data-dir")
        .arg(&file)
        .env("EXECD_ENVS", blocker.path().join("envs"))
        .env("EXECD_LOG", "error")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = nix::unistd::Pid::from_raw(out.id() as i32);
    let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(std::time::Instant::now() < until, "executor did not start");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", task_port)).is_err(),
        "the task API must be off when its data dir is unusable"
    );
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let out = out.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains("task API disabled") && log.contains("not a directory"),
        "{log}"
    );
}

#[actix_rt::test]
async fn running_state_one_active_task_and_soft_delete() {
    let ex = Executor::start();
    set_tasks(
        &ex,
        json!([{"name": "long", "process": {"command": ["sleep", "30"]}}]),
    )
    .await;
    let t = wait_for(&ex, "long", |t| t["processStatus"]["running"].is_object()).await;
    assert!(t["processStatus"]["running"]["startedAt"].is_string());

    // A second active task is refused.
    let (status, body, _) = post_json(
        &ex.task_url("/tasks"),
        json!({"name": "other", "process": {"command": ["true"]}}),
    )
    .await;
    assert_eq!(status, 500);
    assert_eq!(json(&body)["code"], "Internal Server Error");

    // Replacing the desired set soft-deletes the old task (deletionTimestamp visible) and
    // starts the new one; the active task comes first.
    let (status, list) = set_tasks(
        &ex,
        json!([{"name": "next", "process": {"command": ["sleep", "30"]}}]),
    )
    .await;
    assert_eq!(status, 200);
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["next", "long"]);
    assert!(list[1]["deletionTimestamp"].is_string());
    assert!(list[0].get("deletionTimestamp").is_none());

    // The deleted task is stopped and then removed.
    let until = Instant::now() + Duration::from_secs(15);
    while get_tasks(&ex).await.iter().any(|t| t["name"] == "long") {
        assert!(Instant::now() < until, "deleted task was not removed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(!ex.dir.path().join("tasks/long").exists());

    // Release everything.
    let (status, _) = set_tasks(&ex, json!([])).await;
    assert_eq!(status, 200);
    let until = Instant::now() + Duration::from_secs(15);
    while !get_tasks(&ex).await.is_empty() {
        assert!(Instant::now() < until);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[actix_rt::test]
async fn timeout_reports_137() {
    let ex = Executor::start();
    set_tasks(
        &ex,
        json!([{"name": "slow", "process": {"command": ["sleep", "60"], "timeoutSeconds": 1}}]),
    )
    .await;
    let t = wait_for(&ex, "slow", terminated).await;
    let term = &t["processStatus"]["terminated"];
    assert_eq!(term["exitCode"], 137);
    assert_eq!(term["reason"], "TaskTimeout");
    assert_eq!(term["message"], "Task exceeded timeout of 1 seconds");
    // Still 137 after the process was stopped.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let t = wait_for(&ex, "slow", terminated).await;
    assert_eq!(t["processStatus"]["terminated"]["exitCode"], 137);
    // A timed-out task is not active any more: a new task may start.
    let (status, _, _) = post_json(
        &ex.task_url("/tasks"),
        json!({"name": "after", "process": {"command": ["true"]}}),
    )
    .await;
    assert_eq!(status, 201);
}

#[actix_rt::test]
async fn state_survives_a_restart() {
    let data = tempfile::tempdir().unwrap();
    let opts = || Opts {
        task_dir: Some(data.path().to_path_buf()),
        ..Default::default()
    };
    {
        let ex = Executor::start_with(opts());
        set_tasks(
            &ex,
            json!([{"name": "done", "process": {"command": ["sh", "-c", "echo hi"]}}]),
        )
        .await;
        wait_for(&ex, "done", terminated).await;
    }
    let ex = Executor::start_with(opts());
    let tasks = get_tasks(&ex).await;
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0]["processStatus"]["terminated"]["exitCode"], 0);
    assert_eq!(
        tasks[0]["processStatus"]["terminated"]["reason"],
        "Succeeded"
    );
    // Keeping the same desired set does not re-run it.
    let (_, list) = set_tasks(
        &ex,
        json!([{"name": "done", "process": {"command": ["sh", "-c", "echo hi"]}}]),
    )
    .await;
    assert_eq!(list[0]["processStatus"]["terminated"]["exitCode"], 0);
    assert_eq!(
        std::fs::read_to_string(data.path().join("done/stdout.log")).unwrap(),
        "hi\n"
    );

    // A task that was active when the executor died (its pid gone, no exit code) is
    // dropped so the controller re-creates it.
    std::fs::create_dir_all(data.path().join("lost")).unwrap();
    std::fs::write(
        data.path().join("lost/task.json"),
        serde_json::to_vec(&json!({"task": {"name": "lost", "process": {"command": ["sleep", "1"]}}, "createdAt": "2026-01-01T00:00:00Z"})).unwrap(),
    )
    .unwrap();
    std::fs::write(data.path().join("lost/pid"), "999999999").unwrap();
    std::fs::write(data.path().join("corrupt.json"), "{").unwrap();
    drop(ex);
    let ex = Executor::start_with(opts());
    let names: Vec<String> = get_tasks(&ex)
        .await
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["done"]);
    assert!(!data.path().join("lost").exists());
}

#[actix_rt::test]
async fn output_capture_is_bounded() {
    let ex = Executor::start_with(Opts {
        args: vec!["--task-log-max-bytes", "4096"],
        ..Default::default()
    });
    set_tasks(&ex, json!([{"name": "loud", "process": {"command": ["sh", "-c", "i=0; while [ $i -lt 400 ]; do head -c 1000 /dev/zero; sleep 0.005; i=$((i+1)); done"]}}])).await;
    wait_for(&ex, "loud", terminated).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    let len = std::fs::metadata(ex.dir.path().join("tasks/loud/stdout.log"))
        .unwrap()
        .len();
    assert!(len <= 4096, "stdout.log is {len} bytes");
}

/// The bound holds on every write, not only after the executor's periodic pass: a task that
/// writes 50 MB at once never has more than the bound on disk, and still exits 0.
#[actix_rt::test]
async fn output_never_grows_past_the_bound_and_the_environment_is_the_tasks_own() {
    let ex = Executor::start_with(Opts {
        args: vec!["--task-log-max-bytes", "4096"],
        ..Default::default()
    });
    let script = "head -c 50000000 /dev/zero; echo \"d=$d c=$c\" >&2; sleep 1";
    set_tasks(
        &ex,
        json!([{"name": "flood", "process": {"command": ["sh", "-c", script],
                "env": [{"name": "d", "value": "mine"}, {"name": "c", "value": "too"}]}}]),
    )
    .await;
    let log = ex.dir.path().join("tasks/flood/stdout.log");
    let until = Instant::now() + Duration::from_secs(20);
    let mut max_seen = 0;
    loop {
        max_seen = max_seen.max(std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0));
        let done = get_tasks(&ex).await.iter().any(terminated);
        if done {
            break;
        }
        assert!(Instant::now() < until, "the task did not finish");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(max_seen <= 4096, "stdout.log reached {max_seen} bytes");
    let task = get_tasks(&ex)
        .await
        .into_iter()
        .find(|t| t["name"] == "flood")
        .unwrap();
    assert_eq!(task["processStatus"]["terminated"]["exitCode"], 0, "{task}");
    let err = std::fs::read_to_string(ex.dir.path().join("tasks/flood/stderr.log")).unwrap();
    assert_eq!(err, "d=mine c=too\n");
}

async fn ex_delete_all(ex: &Executor) {
    set_tasks(ex, json!([])).await;
    let until = Instant::now() + Duration::from_secs(10);
    while !get_tasks(ex).await.is_empty() {
        assert!(Instant::now() < until, "tasks not removed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What the shim cannot report well becomes a failed task with a clear reason (not a 500
/// the controller would retry forever), and survives a restart.
#[actix_rt::test]
async fn unstartable_tasks_fail_with_a_reason() {
    let data = tempfile::tempdir().unwrap();
    let ex = Executor::start_with(Opts {
        task_dir: Some(data.path().to_path_buf()),
        ..Default::default()
    });
    let plain = tempfile::tempdir().unwrap();
    let plain_file = plain.path().join("plain.txt");
    std::fs::write(&plain_file, "not a program").unwrap();
    let plain_file = plain_file.display().to_string();
    let cases = [
        (
            json!({"command": ["/no/such/tool"]}),
            127,
            "CommandNotFound",
            "/no/such/tool",
        ),
        (
            json!({"command": ["no-such-tool-xyz", "a"]}),
            127,
            "CommandNotFound",
            "command not found in PATH",
        ),
        (
            json!({"command": [plain_file]}),
            126,
            "CommandNotExecutable",
            "not an executable",
        ),
        (
            json!({"command": ["true"], "env": [{"name": "A=B", "value": "x"}]}),
            1,
            "InvalidEnv",
            "\"A=B\"",
        ),
        (
            json!({"command": ["true"], "env": [{"name": "", "value": "x"}]}),
            1,
            "InvalidEnv",
            "name \"\"",
        ),
        // The task's own PATH is where its command is looked up.
        (
            json!({"command": ["sh", "-c", "true"], "env": [{"name": "PATH", "value": "/nowhere"}]}),
            127,
            "CommandNotFound",
            "/nowhere",
        ),
    ];
    for (i, (process, code, reason, text)) in cases.iter().enumerate() {
        let name = format!("bad-{i}");
        let (status, _) = set_tasks(&ex, json!([{"name": name, "process": process}])).await;
        assert_eq!(status, 200, "{process}");
        let t = wait_for(&ex, &name, terminated).await;
        let term = &t["processStatus"]["terminated"];
        assert_eq!(term["exitCode"], *code, "{process}: {t}");
        assert_eq!(term["reason"], *reason, "{process}: {t}");
        assert!(
            term["message"].as_str().unwrap().contains(text),
            "{process}: {t}"
        );
    }
    // A failing process reports the tail of its stderr.
    set_tasks(&ex, json!([{"name": "loud", "process": {"command": ["sh", "-c", "echo first >&2; echo the reason >&2; exit 4"]}}])).await;
    let t = wait_for(&ex, "loud", terminated).await;
    assert_eq!(t["processStatus"]["terminated"]["exitCode"], 4);
    assert_eq!(
        t["processStatus"]["terminated"]["message"],
        "stderr: first\nthe reason"
    );
    set_tasks(
        &ex,
        json!([{"name": "gone", "process": {"command": ["/no/such/tool"]}}]),
    )
    .await;
    wait_for(&ex, "gone", terminated).await;
    drop(ex);
    // Restart: the failed start is still reported, not dropped and re-run.
    let ex = Executor::start_with(Opts {
        task_dir: Some(data.path().to_path_buf()),
        ..Default::default()
    });
    let t = wait_for(&ex, "gone", terminated).await;
    assert_eq!(
        t["processStatus"]["terminated"]["reason"],
        "CommandNotFound"
    );
}

#[actix_rt::test]
async fn task_api_errors() {
    let ex = Executor::start();
    let mut resp = client()
        .post(ex.task_url("/setTasks"))
        .insert_header(("content-type", "application/json"))
        .send_body("{")
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(json(&resp.body().await.unwrap())["code"], "Bad Request");
    let (status, body, _) = post_json(
        &ex.task_url("/tasks"),
        json!({"process": {"command": ["true"]}}),
    )
    .await;
    assert_eq!(
        (status, json(&body)["code"].as_str()),
        (400, Some("Bad Request"))
    );
    let (status, body, _) = get(&ex.task_url("/tasks/nope")).await;
    assert_eq!(status, 404);
    assert_eq!(json(&body)["message"], "task not found: nope");
    let (status, _) = delete(&ex.task_url("/tasks/nope")).await;
    assert_eq!(status, 204);
    let (status, _, _) = post_json(&ex.task_url("/getTasks"), json!([])).await;
    assert_eq!(status, 405);
    // Traversal in names is refused; entries without a name are ignored.
    let (status, _) = set_tasks(
        &ex,
        json!([{"name": "../evil", "process": {"command": ["true"]}}]),
    )
    .await;
    assert_eq!(status, 400);
    assert!(!ex.dir.path().join("evil").exists());
    let (status, list) =
        set_tasks(&ex, json!([{"name": "", "process": {"command": ["true"]}}])).await;
    assert_eq!((status, list), (200, json!([])));
    // No process ⇒ container mode, not implemented; a bad working dir fails the start.
    let (status, body, _) = post_json(
        &ex.task_url("/tasks"),
        json!({"name": "pod", "podTemplateSpec": {}}),
    )
    .await;
    assert_eq!(status, 500);
    assert!(
        json(&body)["message"]
            .as_str()
            .unwrap()
            .contains("container mode")
    );
    let (status, body, _) = post_json(
        &ex.task_url("/tasks"),
        json!({"name": "wd", "process": {"command": ["true"], "workingDir": "/no/such"}}),
    )
    .await;
    assert_eq!(status, 201);
    let term = &json(&body)["processStatus"]["terminated"];
    assert_eq!(term["reason"], "InvalidWorkingDir");
    // A failed start is not active: it does not block the next task.
    ex_delete_all(&ex).await;
    // Duplicate names.
    let (status, _, _) = post_json(
        &ex.task_url("/tasks"),
        json!({"name": "dup", "process": {"command": ["true"]}}),
    )
    .await;
    assert_eq!(status, 201);
    let (status, _, _) = post_json(
        &ex.task_url("/tasks"),
        json!({"name": "dup", "process": {"command": ["true"]}}),
    )
    .await;
    assert_eq!(status, 500);
}
