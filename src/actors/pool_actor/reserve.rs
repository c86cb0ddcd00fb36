//! Reservation: the SDK API's pooled create, done by the pool's only allocator.
//!
//! The PoolActor takes idle Ready pods it already knows are free and creates the
//! BatchSandbox already carrying its allocation (ledger, endpoints and finalizer): one API
//! write on the hot path instead of a create, a pool turn and a ledger patch. Until the
//! cache shows the new sandbox, its pods are held as a reservation, so neither a turn nor
//! another reservation can hand them out again.

use std::collections::HashSet;
use std::time::Instant;

use actix::prelude::*;
use kube::ResourceExt;
use kube::api::Api;
use thiserror::Error;

use super::{PoolActor, Wake};
use crate::actors::allocation::SandboxView;
use crate::crd::ledger::{PodList, endpoints_annotation};
use crate::crd::{BatchSandbox, keys};

/// Create `sandbox` (its `spec.poolRef` names this pool) holding idle pods of the pool.
/// `Ok(None)`: not enough idle pods right now; create it plainly and let the pool
/// allocate when pods are ready.
#[derive(Message)]
#[rtype(result = "Result<Option<BatchSandbox>, ReserveError>")]
pub struct Reserve {
    pub sandbox: BatchSandbox,
}

#[derive(Debug, Error)]
pub enum ReserveError {
    #[error("this replica is not the leader")]
    NotLeader,
    #[error("pool {0} does not exist")]
    UnknownPool(String),
    #[error("the pool's actor stopped")]
    ActorGone,
    #[error("creating the sandbox failed: {0}")]
    Create(#[from] kube::Error),
}

/// A not-yet-cached sandbox holding `pods`, as the allocator sees it: satisfied, with
/// nothing to write.
pub(super) fn reserved_view(name: &str, pods: &[String]) -> SandboxView {
    SandboxView {
        name: name.to_string(),
        replicas: pods.len() as u32,
        deleting: false,
        ledger: pods.to_vec(),
        release_requests: Vec::new(),
        has_finalizer: true,
        malformed: false,
        stopping_tasks: false,
        retired: Default::default(),
    }
}

/// Allocatable pods (in allocation order) that no sandbox holds and this turn does not
/// hand out, with their IPs.
pub(super) fn spare_pods(
    allocatable: &[String],
    sandboxes: &[SandboxView],
    taken: &HashSet<String>,
) -> Vec<String> {
    let held = crate::actors::allocation::held_pods(sandboxes);
    allocatable
        .iter()
        .filter(|p| !held.contains(*p) && !taken.contains(*p))
        .cloned()
        .collect()
}

/// `sandbox` with its allocation recorded, exactly as a ledger write would leave it.
pub(super) fn with_allocation(
    mut sandbox: BatchSandbox,
    pods: &[String],
    ips: &[String],
) -> BatchSandbox {
    let meta = &mut sandbox.metadata;
    let annotations = meta.annotations.get_or_insert_with(Default::default);
    annotations.insert(
        keys::ANNOTATION_ALLOC_STATUS.to_string(),
        PodList::new(pods.to_vec()).to_annotation(),
    );
    annotations.insert(
        keys::ANNOTATION_ENDPOINTS.to_string(),
        endpoints_annotation(ips),
    );
    let finalizers = meta.finalizers.get_or_insert_with(Vec::new);
    if !finalizers
        .iter()
        .any(|f| f == keys::FINALIZER_POOL_ALLOCATION)
    {
        finalizers.push(keys::FINALIZER_POOL_ALLOCATION.to_string());
    }
    sandbox
}

impl PoolActor {
    /// Takes `n` spare pods with their IPs, or none if there are fewer. The spare list is
    /// computed at each turn's start (or here, when there is none or it runs short); each
    /// pod taken is checked against the cache again (still
    /// Ready, not terminating, not marked for eviction or frozen), and pods that no longer
    /// qualify are dropped from the list as they are met.
    fn take_spare(&mut self, n: usize) -> Option<Vec<(String, String)>> {
        if n == 0 {
            return None;
        }
        if self.spare.is_none() {
            self.spare = Some(self.prepare()?.spare);
            self.spare_recomputed = true;
        }
        if let Some(taken) = self.take_from_spare(n) {
            return Some(taken);
        }
        if self.spare_recomputed {
            return None;
        }
        // Pods that became Ready since the turn computed the list may make up the difference.
        self.spare = Some(self.prepare()?.spare);
        self.spare_recomputed = true;
        self.take_from_spare(n)
    }

    fn take_from_spare(&mut self, n: usize) -> Option<Vec<(String, String)>> {
        let cache = self.ctx.cache.clone();
        let namespace = self.key.0.clone();
        let deleted = &self.deleted;
        let usable = |name: &str| -> Option<String> {
            let pod = cache.pod(&(namespace.clone(), name.to_string()))?;
            let ok = pod.ready
                && !pod.deleting
                && !pod.evict
                && !pod.freeze_requested
                && !pod.frozen
                && !deleted.contains_key(name);
            if ok { pod.pod_ip.clone() } else { None }
        };
        let spare = self.spare.as_mut()?;
        let mut taken = Vec::with_capacity(n);
        let mut i = 0;
        while taken.len() < n && i < spare.len() {
            match usable(&spare[i]) {
                Some(ip) => {
                    taken.push((spare[i].clone(), ip));
                    i += 1;
                }
                None => {
                    spare.remove(i);
                }
            }
        }
        if taken.len() < n {
            return None;
        }
        spare.drain(..i);
        Some(taken)
    }
}

impl Handler<Reserve> for PoolActor {
    type Result = ResponseActFuture<Self, Result<Option<BatchSandbox>, ReserveError>>;

