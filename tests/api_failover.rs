//! Two manager replicas behind one Service: every replica answers SDK calls, only the
//! leader writes (followers relay to the address the leader publishes on its Lease), and
//! calls keep working through a leader change.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{api_server, eventually, free_addr, http_json, kubelet, pool_json};
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use kube::api::PostParams;
use opensandbox::crd::Pool;
use opensandbox::http::lifecycle::ServerConfig;
use opensandbox::manager::{LeaderOptions, Manager, ManagerOptions};
use opensandbox::standalone::apiserver::ApiServer;
use serde_json::{Value, json};

const KEY: &str = "failover-key";
const LEASE: &str = "opensandbox-controller-leader";
const T: Duration = Duration::from_secs(20);

struct Replica {
    identity: String,
    addr: SocketAddr,
    manager: Option<Manager>,
}

async fn replica(s: &ApiServer, identity: &str) -> Replica {
    let addr = free_addr();
    let client = s.client_with_user_agent(&format!("opensandbox-manager/{identity}"));
    let opts = ManagerOptions {
        identity: identity.to_string(),
        leader: Some(LeaderOptions {
            lease_name: LEASE.into(),
            namespace: "default".into(),
            identity: identity.into(),
            lease_duration: Duration::from_secs(1),
            renew_deadline: Duration::from_millis(600),
            retry_period: Duration::from_millis(150),
            advertise_address: Some(format!("http://{addr}")),
        }),
        api: Some((
            addr,
            ServerConfig {
                api_key: Some(KEY.into()),
                sandbox_create_timeout_seconds: 15,
                ..ServerConfig::default()
            },
        )),
        ..ManagerOptions::default()
    };
    let manager = Manager::start(client, &opts).await.unwrap();
    Replica {
        identity: identity.to_string(),
        addr,
        manager: Some(manager),
    }
}

async fn holder(s: &ApiServer) -> Option<String> {
    let api: Api<Lease> = Api::namespaced(s.client(), "default");
    api.get_opt(LEASE)
        .await
        .ok()
        .flatten()?
        .spec?
        .holder_identity
        .filter(|h| !h.is_empty())
}

/// One call with the API key (unless `extra` brings its own).
async fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<Value>,
    extra: &[(&str, &str)],
) -> (u16, http::HeaderMap, Value) {
    let mut headers = extra.to_vec();
    if !extra.iter().any(|(k, _)| *k == "open-sandbox-api-key") {
        headers.push(("open-sandbox-api-key", KEY));
    }
    http_json(addr, method, path, &headers, body).await
}

/// Kubernetes writes (anything but reads) a replica made to one resource.
fn writes_by(s: &ApiServer, identity: &str, resource: &str) -> usize {
    let agent = format!("opensandbox-manager/{identity}");
    s.requests()
        .entries()
        .iter()
        .filter(|e| e.user_agent == agent && e.resource == resource && e.is_write())
        .count()
}

