//! Property test over random sequences of sandbox creation, scaling, deletion, pod death,
//! manager restarts, injected 409s and dropped watches: no pod is ever in two ledgers, every
//! ledger entry is a live pod of the right pool, deleted sandboxes release their pods, and the
//! pool converges.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use common::*;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use opensandbox::crd::ledger::Ledger;
use opensandbox::crd::{BatchSandbox, Pool, keys};
use opensandbox::standalone::apiserver::{ApiServer, FaultRule};
use proptest::prelude::*;
use serde_json::json;

#[derive(Clone, Debug)]
enum Op {
    Create(u8, u8),
    Scale(u8, u8),
    Delete(u8),
    KillPod(u8),
    RestartManager,
    Inject409,
    DropWatches,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0u8..4, 0u8..4).prop_map(|(i, r)| Op::Create(i, r)),
        2 => (0u8..4, 0u8..4).prop_map(|(i, r)| Op::Scale(i, r)),
        2 => (0u8..4).prop_map(Op::Delete),
        2 => any::<u8>().prop_map(Op::KillPod),
        1 => Just(Op::RestartManager),
        1 => Just(Op::Inject409),
        1 => Just(Op::DropWatches),
    ]
}

async fn ledgers(s: &ApiServer) -> BTreeMap<String, (Vec<String>, bool)> {
    let bs: Api<BatchSandbox> = Api::namespaced(s.client(), "default");
    bs.list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|b| {
            let l = Ledger::from_annotations(b.metadata.annotations.as_ref()).unwrap();
            (
                b.metadata.name.clone().unwrap(),
                (l.status.pods, b.metadata.deletion_timestamp.is_some()),
            )
        })
        .collect()
}

async fn check_no_double_allocation(s: &ApiServer) {
    let all = ledgers(s).await;
    let mut seen = HashSet::new();
    for (name, (pods, _)) in &all {
        for p in pods {
            assert!(
                seen.insert(p.clone()),
                "pod {p} is in two ledgers (second: {name}): {all:?}"
            );
        }
    }
}

async fn run(ops: Vec<Op>) {
    let s = api_server().await;
    let _k = kubelet(&s);
    let mut manager = Some(Manager::start(&s, "m0", None).await);
    let pools: Api<Pool> = Api::namespaced(s.client(), "default");
    pools
        .create(
            &PostParams::default(),
            &serde_json::from_value(pool_json("p", 3, 5, 0, 30)).unwrap(),
        )
        .await
        .unwrap();
    let bs: Api<BatchSandbox> = Api::namespaced(s.client(), "default");
    let pods: Api<Pod> = Api::namespaced(s.client(), "default");
    let mut desired: BTreeMap<String, i32> = BTreeMap::new();
    let mut restarts = 0;
    for op in ops {
        match op {
            Op::Create(i, r) => {
                let name = format!("s{i}");
                if desired.contains_key(&name) {
                    continue;
                }
                let body = json!({"apiVersion": "sandbox.opensandbox.io/v1alpha1", "kind": "BatchSandbox",
                    "metadata": {"name": name}, "spec": {"replicas": r, "poolRef": "p"}});
                if bs
                    .create(
                        &PostParams::default(),
                        &serde_json::from_value(body).unwrap(),
                    )
                    .await
                    .is_ok()
                {
                    desired.insert(name, r as i32);
                }
            }
            Op::Scale(i, r) => {
                let name = format!("s{i}");
                if let Some(want) = desired.get_mut(&name) {
                    let p = json!({"spec": {"replicas": r}});
                    if bs
                        .patch(&name, &PatchParams::default(), &Patch::Merge(&p))
                        .await
                        .is_ok()
                    {
                        *want = r as i32;
                    }
                }
            }
            Op::Delete(i) => {
                let name = format!("s{i}");
                if desired.remove(&name).is_some() {
                    let _ = bs.delete(&name, &DeleteParams::default()).await;
                }
            }
            Op::KillPod(n) => {
                let held: Vec<String> = ledgers(&s)
                    .await
                    .into_values()
                    .flat_map(|(p, _)| p)
                    .collect();
                if !held.is_empty() {
                    let _ = pods
                        .delete(&held[n as usize % held.len()], &DeleteParams::default())
                        .await;
                }
            }
            Op::RestartManager => {
                if let Some(m) = manager.take() {
                    m.kill();
                }
                restarts += 1;
                manager = Some(Manager::start(&s, &format!("m{restarts}"), None).await);
            }
            Op::Inject409 => s
                .faults()
                .add(FaultRule::error(Some("patch"), Some("batchsandboxes"), 1.0, 409).times(2)),
            Op::DropWatches => s.drop_watches(),
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
        check_no_double_allocation(&s).await;
    }
    s.faults().clear();
    let want = desired.clone();
    eventually("sandboxes converge", Duration::from_secs(30), || {
        let s = &s;
        let want = &want;
        async move {
            let l = ledgers(s).await;
            let names: HashSet<&String> = l.keys().collect();
            if names.len() != want.len() || !want.keys().all(|k| names.contains(k)) {
                return false;
            }
            want.iter()
                .all(|(n, r)| l.get(n).is_some_and(|(p, _)| p.len() == *r as usize))
        }
    })
    .await;
    check_no_double_allocation(&s).await;
    // Every ledger entry is a live pod of the right pool.
    let live: BTreeMap<String, Pod> = pods
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|p| (p.metadata.name.clone().unwrap(), p))
        .collect();
    for (name, (held, _)) in ledgers(&s).await {
        for p in held {
            let pod = live
                .get(&p)
                .unwrap_or_else(|| panic!("{name} holds missing pod {p}"));
            assert!(
                pod.metadata.deletion_timestamp.is_none(),
                "{name} holds terminating pod {p}"
            );
            assert_eq!(
                pod.metadata.labels.as_ref().unwrap()[keys::LABEL_POOL_NAME],
                "p"
            );
        }
    }
    let total: i32 = want.values().sum();
    eventually("pool converges", Duration::from_secs(30), || {
        let pools = &pools;
        async move {
            pools
                .get("p")
                .await
                .unwrap()
                .status
                .is_some_and(|st| st.allocated == total && st.available >= 3 && st.available <= 5)
        }
    })
    .await;
    drop(manager);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, max_shrink_iters: 0, ..ProptestConfig::default() })]

    #[test]
    fn allocation_invariants_hold(ops in proptest::collection::vec(op(), 4..14)) {
        actix_rt::System::new().block_on(run(ops));
    }
}
