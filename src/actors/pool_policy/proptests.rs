//! Property tests of [`plan`] over simulated turns.

use std::collections::HashSet;

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use proptest::prelude::*;

use super::tests::{OLD_REV, Scenario, at, capacity, pod};
use super::*;

#[derive(Clone, Debug)]
struct PodSeed {
    old: bool,
    ready: bool,
    phase: u8,
    evict: bool,
    allocated: bool,
    terminating: bool,
    restarts: i32,
    age: i64,
}

fn pod_seed() -> impl Strategy<Value = PodSeed> {
    (
        any::<bool>(),
        any::<bool>(),
        0u8..6,
        prop::bool::weighted(0.15),
        prop::bool::weighted(0.3),
        prop::bool::weighted(0.1),
        0i32..4,
        0i64..100,
    )
        .prop_map(
            |(old, ready, phase, evict, allocated, terminating, restarts, age)| PodSeed {
                old,
                ready,
                phase,
                evict,
                allocated,
                terminating,
                restarts,
                age,
            },
        )
}

fn max_unavailable() -> impl Strategy<Value = Option<IntOrString>> {
    prop_oneof![
        Just(None),
        (0i32..5).prop_map(|n| Some(IntOrString::Int(n))),
        (0u32..120).prop_map(|p| Some(IntOrString::String(format!("{p}%")))),
        Just(Some(IntOrString::String("garbage".into()))),
    ]
}

prop_compose! {
    fn scenario()(
        bmin in 0i32..6, bextra in 0i32..6, pmin in 0i32..12, pextra in 0i32..14,
        seeds in prop::collection::vec(pod_seed(), 0..24),
        demand in 0u32..6,
        scale in max_unavailable(), update in max_unavailable(),
    ) -> Scenario {
        let mut s = Scenario::new(capacity(bmin, bmin + bextra, pmin, pmin + pextra));
        s.scale = scale;
        s.update = update;
        s.demand = demand;
        for (i, seed) in seeds.iter().enumerate() {
            let mut p = pod(&format!("p-{i}"));
            if seed.old {
                p.revision = Some(OLD_REV.to_string());
            }
            p.ready = seed.ready;
            p.phase = match seed.phase {
                0 => PodPhase::Pending,
                1 => PodPhase::Failed,
                2 => PodPhase::Unknown,
                _ => PodPhase::Running,
            };
            p.scheduled = seed.phase != 0;
            p.evict_label = seed.evict;
            p.terminating = seed.terminating;
            p.restarts = seed.restarts;
            p.created = at(seed.age);
            p.ready_since = Some(at(seed.age + 5));
            if seed.allocated {
                s.allocated.insert(p.name.clone());
            }
            s.pods.push(p);
        }
        s
    }
}

fn live_allocated(s: &Scenario) -> usize {
    s.pods
        .iter()
        .filter(|p| !p.terminating && s.allocated.contains(&p.name))
        .count()
}

