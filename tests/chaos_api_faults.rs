//! API-fault soak: a manager process serves SDK create/get/delete churn while the embedded
//! API server answers its requests with 10% 500s, 5% 409s on updates and patches, 0-50 ms
//! random latency, drops every watch every few seconds and compacts the history (so
//! resuming watches get 410 and relist). Every SDK call must succeed or fail with a clear
//! {code, message} within a bound; once the faults stop the invariants of ARCHITECTURE.md §4
//! hold; the manager's RSS stays flat after warm-up (sampled every second from
//! /proc/<pid>/status).
//!
//! `OPENSANDBOX_SOAK_SECS` (default 30), `CHAOS_SOAK_WORKERS` (default 4) and `CHAOS_SEED`
//! tune it.

mod chaos_support;
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chaos_support::*;
use kube::Api;
use kube::api::{ListParams, PostParams};
use opensandbox::crd::{BatchSandbox, Pool};
use opensandbox::standalone::apiserver::{FaultRule, WatchDisruption, disrupt_watches};
use parking_lot::Mutex;
use serde_json::json;

const KEY: &str = "soak-key";
/// No SDK call may take longer than this, faults or not.
const CALL_BOUND: Duration = Duration::from_secs(30);

#[derive(Debug, Default)]
struct Tally {
    calls: u64,
    ok: u64,
    clear_errors: u64,
    unclear: Vec<String>,
    slowest: Duration,
    /// Sandboxes whose create answered an error (they may exist nonetheless).
    failed_creates: Vec<String>,
}

impl Tally {
    fn record(&mut self, what: &str, took: Duration, r: &Result<(u16, serde_json::Value), String>) {
        self.calls += 1;
        self.slowest = self.slowest.max(took);
        match r {
            Ok((code, _)) if *code < 300 => self.ok += 1,
            Ok((_, body)) if is_clear_error(body) => self.clear_errors += 1,
            Ok((code, body)) => self.unclear.push(format!("{what}: {code} {body}")),
            Err(e) => self.unclear.push(format!("{what}: {e}")),
        }
    }
}

async fn call(
    addr: std::net::SocketAddr,
    tally: &Mutex<Tally>,
    method: &str,
    path: &str,
    body: Option<serde_json::Value>,
) -> Result<(u16, serde_json::Value), String> {
    let t = Instant::now();
    let r = sdk_call(addr, method, path, KEY, body, CALL_BOUND).await;
    tally
        .lock()
        .record(&format!("{method} {path}"), t.elapsed(), &r);
    r
}

/// One churn worker: create, read, sometimes keep, delete.
async fn worker(
    addr: std::net::SocketAddr,
    seed: u64,
    stop: Arc<AtomicBool>,
    tally: Arc<Mutex<Tally>>,
    expected: Arc<Mutex<Expected>>,
) {
    let mut rng = Rng::seeded(seed);
    let mut held: Vec<String> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        if held.len() < 3 && (held.is_empty() || rng.chance(0.6)) {
            let body = json!({"extensions": {"poolRef": "soak"}, "timeout": 600,
                "entrypoint": ["sleep", "infinity"], "image": {"uri": "busybox:1.36"},
                "resourceLimits": {"cpu": "100m", "memory": "64Mi"}});
            match call(addr, &tally, "POST", "/v1/sandboxes", Some(body)).await {
                Ok((202, b)) if b["id"].is_string() => {
                    let id = b["id"].as_str().unwrap_or_default().to_string();
                    expected.lock().created(&id, 1);
                    held.push(id);
                }
                Ok((_, b)) => {
                    if let Some(id) = b["id"].as_str() {
                        tally.lock().failed_creates.push(id.to_string());
                    }
                }
                Err(_) => {}
            }
        } else {
            let id = held.remove(rng.range(0, held.len() as u64 - 1) as usize);
            let _ = call(addr, &tally, "GET", &format!("/v1/sandboxes/{id}"), None).await;
            match call(addr, &tally, "DELETE", &format!("/v1/sandboxes/{id}"), None).await {
                Ok((204, _)) | Ok((404, _)) => expected.lock().removed(&id),
                _ => held.push(id),
            }
        }
        tokio::time::sleep(Duration::from_millis(rng.range(0, 30))).await;
    }
}

