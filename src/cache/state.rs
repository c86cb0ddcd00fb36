//! The shared cache: trimmed objects, the indexes that route changes to actors, the
//! readiness barrier and coalescing subscriptions.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use kube::ResourceExt;
use parking_lot::{Mutex, RwLock};
use tokio::sync::{Notify, watch};

use super::objects::{ObjKey, PodInfo};
use crate::crd::{BatchSandbox, Pool, ledger::Ledger};

/// The kinds the cache holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Pool,
    BatchSandbox,
    Pod,
    SandboxSnapshot,
    Job,
}

/// Number of [`Kind`]s.
const KINDS: usize = 5;

impl Kind {
    pub const ALL: [Kind; KINDS] = [
        Kind::Pool,
        Kind::BatchSandbox,
        Kind::Pod,
        Kind::SandboxSnapshot,
        Kind::Job,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Pool => "pool",
            Kind::BatchSandbox => "batchsandbox",
            Kind::Pod => "pod",
            Kind::SandboxSnapshot => "sandboxsnapshot",
            Kind::Job => "job",
        }
    }

    fn index(self) -> usize {
        match self {
            Kind::Pool => 0,
            Kind::BatchSandbox => 1,
            Kind::Pod => 2,
            Kind::SandboxSnapshot => 3,
            Kind::Job => 4,
        }
    }
}

/// An actor a change concerns.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    Pool(ObjKey),
    Sandbox(ObjKey),
    Snapshot(ObjKey),
}

#[derive(Default)]
struct Indexes {
    /// (namespace, pool) -> pod names
    pods_by_pool: HashMap<ObjKey, BTreeSet<String>>,
    /// owner uid -> pod keys
    pods_by_owner: HashMap<String, BTreeSet<ObjKey>>,
    /// (namespace, pool) -> sandbox names
    sandboxes_by_pool: HashMap<ObjKey, BTreeSet<String>>,
    /// pod key -> sandbox holding it in its ledger
    ledger_holder: HashMap<ObjKey, ObjKey>,
}

#[derive(Default)]
struct State {
    pools: HashMap<ObjKey, Arc<Pool>>,
    sandboxes: HashMap<ObjKey, Arc<BatchSandbox>>,
    pods: HashMap<ObjKey, Arc<PodInfo>>,
    idx: Indexes,
}

/// A subscriber's pending targets; repeated changes to one target coalesce.
#[derive(Default)]
pub struct Subscription {
    dirty: Mutex<BTreeSet<Target>>,
    notify: Notify,
}

impl Subscription {
    /// Waits until at least one target is dirty, then takes them all.
    pub async fn next_batch(&self) -> Vec<Target> {
        loop {
            let batch: Vec<Target> = std::mem::take(&mut *self.dirty.lock())
                .into_iter()
                .collect();
            if !batch.is_empty() {
                return batch;
            }
            self.notify.notified().await;
        }
    }

    fn mark(&self, targets: &[Target]) {
        if targets.is_empty() {
            return;
        }
        self.dirty.lock().extend(targets.iter().cloned());
        self.notify.notify_one();
    }
}

/// The informer cache shared by the actors and the HTTP handlers.
pub struct Cache {
    state: RwLock<State>,
    subscribers: Mutex<Vec<Arc<Subscription>>>,
    synced: watch::Sender<[bool; KINDS]>,
    pub(super) snapshot_store: RwLock<super::snapshots::SnapshotStore>,
}

impl Default for Cache {
    fn default() -> Self {
        Self {
            state: RwLock::new(State::default()),
            subscribers: Mutex::new(Vec::new()),
            synced: watch::channel([false; KINDS]).0,
            snapshot_store: RwLock::default(),
        }
    }
}

fn key_of<K: ResourceExt>(o: &K) -> ObjKey {
    (o.namespace().unwrap_or_default(), o.name_any())
}

