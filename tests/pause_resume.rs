//! Pause and resume in Kubernetes mode (commit strategy) against the embedded API server.
//! No Job controller runs here: the tests play it, writing the commit Job's status
//! (succeeded, failed) or leaving it running into the commit-job timeout.

mod common;

use std::time::Duration;

use common::*;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use opensandbox::actors::ActorConfig;
use opensandbox::actors::snapshot_policy::SnapshotConfig;
use opensandbox::crd::{BatchSandbox, Pool, SandboxPhase, SandboxSnapshot, SnapshotPhase, keys};
use opensandbox::standalone::apiserver::ApiServer;
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(20);
const REGISTRY: &str = "registry.local:5000/snaps";

fn api<K>(s: &ApiServer) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    Api::namespaced(s.client(), "default")
}

fn config(timeout: Duration) -> ActorConfig {
    ActorConfig {
        snapshot: SnapshotConfig {
            registry: REGISTRY.into(),
            push_secret: Some("push-creds".into()),
            resume_pull_secret: Some("pull-creds".into()),
            committer_image: "committer:test".into(),
            commit_job_timeout: timeout,
            ..Default::default()
        },
        ..Default::default()
    }
}

struct Env {
    s: ApiServer,
    _kubelet: opensandbox::standalone::kubelet_sim::SimKubelet,
    _manager: Manager,
}

async fn env(timeout: Duration) -> Env {
    let s = api_server().await;
    let kubelet = kubelet(&s);
    let manager = Manager::start_with(&s, "m1", None, config(timeout)).await;
    Env {
        s,
        _kubelet: kubelet,
        _manager: manager,
    }
}

async fn create(s: &ApiServer, name: &str, replicas: i32, pause: Option<bool>) {
    let mut body = json!({"apiVersion": "sandbox.opensandbox.io/v1alpha1", "kind": "BatchSandbox",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"replicas": replicas,
                 "template": {"spec": {"containers": [{"name": "main", "image": "busybox:1.36"}]}}}});
    if let Some(p) = pause {
        body["spec"]["pause"] = json!(p);
    }
    api::<BatchSandbox>(s)
        .create(
            &PostParams::default(),
            &serde_json::from_value(body).unwrap(),
        )
        .await
        .unwrap();
}

async fn get(s: &ApiServer, name: &str) -> Option<BatchSandbox> {
    api::<BatchSandbox>(s).get_opt(name).await.unwrap()
}

fn phase(b: &BatchSandbox) -> Option<SandboxPhase> {
    b.status.as_ref().and_then(|s| s.phase)
}

fn condition(b: &BatchSandbox, ty: &str) -> Option<(String, String, String)> {
    b.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == ty)
        .map(|c| {
            (
                c.status.clone(),
                c.reason.clone().unwrap_or_default(),
                c.message.clone().unwrap_or_default(),
            )
        })
}

async fn wait_phase(s: &ApiServer, name: &str, want: SandboxPhase) -> BatchSandbox {
    eventually(&format!("{name} phase {want:?}"), T, || async {
        get(s, name).await.as_ref().and_then(phase) == Some(want)
    })
    .await;
    get(s, name).await.unwrap()
}

async fn set_pause(s: &ApiServer, name: &str, pause: Value) {
    api::<BatchSandbox>(s)
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"pause": pause}})),
        )
        .await
        .unwrap();
}

async fn snapshot(s: &ApiServer, name: &str) -> Option<SandboxSnapshot> {
    api::<SandboxSnapshot>(s).get_opt(name).await.unwrap()
}

fn snap_phase(snap: &SandboxSnapshot) -> Option<SnapshotPhase> {
    snap.status.as_ref().and_then(|s| s.phase)
}

async fn wait_job(s: &ApiServer, name: &str) -> Job {
    eventually(&format!("job {name}"), T, || async {
        api::<Job>(s).get_opt(name).await.unwrap().is_some()
    })
    .await;
    api::<Job>(s).get(name).await.unwrap()
}

