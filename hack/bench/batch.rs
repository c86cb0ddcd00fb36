//! BatchSandbox benchmark: time from create to Ready for 100 and 1,000 replicas from a warm
//! pool (with no injected latency and with 5 ms per write), API writes per batch, and status
//! propagation from pod Ready to BatchSandbox Ready. Prints JSON and a readable table.
//!
//! Run: `cargo build --release && cargo run --release --example bench-batch [-- --rounds 3 --samples 100]`

#[path = "common.rs"]
mod common;

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use opensandbox::crd::{BatchSandbox, Pool, SandboxPhase};
use opensandbox::manager::{Manager, ManagerOptions};
use opensandbox::standalone::kubelet_sim::{KubeletOptions, SimKubelet};
use serde_json::json;

async fn wait<F: Fn() -> bool>(what: &str, timeout: Duration, f: F) -> anyhow::Result<()> {
    let start = Instant::now();
    while !f() {
        if start.elapsed() > timeout {
            anyhow::bail!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_micros(500)).await;
    }
    Ok(())
}

fn key(name: &str) -> (String, String) {
    ("default".to_string(), name.to_string())
}

fn sandbox_ready(m: &Manager, name: &str, n: i32) -> bool {
    m.cache
        .sandbox(&key(name))
        .and_then(|b| b.status.clone())
        .is_some_and(|s| s.ready == n && s.phase == Some(SandboxPhase::Succeed))
}

/// Create-to-Ready of one batch of `n` from a warm pool; returns (seconds, sandbox writes).
async fn batch_once(n: i32, write_latency_ms: u64) -> anyhow::Result<(f64, usize)> {
    let s = common::server_with_crds().await?;
    let _kubelet = SimKubelet::start(s.client(), KubeletOptions::default());
    let m = Manager::start(
        s.client(),
        &ManagerOptions {
            identity: "bench".into(),
            ..ManagerOptions::default()
        },
    )
    .await?;
    let pools: Api<Pool> = Api::namespaced(s.client(), "default");
    let pool: Pool = serde_json::from_value(json!({
        "apiVersion": "sandbox.opensandbox.io/v1alpha1", "kind": "Pool", "metadata": {"name": "warm"},
        "spec": {"template": {"spec": {"containers": [{"name": "main", "image": "busybox:1.36"}]}},
                 "capacitySpec": {"bufferMin": n, "bufferMax": n, "poolMin": 0, "poolMax": 3 * n},
                 "scaleStrategy": {"maxUnavailable": "100%"}}
    }))?;
    pools.create(&PostParams::default(), &pool).await?;
    wait("pool warm", Duration::from_secs(120), || {
        m.cache
            .pool(&key("warm"))
            .and_then(|p| p.status.clone())
            .is_some_and(|st| st.available == n)
    })
    .await?;
    common::inject_write_latency(&s, write_latency_ms);
    s.requests().clear();
    let bs: Api<BatchSandbox> = Api::namespaced(s.client(), "default");
    let body: BatchSandbox = serde_json::from_value(json!({
        "apiVersion": "sandbox.opensandbox.io/v1alpha1", "kind": "BatchSandbox",
        "metadata": {"name": "batch"}, "spec": {"replicas": n, "poolRef": "warm"}
    }))?;
    let start = Instant::now();
    bs.create(&PostParams::default(), &body).await?;
    wait("batch ready", Duration::from_secs(120), || {
        sandbox_ready(&m, "batch", n)
    })
    .await?;
    let secs = start.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let writes = s
        .requests()
        .writes(|e| e.resource.starts_with("batchsandboxes"));
    s.faults().clear();
    m.shutdown().await;
    Ok((secs, writes))
}