fn pool_ref_key(bs: &BatchSandbox) -> Option<ObjKey> {
    bs.pool_ref()
        .map(|p| (bs.namespace().unwrap_or_default(), p.to_string()))
}

fn held_pods(bs: &BatchSandbox) -> Vec<String> {
    Ledger::from_annotations(bs.metadata.annotations.as_ref())
        .map(|l| l.status.pods)
        .unwrap_or_default()
        .into_iter()
        .filter(|p| !crate::crd::ledger::is_empty_slot(p))
        .collect()
}

impl Cache {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// A new subscription; every later change marks its targets.
    pub fn subscribe(&self) -> Arc<Subscription> {
        let s = Arc::new(Subscription::default());
        self.subscribers.lock().push(s.clone());
        s
    }

    pub(super) fn publish(&self, targets: Vec<Target>) {
        for s in self.subscribers.lock().iter() {
            s.mark(&targets);
        }
    }

    /// Marks the first complete list of a kind.
    pub fn mark_synced(&self, kind: Kind) {
        self.synced.send_modify(|s| s[kind.index()] = true);
    }

    pub fn is_synced(&self) -> bool {
        self.synced.borrow().iter().all(|s| *s)
    }

    /// Readiness barrier: resolves once every kind has completed its first list.
    pub async fn wait_synced(&self) {
        let mut rx = self.synced.subscribe();
        let _ = rx.wait_for(|s| s.iter().all(|x| *x)).await;
    }

    // ---- writes (from the informers) ----

    pub fn apply_pool(&self, pool: Pool) {
        let key = key_of(&pool);
        let changed = {
            let mut st = self.state.write();
            let same = st
                .pools
                .get(&key)
                .is_some_and(|p| p.resource_version() == pool.resource_version());
            st.pools.insert(key.clone(), Arc::new(pool));
            !same
        };
        if changed {
            self.publish(vec![Target::Pool(key)]);
        }
    }

    pub fn delete_pool(&self, key: &ObjKey) {
        let existed = self.state.write().pools.remove(key).is_some();
        if existed {
            self.publish(vec![Target::Pool(key.clone())]);
        }
    }

    pub fn apply_sandbox(&self, bs: BatchSandbox) {
        let key = key_of(&bs);
        let mut targets = vec![Target::Sandbox(key.clone())];
        {
            let mut st = self.state.write();
            let old = st.sandboxes.get(&key).cloned();
            if old
                .as_ref()
                .is_some_and(|o| o.resource_version() == bs.resource_version())
            {
                return;
            }
            if let Some(old) = &old {
                unindex_sandbox(&mut st.idx, &key, old, &mut targets);
            }
            index_sandbox(&mut st.idx, &key, &bs, &mut targets);
            st.sandboxes.insert(key, Arc::new(bs));
        }
        self.publish(dedup(targets));
    }

    pub fn delete_sandbox(&self, key: &ObjKey) {
        let mut targets = vec![Target::Sandbox(key.clone())];
        {
            let mut st = self.state.write();
            let Some(old) = st.sandboxes.remove(key) else {
                return;
            };
            unindex_sandbox(&mut st.idx, key, &old, &mut targets);
        }
        self.publish(dedup(targets));
    }

    pub fn apply_pod(&self, pod: PodInfo) {
        let key = pod.key();
        let mut targets = Vec::new();
        {
            let mut st = self.state.write();
            let old = st.pods.get(&key).cloned();
            if old.as_deref() == Some(&pod) {
                return;
            }
            if let Some(old) = &old {
                unindex_pod(&mut st.idx, old);
                pod_targets(&st.idx, old, &mut targets);
            }
            index_pod(&mut st.idx, &pod);
            pod_targets(&st.idx, &pod, &mut targets);
            st.pods.insert(key, Arc::new(pod));
        }
        self.publish(dedup(targets));
    }

