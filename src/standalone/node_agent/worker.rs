//! One task per pod: set up, start, supervise, restart and finally tear down its process.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use k8s_openapi::api::core::v1::{Container, Pod};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use nix::sys::signal::Signal;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use super::backoff::Backoff;
use super::cgroup::PodCgroup;
use super::process::{self, Exit, SpawnError, SpawnSpec, Spawned};
use super::quantity::{self, Limits};
use super::status::{self, ConditionClock, ContainerState, PodView, RestartPolicy, Terminated};
use super::{FIELD_MANAGER, Live, NodeAgentError, Shared, allocate_ip, release_ip};

/// Why a worker stops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Stop {
    /// The pod is gone (or going): kill, clean up everything, and when `confirm`, finish
    /// the graceful deletion in the API as the kubelet does.
    Delete { confirm: bool },
    /// The agent stops: kill, but keep the pod's directories.
    Shutdown,
}

pub(super) struct WorkerRef {
    pub uid: String,
    pub tx: watch::Sender<Option<Stop>>,
    pub task: Option<JoinHandle<()>>,
}

impl WorkerRef {
    /// Asks the worker to delete its pod; returns its task to await the cleanup.
    pub fn delete(mut self, confirm: bool) -> Option<JoinHandle<()>> {
        let _ = self.tx.send(Some(Stop::Delete { confirm }));
        self.task.take()
    }

    pub async fn stop(mut self) {
        let _ = self.tx.send(Some(Stop::Shutdown));
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }

