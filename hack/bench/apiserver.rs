//! Throughput of the embedded API server itself, so later benchmarks know it is not their
//! bottleneck. Prints a JSON object and a readable table.
//!
//! Run: `cargo run --release --example bench-apiserver [-- --writes 40000 --events 20000 --pods 10000]`

#[path = "common.rs"]
mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use http_body_util::BodyExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};
use opensandbox::standalone::apiserver::ApiServer;
use serde_json::json;

fn post(path: &str, body: serde_json::Value) -> Request<Bytes> {
    Request::post(path)
        .header("content-type", "application/json")
        .body(Bytes::from(serde_json::to_vec(&body).unwrap_or_default()))
        .expect("valid request")
}

/// Simple writes (ConfigMap creates) through the raw handler from `workers` tasks.
async fn raw_writes(s: &ApiServer, n: usize, workers: usize, prefix: &str) -> f64 {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..workers {
        let s = s.clone();
        let prefix = prefix.to_string();
        tasks.push(tokio::spawn(async move {
            for i in (w..n).step_by(workers) {
                let body = json!({"metadata": {"name": format!("{prefix}-{i}"), "labels": {"bench": "w"}}, "data": {"k": "v"}});
                let resp = s.request(post("/api/v1/namespaces/default/configmaps", body)).await;
                assert_eq!(resp.status().as_u16(), 201);
            }
        }));
    }
    for t in tasks {
        t.await.expect("writer task");
    }
    n as f64 / start.elapsed().as_secs_f64()
}

/// The same writes through `kube::Client` (client encoding included).
async fn client_writes(s: &ApiServer, n: usize, workers: usize) -> f64 {
    let api: Api<ConfigMap> = Api::namespaced(s.client(), "default");
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..workers {
        let api = api.clone();
        tasks.push(tokio::spawn(async move {
            for i in (w..n).step_by(workers) {
                let cm: ConfigMap = serde_json::from_value(
                    json!({"metadata": {"name": format!("kc-{i}")}, "data": {"k": "v"}}),
                )
                .expect("configmap");
                api.create(&PostParams::default(), &cm)
                    .await
                    .expect("create");
            }
        }));
    }
    for t in tasks {
        t.await.expect("writer task");
    }
    n as f64 / start.elapsed().as_secs_f64()
}

/// Events delivered per second to `watchers` concurrent watch streams while `n` objects are written.
async fn watch_fanout(s: &ApiServer, n: usize, watchers: usize) -> f64 {
    let rv = s.core().store.current_rv();
    let mut readers = Vec::new();
    for _ in 0..watchers {
        let req = Request::get(format!(
            "/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={rv}&labelSelector=bench%3Dfan"
        ))
        .body(Bytes::new())
        .expect("valid request");
        let resp = s.request(req).await;
        let mut body = resp.into_body();
        readers.push(tokio::spawn(async move {
            let mut lines = 0usize;
            while lines < n {
                match body.frame().await {
                    Some(Ok(f)) => {
                        if let Some(d) = f.data_ref() {
                            lines += d.iter().filter(|b| **b == b'\n').count();
                        }
                    }
                    _ => break,
                }
            }
            lines
        }));
    }
    let start = Instant::now();
    let writer = {
        let s = s.clone();
        tokio::spawn(async move {
            for i in 0..n {
                let body =
                    json!({"metadata": {"name": format!("fan-{i}"), "labels": {"bench": "fan"}}});
                s.request(post("/api/v1/namespaces/default/configmaps", body))
                    .await;
            }
        })
    };
    writer.await.expect("writer");
    let mut total = 0;
    for r in readers {
        total += r.await.expect("reader");
    }
    total as f64 / start.elapsed().as_secs_f64()
}

/// Median time to LIST `n` pods (raw request, whole body read).
async fn list_pods(s: &ApiServer, n: usize, rounds: usize) -> (Duration, usize) {
    for i in 0..n {
        let body = json!({"metadata": {"name": format!("pod-{i}"), "labels": {"sandbox.opensandbox.io/managed": "true", "sandbox.opensandbox.io/pool-name": "bench"}},
            "spec": {"containers": [{"name": "main", "image": "busybox:1.36", "command": ["sleep", "infinity"]}]}});
        s.request(post("/api/v1/namespaces/default/pods", body))
            .await;
    }
    let mut times = Vec::new();
    let mut bytes = 0;
    for _ in 0..rounds {
        let t = Instant::now();
        let req = Request::get("/api/v1/namespaces/default/pods")
            .body(Bytes::new())
            .expect("valid request");
        let resp = s.request(req).await;
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        times.push(t.elapsed());
        bytes = body.len();
    }
    times.sort();
    (times[times.len() / 2], bytes)
}

fn main() -> anyhow::Result<()> {
    opensandbox::allocator::tune();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let writes = common::arg("--writes", 40_000);
        let events = common::arg("--events", 20_000);
        let pods = common::arg("--pods", 10_000);
        let s = ApiServer::new();
        raw_writes(&s, 2_000, 4, "warm").await;
        let raw_1 = raw_writes(&s, writes / 4, 1, "r1").await;
        let raw_8 = raw_writes(&s, writes, 8, "r8").await;
        let client_8 = client_writes(&s, writes / 4, 8).await;
        let fan = watch_fanout(&s, events, 10).await;
        let fresh = ApiServer::new();
        let (list, list_bytes) = list_pods(&fresh, pods, 5).await;
        let out = json!({
            "writes_per_s_raw_1_writer": raw_1.round(),
            "writes_per_s_raw_8_writers": raw_8.round(),
            "writes_per_s_kube_client_8_writers": client_8.round(),
            "watch_events_per_s_10_watchers": fan.round(),
            "list_pods": pods,
            "list_ms_median": list.as_secs_f64() * 1000.0,
            "list_bytes": list_bytes,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        println!();
        println!("| measure | value |");
        println!("|---|---|");
        println!("| simple writes/s, raw handler, 1 writer | {:.0} |", raw_1);
        println!("| simple writes/s, raw handler, 8 writers | {:.0} |", raw_8);
        println!(
            "| simple writes/s, kube::Client, 8 writers | {:.0} |",
            client_8
        );
        println!("| watch events/s delivered to 10 watchers | {:.0} |", fan);
        println!(
            "| LIST {} pods, median of 5 | {:.1} ms ({} bytes) |",
            pods,
            list.as_secs_f64() * 1000.0,
            list_bytes
        );
        Ok(())
    })
}
