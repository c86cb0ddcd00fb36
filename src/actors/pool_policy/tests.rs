//! Unit tests of [`plan`] and the shared test scenario.

use std::collections::HashSet;

use chrono::{DateTime, TimeZone, Utc};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::*;

pub(super) const REV: &str = "0123456789abcdef";
pub(super) const OLD_REV: &str = "fedcba9876543210";

pub(super) fn at(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_700_000_000 + secs, 0)
        .single()
        .expect("valid timestamp")
}

/// A Ready, Running, scheduled pod of the current revision.
pub(super) fn pod(name: &str) -> PodView {
    PodView {
        name: name.to_string(),
        uid: format!("uid-{name}"),
        revision: Some(REV.to_string()),
        ready: true,
        phase: PodPhase::Running,
        terminating: false,
        scheduled: true,
        evict_label: false,
        restarts: 0,
        ready_since: Some(at(100)),
        created: at(0),
    }
}

pub(super) fn capacity(
    buffer_min: i32,
    buffer_max: i32,
    pool_min: i32,
    pool_max: i32,
) -> CapacitySpec {
    CapacitySpec {
        buffer_max,
        buffer_min,
        pool_max,
        pool_min,
    }
}

/// An owned pool state that can be planned and then advanced by applying the plan.
#[derive(Clone, Debug)]
pub(super) struct Scenario {
    pub capacity: CapacitySpec,
    pub scale: Option<IntOrString>,
    pub update: Option<IntOrString>,
    pub revision: String,
    pub pods: Vec<PodView>,
    pub allocated: HashSet<String>,
    pub deleting: HashSet<String>,
    pub demand: u32,
    pub pending: u32,
    pub next_id: u32,
}

impl Scenario {
    pub fn new(capacity: CapacitySpec) -> Self {
        Self {
            capacity,
            scale: None,
            update: None,
            revision: REV.to_string(),
            pods: Vec::new(),
            allocated: HashSet::new(),
            deleting: HashSet::new(),
            demand: 0,
            pending: 0,
            next_id: 0,
        }
    }

    pub fn plan(&self) -> PoolPlan {
        plan(&PoolInputs {
            capacity: &self.capacity,
            scale_max_unavailable: self.scale.as_ref(),
            update_max_unavailable: self.update.as_ref(),
            revision: &self.revision,
            pods: &self.pods,
            allocated: &self.allocated,
            deleting: &self.deleting,
            demand: self.demand,
            pending_creates: self.pending,
        })
    }

    /// Applies `plan` as the actor would: serve demand from the front of `allocatable`,
    /// delete pods (they vanish), create pods (Ready when `ready`, else Pending).
    pub fn apply(&mut self, plan: &PoolPlan, ready: bool) {
        let served = (self.demand as usize).min(plan.allocatable.len());
        self.allocated
            .extend(plan.allocatable.iter().take(served).cloned());
        self.demand -= served as u32;
        let deleted: HashSet<&str> = plan.delete.iter().map(|d| d.pod.as_str()).collect();
        self.pods
            .retain(|p| !deleted.contains(p.name.as_str()) && !p.terminating);
        for _ in 0..plan.create {
            let mut new = pod(&format!("new-{}", self.next_id));
            new.created = at(1000 + i64::from(self.next_id));
            self.next_id += 1;
            if !ready {
                new.ready = false;
                new.phase = PodPhase::Pending;
            }
            new.revision = Some(self.revision.clone());
            self.pods.push(new);
        }
    }

    /// The kubelet: every pod that is not finished becomes Running and Ready.
    pub fn make_ready(&mut self) {
        for p in self.pods.iter_mut().filter(|p| !p.phase.is_terminal()) {
            p.phase = PodPhase::Running;
            p.ready = true;
            p.scheduled = true;
        }
    }

    /// Plans and applies with pods Ready at once until a steady plan; returns it and the turns.
    pub fn converge(&mut self, max_turns: usize) -> (PoolPlan, usize) {
        for turn in 0..max_turns {
            let plan = self.plan();
            if self.is_fixed_point(&plan) {
                return (plan, turn);
            }
            self.apply(&plan, true);
            self.make_ready();
        }
        panic!("no fixed point within {max_turns} turns: {self:?}");
    }

