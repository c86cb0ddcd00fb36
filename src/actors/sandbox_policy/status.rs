//! The BatchSandbox status: counts, phase and conditions (§7.7, quirks fixed).

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};

use crate::cache::objects::PodInfo;
use crate::crd::conditions::{Condition, set_condition};
use crate::crd::{BatchSandbox, BatchSandboxStatus, SandboxPhase};

/// All desired pods are Ready (True) or why not (False).
pub const COND_READY: &str = "Ready";
/// True while the sandbox works towards its desired pods.
pub const COND_PROGRESSING: &str = "Progressing";
/// A listed pod is failing (crash loop, image pull, config error, phase Failed).
pub const COND_POD_FAILED: &str = "PodFailed";
/// A container restarted after its pod was Ready: that sandbox's in-memory state was lost.
pub const COND_POD_RESTARTED: &str = "PodRestarted";

/// Reason for a pod in phase Failed (it has no waiting container to name the cause).
const REASON_PHASE_FAILED: &str = "PodPhaseFailed";

/// Task counts of the status (the task scheduler fills them; absent keeps the old values).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TaskCounts {
    pub pending: i32,
    pub running: i32,
    pub succeed: i32,
    pub failed: i32,
    pub unknown: i32,
}

/// Everything [`sandbox_status`] looks at.
#[derive(Clone, Copy, Debug)]
pub struct StatusInput<'a> {
    /// The sandbox: spec, current status and `metadata.generation`.
    pub bs: &'a BatchSandbox,
    /// Listed pods in index order: owned pods (template mode) or held pods in ledger order.
    pub pods: &'a [Arc<PodInfo>],
    /// Fresh task counts; `None` keeps the current ones.
    pub tasks: Option<TaskCounts>,
    /// Restart count of each pod (by uid) when it was first seen Ready: see
    /// [`track_ready_restarts`].
    pub restart_baseline: &'a HashMap<String, i32>,
    pub now: DateTime<Utc>,
}

/// Records, for every listed pod that is Ready and not yet known, its current restart count,
/// and forgets pods no longer listed. The actor keeps the map in memory across turns; a pod
/// whose restart count later exceeds its entry restarted after it was Ready.
pub fn track_ready_restarts(baseline: &mut HashMap<String, i32>, pods: &[Arc<PodInfo>]) {
    baseline.retain(|uid, _| pods.iter().any(|p| &p.uid == uid));
    for pod in pods.iter().filter(|p| p.ready && !p.deleting) {
        baseline
            .entry(pod.uid.clone())
            .or_insert_with(|| pod.restarts());
    }
}

/// Whether `new` must be written: any difference at all. [`set_condition`] keeps transition
/// times stable, so the same inputs give an equal status and no write.
pub fn status_changed(old: Option<&BatchSandboxStatus>, new: &BatchSandboxStatus) -> bool {
    old != Some(new)
}

/// Whether to hold back the very first status write: a new sandbox with no status, desired
/// pods and none listed yet (its pods are on their way; upstream §7.9 does the same). Saves
/// one write per sandbox; the actor still writes when it has a condition of its own to report.
pub fn first_write_deferred(bs: &BatchSandbox, listed_pods: usize) -> bool {
    bs.status.as_ref().is_none_or(|s| s.phase.is_none()) && bs.spec.replicas > 0 && listed_pods == 0
}

