//! Pure allocation of pool pods to BatchSandboxes. The PoolActor is the only allocator of
//! its pool; each turn it turns the sandboxes' ledgers and the pool's pods into ledger
//! writes and releases.
//!
//! Protocol (simpler than upstream's alloc-release / alloc-released handshake): the
//! `alloc-status` ledger lists the pods a sandbox holds *now*, positionally: entry i is
//! replica i's pod, `""` keeps the place of a replica without a pod. The pool
//! removes a pod from a ledger when it releases it and recycles the pod before (Delete) or
//! with (Noop) the ledger write, so a pod is never idle and dirty at the same time. Requests
//! in `alloc-release` (written by task orchestration or the upstream server) are honoured and
//! cleared in the same write. Replicas retired after their task finished
//! (`taskResourcePolicyWhenCompleted: Release`) give their pod back and are never refilled.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use crate::crd::ledger::is_empty_slot;

/// One sandbox of the pool, as the allocator sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SandboxView {
    pub name: String,
    pub replicas: u32,
    pub deleting: bool,
    /// `alloc-status` pods in index order, `""` for an empty slot (for a malformed ledger:
    /// every pool pod name that appears in the raw annotation, so none of them is ever handed
    /// to someone else).
    pub ledger: Vec<String>,
    /// Replica indexes retired after their task finished: their pods go back, their slots
    /// stay empty.
    pub retired: BTreeSet<u32>,
    /// `alloc-release` requests.
    pub release_requests: Vec<String>,
    pub has_finalizer: bool,
    /// The ledger could not be parsed: hold its pods, write nothing for this sandbox.
    pub malformed: bool,
    /// Deleting, but its tasks are still being stopped (the task-cleanup finalizer is on):
    /// its pods stay held, untouched, until the tasks are down.
    pub stopping_tasks: bool,
}

/// One pool pod, as the allocator sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodState {
    /// Exists, is not terminating and has not failed: it can keep serving its sandbox.
    pub alive: bool,
    pub ip: Option<String>,
}

/// A ledger write for one sandbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LedgerWrite {
    pub sandbox: String,
    pub ledger: Vec<String>,
    /// Pod IPs in ledger order ("" while unknown), for the endpoints annotation.
    pub endpoints: Vec<String>,
    pub add_finalizer: bool,
    pub remove_finalizer: bool,
    pub clear_release: bool,
    /// Pods this write hands to the sandbox.
    pub newly_allocated: Vec<String>,
}

/// What the allocator decided this turn.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AllocationPlan {
    pub writes: Vec<LedgerWrite>,
    /// Pods taken from a sandbox (scale-down, deletion, release request) that still exist
    /// and must be recycled.
    pub released: Vec<String>,
    /// Slots no idle pod could fill this turn.
    pub unmet: u32,
}

/// Pods every ledger holds (allocated in the sense of the pool policy).
pub fn held_pods(sandboxes: &[SandboxView]) -> HashSet<String> {
    sandboxes
        .iter()
        .flat_map(|s| s.ledger.iter().filter(|p| !is_empty_slot(p)).cloned())
        .collect()
}

impl SandboxView {
    fn is_retired(&self, index: usize) -> bool {
        u32::try_from(index).is_ok_and(|i| self.retired.contains(&i))
    }

    /// Replicas that want a pod: `replicas` less the retired ones.
    fn wanted(&self) -> u32 {
        let retired = self.retired.range(..self.replicas).count() as u32;
        self.replicas.saturating_sub(retired)
    }
}

/// Slots the sandboxes want filled beyond the alive pods they hold (the pool's demand).
pub fn demand(sandboxes: &[SandboxView], pods: &HashMap<String, PodState>) -> u32 {
    sandboxes
        .iter()
        .filter(|s| !s.deleting && !s.malformed)
        .map(|s| {
            let alive = s
                .ledger
                .iter()
                .enumerate()
                .filter(|(i, p)| !s.is_retired(*i) && !s.release_requests.contains(p))
                .filter(|(_, p)| pods.get(*p).is_some_and(|st| st.alive))
                .count() as u32;
            s.wanted().saturating_sub(alive)
        })
        .sum()
}

