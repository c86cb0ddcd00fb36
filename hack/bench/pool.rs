//! Pool controller benchmark: fill time from 0 to N Ready pods with an instant simulated
//! kubelet (controller overhead only), API writes per created pod, and the memory of a
//! manager process caching 10,000 pool pods. Prints JSON and a readable table.
//!
//! Run: `cargo build --release && cargo run --release --example bench-pool [-- --pods 300 --cached 10000 --rounds 5 --write-latency-ms 5]`
//! (`--rounds 0` skips the fill, `--cached 0` the memory measurement).

#[path = "common.rs"]
mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use http_body_util::BodyExt;
use kube::api::{Api, PostParams};
use opensandbox::actors::leader::LeaderGate;
use opensandbox::actors::{ActorConfig, Controller, run_actors};
use opensandbox::cache::{Cache, InformerConfig};
use opensandbox::crd::{Pool, keys};
use opensandbox::standalone::apiserver::ApiServer;
use opensandbox::standalone::kubelet_sim::{KubeletOptions, SimKubelet};
use serde_json::json;
use tokio::sync::watch;

/// One fill: returns (seconds to N available, controller pod writes).
async fn fill_once(n: usize, write_latency_ms: u64) -> anyhow::Result<(f64, usize)> {
    let s = common::server_with_crds().await?;
    common::inject_write_latency(&s, write_latency_ms);
    let _kubelet = SimKubelet::start(s.client(), KubeletOptions::default());
    let cache = Cache::new();
    let informers =
        opensandbox::cache::informer::start(s.client(), cache.clone(), &InformerConfig::default());
    let config = ActorConfig {
        field_manager: "bench-controller".into(),
        ..ActorConfig::default()
    };
    let ctx = Controller::new(
        s.client(),
        cache.clone(),
        LeaderGate::always(),
        "bench",
        config,
    );
    let (tx, rx) = watch::channel(false);
    actix::spawn(run_actors(ctx, None, rx));
    cache.wait_synced().await;
    let pools: Api<Pool> = Api::namespaced(s.client(), "default");
    let pool: Pool = serde_json::from_value(json!({
        "apiVersion": "sandbox.opensandbox.io/v1alpha1", "kind": "Pool",
        "metadata": {"name": "bench"},
        "spec": {"template": {"spec": {"containers": [{"name": "main", "image": "busybox:1.36"}]}},
                 "capacitySpec": {"bufferMin": n, "bufferMax": n, "poolMin": 0, "poolMax": n},
                 "scaleStrategy": {"maxUnavailable": "100%"}}
    }))?;
    let start = Instant::now();
    pools.create(&PostParams::default(), &pool).await?;
    let key = ("default".to_string(), "bench".to_string());
    loop {
        let ready = cache.pods_of_pool(&key).iter().filter(|p| p.ready).count();
        if ready >= n {
            break;
        }
        if start.elapsed() > Duration::from_secs(120) {
            anyhow::bail!("pool did not fill within 120 s ({ready}/{n})");
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let secs = start.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let writes = s
        .requests()
        .writes(|e| e.resource == "pods" && e.field_manager.as_deref() == Some("bench-controller"));
    let _ = tx.send(true);
    for t in informers {
        t.abort();
    }
    Ok((secs, writes))
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// What a manager process holding a large cache costs.
struct Memory {
    rss_kib: u64,
    cache_bytes: u64,
    cached_pods: u64,
    /// From process start to its readiness probe answering 200 (caches synced).
    cold_start_to_synced: Duration,
}

/// Starts `opensandbox manager` against a server holding `n` pool pods and reads its RSS and
/// cache size once its cache is synced.
async fn manager_memory(n: usize) -> anyhow::Result<Memory> {
    let s = common::server_with_crds().await?;
    // The pods need a live owner (the server collects dependents of owners that do not
    // exist), but not a Pool: the manager is only to cache them, not to scale them.
    let owner = json!({"metadata": {"name": "big", "namespace": "default"}});
    let req = Request::post("/api/v1/namespaces/default/configmaps")
        .header("content-type", "application/json")
        .body(Bytes::from(serde_json::to_vec(&owner)?))?;
    let created = s.request(req).await.into_body().collect().await?.to_bytes();
    let owner: serde_json::Value = serde_json::from_slice(&created)?;
    let owner_uid = owner["metadata"]["uid"].clone();
    for i in 0..n {
        let body = json!({"metadata": {"name": format!("pool-pod-{i:05}"), "namespace": "default",
            "labels": {keys::LABEL_MANAGED: "true", keys::LABEL_POOL_NAME: "big", keys::LABEL_POOL_REVISION: "0123456789abcdef"},
            "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "big", "uid": owner_uid, "controller": true}]},
            "spec": {"containers": [{"name": "main", "image": "busybox:1.36", "command": ["sleep", "infinity"],
                     "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}}}]},
            "status": {"phase": "Running", "podIP": format!("10.0.{}.{}", i / 250, i % 250),
                       "conditions": [{"type": "Ready", "status": "True"}],
                       "containerStatuses": [{"name": "main", "ready": true, "restartCount": 0, "image": "busybox:1.36", "imageID": "",
                                              "containerID": format!("containerd://{i:064}"), "state": {"running": {}}}]}});
        let req = Request::post("/api/v1/namespaces/default/pods")
            .header("content-type", "application/json")
            .body(Bytes::from(serde_json::to_vec(&body)?))?;
        s.request(req).await;
    }
    let ep = s.serve("127.0.0.1:0".parse()?).await?;
    let dir = tempfile::tempdir()?;
    let kubeconfig = dir.path().join("kubeconfig");
    ApiServer::write_kubeconfig(&kubeconfig, ep.addr)?;
    let bin = std::env::current_exe()?
        .parent()
        .and_then(|p| p.parent())
        .map(|p| p.join("opensandbox"))
        .ok_or_else(|| anyhow::anyhow!("cannot locate the opensandbox binary"))?;
    let probe = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let metrics = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let spawned = Instant::now();
    let mut child = tokio::process::Command::new(&bin)
        .args(["manager", "--log-format", "text", "--log-level", "warn"])
        .arg("--health-probe-bind-address")
        .arg(probe.to_string())
        .arg("--metrics-bind-address")
        .arg(metrics.to_string())
        .env("KUBECONFIG", &kubeconfig)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| {
            anyhow::anyhow!(
                "starting {}: {e} (build it with cargo build --release)",
                bin.display()
            )
        })?;
    let pid = child
        .id()
        .ok_or_else(|| anyhow::anyhow!("manager exited"))?;
    let client = reqwest_like_get(probe, "/readyz");
    while !client().await {
        if spawned.elapsed() > Duration::from_secs(120) {
            anyhow::bail!("manager cache did not sync");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let cold_start_to_synced = spawned.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss = rss_kib(pid).unwrap_or(0);
    let text = http_get(metrics, "/metrics").await.unwrap_or_default();
    let cache_bytes = text
        .lines()
        .find(|l| l.starts_with("opensandbox_cache_pod_bytes "))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0) as u64;
    let cached = text
        .lines()
        .find(|l| l.starts_with("opensandbox_cache_objects{kind=\"pod\"}"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0) as u64;
    let _ = child.kill().await;
    Ok(Memory {
        rss_kib: rss,
        cache_bytes,
        cached_pods: cached,
        cold_start_to_synced,
    })
}

async fn http_get(addr: std::net::SocketAddr, path: &str) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.ok()?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    if !text.starts_with("HTTP/1.1 200") {
        return None;
    }
    text.split("\r\n\r\n").nth(1).map(str::to_string)
}

fn reqwest_like_get(
    addr: std::net::SocketAddr,
    path: &'static str,
) -> impl Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = bool>>> {
    move || Box::pin(async move { http_get(addr, path).await.is_some() })
}

fn main() -> anyhow::Result<()> {
    opensandbox::allocator::tune();
    let n = common::arg("--pods", 300);
    let cached = common::arg("--cached", 10_000);
    let rounds = common::arg("--rounds", 5);
    let write_latency_ms = common::arg("--write-latency-ms", 0) as u64;
    let sys = actix::System::with_tokio_rt(|| {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("runtime: {e}"))
    });
    sys.block_on(async move {
        let mut out = serde_json::Map::new();
        let mut rows = Vec::new();
        if rounds > 0 {
            let mut times = Vec::new();
            let mut writes = Vec::new();
            for _ in 0..rounds {
                let (t, w) = fill_once(n, write_latency_ms).await?;
                times.push(t);
                writes.push(w);
            }
            times.sort_by(f64::total_cmp);
            writes.sort();
            let median = times[times.len() / 2];
            let writes_per_pod = writes[writes.len() / 2] as f64 / n as f64;
            out.insert("fill_pods".into(), json!(n));
            out.insert("write_latency_ms".into(), json!(write_latency_ms));
            out.insert("fill_seconds_median".into(), json!(median));
            out.insert("fill_seconds_all".into(), json!(times));
            out.insert("pod_writes_per_created_pod".into(), json!(writes_per_pod));
            rows.push(format!(
                "| fill 0 -> {n} Ready pods, {write_latency_ms} ms per write (median of {rounds}) | {median:.3} s |"
            ));
            rows.push(format!(
                "| controller pod writes per created pod | {writes_per_pod:.2} |"
            ));
        }
        if cached > 0 {
            let mem = manager_memory(cached).await?;
            let per_pod = if mem.cached_pods > 0 {
                mem.cache_bytes as f64 / mem.cached_pods as f64
            } else {
                0.0
            };
            let rss_mib = mem.rss_kib as f64 / 1024.0;
            let sync_ms = mem.cold_start_to_synced.as_secs_f64() * 1000.0;
            out.insert("manager_cached_pods".into(), json!(mem.cached_pods));
            out.insert("manager_rss_mib".into(), json!(rss_mib));
            out.insert("cache_bytes_per_pod".into(), json!(per_pod));
            out.insert("cold_start_to_synced_ms".into(), json!(sync_ms));
            rows.push(format!(
                "| manager RSS with {} cached pool pods | {rss_mib:.1} MiB |",
                mem.cached_pods
            ));
            rows.push(format!("| cache bytes per pod | {per_pod:.0} B |"));
            rows.push(format!(
                "| manager start -> caches synced | {sync_ms:.0} ms |"
            ));
        }
        println!("{}", serde_json::to_string_pretty(&out)?);
        println!();
        println!("| measure | value |");
        println!("|---|---|");
        for r in rows {
            println!("{r}");
        }
        Ok(())
    })
}
