//! Pod status from process state: the pure half of the agent's status writes.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

/// `spec.restartPolicy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestartPolicy {
    Always,
    OnFailure,
    Never,
}

impl RestartPolicy {
    pub fn parse(s: Option<&str>) -> Self {
        match s {
            Some("Never") => Self::Never,
            Some("OnFailure") => Self::OnFailure,
            _ => Self::Always,
        }
    }

    /// Whether a container that exited with `exit_code` is started again.
    pub fn restarts(self, exit_code: i32) -> bool {
        match self {
            Self::Always => true,
            Self::OnFailure => exit_code != 0,
            Self::Never => false,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Terminated {
    pub exit_code: i32,
    pub signal: Option<i32>,
    pub pid: i32,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
}

impl Terminated {
    fn reason(&self) -> &'static str {
        if self.exit_code == 0 {
            "Completed"
        } else {
            "Error"
        }
    }

    fn to_json(&self) -> Value {
        let mut t = json!({
            "exitCode": self.exit_code,
            "reason": self.reason(),
            "startedAt": ts(self.started_at),
            "finishedAt": ts(self.finished_at),
            "containerID": container_id(self.pid),
        });
        if let Some(sig) = self.signal {
            t["signal"] = json!(sig);
        }
        t
    }
}

/// The first container's state as the agent sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ContainerState {
    Waiting {
        reason: String,
        message: Option<String>,
    },
    Running {
        pid: i32,
        started_at: DateTime<Utc>,
    },
    Terminated(Terminated),
}

/// Everything the pod status is computed from.
#[derive(Clone, Debug)]
pub struct PodView {
    pub container_name: String,
    pub image: String,
    pub pod_ip: Option<String>,
    pub start_time: Option<DateTime<Utc>>,
    pub state: ContainerState,
    pub last_terminated: Option<Terminated>,
    pub restart_count: i32,
    pub ready: bool,
    pub policy: RestartPolicy,
    /// Set once the pod will not run again (terminal phase).
    pub finished: bool,
    /// How the pod is isolated (namespaces, cgroups), or why not.
    pub message: Option<String>,
}

/// Remembers when each condition last changed status, so rewrites keep the old time.
#[derive(Clone, Debug, Default)]
pub struct ConditionClock {
    seen: BTreeMap<&'static str, (bool, DateTime<Utc>)>,
}

impl ConditionClock {
    fn condition(&mut self, ty: &'static str, status: bool, now: DateTime<Utc>) -> Value {
        let entry = self.seen.entry(ty).or_insert((status, now));
        if entry.0 != status {
            *entry = (status, now);
        }
        let mut c = json!({
            "type": ty,
            "status": if status { "True" } else { "False" },
            "lastTransitionTime": ts(entry.1),
        });
        if !status && (ty == "Ready" || ty == "ContainersReady") {
            c["reason"] = json!("ContainersNotReady");
        }
        c
    }
}

pub fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

pub fn container_id(pid: i32) -> String {
    format!("process://{pid}")
}

/// The pod phase, as the kubelet derives it for a single-container pod.
pub fn phase(v: &PodView) -> &'static str {
    match (&v.state, v.finished) {
        (ContainerState::Terminated(t), true) => {
            if t.exit_code == 0 {
                "Succeeded"
            } else {
                "Failed"
            }
        }
        _ if v.start_time.is_none() => "Pending",
        _ => "Running",
    }
}

