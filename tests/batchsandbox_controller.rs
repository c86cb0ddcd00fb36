//! BatchSandboxActor and pooled allocation against the in-process embedded API server.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use common::*;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use opensandbox::crd::ledger::Ledger;
use opensandbox::crd::{BatchSandbox, Pool, SandboxPhase, keys};
use opensandbox::standalone::apiserver::ApiServer;
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(30);

fn api<K>(s: &ApiServer) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    Api::namespaced(s.client(), "default")
}

async fn create_pool(s: &ApiServer, name: &str, warm: i32) {
    create_pool_recycling(s, name, warm, "Delete").await;
}

async fn create_pool_recycling(s: &ApiServer, name: &str, warm: i32, recycle: &str) {
    let mut body = pool_json(name, warm, warm, 0, warm * 2 + 10);
    body["spec"]["recycleStrategy"] = json!({"type": recycle});
    api::<Pool>(s)
        .create(
            &PostParams::default(),
            &serde_json::from_value(body).unwrap(),
        )
        .await
        .unwrap();
    eventually("pool warm", Duration::from_secs(60), || async {
        api::<Pool>(s)
            .get(name)
            .await
            .unwrap()
            .status
            .is_some_and(|st| st.available == warm)
    })
    .await;
}

fn sandbox_json(name: &str, replicas: i32, pool: Option<&str>) -> Value {
    let mut b = json!({"apiVersion": "sandbox.opensandbox.io/v1alpha1", "kind": "BatchSandbox",
        "metadata": {"name": name, "namespace": "default"}, "spec": {"replicas": replicas}});
    match pool {
        Some(p) => b["spec"]["poolRef"] = json!(p),
        None => {
            b["spec"]["template"] =
                json!({"spec": {"containers": [{"name": "main", "image": "busybox:1.36"}]}})
        }
    }
    b
}

async fn create_sandbox(s: &ApiServer, body: Value) -> BatchSandbox {
    api::<BatchSandbox>(s)
        .create(
            &PostParams::default(),
            &serde_json::from_value(body).unwrap(),
        )
        .await
        .unwrap()
}

async fn sandbox(s: &ApiServer, name: &str) -> Option<BatchSandbox> {
    api::<BatchSandbox>(s).get_opt(name).await.unwrap()
}

async fn ready(s: &ApiServer, name: &str, replicas: i32) -> bool {
    sandbox(s, name)
        .await
        .and_then(|b| b.status)
        .is_some_and(|st| st.ready == replicas && st.phase == Some(SandboxPhase::Succeed))
}

fn ledger(bs: &BatchSandbox) -> Vec<String> {
    Ledger::from_annotations(bs.metadata.annotations.as_ref())
        .unwrap()
        .status
        .pods
}

fn endpoints(bs: &BatchSandbox) -> Vec<String> {
    bs.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(keys::ANNOTATION_ENDPOINTS))
        .map(|e| serde_json::from_str(e).unwrap())
        .unwrap_or_default()
}

async fn all_ledgers(s: &ApiServer) -> BTreeMap<String, Vec<String>> {
    api::<BatchSandbox>(s)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|b| (b.metadata.name.clone().unwrap(), ledger(b)))
        .collect()
}

fn sandbox_writes(s: &ApiServer, name: &str) -> usize {
    s.requests().writes(|e| {
        e.resource.starts_with("batchsandboxes")
            && (e.name.as_deref() == Some(name) || e.verb == "create" && e.name.is_none())
    })
}

