//! The pure Pool policy: given a trimmed view of a pool's pods and its sandboxes' demand,
//! decide what to create, what to delete and which pods may be allocated, and compute the
//! status counts (reference/upstream-controller.md §5.7-5.10, with the [quirk]s fixed).
//!
//! The PoolActor calls [`plan`] once per turn. The function has no I/O and is deterministic;
//! applying its plan and planning again reaches a fixed point (no creates, no deletes).
//!
//! Decisions that differ from upstream:
//! * `poolMax` is a hard cap in both directions: idle pods beyond it are removed, and creates
//!   issued but not yet observed (`pending_creates`) count against it so a burst never
//!   overshoots. When `poolMax` is too small for `allocated + bufferMin`, `poolMax` wins and
//!   the buffer is best effort. An invalid `capacitySpec` is reported in [`PoolPlan::invalid`]
//!   and planned with the maxima winning (`min(bufferMin, bufferMax)`, `min(poolMin, poolMax)`).
//! * Pacing (`scaleStrategy` and `updateStrategy`) counts only *idle* not-Ready pods plus
//!   pending creates as unavailable: a crashing sandbox's pod must not freeze the warm pool.
//! * Idle pods in a terminal phase (Failed/Succeeded) can never become Ready: they are
//!   deleted and replaced one for one, like a not-Ready old-revision pod.
//! * Only idle Ready pods of the *current* revision are allocatable, so a sandbox created
//!   after a template change gets the new template; `available` counts exactly those pods.
//! * `allocated` counts allocated pods that still exist (upstream counts store entries).

mod limits;
mod order;
mod revision;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::crd::pool::CapacitySpec;

pub use limits::{
    Capacity, DEFAULT_MAX_UNAVAILABLE_PERCENT, parse_max_unavailable, resolve_max_unavailable,
    validate_capacity,
};
pub use order::{compare_for_deletion, deletion_order};
pub use revision::revision_hash;

/// A pod's `status.phase`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum PodPhase {
    #[default]
    Pending,
    Running,
    Succeeded,
    Failed,
    Unknown,
}

impl PodPhase {
    /// Parses `status.phase`; an absent or unknown value is treated as Pending (as §4.4 ranks it).
    pub fn parse(phase: &str) -> Self {
        match phase {
            "Running" => Self::Running,
            "Succeeded" => Self::Succeeded,
            "Failed" => Self::Failed,
            "Unknown" => Self::Unknown,
            _ => Self::Pending,
        }
    }

    /// Whether the pod has finished and can never become Ready again.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed)
    }
}

/// What the policy needs to know about one pool pod (trimmed from the cache).
#[derive(Clone, Debug, PartialEq)]
pub struct PodView {
    pub name: String,
    /// Not used by the policy; lets the actor delete with a UID precondition.
    pub uid: String,
    /// The `sandbox.opensandbox.io/pool-revision` label; absent counts as an old revision.
    pub revision: Option<String>,
    /// The Ready condition is True (see [`PodView::is_ready`] for the full rule).
    pub ready: bool,
    pub phase: PodPhase,
    /// `metadata.deletionTimestamp` is set.
    pub terminating: bool,
    /// `spec.nodeName` is set.
    pub scheduled: bool,
    /// The `pool.opensandbox.io/evict` label is present.
    pub evict_label: bool,
    /// Most restarts over the pod's containers.
    pub restarts: i32,
    /// `lastTransitionTime` of the Ready condition.
    pub ready_since: Option<DateTime<Utc>>,
    pub created: DateTime<Utc>,
}

impl PodView {
    /// Ready = phase Running and Ready condition True (a stale Ready on another phase is not).
    pub fn is_ready(&self) -> bool {
        self.ready && self.phase == PodPhase::Running
    }

    fn has_revision(&self, revision: &str) -> bool {
        self.revision.as_deref() == Some(revision)
    }
}

