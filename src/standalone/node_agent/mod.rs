//! The local node agent: the standalone replacement of the kubelet. It watches our pods and
//! runs each as a process tree with the executor as its init, in its own mount, pid, uts and
//! ipc namespaces where the host allows, with a distinct loopback pod IP and cgroup limits.
//! Images are recorded but never pulled: the host's root is the sandbox root.

pub mod backoff;
pub mod cgroup;
pub mod exec;
mod freezer;
pub mod ipalloc;
pub mod process;
pub mod quantity;
pub mod status;
mod worker;

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Client, ResourceExt};
use nix::sys::signal::Signal;
use parking_lot::Mutex;
use thiserror::Error;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use backoff::BackoffPolicy;
pub use cgroup::Cgroups;
pub use ipalloc::IpAllocator;

use crate::cache::managed_pod_selector;

/// The field manager of every status write of the agent.
pub const FIELD_MANAGER: &str = "opensandbox-node-agent";
/// Env var naming the executor binary.
pub const EXECUTOR_BIN_ENV: &str = "OPENSANDBOX_EXECUTOR_BIN";
/// File name of the executor next to the current executable.
pub const EXECUTOR_BIN_NAME: &str = "opensandbox-executor";

#[derive(Debug, Error)]
pub enum NodeAgentError {
    #[error(
        "executor binary not found (set {EXECUTOR_BIN_ENV} or install {EXECUTOR_BIN_NAME} next to this binary)"
    )]
    ExecutorNotFound,
    #[error("no free loopback pod IP")]
    NoFreeIp,
    #[error("pod directory {path}: {source}")]
    Dirs {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("starting the pod's process thread: {0}")]
    Thread(std::io::Error),
    #[error("the pod's process thread ended before reporting")]
    ThreadDied,
    #[error(transparent)]
    Spawn(#[from] process::SpawnError),
}

/// How the agent runs pods.
#[derive(Clone, Debug)]
pub struct NodeAgentOptions {
    /// Pod directories live in `<state_dir>/pods/<namespace>/<name>/{tmp,workspace}`.
    pub state_dir: PathBuf,
    /// The executor; default: env `OPENSANDBOX_EXECUTOR_BIN`, else next to the current
    /// executable (or its parent directory, for test binaries in `target/*/deps`).
    pub executor_bin: Option<PathBuf>,
    /// Normally `/sys/fs/cgroup`.
    pub cgroup_root: PathBuf,
    /// Try mount/pid/uts/ipc namespaces (falls back to a process group when denied).
    pub namespaces: bool,
    /// `pids.max` of every pod (contains fork bombs).
    pub pids_max: u64,
    /// Upper bound of the termination grace period.
    pub max_grace: Duration,
    pub ready_poll: Duration,
    /// After this, readiness is polled every second instead of every `ready_poll`.
    pub ready_fast_window: Duration,
    pub backoff: BackoffPolicy,
    pub execd_port: u16,
    pub task_port: u16,
}

impl Default for NodeAgentOptions {
    fn default() -> Self {
        Self {
            state_dir: default_state_dir(),
            executor_bin: None,
            cgroup_root: PathBuf::from("/sys/fs/cgroup"),
            namespaces: true,
            pids_max: 4096,
            max_grace: Duration::from_secs(2),
            ready_poll: Duration::from_millis(20),
            ready_fast_window: Duration::from_secs(30),
            backoff: BackoffPolicy::default(),
            execd_port: 44772,
            task_port: 5758,
        }
    }
}

fn default_state_dir() -> PathBuf {
    dirs::data_local_dir()
        .unwrap_or_else(std::env::temp_dir)
        .join("opensandbox")
        .join("node")
}

/// Finds the executor: explicit path, env var, then next to the current executable.
pub fn find_executor(explicit: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = explicit {
        return Some(p.to_path_buf());
    }
    if let Some(p) = std::env::var_os(EXECUTOR_BIN_ENV).filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let exe = std::env::current_exe().ok()?;
    exe.ancestors()
        .skip(1)
        .take(2)
        .map(|d| d.join(EXECUTOR_BIN_NAME))
        .find(|p| p.is_file())
}

/// Pod IPs are unique per process, across agents, since they share the loopback device.
static IPS: LazyLock<Mutex<IpAllocator>> = LazyLock::new(|| Mutex::new(IpAllocator::new()));

/// Allocates a pod IP whose execd and task ports are free on this host.
fn allocate_ip(preferred: Option<Ipv4Addr>, ports: [u16; 2]) -> Option<Ipv4Addr> {
    IPS.lock()
        .allocate(preferred, |ip| ports.iter().all(|p| port_is_free(ip, *p)))
}