/// One replica's place in a ledger being planned.
enum Slot {
    Pod(String),
    Empty,
    Retired,
}

/// Plans ledger writes. `sandboxes` must be in service order (oldest first);
/// `allocatable` are the idle Ready pods of the current revision, best first.
pub fn plan(
    sandboxes: &[SandboxView],
    pods: &HashMap<String, PodState>,
    allocatable: &[String],
) -> AllocationPlan {
    let mut out = AllocationPlan::default();
    let held = held_pods(sandboxes);
    let mut free = allocatable
        .iter()
        .filter(|p| !held.contains(*p))
        .cloned()
        .collect::<Vec<_>>()
        .into_iter();
    let ip = |p: &str| pods.get(p).and_then(|s| s.ip.clone()).unwrap_or_default();
    for s in sandboxes
        .iter()
        .filter(|s| !(s.malformed || s.deleting && s.stopping_tasks))
    {
        let alive = |p: &String| pods.get(p).is_some_and(|st| st.alive);
        let mut released: Vec<String> = Vec::new();
        let mut newly = Vec::new();
        let next: Vec<String> = if s.deleting {
            released.extend(s.ledger.iter().filter(|p| pods.contains_key(*p)).cloned());
            Vec::new()
        } else {
            // Keep alive pods in place; a dead or released slot is refilled in place so pod
            // indexes stay stable; a retired slot stays empty; extra slots beyond `replicas`
            // are released from the end.
            let mut recycle = |p: &String| {
                if pods.contains_key(p) {
                    released.push(p.clone());
                }
            };
            let mut slots: Vec<Slot> = s
                .ledger
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    if is_empty_slot(p) {
                        if s.is_retired(i) {
                            Slot::Retired
                        } else {
                            Slot::Empty
                        }
                    } else if s.is_retired(i) {
                        recycle(p);
                        Slot::Retired
                    } else if s.release_requests.contains(p) || !alive(p) {
                        // A failed pod still exists: recycle it while its slot is refilled.
                        recycle(p);
                        Slot::Empty
                    } else {
                        Slot::Pod(p.clone())
                    }
                })
                .collect();
            let want = s.replicas as usize;
            while slots.len() > want {
                if let Some(Slot::Pod(p)) = slots.pop() {
                    released.push(p);
                }
            }
            while slots.len() < want {
                slots.push(if s.is_retired(slots.len()) {
                    Slot::Retired
                } else {
                    Slot::Empty
                });
            }
            for slot in slots.iter_mut().filter(|s| matches!(s, Slot::Empty)) {
                match free.next() {
                    Some(p) => {
                        newly.push(p.clone());
                        *slot = Slot::Pod(p);
                    }
                    None => out.unmet += 1,
                }
            }
            let mut ledger: Vec<String> = slots
                .into_iter()
                .map(|slot| match slot {
                    Slot::Pod(p) => p,
                    Slot::Empty | Slot::Retired => String::new(),
                })
                .collect();
            // Trailing empty slots carry no position: the ledger ends with its last pod.
            while ledger.last().is_some_and(|p| is_empty_slot(p)) {
                ledger.pop();
            }
            ledger
        };
        let clear_release = !s.release_requests.is_empty();
        let add_finalizer =
            !s.deleting && next.iter().any(|p| !is_empty_slot(p)) && !s.has_finalizer;
        let remove_finalizer = s.deleting && s.has_finalizer;
        if next != s.ledger || clear_release || add_finalizer || remove_finalizer {
            out.writes.push(LedgerWrite {
                sandbox: s.name.clone(),
                endpoints: next.iter().map(|p| ip(p)).collect(),
                ledger: next,
                add_finalizer,
                remove_finalizer,
                clear_release,
                newly_allocated: newly,
            });
        }
        out.released.extend(released);
    }
    out
}

