//! Kubernetes API semantics of the embedded API server, checked with `kube::Client`.

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use http::Request;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::runtime::watcher;
use opensandbox::crd::{BatchSandbox, Pool};
use opensandbox::standalone::apiserver::{ApiServer, FaultRule};
use serde_json::{Value, json};

async fn server() -> ApiServer {
    let s = ApiServer::new();
    let crds: Vec<Value> = opensandbox::crd::all_crds()
        .into_iter()
        .map(|c| serde_json::to_value(c).unwrap())
        .collect();
    s.install_crds(&crds).await.unwrap();
    s
}

fn pod(name: &str, labels: Value) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": {"containers": [{"name": "main", "image": "busybox:1"}]}
    }))
    .unwrap()
}

fn pool(name: &str, buffer_min: i32, buffer_max: i32) -> Pool {
    serde_json::from_value(json!({
        "apiVersion": "sandbox.opensandbox.io/v1alpha1", "kind": "Pool",
        "metadata": {"name": name},
        "spec": {"capacitySpec": {"bufferMin": buffer_min, "bufferMax": buffer_max, "poolMin": 0, "poolMax": 10},
                 "template": {"spec": {"containers": [{"name": "c", "image": "busybox"}]}}}
    }))
    .unwrap()
}

async fn raw(
    s: &ApiServer,
    method: &str,
    path: &str,
    ct: &str,
    body: impl Into<Bytes>,
) -> (u16, Value) {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", ct)
        .body(body.into())
        .unwrap();
    let resp = s.request(req).await;
    let code = resp.status().as_u16();
    let bytes = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap()
        .to_bytes();
    (code, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

fn api_error(e: kube::Error) -> (u16, String) {
    match e {
        kube::Error::Api(s) => (s.code, s.reason.clone()),
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test]
async fn create_get_list_and_already_exists() {
    let s = server().await;
    let pods: Api<Pod> = Api::namespaced(s.client(), "default");
    let created = pods
        .create(&PostParams::default(), &pod("a", json!({"app": "x"})))
        .await
        .unwrap();
    assert!(created.metadata.uid.is_some());
    assert_eq!(created.metadata.generation, Some(1));
    assert_eq!(created.status.unwrap().phase.as_deref(), Some("Pending"));
    let err = pods
        .create(&PostParams::default(), &pod("a", json!({})))
        .await
        .unwrap_err();
    assert_eq!(api_error(err), (409, "AlreadyExists".into()));
    pods.create(&PostParams::default(), &pod("b", json!({"app": "y"})))
        .await
        .unwrap();
    let l = pods
        .list(&ListParams::default().labels("app=x"))
        .await
        .unwrap();
    assert_eq!(l.items.len(), 1);
    let l = pods
        .list(&ListParams::default().labels("app in (x,y)"))
        .await
        .unwrap();
    assert_eq!(l.items.len(), 2);
    let l = pods
        .list(&ListParams::default().labels("!app"))
        .await
        .unwrap();
    assert_eq!(l.items.len(), 0);
    let l = pods
        .list(&ListParams::default().fields("metadata.name=b"))
        .await
        .unwrap();
    assert_eq!(l.items.len(), 1);
    let l = pods
        .list(&ListParams::default().fields("status.phase=Pending"))
        .await
        .unwrap();
    assert_eq!(l.items.len(), 2);
    assert!(l.metadata.resource_version.unwrap().parse::<u64>().unwrap() > 0);
    let err = pods.get("nope").await.unwrap_err();
    assert_eq!(api_error(err), (404, "NotFound".into()));
}

#[tokio::test]
async fn paging_with_limit_and_continue() {
    let s = server().await;
    let cms: Api<ConfigMap> = Api::namespaced(s.client(), "default");
    for i in 0..7 {
        let cm: ConfigMap =
            serde_json::from_value(json!({"metadata": {"name": format!("cm-{i}")}})).unwrap();
        cms.create(&PostParams::default(), &cm).await.unwrap();
    }
    let mut names = Vec::new();
    let mut lp = ListParams::default().limit(3);
    loop {
        let page = cms.list(&lp).await.unwrap();
        names.extend(page.items.iter().map(|c| c.metadata.name.clone().unwrap()));
        match page.metadata.continue_ {
            Some(c) if !c.is_empty() => lp = lp.continue_token(&c),
            _ => break,
        }
    }
    assert_eq!(names.len(), 7);
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
}

#[tokio::test]
async fn stale_resource_version_is_a_conflict() {
    let s = server().await;
    let pools: Api<Pool> = Api::namespaced(s.client(), "default");
    let p = pools
        .create(&PostParams::default(), &pool("p", 1, 2))
        .await
        .unwrap();
    let mut first = p.clone();
    first.spec.capacity_spec.buffer_max = 3;
    pools
        .replace("p", &PostParams::default(), &first)
        .await
        .unwrap();
    let mut stale = p;
    stale.spec.capacity_spec.buffer_max = 4;
    let err = pools
        .replace("p", &PostParams::default(), &stale)
        .await
        .unwrap_err();
    assert_eq!(api_error(err), (409, "Conflict".into()));
    // A patch carrying an old resourceVersion is a precondition too.
    let patch =
        json!({"metadata": {"resourceVersion": "1"}, "spec": {"capacitySpec": {"bufferMax": 5}}});
    let err = pools
        .patch("p", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap_err();
    assert_eq!(api_error(err), (409, "Conflict".into()));
    assert_eq!(
        pools.get("p").await.unwrap().spec.capacity_spec.buffer_max,
        3
    );
}

#[tokio::test]
async fn status_writes_do_not_bump_generation() {
    let s = server().await;
    let pools: Api<Pool> = Api::namespaced(s.client(), "default");
    pools
        .create(&PostParams::default(), &pool("p", 1, 2))
        .await
        .unwrap();
    let st = json!({"status": {"total": 3, "allocated": 1, "available": 2, "revision": "abc"}, "spec": {"capacitySpec": {"bufferMax": 9}}});
    let after = pools
        .patch_status("p", &PatchParams::default(), &Patch::Merge(&st))
        .await
        .unwrap();
    assert_eq!(after.metadata.generation, Some(1));
    assert_eq!(after.status.as_ref().unwrap().total, 3);
    // The status subresource ignores spec changes.
    assert_eq!(after.spec.capacity_spec.buffer_max, 2);
    // The main resource ignores status changes and bumps generation on spec changes.
    let main = json!({"status": {"total": 99}, "spec": {"capacitySpec": {"bufferMax": 5}}});
    let after = pools
        .patch("p", &PatchParams::default(), &Patch::Merge(&main))
        .await
        .unwrap();
    assert_eq!(after.metadata.generation, Some(2));
    assert_eq!(after.status.unwrap().total, 3);
    // Metadata-only changes keep the generation.
    let labels = json!({"metadata": {"labels": {"a": "b"}}});
    let after = pools
        .patch("p", &PatchParams::default(), &Patch::Merge(&labels))
        .await
        .unwrap();
    assert_eq!(after.metadata.generation, Some(2));
}

#[tokio::test]
async fn finalizers_block_deletion_until_removed() {
    let s = server().await;
    let cms: Api<ConfigMap> = Api::namespaced(s.client(), "default");
    let cm: ConfigMap = serde_json::from_value(
        json!({"metadata": {"name": "f", "finalizers": ["example.com/keep"]}}),
    )
    .unwrap();
    cms.create(&PostParams::default(), &cm).await.unwrap();
    let res = cms.delete("f", &DeleteParams::default()).await.unwrap();
    assert!(
        res.is_left(),
        "object must still exist while finalizers remain"
    );
    let still = cms.get("f").await.unwrap();
    assert!(still.metadata.deletion_timestamp.is_some());
    // New finalizers cannot be added while deleting.
    let add = json!({"metadata": {"finalizers": ["example.com/keep", "example.com/more"]}});
    let err = cms
        .patch("f", &PatchParams::default(), &Patch::Merge(&add))
        .await
        .unwrap_err();
    assert_eq!(api_error(err).0, 422);
    let clear = json!({"metadata": {"finalizers": null}});
    cms.patch("f", &PatchParams::default(), &Patch::Merge(&clear))
        .await
        .unwrap();
    assert_eq!(api_error(cms.get("f").await.unwrap_err()).0, 404);
}

async fn eventually<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..200 {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for: {what}");
}

fn owned_pod(name: &str, owner: &BatchSandbox, block: bool) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "ownerReferences": [{
            "apiVersion": "sandbox.opensandbox.io/v1alpha1", "kind": "BatchSandbox",
            "name": owner.metadata.name, "uid": owner.metadata.uid, "controller": true,
            "blockOwnerDeletion": block}]},
        "spec": {"containers": [{"name": "main", "image": "busybox:1"}]}
    }))
    .unwrap()
}