    pub fn abort(mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

async fn stopped(rx: &mut watch::Receiver<Option<Stop>>) -> Stop {
    match rx.wait_for(Option::is_some).await {
        Ok(s) => s.unwrap_or(Stop::Shutdown),
        Err(_) => Stop::Shutdown,
    }
}

fn grace(pod: &Pod, max: Duration) -> Duration {
    let secs = pod
        .metadata
        .deletion_grace_period_seconds
        .or_else(|| {
            pod.spec
                .as_ref()
                .and_then(|s| s.termination_grace_period_seconds)
        })
        .unwrap_or(30)
        .max(0);
    Duration::from_secs(secs.unsigned_abs()).min(max)
}

fn limits(c: &Container, pids_max: u64, warnings: &mut Vec<String>) -> Limits {
    let lim = c.resources.as_ref().and_then(|r| r.limits.as_ref());
    let get = |k: &str| lim.and_then(|l| l.get(k)).map(|q| q.0.clone());
    let mut parse = |k: &str, f: fn(&str) -> Result<u64, quantity::QuantityError>| {
        get(k).and_then(|q| {
            f(&q)
                .map_err(|e| warnings.push(format!("limits.{k}: {e}")))
                .ok()
        })
    };
    Limits {
        cpu_quota_us: parse("cpu", quantity::cpu_quota_us),
        memory_bytes: parse("memory", quantity::memory_bytes),
        pids_max: Some(pids_max),
    }
}

/// `command` + `args`, or `tail -f /dev/null` when the image default would apply. A command
/// that starts the injected executor (`.../opensandbox-executor [flags] -- <entrypoint>`, as
/// the lifecycle API writes it for clusters) is unwrapped: here the agent itself runs the
/// host's executor as the pod's init.
fn entrypoint(c: &Container) -> Vec<String> {
    let mut argv: Vec<String> = c.command.clone().unwrap_or_default();
    argv.extend(c.args.clone().unwrap_or_default());
    if argv
        .first()
        .is_some_and(|a| a.rsplit('/').next() == Some("opensandbox-executor"))
    {
        argv = match argv.iter().position(|a| a == "--") {
            Some(i) => argv[i + 1..].to_vec(),
            None => Vec::new(),
        };
    }
    if argv.is_empty() {
        argv = ["tail", "-f", "/dev/null"].map(String::from).to_vec();
    }
    argv
}

fn set(env: &mut Vec<(String, String)>, k: &str, v: String) {
    match env.iter_mut().find(|(ek, _)| ek == k) {
        Some(e) => e.1 = v,
        None => env.push((k.to_string(), v)),
    }
}

async fn ping(ip: Ipv4Addr, port: u16) -> bool {
    let probe = async {
        let mut s = tokio::net::TcpStream::connect((ip, port)).await.ok()?;
        let req = format!("GET /ping HTTP/1.1\r\nHost: {ip}:{port}\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.ok()?;
        let mut buf = [0u8; 12];
        s.read_exact(&mut buf).await.ok()?;
        Some(buf.starts_with(b"HTTP/1.") && &buf[9..12] == b"200")
    };
    tokio::time::timeout(Duration::from_millis(500), probe)
        .await
        .ok()
        .flatten()
        .unwrap_or(false)
}

struct Worker {
    shared: Arc<Shared>,
    key: String,
    name: String,
    uid: String,
    api: Api<Pod>,
    container: Container,
    grace: Duration,
    pod_dir: PathBuf,
    tmp: PathBuf,
    workspace: PathBuf,
    ip: Option<Ipv4Addr>,
    cgroup: PodCgroup,
    namespaces: bool,
    isolation: String,
    cgroup_note: String,
    view: PodView,
    clock: ConditionClock,
    last: Option<Value>,
    backoff: Backoff,
}

pub(super) async fn run(
    shared: Arc<Shared>,
    key: String,
    pod: Pod,
    mut stop: watch::Receiver<Option<Stop>>,
    previous: Option<JoinHandle<()>>,
) {
    if let Some(p) = previous {
        let _ = p.await;
    }
    let Some(mut w) = Worker::new(shared, key, &pod) else {
        return;
    };
    let how = if pod.metadata.deletion_timestamp.is_some() {
        Stop::Delete { confirm: true }
    } else {
        w.supervise(&mut stop).await
    };
    w.cleanup(how).await;
}

impl Worker {
    fn new(shared: Arc<Shared>, key: String, pod: &Pod) -> Option<Self> {
        let spec = pod.spec.as_ref()?;
        let container = spec.containers.first()?.clone();
        let ns = pod.namespace().unwrap_or_default();
        let name = pod.name_any();
        let pod_dir = shared.opts.state_dir.join("pods").join(&ns).join(&name);
        let status = pod.status.as_ref();
        let was_running = status.and_then(|s| s.phase.as_deref()) == Some("Running");
        let prev_restarts = status
            .and_then(|s| s.container_statuses.as_ref())
            .and_then(|c| c.first())
            .map_or(0, |c| c.restart_count);
        // Running pods we know nothing about lost their processes with an old agent.
        let restart_count = prev_restarts + i32::from(was_running);
        let start_time = if was_running {
            status
                .and_then(|s| s.start_time.as_ref())
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(&t.0.to_string()).ok())
                .map(|t| t.with_timezone(&Utc))
        } else {
            None
        };
        let preferred = status
            .and_then(|s| s.pod_ip.as_deref())
            .and_then(|ip| ip.parse().ok());
        let view = PodView {
            container_name: container.name.clone(),
            image: container.image.clone().unwrap_or_default(),
            pod_ip: None,
            start_time,
            state: ContainerState::Waiting {
                reason: "ContainerCreating".into(),
                message: None,
            },
            last_terminated: None,
            restart_count,
            ready: false,
            policy: RestartPolicy::parse(spec.restart_policy.as_deref()),
            finished: false,
            message: None,
        };
        let namespaces = shared.opts.namespaces;
        Some(Self {
            api: Api::namespaced(shared.client.clone(), &ns),
            grace: grace(pod, shared.opts.max_grace),
            key,
            uid: pod.uid().unwrap_or_default(),
            name,
            tmp: pod_dir.join("tmp"),
            workspace: pod_dir.join("workspace"),
            pod_dir,
            ip: preferred,
            cgroup: PodCgroup::default(),
            namespaces,
            isolation: String::new(),
            cgroup_note: String::new(),
            container,
            view,
            clock: ConditionClock::default(),
            last: None,
            backoff: Backoff::default(),
            shared,
        })
    }

    async fn write_status(&mut self) {
        let s = status::pod_status(&self.view, &mut self.clock, Utc::now());
        if self.last.as_ref() == Some(&s) {
            return;
        }
        let pp = PatchParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..Default::default()
        };
        match self
            .api
            .patch_status(&self.name, &pp, &Patch::Merge(&json!({ "status": s })))
            .await
        {
            Ok(_) => self.last = Some(s),
            Err(e) => tracing::debug!(pod = %self.key, error = %e, "pod status write failed"),
        }
    }

    fn set_message(&mut self) {
        self.view.message = Some(format!(
            "isolation: {}; {}",
            self.isolation, self.cgroup_note
        ));
    }

    fn setup(&mut self) -> Result<(), NodeAgentError> {
        let ports = [self.shared.opts.execd_port, self.shared.opts.task_port];
        let ip = allocate_ip(self.ip.take(), ports).ok_or(NodeAgentError::NoFreeIp)?;
        self.ip = Some(ip);
        self.view.pod_ip = Some(ip.to_string());
        for d in [&self.tmp, &self.workspace] {
            std::fs::create_dir_all(d).map_err(|source| NodeAgentError::Dirs {
                path: d.clone(),
                source,
            })?;
        }
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&self.tmp, std::fs::Permissions::from_mode(0o1777));
        let mut warnings = Vec::new();
        let limits = limits(&self.container, self.shared.opts.pids_max, &mut warnings);
        let cg_name = self.key.replace('/', "_");
        self.cgroup = self.shared.cgroups.create(&cg_name, &limits);
        warnings.extend(self.cgroup.warnings.iter().cloned());
        self.cgroup_note = self.shared.cgroups.describe();
        if !warnings.is_empty() {
            self.cgroup_note = format!(
                "{} (not applied: {})",
                self.cgroup_note,
                warnings.join("; ")
            );
        }
        Ok(())
    }