async fn pooled_batch(n: i32) {
    let s = api_server().await;
    let _k = kubelet(&s);
    let _m = Manager::start(&s, "m1", None).await;
    create_pool(&s, "warm", n).await;
    s.requests().clear();
    let name = format!("batch-{n}");
    create_sandbox(&s, sandbox_json(&name, n, Some("warm"))).await;
    eventually("batch ready", T, || async { ready(&s, &name, n).await }).await;
    let bs = sandbox(&s, &name).await.unwrap();
    let pods = ledger(&bs);
    assert_eq!(pods.len(), n as usize);
    assert_eq!(
        pods.iter().collect::<HashSet<_>>().len(),
        n as usize,
        "no pod twice"
    );
    assert_eq!(endpoints(&bs).len(), n as usize);
    assert!(endpoints(&bs).iter().all(|ip| !ip.is_empty()));
    assert!(
        bs.metadata
            .finalizers
            .unwrap()
            .contains(&keys::FINALIZER_POOL_ALLOCATION.to_string())
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let writes = sandbox_writes(&s, &name);
    assert!(
        writes <= 3,
        "a batch of {n} from a warm pool took {writes} writes (create, allocation, status)"
    );
}

#[actix_rt::test]
async fn pooled_batch_of_1() {
    pooled_batch(1).await;
}

#[actix_rt::test]
async fn pooled_batch_of_100() {
    pooled_batch(100).await;
}

#[actix_rt::test]
async fn pooled_batch_of_1000() {
    pooled_batch(1000).await;
}

#[actix_rt::test]
async fn deletion_releases_pods_and_the_pool_refills() {
    let s = api_server().await;
    let _k = kubelet(&s);
    let _m = Manager::start(&s, "m1", None).await;
    create_pool(&s, "p", 3).await;
    create_sandbox(&s, sandbox_json("b", 2, Some("p"))).await;
    eventually("ready", T, || async { ready(&s, "b", 2).await }).await;
    let held = ledger(&sandbox(&s, "b").await.unwrap());
    api::<BatchSandbox>(&s)
        .delete("b", &DeleteParams::default())
        .await
        .unwrap();
    eventually("sandbox gone", T, || async {
        sandbox(&s, "b").await.is_none()
    })
    .await;
    let pods: Api<Pod> = api(&s);
    for p in &held {
        assert!(
            pods.get_opt(p).await.unwrap().is_none(),
            "Delete recycling removed {p}"
        );
    }
    eventually("pool refilled", T, || async {
        api::<Pool>(&s)
            .get("p")
            .await
            .unwrap()
            .status
            .is_some_and(|st| st.available == 3 && st.allocated == 0)
    })
    .await;
}

#[actix_rt::test]
async fn deletion_completes_when_the_pool_was_deleted_first() {
    let s = api_server().await;
    let _k = kubelet(&s);
    let _m = Manager::start(&s, "m1", None).await;
    create_pool(&s, "gone", 2).await;
    create_sandbox(&s, sandbox_json("orphan", 1, Some("gone"))).await;
    eventually("ready", T, || async { ready(&s, "orphan", 1).await }).await;
    api::<Pool>(&s)
        .delete("gone", &DeleteParams::default())
        .await
        .unwrap();
    api::<BatchSandbox>(&s)
        .delete("orphan", &DeleteParams::default())
        .await
        .unwrap();
    eventually("sandbox deletion completed", T, || async {
        sandbox(&s, "orphan").await.is_none()
    })
    .await;
}

#[actix_rt::test]
async fn dead_allocated_pod_is_replaced_from_the_pool() {
    let s = api_server().await;
    let _k = kubelet(&s);
    let _m = Manager::start(&s, "m1", None).await;
    create_pool(&s, "p", 3).await;
    create_sandbox(&s, sandbox_json("b", 2, Some("p"))).await;
    eventually("ready", T, || async { ready(&s, "b", 2).await }).await;
    let before = ledger(&sandbox(&s, "b").await.unwrap());
    let pods: Api<Pod> = api(&s);
    pods.delete(&before[0], &DeleteParams::default())
        .await
        .unwrap();
    eventually("replaced in place", T, || async {
        let bs = sandbox(&s, "b").await.unwrap();
        let now = ledger(&bs);
        now.len() == 2 && now[0] != before[0] && now[1] == before[1] && ready(&s, "b", 2).await
    })
    .await;
}

#[actix_rt::test]
async fn pooled_scale_down_releases_pods() {
    let s = api_server().await;
    let _k = kubelet(&s);
    let _m = Manager::start(&s, "m1", None).await;
    create_pool(&s, "p", 4).await;
    create_sandbox(&s, sandbox_json("b", 3, Some("p"))).await;
    eventually("ready", T, || async { ready(&s, "b", 3).await }).await;
    let p = json!({"spec": {"replicas": 1}});
    api::<BatchSandbox>(&s)
        .patch("b", &PatchParams::default(), &Patch::Merge(&p))
        .await
        .unwrap();
    eventually("scaled down", T, || async {
        let bs = sandbox(&s, "b").await.unwrap();
        ledger(&bs).len() == 1 && ready(&s, "b", 1).await
    })
    .await;
}

#[actix_rt::test]
async fn template_batch_scales_up_and_down() {
    let s = api_server().await;
    let _k = kubelet(&s);
    let _m = Manager::start(&s, "m1", None).await;
    create_sandbox(&s, sandbox_json("t", 2, None)).await;
    eventually("ready", T, || async { ready(&s, "t", 2).await }).await;
    let pods: Api<Pod> = api(&s);
    assert!(
        pods.get_opt("t-0").await.unwrap().is_some()
            && pods.get_opt("t-1").await.unwrap().is_some()
    );
    let bs = sandbox(&s, "t").await.unwrap();
    assert_eq!(endpoints(&bs).len(), 2);
    let up = json!({"spec": {"replicas": 4}});
    api::<BatchSandbox>(&s)
        .patch("t", &PatchParams::default(), &Patch::Merge(&up))
        .await
        .unwrap();
    eventually("scaled up", T, || async { ready(&s, "t", 4).await }).await;
    let down = json!({"spec": {"replicas": 1}});
    api::<BatchSandbox>(&s)
        .patch("t", &PatchParams::default(), &Patch::Merge(&down))
        .await
        .unwrap();
    eventually("scaled down", T, || async {
        ready(&s, "t", 1).await
            && pods
                .get_opt("t-1")
                .await
                .unwrap()
                .is_none_or(|p| p.metadata.deletion_timestamp.is_some())
    })
    .await;
    // A deleted pod is recreated with the same name.
    pods.delete("t-0", &DeleteParams::default()).await.unwrap();
    eventually("recreated", T, || async {
        pods.get_opt("t-0").await.unwrap().is_some() && ready(&s, "t", 1).await
    })
    .await;
}

#[actix_rt::test]
async fn expired_sandboxes_are_deleted_on_time() {
    let s = api_server().await;
    let _k = kubelet(&s);
    let _m = Manager::start(&s, "m1", None).await;
    create_pool(&s, "p", 1).await;
    let expire = (chrono::Utc::now() + chrono::Duration::seconds(2))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let mut body = sandbox_json("exp", 1, Some("p"));
    body["spec"]["expireTime"] = json!(expire);
    create_sandbox(&s, body).await;
    eventually("ready", T, || async { ready(&s, "exp", 1).await }).await;
    let at = chrono::DateTime::parse_from_rfc3339(&expire).unwrap();
    eventually("expired sandbox removed", T, || async {
        sandbox(&s, "exp").await.is_none()
    })
    .await;
    let late = chrono::Utc::now().signed_duration_since(at);
    assert!(
        late < chrono::Duration::milliseconds(1500),
        "deleted {late} after expireTime"
    );
    // A past expireTime at creation deletes at once.
    let mut body = sandbox_json("past", 1, None);
    body["spec"]["expireTime"] = json!("2020-01-01T00:00:00Z");
    create_sandbox(&s, body).await;
    eventually("past expiry deleted", T, || async {
        sandbox(&s, "past").await.is_none()
    })
    .await;
}

#[actix_rt::test]
async fn auto_assign_picks_a_matching_pool_and_serves_it() {
    let s = api_server().await;
    let _k = kubelet(&s);
    let _m = Manager::start(&s, "m1", None).await;
    create_pool(&s, "busy", 2).await;
    let mut body = sandbox_json("auto", 1, Some("*"));
    body["spec"]["template"] =
        json!({"spec": {"containers": [{"name": "main", "image": "busybox:1.36"}]}});
    create_sandbox(&s, body).await;
    eventually("assigned and served", T, || async {
        sandbox(&s, "auto")
            .await
            .is_some_and(|b| b.spec.pool_ref.as_deref() == Some("busy"))
            && ready(&s, "auto", 1).await
    })
    .await;
}

#[actix_rt::test]
async fn malformed_ledger_gets_a_condition_and_nothing_crashes() {
    let s = api_server().await;
    let _k = kubelet(&s);
    let _m = Manager::start(&s, "m1", None).await;
    create_pool(&s, "p", 2).await;
    let mut body = sandbox_json("bad", 1, Some("p"));
    body["metadata"]["annotations"] = json!({keys::ANNOTATION_ALLOC_STATUS: "{not json"});
    create_sandbox(&s, body).await;
    eventually("condition on the object", T, || async {
        sandbox(&s, "bad")
            .await
            .and_then(|b| b.status)
            .is_some_and(|st| {
                st.conditions.iter().any(|c| {
                    c.type_ == "SpecValid"
                        && c.status == "False"
                        && c.reason.as_deref() == Some("MalformedLedger")
                })
            })
    })
    .await;
    // The controller keeps serving other sandboxes.
    create_sandbox(&s, sandbox_json("good", 1, Some("p"))).await;
    eventually("other sandboxes served", T, || async {
        ready(&s, "good", 1).await
    })
    .await;
}

#[actix_rt::test]
async fn status_follows_pod_readiness_within_a_second() {
    let s = api_server().await;
    let _m = Manager::start(&s, "m1", None).await;
    create_sandbox(&s, sandbox_json("lag", 1, None)).await;
    let pods: Api<Pod> = api(&s);
    eventually("pod created", T, || async {
        pods.get_opt("lag-0").await.unwrap().is_some()
    })
    .await;
    let _k = kubelet(&s);
    let t = std::time::Instant::now();
    eventually("ready", T, || async { ready(&s, "lag", 1).await }).await;
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "status lagged {:?}",
        t.elapsed()
    );
}

