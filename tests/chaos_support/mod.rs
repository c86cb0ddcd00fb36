//! Shared pieces of the chaos tests: the manager as a separate process (so it can be killed
//! with SIGKILL or frozen with SIGSTOP), the embedded API server over loopback HTTP, seeded
//! randomness, SDK calls that never panic or hang, and the invariant checker of
//! ARCHITECTURE.md §4 that reads the API server's state and lists every violation.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::ListParams;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use opensandbox::crd::ledger::Ledger;
use opensandbox::crd::{BatchSandbox, Pool, keys};
use opensandbox::standalone::apiserver::{ApiServer, HttpEndpoint};
use serde_json::Value;

use crate::common;

pub const MANAGER_AGENT_PREFIX: &str = "opensandbox-manager/";

/// An integer knob from the environment (long variants), else `default`.
pub fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// SplitMix64, seeded from `CHAOS_SEED` or the clock; the seed is printed so a failing
/// run can be replayed.
pub struct Rng(u64);

impl Rng {
    pub fn from_env(scenario: &str) -> Self {
        let seed = std::env::var("CHAOS_SEED")
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(1)
            });
        println!("{scenario}: CHAOS_SEED={seed}");
        Self(seed)
    }

    pub fn seeded(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[lo, hi]`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }

    pub fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
}

/// The embedded API server with CRDs, the simulated kubelet, served over loopback HTTP
/// with a kubeconfig file for manager processes.
pub struct Cluster {
    pub server: ApiServer,
    pub kubeconfig: PathBuf,
    _endpoint: HttpEndpoint,
    _kubelet: opensandbox::standalone::kubelet_sim::SimKubelet,
    _dir: tempfile::TempDir,
}

impl Cluster {
    pub async fn start() -> Self {
        let server = common::api_server().await;
        let kubelet = common::kubelet(&server);
        let endpoint = server.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        ApiServer::write_kubeconfig(&kubeconfig, endpoint.addr).unwrap();
        Self {
            server,
            kubeconfig,
            _endpoint: endpoint,
            _kubelet: kubelet,
            _dir: dir,
        }
    }

    pub fn client(&self) -> kube::Client {
        self.server.client()
    }
}

/// `opensandbox manager` running as a child process.
pub struct ManagerProcess {
    pub identity: String,
    pub api: SocketAddr,
    child: Child,
}

impl ManagerProcess {
    /// Starts a manager with its SDK API on a free port; `leader` adds leader election with
    /// a 1 s lease.
    pub fn spawn(cluster: &Cluster, identity: &str, leader: bool, api_key: &str) -> Self {
        let api = common::free_addr();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_opensandbox"));
        cmd.arg("manager")
            .args(["--identity", identity])
            .args(["--api-bind-address", &api.to_string()])
            .args(["--api-advertise-address", &format!("http://{api}")])
            .args(["--metrics-bind-address", "0"])
            .args(["--health-probe-bind-address", "0"])
            .args(["--log-format", "text"])
            .args(["--namespace", "default"])
            .env("KUBECONFIG", &cluster.kubeconfig)
            .env("OPENSANDBOX_SERVER_API_KEY", api_key)
            .env(
                "RUST_LOG",
                std::env::var("CHAOS_MANAGER_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .env_remove("POD_NAME")
            .env_remove("POD_IP")
            .env_remove("POD_NAMESPACE")
            .env_remove("WATCH_NAMESPACE")
            .env_remove("SANDBOX_CONFIG_PATH")
            .stdin(Stdio::null());
        if leader {
            cmd.args(["--leader-elect", "true"])
                .args(["--lease-duration", "1s"])
                .args(["--renew-deadline", "600ms"])
                .args(["--retry-period", "150ms"]);
        }
        let child = cmd.spawn().expect("spawning the manager binary");
        Self {
            identity: identity.to_string(),
            api,
            child,
        }
    }

    pub fn pid(&self) -> Pid {
        Pid::from_raw(self.child.id() as i32)
    }

    pub fn agent(&self) -> String {
        format!("{MANAGER_AGENT_PREFIX}{}", self.identity)
    }

    /// SIGKILL, then reap.
    pub fn kill9(mut self) {
        let _ = kill(self.pid(), Signal::SIGKILL);
        let _ = self.child.wait();
    }

    pub fn freeze(&self) {
        kill(self.pid(), Signal::SIGSTOP).unwrap();
    }

    pub fn thaw(&self) {
        kill(self.pid(), Signal::SIGCONT).unwrap();
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Resident set size in KiB (`VmRSS` of /proc/<pid>/status).
    pub fn rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    }
}

impl Drop for ManagerProcess {
    fn drop(&mut self) {
        let _ = kill(self.pid(), Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

/// One SDK call with a deadline; never panics. `Err` is a transport failure or timeout.
pub async fn sdk_call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    api_key: &str,
    body: Option<Value>,
    timeout: Duration,
) -> Result<(u16, Value), String> {
    use http_body_util::BodyExt;
    let call = async {
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .map_err(|e| format!("handshake: {e}"))?;
        tokio::spawn(conn);
        let bytes = bytes::Bytes::from(body.map(|b| b.to_string()).unwrap_or_default());
        let req = http::Request::builder()
            .method(method)
            .uri(path)
            .header("host", addr.to_string())
            .header("content-type", "application/json")
            .header("open-sandbox-api-key", api_key)
            .body(http_body_util::Full::new(bytes))
            .map_err(|e| e.to_string())?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| format!("request: {e}"))?;
        let code = resp.status().as_u16();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("body: {e}"))?
            .to_bytes();
        let json = if body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&body)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()))
        };
        Ok((code, json))
    };
    match tokio::time::timeout(timeout, call).await {
        Ok(r) => r,
        Err(_) => Err(format!("no answer within {timeout:?}")),
    }
}

/// True for an SDK error answer that explains itself: `{code, message}`, both non-empty.
pub fn is_clear_error(body: &Value) -> bool {
    let non_empty = |v: &Value| v.as_str().is_some_and(|s| !s.is_empty());
    non_empty(&body["code"]) && non_empty(&body["message"])
}

/// What the test did to the sandboxes it manages: the ones that must be live (with their
/// replica count) and the ones it deleted, which must be gone.
#[derive(Clone, Debug, Default)]
pub struct Expected {
    pub live: BTreeMap<String, i32>,
    pub deleted: BTreeSet<String>,
}

impl Expected {
    pub fn created(&mut self, name: &str, replicas: i32) {
        self.deleted.remove(name);
        self.live.insert(name.to_string(), replicas);
    }

    pub fn removed(&mut self, name: &str) {
        self.live.remove(name);
        self.deleted.insert(name.to_string());
    }
}

/// A copy of shared expectations (the lock is released before anything awaits).
pub fn snapshot(expected: &parking_lot::Mutex<Expected>) -> Expected {
    expected.lock().clone()
}

/// Reads the API server's state and lists every violated invariant:
/// - no pod in two sandboxes' ledgers (`alloc-status`);
/// - every ledger entry is a live pod of the sandbox's pool;
/// - every expected live sandbox exists, lists `replicas` pods and is Ready;
/// - every deleted sandbox is gone (finalizers included);
/// - no orphan: every live pod's owner exists, pooled pods outside any ledger stay within
///   the pool's buffer, the pool's `allocated` matches the ledgers.
pub async fn violations(client: &kube::Client, expected: &Expected) -> Vec<String> {
    let mut out = Vec::new();
    let bs_api: Api<BatchSandbox> = Api::namespaced(client.clone(), "default");
    let pool_api: Api<Pool> = Api::namespaced(client.clone(), "default");
    let pod_api: Api<Pod> = Api::namespaced(client.clone(), "default");
    let (Ok(sandboxes), Ok(pools), Ok(pods)) = (
        bs_api.list(&ListParams::default()).await,
        pool_api.list(&ListParams::default()).await,
        pod_api.list(&ListParams::default()).await,
    ) else {
        return vec!["cannot list the state".into()];
    };
    let pods: BTreeMap<String, Pod> = pods
        .items
        .into_iter()
        .map(|p| (p.metadata.name.clone().unwrap_or_default(), p))
        .collect();
    let mut owners: HashMap<String, String> = HashMap::new();
    for p in &pools.items {
        owners.insert(p.metadata.uid.clone().unwrap_or_default(), "Pool".into());
    }
    let mut held_by: BTreeMap<String, String> = BTreeMap::new();
    let mut allocated_per_pool: BTreeMap<String, i32> = BTreeMap::new();
    let mut present = BTreeSet::new();
    for bs in &sandboxes.items {
        let name = bs.metadata.name.clone().unwrap_or_default();
        present.insert(name.clone());
        owners.insert(bs.metadata.uid.clone().unwrap_or_default(), name.clone());
        let ledger = match Ledger::from_annotations(bs.metadata.annotations.as_ref()) {
            Ok(l) => l,
            Err(e) => {
                out.push(format!("{name}: unreadable ledger: {e}"));
                continue;
            }
        };
        let pool = bs.spec.pool_ref.clone().filter(|p| !p.is_empty());
        for pod in &ledger.status.pods {
            if let Some(other) = held_by.insert(pod.clone(), name.clone()) {
                out.push(format!("pod {pod} is in two ledgers: {other} and {name}"));
            }
            match pods.get(pod) {
                None => out.push(format!("{name} lists missing pod {pod}")),
                Some(p) if p.metadata.deletion_timestamp.is_some() => {
                    out.push(format!("{name} lists terminating pod {pod}"))
                }
                Some(p) => {
                    let label = p
                        .metadata
                        .labels
                        .as_ref()
                        .and_then(|l| l.get(keys::LABEL_POOL_NAME));
                    if label != pool.as_ref() {
                        out.push(format!("{name} lists pod {pod} of pool {label:?}"));
                    }
                }
            }
        }
        if let Some(pool) = &pool {
            *allocated_per_pool.entry(pool.clone()).or_default() += ledger.status.pods.len() as i32;
        }
        if expected.deleted.contains(&name) {
            out.push(format!("deleted sandbox {name} still exists"));
            continue;
        }
        let Some(want) = expected.live.get(&name) else {
            continue;
        };
        let uid = bs.metadata.uid.clone().unwrap_or_default();
        let listed = match &pool {
            Some(_) => ledger.status.pods.len() as i32,
            None => pods
                .values()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .filter(|p| owner_uids(p).any(|u| u == uid))
                .count() as i32,
        };
        let ready = bs.status.as_ref().map(|s| s.ready).unwrap_or(0);
        if listed != *want || ready != *want {
            out.push(format!(
                "{name}: wants {want} replicas, has {listed} pods, {ready} Ready"
            ));
        }
    }
    for name in expected.live.keys() {
        if !present.contains(name) {
            out.push(format!("live sandbox {name} is missing"));
        }
    }
    let mut idle_per_pool: BTreeMap<String, i32> = BTreeMap::new();
    for (name, pod) in &pods {
        if pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let uids: Vec<&str> = owner_uids(pod).collect();
        if !uids.iter().any(|u| owners.contains_key(*u)) {
            out.push(format!("pod {name} is orphaned (owners {uids:?} are gone)"));
        }
        if let Some(pool) = pod
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(keys::LABEL_POOL_NAME))
            && !held_by.contains_key(name)
        {
            *idle_per_pool.entry(pool.clone()).or_default() += 1;
        }
    }
    for pool in &pools.items {
        let name = pool.metadata.name.clone().unwrap_or_default();
        let cap = &pool.spec.capacity_spec;
        let idle = idle_per_pool.get(&name).copied().unwrap_or(0);
        let allocated = allocated_per_pool.get(&name).copied().unwrap_or(0);
        if idle > cap.buffer_max || (idle < cap.buffer_min && allocated + idle < cap.pool_max) {
            out.push(format!(
                "pool {name}: {idle} idle pods outside [{}, {}]",
                cap.buffer_min, cap.buffer_max
            ));
        }
        let status_allocated = pool.status.as_ref().map(|s| s.allocated).unwrap_or(0);
        if status_allocated != allocated {
            out.push(format!(
                "pool {name}: status.allocated {status_allocated}, ledgers hold {allocated}"
            ));
        }
    }
    out
}

fn owner_uids(pod: &Pod) -> impl Iterator<Item = &str> {
    pod.metadata
        .owner_references
        .iter()
        .flatten()
        .map(|o| o.uid.as_str())
}

/// Waits until no invariant is violated; returns what is still violated at `timeout`.
pub async fn settle(client: &kube::Client, expected: &Expected, timeout: Duration) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let v = violations(client, expected).await;
        if v.is_empty() || tokio::time::Instant::now() > deadline {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The request log's requests by manager processes: (total, errors answered: 409 or 5xx).
pub fn manager_requests(server: &ApiServer) -> (usize, usize) {
    let entries = server.requests().entries();
    let mine = entries
        .iter()
        .filter(|e| e.user_agent.starts_with(MANAGER_AGENT_PREFIX));
    let (mut total, mut errors) = (0, 0);
    for e in mine {
        total += 1;
        if e.code == 409 || e.code >= 500 {
            errors += 1;
        }
    }
    (total, errors)
}

/// The line each scenario prints; the README's Reliability table copies it.
pub struct Figures {
    pub scenario: &'static str,
    pub rounds: String,
    pub faults: String,
    pub requests: String,
    pub errors: String,
    pub violations: usize,
}

impl Figures {
    pub fn print(&self) {
        println!(
            "CHAOS-FIGURES | {} | {} | {} | {} | {} | {} |",
            self.scenario, self.rounds, self.faults, self.requests, self.errors, self.violations
        );
    }
}