fn median(v: &[u64]) -> u64 {
    let mut v = v.to_vec();
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_churn_under_api_faults_loses_nothing_and_memory_stays_flat() {
    let secs = env_u64("OPENSANDBOX_SOAK_SECS", 30);
    let workers = env_u64("CHAOS_SOAK_WORKERS", 4);
    let mut rng = Rng::from_env("chaos_api_faults");
    let cluster = Cluster::start().await;
    let client = cluster.client();
    let pools: Api<Pool> = Api::namespaced(client.clone(), "default");
    let pool: Pool = serde_json::from_value(common::pool_json("soak", 5, 10, 0, 500)).unwrap();
    pools.create(&PostParams::default(), &pool).await.unwrap();
    let manager = ManagerProcess::spawn(&cluster, "soak", false, KEY);
    let expected = Arc::new(Mutex::new(Expected::default()));
    let warm = settle(&client, &snapshot(&expected), Duration::from_secs(30)).await;
    assert!(warm.is_empty(), "{warm:?}");

    let faults = cluster.server.faults();
    faults.seed(rng.next());
    let agent = MANAGER_AGENT_PREFIX;
    faults.add(FaultRule::error(None, None, 0.10, 500).for_agent(agent));
    for verb in ["update", "patch"] {
        faults.add(FaultRule::error(Some(verb), None, 0.05, 409).for_agent(agent));
    }
    faults.add(
        FaultRule::latency(None, None, Duration::ZERO)
            .jitter(Duration::from_millis(50))
            .for_agent(agent),
    );
    let disruption = disrupt_watches(
        &cluster.server,
        WatchDisruption {
            drop_every: Duration::from_secs(3),
            compact_every: Some(Duration::from_secs(9)),
        },
    );
    let log_start = cluster.server.requests().entries().len();

    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let tasks: Vec<_> = (0..workers)
        .map(|_| {
            tokio::spawn(worker(
                manager.api,
                rng.next(),
                stop.clone(),
                tally.clone(),
                expected.clone(),
            ))
        })
        .collect();
    let started = Instant::now();
    let mut rss: Vec<(f64, u64)> = Vec::new();
    while started.elapsed() < Duration::from_secs(secs) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if let Some(kib) = manager.rss_kib() {
            rss.push((started.elapsed().as_secs_f64(), kib));
        }
    }
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    disruption.abort();
    faults.clear();
    let counts = faults.counts();
    let soak_entries = cluster.server.requests().entries()[log_start..].to_vec();
    let manager_entries: Vec<_> = soak_entries
        .iter()
        .filter(|e| e.user_agent.starts_with(agent))
        .collect();

    // Faults off: what the test holds is Ready, what it deleted is gone.
    let mut violations = settle(&client, &snapshot(&expected), Duration::from_secs(60)).await;
    // Then delete everything through the SDK; nothing may be left behind, including
    // sandboxes whose create answered an error.
    let sandboxes: Api<BatchSandbox> = Api::namespaced(client.clone(), "default");
    let remaining: Vec<String> = sandboxes
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|b| b.metadata.name)
        .collect();
    let unknown: Vec<&String> = remaining
        .iter()
        .filter(|n| !expected.lock().live.contains_key(*n))
        .collect();
    println!("sandboxes left by creates that answered an error: {unknown:?}");
    for id in &remaining {
        let r = call(
            manager.api,
            &tally,
            "DELETE",
            &format!("/v1/sandboxes/{id}"),
            None,
        )
        .await;
        if matches!(r, Ok((204, _)) | Ok((404, _))) {
            expected.lock().removed(id);
        } else {
            violations.push(format!("delete {id} after the soak: {r:?}"));
        }
    }
    violations.extend(settle(&client, &snapshot(&expected), Duration::from_secs(60)).await);

    // RSS: the first third is warm-up (caches and allocator pools grow); flat means the last
    // third's median stays within `bound` of the middle third's. Short runs barely leave
    // warm-up, so they get a looser bound.
    let samples: Vec<u64> = rss.iter().map(|(_, k)| *k).collect();
    let third = (samples.len() / 3).max(1);
    let early = median(&samples[third.min(samples.len())..(2 * third).min(samples.len())]);
    let late = median(&samples[samples.len().saturating_sub(third)..]);
    let growth = late as f64 / early.max(1) as f64 - 1.0;
    let bound = if secs >= 90 { 0.20 } else { 0.35 };
    let series: Vec<String> = rss
        .iter()
        .step_by((rss.len() / 10).max(1))
        .map(|(t, k)| format!("{t:.0}s:{:.1}MiB", *k as f64 / 1024.0))
        .collect();
    let t = tally.lock();
    println!(
        "soak {secs}s, {workers} workers: SDK calls {} (ok {}, clear errors {}, unclear {:?}), \
         slowest {:?}; faults {counts:?}; RSS {}; early median {early} KiB, late {late} KiB \
         ({:+.1}%); violations {violations:?}",
        t.calls,
        t.ok,
        t.clear_errors,
        t.unclear,
        t.slowest,
        series.join(" "),
        growth * 100.0
    );
    let manager_errors = manager_entries
        .iter()
        .filter(|e| e.code == 409 || e.code >= 500)
        .count();
    Figures {
        scenario: "API faults soak: SDK create/get/delete churn, 10% 500s, 5% 409s on updates, 0-50 ms latency, watches dropped every 3 s, history compacted every 9 s",
        rounds: format!("{secs} s, {workers} concurrent SDK clients"),
        faults: format!(
            "{} errors, {} delayed requests, {} watch drops, {} compactions",
            counts.errors, counts.delayed, counts.watch_drops, counts.compactions
        ),
        requests: format!(
            "{} SDK calls, {} manager API requests",
            t.calls,
            manager_entries.len()
        ),
        errors: format!(
            "{} SDK calls answered a clear error, {} unclear, slowest {:.1} s; {manager_errors} 409/5xx to the manager; RSS {:.1} -> {:.1} MiB ({:+.0}%)",
            t.clear_errors,
            t.unclear.len(),
            t.slowest.as_secs_f64(),
            early as f64 / 1024.0,
            late as f64 / 1024.0,
            growth * 100.0
        ),
        violations: violations.len() + t.unclear.len(),
    }
    .print();
    assert!(
        t.unclear.is_empty(),
        "SDK calls without a clear answer: {:?}",
        t.unclear
    );
    assert!(violations.is_empty(), "invariants: {violations:?}");
    assert!(t.ok > 0, "no SDK call succeeded");
    assert!(
        samples.len() < 6 || growth < bound,
        "manager RSS grew from {early} KiB to {late} KiB (more than {bound})"
    );
    drop(manager);
}