    /// Nothing to create or delete, no waiting sandbox that could be served, and nothing
    /// the kubelet would still change.
    pub fn is_fixed_point(&self, plan: &PoolPlan) -> bool {
        let settled = self
            .pods
            .iter()
            .all(|p| !p.terminating && (p.is_ready() || p.phase.is_terminal()));
        plan.is_steady() && (self.demand == 0 || plan.allocatable.is_empty()) && settled
    }

    pub fn add(&mut self, pods: impl IntoIterator<Item = PodView>) {
        self.pods.extend(pods);
    }

    pub fn allocate(&mut self, names: &[&str]) {
        self.allocated.extend(names.iter().map(|n| n.to_string()));
    }

    pub fn total(&self) -> usize {
        self.pods.iter().filter(|p| !p.terminating).count()
    }
}

fn pods(prefix: &str, n: usize) -> Vec<PodView> {
    (0..n).map(|i| pod(&format!("{prefix}-{i}"))).collect()
}

fn old(mut p: PodView) -> PodView {
    p.revision = Some(OLD_REV.to_string());
    p
}

fn not_ready(mut p: PodView) -> PodView {
    p.ready = false;
    p
}

fn evict(mut p: PodView) -> PodView {
    p.evict_label = true;
    p
}

fn pct(s: &str) -> Option<IntOrString> {
    Some(IntOrString::String(s.to_string()))
}

fn deleted(plan: &PoolPlan) -> Vec<&str> {
    plan.delete.iter().map(|d| d.pod.as_str()).collect()
}

// §5.9 worked examples and §11.1 Pool bullets.

#[test]
fn initial_total_is_buffer_min_capped_by_pool_max() {
    let mut s = Scenario::new(capacity(1, 1, 0, 2));
    s.converge(20);
    assert_eq!(s.total(), 1);
    let mut s = Scenario::new(capacity(3, 3, 0, 2));
    s.converge(20);
    assert_eq!(s.total(), 2);
    let mut s = Scenario::new(capacity(4, 4, 0, 10));
    let (plan, _) = s.converge(20);
    assert_eq!(s.total(), 4);
    assert_eq!(plan.status.available, 4);
}

#[test]
fn initial_buffer_is_the_midpoint_when_min_and_max_differ() {
    // §11.1's "min(poolMax, bufferMin)" is upstream's test setup with bufferMin == bufferMax.
    let mut s = Scenario::new(capacity(1, 3, 0, 10));
    s.scale = pct("100%");
    s.converge(20);
    assert_eq!(s.total(), 2);
    // Paced to one pod per turn, the first pod already lands inside [bufferMin, bufferMax].
    let mut s = Scenario::new(capacity(1, 3, 0, 10));
    s.converge(20);
    assert_eq!(s.total(), 1);
}

#[test]
fn status_after_allocating_moves_available_to_allocated() {
    let counts = PoolStatusCounts {
        total: 5,
        allocated: 1,
        available: 3,
        updated: 5,
    };
    let after = counts.after_allocating(2);
    assert_eq!((after.allocated, after.available, after.total), (3, 1, 5));
    assert_eq!(counts.after_allocating(9).available, 0);
}

#[test]
fn buffer_scale_out_cap_scale_in_and_floor() {
    let mut s = Scenario::new(capacity(1, 1, 0, 2));
    s.converge(20);
    assert_eq!(s.total(), 1);

    s.capacity = capacity(2, 2, 0, 2);
    s.scale = pct("100%");
    s.converge(20);
    assert_eq!(s.total(), 2);

    s.capacity = capacity(3, 3, 0, 2);
    s.converge(20);
    assert_eq!(s.total(), 2, "poolMax caps the buffer");

    s.capacity = capacity(0, 0, 0, 2);
    let (plan, _) = s.converge(20);
    assert_eq!(s.total(), 0, "scale-in to 0");
    assert_eq!(plan.status, PoolStatusCounts::default());

    s.capacity = capacity(0, 0, 1, 1);
    s.converge(20);
    assert_eq!(s.total(), 1, "poolMin floor");
}

#[test]
fn default_pace_creates_at_most_a_quarter_of_target_per_turn() {
    for (scale, limit) in [(None, 3), (pct("20%"), 2), (Some(IntOrString::Int(1)), 1)] {
        let mut s = Scenario::new(capacity(10, 10, 0, 20));
        s.scale = scale.clone();
        let plan = s.plan();
        assert_eq!(plan.create, limit, "{scale:?}");
        // Created pods are not Ready yet: no further burst.
        s.apply(&plan, false);
        assert_eq!(s.plan().create, 0, "{scale:?}");
        // While the creates are not observed either.
        let mut unseen = Scenario::new(capacity(10, 10, 0, 20));
        unseen.scale = scale.clone();
        unseen.pending = limit;
        assert_eq!(unseen.plan().create, 0, "{scale:?}");
        s.make_ready();
        assert_eq!(s.plan().create, limit.min(10 - limit), "{scale:?}");
    }
}

