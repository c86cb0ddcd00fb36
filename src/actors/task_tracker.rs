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
    NamedTask, Observation, SlotView, TaskSpec, TaskSpecError, TaskState, TaskSummary, classify,
    summarize,
};
use crate::cache::PodInfo;
use crate::crd::ledger::ReleasedTasks;

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

/// How replicas find their pods.
#[derive(Clone, Copy, Debug)]
pub enum ReplicaOrder<'a> {
    /// Template mode: by the pod-index label.
    IndexLabel,
    /// Pooled mode: replica i's pod is entry i of the ledger (`None`: no pod there).
    Ledger(&'a [Option<String>]),
}

/// The pod of every replica.
pub fn replica_pods(
    order: ReplicaOrder<'_>,
    replicas: usize,
    pods: &[Arc<PodInfo>],
) -> Vec<Option<PodSlot>> {
    let mut out: Vec<Option<PodSlot>> = vec![None; replicas];
    match order {
        ReplicaOrder::IndexLabel => {
            for p in pods {
                let index = super::sandbox_policy::pod_index(p)
                    .ok()
                    .and_then(|i| usize::try_from(i).ok());
                if let Some(slot) = index.and_then(|i| out.get_mut(i))
                    && slot.is_none()
                {
                    *slot = Some(PodSlot::of(p));
                }
            }
        }
        ReplicaOrder::Ledger(ledger) => {
            for (slot, name) in out.iter_mut().zip(ledger) {
                *slot = name
                    .as_ref()
                    .and_then(|n| pods.iter().find(|p| &p.name == n))
                    .map(|p| PodSlot::of(p));
            }
        }
    }
    out
}

/// The `released-tasks` value of a final state.
pub fn released_state_name(state: TaskState) -> &'static str {
    if state == TaskState::Failed {
        "FAILED"
    } else {
        "SUCCEED"
    }
}

fn released_observation(name: &str) -> Observation {
    let (state, detail) = if name == "FAILED" {
        (TaskState::Failed, "the task failed; its pod was released")
    } else {
        (
            TaskState::Succeed,
            "the task succeeded; its pod was released",
        )
    };
    Observation::Reported {
        state,
        detail: detail.into(),
    }
}

#[derive(Clone, Debug)]
struct Slot {
    task: String,
    pod: Option<PodSlot>,
    /// The executor of this pod listed our task in an answer.
    acked: bool,
    stop_sent: bool,
    /// Cleanup, or release after completion: the executor no longer lists our task.
    released: bool,
    /// Recorded in `released-tasks`: the replica is retired and has no pod.
    retired: bool,
    observation: Observation,
}

#[derive(Debug)]
pub struct TaskTracker {
    slots: BTreeMap<u32, Slot>,
    in_flight: bool,
    stopping: bool,
    /// `taskResourcePolicyWhenCompleted: Release`: a finished task is removed from its
    /// executor and its replica retired.
    release_finished: bool,
    interval: Duration,
    next_due: Option<Instant>,
    /// A pod changed since the last round: the next round is due at once.
    dirty: bool,
    /// Tasks that failed since [`TaskTracker::take_new_failures`] was last called.
    new_failures: Vec<NamedTask>,
}