/// The `status` object written with a merge patch. Lists are replaced wholesale by merge
/// patches, so the container state needs no explicit nulls.
pub fn pod_status(v: &PodView, clock: &mut ConditionClock, now: DateTime<Utc>) -> Value {
    let started = matches!(v.state, ContainerState::Running { .. });
    let ready = v.ready && started;
    let state = match &v.state {
        ContainerState::Waiting { reason, message } => {
            let mut w = json!({ "reason": reason });
            if let Some(m) = message {
                w["message"] = json!(m);
            }
            json!({ "waiting": w })
        }
        ContainerState::Running { started_at, .. } => {
            json!({ "running": { "startedAt": ts(*started_at) } })
        }
        ContainerState::Terminated(t) => json!({ "terminated": t.to_json() }),
    };
    let mut cs = json!({
        "name": v.container_name,
        "image": v.image,
        "imageID": "",
        "ready": ready,
        "started": started,
        "restartCount": v.restart_count,
        "state": state,
        "lastState": v.last_terminated.as_ref().map_or_else(|| json!({}), |t| json!({ "terminated": t.to_json() })),
    });
    match &v.state {
        ContainerState::Running { pid, .. } => cs["containerID"] = json!(container_id(*pid)),
        ContainerState::Terminated(t) => cs["containerID"] = json!(container_id(t.pid)),
        ContainerState::Waiting { .. } => {}
    }
    let initialized = v.start_time.is_some();
    let conditions = vec![
        clock.condition("PodScheduled", true, now),
        clock.condition("Initialized", initialized, now),
        clock.condition("ContainersReady", ready, now),
        clock.condition("Ready", ready, now),
    ];
    let mut s = json!({
        "phase": phase(v),
        "hostIP": "127.0.0.1",
        "hostIPs": [{ "ip": "127.0.0.1" }],
        "conditions": conditions,
        "containerStatuses": [cs],
    });
    if let Some(ip) = &v.pod_ip {
        s["podIP"] = json!(ip);
        s["podIPs"] = json!([{ "ip": ip }]);
    }
    if let Some(t) = v.start_time {
        s["startTime"] = json!(ts(t));
    }
    if let Some(m) = &v.message {
        s["message"] = json!(m);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(state: ContainerState) -> PodView {
        PodView {
            container_name: "main".into(),
            image: "img".into(),
            pod_ip: Some("127.0.0.2".into()),
            start_time: Some(Utc::now()),
            state,
            last_terminated: None,
            restart_count: 0,
            ready: false,
            policy: RestartPolicy::Always,
            finished: false,
            message: None,
        }
    }

    fn term(code: i32) -> Terminated {
        let now = Utc::now();
        Terminated {
            exit_code: code,
            signal: None,
            pid: 7,
            started_at: now,
            finished_at: now,
        }
    }

    #[test]
    fn running_ready_only_when_probed() {
        let now = Utc::now();
        let mut clock = ConditionClock::default();
        let mut v = view(ContainerState::Running {
            pid: 42,
            started_at: now,
        });
        let s = pod_status(&v, &mut clock, now);
        assert_eq!(s["phase"], "Running");
        assert_eq!(s["conditions"][3]["type"], "Ready");
        assert_eq!(s["conditions"][3]["status"], "False");
        assert_eq!(s["containerStatuses"][0]["containerID"], "process://42");
        assert_eq!(s["podIP"], "127.0.0.2");
        v.ready = true;
        let later = now + chrono::Duration::seconds(5);
        let s = pod_status(&v, &mut clock, later);
        assert_eq!(s["conditions"][3]["status"], "True");
        assert_eq!(s["conditions"][3]["lastTransitionTime"], ts(later));
        // PodScheduled did not change, so its time is the first one.
        assert_eq!(s["conditions"][0]["lastTransitionTime"], ts(now));
        assert_eq!(
            s["containerStatuses"][0]["state"]["running"]["startedAt"],
            ts(now)
        );
    }

    #[test]
    fn phases() {
        let mut v = view(ContainerState::Waiting {
            reason: "ContainerCreating".into(),
            message: None,
        });
        v.start_time = None;
        assert_eq!(phase(&v), "Pending");
        let mut v = view(ContainerState::Terminated(term(0)));
        assert_eq!(phase(&v), "Running");
        v.finished = true;
        assert_eq!(phase(&v), "Succeeded");
        let mut v = view(ContainerState::Terminated(term(3)));
        v.finished = true;
        assert_eq!(phase(&v), "Failed");
        let s = pod_status(&v, &mut ConditionClock::default(), Utc::now());
        assert_eq!(
            s["containerStatuses"][0]["state"]["terminated"]["exitCode"],
            3
        );
        assert_eq!(s["containerStatuses"][0]["ready"], false);
    }

    #[test]
    fn crash_loop_keeps_last_state_and_is_not_ready() {
        let mut v = view(ContainerState::Waiting {
            reason: "CrashLoopBackOff".into(),
            message: Some("back-off".into()),
        });
        v.ready = true;
        v.restart_count = 2;
        v.last_terminated = Some(term(1));
        let s = pod_status(&v, &mut ConditionClock::default(), Utc::now());
        let c = &s["containerStatuses"][0];
        assert_eq!(c["state"]["waiting"]["reason"], "CrashLoopBackOff");
        assert_eq!(c["lastState"]["terminated"]["exitCode"], 1);
        assert_eq!(c["restartCount"], 2);
        assert_eq!(c["ready"], false);
        assert_eq!(s["conditions"][3]["status"], "False");
    }

    #[test]
    fn restart_policies() {
        assert!(RestartPolicy::parse(None).restarts(0));
        assert!(RestartPolicy::parse(Some("OnFailure")).restarts(1));
        assert!(!RestartPolicy::parse(Some("OnFailure")).restarts(0));
        assert!(!RestartPolicy::parse(Some("Never")).restarts(1));
    }
}
