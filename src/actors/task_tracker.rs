//! The task tracker of one BatchSandbox: what the controller knows about every replica's
//! task, which executor calls the next round makes, and when. No I/O: the actor runs the
//! rounds ([`super::task_client::run_round`]) and hands the results back.
//!
//! Following is event driven where it can be: a pod change (new pod, new address, Ready)
//! makes the next round due at once. Between events the tracker polls the tasks that are
//! not finished, every [`POLL_MIN`] while something changes, backing off to [`POLL_MAX`]
//! while nothing does. Finished tasks are not polled again unless their pod changes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::task_client::{Call, CallError, Probe, ProbeResult};
use super::task_policy::{
    Observation, SlotView, TaskSpec, TaskSpecError, TaskSummary, classify, summarize,
};
use crate::cache::PodInfo;

pub const POLL_MIN: Duration = Duration::from_millis(200);
pub const POLL_MAX: Duration = Duration::from_secs(5);
/// How long a deleted sandbox waits for its tasks to stop before its pods are released.
pub const CLEANUP_TIMEOUT: Duration = Duration::from_secs(30);

/// What the tracker needs to know about a replica's pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodSlot {
    pub name: String,
    pub uid: String,
    pub ip: Option<String>,
    pub ready: bool,
}

impl PodSlot {
    pub fn of(p: &PodInfo) -> Self {
        Self {
            name: p.name.clone(),
            uid: p.uid.clone(),
            ip: p.pod_ip.clone().filter(|ip| !ip.is_empty()),
            ready: p.ready && !p.deleting,
        }
    }
}

/// The pod of every replica: in template mode the pod with that index label, in pooled mode
/// the pod at that position of the ledger (`pods` is in that order).
pub fn replica_pods(pooled: bool, replicas: usize, pods: &[Arc<PodInfo>]) -> Vec<Option<PodSlot>> {
    let mut out: Vec<Option<PodSlot>> = vec![None; replicas];
    for (pos, p) in pods.iter().enumerate() {
        let index = if pooled {
            Some(pos)
        } else {
            super::sandbox_policy::pod_index(p)
                .ok()
                .and_then(|i| usize::try_from(i).ok())
        };
        if let Some(slot) = index.and_then(|i| out.get_mut(i))
            && slot.is_none()
        {
            *slot = Some(PodSlot::of(p));
        }
    }
    out
}

#[derive(Clone, Debug)]
struct Slot {
    task: String,
    pod: Option<PodSlot>,
    /// The executor of this pod listed our task in an answer.
    acked: bool,
    stop_sent: bool,
    /// Cleanup: the executor no longer lists our task.
    released: bool,
    observation: Observation,
}

#[derive(Debug)]
pub struct TaskTracker {
    slots: BTreeMap<u32, Slot>,
    in_flight: bool,
    stopping: bool,
    interval: Duration,
    next_due: Option<Instant>,
    /// A pod changed since the last round: the next round is due at once.
    dirty: bool,
}

impl Default for TaskTracker {
    fn default() -> Self {
        Self {
            slots: BTreeMap::new(),
            in_flight: false,
            stopping: false,
            interval: POLL_MIN,
            next_due: None,
            dirty: true,
        }
    }
}

fn waiting_reason(pod: Option<&PodSlot>) -> String {
    match pod {
        None => "no pod for this replica yet".into(),
        Some(p) if p.ip.is_none() => format!("pod {} has no IP yet", p.name),
        Some(p) => format!("pod {} is not Ready", p.name),
    }
}

impl TaskTracker {
    /// Takes the turn's specs and pods. A replica whose pod changed starts over on the new
    /// pod (its task runs again there) and makes the next round due now.
    pub fn observe(
        &mut self,
        sandbox: &str,
        specs: &[Result<TaskSpec, TaskSpecError>],
        pods: &[Option<PodSlot>],
    ) {
        let len = u32::try_from(specs.len()).unwrap_or(u32::MAX);
        self.slots.retain(|i, _| *i < len);
        for (i, spec) in specs.iter().enumerate() {
            let index = u32::try_from(i).unwrap_or(u32::MAX);
            let pod = pods.get(i).cloned().flatten();
            let slot = self.slots.entry(index).or_insert_with(|| Slot {
                task: String::new(),
                pod: None,
                acked: false,
                stop_sent: false,
                released: false,
                observation: Observation::Waiting(waiting_reason(None)),
            });
            slot.task = match spec {
                Ok(s) => s.name.clone(),
                Err(_) => format!("{sandbox}-{index}"),
            };
            let same_pod = slot.pod.as_ref().map(|p| &p.uid) == pod.as_ref().map(|p| &p.uid);
            if slot.pod != pod {
                self.dirty = true;
            }
            if !same_pod {
                slot.acked = false;
                slot.stop_sent = false;
                slot.released = false;
                slot.observation = Observation::Waiting(waiting_reason(pod.as_ref()));
            }
            slot.pod = pod;
            match spec {
                Err(e) => slot.observation = Observation::Invalid(e.to_string()),
                Ok(_) => {
                    let reachable = slot.pod.as_ref().is_some_and(|p| p.ready && p.ip.is_some());
                    let finished = matches!(&slot.observation, Observation::Reported { state, .. } if state.is_final());
                    if !reachable && !finished && !self.stopping {
                        slot.observation = Observation::Waiting(waiting_reason(slot.pod.as_ref()));
                    }
                    if matches!(slot.observation, Observation::Invalid(_)) {
                        slot.observation = Observation::Waiting(waiting_reason(slot.pod.as_ref()));
                    }
                }
            }
        }
    }