/// Everything [`plan`] looks at.
#[derive(Clone, Copy, Debug)]
pub struct PoolInputs<'a> {
    pub capacity: &'a CapacitySpec,
    /// `spec.scaleStrategy.maxUnavailable`.
    pub scale_max_unavailable: Option<&'a IntOrString>,
    /// `spec.updateStrategy.maxUnavailable`.
    pub update_max_unavailable: Option<&'a IntOrString>,
    /// The current template revision ([`revision_hash`]).
    pub revision: &'a str,
    /// The pool's pods as the cache sees them, terminating ones included.
    pub pods: &'a [PodView],
    /// Names of pods allocated to sandboxes; the policy never deletes them.
    pub allocated: &'a HashSet<String>,
    /// Pods whose deletion was issued (or decided, e.g. a Delete recycle) but which the
    /// cache does not show terminating yet; treated as terminating.
    pub deleting: &'a HashSet<String>,
    /// Pods requested by sandboxes and not served yet.
    pub demand: u32,
    /// Creates issued but not yet observed in the cache.
    pub pending_creates: u32,
}

/// Why the plan deletes a pod.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeleteReason {
    /// Idle pod with the evict label (emit a `PodEvicted` event).
    Evicted,
    /// Idle pod in a terminal phase; replaced.
    Failed,
    /// Idle pod of an old template revision; replaced.
    OutdatedRevision,
    /// Idle pod beyond the buffer or `poolMax`.
    ScaleIn,
}

/// One pod the plan deletes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deletion {
    pub pod: String,
    pub reason: DeleteReason,
}

/// The counts of `PoolStatus` (the actor adds revision, generation and conditions).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct PoolStatusCounts {
    /// Non-terminating pods.
    pub total: u32,
    /// Non-terminating pods allocated to sandboxes.
    pub allocated: u32,
    /// Pods allocatable now (`allocatable.len()`).
    pub available: u32,
    /// Non-terminating pods of the current revision.
    pub updated: u32,
}

impl PoolStatusCounts {
    /// The counts once the actor has handed `served` allocatable pods to sandboxes.
    pub fn after_allocating(self, served: u32) -> Self {
        let served = served.min(self.available);
        Self {
            allocated: self.allocated + served,
            available: self.available - served,
            ..self
        }
    }
}

/// What to do this turn.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct PoolPlan {
    /// Pods to create from the current template.
    pub create: u32,
    /// Pods to delete, in the order to delete them, evictions first.
    pub delete: Vec<Deletion>,
    /// Idle Ready pods of the current revision not deleted by this plan, best first. The
    /// plan assumes the actor serves `demand` from the front (serving it before or after
    /// planning gives the same creates and deletes).
    pub allocatable: Vec<String>,
    pub status: PoolStatusCounts,
    /// Spec problems for a False Ready condition; the plan still keeps the pool bounded.
    pub invalid: Option<String>,
}

impl PoolPlan {
    /// Pods deleted because of the evict label.
    pub fn evicted(&self) -> impl Iterator<Item = &str> {
        self.deleted_for(DeleteReason::Evicted)
    }

    /// Pods deleted for `reason`.
    pub fn deleted_for(&self, reason: DeleteReason) -> impl Iterator<Item = &str> {
        self.delete
            .iter()
            .filter(move |d| d.reason == reason)
            .map(|d| d.pod.as_str())
    }

    /// No pod to create or delete: the pool is at its fixed point.
    pub fn is_steady(&self) -> bool {
        self.create == 0 && self.delete.is_empty()
    }
}