    pub fn delete_pod(&self, key: &ObjKey) {
        let mut targets = Vec::new();
        {
            let mut st = self.state.write();
            let Some(old) = st.pods.remove(key) else {
                return;
            };
            unindex_pod(&mut st.idx, &old);
            pod_targets(&st.idx, &old, &mut targets);
        }
        self.publish(dedup(targets));
    }

    /// Replaces a kind's whole content after a (re)list: objects missing from the new list
    /// are deleted (so deletes missed during a watch gap reach the actors), the rest applied.
    pub fn replace_pools(&self, pools: Vec<Pool>) {
        let gone = self.missing(|st| &st.pools, pools.iter().map(key_of));
        gone.iter().for_each(|k| self.delete_pool(k));
        pools.into_iter().for_each(|p| self.apply_pool(p));
    }

    pub fn replace_sandboxes(&self, list: Vec<BatchSandbox>) {
        let gone = self.missing(|st| &st.sandboxes, list.iter().map(key_of));
        gone.iter().for_each(|k| self.delete_sandbox(k));
        list.into_iter().for_each(|b| self.apply_sandbox(b));
    }

    pub fn replace_pods(&self, list: Vec<PodInfo>) {
        let gone = self.missing(|st| &st.pods, list.iter().map(PodInfo::key));
        gone.iter().for_each(|k| self.delete_pod(k));
        list.into_iter().for_each(|p| self.apply_pod(p));
    }

    /// Cached keys of one kind that a fresh list no longer contains.
    fn missing<V>(
        &self,
        kind: impl Fn(&State) -> &HashMap<ObjKey, V>,
        listed: impl Iterator<Item = ObjKey>,
    ) -> Vec<ObjKey> {
        let keep: HashSet<ObjKey> = listed.collect();
        kind(&self.state.read())
            .keys()
            .filter(|k| !keep.contains(*k))
            .cloned()
            .collect()
    }

    // ---- reads ----

    pub fn pool(&self, key: &ObjKey) -> Option<Arc<Pool>> {
        self.state.read().pools.get(key).cloned()
    }

    pub fn sandbox(&self, key: &ObjKey) -> Option<Arc<BatchSandbox>> {
        self.state.read().sandboxes.get(key).cloned()
    }

    pub fn pod(&self, key: &ObjKey) -> Option<Arc<PodInfo>> {
        self.state.read().pods.get(key).cloned()
    }

    pub fn pools(&self) -> Vec<Arc<Pool>> {
        self.state.read().pools.values().cloned().collect()
    }

    /// Pools of one namespace.
    pub fn pools_in(&self, namespace: &str) -> Vec<Arc<Pool>> {
        self.state
            .read()
            .pools
            .iter()
            .filter(|((ns, _), _)| ns == namespace)
            .map(|(_, p)| p.clone())
            .collect()
    }

    pub fn sandboxes(&self) -> Vec<Arc<BatchSandbox>> {
        self.state.read().sandboxes.values().cloned().collect()
    }

    /// Pods labelled with a pool, in name order.
    pub fn pods_of_pool(&self, pool: &ObjKey) -> Vec<Arc<PodInfo>> {
        let st = self.state.read();
        st.idx
            .pods_by_pool
            .get(pool)
            .into_iter()
            .flatten()
            .filter_map(|name| st.pods.get(&(pool.0.clone(), name.clone())).cloned())
            .collect()
    }

    /// Pods whose ownerReferences name this uid.
    pub fn pods_owned_by(&self, uid: &str) -> Vec<Arc<PodInfo>> {
        let st = self.state.read();
        st.idx
            .pods_by_owner
            .get(uid)
            .into_iter()
            .flatten()
            .filter_map(|k| st.pods.get(k).cloned())
            .collect()
    }

    /// Sandboxes whose `spec.poolRef` names this pool.
    pub fn sandboxes_of_pool(&self, pool: &ObjKey) -> Vec<Arc<BatchSandbox>> {
        let st = self.state.read();
        st.idx
            .sandboxes_by_pool
            .get(pool)
            .into_iter()
            .flatten()
            .filter_map(|n| st.sandboxes.get(&(pool.0.clone(), n.clone())).cloned())
            .collect()
    }

