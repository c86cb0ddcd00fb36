//! Trimmed copies of watched objects: only what the controller reads, shared as `Arc`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;

use crate::crd::{BatchSandbox, Pool, keys};

/// Namespace and name.
pub type ObjKey = (String, String);

/// The controlling owner of a pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnerRef {
    pub kind: String,
    pub name: String,
    pub uid: String,
}

/// One container's runtime state, as Restart recycling and failure detection need it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerState {
    pub name: String,
    pub container_id: Option<String>,
    pub running: bool,
    pub restarts: i32,
    /// Waiting reason (`CrashLoopBackOff`, `ImagePullBackOff`...).
    pub waiting_reason: Option<String>,
}

/// What the controller knows about one of its pods.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodInfo {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub resource_version: String,
    pub pool: Option<String>,
    pub revision: Option<String>,
    pub evict: bool,
    pub batch_sandbox: Option<String>,
    pub pod_index: Option<u32>,
    pub owner: Option<OwnerRef>,
    pub created: DateTime<Utc>,
    pub deleting: bool,
    pub node_name: Option<String>,
    pub phase: String,
    pub pod_ip: Option<String>,
    /// Ready condition True (and phase Running).
    pub ready: bool,
    pub ready_since: Option<DateTime<Utc>>,
    pub containers: Vec<ContainerState>,
    /// The `restart-record` annotation (Restart recycling in progress).
    pub restart_record: Option<String>,
    /// The controller asked the node agent to freeze the pod (standalone pause).
    pub freeze_requested: bool,
    /// The node agent reports the pod's processes frozen.
    pub frozen: bool,
}

impl PodInfo {
    pub fn key(&self) -> ObjKey {
        (self.namespace.clone(), self.name.clone())
    }

    /// Scheduled or has an address.
    pub fn assigned(&self) -> bool {
        self.node_name.is_some() || self.pod_ip.is_some()
    }

    pub fn restarts(&self) -> i32 {
        self.containers
            .iter()
            .map(|c| c.restarts)
            .max()
            .unwrap_or(0)
    }

    /// The first container failure reason a sandbox reports (upstream's list).
    pub fn failure_reason(&self) -> Option<&str> {
        self.containers.iter().find_map(|c| {
            c.waiting_reason.as_deref().filter(|r| {
                matches!(
                    *r,
                    "CrashLoopBackOff"
                        | "ImagePullBackOff"
                        | "ErrImagePull"
                        | "CreateContainerConfigError"
                )
            })
        })
    }

