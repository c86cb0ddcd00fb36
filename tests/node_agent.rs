//! The local node agent against the embedded API server: real processes, namespaces,
//! loopback IPs and cgroups. Runs as root here and in CI; where the host lacks a feature the
//! tests assert the documented fallback instead.

mod common;

use std::collections::HashSet;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use opensandbox::standalone::apiserver::ApiServer;
use opensandbox::standalone::node_agent::{
    BackoffPolicy, Cgroups, NodeAgent, NodeAgentHandle, NodeAgentOptions,
};
use serde_json::json;

const STAND_IN: &str = r#"
import os, sys, signal, subprocess, threading, http.server
args = sys.argv[1:]
flags, cmd = (args[:args.index('--')], args[args.index('--') + 1:]) if '--' in args else (args, [])
port = int(flags[flags.index('--port') + 1]) if '--port' in flags else 44772
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == '/ping' else 404)
        self.send_header('Content-Length', '0')
        self.end_headers()
    def log_message(self, *a):
        pass
srv = http.server.ThreadingHTTPServer((os.environ['EXECD_BIND_HOST'], port), H)
threading.Thread(target=srv.serve_forever, daemon=True).start()
child = subprocess.Popen(cmd)
signal.signal(signal.SIGTERM, lambda *a: child.send_signal(signal.SIGTERM))
rc = child.wait()
sys.exit(rc if rc >= 0 else 128 - rc)
"#;

/// The executor: `OPENSANDBOX_EXECUTOR_BIN` when set (CI with the real one), else a python
/// stand-in that serves /ping on `EXECD_BIND_HOST:--port` and runs the entrypoint.
fn executor(dir: &Path) -> PathBuf {
    if let Some(p) = std::env::var_os("OPENSANDBOX_EXECUTOR_BIN") {
        return PathBuf::from(p);
    }
    let out = std::process::Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .unwrap();
    let python = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let path = dir.join("executor-stand-in");
    std::fs::write(&path, format!("#!{python}\n{STAND_IN}")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

struct Env {
    server: ApiServer,
    dir: tempfile::TempDir,
    opts: NodeAgentOptions,
    pods: Api<Pod>,
}

fn env(ns: &str, tweak: impl FnOnce(&mut NodeAgentOptions)) -> Env {
    let server = ApiServer::new();
    // Not under /tmp: the sandboxes get a private /tmp, so the executor must live elsewhere.
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let mut opts = NodeAgentOptions {
        state_dir: dir.path().join("state"),
        executor_bin: Some(executor(dir.path())),
        backoff: BackoffPolicy {
            initial: Duration::from_millis(100),
            max: Duration::from_millis(400),
            reset_after: Duration::from_secs(10),
        },
        ..NodeAgentOptions::default()
    };
    tweak(&mut opts);
    let pods = Api::namespaced(server.client(), ns);
    Env {
        server,
        dir,
        opts,
        pods,
    }
}

impl Env {
    fn start(&self) -> NodeAgentHandle {
        NodeAgent::start(self.server.client(), self.opts.clone())
    }

    fn pod_dir(&self, ns: &str, name: &str) -> PathBuf {
        self.opts.state_dir.join("pods").join(ns).join(name)
    }
}

async fn create(
    pods: &Api<Pod>,
    name: &str,
    script: &str,
    policy: &str,
    limits: serde_json::Value,
) {
    let ns: Namespace =
        serde_json::from_value(json!({"metadata": {"name": pods.namespace().unwrap()}})).unwrap();
    let _ = Api::<Namespace>::all(pods.clone().into_client())
        .create(&PostParams::default(), &ns)
        .await;
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"sandbox.opensandbox.io/managed": "true"}},
        "spec": {"restartPolicy": policy, "containers": [{
            "name": "main", "image": "busybox",
            "command": ["sh", "-c", script],
            "env": [{"name": "GREETING", "value": "hello"}],
            "resources": {"limits": limits},
        }]},
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
}