/// Plays the Job controller: reports the Job finished.
async fn finish_job(s: &ApiServer, name: &str, ok: bool) {
    let status = if ok {
        json!({"status": {"succeeded": 1,
            "conditions": [{"type": "Complete", "status": "True"}]}})
    } else {
        json!({"status": {"failed": 4,
            "conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                            "message": "Job has reached the specified backoff limit"}]}})
    };
    api::<Job>(s)
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
}

async fn pods_of(s: &ApiServer, name: &str) -> Vec<Pod> {
    api::<Pod>(s)
        .list(&ListParams::default().labels(&format!("{}={name}", keys::LABEL_BATCH_SANDBOX_NAME)))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect()
}

fn endpoints(b: &BatchSandbox) -> Option<String> {
    b.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(keys::ANNOTATION_ENDPOINTS).cloned())
}

/// The distinct phases a sandbox goes through from now on, in order.
fn record_phases(s: &ApiServer, name: &str) -> std::sync::Arc<std::sync::Mutex<Vec<SandboxPhase>>> {
    use futures::StreamExt;
    use kube::runtime::{WatchStreamExt, watcher};
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let out = seen.clone();
    let cfg = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let stream = watcher(api::<BatchSandbox>(s), cfg).applied_objects();
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(Ok(b)) = stream.next().await {
            if let Some(p) = phase(&b) {
                let mut v = out.lock().unwrap();
                if v.last() != Some(&p) {
                    v.push(p);
                }
            }
        }
    });
    seen
}