    /// Trims a full pod.
    pub fn from_pod(pod: &Pod) -> Self {
        let labels = pod.labels();
        let status = pod.status.as_ref();
        let ready_cond = status
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"));
        let phase = status
            .and_then(|s| s.phase.clone())
            .unwrap_or_else(|| "Pending".to_string());
        let ready = phase == "Running" && ready_cond.is_some_and(|c| c.status == "True");
        let containers = status
            .and_then(|s| s.container_statuses.as_ref())
            .map(|cs| {
                cs.iter()
                    .map(|c| ContainerState {
                        name: c.name.clone(),
                        container_id: c.container_id.clone(),
                        running: c.state.as_ref().is_some_and(|s| s.running.is_some()),
                        restarts: c.restart_count,
                        waiting_reason: c
                            .state
                            .as_ref()
                            .and_then(|s| s.waiting.as_ref())
                            .and_then(|w| w.reason.clone()),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let owner = pod
            .owner_references()
            .iter()
            .find(|o| o.controller == Some(true))
            .map(|o| OwnerRef {
                kind: o.kind.clone(),
                name: o.name.clone(),
                uid: o.uid.clone(),
            });
        Self {
            namespace: pod.namespace().unwrap_or_default(),
            name: pod.name_any(),
            uid: pod.uid().unwrap_or_default(),
            resource_version: pod.resource_version().unwrap_or_default(),
            pool: labels.get(keys::LABEL_POOL_NAME).cloned(),
            revision: labels.get(keys::LABEL_POOL_REVISION).cloned(),
            evict: labels.contains_key(keys::LABEL_EVICT),
            batch_sandbox: labels.get(keys::LABEL_BATCH_SANDBOX_NAME).cloned(),
            pod_index: labels
                .get(keys::LABEL_POD_INDEX)
                .and_then(|i| i.parse().ok()),
            owner,
            created: pod
                .metadata
                .creation_timestamp
                .as_ref()
                .map(|t| to_chrono(&t.0))
                .unwrap_or_else(Utc::now),
            deleting: pod.metadata.deletion_timestamp.is_some(),
            node_name: pod
                .spec
                .as_ref()
                .and_then(|s| s.node_name.clone())
                .filter(|n| !n.is_empty()),
            phase,
            pod_ip: status
                .and_then(|s| s.pod_ip.clone())
                .filter(|ip| !ip.is_empty()),
            ready,
            ready_since: ready_cond
                .and_then(|c| c.last_transition_time.as_ref().map(|t| to_chrono(&t.0))),
            containers,
            restart_record: pod
                .annotations()
                .get(keys::ANNOTATION_RESTART_RECORD)
                .cloned(),
            freeze_requested: annotation_is_true(pod, keys::ANNOTATION_FREEZE),
            frozen: annotation_is_true(pod, keys::ANNOTATION_FROZEN),
        }
    }

    /// Approximate heap and inline size, for the cache-bytes metric.
    pub fn approx_bytes(&self) -> usize {
        let s = |o: &Option<String>| o.as_ref().map(String::len).unwrap_or(0);
        std::mem::size_of::<Self>()
            + self.namespace.len()
            + self.name.len()
            + self.uid.len()
            + self.resource_version.len()
            + s(&self.pool)
            + s(&self.revision)
            + s(&self.batch_sandbox)
            + s(&self.node_name)
            + s(&self.pod_ip)
            + s(&self.restart_record)
            + self.phase.len()
            + self
                .owner
                .as_ref()
                .map(|o| {
                    std::mem::size_of::<OwnerRef>() + o.kind.len() + o.name.len() + o.uid.len()
                })
                .unwrap_or(0)
            + self
                .containers
                .iter()
                .map(|c| {
                    std::mem::size_of::<ContainerState>()
                        + c.name.len()
                        + s(&c.container_id)
                        + s(&c.waiting_reason)
                })
                .sum::<usize>()
    }
}

fn annotation_is_true(pod: &Pod, key: &str) -> bool {
    pod.annotations().get(key).is_some_and(|v| v == "true")
}

/// Converts a Kubernetes timestamp.
pub fn to_chrono(ts: &k8s_openapi::jiff::Timestamp) -> DateTime<Utc> {
    DateTime::from_timestamp(ts.as_second(), ts.subsec_nanosecond().max(0) as u32)
        .unwrap_or_else(Utc::now)
}

/// Annotations the controller reads on a BatchSandbox.
const SANDBOX_ANNOTATIONS: &[&str] = &[
    keys::ANNOTATION_ALLOC_STATUS,
    keys::ANNOTATION_ALLOC_RELEASE,
    keys::ANNOTATION_ALLOC_RELEASED,
    keys::ANNOTATION_ENDPOINTS,
    keys::ANNOTATION_SECURE_ACCESS_TOKEN,
    keys::ANNOTATION_RELEASED_TASKS,
];

fn keep_annotations(annotations: &mut BTreeMap<String, String>, keep: &[&str]) {
    annotations.retain(|k, _| keep.contains(&k.as_str()));
}

/// Trims a BatchSandbox: no managedFields, only our annotations.
pub fn trim_sandbox(mut bs: BatchSandbox) -> BatchSandbox {
    bs.metadata.managed_fields = None;
    if let Some(a) = bs.metadata.annotations.as_mut() {
        keep_annotations(a, SANDBOX_ANNOTATIONS);
    }
    bs
}

/// Trims a Pool: no managedFields, only the restart configuration annotation.
pub fn trim_pool(mut pool: Pool) -> Pool {
    pool.metadata.managed_fields = None;
    if let Some(a) = pool.metadata.annotations.as_mut() {
        keep_annotations(a, &[keys::ANNOTATION_RESTART_CONFIG]);
    }
    pool
}
