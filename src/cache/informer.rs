//! One kube-runtime watcher per kind feeding the cache, with backoff, a periodic full
//! relist and the first-list readiness barrier.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use serde::de::DeserializeOwned;
use tokio::task::JoinHandle;

use super::objects::{PodInfo, trim_pool, trim_sandbox};
use super::state::{Cache, Kind};
use crate::crd::{BatchSandbox, Pool, SandboxSnapshot, keys};
use crate::metrics;

/// How the informers watch.
#[derive(Clone, Debug)]
pub struct InformerConfig {
    /// Watch one namespace, or all when `None`.
    pub namespace: Option<String>,
    /// Interval of the full relist that catches anything a watch missed.
    pub relist_interval: Duration,
}

impl Default for InformerConfig {
    fn default() -> Self {
        Self {
            namespace: None,
            relist_interval: Duration::from_secs(30 * 60),
        }
    }
}

/// The label selector that finds every pod this controller created.
pub fn managed_pod_selector() -> String {
    format!("{}={}", keys::LABEL_MANAGED, keys::LABEL_MANAGED_VALUE)
}

fn api<K>(client: &Client, ns: &Option<String>) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match ns {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Applies a kind's watch events to the cache. Objects are trimmed as they arrive, so a
/// relist never buffers full objects.
trait Sink<K>: Send + Sync + 'static {
    type Trimmed: Send;
    fn trim(&self, obj: K) -> Self::Trimmed;
    fn apply(&self, cache: &Cache, obj: Self::Trimmed);
    fn delete(&self, cache: &Cache, obj: K);
    fn replace(&self, cache: &Cache, objs: Vec<Self::Trimmed>);
}