/// Pauses a running sandbox through its commit Job; returns the Paused sandbox.
async fn pause_through_job(s: &ApiServer, name: &str) -> BatchSandbox {
    set_pause(s, name, json!(true)).await;
    let pausing = wait_phase(s, name, SandboxPhase::Pausing).await;
    assert_eq!(
        condition(&pausing, "Progressing").map(|c| c.1),
        Some("PauseInProgress".into())
    );
    let snap_name = format!("{name}-pause");
    let job = wait_job(s, &format!("{snap_name}-commit")).await;
    let job_v = serde_json::to_value(&job).unwrap();
    let container = &job_v["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], "committer:test");
    let generation = pausing.metadata.generation.unwrap();
    assert_eq!(
        container["args"],
        json!([
            format!("{name}-0"),
            "default",
            format!("main:{REGISTRY}/{name}-main:snap-gen{generation}")
        ])
    );
    assert_eq!(
        job_v["metadata"]["labels"][keys::LABEL_SANDBOX_SNAPSHOT_NAME],
        snap_name.as_str()
    );
    let snap = snapshot(s, &snap_name).await.unwrap();
    assert_eq!(snap_phase(&snap), Some(SnapshotPhase::Committing));
    assert_eq!(
        snap.status.as_ref().unwrap().source_pod_name.as_deref(),
        Some(format!("{name}-0").as_str())
    );
    finish_job(s, &format!("{snap_name}-commit"), true).await;
    let paused = wait_phase(s, name, SandboxPhase::Paused).await;
    assert_eq!(
        condition(&paused, "Paused").map(|c| c.0),
        Some("True".into())
    );
    eventually("pods released while paused", T, || async {
        pods_of(s, name).await.is_empty()
    })
    .await;
    eventually("endpoints cleared while paused", T, || async {
        get(s, name).await.and_then(|b| endpoints(&b)).as_deref() == Some("[]")
    })
    .await;
    get(s, name).await.unwrap()
}

#[actix_rt::test]
async fn pause_commits_and_resume_recreates_from_the_snapshot_without_flapping() {
    let e = env(Duration::from_secs(60)).await;
    let s = &e.s;
    create(s, "bs", 1, None).await;
    wait_phase(s, "bs", SandboxPhase::Succeed).await;
    let paused = pause_through_job(s, "bs").await;
    let pause_gen = paused.status.as_ref().unwrap().pause_observed_generation;
    let snap_uid = snapshot(s, "bs-pause").await.unwrap().metadata.uid;
    assert_eq!(
        snap_phase(&snapshot(s, "bs-pause").await.unwrap()),
        Some(SnapshotPhase::Succeed)
    );

    // Still paused a moment later: no pod comes back.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(pods_of(s, "bs").await.is_empty());

    // A second pause request (the server's retry bridge: null, then true) keeps the snapshot.
    set_pause(s, "bs", Value::Null).await;
    set_pause(s, "bs", json!(true)).await;
    eventually("second pause ACKed", T, || async {
        let b = get(s, "bs").await.unwrap();
        b.status.as_ref().unwrap().pause_observed_generation == b.metadata.generation
            && b.metadata.generation > pause_gen
    })
    .await;
    let b = get(s, "bs").await.unwrap();
    assert_eq!(phase(&b), Some(SandboxPhase::Paused));
    let snap = snapshot(s, "bs-pause").await.unwrap();
    assert_eq!(snap.metadata.uid, snap_uid, "the good snapshot is kept");
    assert_eq!(snap_phase(&snap), Some(SnapshotPhase::Succeed));

    // Resume: Resuming, images rewritten, pod re-created from the snapshot, Running. Every
    // phase the sandbox goes through is recorded from a watch.
    let phases = record_phases(s, "bs");
    eventually("the watch saw the sandbox", T, || async {
        !phases.lock().unwrap().is_empty()
    })
    .await;
    set_pause(s, "bs", json!(false)).await;
    let b = wait_phase(s, "bs", SandboxPhase::Succeed).await;
    let template = b.spec.template.clone().unwrap();
    let image = template["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        image.starts_with(&format!("{REGISTRY}/bs-main:snap-gen")),
        "{image}"
    );
    assert_eq!(
        template["spec"]["imagePullSecrets"][0]["name"],
        "pull-creds"
    );
    let pods = pods_of(s, "bs").await;
    assert_eq!(pods.len(), 1);
    assert_eq!(
        pods[0].spec.as_ref().unwrap().containers[0]
            .image
            .as_deref(),
        Some(image.as_str())
    );
    // No flap: it stays Running with its own generation ACKed.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let seen = phases.lock().unwrap().clone();
    assert_eq!(
        seen,
        vec![
            SandboxPhase::Paused,
            SandboxPhase::Resuming,
            SandboxPhase::Succeed
        ],
        "phases during resume"
    );
    let b = get(s, "bs").await.unwrap();
    assert_eq!(
        b.status.as_ref().unwrap().pause_observed_generation,
        b.metadata.generation
    );
    eventually("internal snapshot deleted after resume", T, || async {
        snapshot(s, "bs-pause").await.is_none()
    })
    .await;
    assert_eq!(
        condition(&b, "ResumeFailed").map(|c| c.0),
        Some("False".into())
    );
}

#[actix_rt::test]
async fn a_failed_commit_job_leaves_the_sandbox_running_with_pause_failed() {
    let e = env(Duration::from_secs(60)).await;
    let s = &e.s;
    create(s, "bs", 1, None).await;
    wait_phase(s, "bs", SandboxPhase::Succeed).await;
    set_pause(s, "bs", json!(true)).await;
    wait_phase(s, "bs", SandboxPhase::Pausing).await;
    wait_job(s, "bs-pause-commit").await;
    finish_job(s, "bs-pause-commit", false).await;
    eventually("PauseFailed", T, || async {
        let b = get(s, "bs").await.unwrap();
        phase(&b) == Some(SandboxPhase::Succeed)
            && condition(&b, "PauseFailed")
                .is_some_and(|c| c.0 == "True" && c.1 == "SnapshotFailed")
    })
    .await;
    let b = get(s, "bs").await.unwrap();
    assert!(
        condition(&b, "PauseFailed")
            .unwrap()
            .2
            .contains("backoff limit")
    );
    let snap = snapshot(s, "bs-pause").await.unwrap();
    assert_eq!(snap_phase(&snap), Some(SnapshotPhase::Failed));
    // Best effort: the committer's pause of the containers is undone.
    let unpause = wait_job(s, "bs-pause-unpause").await;
    let args = serde_json::to_value(&unpause).unwrap()["spec"]["template"]["spec"]["containers"][0]
        ["args"]
        .clone();
    assert_eq!(args, json!(["unpause", "bs-0", "default", "main"]));
    assert_eq!(pods_of(s, "bs").await.len(), 1, "the pod is kept");
    // A new request retries: the failed snapshot is replaced by a new one.
    let failed_uid = snap.metadata.uid;
    set_pause(s, "bs", Value::Null).await;
    set_pause(s, "bs", json!(true)).await;
    eventually("a new snapshot for the retry", T, || async {
        snapshot(s, "bs-pause")
            .await
            .is_some_and(|x| x.metadata.uid != failed_uid)
    })
    .await;
    wait_phase(s, "bs", SandboxPhase::Pausing).await;
}

#[actix_rt::test]
async fn a_commit_job_past_its_timeout_fails_the_pause() {
    let e = env(Duration::from_secs(1)).await;
    let s = &e.s;
    create(s, "bs", 1, None).await;
    wait_phase(s, "bs", SandboxPhase::Succeed).await;
    set_pause(s, "bs", json!(true)).await;
    let job = wait_job(s, "bs-pause-commit").await;
    assert_eq!(job.spec.as_ref().unwrap().active_deadline_seconds, Some(1));
    eventually("timeout", T, || async {
        snapshot(s, "bs-pause").await.is_some_and(|x| {
            x.status.as_ref().is_some_and(|st| {
                st.phase == Some(SnapshotPhase::Failed)
                    && st
                        .conditions
                        .iter()
                        .any(|c| c.reason.as_deref() == Some("CommitJobTimeout"))
            })
        })
    })
    .await;
    eventually("back to running", T, || async {
        let b = get(s, "bs").await.unwrap();
        phase(&b) == Some(SandboxPhase::Succeed)
            && condition(&b, "PauseFailed").is_some_and(|c| c.0 == "True")
    })
    .await;
}

#[actix_rt::test]
async fn create_with_pause_false_runs_and_replicas_other_than_one_are_refused() {
    let e = env(Duration::from_secs(60)).await;
    let s = &e.s;
    create(s, "plain", 1, Some(false)).await;
    create(s, "two", 2, None).await;
    let b = wait_phase(s, "plain", SandboxPhase::Succeed).await;
    assert_eq!(b.status.unwrap().pause_observed_generation, Some(1));
    wait_phase(s, "two", SandboxPhase::Succeed).await;
    set_pause(s, "two", json!(true)).await;
    eventually("UnsupportedReplicas", T, || async {
        get(s, "two").await.is_some_and(|b| {
            condition(&b, "PauseFailed").is_some_and(|c| {
                c.0 == "True" && c.1 == "UnsupportedReplicas" && c.2.contains("got spec.replicas=2")
            })
        })
    })
    .await;
    let b = get(s, "two").await.unwrap();
    assert_eq!(phase(&b), Some(SandboxPhase::Succeed));
    assert!(snapshot(s, "two-pause").await.is_none());
    assert_eq!(pods_of(s, "two").await.len(), 2);
    // Resume on a running sandbox is only an ACK.
    set_pause(s, "plain", json!(false)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let b = get(s, "plain").await.unwrap();
    assert_eq!(phase(&b), Some(SandboxPhase::Succeed));
}

#[actix_rt::test]
async fn deleting_a_pausing_sandbox_removes_its_snapshot_and_job() {
    let e = env(Duration::from_secs(60)).await;
    let s = &e.s;
    create(s, "bs", 1, None).await;
    wait_phase(s, "bs", SandboxPhase::Succeed).await;
    set_pause(s, "bs", json!(true)).await;
    wait_phase(s, "bs", SandboxPhase::Pausing).await;
    wait_job(s, "bs-pause-commit").await;
    api::<BatchSandbox>(s)
        .delete("bs", &DeleteParams::default())
        .await
        .unwrap();
    eventually("sandbox, snapshot and job gone", T, || async {
        get(s, "bs").await.is_none()
            && snapshot(s, "bs-pause").await.is_none()
            && api::<Job>(s)
                .get_opt("bs-pause-commit")
                .await
                .unwrap()
                .is_none()
    })
    .await;
}

#[actix_rt::test]
async fn without_a_registry_the_pause_fails_clearly() {
    let e = env(Duration::from_secs(60)).await;
    let s = &e.s;
    drop(e._manager);
    let _m = Manager::start_with(s, "m2", None, ActorConfig::default()).await;
    create(s, "bs", 1, None).await;
    wait_phase(s, "bs", SandboxPhase::Succeed).await;
    set_pause(s, "bs", json!(true)).await;
    eventually("RegistryNotConfigured", T, || async {
        get(s, "bs").await.is_some_and(|b| {
            condition(&b, "PauseFailed")
                .is_some_and(|c| c.0 == "True" && c.2.contains("snapshot-registry not configured"))
        })
    })
    .await;
}

#[actix_rt::test]
async fn pooled_pause_gives_the_pod_back_and_resume_recreates_it() {
    let e = env(Duration::from_secs(60)).await;
    let s = &e.s;
    api::<Pool>(s)
        .create(
            &PostParams::default(),
            &serde_json::from_value(pool_json("p", 1, 1, 0, 5)).unwrap(),
        )
        .await
        .unwrap();
    let body = json!({"apiVersion": "sandbox.opensandbox.io/v1alpha1", "kind": "BatchSandbox",
        "metadata": {"name": "bs", "namespace": "default"}, "spec": {"replicas": 1, "poolRef": "p"}});
    api::<BatchSandbox>(s)
        .create(
            &PostParams::default(),
            &serde_json::from_value(body).unwrap(),
        )
        .await
        .unwrap();
    wait_phase(s, "bs", SandboxPhase::Succeed).await;
    let held = opensandbox::crd::ledger::Ledger::from_annotations(
        get(s, "bs").await.unwrap().metadata.annotations.as_ref(),
    )
    .unwrap()
    .held();
    assert_eq!(held.len(), 1);
    set_pause(s, "bs", json!(true)).await;
    wait_phase(s, "bs", SandboxPhase::Pausing).await;
    let job = wait_job(s, "bs-pause-commit").await;
    let args =
        serde_json::to_value(&job).unwrap()["spec"]["template"]["spec"]["containers"][0]["args"]
            .clone();
    assert_eq!(args[0], held[0].as_str());
    finish_job(s, "bs-pause-commit", true).await;
    let b = wait_phase(s, "bs", SandboxPhase::Paused).await;
    assert!(b.spec.pool_ref.as_deref().unwrap_or_default().is_empty());
    assert!(
        !b.finalizers()
            .iter()
            .any(|f| f == keys::FINALIZER_POOL_ALLOCATION),
        "the pool no longer holds this sandbox"
    );
    eventually("the paused pod left the pool", T, || async {
        api::<Pod>(s)
            .get_opt(&held[0])
            .await
            .unwrap()
            .is_none_or(|p| p.metadata.deletion_timestamp.is_some())
    })
    .await;
    set_pause(s, "bs", json!(false)).await;
    let b = wait_phase(s, "bs", SandboxPhase::Succeed).await;
    let pods = pods_of(s, "bs").await;
    assert_eq!(pods.len(), 1);
    assert_eq!(
        pods[0].spec.as_ref().unwrap().containers[0]
            .image
            .as_deref(),
        b.spec.template.as_ref().unwrap()["spec"]["containers"][0]["image"].as_str()
    );
}

use kube::ResourceExt;

/// The documented choice: pausing does not stop the expiry clock.
#[actix_rt::test]
async fn a_paused_sandbox_still_expires() {
    let e = env(Duration::from_secs(60)).await;
    let s = &e.s;
    create(s, "bs", 1, None).await;
    wait_phase(s, "bs", SandboxPhase::Succeed).await;
    pause_through_job(s, "bs").await;
    let at = (chrono::Utc::now() + chrono::Duration::seconds(2))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    api::<BatchSandbox>(s)
        .patch(
            "bs",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"expireTime": at}})),
        )
        .await
        .unwrap();
    eventually("the paused sandbox expired", T, || async {
        get(s, "bs").await.is_none()
    })
    .await;
}