    fn spec(&self, ip: Ipv4Addr, exe: &std::path::Path, namespaces: bool) -> SpawnSpec {
        let opts = &self.shared.opts;
        let mut argv = vec![
            exe.display().to_string(),
            "--port".into(),
            opts.execd_port.to_string(),
            "--".into(),
        ];
        argv.extend(entrypoint(&self.container));
        let mut env = Vec::new();
        let path = std::env::var("PATH").unwrap_or_else(|_| {
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()
        });
        set(&mut env, "PATH", path);
        set(
            &mut env,
            "HOME",
            std::env::var("HOME").unwrap_or_else(|_| "/root".into()),
        );
        set(&mut env, "HOSTNAME", self.name.clone());
        // The executor's env file is the pod's own (before the container's env, which may set
        // another): its default, /opt/opensandbox/.env when the host has that directory,
        // would be shared by every pod on the host.
        let envs = if namespaces {
            PathBuf::from("/tmp/.opensandbox-env")
        } else {
            self.tmp.join(".opensandbox-env")
        };
        set(&mut env, "EXECD_ENVS", envs.display().to_string());
        for e in self.container.env.iter().flatten() {
            if let Some(v) = &e.value {
                set(&mut env, &e.name, v.clone());
            }
        }
        let (ns, _) = self.key.split_once('/').unwrap_or(("", ""));
        set(&mut env, "POD_NAME", self.name.clone());
        set(&mut env, "POD_NAMESPACE", ns.to_string());
        set(&mut env, "POD_IP", ip.to_string());
        set(&mut env, "EXECD_BIND_HOST", ip.to_string());
        set(
            &mut env,
            "TASK_EXECUTOR_LISTEN_ADDR",
            format!("{ip}:{}", opts.task_port),
        );
        // Inside the mount namespace /tmp is the pod's own; without it, use the host path.
        let data = if namespaces {
            PathBuf::from("/tmp/.opensandbox-tasks")
        } else {
            self.tmp.join(".opensandbox-tasks")
        };
        set(
            &mut env,
            "TASK_EXECUTOR_DATA_DIR",
            data.display().to_string(),
        );
        // The files API may touch only the pod's own directory, and /tmp where it is the
        // pod's private one.
        let mut fs_roots = self.pod_dir.display().to_string();
        if namespaces {
            fs_roots.push_str(":/tmp");
        }
        set(&mut env, "EXECD_FS_ROOTS", fs_roots);
        let cwd = self
            .container
            .working_dir
            .as_ref()
            .map(PathBuf::from)
            .filter(|d| d.is_dir())
            .unwrap_or_else(|| self.workspace.clone());
        SpawnSpec {
            argv,
            env,
            cwd,
            tmp_dir: self.tmp.clone(),
            hostname: self.name.clone(),
            cgroup_procs: self.cgroup.procs_files(),
        }
    }