async fn wait_for(pods: &Api<Pod>, name: &str, what: &str, f: impl Fn(&Pod) -> bool) -> Pod {
    let deadline = Instant::now() + Duration::from_secs(8);
    loop {
        let p = pods.get(name).await.unwrap();
        if f(&p) {
            return p;
        }
        assert!(
            Instant::now() < deadline,
            "{name}: timed out waiting for {what}: {:?}",
            p.status
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn ready(p: &Pod) -> bool {
    let s = p.status.as_ref();
    s.and_then(|s| s.phase.as_deref()) == Some("Running")
        && s.and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn pid_of(p: &Pod) -> i32 {
    let cs = &p
        .status
        .as_ref()
        .unwrap()
        .container_statuses
        .as_ref()
        .unwrap()[0];
    cs.container_id
        .as_ref()
        .unwrap()
        .strip_prefix("process://")
        .unwrap()
        .parse()
        .unwrap()
}

fn restarts(p: &Pod) -> i32 {
    p.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .map_or(0, |c| c[0].restart_count)
}

fn message(p: &Pod) -> String {
    p.status
        .as_ref()
        .and_then(|s| s.message.clone())
        .unwrap_or_default()
}

/// Whether this host lets us create the namespaces (checked independently of the agent).
fn host_allows_namespaces() -> bool {
    std::process::Command::new("unshare")
        .args(["--mount", "--pid", "--uts", "--ipc", "--fork", "true"])
        .status()
        .is_ok_and(|s| s.success())
}

fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !s
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z'),
        Err(_) => false,
    }
}

/// `pid` and all its descendants, from /proc.
fn tree(pid: i32) -> HashSet<i32> {
    let mut parents: Vec<(i32, i32)> = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(p) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if let Ok(s) = std::fs::read_to_string(format!("/proc/{p}/stat")) {
            let rest: Vec<&str> = s
                .rsplit(')')
                .next()
                .unwrap_or("")
                .split_whitespace()
                .collect();
            if let Some(pp) = rest.get(1).and_then(|x| x.parse().ok()) {
                parents.push((p, pp));
            }
        }
    }
    let mut set = HashSet::from([pid]);
    loop {
        let before = set.len();
        for (p, pp) in &parents {
            if set.contains(pp) {
                set.insert(*p);
            }
        }
        if set.len() == before {
            return set;
        }
    }
}

fn ping(ip: &str) -> String {
    let mut s = std::net::TcpStream::connect((ip, 44772)).unwrap();
    s.write_all(b"GET /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

async fn wait_file(path: &Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Ok(s) = std::fs::read_to_string(path)
            && s.ends_with('\n')
        {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "{} never written",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_runs_ready_with_loopback_ip_and_command_output() {
    let e = env("default", |_| {});
    let agent = e.start();
    create(
        &e.pods,
        "web",
        "echo $GREETING $POD_NAME $POD_NAMESPACE $POD_IP > out.txt; exec sleep 60",
        "Always",
        json!({}),
    )
    .await;
    let p = wait_for(&e.pods, "web", "Ready", ready).await;
    let st = p.status.as_ref().unwrap();
    let ip = st.pod_ip.clone().unwrap();
    assert!(ip.starts_with("127.0.0.") && ip != "127.0.0.1", "{ip}");
    assert_eq!(st.host_ip.as_deref(), Some("127.0.0.1"));
    assert!(st.start_time.is_some());
    let cs = &st.container_statuses.as_ref().unwrap()[0];
    assert!(cs.ready && cs.state.as_ref().unwrap().running.is_some());
    assert_eq!(cs.restart_count, 0);
    assert!(alive(pid_of(&p)));
    assert!(ping(&ip).starts_with("HTTP/1.0 200") || ping(&ip).starts_with("HTTP/1.1 200"));
    let out = wait_file(&e.pod_dir("default", "web").join("workspace/out.txt")).await;
    assert_eq!(out, format!("hello web default {ip}\n"));
    assert!(e.pod_dir("default", "web").join("tmp").is_dir());
    assert!(message(&p).contains("isolation:"), "{}", message(&p));
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sandboxes_get_distinct_ips_and_cannot_see_each_other() {
    let e = env("default", |_| {});
    let agent = e.start();
    let script = "echo secret > /tmp/secret-$POD_NAME; sleep 0.2; ls /tmp > tmp.txt; \
                  ls /proc | grep -E '^[0-9]+$' | tr '\\n' ' ' > procs.txt; echo >> procs.txt; \
                  hostname > host.txt; exec sleep 60";
    create(&e.pods, "a", script, "Always", json!({})).await;
    create(&e.pods, "b", script, "Always", json!({})).await;
    let a = wait_for(&e.pods, "a", "Ready", ready).await;
    let b = wait_for(&e.pods, "b", "Ready", ready).await;
    let (ia, ib) = (
        a.status.clone().unwrap().pod_ip.unwrap(),
        b.status.clone().unwrap().pod_ip.unwrap(),
    );
    assert_ne!(ia, ib);
    assert!(ping(&ia).contains(" 200 ") && ping(&ib).contains(" 200 "));
    let ws = |n: &str| e.pod_dir("default", n).join("workspace");
    let procs_a = wait_file(&ws("a").join("procs.txt")).await;
    let tmp_a = wait_file(&ws("a").join("tmp.txt")).await;
    let host_a = wait_file(&ws("a").join("host.txt")).await;
    if host_allows_namespaces() {
        assert!(
            message(&a).contains("namespaces mount,pid,uts,ipc"),
            "{}",
            message(&a)
        );
        // Own pid namespace: the executor is PID 1 and only the pod's few processes exist.
        let pids: Vec<i32> = procs_a
            .split_whitespace()
            .map(|p| p.parse().unwrap())
            .collect();
        assert!(pids.contains(&1), "{pids:?}");
        assert!(pids.len() < 10, "sees foreign processes: {pids:?}");
        assert!(!pids.contains(&pid_of(&b)) || pid_of(&b) < 10);
        assert_eq!(host_a.trim(), "a");
        // Private /tmp: only its own secret, which lives in the pod's tmp dir on the host.
        assert!(
            tmp_a.contains("secret-a") && !tmp_a.contains("secret-b"),
            "{tmp_a}"
        );
        assert!(e.pod_dir("default", "a").join("tmp/secret-a").exists());
        assert!(!e.pod_dir("default", "a").join("tmp/secret-b").exists());
    } else {
        assert!(message(&a).contains("process group"), "{}", message(&a));
    }
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_pod_kills_its_tree_and_removes_its_dirs() {
    let e = env("del", |_| {});
    let agent = e.start();
    create(
        &e.pods,
        "victim",
        "sleep 60 & sleep 61 & trap '' TERM; wait",
        "Always",
        json!({}),
    )
    .await;
    let p = wait_for(&e.pods, "victim", "Ready", ready).await;
    let pid = pid_of(&p);
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut procs = tree(pid);
    while procs.len() < 4 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        procs = tree(pid);
    }
    assert!(procs.len() >= 4, "executor, sh and two sleeps: {procs:?}");
    let dir = e.pod_dir("del", "victim");
    assert!(dir.is_dir());
    e.pods
        .delete("victim", &DeleteParams::default())
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while (procs.iter().any(|p| alive(*p)) || dir.exists()) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let left: Vec<_> = procs.iter().filter(|p| alive(**p)).collect();
    assert!(left.is_empty(), "survivors: {left:?}");
    assert!(!dir.exists());
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashing_command_restarts_with_backoff_and_terminal_policies() {
    let e = env("crash", |_| {});
    let agent = e.start();
    create(&e.pods, "loop", "exit 3", "Always", json!({})).await;
    create(&e.pods, "never", "exit 3", "Never", json!({})).await;
    create(&e.pods, "done", "exit 0", "OnFailure", json!({})).await;
    let p = wait_for(&e.pods, "loop", "3 restarts", |p| restarts(p) >= 3).await;
    let st = p.status.as_ref().unwrap();
    assert_eq!(st.phase.as_deref(), Some("Running"));
    let cs = &st.container_statuses.as_ref().unwrap()[0];
    assert!(!cs.ready);
    let last = cs.last_state.as_ref().unwrap().terminated.as_ref().unwrap();
    assert_eq!(last.exit_code, 3);
    wait_for(&e.pods, "loop", "CrashLoopBackOff", |p| {
        p.status
            .as_ref()
            .unwrap()
            .container_statuses
            .as_ref()
            .unwrap()[0]
            .state
            .as_ref()
            .and_then(|s| s.waiting.as_ref())
            .is_some_and(|w| w.reason.as_deref() == Some("CrashLoopBackOff"))
    })
    .await;
    let never = wait_for(&e.pods, "never", "Failed", |p| {
        p.status.as_ref().unwrap().phase.as_deref() == Some("Failed")
    })
    .await;
    let cs = &never.status.unwrap().container_statuses.unwrap()[0];
    assert_eq!(
        cs.state
            .as_ref()
            .unwrap()
            .terminated
            .as_ref()
            .unwrap()
            .exit_code,
        3
    );
    assert_eq!(cs.restart_count, 0);
    wait_for(&e.pods, "done", "Succeeded", |p| {
        p.status.as_ref().unwrap().phase.as_deref() == Some("Succeeded")
    })
    .await;
    agent.shutdown().await;
}

fn read(p: PathBuf) -> String {
    std::fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .trim()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cgroup_limits_contain_fork_bomb_and_memory_hog() {
    let e = env("cg", |o| o.pids_max = 40);
    let agent = e.start();
    let cgroups = agent.cgroups().clone();
    let bomb =
        "i=0; while [ $i -lt 200 ]; do sleep 30 & i=$((i+1)); done 2>/dev/null; exec sleep 60";
    create(
        &e.pods,
        "bomb",
        bomb,
        "Always",
        json!({"cpu": "500m", "memory": "64Mi"}),
    )
    .await;
    create(
        &e.pods,
        "hog",
        "exec python3 -c \"b = b'x' * (512 << 20)\"",
        "Never",
        json!({"memory": "64Mi"}),
    )
    .await;
    let p = wait_for(&e.pods, "bomb", "Ready", ready).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let count = tree(pid_of(&p)).len();
    match &cgroups {
        Cgroups::V2 { parent } => {
            let d = parent.join("cg_bomb");
            assert_eq!(read(d.join("pids.max")), "40");
            assert_eq!(read(d.join("memory.max")), (64u64 << 20).to_string());
            assert_eq!(read(d.join("cpu.max")), "50000 100000");
            assert!(read(d.join("pids.current")).parse::<u32>().unwrap() <= 40);
            assert!(count <= 40, "{count} processes");
        }
        Cgroups::V1 { parents } => {
            for (ctrl, parent) in parents {
                let d = parent.join("cg_bomb");
                match *ctrl {
                    "pids" => {
                        assert_eq!(read(d.join("pids.max")), "40");
                        assert!(read(d.join("pids.current")).parse::<u32>().unwrap() <= 40);
                        assert!(count <= 40, "{count} processes");
                    }
                    "memory" => assert_eq!(
                        read(d.join("memory.limit_in_bytes")),
                        (64u64 << 20).to_string()
                    ),
                    "cpu" => assert_eq!(read(d.join("cpu.cfs_quota_us")), "50000"),
                    _ => {}
                }
            }
        }
        Cgroups::Unavailable { .. } => {
            assert!(message(&p).contains("no cgroup limits"), "{}", message(&p));
        }
    }
    assert!(message(&p).contains(&cgroups.describe()), "{}", message(&p));
    let memory_limited = match &cgroups {
        Cgroups::V2 { .. } => true,
        Cgroups::V1 { parents } => parents.iter().any(|(c, _)| *c == "memory"),
        Cgroups::Unavailable { .. } => false,
    };
    let hog = wait_for(&e.pods, "hog", "terminal", |p| {
        matches!(
            p.status.as_ref().unwrap().phase.as_deref(),
            Some("Failed" | "Succeeded")
        )
    })
    .await;
    let phase = hog.status.unwrap().phase.unwrap();
    assert_eq!(
        phase,
        if memory_limited {
            "Failed"
        } else {
            "Succeeded"
        }
    );
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_agent_kills_everything_and_a_new_agent_restarts_pods() {
    let e = env("drop", |_| {});
    let agent = e.start();
    create(
        &e.pods,
        "p",
        "sleep 60 & exec sleep 61",
        "Always",
        json!({}),
    )
    .await;
    let p = wait_for(&e.pods, "p", "Ready", ready).await;
    let pid = pid_of(&p);
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut procs = tree(pid);
    while procs.len() < 3 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        procs = tree(pid);
    }
    assert!(procs.len() >= 3, "{procs:?}");
    drop(agent);
    let deadline = Instant::now() + Duration::from_secs(3);
    while procs.iter().any(|p| alive(*p)) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let left: Vec<_> = procs.iter().filter(|p| alive(**p)).collect();
    assert!(left.is_empty(), "survivors: {left:?}");
    // The pod still says Running; a new agent must not believe it.
    assert!(ready(&e.pods.get("p").await.unwrap()));
    let agent = e.start();
    let p = wait_for(&e.pods, "p", "restarted and Ready", |p| {
        ready(p) && pid_of(p) != pid
    })
    .await;
    assert_eq!(restarts(&p), 1);
    assert!(alive(pid_of(&p)));
    agent.shutdown().await;
    let _ = &e.dir;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_group_fallback_runs_and_cleans_up() {
    let e = env("plain", |o| o.namespaces = false);
    let agent = e.start();
    create(
        &e.pods,
        "pg",
        "echo $POD_IP > ip.txt; sleep 60 & exec sleep 61",
        "Always",
        json!({}),
    )
    .await;
    let p = wait_for(&e.pods, "pg", "Ready", ready).await;
    assert!(
        message(&p).contains("process group (namespaces disabled)"),
        "{}",
        message(&p)
    );
    let ip = p.status.clone().unwrap().pod_ip.unwrap();
    assert!(ping(&ip).contains(" 200 "));
    assert_eq!(
        wait_file(&e.pod_dir("plain", "pg").join("workspace/ip.txt"))
            .await
            .trim(),
        ip
    );
    let pid = pid_of(&p);
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut procs = tree(pid);
    while procs.len() < 3 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        procs = tree(pid);
    }
    assert!(procs.len() >= 3, "{procs:?}");
    e.pods.delete("pg", &DeleteParams::default()).await.unwrap();
    let dir = e.pod_dir("plain", "pg");
    let deadline = Instant::now() + Duration::from_secs(5);
    while (procs.iter().any(|p| alive(*p)) || dir.exists()) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let left: Vec<_> = procs.iter().filter(|p| alive(**p)).collect();
    assert!(left.is_empty(), "survivors: {left:?}");
    assert!(!dir.exists());
    agent.shutdown().await;
}

async fn exec_in(
    pods: &Api<Pod>,
    name: &str,
    container: &str,
    command: &[&str],
) -> Result<(String, Option<String>), kube::Error> {
    use tokio::io::AsyncReadExt;
    let ap = kube::api::AttachParams::default()
        .container(container)
        .stdout(true)
        .stderr(true);
    let mut proc = pods.exec(name, command.to_vec(), &ap).await?;
    let mut out = String::new();
    let mut so = proc.stdout().unwrap();
    let status = proc.take_status().unwrap();
    let (_, status) = tokio::join!(so.read_to_string(&mut out), status);
    let _ = proc.join().await;
    Ok((out, status.and_then(|s| s.status)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_runs_inside_the_pod_and_kill_1_restarts_its_container() {
    let e = env("default", |_| {});
    let agent = e.start();
    e.server.set_pod_executor(Some(agent.executor()));
    create(&e.pods, "ex", "exec sleep 60", "Always", json!({})).await;
    let p = wait_for(&e.pods, "ex", "Ready", ready).await;
    let first_pid = pid_of(&p);
    if !host_allows_namespaces() {
        let err = exec_in(&e.pods, "ex", "main", &["true"]).await.unwrap_err();
        assert!(err.to_string().contains("pid namespace"), "{err}");
        agent.shutdown().await;
        return;
    }
    // The command sees the pod's hostname, its pid namespace and its private /tmp.
    let (out, status) = exec_in(
        &e.pods,
        "ex",
        "main",
        &[
            "sh",
            "-c",
            "hostname; cat /proc/1/cmdline | tr '\\0' ' '; echo; ls /tmp",
        ],
    )
    .await
    .unwrap();
    assert_eq!(status.as_deref(), Some("Success"));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "ex", "{out}");
    assert!(
        lines[1].contains("--port") && lines[1].contains("exec sleep 60"),
        "PID 1 is the pod's init: {out}"
    );
    std::fs::write(e.pod_dir("default", "ex").join("tmp/marker"), "x").unwrap();
    let (out, _) = exec_in(&e.pods, "ex", "main", &["ls", "/tmp"])
        .await
        .unwrap();
    assert!(out.contains("marker"), "{out}");
    let (_, status) = exec_in(&e.pods, "ex", "main", &["sh", "-c", "exit 3"])
        .await
        .unwrap();
    assert_eq!(status.as_deref(), Some("Failure"));
    let err = exec_in(&e.pods, "ex", "nope", &["true"]).await.unwrap_err();
    assert!(err.to_string().contains("not valid"), "{err}");

    // A client that goes away takes its command with it.
    let ap = kube::api::AttachParams::default()
        .container("main")
        .stdout(true)
        .stderr(true);
    let proc = e.pods.exec("ex", ["sleep", "31.5"], &ap).await.unwrap();
    let sleeping = || {
        std::fs::read_dir("/proc").unwrap().flatten().any(|d| {
            std::fs::read(d.path().join("cmdline")).is_ok_and(|c| c == b"sleep\x0031.5\x00")
        })
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while !sleeping() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(sleeping(), "the exec'd command runs");
    proc.abort();
    drop(proc);
    let deadline = Instant::now() + Duration::from_secs(5);
    while sleeping() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!sleeping(), "the command ends with its client");

    // `kill 1` (the Restart recycle's default command) ends the init; restartPolicy Always
    // brings the container back with a new containerID.
    exec_in(&e.pods, "ex", "main", &["kill", "1"])
        .await
        .unwrap();
    let p = wait_for(&e.pods, "ex", "restarted and Ready", |p| {
        ready(p) && restarts(p) == 1 && pid_of(p) != first_pid
    })
    .await;
    assert!(!alive(first_pid));
    assert!(alive(pid_of(&p)));
    agent.shutdown().await;
}

/// Restart recycling end to end on real processes: the pool controller execs `kill 1` into a
/// released pod through the embedded API server, the agent restarts the container, and the
/// same pod returns to the pool.
#[actix_rt::test]
async fn restart_recycling_restarts_a_released_pod_on_the_node_agent() {
    if !host_allows_namespaces() {
        return;
    }
    let e = env("default", |_| {});
    let crds: Vec<serde_json::Value> = opensandbox::crd::all_crds()
        .into_iter()
        .map(|c| serde_json::to_value(c).unwrap())
        .collect();
    e.server.install_crds(&crds).await.unwrap();
    let agent = e.start();
    e.server.set_pod_executor(Some(agent.executor()));
    let _m = common::Manager::start(&e.server, "m1", None).await;
    let mut pool = common::pool_json("real", 0, 0, 1, 1);
    pool["spec"]["template"]["spec"]["containers"][0]["command"] =
        json!(["sh", "-c", "exec sleep 60"]);
    pool["spec"]["recycleStrategy"] = json!({"type": "Restart"});
    let pools: Api<opensandbox::crd::Pool> = Api::namespaced(e.server.client(), "default");
    pools
        .create(
            &PostParams::default(),
            &serde_json::from_value(pool).unwrap(),
        )
        .await
        .unwrap();
    let available = || async {
        pools
            .get("real")
            .await
            .unwrap()
            .status
            .map_or(0, |s| s.available)
    };
    common::eventually("pool pod running", Duration::from_secs(20), || async {
        available().await == 1
    })
    .await;
    let bs: Api<opensandbox::crd::BatchSandbox> = Api::namespaced(e.server.client(), "default");
    let body = json!({"apiVersion": "sandbox.opensandbox.io/v1alpha1", "kind": "BatchSandbox",
        "metadata": {"name": "user"}, "spec": {"replicas": 1, "poolRef": "real"}});
    bs.create(
        &PostParams::default(),
        &serde_json::from_value(body).unwrap(),
    )
    .await
    .unwrap();
    common::eventually("allocated", Duration::from_secs(20), || async {
        pools
            .get("real")
            .await
            .unwrap()
            .status
            .is_some_and(|s| s.allocated == 1)
    })
    .await;
    let list = e.pods.list(&Default::default()).await.unwrap().items;
    assert_eq!(list.len(), 1);
    let name = list[0].metadata.name.clone().unwrap();
    let first_pid = pid_of(&list[0]);
    bs.delete("user", &DeleteParams::default()).await.unwrap();
    common::eventually(
        "restarted in place and idle",
        Duration::from_secs(20),
        || async {
            let p = e.pods.get(&name).await.unwrap();
            ready(&p) && restarts(&p) == 1 && pid_of(&p) != first_pid && available().await == 1
        },
    )
    .await;
    assert!(!alive(first_pid));
    assert_eq!(
        e.pods.list(&Default::default()).await.unwrap().items.len(),
        1,
        "no pod replaced"
    );
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn freeze_request_stops_the_tree_and_thaw_resumes_it() {
    let e = env("frz", |_| {});
    let agent = e.start();
    create(
        &e.pods,
        "ice",
        "i=0; while true; do i=$((i+1)); echo $i > n.tmp; mv n.tmp n.txt; sleep 0.02; done",
        "Always",
        json!({}),
    )
    .await;
    let p = wait_for(&e.pods, "ice", "Ready", ready).await;
    let ip = p.status.as_ref().unwrap().pod_ip.clone().unwrap();
    let counter = e.pod_dir("frz", "ice").join("workspace/n.txt");
    let read = || {
        std::fs::read_to_string(&counter)
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
    };
    wait_file(&counter).await;
    let annotate = |v: serde_json::Value| json!({"metadata": {"annotations": {"sandbox.opensandbox.io/freeze": v}}});
    e.pods
        .patch(
            "ice",
            &PatchParams::default(),
            &Patch::Merge(annotate(json!("true"))),
        )
        .await
        .unwrap();
    let frozen = |p: &Pod| {
        p.metadata.annotations.as_ref().is_some_and(|a| {
            a.get("sandbox.opensandbox.io/frozen")
                .is_some_and(|v| v == "true")
        })
    };
    wait_for(&e.pods, "ice", "frozen reported", frozen).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let at = read();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(read(), at, "the counter advanced while frozen");
    // The executor is frozen too: a connection is accepted but never answered.
    let mut s = std::net::TcpStream::connect((ip.as_str(), 44772)).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    s.write_all(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut buf = [0u8; 16];
    assert!(s.read(&mut buf).is_err(), "a frozen executor answered");
    e.pods
        .patch(
            "ice",
            &PatchParams::default(),
            &Patch::Merge(annotate(serde_json::Value::Null)),
        )
        .await
        .unwrap();
    wait_for(&e.pods, "ice", "thaw reported", |p| !frozen(p)).await;
    let deadline = Instant::now() + Duration::from_secs(3);
    while read() <= at {
        assert!(
            Instant::now() < deadline,
            "the counter did not continue after thaw"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(ping(&ip).contains(" 200"));
    // Deleting a frozen pod still stops it and cleans up.
    e.pods
        .patch(
            "ice",
            &PatchParams::default(),
            &Patch::Merge(annotate(json!("true"))),
        )
        .await
        .unwrap();
    let p = wait_for(&e.pods, "ice", "frozen again", frozen).await;
    let procs = tree(pid_of(&p));
    e.pods
        .delete("ice", &DeleteParams::default())
        .await
        .unwrap();
    let dir = e.pod_dir("frz", "ice");
    let deadline = Instant::now() + Duration::from_secs(8);
    while (procs.iter().any(|p| alive(*p)) || dir.exists()) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        !procs.iter().any(|p| alive(*p)),
        "a frozen process survived deletion"
    );
    assert!(!dir.exists());
    agent.shutdown().await;
}
