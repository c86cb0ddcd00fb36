//! Failover chaos: two manager processes elect a leader on one embedded API server over
//! loopback HTTP (1 s lease). Mid-batch the leader is killed with SIGKILL, or frozen with
//! SIGSTOP; the other replica takes over, the batch completes, SDK creates sent to the
//! survivor keep succeeding (or fail with a clear {code, message}), and a frozen leader that
//! is resumed after losing its lease writes nothing (asserted from the request log, where
//! each process's writes carry its own User-Agent).
//!
//! `CHAOS_FAILOVER_REPLICAS` (default 300) and `CHAOS_SEED` tune it.

mod chaos_support;
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chaos_support::*;
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use kube::api::PostParams;
use opensandbox::crd::{BatchSandbox, Pool};
use parking_lot::Mutex;
use serde_json::{Value, json};

const KEY: &str = "chaos-key";
const LEASE: &str = "opensandbox-controller-leader";
const T: Duration = Duration::from_secs(30);

#[derive(Clone, Copy, Debug, PartialEq)]
enum Fault {
    Kill,
    Freeze,
}

async fn holder(client: &kube::Client) -> Option<String> {
    let api: Api<Lease> = Api::namespaced(client.clone(), "default");
    api.get_opt(LEASE)
        .await
        .ok()
        .flatten()?
        .spec?
        .holder_identity
        .filter(|h| !h.is_empty())
}

/// Outcomes of the SDK calls: successes, clear errors, and anything else (described).
#[derive(Debug, Default)]
struct Outcomes {
    ok: u64,
    clear_errors: u64,
    unclear: Vec<String>,
}

fn create_body() -> Value {
    json!({"extensions": {"poolRef": "warm"}, "timeout": 600, "entrypoint": ["sleep", "infinity"],
           "image": {"uri": "busybox:1.36"}, "resourceLimits": {"cpu": "100m", "memory": "64Mi"}})
}