/// Plans one turn of a pool: eviction, template update, scaling, allocatable pods, status.
pub fn plan(inputs: &PoolInputs) -> PoolPlan {
    let live = live_pods(inputs);
    let (allocated, mut idle): (Vec<&PodView>, Vec<&PodView>) = live
        .iter()
        .copied()
        .partition(|p| inputs.allocated.contains(&p.name));
    deletion_order(&mut idle);

    let mut delete = Vec::new();
    let idle = take_into(idle, &mut delete, DeleteReason::Evicted, |p| p.evict_label);
    let idle = take_into(idle, &mut delete, DeleteReason::Failed, |p| {
        p.phase.is_terminal()
    });
    let failed = count_reason(&delete, DeleteReason::Failed);
    // Failed idle pods stay schedulable for the arithmetic: they are replaced one for one.
    let schedulable = allocated.len() + idle.len() + failed;
    let pending = inputs.pending_creates as usize;
    let unavailable = idle_not_ready(&idle) + failed + pending;

    let budget = update_budget(inputs, schedulable, unavailable);
    let idle = select_outdated(idle, inputs.revision, budget, &mut delete);

    let sizing = Sizing {
        capacity: Capacity::effective(inputs.capacity),
        committed: allocated.len() as u64 + u64::from(inputs.demand),
        projected_before: (schedulable + pending) as u64,
        replaced: (failed + count_reason(&delete, DeleteReason::OutdatedRevision)) as u64,
    };
    // Pods deleted this turn do not hold back their own replacements.
    let still_unavailable = idle_not_ready(&idle) + pending;
    let create = sizing.creates(inputs.scale_max_unavailable, still_unavailable);
    let idle = select_scale_in(idle, inputs.revision, sizing.scale_in(), &mut delete);

    let allocatable = allocatable_pods(&idle, inputs.revision);
    PoolPlan {
        create,
        delete,
        status: status_counts(&live, allocated.len(), allocatable.len(), inputs.revision),
        allocatable,
        invalid: spec_problems(inputs),
    }
}

/// How many Ready old-revision idle pods may be recreated this turn.
fn update_budget(inputs: &PoolInputs, schedulable: usize, unavailable: usize) -> u32 {
    resolve_max_unavailable(inputs.update_max_unavailable, to_u32(schedulable))
        .saturating_sub(to_u32(unavailable))
}

fn status_counts(
    live: &[&PodView],
    allocated: usize,
    available: usize,
    revision: &str,
) -> PoolStatusCounts {
    PoolStatusCounts {
        total: to_u32(live.len()),
        allocated: to_u32(allocated),
        available: to_u32(available),
        updated: to_u32(live.iter().filter(|p| p.has_revision(revision)).count()),
    }
}

/// The numbers the scale decision is made from, all in pods.
struct Sizing {
    capacity: Capacity,
    /// Allocated pods plus unserved demand.
    committed: u64,
    /// Schedulable pods (including ones replaced this turn) plus pending creates.
    projected_before: u64,
    /// Pods deleted this turn that are replaced one for one.
    replaced: u64,
}

impl Sizing {
    /// Desired schedulable pods: committed + desired buffer, at least poolMin, at most poolMax.
    /// The buffer is measured before replacements so a replaced pod is recreated.
    fn target(&self) -> u64 {
        let free = self.projected_before.saturating_sub(self.committed);
        let buffer = self.capacity.desired_buffer(to_u32(free as usize));
        (self.committed + u64::from(buffer))
            .max(u64::from(self.capacity.pool_min))
            .min(u64::from(self.capacity.pool_max))
    }

    /// Schedulable pods plus pending creates once this turn's replaced pods are gone.
    fn projected_after(&self) -> u64 {
        self.projected_before - self.replaced
    }

    /// Pods to create: the shortfall, paced by `scaleStrategy.maxUnavailable` (resolved
    /// against the target) minus the pods still coming up.
    fn creates(&self, max_unavailable: Option<&IntOrString>, still_unavailable: usize) -> u32 {
        let target = self.target();
        let shortfall = target.saturating_sub(self.projected_after());
        if shortfall == 0 {
            return 0;
        }
        let pace = resolve_max_unavailable(max_unavailable, to_u32(target as usize))
            .saturating_sub(to_u32(still_unavailable));
        to_u32(shortfall as usize).min(pace)
    }