fn batch(name: &str) -> BatchSandbox {
    serde_json::from_value(json!({
        "apiVersion": "sandbox.opensandbox.io/v1alpha1", "kind": "BatchSandbox",
        "metadata": {"name": name}, "spec": {"replicas": 2}
    }))
    .unwrap()
}

#[tokio::test]
async fn background_garbage_collection_of_owned_pods() {
    let s = server().await;
    let bs: Api<BatchSandbox> = Api::namespaced(s.client(), "default");
    let pods: Api<Pod> = Api::namespaced(s.client(), "default");
    let owner = bs
        .create(&PostParams::default(), &batch("b"))
        .await
        .unwrap();
    for i in 0..3 {
        pods.create(
            &PostParams::default(),
            &owned_pod(&format!("b-{i}"), &owner, false),
        )
        .await
        .unwrap();
    }
    pods.create(&PostParams::default(), &pod("unrelated", json!({})))
        .await
        .unwrap();
    bs.delete("b", &DeleteParams::background()).await.unwrap();
    eventually("owned pods collected", || async {
        pods.list(&ListParams::default()).await.unwrap().items.len() == 1
    })
    .await;
    assert!(pods.get("unrelated").await.is_ok());
}

#[tokio::test]
async fn foreground_deletion_waits_for_blocking_dependents() {
    let s = server().await;
    let bs: Api<BatchSandbox> = Api::namespaced(s.client(), "default");
    let pods: Api<Pod> = Api::namespaced(s.client(), "default");
    let owner = bs
        .create(&PostParams::default(), &batch("fg"))
        .await
        .unwrap();
    let mut p = owned_pod("fg-0", &owner, true);
    p.metadata.finalizers = Some(vec!["example.com/hold".into()]);
    pods.create(&PostParams::default(), &p).await.unwrap();
    bs.delete("fg", &DeleteParams::foreground()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let o = bs.get("fg").await.unwrap();
    assert!(
        o.metadata
            .finalizers
            .unwrap()
            .contains(&"foregroundDeletion".to_string())
    );
    assert!(
        pods.get("fg-0")
            .await
            .unwrap()
            .metadata
            .deletion_timestamp
            .is_some()
    );
    let clear = json!({"metadata": {"finalizers": null}});
    pods.patch("fg-0", &PatchParams::default(), &Patch::Merge(&clear))
        .await
        .unwrap();
    eventually("owner deleted after its dependent", || async {
        bs.get_opt("fg").await.unwrap().is_none()
    })
    .await;
}

#[tokio::test]
async fn orphan_deletion_keeps_dependents() {
    let s = server().await;
    let bs: Api<BatchSandbox> = Api::namespaced(s.client(), "default");
    let pods: Api<Pod> = Api::namespaced(s.client(), "default");
    let owner = bs
        .create(&PostParams::default(), &batch("or"))
        .await
        .unwrap();
    pods.create(&PostParams::default(), &owned_pod("or-0", &owner, false))
        .await
        .unwrap();
    bs.delete("or", &DeleteParams::orphan()).await.unwrap();
    eventually("owner gone", || async {
        bs.get_opt("or").await.unwrap().is_none()
    })
    .await;
    let p = pods.get("or-0").await.unwrap();
    assert!(p.metadata.owner_references.unwrap_or_default().is_empty());
}

#[tokio::test]
async fn watch_resumes_after_a_dropped_stream() {
    let s = server().await;
    let cms: Api<ConfigMap> = Api::namespaced(s.client(), "default");
    let mut stream = watcher(cms.clone(), watcher::Config::default()).boxed();
    let mut seen = std::collections::BTreeSet::new();
    let cm = |n: &str| -> ConfigMap {
        serde_json::from_value(json!({"metadata": {"name": n}})).unwrap()
    };
    cms.create(&PostParams::default(), &cm("w1")).await.unwrap();
    let mut dropped = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while seen.len() < 3 {
        let ev = tokio::time::timeout_at(deadline, stream.next())
            .await
            .expect("watch stalled");
        match ev {
            Some(Ok(watcher::Event::Apply(o))) | Some(Ok(watcher::Event::InitApply(o))) => {
                seen.insert(o.metadata.name.unwrap());
            }
            _ => {}
        }
        if seen.contains("w1") && !dropped {
            dropped = true;
            s.drop_watches();
            cms.create(&PostParams::default(), &cm("w2")).await.unwrap();
            cms.create(&PostParams::default(), &cm("w3")).await.unwrap();
        }
    }
    // The resumed watch replayed from its resourceVersion: the list happened only once.
    let lists = s
        .requests()
        .entries()
        .iter()
        .filter(|e| e.verb == "list" && e.resource == "configmaps")
        .count();
    assert_eq!(lists, 1);
}

#[tokio::test]
async fn expired_resource_version_is_an_in_stream_410_then_relist() {
    let s = server().await;
    let cms: Api<ConfigMap> = Api::namespaced(s.client(), "default");
    let cm = |n: &str| -> ConfigMap {
        serde_json::from_value(json!({"metadata": {"name": n}})).unwrap()
    };
    cms.create(&PostParams::default(), &cm("x1")).await.unwrap();
    s.compact();
    // Raw: HTTP 200 with one ERROR event carrying a 410 Status.
    let mut raw_stream = cms
        .watch(&WatchParams::default(), "1")
        .await
        .unwrap()
        .boxed();
    match raw_stream.next().await {
        Some(Ok(WatchEvent::Error(e))) => assert_eq!((e.code, e.reason.as_str()), (410, "Expired")),
        other => panic!("expected an ERROR 410 event, got {other:?}"),
    }
    // The kube watcher relists after the 410 and sees objects deleted in the gap as gone.
    let mut stream = watcher(cms.clone(), watcher::Config::default()).boxed();
    let mut inits = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let ev = tokio::time::timeout_at(deadline, stream.next())
            .await
            .expect("no relist");
        match ev {
            Some(Ok(watcher::Event::InitDone)) => {
                inits += 1;
                if inits == 1 {
                    cms.delete("x1", &DeleteParams::default()).await.unwrap();
                    s.compact();
                    s.drop_watches();
                } else {
                    break;
                }
            }
            Some(Ok(watcher::Event::InitApply(o))) if inits == 1 => {
                panic!("{:?} should be gone after the relist", o.metadata.name)
            }
            _ => {}
        }
    }
    assert_eq!(inits, 2);
}