fn check_plan(s: &Scenario, plan: &PoolPlan) -> Result<(), TestCaseError> {
    // (1) never deletes an allocated pod.
    for d in &plan.delete {
        prop_assert!(!s.allocated.contains(&d.pod), "deletes allocated {}", d.pod);
    }
    // (5) no duplicates; allocatable and delete are disjoint and idle.
    let deleted: HashSet<&str> = plan.delete.iter().map(|d| d.pod.as_str()).collect();
    prop_assert_eq!(deleted.len(), plan.delete.len());
    let allocatable: HashSet<&str> = plan.allocatable.iter().map(String::as_str).collect();
    prop_assert_eq!(allocatable.len(), plan.allocatable.len());
    prop_assert!(allocatable.is_disjoint(&deleted));
    for name in &plan.allocatable {
        prop_assert!(!s.allocated.contains(name));
    }
    // (2) creates never push the total past poolMax.
    if plan.create > 0 {
        let live = s
            .pods
            .iter()
            .filter(|p| !p.terminating && !s.deleting.contains(&p.name))
            .count();
        let after = live - deleted.len() + s.pending as usize + plan.create as usize;
        let pool_max = Capacity::effective(&s.capacity).pool_max as usize;
        prop_assert!(after <= pool_max, "total {} > poolMax {}", after, pool_max);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn each_turn_is_safe_and_the_pool_converges(mut s in scenario()) {
        let cap = Capacity::effective(&s.capacity);
        let max_turns = 4 * (cap.pool_max as usize + 24) + 10;
        let mut steady = None;
        for _ in 0..max_turns {
            let plan = s.plan();
            check_plan(&s, &plan)?;
            prop_assert_eq!(&plan, &s.plan(), "plan is deterministic");
            if s.is_fixed_point(&plan) {
                steady = Some(plan);
                break;
            }
            s.apply(&plan, true);
            s.make_ready();
        }
        // (3) a fixed point is reached.
        let plan = steady.ok_or_else(|| TestCaseError::fail(format!("no fixed point: {s:?}")))?;
        let allocated = live_allocated(&s) as u32;
        let total = s.total() as u32;
        prop_assert!(total <= cap.pool_max.max(allocated), "total {} poolMax {}", total, cap.pool_max);
        prop_assert!(total >= cap.pool_min, "total {} poolMin {}", total, cap.pool_min);
        prop_assert_eq!(plan.status.total, total);
        prop_assert_eq!(plan.status.allocated + plan.status.available, total);
        let buffer_allowed = allocated + cap.buffer_min <= cap.pool_max
            && cap.pool_min <= allocated + cap.buffer_max;
        if s.demand == 0 && buffer_allowed {
            prop_assert!(
                (cap.buffer_min..=cap.buffer_max).contains(&plan.status.available),
                "available {} not in [{}, {}]", plan.status.available, cap.buffer_min, cap.buffer_max
            );
        }
        // (4) every idle pod is of the current revision.
        for p in s.pods.iter().filter(|p| !s.allocated.contains(&p.name)) {
            prop_assert_eq!(p.revision.as_deref(), Some(s.revision.as_str()));
        }
    }

    #[test]
    fn slow_pods_never_overshoot_pool_max(mut s in scenario(), ready_every in 1usize..4) {
        let cap = Capacity::effective(&s.capacity);
        for turn in 0..40 {
            let before = s.total() as u32;
            let plan = s.plan();
            check_plan(&s, &plan)?;
            s.apply(&plan, false);
            if turn % ready_every == 0 {
                s.make_ready();
            }
            let after = s.total() as u32;
            prop_assert!(after <= before.max(cap.pool_max), "grew to {} past poolMax {}", after, cap.pool_max);
        }
    }

    #[test]
    fn unseen_creates_are_not_repeated(mut s in scenario()) {
        let first = s.plan();
        s.pending = first.create;
        let again = s.plan();
        let pool_max = Capacity::effective(&s.capacity).pool_max;
        let kept = (s.total() - first.delete.len()) as u32;
        prop_assert!(first.create == 0 || again.create == 0 || kept + first.create + again.create <= pool_max);
    }

    #[test]
    fn replanning_with_the_plan_in_flight_repeats_nothing(mut s in scenario()) {
        let first = s.plan();
        let served = (s.demand as usize).min(first.allocatable.len());
        s.allocated.extend(first.allocatable.iter().take(served).cloned());
        s.demand -= served as u32;
        s.deleting.extend(first.delete.iter().map(|d| d.pod.clone()));
        s.pending += first.create;
        let again = s.plan();
        check_plan(&s, &again)?;
        prop_assert!(again.delete.iter().all(|d| !s.deleting.contains(&d.pod)));
        // A plan that deletes nothing is exactly idempotent. (With deletions a follow-up
        // may create: e.g. a deleted not-Ready pod frees pacing budget.)
        if first.delete.is_empty() {
            prop_assert!(again.is_steady(), "first {:?} again {:?}", first, again);
        }
        let expected = first.status.after_allocating(served as u32);
        prop_assert_eq!(again.status.allocated, expected.allocated);
        prop_assert_eq!(again.status.available, expected.available);
        prop_assert_eq!(again.status.total, first.status.total - first.delete.len() as u32);
    }
}