    /// Idle pods to remove beyond the target.
    fn scale_in(&self) -> usize {
        self.projected_after().saturating_sub(self.target()) as usize
    }
}

fn live_pods<'a>(inputs: &PoolInputs<'a>) -> Vec<&'a PodView> {
    inputs
        .pods
        .iter()
        .filter(|p| !p.terminating && !inputs.deleting.contains(&p.name))
        .collect()
}

/// Moves the pods matching `pred` into `delete` with `reason`; returns the others, in order.
fn take_into<'a>(
    pods: Vec<&'a PodView>,
    delete: &mut Vec<Deletion>,
    reason: DeleteReason,
    pred: impl Fn(&PodView) -> bool,
) -> Vec<&'a PodView> {
    let (taken, kept): (Vec<&PodView>, Vec<&PodView>) = pods.into_iter().partition(|p| pred(p));
    delete.extend(taken.into_iter().map(|p| Deletion {
        pod: p.name.clone(),
        reason,
    }));
    kept
}

fn count_reason(delete: &[Deletion], reason: DeleteReason) -> usize {
    delete.iter().filter(|d| d.reason == reason).count()
}

fn idle_not_ready(idle: &[&PodView]) -> usize {
    idle.iter().filter(|p| !p.is_ready()).count()
}

/// Recreate strategy over idle pods in deletion order: not-Ready old pods always go, Ready
/// old pods while the budget lasts.
fn select_outdated<'a>(
    idle: Vec<&'a PodView>,
    revision: &str,
    mut budget: u32,
    delete: &mut Vec<Deletion>,
) -> Vec<&'a PodView> {
    let mut kept = Vec::with_capacity(idle.len());
    for pod in idle {
        let outdated = !pod.has_revision(revision);
        let goes = outdated && (!pod.is_ready() || budget > 0);
        if goes {
            if pod.is_ready() {
                budget -= 1;
            }
            delete.push(Deletion {
                pod: pod.name.clone(),
                reason: DeleteReason::OutdatedRevision,
            });
        } else {
            kept.push(pod);
        }
    }
    kept
}

/// Removes `count` idle pods: not-Ready first, then old revision, then deletion order.
fn select_scale_in<'a>(
    mut idle: Vec<&'a PodView>,
    revision: &str,
    count: usize,
    delete: &mut Vec<Deletion>,
) -> Vec<&'a PodView> {
    if count == 0 {
        return idle;
    }
    idle.sort_by(|a, b| {
        (a.is_ready(), a.has_revision(revision))
            .cmp(&(b.is_ready(), b.has_revision(revision)))
            .then_with(|| compare_for_deletion(a, b))
    });
    let kept = idle.split_off(count.min(idle.len()));
    delete.extend(idle.into_iter().map(|p| Deletion {
        pod: p.name.clone(),
        reason: DeleteReason::ScaleIn,
    }));
    kept
}

/// Idle Ready pods of `revision`, the pod last in deletion order first (the least likely to
/// be deleted is the best one to hand out).
fn allocatable_pods(idle: &[&PodView], revision: &str) -> Vec<String> {
    let mut pods: Vec<&PodView> = idle
        .iter()
        .copied()
        .filter(|p| p.is_ready() && p.has_revision(revision))
        .collect();
    deletion_order(&mut pods);
    pods.iter().rev().map(|p| p.name.clone()).collect()
}

fn spec_problems(inputs: &PoolInputs) -> Option<String> {
    let mut problems = Vec::new();
    if let Err(e) = validate_capacity(inputs.capacity) {
        problems.push(e);
    }
    let strategies = [
        ("scaleStrategy", inputs.scale_max_unavailable),
        ("updateStrategy", inputs.update_max_unavailable),
    ];
    for (field, value) in strategies {
        if let Some(Err(e)) = value.map(|v| parse_max_unavailable(v, 0)) {
            problems.push(format!("{field}.maxUnavailable: {e}"));
        }
    }
    (!problems.is_empty()).then(|| problems.join("; "))
}

fn to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}