/// Every ledger of `sandboxes` must list distinct pods, and no pod twice across ledgers.
pub fn find_double_allocations(ledgers: &BTreeMap<String, Vec<String>>) -> Vec<String> {
    let mut seen = HashSet::new();
    let mut dup = Vec::new();
    for pods in ledgers.values() {
        for p in pods.iter().filter(|p| !is_empty_slot(p)) {
            if !seen.insert(p.clone()) {
                dup.push(p.clone());
            }
        }
    }
    dup
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sb(name: &str, replicas: u32, ledger: &[&str]) -> SandboxView {
        SandboxView {
            name: name.into(),
            replicas,
            deleting: false,
            ledger: ledger.iter().map(|s| s.to_string()).collect(),
            release_requests: vec![],
            has_finalizer: !ledger.is_empty(),
            malformed: false,
            stopping_tasks: false,
            retired: BTreeSet::new(),
        }
    }

    #[test]
    fn a_deleting_sandbox_keeps_its_pods_while_its_tasks_stop() {
        let mut s = sb("a", 1, &["p1"]);
        s.deleting = true;
        s.stopping_tasks = true;
        let pods = pods(&["p1", "p2"], &[]);
        let free = vec!["p2".to_string()];
        let held = plan(std::slice::from_ref(&s), &pods, &free);
        assert!(
            held.writes.is_empty() && held.released.is_empty(),
            "{held:?}"
        );
        assert_eq!(held_pods(std::slice::from_ref(&s)).len(), 1);
        assert_eq!(demand(std::slice::from_ref(&s), &pods), 0, "no refill");
        s.stopping_tasks = false;
        let released = plan(std::slice::from_ref(&s), &pods, &free);
        assert_eq!(released.released, vec!["p1".to_string()]);
    }

    fn pods(alive: &[&str], dead: &[&str]) -> HashMap<String, PodState> {
        let mut m = HashMap::new();
        for (i, p) in alive.iter().enumerate() {
            m.insert(
                p.to_string(),
                PodState {
                    alive: true,
                    ip: Some(format!("10.0.0.{i}")),
                },
            );
        }
        for p in dead {
            m.insert(
                p.to_string(),
                PodState {
                    alive: false,
                    ip: None,
                },
            );
        }
        m
    }

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn allocates_in_one_write_with_finalizer_and_endpoints() {
        let p = pods(&["a", "b", "c"], &[]);
        let plan = plan(&[sb("x", 2, &[])], &p, &names(&["a", "b", "c"]));
        assert_eq!(plan.writes.len(), 1);
        let w = &plan.writes[0];
        assert_eq!(w.ledger, names(&["a", "b"]));
        assert_eq!(w.endpoints, names(&["10.0.0.0", "10.0.0.1"]));
        assert!(w.add_finalizer);
        assert_eq!(plan.unmet, 0);
    }

    #[test]
    fn dead_pod_is_replaced_in_place() {
        let p = pods(&["a", "c", "d"], &["b"]);
        let plan = plan(&[sb("x", 3, &["a", "b", "c"])], &p, &names(&["d"]));
        assert_eq!(plan.writes[0].ledger, names(&["a", "d", "c"]));
        assert!(
            plan.released.contains(&"b".to_string()),
            "a dead but existing pod is recycled"
        );
    }

    #[test]
    fn scale_down_releases_from_the_end() {
        let p = pods(&["a", "b", "c"], &[]);
        let plan = plan(&[sb("x", 1, &["a", "b", "c"])], &p, &[]);
        assert_eq!(plan.writes[0].ledger, names(&["a"]));
        assert_eq!(plan.released, names(&["c", "b"]));
    }

    #[test]
    fn deletion_releases_everything_and_removes_the_finalizer() {
        let p = pods(&["a", "b"], &[]);
        let mut s = sb("x", 2, &["a", "b"]);
        s.deleting = true;
        let plan = plan(&[s], &p, &names(&["c"]));
        assert!(plan.writes[0].ledger.is_empty());
        assert!(plan.writes[0].remove_finalizer);
        assert_eq!(plan.released, names(&["a", "b"]));
    }

    #[test]
    fn release_requests_are_honoured_and_cleared() {
        let p = pods(&["a", "b", "c"], &[]);
        let mut s = sb("x", 2, &["a", "b"]);
        s.release_requests = names(&["b"]);
        let plan = plan(&[s], &p, &names(&["c"]));
        assert_eq!(plan.writes[0].ledger, names(&["a", "c"]));
        assert!(plan.writes[0].clear_release);
        assert_eq!(plan.released, names(&["b"]));
    }

    #[test]
    fn held_pods_are_never_handed_out_again() {
        let p = pods(&["a", "b"], &[]);
        // "a" is (wrongly) offered as allocatable while another ledger holds it.
        let plan = plan(
            &[sb("x", 1, &["a"]), sb("y", 1, &[])],
            &p,
            &names(&["a", "b"]),
        );
        let y = plan.writes.iter().find(|w| w.sandbox == "y").unwrap();
        assert_eq!(y.ledger, names(&["b"]));
    }

    #[test]
    fn malformed_ledgers_hold_their_pods_and_get_no_write() {
        let p = pods(&["a", "b"], &[]);
        let mut bad = sb("bad", 1, &["a"]);
        bad.malformed = true;
        let plan = plan(&[bad, sb("y", 1, &[])], &p, &names(&["a", "b"]));
        assert_eq!(plan.writes.len(), 1);
        assert_eq!(plan.writes[0].ledger, names(&["b"]));
    }

    #[test]
    fn shortage_is_reported_and_ledger_lists_only_real_pods() {
        let p = pods(&["a"], &[]);
        let plan = plan(&[sb("x", 3, &[])], &p, &names(&["a"]));
        assert_eq!(plan.writes[0].ledger, names(&["a"]));
        assert_eq!(plan.unmet, 2);
        assert_eq!(demand(&[sb("x", 3, &["a"])], &p), 2);
    }

    #[test]
    fn a_retired_replica_gives_its_pod_back_and_is_never_refilled() {
        let p = pods(&["a", "b", "c", "d"], &[]);
        let mut s = sb("x", 3, &["a", "b", "c"]);
        s.retired = BTreeSet::from([1]);
        let first = plan(std::slice::from_ref(&s), &p, &names(&["d"]));
        assert_eq!(first.writes[0].ledger, names(&["a", "", "c"]));
        assert_eq!(first.writes[0].endpoints[1], "");
        assert_eq!(first.released, names(&["b"]));
        assert!(first.writes[0].newly_allocated.is_empty());
        s.ledger = first.writes[0].ledger.clone();
        let p = pods(&["a", "c", "d"], &[]);
        let next = plan(std::slice::from_ref(&s), &p, &names(&["d"]));
        assert!(
            next.writes.is_empty() && next.released.is_empty(),
            "{next:?}"
        );
        assert_eq!(demand(std::slice::from_ref(&s), &p), 0);
        assert!(!held_pods(std::slice::from_ref(&s)).contains(""));
    }

    #[test]
    fn every_replica_retired_leaves_an_empty_ledger_and_no_demand() {
        let p = pods(&["a", "b"], &[]);
        let mut s = sb("x", 2, &["a", "b"]);
        s.retired = BTreeSet::from([0, 1]);
        let out = plan(std::slice::from_ref(&s), &p, &names(&["c"]));
        assert!(out.writes[0].ledger.is_empty());
        assert_eq!(out.released, names(&["a", "b"]));
        assert_eq!(out.unmet, 0);
        assert_eq!(demand(std::slice::from_ref(&s), &pods(&[], &[])), 0);
    }

    #[test]
    fn an_empty_slot_keeps_the_positions_after_it() {
        // "b" died and no pod is free: "c" stays replica 2.
        let p = pods(&["a", "c"], &["b"]);
        let out = plan(&[sb("x", 3, &["a", "b", "c"])], &p, &[]);
        assert_eq!(out.writes[0].ledger, names(&["a", "", "c"]));
        assert_eq!(out.unmet, 1);
        let refill = plan(
            &[sb("x", 3, &["a", "", "c"])],
            &pods(&["a", "c", "d"], &[]),
            &names(&["d"]),
        );
        assert_eq!(refill.writes[0].ledger, names(&["a", "d", "c"]));
    }

    #[test]
    fn steady_state_writes_nothing() {
        let p = pods(&["a", "b"], &[]);
        let plan = plan(&[sb("x", 2, &["a", "b"])], &p, &[]);
        assert!(plan.writes.is_empty() && plan.released.is_empty());
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            /// Whatever the sandboxes ask, a plan never puts one pod in two ledgers.
            #[test]
            fn no_double_allocation(reqs in proptest::collection::vec((0u32..5, any::<bool>()), 1..6), npods in 0usize..12) {
                let all: Vec<String> = (0..npods).map(|i| format!("p{i}")).collect();
                let p: HashMap<String, PodState> = all.iter().map(|n| (n.clone(), PodState { alive: true, ip: None })).collect();
                let mut sandboxes: Vec<SandboxView> = Vec::new();
                let mut ledgers: BTreeMap<String, Vec<String>> = BTreeMap::new();
                for turn in 0..3 {
                    let views: Vec<SandboxView> = reqs.iter().enumerate().map(|(i, (r, del))| {
                        let name = format!("s{i}");
                        SandboxView {
                            name: name.clone(), replicas: *r, deleting: *del && turn > 0,
                            ledger: ledgers.get(&name).cloned().unwrap_or_default(),
                            release_requests: vec![], has_finalizer: true, malformed: false, stopping_tasks: false, retired: BTreeSet::new(),
                        }
                    }).collect();
                    let held = held_pods(&views);
                    let allocatable: Vec<String> = all.iter().filter(|n| !held.contains(*n)).cloned().collect();
                    let plan = plan(&views, &p, &allocatable);
                    for w in plan.writes {
                        ledgers.insert(w.sandbox.clone(), w.ledger);
                    }
                    prop_assert!(find_double_allocations(&ledgers).is_empty());
                    sandboxes = views;
                }
                prop_assert!(!sandboxes.is_empty());
            }

            /// Replicas retired turn by turn never get a pod again, and every other replica
            /// keeps its index (its pod stays at its ledger position) while pods come and go.
            #[test]
            fn retired_slots_stay_empty_and_positions_hold(
                replicas in 1u32..6,
                retire_order in proptest::collection::vec(0u32..6, 0..6),
                dead in proptest::collection::vec(any::<bool>(), 12),
                npods in 0usize..12,
            ) {
                let all: Vec<String> = (0..npods).map(|i| format!("p{i}")).collect();
                let mut p: HashMap<String, PodState> = all.iter().map(|n| (n.clone(), PodState { alive: true, ip: None })).collect();
                let mut view = SandboxView {
                    name: "s".into(), replicas, deleting: false, ledger: vec![],
                    release_requests: vec![], has_finalizer: true, malformed: false,
                    stopping_tasks: false, retired: BTreeSet::new(),
                };
                let mut ever_held = HashSet::new();
                for turn in 0..retire_order.len() + 2 {
                    if let Some(i) = retire_order.get(turn) {
                        view.retired.insert(*i);
                    }
                    // Some pods die between turns.
                    for (n, st) in p.iter_mut() {
                        let idx: usize = n[1..].parse().unwrap();
                        if dead[idx] && turn == 1 { st.alive = false; }
                    }
                    let held = held_pods(std::slice::from_ref(&view));
                    let allocatable: Vec<String> = all.iter()
                        .filter(|n| !held.contains(*n) && !ever_held.contains(*n) && p[*n].alive)
                        .cloned().collect();
                    let before = view.ledger.clone();
                    let out = plan(std::slice::from_ref(&view), &p, &allocatable);
                    if let Some(w) = out.writes.into_iter().next() {
                        view.ledger = w.ledger;
                    }
                    prop_assert!(view.ledger.len() <= replicas as usize);
                    prop_assert!(view.ledger.last().is_none_or(|l| !l.is_empty()));
                    for (i, pod) in view.ledger.iter().enumerate() {
                        if view.retired.contains(&(i as u32)) {
                            prop_assert!(pod.is_empty(), "retired slot {} holds {}", i, pod);
                        }
                        // A pod that stays keeps its position.
                        if !pod.is_empty() && let Some(j) = before.iter().position(|b| b == pod) {
                            prop_assert_eq!(i, j);
                        }
                        if !pod.is_empty() { ever_held.insert(pod.clone()); }
                    }
                }
            }
        }
    }
}