    /// Switches to cleanup: every task is stopped and removed from its executor.
    pub fn start_stopping(&mut self) {
        if !self.stopping {
            self.stopping = true;
            self.dirty = true;
        }
    }

    /// The calls of the next round, when one is due and none is in flight.
    pub fn next_round(
        &mut self,
        specs: &[Result<TaskSpec, TaskSpecError>],
        now: Instant,
    ) -> Option<Vec<Probe>> {
        if self.in_flight || (!self.dirty && self.next_due.is_some_and(|d| now < d)) {
            return None;
        }
        self.dirty = false;
        let mut probes = Vec::new();
        for (index, slot) in &self.slots {
            let Some(pod) = slot.pod.as_ref() else {
                continue;
            };
            let Some(ip) = pod.ip.clone() else { continue };
            let call = if self.stopping {
                if slot.released {
                    continue;
                }
                if slot.stop_sent {
                    Call::Get
                } else {
                    Call::Stop
                }
            } else {
                let Some(Ok(spec)) = specs.get(usize::try_from(*index).unwrap_or(usize::MAX))
                else {
                    continue;
                };
                let finished = matches!(&slot.observation, Observation::Reported { state, .. } if state.is_final());
                if !pod.ready || finished {
                    continue;
                }
                if slot.acked {
                    Call::Get
                } else {
                    Call::Push(serde_json::json!({"name": spec.name, "process": spec.process}))
                }
            };
            probes.push(Probe {
                index: *index,
                pod_uid: pod.uid.clone(),
                ip,
                call,
            });
        }
        if probes.is_empty() {
            return None;
        }
        self.in_flight = true;
        Some(probes)
    }

    /// Takes a round's results; returns whether any replica's state changed. Results for a
    /// pod the replica no longer has are dropped.
    pub fn absorb(&mut self, results: Vec<ProbeResult>, now: Instant) -> bool {
        self.in_flight = false;
        let mut changed = false;
        for r in results {
            let Some(slot) = self.slots.get_mut(&r.probe.index) else {
                continue;
            };
            if slot.pod.as_ref().map(|p| p.uid.as_str()) != Some(r.probe.pod_uid.as_str()) {
                continue;
            }
            let before = (slot.observation.clone(), slot.released, slot.acked);
            match r.outcome {
                Ok(list) => {
                    let ours = list.iter().find(|t| t.name == slot.task);
                    if r.probe.call == Call::Stop {
                        slot.stop_sent = true;
                    }
                    if let Some(t) = ours {
                        slot.observation = classify(t);
                        slot.acked = true;
                    } else if self.stopping {
                        slot.released = true;
                    } else if matches!(r.probe.call, Call::Push(_)) {
                        slot.observation = Observation::Rejected(
                            "the executor accepted setTasks but does not list the task".into(),
                        );
                    } else {
                        // Lost (e.g. the executor restarted mid-task): push it again.
                        slot.acked = false;
                        slot.observation =
                            Observation::Waiting("the executor does not have the task".into());
                    }
                }
                Err(CallError::Unreachable(reason)) => {
                    slot.observation = Observation::Unreachable(reason);
                }
                Err(CallError::Rejected(reason)) => {
                    slot.observation = Observation::Rejected(reason);
                }
            }
            changed |= before != (slot.observation.clone(), slot.released, slot.acked);
        }
        self.interval = if changed {
            POLL_MIN
        } else {
            (self.interval * 2).min(POLL_MAX)
        };
        self.next_due = Some(now + self.interval);
        changed
    }

    /// The delay before the next round is due, when anything is left to poll.
    pub fn poll_interval(&self) -> Duration {
        self.interval
    }

    /// A pod changed while a round was in flight: the next one should start right away.
    pub fn round_due_now(&self) -> bool {
        self.dirty
    }

    pub fn is_stopping(&self) -> bool {
        self.stopping
    }

    /// Cleanup is complete when no executor lists a task of ours any more (replicas without a
    /// pod or address have nothing to stop).
    pub fn cleanup_done(&self) -> bool {
        self.slots
            .values()
            .all(|s| s.released || s.pod.as_ref().is_none_or(|p| p.ip.is_none()))
    }

    pub fn summary(&self) -> TaskSummary {
        summarize(self.slots.iter().map(|(index, s)| SlotView {
            index: *index,
            task: &s.task,
            pod: s.pod.as_ref().map(|p| p.name.as_str()),
            observation: &s.observation,
        }))
    }
}