#[tokio::test]
async fn send_initial_events_ends_with_a_bookmark() {
    let s = server().await;
    let cms: Api<ConfigMap> = Api::namespaced(s.client(), "default");
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "i1"}})).unwrap();
    cms.create(&PostParams::default(), &cm).await.unwrap();
    let mut stream = watcher(cms.clone(), watcher::Config::default().streaming_lists()).boxed();
    let mut got = Vec::new();
    while let Some(Ok(ev)) = tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .unwrap()
    {
        match ev {
            watcher::Event::InitApply(o) => got.push(o.metadata.name.unwrap()),
            watcher::Event::InitDone => break,
            _ => {}
        }
    }
    assert_eq!(got, vec!["i1".to_string()]);
}

#[tokio::test]
async fn selector_changes_produce_added_and_deleted() {
    let s = server().await;
    let cms: Api<ConfigMap> = Api::namespaced(s.client(), "default");
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "s1", "labels": {"sel": "no"}}}))
            .unwrap();
    let c = cms.create(&PostParams::default(), &cm).await.unwrap();
    let rv = c.metadata.resource_version.unwrap();
    let mut stream = cms
        .watch(&WatchParams::default().labels("sel=yes"), &rv)
        .await
        .unwrap()
        .boxed();
    let set = |v: &str| json!({"metadata": {"labels": {"sel": v}}});
    cms.patch("s1", &PatchParams::default(), &Patch::Merge(&set("yes")))
        .await
        .unwrap();
    cms.patch("s1", &PatchParams::default(), &Patch::Merge(&set("no")))
        .await
        .unwrap();
    let first = stream.next().await.unwrap().unwrap();
    assert!(matches!(first, WatchEvent::Added(_)), "got {first:?}");
    let second = stream.next().await.unwrap().unwrap();
    assert!(matches!(second, WatchEvent::Deleted(_)), "got {second:?}");
}

