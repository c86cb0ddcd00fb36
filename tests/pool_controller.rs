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
