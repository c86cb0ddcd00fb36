//! Crash chaos: the manager runs as a separate process and is killed with SIGKILL at a random
//! moment, during a pooled batch of 1,000 replicas (and its predecessor's deletion) or
//! during create/delete churn, then restarted. After every restart the state must converge
//! with no invariant of ARCHITECTURE.md §4 violated: no pod in two ledgers, no orphaned pod,
//! every live sandbox Ready with its replicas, every deleted one gone.
//!
//! `CHAOS_ROUNDS` (default 20), `CHAOS_BIG_EVERY` (a big-batch round every N rounds,
//! default 10), `CHAOS_BATCH_REPLICAS` (default 1000) and `CHAOS_SEED` tune it.

mod chaos_support;
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chaos_support::*;
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use opensandbox::crd::{BatchSandbox, Pool};
use parking_lot::Mutex;
use serde_json::json;

const SETTLE: Duration = Duration::from_secs(60);

fn pooled(name: &str, pool: &str, replicas: i32) -> BatchSandbox {
    serde_json::from_value(json!({
        "apiVersion": "sandbox.opensandbox.io/v1alpha1", "kind": "BatchSandbox",
        "metadata": {"name": name},
        "spec": {"replicas": replicas, "poolRef": pool}
    }))
    .unwrap()
}

fn templated(name: &str, replicas: i32) -> BatchSandbox {
    serde_json::from_value(json!({
        "apiVersion": "sandbox.opensandbox.io/v1alpha1", "kind": "BatchSandbox",
        "metadata": {"name": name},
        "spec": {"replicas": replicas, "template": {"spec": {"containers": [
            {"name": "main", "image": "busybox:1.36", "command": ["sleep", "infinity"]}]}}}
    }))
    .unwrap()
}

/// Creates and deletes small sandboxes (pooled and templated) until `stop`; records what it
/// did in `expected`. Returns the number of API calls it made.
async fn churn(
    client: kube::Client,
    expected: Arc<Mutex<Expected>>,
    seed: u64,
    round: u64,
    until: Instant,
) -> u64 {
    let api: Api<BatchSandbox> = Api::namespaced(client, "default");
    let mut rng = Rng::seeded(seed);
    let mut calls = 0;
    let mut n = 0;
    while Instant::now() < until {
        let live: Vec<String> = expected
            .lock()
            .live
            .keys()
            .filter(|k| k.starts_with('c'))
            .cloned()
            .collect();
        if live.len() > 2 && rng.chance(0.45) {
            let name = &live[rng.range(0, live.len() as u64 - 1) as usize];
            calls += 1;
            if api.delete(name, &DeleteParams::default()).await.is_ok() {
                expected.lock().removed(name);
            }
        } else {
            n += 1;
            let name = format!("c{round}-{n}");
            let replicas = rng.range(1, 3) as i32;
            let body = if rng.chance(0.25) {
                templated(&name, replicas)
            } else {
                pooled(&name, "p", replicas)
            };
            calls += 1;
            if api.create(&PostParams::default(), &body).await.is_ok() {
                expected.lock().created(&name, replicas);
            }
        }
        tokio::time::sleep(Duration::from_millis(rng.range(5, 40))).await;
    }
    calls
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manager_killed_at_random_points_loses_nothing() {
    let rounds = env_u64("CHAOS_ROUNDS", 20);
    let big_every = env_u64("CHAOS_BIG_EVERY", 10).max(1);
    let big_n = env_u64("CHAOS_BATCH_REPLICAS", 1000) as i32;
    let mut rng = Rng::from_env("chaos_crash");
    let cluster = Cluster::start().await;
    let client = cluster.client();
    let pools: Api<Pool> = Api::namespaced(client.clone(), "default");
    let sandboxes: Api<BatchSandbox> = Api::namespaced(client.clone(), "default");
    for (name, min, max, pool_max) in [("p", 5, 10, 400), ("big", big_n, big_n, 3 * big_n)] {
        let pool: Pool =
            serde_json::from_value(common::pool_json(name, min, max, 0, pool_max)).unwrap();
        pools.create(&PostParams::default(), &pool).await.unwrap();
    }
    let expected = Arc::new(Mutex::new(Expected::default()));
    let mut manager = ManagerProcess::spawn(&cluster, "crash-0", false, "k");
    let first = settle(&client, &snapshot(&expected), SETTLE).await;
    assert!(first.is_empty(), "the pools never warmed: {first:?}");

    let started = Instant::now();
    let mut violations_total = 0;
    let mut client_calls = 0u64;
    let mut big_rounds = 0;
    let mut previous_big: Option<String> = None;
    for round in 0..rounds {
        let kill_after = Duration::from_millis(rng.range(0, 1000));
        let round_start = Instant::now();
        let kind = if round % big_every == 0 {
            big_rounds += 1;
            // A pooled batch of `big_n`; the previous one is deleted at the same moment.
            let name = format!("big-{round}");
            if let Some(old) = previous_big.take() {
                client_calls += 1;
                sandboxes
                    .delete(&old, &DeleteParams::default())
                    .await
                    .unwrap();
                expected.lock().removed(&old);
            }
            client_calls += 1;
            sandboxes
                .create(&PostParams::default(), &pooled(&name, "big", big_n))
                .await
                .unwrap();
            expected.lock().created(&name, big_n);
            previous_big = Some(name);
            tokio::time::sleep(kill_after).await;
            manager.kill9();
            "batch"
        } else {
            let churning = tokio::spawn(churn(
                client.clone(),
                expected.clone(),
                rng.next(),
                round,
                Instant::now() + kill_after + Duration::from_millis(rng.range(100, 600)),
            ));
            tokio::time::sleep(kill_after).await;
            manager.kill9();
            client_calls += churning.await.unwrap();
            "churn"
        };
        manager = ManagerProcess::spawn(&cluster, &format!("crash-{}", round + 1), false, "k");
        let left = settle(&client, &snapshot(&expected), SETTLE).await;
        let e = expected.lock();
        println!(
            "round {round} ({kind}): killed after {kill_after:?}; {} live, {} deleted sandboxes; \
             converged in {:?}; violations: {left:?}",
            e.live.len(),
            e.deleted.len(),
            round_start.elapsed()
        );
        violations_total += left.len();
    }
    let (requests, errors) = manager_requests(&cluster.server);
    Figures {
        scenario: "crash: SIGKILL the manager process during a pooled batch or create/delete churn",
        rounds: format!(
            "{rounds} rounds ({big_rounds} with a {big_n}-replica pooled batch), {:.0} s",
            started.elapsed().as_secs_f64()
        ),
        faults: format!("{rounds} SIGKILLs"),
        requests: format!("{requests} manager API requests, {client_calls} client writes"),
        errors: format!("{errors} 409/5xx answers to the manager"),
        violations: violations_total,
    }
    .print();
    assert_eq!(
        violations_total, 0,
        "invariants violated (seed printed above)"
    );
    drop(manager);
}