fn freeze_config() -> ActorConfig {
    ActorConfig {
        snapshot: SnapshotConfig {
            strategy: opensandbox::actors::snapshot_policy::SnapshotStrategy::Freeze,
            ..Default::default()
        },
        ..Default::default()
    }
}

fn annotation(p: &Pod, key: &str) -> Option<String> {
    p.metadata.annotations.as_ref()?.get(key).cloned()
}

/// Plays the node agent: reports the pod frozen (or thawed).
async fn report_frozen(s: &ApiServer, pod: &str, frozen: bool) {
    let v = if frozen { json!("true") } else { Value::Null };
    api::<Pod>(s)
        .patch(
            pod,
            &PatchParams::default(),
            &Patch::Merge(&json!({"metadata": {"annotations": {keys::ANNOTATION_FROZEN: v}}})),
        )
        .await
        .unwrap();
}

/// Standalone's strategy on the same API: the pod is frozen in place, kept while paused, and
/// thawed by resume (or by deleting the sandbox).
#[actix_rt::test]
async fn freeze_strategy_keeps_the_pod_and_thaws_it() {
    let s = api_server().await;
    let _kubelet = kubelet(&s);
    let _m = Manager::start_with(&s, "m1", None, freeze_config()).await;
    let s = &s;
    create(s, "bs", 1, None).await;
    wait_phase(s, "bs", SandboxPhase::Succeed).await;
    let pod_uid = pods_of(s, "bs").await[0].metadata.uid.clone();
    set_pause(s, "bs", json!(true)).await;
    wait_phase(s, "bs", SandboxPhase::Pausing).await;
    eventually("freeze requested on the pod", T, || async {
        api::<Pod>(s)
            .get("bs-0")
            .await
            .is_ok_and(|p| annotation(&p, keys::ANNOTATION_FREEZE).as_deref() == Some("true"))
    })
    .await;
    assert!(
        api::<Job>(s)
            .get_opt("bs-pause-commit")
            .await
            .unwrap()
            .is_none()
    );
    report_frozen(s, "bs-0", true).await;
    wait_phase(s, "bs", SandboxPhase::Paused).await;
    eventually("endpoints cleared while paused", T, || async {
        get(s, "bs").await.and_then(|b| endpoints(&b)).as_deref() == Some("[]")
    })
    .await;
    let pods = pods_of(s, "bs").await;
    assert_eq!(pods.len(), 1, "the frozen pod is kept");
    assert_eq!(pods[0].metadata.uid, pod_uid);

    set_pause(s, "bs", json!(false)).await;
    eventually("thaw requested", T, || async {
        api::<Pod>(s)
            .get("bs-0")
            .await
            .is_ok_and(|p| annotation(&p, keys::ANNOTATION_FREEZE).is_none())
    })
    .await;
    report_frozen(s, "bs-0", false).await;
    let b = wait_phase(s, "bs", SandboxPhase::Succeed).await;
    assert_eq!(
        b.status.as_ref().unwrap().pause_observed_generation,
        b.metadata.generation
    );
    assert_eq!(pods_of(s, "bs").await[0].metadata.uid, pod_uid, "same pod");
    eventually("endpoints published again", T, || async {
        get(s, "bs")
            .await
            .and_then(|b| endpoints(&b))
            .is_some_and(|e| e != "[]")
    })
    .await;

    // Paused again, then deleted: the pod is thawed on the way out.
    set_pause(s, "bs", json!(true)).await;
    eventually("frozen again", T, || async {
        api::<Pod>(s)
            .get("bs-0")
            .await
            .is_ok_and(|p| annotation(&p, keys::ANNOTATION_FREEZE).as_deref() == Some("true"))
    })
    .await;
    report_frozen(s, "bs-0", true).await;
    wait_phase(s, "bs", SandboxPhase::Paused).await;
    // Hold the sandbox in deletion so the thaw can be observed before the pod goes.
    api::<BatchSandbox>(s)
        .patch(
            "bs",
            &PatchParams::default(),
            &Patch::Merge(&json!({"metadata": {"finalizers": ["test/hold"]}})),
        )
        .await
        .unwrap();
    api::<BatchSandbox>(s)
        .delete("bs", &DeleteParams::default())
        .await
        .unwrap();
    eventually("thawed on deletion", T, || async {
        api::<Pod>(s)
            .get_opt("bs-0")
            .await
            .unwrap()
            .is_none_or(|p| annotation(&p, keys::ANNOTATION_FREEZE).is_none())
    })
    .await;
    api::<BatchSandbox>(s)
        .patch(
            "bs",
            &PatchParams::default(),
            &Patch::Merge(&json!({"metadata": {"finalizers": null}})),
        )
        .await
        .unwrap();
}
