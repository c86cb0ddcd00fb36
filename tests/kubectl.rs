//! The real kubectl v1.35 against the embedded API server over loopback HTTP.
//! Needs `hack/install-tools.sh` (run by `hack/test.sh`).

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use kube::api::{Api, Patch, PatchParams};
use opensandbox::crd::Pool;
use opensandbox::standalone::apiserver::ApiServer;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

fn kubectl_path() -> PathBuf {
    let local = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".cache/tools/bin/kubectl");
    if local.exists() {
        return local;
    }
    std::env::var_os("PATH")
        .and_then(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("kubectl"))
                .find(|p| p.exists())
        })
        .expect("kubectl not found: run hack/install-tools.sh (hack/test.sh does)")
}

struct Kubectl {
    bin: PathBuf,
    dir: tempfile::TempDir,
}

impl Kubectl {
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.bin);
        c.arg("--kubeconfig")
            .arg(self.dir.path().join("kubeconfig"))
            .arg("--cache-dir")
            .arg(self.dir.path().join("cache"))
            .args(args)
            .env("HOME", self.dir.path())
            .kill_on_drop(true);
        c
    }

    async fn run(&self, args: &[&str]) -> (bool, String, String) {
        let out = tokio::time::timeout(Duration::from_secs(60), self.cmd(args).output())
            .await
            .expect("kubectl timed out")
            .expect("kubectl runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    async fn ok(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.run(args).await;
        assert!(ok, "kubectl {args:?} failed:\n{out}\n{err}");
        out
    }

    fn write(&self, name: &str, content: &str) -> String {
        let p = self.dir.path().join(name);
        std::fs::write(&p, content).expect("write manifest");
        p.to_string_lossy().into_owned()
    }
}

