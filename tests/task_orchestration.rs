//! Task orchestration: the BatchSandboxActor pushes each replica's task to the executor of
//! its pod (`POST /setTasks`), follows it (`GET /getTasks`) and reports the task counters,
//! phase and conditions; deletion stops the tasks first. Real executors: the standalone node
//! agent runs every pod (the `opensandbox-executor` binary as its init, on its own loopback
//! IP), against the in-process embedded API server.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use opensandbox::crd::conditions::find;
use opensandbox::crd::ledger::Ledger;
use opensandbox::crd::{BatchSandbox, BatchSandboxStatus, SandboxPhase};
use opensandbox::standalone::apiserver::ApiServer;
use opensandbox::standalone::node_agent::{NodeAgent, NodeAgentHandle, NodeAgentOptions};
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(45);

/// The executor built by the workspace (`cargo build -p opensandbox-executor`).
fn executor_bin() -> PathBuf {
    let path = std::env::var_os("OPENSANDBOX_EXECUTOR_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("target/debug/opensandbox-executor")
        });
    assert!(
        path.is_file(),
        "{} is missing: run `cargo build -p opensandbox-executor` first",
        path.display()
    );
    path
}

/// A node: the standalone node agent on a runtime of its own, so pod supervision does not
/// compete with the controller's single-threaded test runtime.
struct Node {
    agent: Option<NodeAgentHandle>,
    rt: Option<tokio::runtime::Runtime>,
    dir: tempfile::TempDir,
}

impl Node {
    fn start(s: &ApiServer) -> Self {
        // Not under /tmp: sandboxes get a private /tmp.
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let opts = NodeAgentOptions {
            state_dir: dir.path().join("state"),
            executor_bin: Some(executor_bin()),
            max_grace: Duration::from_millis(500),
            ..NodeAgentOptions::default()
        };
        let agent = {
            let _guard = rt.enter();
            NodeAgent::start(s.client(), opts)
        };
        Self {
            agent: Some(agent),
            rt: Some(rt),
            dir,
        }
    }

    /// A directory every sandbox can write to.
    fn shared_dir(&self) -> PathBuf {
        let d = self.dir.path().join("shared");
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        drop(self.agent.take());
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

fn api<K>(s: &ApiServer) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    Api::namespaced(s.client(), "default")
}

fn task_sandbox(name: &str, replicas: i32, task: Value, patches: Value) -> Value {
    json!({
        "apiVersion": "sandbox.opensandbox.io/v1alpha1", "kind": "BatchSandbox",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "template": {"spec": {"containers": [{"name": "main", "image": "busybox:1.36",
                                                  "command": ["sleep", "infinity"],
                                                  // Quiet executors: their logs go to the test's stderr.
                                                  "env": [{"name": "EXECD_LOG", "value": "warn"}]}]}},
            "taskTemplate": {"spec": {"process": task}},
            "shardTaskPatches": patches,
        }
    })
}

/// One patch per replica setting `SHARD=<i>`.
fn shard_env_patches(replicas: i32) -> Value {
    (0..replicas)
        .map(|i| json!({"spec": {"process": {"env": [{"name": "SHARD", "value": i.to_string()}]}}}))
        .collect()
}

async fn create(s: &ApiServer, body: Value) {
    api::<BatchSandbox>(s)
        .create(
            &PostParams::default(),
            &serde_json::from_value(body).unwrap(),
        )
        .await
        .unwrap();
}

async fn status(s: &ApiServer, name: &str) -> BatchSandboxStatus {
    api::<BatchSandbox>(s)
        .get_opt(name)
        .await
        .unwrap()
        .and_then(|b| b.status)
        .unwrap_or_default()
}

fn counters(st: &BatchSandboxStatus) -> [i32; 5] {
    [
        st.task_pending,
        st.task_running,
        st.task_succeed,
        st.task_failed,
        st.task_unknown,
    ]
}

