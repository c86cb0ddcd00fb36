//! Cgroup limits per pod: v2 if mounted, else v1 (cpu, memory, pids), else none.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::quantity::{CPU_PERIOD_US, Limits};

const PARENT: &str = "opensandbox";
// `freezer` holds no limit: pause freezes the pod through it.
const V1_CONTROLLERS: [&str; 4] = ["cpu", "memory", "pids", "freezer"];

/// What the host lets the agent use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cgroups {
    V2 {
        parent: PathBuf,
    },
    V1 {
        parents: Vec<(&'static str, PathBuf)>,
    },
    Unavailable {
        reason: String,
    },
}

/// A pod's cgroup directories (one for v2, one per controller for v1).
#[derive(Clone, Debug, Default)]
pub struct PodCgroup {
    pub dirs: Vec<PathBuf>,
    /// Limits that could not be written (the pod runs without them).
    pub warnings: Vec<String>,
}

fn write(dir: &Path, file: &str, value: &str, warnings: &mut Vec<String>) {
    if let Err(e) = fs::write(dir.join(file), value) {
        warnings.push(format!("{file}={value}: {e}"));
    }
}

fn ensure_dir(p: &Path) -> io::Result<()> {
    match fs::create_dir(p) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => Err(e),
        _ => Ok(()),
    }
}

impl Cgroups {
    /// Probes `root` (normally `/sys/fs/cgroup`) by creating the `opensandbox` parent.
    pub fn detect(root: &Path) -> Self {
        if root.join("cgroup.controllers").exists() {
            let parent = root.join(PARENT);
            return match ensure_dir(&parent) {
                Ok(()) => {
                    for c in V1_CONTROLLERS {
                        // Each may fail on its own (controller missing or delegated away).
                        let _ = fs::write(root.join("cgroup.subtree_control"), format!("+{c}"));
                        let _ = fs::write(parent.join("cgroup.subtree_control"), format!("+{c}"));
                    }
                    Self::V2 { parent }
                }
                Err(e) => Self::Unavailable {
                    reason: format!("cgroup v2 at {} not writable: {e}", root.display()),
                },
            };
        }
        let parents: Vec<_> = V1_CONTROLLERS
            .iter()
            .filter_map(|c| {
                let parent = root.join(c).join(PARENT);
                ensure_dir(&parent).ok().map(|()| (*c, parent))
            })
            .collect();
        if parents.is_empty() {
            Self::Unavailable {
                reason: format!(
                    "no writable cgroup v2 or v1 (cpu, memory, pids) under {}",
                    root.display()
                ),
            }
        } else {
            Self::V1 { parents }
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Self::V2 { parent } => format!("cgroup v2 ({})", parent.display()),
            Self::V1 { parents } => {
                let names: Vec<_> = parents.iter().map(|(c, _)| *c).collect();
                format!("cgroup v1 ({})", names.join(","))
            }
            Self::Unavailable { reason } => format!("no cgroup limits: {reason}"),
        }
    }

    /// Creates (or recreates) the pod's cgroup and writes its limits. Never fails: what
    /// cannot be done is reported in `warnings`.
    pub fn create(&self, name: &str, limits: &Limits) -> PodCgroup {
        let mut cg = PodCgroup::default();
        let dirs: Vec<(&str, PathBuf)> = match self {
            Self::V2 { parent } => vec![("", parent.join(name))],
            Self::V1 { parents } => parents.iter().map(|(c, p)| (*c, p.join(name))).collect(),
            Self::Unavailable { .. } => return cg,
        };
        for (ctrl, dir) in dirs {
            if dir.exists() {
                // Left over from an agent that died: empty it before reuse.
                kill_all(&dir);
            }
            if let Err(e) = ensure_dir(&dir) {
                cg.warnings.push(format!("create {}: {e}", dir.display()));
                continue;
            }
            let w = &mut cg.warnings;
            match ctrl {
                "" => {
                    write(&dir, "pids.max", &limits.pids_max(), w);
                    write(&dir, "cpu.max", &limits.cpu_max_v2(), w);
                    write(&dir, "memory.max", &limits.memory_max_v2(), w);
                    if limits.memory_bytes.is_some() && dir.join("memory.swap.max").exists() {
                        write(&dir, "memory.swap.max", "0", w);
                    }
                }
                "cpu" => {
                    write(&dir, "cpu.cfs_period_us", &CPU_PERIOD_US.to_string(), w);
                    let q = limits
                        .cpu_quota_us
                        .map_or_else(|| "-1".to_string(), |q| q.to_string());
                    write(&dir, "cpu.cfs_quota_us", &q, w);
                }
                "memory" => {
                    if let Some(b) = limits.memory_bytes {
                        write(&dir, "memory.limit_in_bytes", &b.to_string(), w);
                    }
                }
                "pids" => write(&dir, "pids.max", &limits.pids_max(), w),
                _ => {}
            }
            cg.dirs.push(dir);
        }
        cg
    }
}

