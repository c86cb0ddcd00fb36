//! SDK lifecycle API create latency from a warm pool (POST /v1/sandboxes to 202) at
//! concurrency 1, 16 and 64, and sustained creates/s. The manager, its SDK API, the embedded
//! API server and a simulated kubelet run in this process; the client speaks HTTP/1.1 over
//! loopback with one keep-alive connection per worker. Prints JSON and a readable table.
//!
//! Run: `cargo build --release && cargo run --release --example bench-sdk-create [-- --per-level 320 --write-latency-ms 5]`
//!
//! With `--target http://HOST:PORT` it starts nothing and drives that server instead (see
//! external.rs): `--api-key KEY --pool NAME --concurrency 16 --creates 256 [--wait-running]`.
//! With `--null-server ADDR` it serves a lifecycle API that does nothing (see null_server.rs).

#[path = "common.rs"]
mod common;
#[path = "external.rs"]
mod external;
#[path = "null_server.rs"]
mod null_server;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use kube::api::{Api, PostParams};
use opensandbox::crd::Pool;
use opensandbox::http::lifecycle::ServerConfig;
use opensandbox::manager::{Manager, ManagerOptions};
use opensandbox::standalone::apiserver::ApiServer;
use opensandbox::standalone::kubelet_sim::{KubeletOptions, SimKubelet};
use serde_json::json;

const BODY: &str = r#"{"image":{"uri":"host"},"timeout":3600,"resourceLimits":{"cpu":"1","memory":"1Gi"},"entrypoint":["tail","-f","/dev/null"],"extensions":{"poolRef":"warm"}}"#;

/// One worker: `n` sequential creates over one connection; returns each latency.
async fn worker(addr: SocketAddr, n: usize) -> anyhow::Result<Vec<Duration>> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let req = http::Request::post("/v1/sandboxes")
            .header("host", addr.to_string())
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from_static(BODY.as_bytes())))?;
        let start = Instant::now();
        let resp = sender.send_request(req).await?;
        let status = resp.status();
        let body = resp.into_body().collect().await?.to_bytes();
        out.push(start.elapsed());
        if status.as_u16() != 202 {
            anyhow::bail!(
                "create answered {status}: {}",
                String::from_utf8_lossy(&body)
            );
        }
    }
    Ok(out)
}

fn pct(v: &mut [Duration], p: f64) -> f64 {
    v.sort();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i.min(v.len() - 1)].as_secs_f64() * 1000.0
}

async fn wait_warm(m: &Manager, n: i32) -> anyhow::Result<()> {
    let start = Instant::now();
    let key = ("default".to_string(), "warm".to_string());
    let warm = |m: &Manager| {
        m.cache
            .pool(&key)
            .and_then(|p| p.status.clone())
            .is_some_and(|st| st.available >= n)
    };
    while !warm(m) {
        if start.elapsed() > Duration::from_secs(120) {
            anyhow::bail!("pool did not warm up");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    opensandbox::allocator::tune();
    if let Some(target) = common::arg_str("--target") {
        return drive_external(target);
    }
    if let Some(addr) = common::arg_str("--null-server") {
        return tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
            .block_on(null_server::serve(addr.parse()?));
    }
    let per_level = common::arg("--per-level", 320);
    let write_latency_ms = common::arg("--write-latency-ms", 0) as u64;
    let sys = actix::System::with_tokio_rt(|| {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("runtime: {e}"))
    });
    sys.block_on(async move {
        let s = ApiServer::new();
        let crds: Vec<serde_json::Value> = opensandbox::crd::all_crds()
            .into_iter()
            .map(serde_json::to_value)
            .collect::<Result<_, _>>()?;
        s.install_crds(&crds).await.map_err(|e| anyhow::anyhow!("{e}"))?;
        let _kubelet = SimKubelet::start(s.client(), KubeletOptions::default());
        let addr: SocketAddr = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        let m = Manager::start(
            s.client(),
            &ManagerOptions {
                identity: "bench".into(),
                api: Some((addr, ServerConfig { namespace: "default".into(), ..ServerConfig::default() })),
                ..ManagerOptions::default()
            },
        )
        .await?;
        let warm = per_level as i32;
        let pool: Pool = serde_json::from_value(json!({
            "apiVersion": "sandbox.opensandbox.io/v1alpha1", "kind": "Pool", "metadata": {"name": "warm"},
            "spec": {"template": {"spec": {"containers": [{"name": "main", "image": "host"}]}},
                     "capacitySpec": {"bufferMin": warm, "bufferMax": warm, "poolMin": 0, "poolMax": (10 * warm).min(10_000)},
                     "scaleStrategy": {"maxUnavailable": "100%"}}
        }))?;
        Api::<Pool>::namespaced(s.client(), "default")
            .create(&PostParams::default(), &pool)
            .await?;
        wait_warm(&m, warm).await?;
        common::inject_write_latency(&s, write_latency_ms);
        let mut report = serde_json::Map::new();
        report.insert("write_latency_ms".into(), json!(write_latency_ms));
        let mut rows = Vec::new();
        for c in [1usize, 16, 64] {
            wait_warm(&m, warm).await?;
            let total = if c == 1 { per_level.min(100) } else { per_level };
            let per_worker = (total / c).max(1);
            s.requests().clear();
            let cpu0 = common::process_cpu_seconds();
            let start = Instant::now();
            let tasks: Vec<_> = (0..c).map(|_| tokio::spawn(worker(addr, per_worker))).collect();
            let mut lat = Vec::new();
            for t in tasks {
                lat.extend(t.await??);
            }
            let wall = start.elapsed().as_secs_f64();
            let cores_busy = (common::process_cpu_seconds() - cpu0) / wall;
            let rate = lat.len() as f64 / wall;
            let (p50, p99) = (pct(&mut lat, 0.5), pct(&mut lat, 0.99));
            // Every API write while this level ran (its creates plus the pool's refill and
            // the simulated kubelet), per create.
            let mut writes = serde_json::Map::new();
            for ((verb, resource), n) in s.requests().counts() {
                if matches!(verb.as_str(), "create" | "update" | "patch" | "delete") {
                    writes.insert(format!("{verb} {resource}"), json!(n as f64 / lat.len() as f64));
                }
            }
            report.insert(
                format!("concurrency_{c}"),
                json!({"creates": lat.len(), "p50_ms": p50, "p99_ms": p99, "creates_per_s": rate,
                       "cpu_cores_busy": cores_busy, "api_writes_per_create": writes}),
            );
            rows.push(format!(
                "| {c} | {} | {p50:.1} ms | {p99:.1} ms | {rate:.0} | {cores_busy:.2} |",
                lat.len()
            ));
        }
        println!("{}", serde_json::to_string_pretty(&report)?);
        println!();
        println!("| concurrency | creates | p50 | p99 | creates/s | CPU cores busy |");
        println!("|---|---|---|---|---|---|");
        for r in rows {
            println!("{r}");
        }
        m.shutdown().await;
        Ok(())
    })
}

fn drive_external(target: String) -> anyhow::Result<()> {
    let options = external::Options {
        target,
        api_key: common::arg_str("--api-key").unwrap_or_default(),
        pool: common::arg_str("--pool").unwrap_or_else(|| "warm".into()),
        concurrency: common::arg("--concurrency", 16),
        creates: common::arg("--creates", 256),
        wait_running: common::flag("--wait-running"),
    };
    let report = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(external::run(options))?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