impl Default for TaskTracker {
    fn default() -> Self {
        Self {
            slots: BTreeMap::new(),
            in_flight: false,
            stopping: false,
            release_finished: false,
            interval: POLL_MIN,
            next_due: None,
            dirty: true,
            new_failures: Vec::new(),
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
    /// Finished tasks are removed from their executors and their replicas retired
    /// (`taskResourcePolicyWhenCompleted: Release`).
    pub fn set_release_finished(&mut self, release: bool) {
        if release && !self.release_finished {
            self.dirty = true;
        }
        self.release_finished = release;
    }

    /// Takes the turn's specs and pods. A replica whose pod changed starts over on the new
    /// pod (its task runs again there) and makes the next round due now. Replicas in
    /// `retired` (the `released-tasks` annotation) keep their recorded result and no pod.
    pub fn observe(
        &mut self,
        sandbox: &str,
        specs: &[Result<TaskSpec, TaskSpecError>],
        pods: &[Option<PodSlot>],
        retired: &ReleasedTasks,
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
                retired: false,
                observation: Observation::Waiting(waiting_reason(None)),
            });
            slot.task = match spec {
                Ok(s) => s.name.clone(),
                Err(_) => format!("{sandbox}-{index}"),
            };
            if let Some(state) = retired.0.get(&index) {
                if !slot.observation.state().is_final() {
                    slot.observation = released_observation(state);
                }
                slot.retired = true;
                slot.released = true;
                slot.pod = None;
                continue;
            }
            slot.retired = false;
            let same_pod = slot.pod.as_ref().map(|p| &p.uid) == pod.as_ref().map(|p| &p.uid);
            if slot.pod != pod {
                self.dirty = true;
            }
            if !same_pod {
                slot.acked = false;
                slot.stop_sent = false;
                slot.released = false;
                // A finished task keeps its result; an unfinished one runs on the new pod.
                let finished = matches!(&slot.observation, Observation::Reported { state, .. } if state.is_final());
                if !finished {
                    slot.observation = Observation::Waiting(waiting_reason(pod.as_ref()));
                }
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
                if finished && self.release_finished && !slot.released {
                    if slot.stop_sent {
                        Call::Get
                    } else {
                        Call::Stop
                    }
                } else if !pod.ready || finished {
                    continue;
                } else if slot.acked {
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
            let was_final = slot.observation.state().is_final();
            // Removing a finished task after completion (Release): it keeps its result.
            let releasing = self.release_finished && was_final;
            match r.outcome {
                Ok(list) => {
                    let ours = list.iter().find(|t| t.name == slot.task);
                    if r.probe.call == Call::Stop {
                        slot.stop_sent = true;
                    }
                    if let Some(t) = ours {
                        slot.observation = match classify(t) {
                            // A result known before the cleanup stays what the status reports.
                            _ if (self.stopping || releasing) && was_final => {
                                slot.observation.clone()
                            }
                            // Ended by the cleanup, not by itself: say so in the final status.
                            Observation::Reported { state, detail }
                                if self.stopping && state.is_final() =>
                            {
                                Observation::Reported {
                                    state,
                                    detail: format!("stopped on deletion: {detail}"),
                                }
                            }
                            o => o,
                        };
                        slot.acked = true;
                    } else if self.stopping || releasing {
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
                // Stopping a task where no task API is served: nothing of ours runs there.
                Err(CallError::NoTaskApi(_)) if self.stopping || releasing => {
                    slot.released = true;
                }
                Err(CallError::Rejected(reason) | CallError::NoTaskApi(reason)) => {
                    slot.observation = Observation::Rejected(reason);
                }
            }
            if !self.stopping
                && slot.observation.state() == TaskState::Failed
                && before.0.state() != TaskState::Failed
            {
                self.new_failures.push(NamedTask {
                    index: r.probe.index,
                    task: slot.task.clone(),
                    pod: slot.pod.as_ref().map(|p| p.name.clone()),
                    detail: slot.observation.detail().to_string(),
                });
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

    /// Replicas whose finished task is off its executor and not yet recorded as retired:
    /// (index, `released-tasks` state). Empty unless finished tasks are released.
    pub fn newly_retired(&self) -> Vec<(u32, &'static str)> {
        if !self.release_finished || self.stopping {
            return Vec::new();
        }
        self.slots
            .iter()
            .filter(|(_, s)| !s.retired && s.observation.state().is_final())
            // Nothing left to stop when the pod is gone or never had an address.
            .filter(|(_, s)| s.released || s.pod.as_ref().is_none_or(|p| p.ip.is_none()))
            .map(|(i, s)| (*i, released_state_name(s.observation.state())))
            .collect()
    }

    /// The delay before the next round is due, when anything is left to poll.
    pub fn poll_interval(&self) -> Duration {
        self.interval
    }

    /// Tasks that failed since the last call (for one Warning event each).
    pub fn take_new_failures(&mut self) -> Vec<NamedTask> {
        std::mem::take(&mut self.new_failures)
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::actors::task_policy::TaskReport;
    use crate::cache::objects::PodInfo;

    fn specs(n: u32) -> Vec<Result<TaskSpec, TaskSpecError>> {
        (0..n)
            .map(|index| {
                Ok(TaskSpec {
                    name: format!("bs-{index}"),
                    index,
                    process: json!({"command": ["true"]}),
                })
            })
            .collect()
    }

    fn pod(i: u32, uid: &str, ready: bool) -> Option<PodSlot> {
        Some(PodSlot {
            name: format!("bs-{i}"),
            uid: uid.into(),
            ip: Some(format!("127.0.0.{}", i + 2)),
            ready,
        })
    }

    fn report(name: &str, status: serde_json::Value) -> TaskReport {
        serde_json::from_value(json!({"name": name, "processStatus": status})).unwrap()
    }

    fn answer(probe: &Probe, list: Vec<TaskReport>) -> ProbeResult {
        ProbeResult {
            probe: probe.clone(),
            outcome: Ok(list),
        }
    }

    fn running(name: &str) -> TaskReport {
        report(
            name,
            json!({"running": {"startedAt": "2026-01-01T00:00:00Z"}}),
        )
    }

    fn exited(name: &str, code: i32) -> TaskReport {
        report(name, json!({"terminated": {"exitCode": code}}))
    }

    #[test]
    fn pushes_once_then_follows_and_stops_polling_finished_tasks() {
        let mut t = TaskTracker::default();
        let s = specs(2);
        t.observe(
            "bs",
            &s,
            &[pod(0, "a", true), pod(1, "b", false)],
            &ReleasedTasks::default(),
        );
        let now = Instant::now();
        let round = t.next_round(&s, now).unwrap();
        // Only the Ready pod is asked; the other replica waits for its pod.
        assert_eq!(round.len(), 1);
        assert!(matches!(round[0].call, Call::Push(ref v) if v["name"] == "bs-0"));
        assert!(
            t.next_round(&s, now).is_none(),
            "one round in flight at a time"
        );
        assert!(t.absorb(vec![answer(&round[0], vec![running("bs-0")])], now));
        assert_eq!(t.summary().counts.running, 1);
        assert_eq!(t.summary().counts.pending, 1);
        // Not due before the poll interval, due after it; then a GET, not a second push.
        assert!(t.next_round(&s, now).is_none());
        let later = now + t.poll_interval();
        let round = t.next_round(&s, later).unwrap();
        assert_eq!(round[0].call, Call::Get);
        assert!(t.absorb(vec![answer(&round[0], vec![exited("bs-0", 0)])], later));
        assert_eq!(t.summary().counts.succeed, 1);
        // Finished: nothing left to poll until a pod changes.
        assert!(t.next_round(&s, later + POLL_MAX).is_none());
        // A pod event (Ready) makes a round due at once.
        t.observe(
            "bs",
            &s,
            &[pod(0, "a", true), pod(1, "b", true)],
            &ReleasedTasks::default(),
        );
        let round = t.next_round(&s, later).unwrap();
        assert_eq!(round.len(), 1);
        assert_eq!(round[0].index, 1);
    }

    #[test]
    fn backs_off_while_nothing_changes() {
        let mut t = TaskTracker::default();
        let s = specs(1);
        t.observe("bs", &s, &[pod(0, "a", true)], &ReleasedTasks::default());
        let mut now = Instant::now();
        let mut intervals = Vec::new();
        for _ in 0..8 {
            let round = t.next_round(&s, now).unwrap();
            t.absorb(vec![answer(&round[0], vec![running("bs-0")])], now);
            intervals.push(t.poll_interval());
            now += t.poll_interval();
        }
        assert_eq!(intervals[0], POLL_MIN, "the first answer is a change");
        assert!(intervals.windows(2).all(|w| w[1] >= w[0]));
        assert_eq!(*intervals.last().unwrap(), POLL_MAX);
    }

    #[test]
    fn unreachable_and_lost_tasks() {
        let mut t = TaskTracker::default();
        let s = specs(1);
        t.observe("bs", &s, &[pod(0, "a", true)], &ReleasedTasks::default());
        let now = Instant::now();
        let round = t.next_round(&s, now).unwrap();
        t.absorb(
            vec![ProbeResult {
                probe: round[0].clone(),
                outcome: Err(CallError::Unreachable("connection refused".into())),
            }],
            now,
        );
        let sum = t.summary();
        assert_eq!(sum.counts.unknown, 1);
        assert_eq!(sum.unknown[0].detail, "connection refused");
        // Still not acknowledged: the next round pushes again.
        let round = t.next_round(&s, now + POLL_MAX).unwrap();
        assert!(matches!(round[0].call, Call::Push(_)));
        t.absorb(vec![answer(&round[0], vec![running("bs-0")])], now);
        // The executor lost the task (restart): it is pushed again.
        let round = t.next_round(&s, now + POLL_MAX).unwrap();
        assert_eq!(round[0].call, Call::Get);
        t.absorb(vec![answer(&round[0], vec![])], now);
        assert_eq!(t.summary().counts.pending, 1);
        let round = t.next_round(&s, now + POLL_MAX).unwrap();
        assert!(matches!(round[0].call, Call::Push(_)));
    }

    #[test]
    fn a_replaced_pod_runs_the_task_again_and_stale_results_are_dropped() {
        let mut t = TaskTracker::default();
        let s = specs(1);
        t.observe("bs", &s, &[pod(0, "old", true)], &ReleasedTasks::default());
        let now = Instant::now();
        let stale = t.next_round(&s, now).unwrap();
        t.observe("bs", &s, &[pod(0, "new", true)], &ReleasedTasks::default());
        // The old pod's answer arrives after the replacement: ignored.
        assert!(!t.absorb(vec![answer(&stale[0], vec![exited("bs-0", 1)])], now));
        assert_eq!(t.summary().counts.failed, 0);
        let round = t.next_round(&s, now).unwrap();
        assert_eq!(round[0].pod_uid, "new");
        assert!(matches!(round[0].call, Call::Push(_)));
        t.absorb(vec![answer(&round[0], vec![exited("bs-0", 0)])], now);
        // Finished work is not redone when its pod is replaced once more.
        t.observe(
            "bs",
            &s,
            &[pod(0, "newer", true)],
            &ReleasedTasks::default(),
        );
        assert!(t.next_round(&s, now).is_none());
        assert_eq!(t.summary().counts.succeed, 1);
    }

    #[test]
    fn cleanup_stops_every_task_and_completes_when_executors_drop_them() {
        let mut t = TaskTracker::default();
        let s = specs(3);
        let pods = [pod(0, "a", true), pod(1, "b", true), None];
        t.observe("bs", &s, &pods, &ReleasedTasks::default());
        let now = Instant::now();
        let round = t.next_round(&s, now).unwrap();
        t.absorb(
            round
                .iter()
                .map(|p| answer(p, vec![running(&format!("bs-{}", p.index))]))
                .collect(),
            now,
        );
        t.start_stopping();
        t.observe("bs", &s, &pods, &ReleasedTasks::default());
        assert!(!t.cleanup_done());
        let round = t.next_round(&s, now).unwrap();
        assert_eq!(
            round.len(),
            2,
            "the replica without a pod has nothing to stop"
        );
        assert!(round.iter().all(|p| p.call == Call::Stop));
        // Pod 0's executor already dropped the task; pod 1's still lists it (stopping).
        let mut deleting = running("bs-1");
        deleting.deletion_timestamp = Some("2026-01-01T00:00:00Z".into());
        t.absorb(
            vec![answer(&round[0], vec![]), answer(&round[1], vec![deleting])],
            now,
        );
        assert!(!t.cleanup_done());
        let round = t.next_round(&s, now).unwrap_or_default();
        let round = if round.is_empty() {
            t.next_round(&s, now + POLL_MAX).unwrap()
        } else {
            round
        };
        assert_eq!(round.len(), 1);
        assert_eq!((round[0].index, &round[0].call), (1, &Call::Get));
        t.absorb(vec![answer(&round[0], vec![exited("bs-1", 143)])], now);
        assert!(!t.cleanup_done());
        // Still listed (being removed): the result stays as first seen.
        let round = t.next_round(&s, now + POLL_MAX).unwrap();
        t.absorb(vec![answer(&round[0], vec![exited("bs-1", 143)])], now);
        let round = t.next_round(&s, now + POLL_MAX).unwrap();
        t.absorb(vec![answer(&round[0], vec![])], now);
        assert!(t.cleanup_done());
        // The last known state is what the final status reports.
        let sum = t.summary();
        assert_eq!(sum.counts.failed, 1);
        assert_eq!(sum.failed[0].index, 1);
        assert_eq!(sum.failed[0].detail, "stopped on deletion: exit code 143");
        assert_eq!(sum.counts.running, 1, "replica 0's last report");
    }

    #[test]
    fn replica_pods_follow_index_labels_or_ledger_order() {
        let p = |name: &str, index: Option<u32>| {
            Arc::new(PodInfo {
                namespace: "ns".into(),
                name: name.into(),
                uid: format!("uid-{name}"),
                resource_version: "1".into(),
                pod_index: index,
                created: chrono::Utc::now(),
                phase: "Running".into(),
                pod_ip: Some("127.0.0.9".into()),
                ready: true,
                ..Default::default()
            })
        };
        let pods = vec![p("x-1", Some(1)), p("x-0", Some(0))];
        let by_label = replica_pods(ReplicaOrder::IndexLabel, 3, &pods);
        assert_eq!(by_label[0].as_ref().unwrap().name, "x-0");
        assert_eq!(by_label[1].as_ref().unwrap().name, "x-1");
        assert!(by_label[2].is_none());
        // An empty ledger slot keeps the positions after it.
        let ledger = [None, Some("x-1".to_string()), Some("x-0".to_string())];
        let by_position = replica_pods(ReplicaOrder::Ledger(&ledger), 3, &pods);
        assert!(by_position[0].is_none());
        assert_eq!(by_position[1].as_ref().unwrap().name, "x-1");
        assert_eq!(by_position[2].as_ref().unwrap().name, "x-0");
    }

    #[test]
    fn cleanup_does_not_wait_for_an_address_that_serves_no_task_api() {
        let mut t = TaskTracker::default();
        let s = specs(1);
        t.observe("bs", &s, &[pod(0, "a", true)], &ReleasedTasks::default());
        let now = Instant::now();
        let round = t.next_round(&s, now).unwrap();
        let no_api = |p: &Probe| ProbeResult {
            probe: p.clone(),
            outcome: Err(CallError::NoTaskApi("404".into())),
        };
        t.absorb(vec![no_api(&round[0])], now);
        assert_eq!(t.summary().counts.unknown, 1, "running: a clear reason");
        t.start_stopping();
        let round = t.next_round(&s, now).unwrap();
        assert_eq!(round[0].call, Call::Stop);
        t.absorb(vec![no_api(&round[0])], now);
        assert!(t.cleanup_done());
    }

    #[test]
    fn release_removes_finished_tasks_then_retires_their_replicas() {
        let mut t = TaskTracker::default();
        t.set_release_finished(true);
        let s = specs(2);
        let pods = [pod(0, "a", true), pod(1, "b", true)];
        t.observe("bs", &s, &pods, &ReleasedTasks::default());
        let now = Instant::now();
        let round = t.next_round(&s, now).unwrap();
        t.absorb(
            vec![
                answer(&round[0], vec![exited("bs-0", 0)]),
                answer(&round[1], vec![running("bs-1")]),
            ],
            now,
        );
        assert!(t.newly_retired().is_empty(), "still on its executor");
        // The finished task is removed from its executor; the running one is followed.
        let round = t.next_round(&s, now + POLL_MAX).unwrap();
        assert_eq!(round.len(), 2);
        assert_eq!((round[0].index, &round[0].call), (0, &Call::Stop));
        assert_eq!((round[1].index, &round[1].call), (1, &Call::Get));
        t.absorb(
            vec![
                answer(&round[0], vec![]),
                answer(&round[1], vec![exited("bs-1", 2)]),
            ],
            now,
        );
        assert_eq!(t.newly_retired(), vec![(0, "SUCCEED")]);
        let round = t.next_round(&s, now + POLL_MAX).unwrap();
        assert_eq!((round[0].index, &round[0].call), (1, &Call::Stop));
        t.absorb(vec![answer(&round[0], vec![exited("bs-1", 2)])], now);
        assert_eq!(
            t.summary().counts.failed,
            1,
            "the result is kept while removed"
        );
        let round = t.next_round(&s, now + POLL_MAX).unwrap();
        t.absorb(vec![answer(&round[0], vec![])], now);
        assert_eq!(t.newly_retired(), vec![(0, "SUCCEED"), (1, "FAILED")]);
        // Recorded: the replicas lose their pods and are never asked again.
        let recorded =
            ReleasedTasks([(0, "SUCCEED".to_string()), (1, "FAILED".to_string())].into());
        t.observe("bs", &s, &pods, &recorded);
        assert!(t.newly_retired().is_empty());
        assert!(t.next_round(&s, now + POLL_MAX * 2).is_none());
        let sum = t.summary();
        assert_eq!((sum.counts.succeed, sum.counts.failed), (1, 1));
    }

    #[test]
    fn retired_replicas_keep_their_results_after_a_restart() {
        let mut t = TaskTracker::default();
        t.set_release_finished(true);
        let s = specs(3);
        let recorded =
            ReleasedTasks([(0, "SUCCEED".to_string()), (2, "FAILED".to_string())].into());
        t.observe("bs", &s, &[None, pod(1, "b", true), None], &recorded);
        let sum = t.summary();
        assert_eq!(
            (sum.counts.succeed, sum.counts.failed, sum.counts.pending),
            (1, 1, 1)
        );
        let round = t.next_round(&s, Instant::now()).unwrap();
        assert_eq!(round.len(), 1);
        assert!(matches!(round[0].call, Call::Push(ref v) if v["name"] == "bs-1"));
    }
}