    /// Starts the init process on its own thread (which then waits for it, so the
    /// parent-death signal fires only when the process goes away).
    async fn start(&mut self) -> Result<(Spawned, oneshot::Receiver<Exit>), NodeAgentError> {
        let ip = self.ip.ok_or(NodeAgentError::NoFreeIp)?;
        let exe = self
            .shared
            .executor
            .clone()
            .ok_or(NodeAgentError::ExecutorNotFound)?;
        let with_ns = self.namespaces.then(|| self.spec(ip, &exe, true));
        let plain = self.spec(ip, &exe, false);
        let (started_tx, started_rx) =
            oneshot::channel::<(Result<Spawned, SpawnError>, Option<String>)>();
        let (exit_tx, exit_rx) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name(format!("pod {}", self.key))
            .spawn(move || {
                let mut fallback = None;
                let r = match with_ns.map(|s| process::spawn(&s, true)) {
                    Some(Err(e)) if e.namespaces_denied() => {
                        fallback = Some(e.to_string());
                        process::spawn(&plain, false)
                    }
                    Some(r) => r,
                    None => process::spawn(&plain, false),
                };
                let pid = r.as_ref().ok().map(|s| s.pid);
                let _ = started_tx.send((r, fallback));
                if let Some(pid) = pid {
                    let _ = exit_tx.send(process::wait(pid));
                }
            });
        if let Err(e) = thread {
            return Err(NodeAgentError::Thread(e));
        }
        let (r, fallback) = started_rx.await.map_err(|_| NodeAgentError::ThreadDied)?;
        if let Some(reason) = fallback {
            tracing::warn!(pod = %self.key, %reason, "namespaces denied, running the pod in a process group");
            self.namespaces = false;
            self.isolation = format!("process group (namespaces denied: {reason})");
        } else if self.namespaces {
            self.isolation = "namespaces mount,pid,uts,ipc; private /tmp".into();
        } else {
            self.isolation = "process group (namespaces disabled)".into();
        }
        let spawned = r?;
        if !spawned.cgroup_warnings.is_empty() {
            self.cgroup_note = format!(
                "{} (not joined: {})",
                self.cgroup_note,
                spawned.cgroup_warnings.join("; ")
            );
        }
        self.set_message();
        Ok((spawned, exit_rx))
    }