#[test]
fn all_ready_pool_can_always_create_one() {
    let mut s = Scenario::new(capacity(5, 5, 0, 100));
    s.add(pods("p", 2));
    s.scale = Some(IntOrString::Int(0));
    assert_eq!(s.plan().create, 1);
}

#[test]
fn pending_creates_count_against_pool_max() {
    let mut s = Scenario::new(capacity(8, 8, 0, 6));
    s.scale = pct("100%");
    s.add(pods("p", 3));
    s.pending = 2;
    assert_eq!(s.plan().create, 1);
    s.pending = 3;
    assert_eq!(s.plan().create, 0);
}

#[test]
fn pool_max_is_enforced_when_shrinking() {
    // e2e: poolMax 10 -> 3 with bufferMax 2, poolMin 2.
    let mut s = Scenario::new(capacity(1, 2, 2, 3));
    s.add(pods("p", 10));
    s.allocate(&["p-0"]);
    let (plan, _) = s.converge(20);
    assert!(s.total() <= 3);
    assert!(s.pods.iter().any(|p| p.name == "p-0"));
    assert!((1..=2).contains(&plan.status.available));
}

#[test]
fn pool_max_below_allocated_deletes_only_idle() {
    let mut s = Scenario::new(capacity(1, 1, 0, 2));
    s.add(pods("p", 4));
    s.allocate(&["p-0", "p-1", "p-2"]);
    let plan = s.plan();
    assert_eq!(deleted(&plan), ["p-3"]);
    assert_eq!(plan.create, 0);
}

#[test]
fn demand_is_served_and_buffer_refilled() {
    let mut s = Scenario::new(capacity(2, 2, 0, 10));
    s.scale = pct("100%");
    s.add(pods("p", 2));
    s.demand = 3;
    let plan = s.plan();
    assert_eq!(plan.allocatable.len(), 2);
    assert_eq!(
        plan.create, 3,
        "one for the unserved pod, two for the buffer"
    );
    let (plan, _) = s.converge(20);
    assert_eq!(s.demand, 0);
    assert_eq!(s.allocated.len(), 3);
    assert_eq!(plan.status.available, 2);
    assert_eq!(plan.status.total, 5);
}

#[test]
fn buffer_within_range_is_left_alone() {
    let mut s = Scenario::new(capacity(1, 4, 0, 10));
    s.add(pods("p", 3));
    assert!(s.plan().is_steady());
}

#[test]
fn out_of_range_buffer_goes_to_midpoint() {
    let mut s = Scenario::new(capacity(2, 6, 0, 20));
    s.add(pods("p", 10));
    let (plan, _) = s.converge(20);
    assert_eq!(plan.status.available, 4);
}

#[test]
fn scale_in_prefers_not_ready_then_old_then_deletion_order() {
    let mut s = Scenario::new(capacity(0, 0, 0, 10));
    s.update = Some(IntOrString::Int(0));
    let mut newer = pod("newer");
    newer.created = at(50);
    s.add([
        pod("older"),
        newer,
        old(pod("old")),
        not_ready(pod("starting")),
    ]);
    // The not-Ready pod uses up the update budget, so the old Ready pod is left to scale-in.
    let plan = s.plan();
    let scale_in = |pod: &str| Deletion {
        pod: pod.into(),
        reason: DeleteReason::ScaleIn,
    };
    assert_eq!(
        plan.delete,
        vec![
            scale_in("starting"),
            scale_in("old"),
            scale_in("newer"),
            scale_in("older")
        ]
    );
}

// Update (§5.8).

#[test]
fn template_change_recreates_idle_pods_and_keeps_allocated() {
    let mut s = Scenario::new(capacity(3, 3, 0, 10));
    s.add(pods("p", 4).into_iter().map(old));
    s.allocate(&["p-0"]);
    let plan = s.plan();
    // 25% of 4 schedulable = 1.
    assert_eq!(deleted(&plan).len(), 1);
    assert_eq!(plan.create, 1, "the replacement");
    assert!(
        plan.allocatable.is_empty(),
        "old-revision pods are not handed out"
    );
    let (plan, _) = s.converge(30);
    let p0 = s
        .pods
        .iter()
        .find(|p| p.name == "p-0")
        .expect("allocated pod kept");
    assert_eq!(p0.revision.as_deref(), Some(OLD_REV));
    assert_eq!(plan.status.updated, 3);
    assert_eq!(plan.status.total, 4);
    // Once released, the last old pod is replaced too.
    s.allocated.clear();
    s.converge(30);
    assert!(s.pods.iter().all(|p| p.has_revision(REV)));
}