impl PodCgroup {
    /// The `cgroup.procs` files a new pod process is written into.
    pub fn procs_files(&self) -> Vec<PathBuf> {
        self.dirs.iter().map(|d| d.join("cgroup.procs")).collect()
    }

    /// Kills whatever is still inside (processes that left the pod's process group) and
    /// removes the directories.
    pub fn remove(&self) {
        for dir in &self.dirs {
            for _ in 0..50 {
                kill_all(dir);
                if fs::remove_dir(dir).is_ok() || !dir.exists() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }

    pub fn kill_all(&self) {
        for dir in &self.dirs {
            kill_all(dir);
        }
    }
}

fn kill_all(dir: &Path) {
    if fs::write(dir.join("cgroup.kill"), "1").is_ok() {
        return;
    }
    if let Ok(procs) = fs::read_to_string(dir.join("cgroup.procs")) {
        for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
    // A v1-frozen (paused) process only dies once thawed; a reused directory must not stay
    // frozen either.
    if dir.join("freezer.state").exists() {
        let _ = fs::write(dir.join("freezer.state"), "THAWED");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_v2_and_writes_limits() {
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join("cgroup.controllers"), "cpu memory pids").unwrap();
        let cg = Cgroups::detect(d.path());
        assert!(matches!(cg, Cgroups::V2 { .. }), "{cg:?}");
        let limits = Limits {
            cpu_quota_us: Some(50_000),
            memory_bytes: Some(1 << 20),
            pids_max: Some(64),
        };
        let pod = cg.create("ns_a", &limits);
        let dir = d.path().join("opensandbox/ns_a");
        assert_eq!(pod.dirs, vec![dir.clone()]);
        assert_eq!(
            fs::read_to_string(dir.join("cpu.max")).unwrap(),
            "50000 100000"
        );
        assert_eq!(
            fs::read_to_string(dir.join("memory.max")).unwrap(),
            "1048576"
        );
        assert_eq!(fs::read_to_string(dir.join("pids.max")).unwrap(), "64");
    }

    #[test]
    fn detects_v1_controllers_present() {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir(d.path().join("pids")).unwrap();
        fs::create_dir(d.path().join("cpu")).unwrap();
        let cg = Cgroups::detect(d.path());
        assert_eq!(cg.describe(), "cgroup v1 (cpu,pids)");
        let pod = cg.create(
            "x",
            &Limits {
                pids_max: Some(10),
                ..Limits::default()
            },
        );
        assert_eq!(
            fs::read_to_string(d.path().join("pids/opensandbox/x/pids.max")).unwrap(),
            "10"
        );
        assert_eq!(
            fs::read_to_string(d.path().join("cpu/opensandbox/x/cpu.cfs_quota_us")).unwrap(),
            "-1"
        );
        assert_eq!(pod.dirs.len(), 2);
    }

    #[test]
    fn none_when_nothing_writable() {
        let d = tempfile::tempdir().unwrap();
        assert!(matches!(
            Cgroups::detect(&d.path().join("missing")),
            Cgroups::Unavailable { .. }
        ));
    }
}