async fn wait_status(
    s: &ApiServer,
    name: &str,
    what: &str,
    f: impl Fn(&BatchSandboxStatus) -> bool,
) -> BatchSandboxStatus {
    let mut last = BatchSandboxStatus::default();
    let deadline = Instant::now() + T;
    loop {
        let st = status(s, name).await;
        if f(&st) {
            return st;
        }
        if Instant::now() > deadline {
            panic!("{name}: timed out waiting for {what}; last status {last:#?}");
        }
        last = st;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn sandbox_writes(s: &ApiServer, name: &str) -> usize {
    s.requests().writes(|e| {
        e.resource.starts_with("batchsandboxes")
            && (e.name.as_deref() == Some(name) || e.verb == "create" && e.name.is_none())
    })
}

fn condition_message(st: &BatchSandboxStatus, type_: &str) -> String {
    find(&st.conditions, type_)
        .filter(|c| c.is_true())
        .and_then(|c| c.message.clone())
        .unwrap_or_else(|| panic!("no True {type_} condition in {:#?}", st.conditions))
}

#[actix_rt::test]
async fn hundred_sharded_tasks_all_succeed() {
    let s = api_server().await;
    let node = Node::start(&s);
    let _m = Manager::start(&s, "m1", None).await;
    // Each replica checks that it got its own shard: pod `<bs>-<i>` must see SHARD=<i>.
    let task = json!({"command": ["sh", "-c", "test \"${POD_NAME##*-}\" = \"$SHARD\" && echo \"shard $SHARD\""]});
    let started = Instant::now();
    create(
        &s,
        task_sandbox("hundred", 100, task, shard_env_patches(100)),
    )
    .await;
    let st = wait_status(&s, "hundred", "100 tasks Succeed", |st| {
        st.task_succeed == 100 || st.task_failed > 0
    })
    .await;
    assert_eq!(counters(&st), [0, 0, 100, 0, 0], "{:#?}", st.conditions);
    assert_eq!(st.phase, Some(SandboxPhase::Succeed));
    assert!(!find(&st.conditions, "TaskFailed").unwrap().is_true());
    let took = started.elapsed();
    // Settled: nothing is polled or written any more.
    let writes = sandbox_writes(&s, "hundred");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        sandbox_writes(&s, "hundred"),
        writes,
        "writes after the tasks finished"
    );
    eprintln!(
        "100 sharded tasks Succeed after {took:?} (pods started by the node agent), {writes} BatchSandbox writes"
    );
    drop(node);
}

#[actix_rt::test]
async fn failing_shard_fails_the_sandbox_and_names_the_shard() {
    let s = api_server().await;
    let node = Node::start(&s);
    let _m = Manager::start(&s, "m1", None).await;
    let task = json!({"command": ["sh", "-c", "echo ok"]});
    let patches =
        json!([{}, {"spec": {"process": {"command": ["sh", "-c", "echo broken >&2; exit 3"]}}}]);
    create(&s, task_sandbox("shards", 3, task, patches)).await;
    let st = wait_status(&s, "shards", "2 Succeed + 1 Failed", |st| {
        st.task_succeed == 2 && st.task_failed == 1
    })
    .await;
    assert_eq!(counters(&st), [0, 0, 2, 1, 0]);
    assert_eq!(st.phase, Some(SandboxPhase::Failed));
    let msg = condition_message(&st, "TaskFailed");
    assert!(
        msg.starts_with("shard 1 (task shards-1 on pod shards-1): exit code 3"),
        "{msg}"
    );
    assert!(msg.contains("broken"), "stderr tail in the message: {msg}");
    let ready = find(&st.conditions, "Ready").unwrap();
    assert!(!ready.is_true() && ready.reason.as_deref() == Some("TaskFailed"));
    // And one Warning event for `kubectl describe`.
    eventually("TaskFailed event", T, || async {
        api::<k8s_openapi::api::core::v1::Event>(&s)
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .iter()
            .any(|e| {
                e.reason.as_deref() == Some("TaskFailed")
                    && e.message
                        .as_deref()
                        .is_some_and(|n| n.starts_with("shard 1 "))
            })
    })
    .await;
    drop(node);
}

#[actix_rt::test]
async fn deletion_mid_task_stops_the_tasks_before_releasing_the_pods() {
    let s = api_server().await;
    let node = Node::start(&s);
    let _m = Manager::start(&s, "m1", None).await;
    let out = node.shared_dir();
    // The task records that it was asked to stop (SIGTERM from its executor).
    let script = format!(
        "sleep 300 & c=$!; trap 'kill $c; echo stopped > {}/$SHARD; exit 0' TERM; wait $c",
        out.display()
    );
    let task = json!({"command": ["sh", "-c", script]});
    create(&s, task_sandbox("busy", 2, task, shard_env_patches(2))).await;
    wait_status(&s, "busy", "2 tasks Running", |st| st.task_running == 2).await;
    let bs = api::<BatchSandbox>(&s).get("busy").await.unwrap();
    assert!(
        bs.metadata
            .finalizers
            .unwrap_or_default()
            .iter()
            .any(|f| f == "batch-sandbox.sandbox.opensandbox.io/task-cleanup")
    );
    let started = Instant::now();
    api::<BatchSandbox>(&s)
        .delete("busy", &DeleteParams::default())
        .await
        .unwrap();
    eventually("sandbox gone", Duration::from_secs(35), || async {
        api::<BatchSandbox>(&s)
            .get_opt("busy")
            .await
            .unwrap()
            .is_none()
    })
    .await;
    let took = started.elapsed();
    for shard in ["0", "1"] {
        assert_eq!(
            std::fs::read_to_string(out.join(shard)).unwrap_or_default(),
            "stopped\n",
            "task of shard {shard} was stopped by its executor before the sandbox went"
        );
    }
    assert!(took < Duration::from_secs(15), "deletion took {took:?}");
    eventually("pods released", T, || async {
        api::<Pod>(&s)
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    })
    .await;
    eprintln!("deletion with 2 running tasks took {took:?}");
    drop(node);
}

#[actix_rt::test]
async fn tasks_the_executor_cannot_run_fail_with_a_clear_reason() {
    let s = api_server().await;
    let node = Node::start(&s);
    let _m = Manager::start(&s, "m1", None).await;
    let task = json!({"command": ["/nonexistent/bin/tool", "--flag"]});
    let patches = json!([
        {},
        {"spec": {"process": {"command": ["sh", "-c", "true"], "env": [{"name": "BAD=NAME", "value": "x"}]}}},
        {"spec": {"process": {"command": ["sh", "-c", "true"], "workingDir": "/nonexistent/dir"}}},
        {"spec": {"timeoutSeconds": 1, "process": {"command": ["sleep", "30"]}}},
    ]);
    create(&s, task_sandbox("broken", 4, task, patches)).await;
    let st = wait_status(&s, "broken", "4 failed tasks", |st| st.task_failed == 4).await;
    assert_eq!(counters(&st), [0, 0, 0, 4, 0]);
    assert_eq!(st.phase, Some(SandboxPhase::Failed));
    let msg = condition_message(&st, "TaskFailed");
    assert!(
        msg.contains("shard 0")
            && msg.contains("CommandNotFound")
            && msg.contains("/nonexistent/bin/tool"),
        "{msg}"
    );
    assert!(
        msg.contains("4 of 4 tasks failed (shards 0, 1, 2, 3)"),
        "{msg}"
    );
    // The other reasons, straight from their executors.
    let pods = api::<Pod>(&s);
    for (pod, reason) in [
        ("broken-1", "InvalidEnv"),
        ("broken-2", "InvalidWorkingDir"),
    ] {
        let ip = pods
            .get(pod)
            .await
            .unwrap()
            .status
            .and_then(|s| s.pod_ip)
            .unwrap();
        let list = opensandbox::actors::task_client::call(
            &ip,
            &opensandbox::actors::task_client::Call::Get,
        )
        .await
        .unwrap();
        let text = format!("{list:?}");
        assert!(text.contains(reason), "{pod}: {text}");
    }
    drop(node);
}

#[actix_rt::test]
async fn unreachable_executor_is_unknown_with_a_reason_and_does_not_block_deletion() {
    let s = api_server().await;
    // The simulated kubelet marks pods Ready with addresses where no executor listens.
    let _k = kubelet(&s);
    let _m = Manager::start(&s, "m1", None).await;
    create(
        &s,
        task_sandbox("lost", 1, json!({"command": ["true"]}), json!([])),
    )
    .await;
    let st = wait_status(&s, "lost", "taskUnknown", |st| st.task_unknown == 1).await;
    assert_eq!(counters(&st), [0, 0, 0, 0, 1]);
    let msg = condition_message(&st, "TaskUnknown");
    assert!(
        msg.starts_with("shard 0 (task lost-0 on pod lost-0): the executor at 10.")
            && msg.contains(":5758"),
        "{msg}"
    );
    let started = Instant::now();
    api::<BatchSandbox>(&s)
        .delete("lost", &DeleteParams::default())
        .await
        .unwrap();
    eventually("sandbox gone", Duration::from_secs(40), || async {
        api::<BatchSandbox>(&s)
            .get_opt("lost")
            .await
            .unwrap()
            .is_none()
    })
    .await;
    let took = started.elapsed();
    assert!(took <= Duration::from_secs(36), "deletion took {took:?}");
    eprintln!("deletion with an unreachable executor took {took:?}");
}

/// Creates a Pool whose buffer holds `idle` pods (at most `max`) and waits until they are.
async fn warm_pool(s: &ApiServer, name: &str, idle: i32, max: i32) {
    api::<opensandbox::crd::Pool>(s)
        .create(
            &PostParams::default(),
            &serde_json::from_value(pool_json(name, idle, idle, 0, max)).unwrap(),
        )
        .await
        .unwrap();
    eventually("pool warm", T, || async {
        api::<opensandbox::crd::Pool>(s)
            .get(name)
            .await
            .unwrap()
            .status
            .is_some_and(|st| st.available == idle)
    })
    .await;
}

#[actix_rt::test]
async fn pooled_sandbox_runs_its_tasks_on_the_allocated_pods() {
    let s = api_server().await;
    let node = Node::start(&s);
    let _m = Manager::start(&s, "m1", None).await;
    warm_pool(&s, "warm", 3, 6).await;
    let mut body = task_sandbox(
        "pooled",
        2,
        json!({"command": ["sh", "-c", "echo shard $SHARD"]}),
        shard_env_patches(2),
    );
    body["spec"]["poolRef"] = json!("warm");
    body["spec"].as_object_mut().unwrap().remove("template");
    create(&s, body).await;
    let st = wait_status(&s, "pooled", "2 tasks Succeed", |st| st.task_succeed == 2).await;
    assert_eq!(counters(&st), [0, 0, 2, 0, 0]);
    assert_eq!(st.phase, Some(SandboxPhase::Succeed));
    api::<BatchSandbox>(&s)
        .delete("pooled", &DeleteParams::default())
        .await
        .unwrap();
    eventually("sandbox gone", Duration::from_secs(35), || async {
        api::<BatchSandbox>(&s)
            .get_opt("pooled")
            .await
            .unwrap()
            .is_none()
    })
    .await;
    drop(node);
}

#[actix_rt::test]
async fn a_deleted_pooled_sandbox_keeps_its_pods_until_its_tasks_have_stopped() {
    let s = api_server().await;
    let node = Node::start(&s);
    let _m = Manager::start(&s, "m1", None).await;
    let out = node.shared_dir();
    warm_pool(&s, "stop", 2, 6).await;
    // Stopping takes a second: a pod released (deleted) before that would never write.
    let script = format!(
        "sleep 300 & c=$!; trap 'kill $c; sleep 1; echo stopped > {}/$SHARD; exit 0' TERM; wait $c",
        out.display()
    );
    let mut body = task_sandbox(
        "pooled-busy",
        2,
        json!({"command": ["sh", "-c", script]}),
        shard_env_patches(2),
    );
    body["spec"]["poolRef"] = json!("stop");
    body["spec"].as_object_mut().unwrap().remove("template");
    create(&s, body).await;
    wait_status(&s, "pooled-busy", "2 tasks Running", |st| {
        st.task_running == 2
    })
    .await;
    let held = Ledger::from_annotations(
        api::<BatchSandbox>(&s)
            .get("pooled-busy")
            .await
            .unwrap()
            .metadata
            .annotations
            .as_ref(),
    )
    .unwrap()
    .status
    .pods;
    assert_eq!(held.len(), 2);
    api::<BatchSandbox>(&s)
        .delete("pooled-busy", &DeleteParams::default())
        .await
        .unwrap();
    let stopped =
        |shard: &str| std::fs::read_to_string(out.join(shard)).unwrap_or_default() == "stopped\n";
    let deadline = Instant::now() + Duration::from_secs(35);
    loop {
        let pods = api::<Pod>(&s).list(&ListParams::default()).await.unwrap();
        let released = held.iter().any(|name| {
            pods.items
                .iter()
                .find(|p| p.metadata.name.as_deref() == Some(name.as_str()))
                .is_none_or(|p| p.metadata.deletion_timestamp.is_some())
        });
        if released {
            assert!(
                stopped("0") && stopped("1"),
                "a pod went back to the pool before its task had stopped"
            );
        }
        let gone = api::<BatchSandbox>(&s)
            .get_opt("pooled-busy")
            .await
            .unwrap()
            .is_none();
        if gone && released {
            break;
        }
        assert!(Instant::now() < deadline, "deletion did not complete");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(node);
}

#[actix_rt::test]
async fn a_new_controller_picks_up_running_tasks_without_rerunning_them() {
    let s = api_server().await;
    let node = Node::start(&s);
    let out = node.shared_dir();
    let m1 = Manager::start(&s, "m1", None).await;
    // Each run appends a line: a second run of a task would show.
    let script = format!("echo run >> {}/$SHARD; sleep 2", out.display());
    create(
        &s,
        task_sandbox(
            "survivor",
            2,
            json!({"command": ["sh", "-c", script]}),
            shard_env_patches(2),
        ),
    )
    .await;
    wait_status(&s, "survivor", "2 tasks Running", |st| st.task_running == 2).await;
    m1.kill();
    let _m2 = Manager::start(&s, "m2", None).await;
    let st = wait_status(&s, "survivor", "2 tasks Succeed", |st| st.task_succeed == 2).await;
    assert_eq!(counters(&st), [0, 0, 2, 0, 0]);
    for shard in ["0", "1"] {
        assert_eq!(std::fs::read_to_string(out.join(shard)).unwrap(), "run\n");
    }
    drop(node);
}

#[actix_rt::test]
async fn a_shard_patch_that_breaks_the_task_is_a_spec_error_with_its_field_path() {
    let s = api_server().await;
    let _k = kubelet(&s);
    let _m = Manager::start(&s, "m1", None).await;
    let patches = json!([{}, {"spec": {"process": {"command": "not-a-list"}}}]);
    create(
        &s,
        task_sandbox("typo", 2, json!({"command": ["true"]}), patches),
    )
    .await;
    let st = wait_status(&s, "typo", "shard 1 failed", |st| st.task_failed == 1).await;
    let spec = find(&st.conditions, "SpecValid").unwrap();
    assert!(!spec.is_true());
    assert_eq!(spec.reason.as_deref(), Some("InvalidTaskTemplate"));
    let msg = spec.message.clone().unwrap();
    assert!(
        msg.contains("spec.shardTaskPatches[1]") && msg.contains("spec.process.command"),
        "{msg}"
    );
    let failed = condition_message(&st, "TaskFailed");
    assert!(failed.starts_with("shard 1 (task typo-1"), "{failed}");
}

async fn annotation(s: &ApiServer, name: &str, key: &str) -> Option<String> {
    api::<BatchSandbox>(s)
        .get(name)
        .await
        .unwrap()
        .metadata
        .annotations
        .and_then(|a| a.get(key).cloned())
}

async fn ledger_pods(s: &ApiServer, name: &str) -> Vec<String> {
    let bs = api::<BatchSandbox>(s).get(name).await.unwrap();
    Ledger::from_annotations(bs.metadata.annotations.as_ref())
        .unwrap()
        .status
        .pods
}

#[actix_rt::test]
async fn release_hands_finished_pods_back_to_the_pool_without_refilling() {
    let s = api_server().await;
    let node = Node::start(&s);
    let m1 = Manager::start(&s, "m1", None).await;
    warm_pool(&s, "rel", 3, 8).await;
    let available = |s: &ApiServer| {
        let s = s.client();
        async move {
            Api::<opensandbox::crd::Pool>::namespaced(s, "default")
                .get("rel")
                .await
                .unwrap()
                .status
                .map(|st| st.available)
                .unwrap_or_default()
        }
    };
    // Shard 0 finishes at once, shard 1 fails, shard 2 takes a while.
    let mut body = task_sandbox(
        "released",
        3,
        json!({"command": ["sh", "-c", "case $SHARD in 0) exit 0;; 1) exit 3;; *) sleep 3;; esac"]}),
        shard_env_patches(3),
    );
    body["spec"]["poolRef"] = json!("rel");
    body["spec"]["taskResourcePolicyWhenCompleted"] = json!("Release");
    body["spec"].as_object_mut().unwrap().remove("template");
    create(&s, body).await;
    let mut seen = std::collections::BTreeSet::new();
    let deadline = Instant::now() + T;
    // While shard 2 still runs, shards 0 and 1 have given their pods back: their slots stay
    // empty, the pool refills its buffer, and the sandbox never gets a fourth pod.
    loop {
        let ledger = ledger_pods(&s, "released").await;
        seen.extend(ledger.iter().filter(|p| !p.is_empty()).cloned());
        let st = status(&s, "released").await;
        if ledger.len() == 3 && ledger[0].is_empty() && ledger[1].is_empty() && st.task_running == 1
        {
            assert_eq!(counters(&st), [0, 1, 1, 1, 0]);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "shards 0 and 1 were not released: {ledger:?} {st:#?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let st = wait_status(&s, "released", "every task finished", |st| {
        st.task_succeed == 2 && st.task_failed == 1
    })
    .await;
    assert_eq!(st.phase, Some(SandboxPhase::Failed), "shard 1 failed");
    eventually("every replica retired", T, || async {
        ledger_pods(&s, "released").await.is_empty()
    })
    .await;
    assert_eq!(
        annotation(
            &s,
            "released",
            opensandbox::crd::keys::ANNOTATION_RELEASED_TASKS
        )
        .await
        .as_deref(),
        Some(r#"{"0":"SUCCEED","1":"FAILED","2":"SUCCEED"}"#)
    );
    eventually("the pool has its buffer back", T, || async {
        available(&s).await == 3
    })
    .await;
    assert_eq!(seen.len(), 3, "no slot was refilled: {seen:?}");
    // A new controller keeps the results and does not refill the retired slots.
    m1.kill();
    let _m2 = Manager::start(&s, "m2", None).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let st = status(&s, "released").await;
    assert_eq!(counters(&st), [0, 0, 2, 1, 0]);
    assert!(ledger_pods(&s, "released").await.is_empty());
    api::<BatchSandbox>(&s)
        .delete("released", &DeleteParams::default())
        .await
        .unwrap();
    eventually("sandbox gone", T, || async {
        api::<BatchSandbox>(&s)
            .get_opt("released")
            .await
            .unwrap()
            .is_none()
    })
    .await;
    drop(node);
}

#[actix_rt::test]
async fn release_in_template_mode_deletes_finished_pods_for_good() {
    let s = api_server().await;
    let node = Node::start(&s);
    let _m = Manager::start(&s, "m1", None).await;
    let mut body = task_sandbox(
        "tpl-release",
        2,
        json!({"command": ["sh", "-c", "[ $SHARD = 0 ] || sleep 2"]}),
        shard_env_patches(2),
    );
    body["spec"]["taskResourcePolicyWhenCompleted"] = json!("Release");
    create(&s, body).await;
    let pods_of = || async {
        api::<Pod>(&s)
            .list(&ListParams::default().labels(&format!(
                "{}=tpl-release",
                opensandbox::crd::keys::LABEL_BATCH_SANDBOX_NAME
            )))
            .await
            .unwrap()
            .items
            .into_iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .filter_map(|p| p.metadata.name)
            .collect::<Vec<_>>()
    };
    eventually(
        "replica 0's pod released while replica 1 runs",
        T,
        || async {
            let st = status(&s, "tpl-release").await;
            pods_of().await == vec!["tpl-release-1".to_string()] && st.task_running == 1
        },
    )
    .await;
    let st = wait_status(&s, "tpl-release", "2 tasks Succeed", |st| {
        st.task_succeed == 2
    })
    .await;
    assert_eq!(st.phase, Some(SandboxPhase::Succeed));
    eventually("every pod released", T, || async {
        pods_of().await.is_empty()
    })
    .await;
    // Not recreated.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(pods_of().await.is_empty());
    assert_eq!(counters(&status(&s, "tpl-release").await), [0, 0, 2, 0, 0]);
    drop(node);
}