    fn handle(&mut self, msg: Reserve, _: &mut Context<Self>) -> Self::Result {
        if !self.ctx.gate.is_leader() {
            return Box::pin(fut::ready(Err(ReserveError::NotLeader)));
        }
        let replicas = usize::try_from(msg.sandbox.spec.replicas.max(0)).unwrap_or(0);
        let Some(taken) = self.take_spare(replicas) else {
            return Box::pin(fut::ready(Ok(None)));
        };
        let (pods, ips): (Vec<String>, Vec<String>) = taken.into_iter().unzip();
        let name = msg.sandbox.name_any();
        let namespace = msg
            .sandbox
            .namespace()
            .unwrap_or_else(|| self.key.0.clone());
        let sandbox = with_allocation(msg.sandbox, &pods, &ips);
        self.reserved
            .insert(name.clone(), (pods.clone(), Instant::now()));
        let api: Api<BatchSandbox> = Api::namespaced(self.ctx.client.clone(), &namespace);
        let params = self.ctx.post_params();
        let gate = self.ctx.gate.clone();
        let create = async move {
            if !gate.is_leader() {
                return Err(ReserveError::NotLeader);
            }
            Ok(api.create(&params, &sandbox).await?)
        };
        Box::pin(create.into_actor(self).map(move |result, act, ctx| {
            match &result {
                Ok(created) => {
                    super::super::events::reserved_event(&act.ctx, created);
                    crate::metrics::get()
                        .pool_reservations
                        .with_label_values(&["created"])
                        .inc();
                    crate::metrics::pools::allocated(
                        &act.key.0,
                        &act.key.1,
                        crate::metrics::pools::Path::Warm,
                        1,
                    );
                }
                Err(e) => {
                    tracing::debug!(sandbox = %name, error = %e, "reserved create failed");
                    act.reserved.remove(&name);
                    act.spare = None;
                    crate::metrics::get()
                        .pool_reservations
                        .with_label_values(&["failed"])
                        .inc();
                    crate::metrics::pools::failed(&act.key.0, &act.key.1, "reserved_create");
                }
            }
            // The buffer lost pods (or a failed create gave them back): refill or recount.
            ctx.notify(Wake);
            result.map(Some)
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn spare_pods_skip_held_and_taken_pods_and_keep_order() {
        let sandboxes = vec![
            reserved_view("a", &names(&["p2"])),
            SandboxView {
                name: "b".into(),
                replicas: 1,
                deleting: false,
                ledger: names(&["p4"]),
                release_requests: Vec::new(),
                has_finalizer: true,
                malformed: false,
                stopping_tasks: false,
                retired: Default::default(),
            },
        ];
        let taken: HashSet<String> = names(&["p1"]).into_iter().collect();
        assert_eq!(
            spare_pods(&names(&["p5", "p1", "p2", "p3", "p4"]), &sandboxes, &taken),
            names(&["p5", "p3"])
        );
    }

    #[test]
    fn a_reservation_is_a_satisfied_sandbox() {
        let v = reserved_view("s", &names(&["p1", "p2"]));
        assert_eq!(v.replicas, 2);
        assert!(v.has_finalizer && !v.deleting && !v.malformed);
        let pods = std::collections::HashMap::from([
            (
                "p1".to_string(),
                crate::actors::allocation::PodState {
                    alive: true,
                    ip: Some("10.0.0.1".into()),
                },
            ),
            (
                "p2".to_string(),
                crate::actors::allocation::PodState {
                    alive: true,
                    ip: Some("10.0.0.2".into()),
                },
            ),
        ]);
        let plan =
            crate::actors::allocation::plan(std::slice::from_ref(&v), &pods, &names(&["p3"]));
        assert!(plan.writes.is_empty(), "{plan:?}");
        assert!(plan.released.is_empty());
    }

    #[test]
    fn the_created_sandbox_carries_its_allocation() {
        let bs: BatchSandbox = serde_json::from_value(serde_json::json!({
            "apiVersion": "sandbox.opensandbox.io/v1alpha1", "kind": "BatchSandbox",
            "metadata": {"name": "s", "namespace": "default", "annotations": {"x": "y"}},
            "spec": {"replicas": 1, "poolRef": "warm"}
        }))
        .unwrap();
        let bs = with_allocation(bs, &names(&["p1"]), &names(&["10.0.0.1"]));
        let ledger =
            crate::crd::ledger::Ledger::from_annotations(bs.metadata.annotations.as_ref()).unwrap();
        assert_eq!(ledger.status.pods, names(&["p1"]));
        let a = bs.metadata.annotations.as_ref().unwrap();
        assert_eq!(a["x"], "y");
        assert_eq!(
            crate::crd::ledger::parse_endpoints(&a[keys::ANNOTATION_ENDPOINTS]).unwrap(),
            names(&["10.0.0.1"])
        );
        assert_eq!(
            bs.metadata.finalizers.unwrap(),
            names(&[keys::FINALIZER_POOL_ALLOCATION])
        );
    }
}