/// SDK creates against `addr`, one after the other, until `stop` is set.
async fn sdk_creates(
    addr: std::net::SocketAddr,
    expected: Arc<Mutex<Expected>>,
    outcomes: Arc<Mutex<Outcomes>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) {
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let r = sdk_call(
            addr,
            "POST",
            "/v1/sandboxes",
            KEY,
            Some(create_body()),
            Duration::from_secs(30),
        )
        .await;
        {
            let mut o = outcomes.lock();
            match r {
                Ok((202, body)) if body["id"].is_string() => {
                    o.ok += 1;
                    expected
                        .lock()
                        .created(body["id"].as_str().unwrap_or_default(), 1);
                }
                Ok((code, body)) if code >= 400 && is_clear_error(&body) => o.clear_errors += 1,
                Ok((code, body)) => o.unclear.push(format!("{code} {body}")),
                Err(e) => o.unclear.push(e),
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn failover(fault: Fault) {
    let replicas = env_u64("CHAOS_FAILOVER_REPLICAS", 300) as i32;
    let mut rng = Rng::from_env(&format!("chaos_failover {fault:?}"));
    let cluster = Cluster::start().await;
    let client = cluster.client();
    let pools: Api<Pool> = Api::namespaced(client.clone(), "default");
    let pool: Pool =
        serde_json::from_value(common::pool_json("warm", 20, 40, 0, 4 * replicas)).unwrap();
    pools.create(&PostParams::default(), &pool).await.unwrap();
    let a = ManagerProcess::spawn(&cluster, "replica-a", true, KEY);
    let b = ManagerProcess::spawn(&cluster, "replica-b", true, KEY);
    common::eventually("a leader is elected", T, || async {
        holder(&client).await.is_some()
    })
    .await;
    let (leader, survivor) = if holder(&client).await.as_deref() == Some("replica-a") {
        (a, b)
    } else {
        (b, a)
    };
    let expected = Arc::new(Mutex::new(Expected::default()));
    let warm = settle(&client, &snapshot(&expected), T).await;
    assert!(warm.is_empty(), "{warm:?}");

    // SDK creates through the survivor (relayed to the leader until it takes over).
    let outcomes = Arc::new(Mutex::new(Outcomes::default()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let creates = tokio::spawn(sdk_creates(
        survivor.api,
        expected.clone(),
        outcomes.clone(),
        stop.clone(),
    ));
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Mid-batch: the leader starts allocating a large pooled batch and is hit.
    let batch: BatchSandbox = serde_json::from_value(json!({
        "apiVersion": "sandbox.opensandbox.io/v1alpha1", "kind": "BatchSandbox",
        "metadata": {"name": "batch"}, "spec": {"replicas": replicas, "poolRef": "warm"}}))
    .unwrap();
    let sandboxes: Api<BatchSandbox> = Api::namespaced(client.clone(), "default");
    sandboxes
        .create(&PostParams::default(), &batch)
        .await
        .unwrap();
    expected.lock().created("batch", replicas);
    let hit_after = Duration::from_millis(rng.range(0, 300));
    tokio::time::sleep(hit_after).await;
    let hit = Instant::now();
    let ok_before = outcomes.lock().ok;
    let frozen = match fault {
        Fault::Kill => {
            leader.kill9();
            None
        }
        Fault::Freeze => {
            leader.freeze();
            Some(leader)
        }
    };
    common::eventually("the survivor takes the lease", T, || async {
        holder(&client).await.as_deref() == Some(survivor.identity.as_str())
    })
    .await;
    let takeover = hit.elapsed();
    let log_mark = cluster.server.requests().entries().len();

    // The survivor serves SDK creates on its own now.
    common::eventually("SDK creates resume", T, || async {
        outcomes.lock().ok >= ok_before + 10
    })
    .await;
    let mut late_writes = Vec::new();
    if let Some(old) = &frozen {
        old.thaw();
        // Give the woken process time to run whatever it had queued.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let agent = old.agent();
        late_writes = cluster.server.requests().entries()[log_mark..]
            .iter()
            .filter(|e| e.user_agent == agent && e.is_write())
            .map(|e| {
                format!(
                    "{} {} {} -> {}",
                    e.verb,
                    e.resource,
                    e.name.clone().unwrap_or_default(),
                    e.code
                )
            })
            .collect();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    creates.await.unwrap();

    // A few deletes through the survivor, then everything must converge.
    let ids: Vec<String> = expected
        .lock()
        .live
        .keys()
        .filter(|k| *k != "batch")
        .take(5)
        .cloned()
        .collect();
    let mut deletes = 0;
    for id in &ids {
        let r = sdk_call(
            survivor.api,
            "DELETE",
            &format!("/v1/sandboxes/{id}"),
            KEY,
            None,
            Duration::from_secs(30),
        )
        .await;
        assert!(matches!(r, Ok((204, _))), "delete {id}: {r:?}");
        expected.lock().removed(id);
        deletes += 1;
    }
    let left = settle(&client, &snapshot(&expected), Duration::from_secs(60)).await;
    let o = outcomes.lock();
    let successful_late: Vec<&String> = late_writes
        .iter()
        .filter(|w| w.ends_with("-> 200") || w.ends_with("-> 201") || w.ends_with("-> 202"))
        .collect();
    println!(
        "{fault:?}: hit {hit_after:?} after the batch; survivor leads {takeover:?} later; \
         SDK creates ok {} / clear errors {} / unclear {:?}; old leader's writes after \
         takeover: {late_writes:?}; violations: {left:?}",
        o.ok, o.clear_errors, o.unclear
    );
    let (requests, errors) = manager_requests(&cluster.server);
    let violations = left.len() + o.unclear.len() + successful_late.len();
    Figures {
        scenario: match fault {
            Fault::Kill => "failover: SIGKILL the leader mid-batch (2 manager processes, 1 s lease)",
            Fault::Freeze => {
                "failover: SIGSTOP the leader mid-batch, SIGCONT after takeover (2 manager processes, 1 s lease)"
            }
        },
        rounds: format!(
            "1 failover ({replicas}-replica batch), takeover {:.1} s",
            takeover.as_secs_f64()
        ),
        faults: match fault {
            Fault::Kill => "1 SIGKILL".into(),
            Fault::Freeze => format!(
                "1 SIGSTOP + SIGCONT; old leader attempted {} writes after takeover, {} succeeded",
                late_writes.len(),
                successful_late.len()
            ),
        },
        requests: format!(
            "{requests} manager API requests, {} SDK calls",
            o.ok + o.clear_errors + o.unclear.len() as u64 + deletes
        ),
        errors: format!(
            "{} SDK clear errors, {} unclear; {errors} 409/5xx answers to managers",
            o.clear_errors,
            o.unclear.len()
        ),
        violations,
    }
    .print();
    assert!(left.is_empty(), "invariants: {left:?}");
    assert!(
        o.unclear.is_empty(),
        "SDK calls without a clear answer: {:?}",
        o.unclear
    );
    assert!(
        successful_late.is_empty(),
        "the deposed leader wrote after losing its lease: {late_writes:?}"
    );
    drop(frozen);
    drop(survivor);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_killed_mid_batch_the_other_takes_over() {
    failover(Fault::Kill).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frozen_leader_woken_after_takeover_writes_nothing() {
    failover(Fault::Freeze).await;
}