fn key(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> (String, String) {
    (
        meta.namespace.clone().unwrap_or_default(),
        meta.name.clone().unwrap_or_default(),
    )
}

struct PoolSink;
impl Sink<Pool> for PoolSink {
    type Trimmed = Pool;
    fn trim(&self, o: Pool) -> Pool {
        trim_pool(o)
    }
    fn apply(&self, c: &Cache, o: Pool) {
        c.apply_pool(o)
    }
    fn delete(&self, c: &Cache, o: Pool) {
        c.delete_pool(&key(&o.metadata))
    }
    fn replace(&self, c: &Cache, o: Vec<Pool>) {
        c.replace_pools(o)
    }
}

struct SandboxSink;
impl Sink<BatchSandbox> for SandboxSink {
    type Trimmed = BatchSandbox;
    fn trim(&self, o: BatchSandbox) -> BatchSandbox {
        trim_sandbox(o)
    }
    fn apply(&self, c: &Cache, o: BatchSandbox) {
        c.apply_sandbox(o)
    }
    fn delete(&self, c: &Cache, o: BatchSandbox) {
        c.delete_sandbox(&key(&o.metadata))
    }
    fn replace(&self, c: &Cache, o: Vec<BatchSandbox>) {
        c.replace_sandboxes(o)
    }
}

struct SnapshotSink;
impl Sink<SandboxSnapshot> for SnapshotSink {
    type Trimmed = SandboxSnapshot;
    fn trim(&self, o: SandboxSnapshot) -> SandboxSnapshot {
        super::snapshots::trim_snapshot(o)
    }
    fn apply(&self, c: &Cache, o: SandboxSnapshot) {
        c.apply_snapshot(o)
    }
    fn delete(&self, c: &Cache, o: SandboxSnapshot) {
        c.delete_snapshot(&key(&o.metadata))
    }
    fn replace(&self, c: &Cache, o: Vec<SandboxSnapshot>) {
        c.replace_snapshots(o)
    }
}

/// Our commit Jobs only (selected by the snapshot-name label).
struct JobSink;
impl Sink<Job> for JobSink {
    type Trimmed = Job;
    fn trim(&self, o: Job) -> Job {
        super::snapshots::trim_job(o)
    }
    fn apply(&self, c: &Cache, o: Job) {
        c.apply_job(o)
    }
    fn delete(&self, c: &Cache, o: Job) {
        c.delete_job(&key(&o.metadata))
    }
    fn replace(&self, c: &Cache, o: Vec<Job>) {
        c.replace_jobs(o)
    }
}

struct PodSink;
impl Sink<Pod> for PodSink {
    type Trimmed = PodInfo;
    fn trim(&self, o: Pod) -> PodInfo {
        PodInfo::from_pod(&o)
    }
    fn apply(&self, c: &Cache, o: PodInfo) {
        c.apply_pod(o)
    }
    fn delete(&self, c: &Cache, o: Pod) {
        c.delete_pod(&key(&o.metadata))
    }
    fn replace(&self, c: &Cache, o: Vec<PodInfo>) {
        c.replace_pods(o)
    }
}

async fn run<K, S>(
    cache: Arc<Cache>,
    api: Api<K>,
    wc: watcher::Config,
    kind: Kind,
    sink: S,
    relist: Duration,
) where
    K: kube::Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static,
    K::DynamicType: Default,
    S: Sink<K>,
{
    let mut why = metrics::cache::Restart::Initial;
    loop {
        let stream = watcher(api.clone(), wc.clone()).default_backoff();
        let mut stream = std::pin::pin!(stream);
        let mut buffer: Vec<S::Trimmed> = Vec::new();
        let deadline = tokio::time::sleep(relist);
        let mut deadline = std::pin::pin!(deadline);
        loop {
            let ev = tokio::select! {
                ev = stream.next() => ev,
                _ = &mut deadline => break,
            };
            let Some(ev) = ev else { break };
            match ev {
                Ok(watcher::Event::Init) => {
                    metrics::cache::relist(kind.as_str(), why);
                    buffer.clear();
                }
                Ok(watcher::Event::InitApply(o)) => buffer.push(sink.trim(o)),
                Ok(watcher::Event::InitDone) => {
                    sink.replace(&cache, std::mem::take(&mut buffer));
                    cache.mark_synced(kind);
                    metrics::cache::listed(kind.as_str());
                }
                Ok(watcher::Event::Apply(o)) => {
                    metrics::cache::event(kind.as_str(), "apply");
                    sink.apply(&cache, sink.trim(o))
                }
                Ok(watcher::Event::Delete(o)) => {
                    metrics::cache::event(kind.as_str(), "delete");
                    sink.delete(&cache, o)
                }
                Err(e) => {
                    // The watcher lists again after an error it cannot resume from (410).
                    why = metrics::cache::Restart::Error;
                    metrics::cache::watch_error(kind.as_str());
                    tracing::warn!(kind = kind.as_str(), error = %e, "watch error; retrying with backoff");
                }
            }
        }
        why = metrics::cache::Restart::Periodic;
        metrics::cache::periodic_restart(kind.as_str());
        tracing::debug!(kind = kind.as_str(), "starting a periodic full relist");
    }
}

/// Starts the informers; they run until the handles are aborted.
pub fn start(client: Client, cache: Arc<Cache>, cfg: &InformerConfig) -> Vec<JoinHandle<()>> {
    let pods_cfg = watcher::Config::default().labels(&managed_pod_selector());
    vec![
        tokio::spawn(run(
            cache.clone(),
            api::<Pool>(&client, &cfg.namespace),
            watcher::Config::default(),
            Kind::Pool,
            PoolSink,
            cfg.relist_interval,
        )),
        tokio::spawn(run(
            cache.clone(),
            api::<BatchSandbox>(&client, &cfg.namespace),
            watcher::Config::default(),
            Kind::BatchSandbox,
            SandboxSink,
            cfg.relist_interval,
        )),
        tokio::spawn(run(
            cache.clone(),
            api::<SandboxSnapshot>(&client, &cfg.namespace),
            watcher::Config::default(),
            Kind::SandboxSnapshot,
            SnapshotSink,
            cfg.relist_interval,
        )),
        tokio::spawn(run(
            cache.clone(),
            api::<Job>(&client, &cfg.namespace),
            watcher::Config::default().labels(keys::LABEL_SANDBOX_SNAPSHOT_NAME),
            Kind::Job,
            JobSink,
            cfg.relist_interval,
        )),
        tokio::spawn(run(
            cache,
            api::<Pod>(&client, &cfg.namespace),
            pods_cfg,
            Kind::Pod,
            PodSink,
            cfg.relist_interval,
        )),
    ]
}