#[actix_rt::test]
async fn allocations_survive_a_manager_restart_without_double_allocation() {
    let s = api_server().await;
    let _k = kubelet(&s);
    let m = Manager::start(&s, "m1", None).await;
    create_pool(&s, "p", 6).await;
    create_sandbox(&s, sandbox_json("a", 3, Some("p"))).await;
    eventually("a ready", T, || async { ready(&s, "a", 3).await }).await;
    m.kill();
    let _m2 = Manager::start(&s, "m2", None).await;
    create_sandbox(&s, sandbox_json("b", 3, Some("p"))).await;
    eventually("b ready", T, || async { ready(&s, "b", 3).await }).await;
    let ledgers = all_ledgers(&s).await;
    let all: Vec<&String> = ledgers.values().flatten().collect();
    assert_eq!(all.len(), 6);
    assert_eq!(
        all.iter().collect::<HashSet<_>>().len(),
        6,
        "no pod in two ledgers: {ledgers:?}"
    );
}

#[actix_rt::test]
async fn noop_recycling_returns_the_same_pods_to_the_pool() {
    let s = api_server().await;
    let _k = kubelet(&s);
    let _m = Manager::start(&s, "m1", None).await;
    create_pool_recycling(&s, "noop", 2, "Noop").await;
    create_sandbox(&s, sandbox_json("n", 1, Some("noop"))).await;
    eventually("ready", T, || async { ready(&s, "n", 1).await }).await;
    let held = ledger(&sandbox(&s, "n").await.unwrap());
    api::<BatchSandbox>(&s)
        .delete("n", &DeleteParams::default())
        .await
        .unwrap();
    eventually("sandbox gone", T, || async {
        sandbox(&s, "n").await.is_none()
    })
    .await;
    let pods: Api<Pod> = api(&s);
    let pod = pods.get(&held[0]).await.unwrap();
    assert!(
        pod.metadata.deletion_timestamp.is_none(),
        "Noop keeps the pod"
    );
    eventually("pod idle again", T, || async {
        api::<Pool>(&s)
            .get("noop")
            .await
            .unwrap()
            .status
            .is_some_and(|st| st.allocated == 0)
    })
    .await;
}
