//! Pooled creates through the SDK API inside a manager: the pool's actor hands out idle
//! pods in the BatchSandbox create itself (one write on the hot path), never the same pod
//! twice, and falls back to allocation by the pool's turns when no pod is idle.

mod common;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use common::{api_server, eventually, free_addr, http_json, kubelet, pool_json};
use kube::Api;
use kube::api::{ListParams, PostParams};
use opensandbox::crd::ledger::Ledger;
use opensandbox::crd::{BatchSandbox, Pool};
use opensandbox::http::lifecycle::ServerConfig;
use opensandbox::manager::{Manager, ManagerOptions};
use opensandbox::standalone::apiserver::ApiServer;
use serde_json::{Value, json};

const AGENT: &str = "opensandbox-manager/solo";
const T: Duration = Duration::from_secs(20);

async fn manager(s: &ApiServer) -> (Manager, SocketAddr) {
    let addr = free_addr();
    let opts = ManagerOptions {
        identity: "solo".into(),
        api: Some((
            addr,
            ServerConfig {
                sandbox_create_timeout_seconds: 15,
                ..ServerConfig::default()
            },
        )),
        ..ManagerOptions::default()
    };
    let m = Manager::start(s.client_with_user_agent(AGENT), &opts)
        .await
        .unwrap();
    (m, addr)
}

async fn create(addr: SocketAddr, pool: &str) -> (u16, Value) {
    let body = json!({"extensions": {"poolRef": pool}, "timeout": 600,
                      "entrypoint": ["tail", "-f", "/dev/null"], "image": {"uri": "busybox:1.36"},
                      "resourceLimits": {"cpu": "100m", "memory": "64Mi"}});
    let (status, _, answer) = http_json(addr, "POST", "/v1/sandboxes", &[], Some(body)).await;
    (status, answer)
}

async fn start_pool(s: &ApiServer, m: &Manager, pool: Value, available: i32) {
    let name = pool["metadata"]["name"].as_str().unwrap().to_string();
    let pool: Pool = serde_json::from_value(pool).unwrap();
    Api::<Pool>::namespaced(s.client(), "default")
        .create(&PostParams::default(), &pool)
        .await
        .unwrap();
    let key = ("default".to_string(), name);
    eventually("pool warm", T, || async {
        m.cache
            .pool(&key)
            .and_then(|p| p.status.clone())
            .is_some_and(|st| st.available >= available)
    })
    .await;
}

/// Pods each sandbox holds, and whether any pod is held twice.
async fn ledgers(s: &ApiServer) -> Vec<Vec<String>> {
    Api::<BatchSandbox>::namespaced(s.client(), "default")
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|bs| {
            Ledger::from_annotations(bs.metadata.annotations.as_ref())
                .unwrap()
                .status
                .pods
        })
        .collect()
}

fn sandbox_writes(s: &ApiServer) -> (usize, usize) {
    let entries = s.requests().entries();
    let mine = |verb: &str| {
        entries
            .iter()
            .filter(|e| e.user_agent == AGENT && e.resource == "batchsandboxes" && e.verb == verb)
            .count()
    };
    (mine("create"), mine("patch"))
}

#[actix_rt::test]
async fn idle_pods_are_handed_out_in_the_create_itself() {
    let s = api_server().await;
    let _k = kubelet(&s);
    let (m, addr) = manager(&s).await;
    start_pool(&s, &m, pool_json("warm", 8, 8, 0, 50), 8).await;
    s.requests().clear();

    let mut ids = Vec::new();
    for _ in 0..5 {
        let (code, body) = create(addr, "warm").await;
        assert_eq!(code, 202, "{body}");
        assert_eq!(body["status"]["state"], "Running");
        ids.push(body["id"].as_str().unwrap().to_string());
    }
    let (creates, patches) = sandbox_writes(&s);
    assert_eq!(creates, 5);
    assert_eq!(
        patches, 0,
        "no ledger patch: each create carried its allocation"
    );
    let held = ledgers(&s).await;
    assert_eq!(held.len(), 5);
    assert!(held.iter().all(|l| l.len() == 1));
    let distinct: HashSet<&String> = held.iter().flatten().collect();
    assert_eq!(distinct.len(), 5, "no pod handed out twice: {held:?}");
    // The buffer refills behind the reservations.
    let key = ("default".to_string(), "warm".to_string());
    eventually("buffer refilled", T, || async {
        m.cache
            .pool(&key)
            .and_then(|p| p.status.clone())
            .is_some_and(|st| st.available == 8 && st.allocated == 5)
    })
    .await;
    m.shutdown().await;
}

#[actix_rt::test]
async fn concurrent_creates_beyond_the_idle_pods_never_share_a_pod() {
    let s = api_server().await;
    let _k = kubelet(&s);
    let (m, addr) = manager(&s).await;
    // Four idle pods for forty concurrent creates: most wait for pods the pool creates.
    start_pool(&s, &m, pool_json("small", 4, 4, 0, 60), 4).await;
    let calls: Vec<_> = (0..40)
        .map(|_| tokio::spawn(create(addr, "small")))
        .collect();
    for c in calls {
        let (code, body) = c.await.unwrap();
        assert_eq!(code, 202, "{body}");
    }
    let held = ledgers(&s).await;
    assert_eq!(held.len(), 40);
    assert!(held.iter().all(|l| l.len() == 1), "{held:?}");
    let distinct: HashSet<&String> = held.iter().flatten().collect();
    assert_eq!(distinct.len(), 40, "no pod handed out twice");
    let key = ("default".to_string(), "small".to_string());
    eventually("pool accounts for every sandbox", T, || async {
        m.cache
            .pool(&key)
            .and_then(|p| p.status.clone())
            .is_some_and(|st| st.allocated == 40 && st.available == 4)
    })
    .await;
    m.shutdown().await;
}
