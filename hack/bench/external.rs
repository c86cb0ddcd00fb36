//! `bench-sdk-create --target URL`: drives an already running lifecycle server (ours or the
//! upstream Python one) with the pooled-create body the official SDK sends, from `--concurrency`
//! workers, each on one keep-alive HTTP/1.1 connection. Only 2xx answers count as creates; every
//! other answer or transport failure is an error. With `--wait-running` a create lasts until
//! `GET /v1/sandboxes/{id}` says `status.state == "Running"`, as the SDK waits. Everything created
//! is deleted after the clock stops, so the next run finds the node agent as this one did.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

/// How long one create may wait for `Running` before it counts as an error.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Between readiness polls; the SDK run in upstream.py polls every 10 ms too.
const POLL: Duration = Duration::from_millis(10);

pub struct Options {
    pub target: String,
    pub api_key: String,
    pub pool: String,
    pub concurrency: usize,
    pub creates: usize,
    pub wait_running: bool,
}

struct Target {
    addr: SocketAddr,
    host: String,
    api_key: String,
    body: Bytes,
    wait_running: bool,
}

/// The body `SandboxSync.create(image, extensions={"poolRef": pool})` sends (SDK 1.1.1 defaults
/// for timeout, resource limits and entrypoint).
fn create_body(pool: &str) -> Bytes {
    Bytes::from(
        json!({
            "image": {"uri": "host"},
            "timeout": 600,
            "resourceLimits": {"cpu": "1", "memory": "2Gi"},
            "entrypoint": ["tail", "-f", "/dev/null"],
            "secureAccess": false,
            "extensions": {"poolRef": pool},
        })
        .to_string(),
    )
}

#[derive(Default)]
struct Outcome {
    latencies: Vec<Duration>,
    ids: Vec<String>,
    errors: usize,
    first_error: Option<String>,
}

impl Outcome {
    fn error(&mut self, what: String) {
        self.errors += 1;
        self.first_error.get_or_insert(what);
    }
}

async fn connect(addr: SocketAddr) -> anyhow::Result<SendRequest<Full<Bytes>>> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    Ok(sender)
}

/// One request on the worker's connection; (status, body).
async fn call(
    sender: &mut SendRequest<Full<Bytes>>,
    t: &Target,
    method: http::Method,
    path: &str,
    body: Bytes,
) -> anyhow::Result<(u16, Bytes)> {
    sender.ready().await?;
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", &t.host)
        .header("content-type", "application/json")
        .header("OPEN-SANDBOX-API-KEY", &t.api_key)
        .body(Full::new(body))?;
    let resp = sender.send_request(req).await?;
    let status = resp.status().as_u16();
    Ok((status, resp.into_body().collect().await?.to_bytes()))
}