/// Computes the next status from the current one and fresh pods.
///
/// `Pausing`, `Paused` and `Resuming` belong to the pause/resume flow: their phase and
/// conditions are kept, only counts and `observedGeneration` are refreshed.
pub fn sandbox_status(input: &StatusInput<'_>) -> BatchSandboxStatus {
    let mut status = input.bs.status.clone().unwrap_or_default();
    status.observed_generation = input.bs.metadata.generation;
    let counts = Counts::of(input.bs, input.pods);
    status.replicas = counts.listed;
    status.allocated = counts.assigned;
    status.ready = counts.ready;
    if let Some(t) = input.tasks {
        status.task_pending = t.pending;
        status.task_running = t.running;
        status.task_succeed = t.succeed;
        status.task_failed = t.failed;
        status.task_unknown = t.unknown;
    }
    if matches!(
        status.phase,
        Some(SandboxPhase::Pausing | SandboxPhase::Paused | SandboxPhase::Resuming)
    ) {
        return status;
    }
    let now = input.now.to_rfc3339_opts(SecondsFormat::Secs, true);
    let failures = Failures::of(input.pods);
    let phase = steady_phase(&counts, failures.as_ref());
    status.phase = Some(phase);
    let conds = &mut status.conditions;
    set_readiness(conds, phase, &counts, failures.as_ref(), &now);
    set_pod_failed(conds, failures.as_ref(), &now);
    set_pod_restarted(conds, input.pods, input.restart_baseline, &now);
    status
}

/// Pod counts of one turn.
struct Counts {
    /// `spec.poolRef` in pooled mode.
    pool: Option<String>,
    /// Pods wanted: `spec.replicas` less the retired replicas.
    desired: i32,
    retired: i32,
    listed: i32,
    live: i32,
    assigned: i32,
    ready: i32,
}

/// Replicas retired after their task finished: they want no pod any more.
fn retired_replicas(bs: &BatchSandbox) -> i32 {
    let replicas = u32::try_from(bs.spec.replicas.max(0)).unwrap_or(0);
    let retired = bs.released_tasks().0.range(..replicas).count();
    i32::try_from(retired).unwrap_or(i32::MAX)
}

impl Counts {
    fn of(bs: &BatchSandbox, pods: &[Arc<PodInfo>]) -> Self {
        let count = |f: &dyn Fn(&PodInfo) -> bool| {
            i32::try_from(pods.iter().filter(|p| f(p)).count()).unwrap_or(i32::MAX)
        };
        let retired = retired_replicas(bs);
        Self {
            pool: bs.pool_ref().map(String::from),
            desired: bs.spec.replicas.max(0) - retired,
            retired,
            listed: count(&|_| true),
            live: count(&|p| !p.deleting),
            assigned: count(&|p| p.assigned()),
            ready: count(&|p| p.ready && !p.deleting),
        }
    }

    fn all_ready(&self) -> bool {
        // Every replica retired after its task finished: nothing left to wait for.
        let all_retired = self.desired == 0 && self.retired > 0;
        (self.ready >= 1 || all_retired) && self.ready >= self.desired
    }
}

/// Failing pods, summarised as upstream does.
struct Failures {
    failed: usize,
    observed: usize,
    reason: String,
    sample: String,
}

impl Failures {
    /// Terminating pods are on their way out (and replaced): they do not count as failing.
    fn of(pods: &[Arc<PodInfo>]) -> Option<Self> {
        let mut counts: Vec<(&str, usize, &str)> = Vec::new();
        let (mut best, mut failed) = (None::<usize>, 0);
        for pod in pods.iter().filter(|p| !p.deleting) {
            let Some(reason) = failure_reason(pod) else {
                continue;
            };
            failed += 1;
            let i = match counts.iter().position(|(r, _, _)| *r == reason) {
                Some(i) => i,
                None => {
                    counts.push((reason, 0, pod.name.as_str()));
                    counts.len() - 1
                }
            };
            counts[i].1 += 1;
            // The primary reason is the one that first reaches the highest count.
            if best.is_none_or(|b| counts[i].1 > counts[b].1) {
                best = Some(i);
            }
        }
        let (reason, _, sample) = counts.get(best?)?;
        Some(Self {
            failed,
            observed: pods.len(),
            reason: reason.to_string(),
            sample: sample.to_string(),
        })
    }

    fn message(&self) -> String {
        format!(
            "{}/{} observed pods failed; primary reason={}; sample pod={}",
            self.failed, self.observed, self.reason, self.sample
        )
    }
}

fn failure_reason(pod: &PodInfo) -> Option<&str> {
    pod.failure_reason()
        .or((pod.phase == "Failed").then_some(REASON_PHASE_FAILED))
}