#[test]
fn recreate_budget_is_reduced_by_not_ready_idle_pods() {
    let mut s = Scenario::new(capacity(0, 10, 0, 20));
    s.update = pct("50%");
    s.add(pods("p", 4).into_iter().map(old));
    s.add([not_ready(pod("n"))]);
    // 50% of 5 = 3, minus 1 not Ready = 2.
    assert_eq!(
        s.plan().deleted_for(DeleteReason::OutdatedRevision).count(),
        2
    );
}

#[test]
fn not_ready_old_pods_are_replaced_without_budget() {
    let mut s = Scenario::new(capacity(0, 10, 0, 20));
    s.update = Some(IntOrString::Int(1));
    s.scale = pct("100%");
    s.add([
        old(not_ready(pod("a"))),
        old(not_ready(pod("b"))),
        old(pod("c")),
    ]);
    let plan = s.plan();
    let outdated: Vec<&str> = plan.deleted_for(DeleteReason::OutdatedRevision).collect();
    assert_eq!(outdated, ["a", "b"]);
    assert_eq!(plan.create, 2);
}

#[test]
fn current_revision_pods_are_kept_and_missing_label_is_old() {
    let mut s = Scenario::new(capacity(0, 10, 0, 20));
    s.update = pct("100%");
    let mut unlabelled = pod("unlabelled");
    unlabelled.revision = None;
    s.add([pod("current"), unlabelled]);
    assert_eq!(deleted(&s.plan()), ["unlabelled"]);
}

#[test]
fn recreate_follows_deletion_order() {
    let mut s = Scenario::new(capacity(0, 10, 0, 20));
    s.update = Some(IntOrString::Int(1));
    let mut restarted = old(pod("restarted"));
    restarted.restarts = 3;
    s.add([old(pod("a")), restarted, old(pod("b"))]);
    assert_eq!(deleted(&s.plan()), ["restarted"]);
}

#[test]
fn no_old_pods_no_update() {
    let mut s = Scenario::new(capacity(0, 10, 0, 20));
    s.add(pods("p", 3));
    assert!(s.plan().is_steady());
}

// Eviction (§5.7).

#[test]
fn eviction_without_labels_does_nothing() {
    let mut s = Scenario::new(capacity(0, 10, 0, 20));
    s.add(pods("p", 3));
    let plan = s.plan();
    assert_eq!(plan.evicted().count(), 0);
    assert_eq!(plan.allocatable.len(), 3);
}

#[test]
fn idle_labelled_pod_is_evicted_and_not_allocatable() {
    let mut s = Scenario::new(capacity(0, 10, 0, 20));
    s.add([evict(pod("e")), pod("k")]);
    let plan = s.plan();
    assert_eq!(plan.evicted().collect::<Vec<_>>(), ["e"]);
    assert_eq!(plan.allocatable, ["k"]);
    assert_eq!(plan.status.available, 1);
}

#[test]
fn allocated_labelled_pod_is_kept() {
    let mut s = Scenario::new(capacity(0, 10, 0, 20));
    s.add([evict(pod("a"))]);
    s.allocate(&["a"]);
    let plan = s.plan();
    assert!(plan.delete.is_empty());
    assert_eq!(plan.status.allocated, 1);
}

#[test]
fn eviction_mixed() {
    let mut s = Scenario::new(capacity(0, 10, 0, 20));
    s.add([
        evict(pod("idle-e")),
        evict(pod("alloc-e")),
        pod("idle"),
        pod("alloc"),
    ]);
    s.allocate(&["alloc-e", "alloc"]);
    let plan = s.plan();
    assert_eq!(plan.evicted().collect::<Vec<_>>(), ["idle-e"]);
    assert_eq!(plan.allocatable, ["idle"]);
    assert_eq!(plan.delete.len(), 1);
}