/// Whether nothing listens on `ip:port`, found by binding without listening (SO_REUSEADDR,
/// close-on-exec). A listening probe could keep the port from the pod's own executor: a pod
/// process another thread clones before its exec holds a copy of every open descriptor, and a
/// listening copy keeps the port taken until that exec; a bound-only copy does not stop the
/// executor's bind, while a real listener still fails this one.
fn port_is_free(ip: Ipv4Addr, port: u16) -> bool {
    bound_probe(ip, port).is_some()
}

/// A TCP socket bound to `ip:port` and not listening, or None when the bind fails.
fn bound_probe(ip: Ipv4Addr, port: u16) -> Option<std::os::fd::OwnedFd> {
    use nix::sys::socket::{
        AddressFamily, SockFlag, SockType, SockaddrIn, bind, setsockopt, socket, sockopt,
    };
    use std::os::fd::AsRawFd;
    let fd = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .ok()?;
    let addr = SockaddrIn::from(std::net::SocketAddrV4::new(ip, port));
    setsockopt(&fd, sockopt::ReuseAddr, &true).ok()?;
    bind(fd.as_raw_fd(), &addr).ok()?;
    Some(fd)
}

fn release_ip(ip: Ipv4Addr) {
    IPS.lock().release(ip);
}

/// A live pod init process, so dropping the handle can kill it synchronously.
#[derive(Clone, Debug)]
struct Live {
    pid: i32,
    cgroup: cgroup::PodCgroup,
    /// The container the init runs (exec targets it by name).
    container: String,
    /// Working directory of exec'd commands.
    cwd: PathBuf,
}

struct Shared {
    client: Client,
    opts: NodeAgentOptions,
    executor: Option<PathBuf>,
    cgroups: Cgroups,
    live: Mutex<HashMap<String, Live>>,
}

/// The node agent. Start it with [`NodeAgent::start`].
pub struct NodeAgent;

impl NodeAgent {
    /// Starts watching our pods (all namespaces) and running them; see [`NodeAgentHandle`].
    pub fn start(client: Client, opts: NodeAgentOptions) -> NodeAgentHandle {
        start(client, opts)
    }
}

/// A running agent. Dropping it kills every pod process (SIGKILL) without touching the API.
pub struct NodeAgentHandle {
    shared: Arc<Shared>,
    task: JoinHandle<()>,
    workers: Arc<Mutex<HashMap<String, worker::WorkerRef>>>,
}

impl NodeAgentHandle {
    /// How pods are isolated on this host, as logged at startup.
    pub fn cgroups(&self) -> &Cgroups {
        &self.shared.cgroups
    }

    /// Host pids of the live pod init processes, by `namespace/name`.
    pub fn pids(&self) -> HashMap<String, i32> {
        self.shared
            .live
            .lock()
            .iter()
            .map(|(k, l)| (k.clone(), l.pid))
            .collect()
    }

    /// Runs `pods/exec` commands inside this agent's pods; hand it to the API server.
    pub fn executor(&self) -> Arc<dyn crate::standalone::apiserver::PodExecutor> {
        Arc::new(exec::AgentExec {
            shared: self.shared.clone(),
        })
    }

    /// Stops the agent and kills every pod (the pods stay in the API, like a kubelet that
    /// went away).
    pub async fn shutdown(self) {
        self.task.abort();
        let workers: Vec<_> = self.workers.lock().drain().map(|(_, w)| w).collect();
        for w in workers {
            w.stop().await;
        }
    }
}

impl Drop for NodeAgentHandle {
    fn drop(&mut self) {
        self.task.abort();
        for (_, w) in self.workers.lock().drain() {
            w.abort();
        }
        for live in self.shared.live.lock().values() {
            process::signal_tree(live.pid, Signal::SIGKILL);
            live.cgroup.kill_all();
        }
    }
}

/// Starts the agent on the current tokio runtime.
pub fn start(client: Client, opts: NodeAgentOptions) -> NodeAgentHandle {
    let cgroups = Cgroups::detect(&opts.cgroup_root);
    let executor = find_executor(opts.executor_bin.as_deref());
    let ns = if !opts.namespaces {
        "disabled".to_string()
    } else if nix::unistd::geteuid().is_root() {
        "mount,pid,uts,ipc (falls back to a process group if denied)".to_string()
    } else {
        "unavailable (not root): process groups".to_string()
    };
    tracing::info!(
        state_dir = %opts.state_dir.display(),
        executor = ?executor,
        namespaces = %ns,
        cgroups = %cgroups.describe(),
        "node agent starting"
    );
    match &executor {
        None => tracing::error!("{}", NodeAgentError::ExecutorNotFound),
        // Sandboxes get a private /tmp, which hides anything below the host's /tmp.
        Some(p) if opts.namespaces && p.starts_with("/tmp") => tracing::warn!(
            executor = %p.display(),
            "the executor lives under /tmp and is invisible inside sandboxes; install it elsewhere"
        ),
        Some(_) => {}
    }
    let shared = Arc::new(Shared {
        client,
        opts,
        executor,
        cgroups,
        live: Mutex::new(HashMap::new()),
    });
    let workers: Arc<Mutex<HashMap<String, worker::WorkerRef>>> = Arc::default();
    let task = tokio::spawn(watch_loop(shared.clone(), workers.clone()));
    NodeAgentHandle {
        shared,
        task,
        workers,
    }
}