fn steady_phase(counts: &Counts, failures: Option<&Failures>) -> SandboxPhase {
    if failures.is_some() {
        SandboxPhase::Failed
    } else if counts.all_ready() {
        SandboxPhase::Succeed
    } else {
        SandboxPhase::Pending
    }
}

/// Ready and Progressing, both always present.
fn set_readiness(
    conds: &mut Vec<Condition>,
    phase: SandboxPhase,
    counts: &Counts,
    failures: Option<&Failures>,
    now: &str,
) {
    let mut ready_msg = format!("{}/{} pods ready", counts.ready, counts.desired);
    if counts.retired > 0 {
        ready_msg.push_str(&format!(
            " ({} released after their task finished)",
            counts.retired
        ));
    }
    let (ready, progressing) = match (phase, failures) {
        (SandboxPhase::Failed, Some(f)) => {
            let msg = f.message();
            (
                Condition::new(COND_READY, false, "PodFailed", &msg, now),
                Condition::new(COND_PROGRESSING, false, "PodFailed", &msg, now),
            )
        }
        (SandboxPhase::Succeed, _) => (
            Condition::new(COND_READY, true, "PodsReady", &ready_msg, now),
            Condition::new(COND_PROGRESSING, false, "PodsReady", &ready_msg, now),
        ),
        _ => {
            let (reason, msg) = pending_reason(counts, ready_msg);
            (
                Condition::new(COND_READY, false, reason, &msg, now),
                Condition::new(COND_PROGRESSING, true, reason, &msg, now),
            )
        }
    };
    set_condition(conds, ready);
    set_condition(conds, progressing);
}

fn pending_reason(counts: &Counts, ready_msg: String) -> (&'static str, String) {
    if counts.desired == 0 {
        ("NoReplicas", "spec.replicas is 0".to_string())
    } else if let Some(pool) = counts
        .pool
        .as_deref()
        .filter(|_| counts.live < counts.desired)
    {
        (
            "WaitingForPool",
            format!(
                "{} of {} pods allocated from pool {pool}, {ready_msg}",
                counts.live, counts.desired
            ),
        )
    } else if counts.live < counts.desired || counts.assigned < counts.listed {
        (
            "Creating",
            format!(
                "Sandbox is being created: {} of {} pods exist, {} scheduled, {}",
                counts.live, counts.desired, counts.assigned, ready_msg
            ),
        )
    } else {
        ("PodsNotReady", ready_msg)
    }
}

/// PodFailed, always present: True with the failure summary, else False.
fn set_pod_failed(conds: &mut Vec<Condition>, failures: Option<&Failures>, now: &str) {
    let cond = match failures {
        Some(f) => Condition::new(COND_POD_FAILED, true, &f.reason, &f.message(), now),
        None => Condition::new(
            COND_POD_FAILED,
            false,
            "NoPodFailed",
            "no listed pod is failing",
            now,
        ),
    };
    set_condition(conds, cond);
}

/// PodRestarted is a fact about the sandbox's history (its state was lost once), so once True
/// it stays True, refreshed with the latest restart; it is absent until a restart is seen.
fn set_pod_restarted(
    conds: &mut Vec<Condition>,
    pods: &[Arc<PodInfo>],
    baseline: &HashMap<String, i32>,
    now: &str,
) {
    let restarted: Vec<&PodInfo> = pods
        .iter()
        .filter(|p| baseline.get(&p.uid).is_some_and(|b| p.restarts() > *b))
        .map(|p| p.as_ref())
        .collect();
    let Some(first) = restarted.first() else {
        return;
    };
    let mut msg = format!(
        "pod {} restarted after it was Ready (restart count {})",
        first.name,
        first.restarts()
    );
    if restarted.len() > 1 {
        msg.push_str(&format!("; {} pods restarted", restarted.len()));
    }
    set_condition(
        conds,
        Condition::new(COND_POD_RESTARTED, true, "ContainerRestarted", &msg, now),
    );
}
