//! A simulated kubelet for tests and benchmarks: moves our pods Pending -> Running -> Ready
//! with an address, and can crash or restart them. The standalone node agent replaces it
//! with real processes.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use crate::cache::managed_pod_selector;

/// The field manager of every status write of the simulated kubelet.
pub const FIELD_MANAGER: &str = "test-kubelet";

/// How the simulated kubelet behaves.
#[derive(Clone, Debug)]
pub struct KubeletOptions {
    /// Delay between seeing a pending pod and reporting it Ready.
    pub ready_delay: Duration,
    /// Node name reported in the status (`spec.nodeName` is left to schedulers).
    pub node_name: String,
}

impl Default for KubeletOptions {
    fn default() -> Self {
        Self {
            ready_delay: Duration::ZERO,
            node_name: "sim-node".to_string(),
        }
    }
}

/// A running simulated kubelet; stops when dropped.
pub struct SimKubelet {
    task: JoinHandle<()>,
    client: Client,
}

impl Drop for SimKubelet {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn running_status(pod: &Pod, ip: &str, node: &str) -> Value {
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let containers: Vec<Value> = pod
        .spec
        .as_ref()
        .map(|s| {
            s.containers
                .iter()
                .map(|c| {
                    json!({"name": c.name, "ready": true, "started": true, "restartCount": 0,
                           "image": c.image, "imageID": "", "containerID": format!("sim://{}-{}", pod.name_any(), c.name),
                           "state": {"running": {"startedAt": now}}})
                })
                .collect()
        })
        .unwrap_or_default();
    let cond = |t: &str| json!({"type": t, "status": "True", "lastTransitionTime": now});
    json!({"status": {
        "phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}], "hostIP": "127.0.0.1", "startTime": now,
        "conditions": [cond("PodScheduled"), cond("Initialized"), cond("ContainersReady"), cond("Ready")],
        "containerStatuses": containers,
        "nominatedNodeName": node,
    }})
}

fn needs_start(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && pod
            .status
            .as_ref()
            .and_then(|s| s.phase.as_deref())
            .is_none_or(|p| p == "Pending")
}

impl SimKubelet {
    /// Starts watching our pods (all namespaces) and reporting them Ready.
    pub fn start(client: Client, opts: KubeletOptions) -> Self {
        let api: Api<Pod> = Api::all(client.clone());
        let counter = Arc::new(AtomicU32::new(1));
        let task_client = client.clone();
        let task = tokio::spawn(async move {
            let cfg = watcher::Config::default().labels(&managed_pod_selector());
            let mut stream = std::pin::pin!(watcher(api, cfg).default_backoff().applied_objects());
            while let Some(ev) = stream.next().await {
                let Ok(pod) = ev else { continue };
                if !needs_start(&pod) {
                    continue;
                }
                let n = counter.fetch_add(1, Ordering::Relaxed);
                let ip = format!("10.{}.{}.{}", 64 + (n >> 16) % 64, (n >> 8) & 255, n & 255);
                let client = task_client.clone();
                let opts = opts.clone();
                tokio::spawn(async move {
                    if !opts.ready_delay.is_zero() {
                        tokio::time::sleep(opts.ready_delay).await;
                    }
                    let ns = pod.namespace().unwrap_or_default();
                    let api: Api<Pod> = Api::namespaced(client, &ns);
                    let patch = running_status(&pod, &ip, &opts.node_name);
                    let pp = PatchParams {
                        field_manager: Some(FIELD_MANAGER.into()),
                        ..Default::default()
                    };
                    if let Err(e) = api
                        .patch_status(&pod.name_any(), &pp, &Patch::Merge(&patch))
                        .await
                    {
                        tracing::debug!(pod = %pod.name_any(), error = %e, "sim kubelet status write failed");
                    }
                });
            }
        });
        Self { task, client }
    }

    /// Makes a pod crash: not Ready, container waiting in CrashLoopBackOff, one more restart.
    pub async fn crash(&self, namespace: &str, name: &str) -> Result<(), kube::Error> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let pod = api.get(name).await?;
        let restarts = pod
            .status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .and_then(|c| c.first())
            .map(|c| c.restart_count)
            .unwrap_or(0);
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let containers: Vec<Value> = pod
            .spec
            .as_ref()
            .map(|s| {
                s.containers
                    .iter()
                    .map(|c| json!({"name": c.name, "ready": false, "restartCount": restarts + 1, "image": c.image, "imageID": "",
                                    "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off restarting failed container"}}}))
                    .collect()
            })
            .unwrap_or_default();
        let patch = json!({"status": {"conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": now}],
                                      "containerStatuses": containers}});
        let pp = PatchParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..Default::default()
        };
        api.patch_status(name, &pp, &Patch::Merge(&patch))
            .await
            .map(|_| ())
    }
}