async fn setup() -> (ApiServer, Kubectl) {
    let s = ApiServer::new();
    let crds: Vec<Value> = opensandbox::crd::all_crds()
        .into_iter()
        .map(|c| serde_json::to_value(c).expect("crd json"))
        .collect();
    s.install_crds(&crds).await.expect("crds");
    let ep = s
        .serve("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("serve");
    let dir = tempfile::tempdir().expect("tempdir");
    ApiServer::write_kubeconfig(&dir.path().join("kubeconfig"), ep.addr).expect("kubeconfig");
    (
        s,
        Kubectl {
            bin: kubectl_path(),
            dir,
        },
    )
}

const POOL: &str = r#"apiVersion: sandbox.opensandbox.io/v1alpha1
kind: Pool
metadata:
  name: demo
spec:
  template:
    spec:
      containers:
      - name: main
        image: busybox:1.36
  capacitySpec:
    bufferMin: 1
    bufferMax: 3
    poolMin: 0
    poolMax: 10
"#;

const BATCH: &str = r#"apiVersion: sandbox.opensandbox.io/v1alpha1
kind: BatchSandbox
metadata:
  name: batch
spec:
  replicas: 2
  poolRef: demo
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_apply_get_watch_patch_delete() {
    let (s, k) = setup().await;
    let pool = k.write("pool.yaml", POOL);
    let out = k.ok(&["apply", "-f", &pool]).await;
    assert!(
        out.contains("pool.sandbox.opensandbox.io/demo created"),
        "{out}"
    );
    let batch = k.write("batch.yaml", BATCH);
    let out = k.ok(&["apply", "-f", &batch]).await;
    assert!(
        out.contains("batchsandbox.sandbox.opensandbox.io/batch created"),
        "{out}"
    );

    // Printer columns, computed by the server.
    let pools: Api<Pool> = Api::namespaced(s.client(), "default");
    let status = json!({"status": {"total": 3, "allocated": 1, "available": 2, "updated": 3, "revision": "r1"}});
    pools
        .patch_status("demo", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .expect("status");
    let out = k.ok(&["get", "pools"]).await;
    let header: Vec<&str> = out
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        ["NAME", "TOTAL", "ALLOCATED", "AVAILABLE", "UPDATED", "AGE"],
        "{out}"
    );
    let row: Vec<&str> = out
        .lines()
        .nth(1)
        .unwrap_or("")
        .split_whitespace()
        .collect();
    assert_eq!(&row[..5], ["demo", "3", "1", "2", "3"], "{out}");
    let out = k.ok(&["get", "bsbx"]).await;
    assert!(
        out.starts_with("NAME") && out.contains("DESIRED") && out.contains("batch"),
        "{out}"
    );
    assert!(
        !out.contains("TASK_RUNNING"),
        "priority-1 columns only with -o wide: {out}"
    );
    let out = k.ok(&["get", "bsbx", "-o", "wide"]).await;
    assert!(out.contains("TASK_RUNNING"), "{out}");
    let out = k.ok(&["describe", "pool", "demo"]).await;
    assert!(
        out.contains("Capacity Spec") || out.contains("capacitySpec"),
        "{out}"
    );

    // get -w sees an update.
    let mut watch = k
        .cmd(&["get", "pools", "-w", "--no-headers"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("kubectl get -w");
    let mut lines = BufReader::new(watch.stdout.take().expect("stdout")).lines();
    let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("first row")
        .expect("read")
        .expect("line");
    assert!(first.starts_with("demo"), "{first}");
    let status = json!({"status": {"total": 4, "allocated": 1, "available": 3, "updated": 4, "revision": "r1"}});
    pools
        .patch_status("demo", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .expect("status");
    let update = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("watch saw no update")
        .expect("read")
        .expect("line");
    let cells: Vec<&str> = update.split_whitespace().collect();
    assert_eq!(&cells[..2], ["demo", "4"], "{update}");
    let _ = watch.kill().await;

    // patch --type=merge.
    let out = k
        .ok(&[
            "patch",
            "pool",
            "demo",
            "--type=merge",
            "-p",
            r#"{"spec":{"capacitySpec":{"bufferMax":5}}}"#,
        ])
        .await;
    assert!(out.contains("patched"), "{out}");
    assert_eq!(
        pools
            .get("demo")
            .await
            .expect("pool")
            .spec
            .capacity_spec
            .buffer_max,
        5
    );
    // A strategic merge patch on a custom resource is refused, as by the real server.
    let (ok, _, err) = k
        .run(&["patch", "pool", "demo", "-p", r#"{"spec":{}}"#])
        .await;
    assert!(!ok && err.contains("strategic-merge-patch"), "{err}");

    // apply --server-side of a changed manifest.
    let changed = POOL.replace("bufferMax: 3", "bufferMax: 4");
    let ssa = k.write("pool-ssa.yaml", &changed);
    let out = k
        .ok(&["apply", "--server-side", "--force-conflicts", "-f", &ssa])
        .await;
    assert!(out.contains("serverside-applied"), "{out}");
    assert_eq!(
        pools
            .get("demo")
            .await
            .expect("pool")
            .spec
            .capacity_spec
            .buffer_max,
        4
    );

    // An invalid Pool is rejected with a readable message and nothing is stored.
    let invalid = POOL
        .replace("name: demo", "name: broken")
        .replace("bufferMin: 1", "bufferMin: 7")
        .replace("bufferMax: 3", "bufferMax: 2");
    let bad = k.write("bad.yaml", &invalid);
    let (ok, _, err) = k.run(&["apply", "-f", &bad]).await;
    assert!(!ok, "invalid pool accepted");
    assert!(
        err.contains("bufferMin must be less than or equal to bufferMax"),
        "{err}"
    );
    assert!(err.contains("spec.capacitySpec.bufferMin"), "{err}");
    assert!(pools.get_opt("broken").await.expect("get").is_none());
    let unknown = POOL
        .replace("name: demo", "name: typo")
        .replace("poolMax: 10", "poolMax: 10\n    poolMaxx: 3");
    let typo = k.write("typo.yaml", &unknown);
    let (ok, _, err) = k.run(&["apply", "-f", &typo]).await;
    assert!(!ok && err.contains("unknown field"), "{err}");

    // delete waits for the object to be gone.
    let out = k.ok(&["delete", "-f", &batch]).await;
    assert!(out.contains("deleted"), "{out}");
    let out = k.ok(&["delete", "pool", "demo"]).await;
    assert!(out.contains("deleted"), "{out}");
    let (ok, _, err) = k.run(&["get", "pool", "demo"]).await;
    assert!(!ok && err.contains("NotFound"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_builtin_kinds_and_generators() {
    let (_s, k) = setup().await;
    k.ok(&["create", "namespace", "team-a"]).await;
    k.ok(&[
        "-n",
        "team-a",
        "create",
        "configmap",
        "cfg",
        "--from-literal=a=1",
    ])
    .await;
    let out = k
        .ok(&[
            "-n",
            "team-a",
            "get",
            "configmap",
            "cfg",
            "-o",
            "jsonpath={.data.a}",
        ])
        .await;
    assert_eq!(out, "1");
    let out = k.ok(&["get", "namespaces"]).await;
    assert!(out.contains("team-a") && out.contains("Active"), "{out}");
    let out = k.ok(&["get", "crds"]).await;
    assert!(out.contains("pools.sandbox.opensandbox.io"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_exec_streams_output_and_exit_codes() {
    use opensandbox::standalone::kubelet_sim::{KubeletOptions, SimKubelet};
    let (s, k) = setup().await;
    let kubelet = SimKubelet::start(s.client(), KubeletOptions::default());
    s.set_pod_executor(Some(kubelet.executor()));
    let pod = k.write(
        "pod.yaml",
        r#"apiVersion: v1
kind: Pod
metadata:
  name: shell
  labels:
    sandbox.opensandbox.io/managed: "true"
spec:
  containers:
  - name: main
    image: busybox
"#,
    );
    k.ok(&["apply", "-f", &pod]).await;
    k.ok(&[
        "wait",
        "--for=condition=Ready",
        "pod/shell",
        "--timeout=20s",
    ])
    .await;
    let out = k
        .ok(&["exec", "shell", "-c", "main", "--", "echo", "hello", "exec"])
        .await;
    assert_eq!(out, "hello exec\n");
    kubelet.fail_exec("default", "shell", true);
    let (ok, _, err) = k.run(&["exec", "shell", "--", "kill", "1"]).await;
    assert!(!ok);
    assert!(err.contains("command terminated with exit code 1"), "{err}");
    assert!(err.contains("simulated exec failure"), "{err}");
    let (ok, _, err) = k.run(&["exec", "shell", "-c", "nope", "--", "true"]).await;
    assert!(!ok);
    assert!(
        err.contains("container nope is not valid for pod shell"),
        "{err}"
    );
}

/// The controller's Events (aggregated: repeats raise the count of one Event) are what
/// `kubectl describe` lists for the object.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_describe_lists_the_controllers_events() {
    use opensandbox::actors::events::{EventPolicy, EventSink, Occurrence};
    let (s, k) = setup().await;
    k.ok(&["apply", "-f", &k.write("pool.yaml", POOL)]).await;
    let pool = Api::<Pool>::namespaced(s.client(), "default")
        .get("demo")
        .await
        .expect("pool");
    let policy = EventPolicy {
        patch_interval: Duration::from_millis(100),
        ..EventPolicy::default()
    };
    let sink = EventSink::with_policy(
        s.client(),
        "opensandbox-controller".into(),
        "test".into(),
        policy,
    );
    for n in 1..=3 {
        sink.publish(Occurrence {
            regarding: kube::Resource::object_ref(&pool, &()),
            warning: false,
            reason: "ScaledUp".into(),
            action: "Scale".into(),
            note: format!("Created {n} pool pods"),
        });
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let out = k.ok(&["describe", "pool", "demo"]).await;
        let events = out.split("Events:").nth(1).unwrap_or_default().to_string();
        if events.contains("ScaledUp") && events.contains("(x3 over") {
            assert!(events.contains("opensandbox-controller"), "{events}");
            assert!(events.contains("Created 1 pool pods"), "{events}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "kubectl describe shows no aggregated ScaledUp event:\n{out}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