fn key(pod: &Pod) -> String {
    format!("{}/{}", pod.namespace().unwrap_or_default(), pod.name_any())
}

fn is_finished(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

async fn watch_loop(shared: Arc<Shared>, workers: Arc<Mutex<HashMap<String, worker::WorkerRef>>>) {
    let api: Api<Pod> = Api::all(shared.client.clone());
    let cfg = watcher::Config::default().labels(&managed_pod_selector());
    let mut stream = std::pin::pin!(watcher::watcher(api, cfg).default_backoff());
    let mut listed: Option<Vec<String>> = None;
    while let Some(ev) = stream.next().await {
        let ev = match ev {
            Ok(ev) => ev,
            Err(e) => {
                tracing::debug!(error = %e, "node agent watch error");
                continue;
            }
        };
        match ev {
            Event::Init => listed = Some(Vec::new()),
            Event::InitApply(pod) => {
                if let Some(l) = listed.as_mut() {
                    l.push(key(&pod));
                }
                on_apply(&shared, &workers, pod);
            }
            Event::InitDone => {
                // Pods deleted while the watch was down.
                let seen = listed.take().unwrap_or_default();
                let gone: Vec<_> = workers
                    .lock()
                    .keys()
                    .filter(|k| !seen.contains(k))
                    .cloned()
                    .collect();
                for k in gone {
                    if let Some(w) = workers.lock().remove(&k) {
                        w.delete(false);
                    }
                }
            }
            Event::Apply(pod) => on_apply(&shared, &workers, pod),
            Event::Delete(pod) => {
                let k = key(&pod);
                let mut ws = workers.lock();
                if ws
                    .get(&k)
                    .is_some_and(|w| w.uid == pod.uid().unwrap_or_default())
                    && let Some(w) = ws.remove(&k)
                {
                    w.delete(false);
                }
            }
        }
    }
}

fn on_apply(
    shared: &Arc<Shared>,
    workers: &Arc<Mutex<HashMap<String, worker::WorkerRef>>>,
    pod: Pod,
) {
    let k = key(&pod);
    let uid = pod.uid().unwrap_or_default();
    let mut ws = workers.lock();
    let mut previous = None;
    if let Some(w) = ws.get(&k) {
        if w.uid == uid {
            let live = shared.live.lock().get(&k).cloned();
            if pod.metadata.deletion_timestamp.is_some() {
                // A frozen pod must run again to shut down gracefully.
                if let Some(l) = live.filter(|_| freezer::reported_frozen(&pod)) {
                    freezer::set_frozen(&l, false);
                }
                if let Some(w) = ws.remove(&k) {
                    w.delete(true);
                }
            } else if let (Some(frozen), Some(l)) = (freezer::wanted_change(&pod), live) {
                tokio::spawn(freezer::reconcile(shared.client.clone(), l, pod, frozen));
            }
            return;
        }
        // Same name, new pod: the old one is gone; its cleanup must finish first.
        previous = ws.remove(&k).map(|w| w.delete(false));
    }
    // A terminating pod we never ran still needs its directories removed and its deletion
    // confirmed; the worker does only that.
    if is_finished(&pod) && pod.metadata.deletion_timestamp.is_none() {
        return;
    }
    let (tx, rx) = watch::channel(None);
    let task = tokio::spawn(worker::run(
        shared.clone(),
        k.clone(),
        pod,
        rx,
        previous.flatten(),
    ));
    ws.insert(
        k,
        worker::WorkerRef {
            uid,
            tx,
            task: Some(task),
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_port_probe_sees_listeners_and_never_blocks_the_executor() {
        let ip = Ipv4Addr::new(127, 0, 77, 9);
        let listener = std::net::TcpListener::bind((ip, 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        assert!(!port_is_free(ip, port), "a listener holds the port");
        drop(listener);
        assert!(port_is_free(ip, port));
        // What a pod process cloned mid-probe would keep: a bound, not listening socket.
        let _leaked = bound_probe(ip, port).unwrap();
        assert!(
            std::net::TcpListener::bind((ip, port)).is_ok(),
            "the executor's bind succeeds next to a leaked probe"
        );
    }
}