/// Pod Ready -> BatchSandbox Ready, `samples` times, with no kubelet: the benchmark marks
/// each pod Ready itself and times the status that follows.
async fn propagation(samples: usize, write_latency_ms: u64) -> anyhow::Result<Vec<f64>> {
    let s = common::server_with_crds().await?;
    // Only the controller's writes are slowed: the benchmark's own pod status patch is the
    // start of the measured interval.
    common::inject_write_latency_on(&s, Some("batchsandboxes"), write_latency_ms);
    let m = Manager::start(
        s.client(),
        &ManagerOptions {
            identity: "bench".into(),
            ..ManagerOptions::default()
        },
    )
    .await?;
    let bs: Api<BatchSandbox> = Api::namespaced(s.client(), "default");
    let pods: Api<Pod> = Api::namespaced(s.client(), "default");
    let mut out = Vec::new();
    for i in 0..samples {
        let name = format!("lag-{i}");
        let body: BatchSandbox = serde_json::from_value(json!({
            "apiVersion": "sandbox.opensandbox.io/v1alpha1", "kind": "BatchSandbox",
            "metadata": {"name": name},
            "spec": {"replicas": 1, "template": {"spec": {"containers": [{"name": "main", "image": "busybox:1.36"}]}}}
        }))?;
        bs.create(&PostParams::default(), &body).await?;
        let pod = format!("{name}-0");
        wait("pod created", Duration::from_secs(10), || {
            m.cache.pod(&key(&pod)).is_some()
        })
        .await?;
        let status = json!({"status": {"phase": "Running", "podIP": format!("10.9.{}.{}", i / 250, i % 250),
            "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [{"name": "main", "ready": true, "restartCount": 0, "image": "busybox:1.36", "imageID": "", "state": {"running": {}}}]}});
        let start = Instant::now();
        pods.patch_status(&pod, &PatchParams::default(), &Patch::Merge(&status))
            .await?;
        wait("sandbox ready", Duration::from_secs(10), || {
            sandbox_ready(&m, &name, 1)
        })
        .await?;
        out.push(start.elapsed().as_secs_f64());
        bs.delete(&name, &DeleteParams::default()).await?;
    }
    m.shutdown().await;
    Ok(out)
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i.min(v.len() - 1)]
}

fn main() -> anyhow::Result<()> {
    opensandbox::allocator::tune();
    let rounds = common::arg("--rounds", 3);
    let samples = common::arg("--samples", 100);
    let sys = actix::System::with_tokio_rt(|| {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("runtime: {e}"))
    });
    sys.block_on(async move {
        let mut rows = Vec::new();
        let mut report = serde_json::Map::new();
        for (n, latency_ms) in [(100, 0u64), (1000, 0), (100, 5), (1000, 5)] {
            let mut times = Vec::new();
            let mut writes = 0;
            for _ in 0..rounds {
                let (t, w) = batch_once(n, latency_ms).await?;
                times.push(t);
                writes = writes.max(w);
            }
            let median = pct(&mut times, 0.5);
            report.insert(
                format!("batch_{n}_latency_{latency_ms}ms"),
                json!({"create_to_ready_seconds_median": median, "all": times, "max_sandbox_writes": writes}),
            );
            rows.push(format!(
                "| {n} replicas, {latency_ms} ms per write | {:.1} ms | {writes} |",
                median * 1000.0
            ));
        }
        let mut prop_rows = Vec::new();
        for latency_ms in [0u64, 5] {
            let mut prop = propagation(samples, latency_ms).await?;
            let p50 = pct(&mut prop, 0.5) * 1000.0;
            let p99 = pct(&mut prop, 0.99) * 1000.0;
            report.insert(
                format!("pod_ready_to_sandbox_ready_latency_{latency_ms}ms"),
                json!({"samples": prop.len(), "p50_ms": p50, "p99_ms": p99}),
            );
            prop_rows.push(format!("| {latency_ms} ms per write | {p50:.1} ms | {p99:.1} ms |"));
        }
        println!("{}", serde_json::to_string_pretty(&report)?);
        println!();
        println!("| batch from a warm pool | create -> Ready (median of {rounds}) | BatchSandbox writes |");
        println!("|---|---|---|");
        for r in rows {
            println!("{r}");
        }
        println!();
        println!("| pod Ready -> BatchSandbox Ready ({samples} samples) | p50 | p99 |");
        println!("|---|---|---|");
        for r in prop_rows {
            println!("{r}");
        }
        Ok(())
    })
}