#[actix_rt::test]
async fn followers_relay_sdk_calls_to_the_leader_and_survive_a_leader_change() {
    let s = api_server().await;
    let _k = kubelet(&s);
    let mut a = replica(&s, "replica-a").await;
    let mut b = replica(&s, "replica-b").await;
    let pools: Api<Pool> = Api::namespaced(s.client(), "default");
    let pool: Pool = serde_json::from_value(pool_json("warm", 2, 4, 0, 10)).unwrap();
    pools.create(&PostParams::default(), &pool).await.unwrap();

    eventually("a leader is elected", T, || async {
        holder(&s).await.is_some()
    })
    .await;
    let leader_id = holder(&s).await.unwrap();
    let (leader, follower) = if leader_id == a.identity {
        (&mut a, &mut b)
    } else {
        (&mut b, &mut a)
    };

    // A create sent to the follower is served by the leader: 202 with a running sandbox.
    let create = json!({"extensions": {"poolRef": "warm"}, "timeout": 300, "entrypoint": ["sleep", "infinity"],
                        "image": {"uri": "busybox:1.36"}, "resourceLimits": {"cpu": "100m", "memory": "64Mi"}});
    let (code, headers, created) = call(
        follower.addr,
        "POST",
        "/v1/sandboxes",
        Some(create.clone()),
        &[],
    )
    .await;
    assert_eq!(code, 202, "{created}");
    assert!(headers.contains_key("x-request-id"));
    let id = created["id"].as_str().unwrap().to_string();

    // Reads through the follower see it at once (they are relayed too).
    let (code, _, got) = call(
        follower.addr,
        "GET",
        &format!("/v1/sandboxes/{id}"),
        None,
        &[],
    )
    .await;
    assert_eq!(code, 200, "{got}");
    assert_eq!(got["id"], id.as_str());

    // URLs the leader builds for the client name the replica the client reached.
    let (code, _, ep) = call(
        follower.addr,
        "GET",
        &format!("/v1/sandboxes/{id}/endpoints/44772?use_server_proxy=true"),
        None,
        &[],
    )
    .await;
    assert_eq!(code, 200, "{ep}");
    assert_eq!(
        ep["endpoint"],
        format!("{}/v1/sandboxes/{id}/proxy/44772", follower.addr)
    );

    // Bad input relayed keeps the leader's error envelope and status.
    let (code, _, err) = call(
        follower.addr,
        "POST",
        "/v1/sandboxes",
        Some(json!({"extensions": {"poolRef": "warm"}, "timeout": -5})),
        &[],
    )
    .await;
    assert!((400..500).contains(&code), "{code} {err}");
    assert!(
        err["code"].is_string() && err["message"].is_string(),
        "{err}"
    );

    // Auth is checked by the replica the client reached.
    let (code, _, err) = call(
        follower.addr,
        "GET",
        "/v1/sandboxes",
        None,
        &[("open-sandbox-api-key", "wrong")],
    )
    .await;
    assert_eq!(code, 401, "{err}");

    // A call another replica relayed is never relayed again by a follower.
    let (code, headers, err) = call(
        follower.addr,
        "GET",
        "/v1/sandboxes",
        None,
        &[("x-opensandbox-forwarded-by", "someone")],
    )
    .await;
    assert_eq!(code, 503, "{err}");
    assert_eq!(err["code"], "SERVER::NOT_LEADER");
    assert!(headers.contains_key("retry-after"));

    // The follower served everything without a single write.
    for resource in ["batchsandboxes", "pools", "pods", "events"] {
        assert_eq!(
            writes_by(&s, &follower.identity, resource),
            0,
            "follower wrote {resource}"
        );
    }
    assert!(writes_by(&s, &leader.identity, "batchsandboxes") >= 1);

    // The leader goes away (graceful stop, as on a rolling update); a call sent to the
    // follower meanwhile waits for the new leader instead of failing.
    let old_leader = leader.identity.clone();
    let stopping = leader.manager.take().unwrap();
    let follower_addr = follower.addr;
    let renew = tokio::spawn(async move {
        call(
            follower_addr,
            "POST",
            &format!("/v1/sandboxes/{id}/renew-expiration"),
            Some(json!({"expiresAt": (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339()})),
            &[],
        )
        .await
    });
    stopping.shutdown().await;
    let (code, _, renewed) = renew.await.unwrap();
    assert_eq!(code, 200, "{renewed}");
    eventually("the follower leads", T, || async {
        holder(&s).await.as_deref() == Some(follower.identity.as_str())
    })
    .await;

    // The new leader serves a second create and the delete itself.
    let (code, _, second) = call(follower.addr, "POST", "/v1/sandboxes", Some(create), &[]).await;
    assert_eq!(code, 202, "{second}");
    let second_id = second["id"].as_str().unwrap();
    let (code, _, _) = call(
        follower.addr,
        "DELETE",
        &format!("/v1/sandboxes/{second_id}"),
        None,
        &[],
    )
    .await;
    assert_eq!(code, 204);
    let writes_after = writes_by(&s, &old_leader, "batchsandboxes");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        writes_by(&s, &old_leader, "batchsandboxes"),
        writes_after,
        "a stopped leader writes nothing more"
    );
    if let Some(m) = follower.manager.take() {
        m.shutdown().await;
    }
}
