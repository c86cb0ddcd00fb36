//! A simulated kubelet for tests and benchmarks: moves our pods Pending -> Running -> Ready
//! with an address, and can crash or restart them. The standalone node agent replaces it
//! with real processes.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use futures::StreamExt;
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use crate::cache::managed_pod_selector;
use crate::standalone::apiserver::{ExecError, ExecIo, ExecRequest, PodExecutor};

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
    exec: SimExec,
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
        let exec = SimExec(Arc::new(SimExecState {
            client: client.clone(),
            failing: parking_lot::Mutex::new(HashSet::new()),
            container_ids: AtomicU32::new(1),
            status_lock: tokio::sync::Mutex::new(()),
            ready_delay: Duration::from_millis(50),
        }));
        Self { task, client, exec }
    }

    /// The `pods/exec` side of this kubelet, to hand to the API server.
    pub fn executor(&self) -> Arc<dyn PodExecutor> {
        Arc::new(self.exec.clone())
    }

    /// From now on every exec in this pod fails (exit code 1, nothing restarts); `false`
    /// heals it.
    pub fn fail_exec(&self, namespace: &str, name: &str, fail: bool) {
        let key = (namespace.to_string(), name.to_string());
        let mut failing = self.exec.0.failing.lock();
        if fail {
            failing.insert(key);
        } else {
            failing.remove(&key);
        }
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

/// Simulated `pods/exec`: any command "restarts" the container (new containerID,
/// restartCount + 1, not Ready for a moment, then Ready again); `echo` also prints its
/// arguments. An unknown container is an error.
#[derive(Clone)]
pub struct SimExec(Arc<SimExecState>);

pub struct SimExecState {
    client: Client,
    failing: parking_lot::Mutex<HashSet<(String, String)>>,
    container_ids: AtomicU32,
    /// Serialises read-modify-write of pod statuses (merge patches replace whole lists).
    status_lock: tokio::sync::Mutex<()>,
    ready_delay: Duration,
}

fn set_condition(conditions: &mut Vec<Value>, type_: &str, status: bool, now: &str) {
    let value = if status { "True" } else { "False" };
    match conditions.iter_mut().find(|c| c["type"] == type_) {
        Some(c) => {
            if c["status"] != value {
                c["status"] = json!(value);
                c["lastTransitionTime"] = json!(now);
            }
        }
        None => conditions.push(json!({"type": type_, "status": value, "lastTransitionTime": now})),
    }
}

impl SimExecState {
    fn field_manager() -> PatchParams {
        PatchParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..Default::default()
        }
    }

    /// Restarts `container`: a new container ID, one more restart, not Ready.
    async fn restart(&self, api: &Api<Pod>, pod: &str, container: &str) -> Result<(), ExecError> {
        let _guard = self.status_lock.lock().await;
        let current = api
            .get(pod)
            .await
            .map_err(|e| ExecError::Failed(e.to_string()))?;
        let status = serde_json::to_value(current.status.unwrap_or_default())
            .map_err(|e| ExecError::Failed(e.to_string()))?;
        let mut containers = status["containerStatuses"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let Some(target) = containers.iter_mut().find(|c| c["name"] == container) else {
            return Err(ExecError::ContainerNotFound {
                pod: pod.to_string(),
                container: container.to_string(),
            });
        };
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let n = self.container_ids.fetch_add(1, Ordering::Relaxed);
        let restarts = target["restartCount"].as_i64().unwrap_or(0) + 1;
        target["lastState"] =
            json!({"terminated": {"exitCode": 137, "reason": "Error", "finishedAt": now}});
        target["containerID"] = json!(format!("sim://{pod}-{container}-r{n}"));
        target["restartCount"] = json!(restarts);
        target["state"] = json!({"running": {"startedAt": now}});
        target["ready"] = json!(false);
        let mut conditions = status["conditions"].as_array().cloned().unwrap_or_default();
        set_condition(&mut conditions, "ContainersReady", false, &now);
        set_condition(&mut conditions, "Ready", false, &now);
        let patch = json!({"status": {"containerStatuses": containers, "conditions": conditions}});
        api.patch_status(pod, &Self::field_manager(), &Patch::Merge(&patch))
            .await
            .map(|_| ())
            .map_err(|e| ExecError::Failed(e.to_string()))
    }

    /// Marks every running container and the pod Ready again.
    async fn ready_again(&self, api: &Api<Pod>, pod: &str) -> Result<(), kube::Error> {
        let _guard = self.status_lock.lock().await;
        let current = api.get(pod).await?;
        let status = serde_json::to_value(current.status.unwrap_or_default()).unwrap_or_default();
        let mut containers = status["containerStatuses"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for c in containers
            .iter_mut()
            .filter(|c| c["state"]["running"].is_object())
        {
            c["ready"] = json!(true);
        }
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let mut conditions = status["conditions"].as_array().cloned().unwrap_or_default();
        set_condition(&mut conditions, "ContainersReady", true, &now);
        set_condition(&mut conditions, "Ready", true, &now);
        let patch = json!({"status": {"containerStatuses": containers, "conditions": conditions}});
        api.patch_status(pod, &Self::field_manager(), &Patch::Merge(&patch))
            .await
            .map(|_| ())
    }
}

impl PodExecutor for SimExec {
    fn exec(&self, req: ExecRequest, io: ExecIo) -> BoxFuture<'static, Result<i32, ExecError>> {
        let state = self.0.clone();
        Box::pin(async move {
            let failing = state
                .failing
                .lock()
                .contains(&(req.namespace.clone(), req.pod.clone()));
            if failing {
                if let Some(err) = &io.stderr {
                    let _ = err
                        .send(bytes::Bytes::from_static(b"simulated exec failure\n"))
                        .await;
                }
                return Ok(1);
            }
            let api: Api<Pod> = Api::namespaced(state.client.clone(), &req.namespace);
            if req.command.first().map(String::as_str) == Some("echo")
                && let Some(out) = &io.stdout
            {
                let line = format!("{}\n", req.command[1..].join(" "));
                let _ = out.send(bytes::Bytes::from(line)).await;
            }
            state.restart(&api, &req.pod, &req.container).await?;
            let pod = req.pod.clone();
            tokio::spawn(async move {
                tokio::time::sleep(state.ready_delay).await;
                if let Err(e) = state.ready_again(&api, &pod).await {
                    tracing::debug!(pod = %pod, error = %e, "sim kubelet readiness write failed");
                }
            });
            Ok(0)
        })
    }
}
