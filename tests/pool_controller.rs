//! PoolActor behaviour against the in-process embedded API server and a simulated kubelet.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use opensandbox::actors::leader::LeaderConfig;
use opensandbox::crd::{BatchSandbox, Pool, keys};
use opensandbox::standalone::apiserver::ApiServer;
use serde_json::json;

const T: Duration = Duration::from_secs(20);

async fn create_pool(s: &ApiServer, body: serde_json::Value) -> Pool {
    let pools: Api<Pool> = Api::namespaced(s.client(), "default");
    pools
        .create(
            &PostParams::default(),
            &serde_json::from_value(body).unwrap(),
        )
        .await
        .unwrap()
}

async fn pool_pods(s: &ApiServer, pool: &str) -> Vec<Pod> {
    let pods: Api<Pod> = Api::namespaced(s.client(), "default");
    pods.list(&ListParams::default().labels(&format!("{}={pool}", keys::LABEL_POOL_NAME)))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect()
}

async fn status(s: &ApiServer, pool: &str) -> opensandbox::crd::PoolStatus {
    let pools: Api<Pool> = Api::namespaced(s.client(), "default");
    pools.get(pool).await.unwrap().status.unwrap_or_default()
}

fn creates(s: &ApiServer) -> usize {
    s.requests()
        .writes(|e| e.verb == "create" && e.resource == "pods")
}

