//! Shared harness for actor tests: the embedded API server, the simulated kubelet and a
//! controller (cache, informers, actors) talking to it in-process.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use opensandbox::actors::leader::{LeaderConfig, LeaderElector, LeaderGate, LeaderHandle};
use opensandbox::actors::{ActorConfig, Controller, run_actors};
use opensandbox::cache::{Cache, InformerConfig};
use opensandbox::standalone::apiserver::ApiServer;
use opensandbox::standalone::kubelet_sim::{KubeletOptions, SimKubelet};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// User-Agent prefix of every test manager's requests (the request log records it).
pub const MANAGER_AGENT_PREFIX: &str = "opensandbox-manager/";

pub async fn api_server() -> ApiServer {
    let s = ApiServer::new();
    let crds: Vec<Value> = opensandbox::crd::all_crds()
        .into_iter()
        .map(|c| serde_json::to_value(c).unwrap())
        .collect();
    s.install_crds(&crds).await.unwrap();
    s
}

/// The simulated kubelet, also serving the server's `pods/exec`.
pub fn kubelet(s: &ApiServer) -> SimKubelet {
    let k = SimKubelet::start(s.client(), KubeletOptions::default());
    s.set_pod_executor(Some(k.executor()));
    k
}

/// One manager: cache, informers and actors (optionally leader-elected).
pub struct Manager {
    pub cache: Arc<Cache>,
    pub identity: String,
    shutdown: watch::Sender<bool>,
    informers: Vec<JoinHandle<()>>,
    pub leader: Option<LeaderHandle>,
}

impl Manager {
    pub async fn start(s: &ApiServer, identity: &str, leader: Option<LeaderConfig>) -> Self {
        Self::start_with(s, identity, leader, ActorConfig::default()).await
    }

    /// [`Manager::start`] with actor settings (the field manager is still set per identity).
    pub async fn start_with(
        s: &ApiServer,
        identity: &str,
        leader: Option<LeaderConfig>,
        config: ActorConfig,
    ) -> Self {
        let client = s.client_with_user_agent(&format!("{MANAGER_AGENT_PREFIX}{identity}"));
        let cache = Cache::new();
        let informers = opensandbox::cache::informer::start(
            client.clone(),
            cache.clone(),
            &InformerConfig::default(),
        );
        let handle = leader.map(|cfg| LeaderElector::spawn(client.clone(), cfg).unwrap());
        let gate = handle
            .as_ref()
            .map(|h| h.gate())
            .unwrap_or_else(LeaderGate::always);
        let config = ActorConfig {
            field_manager: format!("manager-{identity}"),
            ..config
        };
        let ctx = Controller::new(client, cache.clone(), gate, identity, config);
        let (tx, rx) = watch::channel(false);
        actix::spawn(run_actors(ctx, handle.as_ref().map(|h| h.subscribe()), rx));
        Self {
            cache,
            identity: identity.to_string(),
            shutdown: tx,
            informers,
            leader: handle,
        }
    }

    /// Stops like a crash: informers and actors end, the lease is not released.
    pub fn kill(mut self) {
        let _ = self.shutdown.send(true);
        for t in &self.informers {
            t.abort();
        }
        if let Some(l) = self.leader.take() {
            l.abort();
        }
    }

    pub fn is_leader(&self) -> bool {
        self.leader.as_ref().is_none_or(|l| l.is_leader())
    }
}

impl Drop for Manager {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        for t in &self.informers {
            t.abort();
        }
    }
}

pub fn pool_json(
    name: &str,
    buffer_min: i32,
    buffer_max: i32,
    pool_min: i32,
    pool_max: i32,
) -> Value {
    json!({
        "apiVersion": "sandbox.opensandbox.io/v1alpha1", "kind": "Pool",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "template": {"metadata": {"labels": {"app": "sandbox"}},
                         "spec": {"containers": [{"name": "main", "image": "busybox:1.36", "command": ["sleep", "infinity"]}]}},
            "capacitySpec": {"bufferMin": buffer_min, "bufferMax": buffer_max, "poolMin": pool_min, "poolMax": pool_max},
            "scaleStrategy": {"maxUnavailable": "100%"}
        }
    })
}

pub async fn eventually<F, Fut>(what: &str, timeout: Duration, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if f().await {
            return;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A loopback address nothing listens on yet, for a server to bind next. Taken below the
/// kernel's ephemeral range (32768 and up), which `:0` binds and the tests' own outgoing
/// connections draw from: a port from there can be taken again before the server binds it.
/// Each test process walks its own slice (by pid), so concurrent tests never share one.
pub fn free_addr() -> std::net::SocketAddr {
    use std::sync::atomic::{AtomicU16, Ordering};
    const SLICE: u16 = 200;
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let base = 20_000 + (std::process::id() % 60) as u16 * SLICE;
    for _ in 0..SLICE {
        let addr = std::net::SocketAddr::from((
            [127, 0, 0, 1],
            base + NEXT.fetch_add(1, Ordering::Relaxed) % SLICE,
        ));
        if std::net::TcpListener::bind(addr).is_ok() {
            return addr;
        }
    }
    panic!("no free port in 127.0.0.1:{base}..{}", base + SLICE)
}

/// One HTTP/1.1 call with a JSON body; returns the status, the headers and the JSON answer
/// (Null when empty, a string when not JSON).
pub async fn http_json(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> (u16, http::HeaderMap, Value) {
    use http_body_util::BodyExt;
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let mut req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string())
        .header("content-type", "application/json");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let bytes = bytes::Bytes::from(body.map(|b| b.to_string()).unwrap_or_default());
    let resp = sender
        .send_request(req.body(http_body_util::Full::new(bytes)).unwrap())
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let json = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()))
    };
    (status, headers, json)
}

/// Scrapes `/metrics` at `addr` and parses it with a real Prometheus text parser.
pub async fn scrape(addr: std::net::SocketAddr) -> prometheus_parse::Scrape {
    let (code, _, body) = http_json(addr, "GET", "/metrics", &[], None).await;
    assert_eq!(code, 200);
    let text = body.as_str().expect("text exposition").to_string();
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .expect("exposition parses")
}

/// Sum of the samples of `metric` whose labels include `labels` (histograms: their count).
pub fn metric_value(s: &prometheus_parse::Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    use prometheus_parse::Value;
    s.samples
        .iter()
        .filter(|x| x.metric == metric)
        .filter(|x| labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v)))
        .map(|x| match &x.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
            Value::Histogram(b) => b.last().map(|b| b.count).unwrap_or(0.0),
            Value::Summary(_) => 0.0,
        })
        .sum()
}
