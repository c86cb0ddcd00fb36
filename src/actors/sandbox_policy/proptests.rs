use std::sync::Arc;

use proptest::prelude::*;
use serde_json::json;

use super::tests::{pod, sandbox};
use super::*;
use crate::cache::objects::PodInfo;

/// A starting pod: index, terminating, phase (0 Pending, 1 Running, 2 Failed, 3 Succeeded),
/// canonical name or not.
fn arb_pod() -> impl Strategy<Value = (u32, bool, u8, bool)> {
    (0u32..10, any::<bool>(), 0u8..4, prop::bool::weighted(0.8))
}

fn phase(p: u8) -> &'static str {
    ["Pending", "Running", "Failed", "Succeeded"][usize::from(p)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Applying the plan (creates appear, deletes start terminating, terminating pods vanish
    /// one turn later) reaches a steady plan with no terminating pod and exactly one live pod per index 0..replicas, no duplicates.
    #[test]
    fn template_plan_converges(
        replicas in 0i32..8,
        start in prop::collection::vec(arb_pod(), 0..12),
    ) {
        let bs = sandbox(json!({"replicas": replicas, "template": {"spec": {"containers": [{"name": "c"}]}}}));
        let mut pods: Vec<PodInfo> = start
            .iter()
            .enumerate()
            .map(|(n, &(i, deleting, p, canonical))| {
                let name = if canonical { format!("bs-{i}") } else { format!("x{n}-{i}") };
                PodInfo { deleting, phase: phase(p).into(), uid: format!("u{n}"), ..pod(&name, Some(i)) }
            })
            .collect();
        // Two pods cannot share a name.
        let mut seen = std::collections::HashSet::new();
        pods.retain(|p| seen.insert(p.name.clone()));
        let mut next_uid = 1000;
        let mut steady = false;
        for _ in 0..8 {
            let arcs: Vec<Arc<PodInfo>> = pods.iter().cloned().map(Arc::new).collect();
            let plan = template_plan(&bs, &arcs);
            if plan.is_steady() && pods.iter().all(|p| !p.deleting) {
                steady = true;
                break;
            }
            pods.retain(|p| !p.deleting);
            for p in pods.iter_mut().filter(|p| plan.delete.contains(&p.name)) {
                p.deleting = true;
            }
            for i in &plan.create {
                let name = pod_name(&bs, *i);
                prop_assert!(pods.iter().all(|p| p.name != name), "create of an existing name {}", name);
                next_uid += 1;
                pods.push(PodInfo { uid: format!("u{next_uid}"), ..pod(&name, Some(*i)) });
            }
        }
        prop_assert!(steady, "no fixed point");
        let mut live: Vec<u32> = pods.iter().filter(|p| !p.deleting).filter_map(|p| p.pod_index).collect();
        live.sort_unstable();
        let want: Vec<u32> = (0..u32::try_from(replicas).unwrap_or(0)).collect();
        prop_assert!(pods.iter().all(|p| p.deleting || (p.phase != "Failed" && p.phase != "Succeeded")));
        prop_assert_eq!(live, want);
    }
}

/// A listed pod: (ready, deleting, waiting reason index, restarts).
fn arb_status_pod() -> impl Strategy<Value = (bool, bool, u8, i32)> {
    (any::<bool>(), prop::bool::weighted(0.2), 0u8..4, 0i32..3)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Recomputing the status from its own output, later, with the same pods changes nothing:
    /// one write per change, never a write caused by a write.
    #[test]
    fn status_is_a_fixed_point(
        replicas in 0i32..5,
        listed in prop::collection::vec(arb_status_pod(), 0..6),
    ) {
        use std::collections::HashMap;
        use chrono::TimeZone;
        use crate::cache::objects::ContainerState;
        let reasons = [None, Some("CrashLoopBackOff"), Some("ErrImagePull"), None];
        let pods: Vec<Arc<PodInfo>> = listed
            .iter()
            .enumerate()
            .map(|(i, &(ready, deleting, w, restarts))| {
                let i = u32::try_from(i).unwrap_or(0);
                Arc::new(PodInfo {
                    ready,
                    deleting,
                    phase: if ready { "Running" } else { "Pending" }.into(),
                    containers: vec![ContainerState {
                        name: "c".into(),
                        container_id: None,
                        running: ready,
                        restarts,
                        waiting_reason: reasons[usize::from(w)].map(String::from),
                    }],
                    ..pod(&format!("bs-{i}"), Some(i))
                })
            })
            .collect();
        let baseline: HashMap<String, i32> =
            pods.iter().map(|p| (p.uid.clone(), 0)).collect();
        let bs = sandbox(json!({"replicas": replicas, "template": {"spec": {"containers": [{"name": "c"}]}}}));
        let t = chrono::Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let input = |bs, now| StatusInput { bs, pods: &pods, tasks: None, restart_baseline: &baseline, now };
        let first = sandbox_status(&input(&bs, t));
        let mut written = bs.clone();
        written.status = Some(first.clone());
        let second = sandbox_status(&input(&written, t + chrono::Duration::minutes(5)));
        prop_assert!(!status_changed(Some(&first), &second));
    }
}