#[actix_rt::test]
async fn fills_from_empty_and_reports_status() {
    let s = api_server().await;
    let _k = kubelet(&s);
    let _m = Manager::start(&s, "m1", None).await;
    create_pool(&s, pool_json("fill", 3, 5, 0, 10)).await;
    eventually("pool filled to the buffer", T, || async {
        let st = status(&s, "fill").await;
        st.available >= 3 && st.available <= 5 && st.total == st.available
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let st = status(&s, "fill").await;
    assert_eq!(pool_pods(&s, "fill").await.len() as i32, st.total);
    assert_eq!(
        creates(&s) as i32,
        st.total,
        "one create per pod, no duplicates"
    );
    assert_eq!(st.revision.len(), 16);
    assert_eq!(st.observed_generation, Some(1));
    let ready = st.conditions.iter().find(|c| c.type_ == "Ready").unwrap();
    assert_eq!(ready.status, "True");
    // Steady state: no further status writes.
    let writes = s.requests().writes(|e| e.resource == "pools/status");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        s.requests().writes(|e| e.resource == "pools/status"),
        writes
    );
}

#[actix_rt::test]
async fn refills_after_out_of_band_deletes() {
    let s = api_server().await;
    let _k = kubelet(&s);
    let _m = Manager::start(&s, "m1", None).await;
    create_pool(&s, pool_json("refill", 4, 4, 0, 10)).await;
    eventually("filled", T, || async {
        status(&s, "refill").await.available == 4
    })
    .await;
    let pods: Api<Pod> = Api::namespaced(s.client(), "default");
    let before: BTreeSet<String> = pool_pods(&s, "refill")
        .await
        .into_iter()
        .map(|p| p.metadata.name.unwrap())
        .collect();
    for name in before.iter().take(2) {
        pods.delete(name, &DeleteParams::default()).await.unwrap();
    }
    eventually("refilled", T, || async {
        pool_pods(&s, "refill").await.len() == 4 && status(&s, "refill").await.available == 4
    })
    .await;
    let after: BTreeSet<String> = pool_pods(&s, "refill")
        .await
        .into_iter()
        .map(|p| p.metadata.name.unwrap())
        .collect();
    assert_eq!(after.intersection(&before).count(), 2);
}

#[actix_rt::test]
async fn scales_down_when_buffer_max_shrinks_and_respects_pool_max() {
    let s = api_server().await;
    let _k = kubelet(&s);
    let _m = Manager::start(&s, "m1", None).await;
    create_pool(&s, pool_json("shrink", 6, 6, 0, 4)).await;
    eventually("capped at poolMax", T, || async {
        status(&s, "shrink").await.available == 4
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(creates(&s), 4, "poolMax is a hard cap");
    let pools: Api<Pool> = Api::namespaced(s.client(), "default");
    let p = json!({"spec": {"capacitySpec": {"bufferMin": 1, "bufferMax": 2, "poolMin": 0, "poolMax": 4}}});
    pools
        .patch("shrink", &PatchParams::default(), &Patch::Merge(&p))
        .await
        .unwrap();
    eventually("scaled in to the buffer", T, || async {
        let n = pool_pods(&s, "shrink").await.len();
        (1..=2).contains(&n)
    })
    .await;
}

#[actix_rt::test]
async fn template_change_rolls_only_idle_pods() {
    let s = api_server().await;
    let _k = kubelet(&s);
    let _m = Manager::start(&s, "m1", None).await;
    create_pool(&s, pool_json("roll", 3, 3, 0, 10)).await;
    eventually("filled", T, || async {
        status(&s, "roll").await.available == 3
    })
    .await;
    let old_rev = status(&s, "roll").await.revision;
    // Allocate one pod to a sandbox through the ledger annotation.
    let held = pool_pods(&s, "roll").await[0]
        .metadata
        .name
        .clone()
        .unwrap();
    let bs: Api<BatchSandbox> = Api::namespaced(s.client(), "default");
    let ledger = format!("{{\"pods\":[\"{held}\"]}}");
    let sandbox = json!({"apiVersion": "sandbox.opensandbox.io/v1alpha1", "kind": "BatchSandbox",
        "metadata": {"name": "holder", "annotations": {keys::ANNOTATION_ALLOC_STATUS: ledger}},
        "spec": {"replicas": 1, "poolRef": "roll"}});
    bs.create(
        &PostParams::default(),
        &serde_json::from_value(sandbox).unwrap(),
    )
    .await
    .unwrap();
    eventually("allocation counted", T, || async {
        status(&s, "roll").await.allocated == 1
    })
    .await;
    let pools: Api<Pool> = Api::namespaced(s.client(), "default");
    let p = json!({"spec": {"template": {"metadata": {"labels": {"app": "sandbox"}},
        "spec": {"containers": [{"name": "main", "image": "busybox:1.37"}]}}}});
    pools
        .patch("roll", &PatchParams::default(), &Patch::Merge(&p))
        .await
        .unwrap();
    eventually("idle pods rolled to the new revision", T, || async {
        let st = status(&s, "roll").await;
        if st.revision == old_rev {
            return false;
        }
        let pods = pool_pods(&s, "roll").await;
        let idle_new = pods
            .iter()
            .filter(|p| p.metadata.name.as_deref() != Some(held.as_str()))
            .filter(|p| {
                p.metadata.labels.as_ref().unwrap()[keys::LABEL_POOL_REVISION] == st.revision
            })
            .count();
        idle_new == 3 && st.available == 3
    })
    .await;
    let pods = pool_pods(&s, "roll").await;
    let kept = pods
        .iter()
        .find(|p| p.metadata.name.as_deref() == Some(held.as_str()))
        .expect("allocated pod kept");
    assert_eq!(
        kept.metadata.labels.as_ref().unwrap()[keys::LABEL_POOL_REVISION],
        old_rev
    );
}

#[actix_rt::test]
async fn eviction_label_drains_idle_pods() {
    let s = api_server().await;
    let _k = kubelet(&s);
    let _m = Manager::start(&s, "m1", None).await;
    create_pool(&s, pool_json("evict", 2, 2, 0, 10)).await;
    eventually("filled", T, || async {
        status(&s, "evict").await.available == 2
    })
    .await;
    let victim = pool_pods(&s, "evict").await[0]
        .metadata
        .name
        .clone()
        .unwrap();
    let pods: Api<Pod> = Api::namespaced(s.client(), "default");
    let p = json!({"metadata": {"labels": {keys::LABEL_EVICT: "true"}}});
    pods.patch(&victim, &PatchParams::default(), &Patch::Merge(&p))
        .await
        .unwrap();
    eventually("evicted and replaced", T, || async {
        let names: Vec<String> = pool_pods(&s, "evict")
            .await
            .into_iter()
            .map(|p| p.metadata.name.unwrap())
            .collect();
        names.len() == 2 && !names.contains(&victim)
    })
    .await;
}

#[actix_rt::test]
async fn invalid_template_gets_a_false_ready_condition() {
    let s = api_server().await;
    let _m = Manager::start(&s, "m1", None).await;
    let mut body = pool_json("broken", 1, 1, 0, 2);
    body["spec"]["template"] = json!({"spec": {"containers": []}});
    create_pool(&s, body).await;
    eventually("condition written", T, || async {
        status(&s, "broken").await.conditions.iter().any(|c| {
            c.type_ == "Ready"
                && c.status == "False"
                && c.message.as_deref().unwrap_or("").contains("containers")
        })
    })
    .await;
    assert!(pool_pods(&s, "broken").await.is_empty());
}

#[actix_rt::test]
async fn converges_exactly_through_watch_drops_and_compaction() {
    let s = api_server().await;
    let _k = kubelet(&s);
    let _m = Manager::start(&s, "m1", None).await;
    create_pool(&s, pool_json("chaos", 40, 40, 0, 60)).await;
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(40)).await;
        s.drop_watches();
        s.compact();
    }
    eventually("converged", T, || async {
        let st = status(&s, "chaos").await;
        st.total == 40 && st.available == 40
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        pool_pods(&s, "chaos").await.len(),
        40,
        "no duplicate or orphaned pods"
    );
    assert_eq!(creates(&s), 40, "every create was needed");
}

#[actix_rt::test]
async fn only_the_leader_writes_and_a_follower_takes_over() {
    let s = api_server().await;
    let _k = kubelet(&s);
    let lease = |id: &str| LeaderConfig {
        lease_duration: Duration::from_secs(1),
        renew_deadline: Duration::from_millis(600),
        retry_period: Duration::from_millis(150),
        advertise_address: None,
        ..LeaderConfig::new("opensandbox-controller-leader", "default", id)
    };
    let a = Manager::start(&s, "a", Some(lease("a"))).await;
    let b = Manager::start(&s, "b", Some(lease("b"))).await;
    create_pool(&s, pool_json("ha", 3, 3, 0, 10)).await;
    eventually("filled", T, || async {
        status(&s, "ha").await.available == 3
    })
    .await;
    let (leader, follower) = if a.is_leader() { (a, b) } else { (b, a) };
    assert!(!follower.is_leader());
    let follower_writes = |s: &ApiServer, id: &str| {
        let fm = format!("manager-{id}");
        s.requests()
            .writes(|e| e.field_manager.as_deref() == Some(fm.as_str()))
    };
    assert_eq!(
        follower_writes(&s, &follower.identity),
        0,
        "the follower never writes"
    );
    let leader_id = leader.identity.clone();
    leader.kill();
    let killed_at = std::time::Instant::now();
    let pools: Api<Pool> = Api::namespaced(s.client(), "default");
    let p = json!({"spec": {"capacitySpec": {"bufferMin": 5, "bufferMax": 5, "poolMin": 0, "poolMax": 10}}});
    pools
        .patch("ha", &PatchParams::default(), &Patch::Merge(&p))
        .await
        .unwrap();
    eventually("follower took over", Duration::from_secs(5), || async {
        follower.is_leader()
    })
    .await;
    assert!(
        killed_at.elapsed() < Duration::from_secs(3),
        "takeover within the lease duration (+retry)"
    );
    eventually("new leader converged", T, || async {
        status(&s, "ha").await.available == 5
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        pool_pods(&s, "ha").await.len(),
        5,
        "no duplicate pods across the failover"
    );
    assert_eq!(creates(&s), 5);
    let _ = leader_id;
}

// ---- recycling ----

fn recycle_pool(
    name: &str,
    strategy: &str,
    size: i32,
    restart_config: Option<&str>,
) -> serde_json::Value {
    let mut p = pool_json(name, 0, 0, size, size);
    p["spec"]["recycleStrategy"] = json!({"type": strategy});
    if let Some(cfg) = restart_config {
        p["metadata"]["annotations"] = json!({keys::ANNOTATION_RESTART_CONFIG: cfg});
    }
    p
}

/// Pod name -> containerID of `main`.
async fn container_ids(s: &ApiServer, pool: &str) -> std::collections::BTreeMap<String, String> {
    pool_pods(s, pool)
        .await
        .into_iter()
        .map(|p| {
            let id = p
                .status
                .and_then(|st| st.container_statuses)
                .and_then(|cs| cs.into_iter().find(|c| c.name == "main"))
                .and_then(|c| c.container_id)
                .unwrap_or_default();
            (p.metadata.name.unwrap_or_default(), id)
        })
        .collect()
}

async fn create_sandbox(s: &ApiServer, name: &str, pool: &str, replicas: i32) -> BatchSandbox {
    let bs: Api<BatchSandbox> = Api::namespaced(s.client(), "default");
    let body = json!({"apiVersion": "sandbox.opensandbox.io/v1alpha1", "kind": "BatchSandbox",
        "metadata": {"name": name}, "spec": {"replicas": replicas, "poolRef": pool}});
    bs.create(
        &PostParams::default(),
        &serde_json::from_value(body).unwrap(),
    )
    .await
    .unwrap()
}

async fn ledger(s: &ApiServer, name: &str) -> Vec<String> {
    let bs: Api<BatchSandbox> = Api::namespaced(s.client(), "default");
    bs.get_opt(name)
        .await
        .unwrap()
        .and_then(|b| b.metadata.annotations)
        .and_then(|a| a.get(keys::ANNOTATION_ALLOC_STATUS).cloned())
        .map(|raw| {
            serde_json::from_str::<serde_json::Value>(&raw).unwrap()["pods"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p.as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

async fn delete_sandbox_and_wait(s: &ApiServer, name: &str) {
    let bs: Api<BatchSandbox> = Api::namespaced(s.client(), "default");
    bs.delete(name, &DeleteParams::default()).await.unwrap();
    eventually("sandbox gone", T, || async {
        bs.get_opt(name).await.unwrap().is_none()
    })
    .await;
}

/// Every `restart-record` value the pods of the namespace ever carried.
fn record_watch(
    s: &ApiServer,
) -> (
    std::sync::Arc<parking_lot::Mutex<Vec<serde_json::Value>>>,
    tokio::task::JoinHandle<()>,
) {
    use futures::StreamExt;
    use kube::runtime::{WatchStreamExt, watcher};
    let seen = std::sync::Arc::new(parking_lot::Mutex::new(Vec::new()));
    let api: Api<Pod> = Api::namespaced(s.client(), "default");
    let sink = seen.clone();
    let task = tokio::spawn(async move {
        let mut stream = std::pin::pin!(watcher(api, watcher::Config::default()).applied_objects());
        while let Some(Ok(pod)) = stream.next().await {
            if let Some(raw) = pod
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(keys::ANNOTATION_RESTART_RECORD))
            {
                sink.lock().push(serde_json::from_str(raw).unwrap());
            }
        }
    });
    (seen, task)
}

fn pod_writes(s: &ApiServer, verb: &str) -> usize {
    s.requests()
        .writes(|e| e.verb == verb && e.resource == "pods")
}

fn execs(s: &ApiServer) -> usize {
    s.requests()
        .entries()
        .iter()
        .filter(|e| e.resource == "pods/exec")
        .count()
}

#[actix_rt::test]
async fn restart_recycle_restarts_released_pods_in_place() {
    let s = api_server().await;
    let _k = kubelet(&s);
    let _m = Manager::start(&s, "m1", None).await;
    let (records, watch) = record_watch(&s);
    create_pool(&s, recycle_pool("rs", "Restart", 2, None)).await;
    eventually("filled", T, || async {
        status(&s, "rs").await.available == 2
    })
    .await;
    let created = creates(&s);
    let first = create_sandbox(&s, "holder", "rs", 2).await;
    eventually("both pods allocated", T, || async {
        ledger(&s, "holder").await.len() == 2
    })
    .await;
    let before = container_ids(&s, "rs").await;
    delete_sandbox_and_wait(&s, "holder").await;
    eventually(
        "the same pods idle again with new containers",
        T,
        || async {
            let now = container_ids(&s, "rs").await;
            let st = status(&s, "rs").await;
            now.len() == 2
                && now.keys().eq(before.keys())
                && now
                    .iter()
                    .all(|(pod, id)| before[pod] != *id && !id.is_empty())
                && st.available == 2
                && st.allocated == 0
        },
    )
    .await;
    let pods = pool_pods(&s, "rs").await;
    assert!(
        pods.iter().all(|p| p
            .metadata
            .annotations
            .as_ref()
            .is_none_or(|a| !a.contains_key(keys::ANNOTATION_RESTART_RECORD))),
        "the record is removed once the pod is back in the pool"
    );
    let uid = first.metadata.uid.clone().unwrap();
    {
        let seen = records.lock();
        assert!(!seen.is_empty(), "a restart-record was written");
        assert!(
            seen.iter().all(|r| r["id"] == uid.as_str()),
            "keyed by the sandbox uid: {seen:?}"
        );
        assert!(seen.iter().all(|r| r["containers"]["main"].is_string()));
    }
    assert_eq!(creates(&s), created, "no pod created");
    assert_eq!(pod_writes(&s, "delete"), 0, "no pod deleted");
    assert_eq!(execs(&s), 2, "one exec per pod");

    // A new sandbox with the same name takes the restarted pods; releasing them again
    // restarts them again (the old record does not count).
    let second = create_sandbox(&s, "holder", "rs", 2).await;
    eventually("reallocated", T, || async {
        ledger(&s, "holder").await.len() == 2
    })
    .await;
    let again = container_ids(&s, "rs").await;
    delete_sandbox_and_wait(&s, "holder").await;
    eventually("restarted a second time", T, || async {
        let now = container_ids(&s, "rs").await;
        now.len() == 2
            && now.keys().eq(again.keys())
            && now.iter().all(|(pod, id)| again[pod] != *id)
            && status(&s, "rs").await.available == 2
    })
    .await;
    let second_uid = second.metadata.uid.unwrap();
    assert!(
        records
            .lock()
            .iter()
            .any(|r| r["id"] == second_uid.as_str())
    );
    assert_eq!(execs(&s), 4);
    assert_eq!(creates(&s), created);
    assert_eq!(pod_writes(&s, "delete"), 0);
    watch.abort();
}

#[actix_rt::test]
async fn restart_recycle_gives_up_after_max_retries_and_replaces_the_pod() {
    let s = api_server().await;
    let k = kubelet(&s);
    let _m = Manager::start(&s, "m1", None).await;
    let (records, watch) = record_watch(&s);
    let cfg = r#"{"retryInterval":"300ms","maxRetries":2}"#;
    create_pool(&s, recycle_pool("rf", "Restart", 1, Some(cfg))).await;
    eventually("filled", T, || async {
        status(&s, "rf").await.available == 1
    })
    .await;
    create_sandbox(&s, "stuck", "rf", 1).await;
    eventually("allocated", T, || async {
        ledger(&s, "stuck").await.len() == 1
    })
    .await;
    let pod = ledger(&s, "stuck").await[0].clone();
    k.fail_exec("default", &pod, true);
    delete_sandbox_and_wait(&s, "stuck").await;
    // While recycling, the pod is never available.
    let pods: Api<Pod> = Api::namespaced(s.client(), "default");
    eventually("the pod is deleted and replaced", T, || async {
        let names = container_ids(&s, "rf").await;
        let st = status(&s, "rf").await;
        assert!(
            !(names.contains_key(&pod) && st.available > 0 && st.allocated == 0),
            "a pod that failed to restart must not be available"
        );
        !names.contains_key(&pod) && names.len() == 1 && st.available == 1
    })
    .await;
    assert!(
        pods.get_opt(&pod)
            .await
            .unwrap()
            .is_none_or(|p| p.metadata.deletion_timestamp.is_some())
    );
    assert_eq!(execs(&s), 2, "maxRetries attempts, then give up");
    let max_seen = records
        .lock()
        .iter()
        .filter_map(|r| r["retryCount"].as_u64())
        .max();
    assert_eq!(max_seen, Some(2));
    let events: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(s.client(), "default");
    eventually("a RestartFailed event explains the deletion", T, || async {
        events
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .iter()
            .any(|e| {
                e.reason.as_deref() == Some("RestartFailed")
                    && e.message
                        .as_deref()
                        .is_some_and(|m| m.contains("max retries (2) exceeded"))
            })
    })
    .await;
    watch.abort();
}

#[actix_rt::test]
async fn restart_config_that_is_not_json_uses_the_defaults() {
    let s = api_server().await;
    let _k = kubelet(&s);
    let _m = Manager::start(&s, "m1", None).await;
    let (records, watch) = record_watch(&s);
    create_pool(&s, recycle_pool("rd", "Restart", 1, Some("{not json"))).await;
    eventually("filled", T, || async {
        status(&s, "rd").await.available == 1
    })
    .await;
    create_sandbox(&s, "user", "rd", 1).await;
    eventually("allocated", T, || async {
        ledger(&s, "user").await.len() == 1
    })
    .await;
    let before = container_ids(&s, "rd").await;
    delete_sandbox_and_wait(&s, "user").await;
    eventually("restarted with the default command", T, || async {
        let now = container_ids(&s, "rd").await;
        now.keys().eq(before.keys())
            && now.iter().all(|(p, id)| before[p] != *id)
            && status(&s, "rd").await.available == 1
    })
    .await;
    assert!(records.lock().iter().all(|r| r["retryCount"] == 1));
    assert_eq!(execs(&s), 1);
    watch.abort();
}

#[actix_rt::test]
async fn noop_recycle_keeps_pods_as_they_are() {
    let s = api_server().await;
    let _k = kubelet(&s);
    let _m = Manager::start(&s, "m1", None).await;
    create_pool(&s, recycle_pool("rn", "Noop", 1, None)).await;
    eventually("filled", T, || async {
        status(&s, "rn").await.available == 1
    })
    .await;
    let created = creates(&s);
    create_sandbox(&s, "user", "rn", 1).await;
    eventually("allocated", T, || async {
        ledger(&s, "user").await.len() == 1
    })
    .await;
    let before = container_ids(&s, "rn").await;
    delete_sandbox_and_wait(&s, "user").await;
    eventually("idle again", T, || async {
        let st = status(&s, "rn").await;
        st.available == 1 && st.allocated == 0
    })
    .await;
    assert_eq!(
        container_ids(&s, "rn").await,
        before,
        "same pod, same container"
    );
    assert_eq!(creates(&s), created);
    assert_eq!(pod_writes(&s, "delete"), 0);
    assert_eq!(execs(&s), 0);
    let pods = pool_pods(&s, "rn").await;
    assert!(
        pods[0]
            .metadata
            .annotations
            .as_ref()
            .is_none_or(|a| !a.contains_key(keys::ANNOTATION_RESTART_RECORD))
    );
}

#[actix_rt::test]
async fn a_recycling_pod_is_never_allocated_until_restarted() {
    let s = api_server().await;
    let k = kubelet(&s);
    let _m = Manager::start(&s, "m1", None).await;
    let cfg = r#"{"retryInterval":"1h","maxRetries":3}"#;
    create_pool(&s, recycle_pool("rw", "Restart", 1, Some(cfg))).await;
    eventually("filled", T, || async {
        status(&s, "rw").await.available == 1
    })
    .await;
    create_sandbox(&s, "first", "rw", 1).await;
    eventually("allocated", T, || async {
        ledger(&s, "first").await.len() == 1
    })
    .await;
    let pod = ledger(&s, "first").await[0].clone();
    k.fail_exec("default", &pod, true);
    delete_sandbox_and_wait(&s, "first").await;
    create_sandbox(&s, "second", "rw", 1).await;
    let pods: Api<Pod> = Api::namespaced(s.client(), "default");
    eventually("first attempt recorded", T, || async {
        pods.get(&pod)
            .await
            .unwrap()
            .metadata
            .annotations
            .is_some_and(|a| {
                a.get(keys::ANNOTATION_RESTART_RECORD)
                    .is_some_and(|r| r.contains(r#""retryCount":1"#))
            })
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        ledger(&s, "second").await.is_empty(),
        "the dirty pod is not handed out"
    );
    let st = status(&s, "rw").await;
    assert_eq!((st.available, st.allocated, st.total), (0, 1, 1));
    assert_eq!(execs(&s), 1);
    // The runtime recovers and the retry interval is shortened: the next attempt restarts
    // the pod, which then goes to the waiting sandbox.
    k.fail_exec("default", &pod, false);
    let pools: Api<Pool> = Api::namespaced(s.client(), "default");
    let fast = json!({"metadata": {"annotations": {keys::ANNOTATION_RESTART_CONFIG: r#"{"retryInterval":"100ms","maxRetries":3}"#}}});
    pools
        .patch("rw", &PatchParams::default(), &Patch::Merge(&fast))
        .await
        .unwrap();
    eventually(
        "restarted and allocated to the waiting sandbox",
        T,
        || async { ledger(&s, "second").await == vec![pod.clone()] },
    )
    .await;
    assert_eq!(execs(&s), 2);
    assert_eq!(pod_writes(&s, "delete"), 0);
}
