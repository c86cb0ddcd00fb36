//! Pause support: freezes and thaws a pod's whole process tree in place. The controller asks
//! with the pod annotation `sandbox.opensandbox.io/freeze: "true"`; the agent reports the
//! result with `sandbox.opensandbox.io/frozen: "true"` (removed once thawed).
//!
//! Mechanism, best first: the pod's cgroup freezer (v2 `cgroup.freeze`, v1 `freezer.state`),
//! which also catches processes that left the pod's process group; else SIGSTOP/SIGCONT of
//! every process descended from the pod's init (parents first, so none can spawn an
//! unstopped child).

use std::collections::HashMap;
use std::fs;
use std::path::Path;

use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};

use super::Live;
use crate::crd::keys;

/// How a pod was frozen or thawed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Cgroup,
    Signals,
}

fn annotation_true(pod: &Pod, key: &str) -> bool {
    pod.annotations().get(key).is_some_and(|v| v == "true")
}

/// The freeze state the controller wants, if it differs from what the agent reported.
pub fn wanted_change(pod: &Pod) -> Option<bool> {
    let want = annotation_true(pod, keys::ANNOTATION_FREEZE);
    (want != annotation_true(pod, keys::ANNOTATION_FROZEN)).then_some(want)
}

/// Whether the agent reported this pod frozen.
pub fn reported_frozen(pod: &Pod) -> bool {
    annotation_true(pod, keys::ANNOTATION_FROZEN)
}

fn cgroup_write(dir: &Path, frozen: bool) -> bool {
    let (file, value) = if dir.join("cgroup.freeze").exists() {
        ("cgroup.freeze", if frozen { "1" } else { "0" })
    } else if dir.join("freezer.state").exists() {
        ("freezer.state", if frozen { "FROZEN" } else { "THAWED" })
    } else {
        return false;
    };
    fs::write(dir.join(file), value).is_ok()
}

/// Processes descended from `root` (itself included), parents before children.
fn tree(root: i32) -> Vec<i32> {
    let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
    if let Ok(entries) = fs::read_dir("/proc") {
        for e in entries.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
                continue;
            };
            if let Some(ppid) = fs::read_to_string(e.path().join("stat"))
                .ok()
                .and_then(|s| parent_of(&s))
            {
                children.entry(ppid).or_default().push(pid);
            }
        }
    }
    let mut out = vec![root];
    let mut i = 0;
    while i < out.len() {
        if let Some(c) = children.get(&out[i]) {
            out.extend(c.iter().copied());
        }
        i += 1;
    }
    out
}

/// The parent pid in a `/proc/<pid>/stat` line (the field after the `(comm)`).
fn parent_of(stat: &str) -> Option<i32> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// Freezes (`true`) or thaws the pod's processes.
pub fn set_frozen(live: &Live, frozen: bool) -> Method {
    if !live.cgroup.dirs.is_empty() && live.cgroup.dirs.iter().any(|d| cgroup_write(d, frozen)) {
        return Method::Cgroup;
    }
    let sig = if frozen {
        Signal::SIGSTOP
    } else {
        Signal::SIGCONT
    };
    for pid in tree(live.pid) {
        let _ = kill(Pid::from_raw(pid), sig);
    }
    Method::Signals
}

/// Applies the controller's request to a running pod and reports the result on the pod.
pub async fn reconcile(client: kube::Client, live: Live, pod: Pod, frozen: bool) {
    let how = tokio::task::spawn_blocking(move || set_frozen(&live, frozen))
        .await
        .ok();
    let name = pod.name_any();
    let api: Api<Pod> = Api::namespaced(client, &pod.namespace().unwrap_or_default());
    let value = if frozen { json!("true") } else { Value::Null };
    let patch = json!({"metadata": {"annotations": {keys::ANNOTATION_FROZEN: value}}});
    match api
        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => tracing::info!(pod = %name, frozen, method = ?how, "pod freeze state changed"),
        Err(e) => tracing::warn!(pod = %name, error = %e, "reporting the pod freeze state failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parent_from_stat_with_spaces_in_the_name() {
        assert_eq!(parent_of("42 (my (odd) cmd) S 7 42 42 0"), Some(7));
        assert_eq!(parent_of("garbage"), None);
    }

    #[test]
    fn wanted_change_compares_request_and_report() {
        let pod = |a: Value| -> Pod {
            serde_json::from_value(json!({"metadata": {"name": "p", "annotations": a}})).unwrap()
        };
        assert_eq!(
            wanted_change(&pod(json!({keys::ANNOTATION_FREEZE: "true"}))),
            Some(true)
        );
        assert_eq!(
            wanted_change(&pod(
                json!({keys::ANNOTATION_FREEZE: "true", keys::ANNOTATION_FROZEN: "true"})
            )),
            None
        );
        assert_eq!(
            wanted_change(&pod(json!({keys::ANNOTATION_FROZEN: "true"}))),
            Some(false)
        );
        assert_eq!(wanted_change(&pod(json!({}))), None);
    }

    #[test]
    fn signals_stop_and_continue_a_process_tree() {
        let mut child = std::process::Command::new("sh")
            .args(["-c", "sleep 30 & wait"])
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        std::thread::sleep(std::time::Duration::from_millis(100));
        let live = Live {
            pid,
            cgroup: Default::default(),
            container: "main".into(),
            cwd: std::env::temp_dir(),
        };
        let state = |p: i32| {
            fs::read_to_string(format!("/proc/{p}/stat"))
                .ok()
                .and_then(|s| s[s.rfind(')').unwrap() + 2..].chars().next())
        };
        let members = tree(pid);
        assert!(members.len() >= 2, "sh and its sleep: {members:?}");
        assert_eq!(set_frozen(&live, true), Method::Signals);
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(members.iter().all(|p| state(*p) == Some('T')));
        set_frozen(&live, false);
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(members.iter().all(|p| state(*p) != Some('T')));
        let _ = child.kill();
        let _ = child.wait();
        for p in members {
            let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
        }
    }
}