/// Polls the sandbox until it is Running; an error names the last state seen.
async fn wait_running(
    sender: &mut SendRequest<Full<Bytes>>,
    t: &Target,
    id: &str,
) -> anyhow::Result<()> {
    let start = Instant::now();
    let path = format!("/v1/sandboxes/{id}");
    loop {
        let (status, body) = call(sender, t, http::Method::GET, &path, Bytes::new()).await?;
        let state = serde_json::from_slice::<Value>(&body).ok().and_then(|v| {
            v.pointer("/status/state")
                .and_then(Value::as_str)
                .map(str::to_owned)
        });
        match (status, state.as_deref()) {
            (200, Some("Running")) => return Ok(()),
            (200, Some("Failed" | "Terminated")) => {
                let v: Value = serde_json::from_slice(&body).unwrap_or_default();
                let field = |k: &str| {
                    v.pointer(&format!("/status/{k}"))
                        .cloned()
                        .unwrap_or_default()
                };
                anyhow::bail!(
                    "sandbox {id} became {state:?} (reason {}, message {})",
                    field("reason"),
                    field("message")
                )
            }
            (200, _) | (404, _) => {}
            _ => anyhow::bail!(
                "GET {path} answered {status}: {}",
                String::from_utf8_lossy(&body)
            ),
        }
        if start.elapsed() > READY_TIMEOUT {
            anyhow::bail!(
                "sandbox {id} not Running after {READY_TIMEOUT:?} (last state {state:?})"
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

/// `n` sequential creates on one connection (a new one after a transport failure).
async fn worker(t: Arc<Target>, n: usize) -> Outcome {
    let mut out = Outcome::default();
    let mut sender = None;
    for _ in 0..n {
        let conn = match sender.take() {
            Some(s) => Ok(s),
            None => connect(t.addr).await,
        };
        let mut s = match conn {
            Ok(s) => s,
            Err(e) => {
                out.error(format!("connect: {e}"));
                continue;
            }
        };
        let start = Instant::now();
        let created = call(
            &mut s,
            &t,
            http::Method::POST,
            "/v1/sandboxes",
            t.body.clone(),
        )
        .await;
        let id = match created {
            Ok((status, body)) if (200..300).contains(&status) => {
                serde_json::from_slice::<Value>(&body)
                    .ok()
                    .and_then(|v| v.get("id").and_then(Value::as_str).map(str::to_owned))
            }
            Ok((status, body)) => {
                out.error(format!(
                    "POST answered {status}: {}",
                    String::from_utf8_lossy(&body)
                ));
                sender = Some(s);
                continue;
            }
            Err(e) => {
                out.error(format!("POST: {e}"));
                continue;
            }
        };
        let Some(id) = id else {
            out.error("POST answered 2xx without an id".into());
            sender = Some(s);
            continue;
        };
        if t.wait_running
            && let Err(e) = wait_running(&mut s, &t, &id).await
        {
            out.error(e.to_string());
            out.ids.push(id);
            continue;
        }
        out.latencies.push(start.elapsed());
        out.ids.push(id);
        sender = Some(s);
    }
    out
}

/// Deletes `ids` on one connection; returns how many deletes failed.
async fn delete_all(t: Arc<Target>, ids: Vec<String>) -> usize {
    let mut failed = 0;
    let Ok(mut s) = connect(t.addr).await else {
        return ids.len();
    };
    for id in ids {
        match call(
            &mut s,
            &t,
            http::Method::DELETE,
            &format!("/v1/sandboxes/{id}"),
            Bytes::new(),
        )
        .await
        {
            Ok((status, _)) if (200..300).contains(&status) || status == 404 => {}
            _ => failed += 1,
        }
    }
    failed
}

fn pct(sorted: &[Duration], p: f64) -> Option<f64> {
    let last = sorted.len().checked_sub(1)?;
    let i = ((last as f64) * p).round() as usize;
    Some(sorted[i.min(last)].as_secs_f64() * 1000.0)
}

pub async fn run(o: Options) -> anyhow::Result<Value> {
    let host = o
        .target
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let addr = tokio::net::lookup_host(&host)
        .await?
        .next()
        .ok_or_else(|| anyhow::anyhow!("{host} resolves to no address"))?;
    let t = Arc::new(Target {
        addr,
        host,
        api_key: o.api_key,
        body: create_body(&o.pool),
        wait_running: o.wait_running,
    });
    let concurrency = o.concurrency.max(1);
    let per_worker = (o.creates / concurrency).max(1);
    let start = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| tokio::spawn(worker(t.clone(), per_worker)))
        .collect();
    let mut all = Outcome::default();
    for task in tasks {
        let o = task.await?;
        all.latencies.extend(o.latencies);
        all.errors += o.errors;
        if all.first_error.is_none() {
            all.first_error = o.first_error;
        }
        all.ids.extend(o.ids);
    }
    let wall = start.elapsed().as_secs_f64();
    all.latencies.sort();
    let created = all.ids.len();
    let chunks: Vec<Vec<String>> = all
        .ids
        .chunks(created.div_ceil(concurrency).max(1))
        .map(<[String]>::to_vec)
        .collect();
    let deletes: Vec<_> = chunks
        .into_iter()
        .map(|c| tokio::spawn(delete_all(t.clone(), c)))
        .collect();
    let mut delete_failures = 0;
    for d in deletes {
        delete_failures += d.await?;
    }
    Ok(json!({
        "target": o.target,
        "pool": o.pool,
        "concurrency": concurrency,
        "wait_running": o.wait_running,
        "attempted": per_worker * concurrency,
        "creates": all.latencies.len(),
        "errors": all.errors,
        "first_error": all.first_error,
        "p50_ms": pct(&all.latencies, 0.5),
        "p99_ms": pct(&all.latencies, 0.99),
        "creates_per_s": all.latencies.len() as f64 / wall,
        "wall_s": wall,
        "deleted": created - delete_failures,
        "delete_failures": delete_failures,
    }))
}
