//! SandboxSnapshots and their commit Jobs in the cache. A snapshot change concerns the
//! snapshot's actor and the sandbox it names; a Job change concerns the snapshot named by its
//! label.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::batch::v1::Job;
use kube::ResourceExt;

use super::objects::ObjKey;
use super::state::{Cache, Target};
use crate::crd::{SandboxSnapshot, keys};

#[derive(Default)]
pub(super) struct SnapshotStore {
    snapshots: HashMap<ObjKey, Arc<SandboxSnapshot>>,
    jobs: HashMap<ObjKey, Arc<Job>>,
}

fn key_of<K: ResourceExt>(o: &K) -> ObjKey {
    (o.namespace().unwrap_or_default(), o.name_any())
}

fn snapshot_targets(s: &SandboxSnapshot) -> [Target; 2] {
    let ns = s.namespace().unwrap_or_default();
    [
        Target::Snapshot((ns.clone(), s.name_any())),
        Target::Sandbox((ns, s.spec.sandbox_name.clone())),
    ]
}

fn job_target(j: &Job) -> Option<Target> {
    j.labels()
        .get(keys::LABEL_SANDBOX_SNAPSHOT_NAME)
        .map(|s| Target::Snapshot((j.namespace().unwrap_or_default(), s.clone())))
}

/// Drops what the controller never reads (managed fields, the Job's pod template).
pub(super) fn trim_job(mut job: Job) -> Job {
    job.metadata.managed_fields = None;
    if let Some(spec) = job.spec.as_mut() {
        spec.template = Default::default();
    }
    job
}

/// Drops managed fields.
pub(super) fn trim_snapshot(mut s: SandboxSnapshot) -> SandboxSnapshot {
    s.metadata.managed_fields = None;
    s
}

impl Cache {
    pub fn apply_snapshot(&self, s: SandboxSnapshot) {
        let key = key_of(&s);
        let mut targets = snapshot_targets(&s).to_vec();
        {
            let mut st = self.snapshot_store.write();
            if let Some(old) = st.snapshots.get(&key) {
                if old.resource_version() == s.resource_version() {
                    return;
                }
                targets.extend(snapshot_targets(old));
            }
            st.snapshots.insert(key, Arc::new(s));
        }
        targets.sort();
        targets.dedup();
        self.publish(targets);
    }

    pub fn delete_snapshot(&self, key: &ObjKey) {
        let old = self.snapshot_store.write().snapshots.remove(key);
        if let Some(old) = old {
            self.publish(snapshot_targets(&old).to_vec());
        }
    }

    pub fn replace_snapshots(&self, list: Vec<SandboxSnapshot>) {
        let keep: HashSet<ObjKey> = list.iter().map(key_of).collect();
        let gone: Vec<ObjKey> = (self.snapshot_store.read().snapshots.keys())
            .filter(|k| !keep.contains(*k))
            .cloned()
            .collect();
        gone.iter().for_each(|k| self.delete_snapshot(k));
        list.into_iter().for_each(|s| self.apply_snapshot(s));
    }

    pub fn apply_job(&self, job: Job) {
        let key = key_of(&job);
        let target = job_target(&job);
        {
            let mut st = self.snapshot_store.write();
            if st
                .jobs
                .get(&key)
                .is_some_and(|o| o.resource_version() == job.resource_version())
            {
                return;
            }
            st.jobs.insert(key, Arc::new(job));
        }
        self.publish(target.into_iter().collect());
    }

    pub fn delete_job(&self, key: &ObjKey) {
        let old = self.snapshot_store.write().jobs.remove(key);
        if let Some(old) = old {
            self.publish(job_target(&old).into_iter().collect());
        }
    }

    pub fn replace_jobs(&self, list: Vec<Job>) {
        let keep: HashSet<ObjKey> = list.iter().map(key_of).collect();
        let gone: Vec<ObjKey> = (self.snapshot_store.read().jobs.keys())
            .filter(|k| !keep.contains(*k))
            .cloned()
            .collect();
        gone.iter().for_each(|k| self.delete_job(k));
        list.into_iter().for_each(|j| self.apply_job(j));
    }

    pub fn snapshot(&self, key: &ObjKey) -> Option<Arc<SandboxSnapshot>> {
        self.snapshot_store.read().snapshots.get(key).cloned()
    }

    /// Snapshots of one namespace (all when `None`).
    pub fn snapshots(&self, namespace: Option<&str>) -> Vec<Arc<SandboxSnapshot>> {
        self.snapshot_store
            .read()
            .snapshots
            .iter()
            .filter(|((ns, _), _)| namespace.is_none_or(|n| n == ns))
            .map(|(_, s)| s.clone())
            .collect()
    }

    pub fn job(&self, key: &ObjKey) -> Option<Arc<Job>> {
        self.snapshot_store.read().jobs.get(key).cloned()
    }
}