#[test]
fn terminating_labelled_pod_is_not_evicted() {
    let mut s = Scenario::new(capacity(0, 10, 0, 20));
    let mut t = evict(pod("t"));
    t.terminating = true;
    s.add([t, pod("k")]);
    let plan = s.plan();
    assert!(plan.delete.is_empty());
    assert_eq!(plan.status.total, 1);
}

#[test]
fn empty_pool_with_zero_capacity_is_steady() {
    let s = Scenario::new(capacity(0, 0, 0, 0));
    let plan = s.plan();
    assert!(plan.is_steady());
    assert_eq!(plan, PoolPlan::default());
}

#[test]
fn evicted_pod_is_replaced_when_buffer_drops_below_min() {
    let mut s = Scenario::new(capacity(2, 2, 0, 10));
    s.add([evict(pod("e")), pod("k")]);
    let plan = s.plan();
    assert_eq!(plan.create, 1);
}

// Other rules.

#[test]
fn failed_idle_pods_are_deleted_and_replaced() {
    let mut s = Scenario::new(capacity(1, 3, 0, 10));
    let mut f = pod("f");
    f.phase = PodPhase::Failed;
    s.add([f, pod("k")]);
    let plan = s.plan();
    assert_eq!(
        plan.deleted_for(DeleteReason::Failed).collect::<Vec<_>>(),
        ["f"]
    );
    assert_eq!(plan.create, 1);
}

#[test]
fn allocated_failed_pod_is_left_to_its_sandbox() {
    let mut s = Scenario::new(capacity(0, 3, 0, 10));
    let mut f = pod("f");
    f.phase = PodPhase::Failed;
    s.add([f]);
    s.allocate(&["f"]);
    assert!(s.plan().delete.is_empty());
}

#[test]
fn deleting_pods_are_treated_as_terminating() {
    let mut s = Scenario::new(capacity(2, 2, 0, 10));
    s.scale = pct("100%");
    s.add(pods("p", 2));
    s.deleting.insert("p-0".into());
    let plan = s.plan();
    assert_eq!(plan.allocatable, ["p-1"]);
    assert_eq!(plan.create, 1);
    assert_eq!(plan.status.total, 1);
}

#[test]
fn allocatable_prefers_longest_ready() {
    let mut s = Scenario::new(capacity(0, 10, 0, 20));
    let mut early = pod("early");
    early.ready_since = Some(at(1));
    let mut late = pod("late");
    late.ready_since = Some(at(99));
    s.add([late, early, not_ready(pod("n"))]);
    assert_eq!(s.plan().allocatable, ["late", "early"]);
}

#[test]
fn status_counts() {
    let mut s = Scenario::new(capacity(0, 10, 0, 20));
    let mut t = pod("t");
    t.terminating = true;
    s.add([pod("a"), old(pod("b")), not_ready(pod("c")), t, pod("x")]);
    s.allocate(&["x", "gone"]);
    s.update = Some(IntOrString::Int(0));
    let plan = s.plan();
    assert_eq!(
        plan.status,
        PoolStatusCounts {
            total: 4,
            allocated: 1,
            available: 1,
            updated: 3,
        }
    );
}

#[test]
fn invalid_spec_is_reported_and_bounded() {
    let mut s = Scenario::new(capacity(5, 2, 4, 3));
    s.scale = pct("lots");
    let plan = s.plan();
    let problems = plan.invalid.clone().expect("invalid");
    assert!(problems.contains("bufferMin"), "{problems}");
    assert!(
        problems.contains("scaleStrategy.maxUnavailable"),
        "{problems}"
    );
    s.converge(20);
    assert_eq!(s.total(), 3);
}

#[test]
fn plan_is_deterministic_whatever_the_pod_order() {
    let mut s = Scenario::new(capacity(1, 2, 0, 4));
    s.add(pods("p", 6));
    s.add([old(pod("o")), evict(pod("e")), not_ready(pod("n"))]);
    let a = s.plan();
    s.pods.reverse();
    assert_eq!(a, s.plan());
}

#[test]
fn phase_parsing_and_terminal_phases() {
    assert_eq!(PodPhase::parse("Running"), PodPhase::Running);
    assert_eq!(PodPhase::parse("Unknown"), PodPhase::Unknown);
    assert_eq!(PodPhase::parse(""), PodPhase::Pending);
    assert_eq!(PodPhase::parse("Weird"), PodPhase::Pending);
    assert!(PodPhase::parse("Failed").is_terminal());
    assert!(PodPhase::parse("Succeeded").is_terminal());
    assert!(!PodPhase::Running.is_terminal());
}