#[tokio::test]
async fn server_side_apply_conflicts_without_force() {
    let s = server().await;
    let cms: Api<ConfigMap> = Api::namespaced(s.client(), "default");
    let applied = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa"}, "data": {"a": "1"}});
    let created = cms
        .patch("ssa", &PatchParams::apply("alice"), &Patch::Apply(&applied))
        .await
        .unwrap();
    assert!(created.metadata.managed_fields.is_some());
    let other = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa"}, "data": {"a": "2"}});
    let err = cms
        .patch("ssa", &PatchParams::apply("bob"), &Patch::Apply(&other))
        .await
        .unwrap_err();
    match err {
        kube::Error::Api(st) => {
            assert_eq!(st.code, 409);
            assert!(
                st.message.contains("conflict with \"alice\""),
                "{}",
                st.message
            );
        }
        e => panic!("{e:?}"),
    }
    assert_eq!(cms.get("ssa").await.unwrap().data.unwrap()["a"], "1");
    let forced = cms
        .patch(
            "ssa",
            &PatchParams::apply("bob").force(),
            &Patch::Apply(&other),
        )
        .await
        .unwrap();
    assert_eq!(forced.data.unwrap()["a"], "2");
}

#[tokio::test]
async fn merge_json_and_strategic_patches() {
    let s = server().await;
    let pods: Api<Pod> = Api::namespaced(s.client(), "default");
    pods.create(&PostParams::default(), &pod("pp", json!({"a": "1"})))
        .await
        .unwrap();
    let jp: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": "/metadata/labels/a", "value": "1"},
        {"op": "add", "path": "/metadata/labels/b", "value": "2"}
    ]))
    .unwrap();
    let p = pods
        .patch("pp", &PatchParams::default(), &Patch::Json::<()>(jp))
        .await
        .unwrap();
    assert_eq!(p.metadata.labels.unwrap()["b"], "2");
    let bad: json_patch::Patch = serde_json::from_value(
        json!([{"op": "test", "path": "/metadata/labels/a", "value": "nope"}]),
    )
    .unwrap();
    let err = pods
        .patch("pp", &PatchParams::default(), &Patch::Json::<()>(bad))
        .await
        .unwrap_err();
    assert_eq!(api_error(err).0, 422);
    let smp = json!({"spec": {"containers": [{"name": "side", "image": "busybox:2"}]}});
    let p = pods
        .patch("pp", &PatchParams::default(), &Patch::Strategic(&smp))
        .await
        .unwrap();
    assert_eq!(
        p.spec.unwrap().containers.len(),
        2,
        "containers merge by name"
    );
    let pools: Api<Pool> = Api::namespaced(s.client(), "default");
    pools
        .create(&PostParams::default(), &pool("sp", 1, 1))
        .await
        .unwrap();
    let err = pools
        .patch(
            "sp",
            &PatchParams::default(),
            &Patch::Strategic(&json!({"spec": {}})),
        )
        .await
        .unwrap_err();
    assert_eq!(api_error(err).0, 415);
}

