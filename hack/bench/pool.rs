//! Pool controller benchmark: fill time from 0 to N Ready pods with an instant simulated
//! kubelet (controller overhead only), API writes per created pod, and the memory of a
//! manager process caching 10,000 pool pods. Prints JSON and a readable table.
//!
//! Run: `cargo build --release && cargo run --release --example bench-pool [-- --pods 300 --cached 10000 --rounds 5]`

#[path = "common.rs"]
mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
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
async fn fill_once(n: usize) -> anyhow::Result<(f64, usize)> {
    let s = common::server_with_crds().await?;
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

/// Starts `opensandbox manager` against a server holding `n` pool pods and reads its RSS and
/// cache size once its cache is synced.
async fn manager_memory(n: usize) -> anyhow::Result<(u64, u64, u64)> {
    let s = common::server_with_crds().await?;
    for i in 0..n {
        let body = json!({"metadata": {"name": format!("pool-pod-{i:05}"), "namespace": "default",
            "labels": {keys::LABEL_MANAGED: "true", keys::LABEL_POOL_NAME: "big", keys::LABEL_POOL_REVISION: "0123456789abcdef"},
            "ownerReferences": [{"apiVersion": "sandbox.opensandbox.io/v1alpha1", "kind": "Pool", "name": "big", "uid": "4f7d6d2e-4c55-4d7e-9a66-1d1c1e0f0a01", "controller": true}]},
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
    let start = Instant::now();
    while !client().await {
        if start.elapsed() > Duration::from_secs(60) {
            anyhow::bail!("manager cache did not sync");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
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
    Ok((rss, cache_bytes, cached))
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
    let n = common::arg("--pods", 300);
    let cached = common::arg("--cached", 10_000);
    let rounds = common::arg("--rounds", 5);
    let sys = actix::System::with_tokio_rt(|| {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("runtime: {e}"))
    });
    sys.block_on(async move {
        let mut times = Vec::new();
        let mut writes = Vec::new();
        for _ in 0..rounds {
            let (t, w) = fill_once(n).await?;
            times.push(t);
            writes.push(w);
        }
        times.sort_by(f64::total_cmp);
        let median = times[times.len() / 2];
        let writes_per_pod = writes[writes.len() / 2] as f64 / n as f64;
        let (rss_kib, cache_bytes, cached_pods) = manager_memory(cached).await?;
        let per_pod = if cached_pods > 0 {
            cache_bytes as f64 / cached_pods as f64
        } else {
            0.0
        };
        let out = json!({
            "fill_pods": n,
            "fill_seconds_median": median,
            "fill_seconds_all": times,
            "pod_writes_per_created_pod": writes_per_pod,
            "manager_cached_pods": cached_pods,
            "manager_rss_mib": rss_kib as f64 / 1024.0,
            "cache_bytes_per_pod": per_pod,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        println!();
        println!("| measure | value |");
        println!("|---|---|");
        println!(
            "| fill 0 -> {n} Ready pods (median of {rounds}) | {:.3} s |",
            median
        );
        println!(
            "| controller pod writes per created pod | {:.2} |",
            writes_per_pod
        );
        println!(
            "| manager RSS with {cached_pods} cached pool pods | {:.1} MiB |",
            rss_kib as f64 / 1024.0
        );
        println!("| cache bytes per pod | {:.0} B |", per_pod);
        Ok(())
    })
}
