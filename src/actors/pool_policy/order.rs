//! Deletion priority of pool pods (reference §4.4).

use std::cmp::Ordering;

use super::{PodPhase, PodView};

/// Sorts `pods` so the pod to delete first comes first: unscheduled before scheduled;
/// Pending (and other phases) before Unknown before Running; not Ready before Ready; of two
/// Ready pods the one Ready since earlier; more restarts; newer creation; then name.
pub fn deletion_order(pods: &mut [&PodView]) {
    pods.sort_by(|a, b| compare_for_deletion(a, b));
}

/// The §4.4 comparator: `Less` means `a` is deleted before `b`.
pub fn compare_for_deletion(a: &PodView, b: &PodView) -> Ordering {
    a.scheduled
        .cmp(&b.scheduled)
        .then_with(|| phase_rank(a.phase).cmp(&phase_rank(b.phase)))
        .then_with(|| a.is_ready().cmp(&b.is_ready()))
        .then_with(|| ready_since_order(a, b))
        .then_with(|| b.restarts.cmp(&a.restarts))
        .then_with(|| b.created.cmp(&a.created))
        .then_with(|| a.name.cmp(&b.name))
}

fn phase_rank(phase: PodPhase) -> u8 {
    match phase {
        PodPhase::Running => 2,
        PodPhase::Unknown => 1,
        _ => 0,
    }
}

/// Only compares Ready pods; a Ready pod without a transition time sorts as the earliest,
/// like a zero timestamp.
fn ready_since_order(a: &PodView, b: &PodView) -> Ordering {
    if a.is_ready() && b.is_ready() {
        a.ready_since.cmp(&b.ready_since)
    } else {
        Ordering::Equal
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{at, pod};
    use super::*;

    fn names(pods: &[&PodView]) -> Vec<String> {
        pods.iter().map(|p| p.name.clone()).collect()
    }

    fn sorted(pods: &[PodView]) -> Vec<String> {
        let mut refs: Vec<&PodView> = pods.iter().collect();
        deletion_order(&mut refs);
        names(&refs)
    }

    #[test]
    fn unscheduled_before_scheduled() {
        let mut a = pod("a");
        let mut b = pod("b");
        a.scheduled = true;
        b.scheduled = false;
        b.ready = false;
        b.phase = PodPhase::Pending;
        assert_eq!(sorted(&[a, b]), ["b", "a"]);
    }

    #[test]
    fn pending_before_unknown_before_running() {
        let mut p = pod("p");
        p.phase = PodPhase::Pending;
        p.ready = false;
        let mut u = pod("u");
        u.phase = PodPhase::Unknown;
        u.ready = false;
        let mut f = pod("f");
        f.phase = PodPhase::Failed;
        f.ready = false;
        let mut r = pod("r");
        r.ready = false;
        assert_eq!(sorted(&[r, u, p, f]), ["f", "p", "u", "r"]);
    }

    #[test]
    fn not_ready_before_ready() {
        let mut n = pod("n");
        n.ready = false;
        assert_eq!(sorted(&[pod("a"), n]), ["n", "a"]);
    }

    #[test]
    fn shorter_ready_time_less_than_longer_ready_time() {
        // Upstream's test name; it orders the pod whose Ready transition is earlier first.
        let mut early = pod("early");
        early.ready_since = Some(at(10));
        let mut late = pod("late");
        late.ready_since = Some(at(20));
        assert_eq!(sorted(&[late, early]), ["early", "late"]);
    }

    #[test]
    fn more_restarts_first_then_newer_first_then_name() {
        let mut many = pod("many");
        many.restarts = 5;
        let mut newer = pod("newer");
        newer.created = at(500);
        let older = pod("older");
        let same_b = pod("same-b");
        let same_a = pod("same-a");
        assert_eq!(
            sorted(&[older, same_b, newer, many, same_a]),
            ["many", "newer", "older", "same-a", "same-b"]
        );
    }

    #[test]
    fn stale_ready_flag_on_non_running_pod_is_not_ready() {
        let mut stale = pod("stale");
        stale.phase = PodPhase::Succeeded;
        assert!(!stale.is_ready());
        assert_eq!(sorted(&[pod("a"), stale]), ["stale", "a"]);
    }
}