    async fn supervise(&mut self, stop: &mut watch::Receiver<Option<Stop>>) -> Stop {
        if let Err(e) = self.setup() {
            tracing::warn!(pod = %self.key, error = %e, "pod setup failed");
            self.view.state = ContainerState::Waiting {
                reason: "CreateContainerError".into(),
                message: Some(e.to_string()),
            };
            self.write_status().await;
            return stopped(stop).await;
        }
        loop {
            if let Some(s) = *stop.borrow() {
                return s;
            }
            let ran_since = Instant::now();
            let (spawned, mut exit_rx) = match self.start().await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(pod = %self.key, error = %e, "pod start failed");
                    let d = self
                        .backoff
                        .on_exit(&self.shared.opts.backoff, Duration::ZERO);
                    self.view.state = ContainerState::Waiting {
                        reason: "RunContainerError".into(),
                        message: Some(e.to_string()),
                    };
                    self.write_status().await;
                    tokio::select! {
                        s = stopped(stop) => return s,
                        () = tokio::time::sleep(d.delay.max(self.shared.opts.backoff.initial)) => continue,
                    }
                }
            };
            let pid = spawned.pid;
            let started_at = Utc::now();
            self.shared.live.lock().insert(
                self.key.clone(),
                Live {
                    pid,
                    cgroup: self.cgroup.clone(),
                    container: self.container.name.clone(),
                    cwd: self.workspace.clone(),
                },
            );
            tracing::info!(pod = %self.key, pid, ip = ?self.ip, "pod process started");
            self.view.state = ContainerState::Running { pid, started_at };
            self.view.start_time.get_or_insert(started_at);
            self.view.ready = false;
            self.write_status().await;
            let fast_until = Instant::now() + self.shared.opts.ready_fast_window;
            let exit = loop {
                let poll = if Instant::now() < fast_until {
                    self.shared.opts.ready_poll
                } else {
                    Duration::from_secs(1)
                };
                tokio::select! {
                    r = &mut exit_rx => break r.unwrap_or(Exit { code: 255, signal: None }),
                    s = stopped(stop) => {
                        self.terminate(pid, exit_rx).await;
                        return s;
                    }
                    () = tokio::time::sleep(poll), if !self.view.ready => {
                        if let Some(ip) = self.ip
                            && ping(ip, self.shared.opts.execd_port).await
                        {
                            self.view.ready = true;
                            self.write_status().await;
                        }
                    }
                }
            };
            self.shared.live.lock().remove(&self.key);
            // Whatever the init left behind outside its namespace goes with it.
            self.cgroup.kill_all();
            let t = Terminated {
                exit_code: exit.code,
                signal: exit.signal,
                pid,
                started_at,
                finished_at: Utc::now(),
            };
            tracing::info!(pod = %self.key, pid, code = exit.code, "pod process exited");
            self.view.ready = false;
            if !self.view.policy.restarts(exit.code) {
                self.view.state = ContainerState::Terminated(t);
                self.view.finished = true;
                self.write_status().await;
                return stopped(stop).await;
            }
            let d = self
                .backoff
                .on_exit(&self.shared.opts.backoff, ran_since.elapsed());
            self.view.last_terminated = Some(t.clone());
            self.view.state = if d.crash_loop {
                ContainerState::Waiting {
                    reason: "CrashLoopBackOff".into(),
                    message: Some(format!(
                        "back-off {:?} restarting failed container={} pod={}",
                        d.delay, self.container.name, self.name
                    )),
                }
            } else {
                ContainerState::Terminated(t)
            };
            self.write_status().await;
            tokio::select! {
                s = stopped(stop) => return s,
                () = tokio::time::sleep(d.delay) => {}
            }
            self.view.restart_count += 1;
        }
    }

    /// SIGTERM to the tree, SIGKILL after the grace period.
    async fn terminate(&mut self, pid: i32, mut exit_rx: oneshot::Receiver<Exit>) {
        process::signal_tree(pid, Signal::SIGTERM);
        if tokio::time::timeout(self.grace, &mut exit_rx)
            .await
            .is_err()
        {
            process::signal_tree(pid, Signal::SIGKILL);
            self.cgroup.kill_all();
            let _ = tokio::time::timeout(Duration::from_secs(2), &mut exit_rx).await;
        }
        self.shared.live.lock().remove(&self.key);
    }

    async fn cleanup(&mut self, how: Stop) {
        let cgroup = self.cgroup.clone();
        let _ = tokio::task::spawn_blocking(move || cgroup.remove()).await;
        if let Some(ip) = self.ip.take() {
            release_ip(ip);
        }
        if let Stop::Delete { confirm } = how {
            if let Err(e) = tokio::fs::remove_dir_all(&self.pod_dir).await
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(pod = %self.key, error = %e, "removing pod directory failed");
            }
            if confirm {
                let dp = DeleteParams {
                    grace_period_seconds: Some(0),
                    preconditions: Some(Preconditions {
                        uid: Some(self.uid.clone()),
                        resource_version: None,
                    }),
                    ..Default::default()
                };
                let _ = self.api.delete(&self.name, &dp).await;
            }
        }
        tracing::info!(pod = %self.key, ?how, "pod stopped");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(v: Value) -> Container {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn entrypoint_defaults_and_joins_args() {
        let c = container(json!({"name": "m"}));
        assert_eq!(entrypoint(&c), ["tail", "-f", "/dev/null"]);
        let c = container(json!({"name": "m", "command": ["sh", "-c"], "args": ["echo hi"]}));
        assert_eq!(entrypoint(&c), ["sh", "-c", "echo hi"]);
        let c = container(
            json!({"name": "m", "command": ["/opt/opensandbox/bin/opensandbox-executor", "--", "sleep", "5"]}),
        );
        assert_eq!(entrypoint(&c), ["sleep", "5"]);
        let c = container(json!({"name": "m", "args": ["sleep", "1"]}));
        assert_eq!(entrypoint(&c), ["sleep", "1"]);
    }

    #[test]
    fn limits_from_resources_with_bad_values_reported() {
        let c = container(
            json!({"name": "m", "resources": {"limits": {"cpu": "250m", "memory": "bogus"}}}),
        );
        let mut w = Vec::new();
        let l = limits(&c, 4096, &mut w);
        assert_eq!(l.cpu_quota_us, Some(25_000));
        assert_eq!(l.memory_bytes, None);
        assert_eq!(l.pids_max, Some(4096));
        assert_eq!(w.len(), 1, "{w:?}");
    }

    #[test]
    fn grace_is_capped() {
        let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": {"containers": [], "terminationGracePeriodSeconds": 1}})).unwrap();
        assert_eq!(grace(&pod, Duration::from_secs(2)), Duration::from_secs(1));
        let pod: Pod =
            serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": {"containers": []}}))
                .unwrap();
        assert_eq!(grace(&pod, Duration::from_secs(2)), Duration::from_secs(2));
    }

    #[test]
    fn env_overrides_keep_order() {
        let mut env = Vec::new();
        set(&mut env, "A", "1".into());
        set(&mut env, "B", "2".into());
        set(&mut env, "A", "3".into());
        assert_eq!(
            env,
            [
                ("A".to_string(), "3".to_string()),
                ("B".to_string(), "2".to_string())
            ]
        );
    }
}