#[tokio::test]
async fn leases_and_events_are_served() {
    let s = server().await;
    let leases: Api<Lease> = Api::namespaced(s.client(), "default");
    let l: Lease = serde_json::from_value(json!({"metadata": {"name": "leader"}, "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15}})).unwrap();
    leases.create(&PostParams::default(), &l).await.unwrap();
    let ev = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e1"},
        "eventTime": "2026-01-01T00:00:00.000000Z", "reportingController": "x", "reportingInstance": "y",
        "action": "Create", "reason": "Test", "type": "Normal", "note": "hello",
        "regarding": {"kind": "Pool", "name": "p", "namespace": "default"}});
    let (code, _) = raw(
        &s,
        "POST",
        "/apis/events.k8s.io/v1/namespaces/default/events",
        "application/json",
        serde_json::to_vec(&ev).unwrap(),
    )
    .await;
    assert_eq!(code, 201);
}

#[tokio::test]
async fn bad_input_gets_status_errors_and_changes_nothing() {
    let s = server().await;
    let before = s.core().store.current_rv();
    let (code, st) = raw(
        &s,
        "POST",
        "/api/v1/namespaces/default/pods",
        "application/json",
        "{not json",
    )
    .await;
    assert_eq!(
        (code, st["kind"].as_str(), st["reason"].as_str()),
        (400, Some("Status"), Some("BadRequest"))
    );
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "wrong"}});
    let (code, st) = raw(
        &s,
        "POST",
        "/api/v1/namespaces/default/pods",
        "application/json",
        serde_json::to_vec(&cm).unwrap(),
    )
    .await;
    assert_eq!(code, 400, "{st}");
    let (code, st) = raw(&s, "GET", "/apis/nope.example.com/v1/things", "", "").await;
    assert_eq!((code, st["reason"].as_str()), (404, Some("NotFound")));
    let big = vec![b' '; 3 * 1024 * 1024 + 10];
    let (code, st) = raw(
        &s,
        "POST",
        "/api/v1/namespaces/default/configmaps",
        "application/json",
        big,
    )
    .await;
    assert_eq!(
        (code, st["reason"].as_str()),
        (413, Some("RequestEntityTooLarge"))
    );
    let (code, st) = raw(
        &s,
        "GET",
        "/api/v1/namespaces/default/pods?labelSelector=a%20b%20c",
        "",
        "",
    )
    .await;
    assert_eq!((code, st["reason"].as_str()), (400, Some("BadRequest")));
    let (code, _) = raw(
        &s,
        "GET",
        "/api/v1/namespaces/default/pods?fieldSelector=spec.bogus%3Dx",
        "",
        "",
    )
    .await;
    assert_eq!(code, 400);
    let (code, _) = raw(
        &s,
        "POST",
        "/api/v1/namespaces/missing/configmaps",
        "application/json",
        serde_json::to_vec(&json!({"metadata": {"name": "x"}})).unwrap(),
    )
    .await;
    assert_eq!(code, 404);
    assert_eq!(
        s.core().store.current_rv(),
        before,
        "rejected requests must not write"
    );
}

#[tokio::test]
async fn injected_faults_and_request_log() {
    let s = server().await;
    let cms: Api<ConfigMap> = Api::namespaced(s.client(), "default");
    s.faults()
        .add(FaultRule::error(Some("create"), Some("configmaps"), 1.0, 503).times(1));
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "f1"}})).unwrap();
    let err = cms.create(&PostParams::default(), &cm).await.unwrap_err();
    assert_eq!(api_error(err).0, 503);
    cms.create(&PostParams::default(), &cm).await.unwrap();
    s.faults().add(FaultRule::latency(
        Some("get"),
        None,
        Duration::from_millis(50),
    ));
    let t = std::time::Instant::now();
    cms.get("f1").await.unwrap();
    assert!(t.elapsed() >= Duration::from_millis(50));
    let counts = s.requests().counts();
    assert_eq!(counts[&("create".to_string(), "configmaps".to_string())], 2);
    assert_eq!(s.requests().writes(|e| e.resource == "configmaps"), 1);
}