    /// The sandbox whose ledger lists this pod.
    pub fn ledger_holder(&self, pod: &ObjKey) -> Option<ObjKey> {
        self.state.read().idx.ledger_holder.get(pod).cloned()
    }

    /// Object counts per kind and approximate bytes of the pod cache.
    pub fn stats(&self) -> CacheStats {
        let st = self.state.read();
        CacheStats {
            pools: st.pools.len(),
            sandboxes: st.sandboxes.len(),
            pods: st.pods.len(),
            pod_bytes: st.pods.values().map(|p| p.approx_bytes()).sum(),
        }
    }
}

/// Sizes of the cache.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub pools: usize,
    pub sandboxes: usize,
    pub pods: usize,
    pub pod_bytes: usize,
}

fn dedup(mut t: Vec<Target>) -> Vec<Target> {
    t.sort();
    t.dedup();
    t
}

fn index_sandbox(idx: &mut Indexes, key: &ObjKey, bs: &BatchSandbox, targets: &mut Vec<Target>) {
    if let Some(pool) = pool_ref_key(bs) {
        idx.sandboxes_by_pool
            .entry(pool.clone())
            .or_default()
            .insert(key.1.clone());
        targets.push(Target::Pool(pool));
    }
    for pod in held_pods(bs) {
        idx.ledger_holder.insert((key.0.clone(), pod), key.clone());
    }
}

fn unindex_sandbox(idx: &mut Indexes, key: &ObjKey, bs: &BatchSandbox, targets: &mut Vec<Target>) {
    if let Some(pool) = pool_ref_key(bs) {
        if let Some(set) = idx.sandboxes_by_pool.get_mut(&pool) {
            set.remove(&key.1);
            if set.is_empty() {
                idx.sandboxes_by_pool.remove(&pool);
            }
        }
        targets.push(Target::Pool(pool));
    }
    for pod in held_pods(bs) {
        let pk = (key.0.clone(), pod);
        if idx.ledger_holder.get(&pk) == Some(key) {
            idx.ledger_holder.remove(&pk);
        }
    }
}

fn index_pod(idx: &mut Indexes, pod: &PodInfo) {
    if let Some(pool) = &pod.pool {
        idx.pods_by_pool
            .entry((pod.namespace.clone(), pool.clone()))
            .or_default()
            .insert(pod.name.clone());
    }
    if let Some(o) = &pod.owner {
        idx.pods_by_owner
            .entry(o.uid.clone())
            .or_default()
            .insert(pod.key());
    }
}

fn unindex_pod(idx: &mut Indexes, pod: &PodInfo) {
    if let Some(pool) = &pod.pool {
        let k = (pod.namespace.clone(), pool.clone());
        if let Some(set) = idx.pods_by_pool.get_mut(&k) {
            set.remove(&pod.name);
            if set.is_empty() {
                idx.pods_by_pool.remove(&k);
            }
        }
    }
    if let Some(o) = &pod.owner
        && let Some(set) = idx.pods_by_owner.get_mut(&o.uid)
    {
        set.remove(&pod.key());
        if set.is_empty() {
            idx.pods_by_owner.remove(&o.uid);
        }
    }
}

/// Actors a pod change concerns: its pool, its template-mode owner and its ledger holder.
fn pod_targets(idx: &Indexes, pod: &PodInfo, targets: &mut Vec<Target>) {
    if let Some(pool) = &pod.pool {
        targets.push(Target::Pool((pod.namespace.clone(), pool.clone())));
    }
    if let Some(o) = &pod.owner
        && o.kind == "BatchSandbox"
    {
        targets.push(Target::Sandbox((pod.namespace.clone(), o.name.clone())));
    }
    if let Some(holder) = idx.ledger_holder.get(&pod.key()) {
        targets.push(Target::Sandbox(holder.clone()));
    }
}
