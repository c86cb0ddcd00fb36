use std::sync::Arc;

use chrono::{TimeZone, Utc};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use proptest::prelude::*;
use serde_json::json;

use super::*;
use crate::cache::objects::{ContainerState, PodInfo};
use crate::crd::snapshot::SnapshotContainer;
use crate::crd::{BatchSandboxSpec, SandboxSnapshotSpec, SandboxSnapshotStatus};

fn bs(generation: i64, pause: Option<bool>, phase: Option<SandboxPhase>, pog: i64) -> BatchSandbox {
    let mut b = BatchSandbox::new(
        "bs",
        BatchSandboxSpec {
            replicas: 1,
            template: Some(json!({"spec": {"containers": [{"name": "main", "image": "busybox"}]}})),
            pause,
            ..serde_json::from_value(json!({"replicas": 1})).unwrap()
        },
    );
    b.metadata.namespace = Some("ns".into());
    b.metadata.uid = Some("bs-uid".into());
    b.metadata.generation = Some(generation);
    b.status = Some(BatchSandboxStatus {
        phase,
        pause_observed_generation: Some(pog),
        ..Default::default()
    });
    b
}

fn snapshot(phase: Option<SnapshotPhase>) -> SandboxSnapshot {
    let mut s = SandboxSnapshot::new(
        "bs-pause",
        SandboxSnapshotSpec {
            sandbox_name: "bs".into(),
        },
    );
    s.metadata.owner_references = Some(vec![OwnerReference {
        api_version: "sandbox.opensandbox.io/v1alpha1".into(),
        kind: "BatchSandbox".into(),
        name: "bs".into(),
        uid: "bs-uid".into(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }]);
    s.status = Some(SandboxSnapshotStatus {
        phase,
        containers: vec![SnapshotContainer {
            container_name: "main".into(),
            image_uri: "reg.local/bs-main:snap-gen2".into(),
            image_digest: None,
        }],
        ..Default::default()
    });
    s
}

fn pod(name: &str, ready: bool) -> Arc<PodInfo> {
    Arc::new(PodInfo {
        namespace: "ns".into(),
        name: name.into(),
        uid: format!("uid-{name}"),
        resource_version: "1".into(),
        batch_sandbox: Some("bs".into()),
        pod_index: Some(0),
        created: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
        node_name: Some("node".into()),
        phase: "Running".into(),
        pod_ip: Some("10.0.0.1".into()),
        ready,
        containers: vec![ContainerState {
            name: "main".into(),
            container_id: None,
            running: true,
            restarts: 0,
            waiting_reason: None,
        }],
        ..Default::default()
    })
}

fn turn(
    b: &BatchSandbox,
    snap: Option<&SandboxSnapshot>,
    pods: &[Arc<PodInfo>],
    strategy: SnapshotStrategy,
) -> PauseTurn {
    pause_turn(&PauseInput {
        bs: b,
        snapshot: snap,
        pods,
        strategy,
        resume_pull_secret: Some("pull"),
        pool_template: None,
        now: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 5).unwrap(),
    })
}

fn phase_of(t: &PauseTurn) -> Option<SandboxPhase> {
    t.status.as_ref().and_then(|s| s.phase)
}

fn cond<'a>(t: &'a PauseTurn, ty: &str) -> Option<&'a Condition> {
    t.status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == ty))
}

#[test]
fn pause_request_acks_pausing_and_creates_the_snapshot() {
    let b = bs(2, Some(true), Some(SandboxPhase::Succeed), 1);
    let t = turn(&b, None, &[pod("bs-0", true)], SnapshotStrategy::Commit);
    assert_eq!(phase_of(&t), Some(SandboxPhase::Pausing));
    assert_eq!(
        t.status.as_ref().unwrap().pause_observed_generation,
        Some(2)
    );
    assert!(t.create_snapshot && t.hold_pods);
    assert!(cond(&t, COND_PROGRESSING).unwrap().is_true());
}

#[test]
fn pause_with_more_than_one_replica_is_refused_with_a_condition() {
    let mut b = bs(2, Some(true), Some(SandboxPhase::Succeed), 1);
    b.spec.replicas = 2;
    let t = turn(&b, None, &[], SnapshotStrategy::Commit);
    let c = cond(&t, COND_PAUSE_FAILED).unwrap();
    assert!(c.is_true());
    assert_eq!(c.reason.as_deref(), Some("UnsupportedReplicas"));
    assert!(
        c.message
            .as_deref()
            .unwrap()
            .contains("got spec.replicas=2")
    );
    assert_eq!(phase_of(&t), Some(SandboxPhase::Succeed));
    assert!(!t.create_snapshot);
}

#[test]
fn leftover_snapshot_is_deleted_before_a_new_pause() {
    let b = bs(2, Some(true), Some(SandboxPhase::Succeed), 1);
    let old = snapshot(Some(SnapshotPhase::Failed));
    let t = turn(
        &b,
        Some(&old),
        &[pod("bs-0", true)],
        SnapshotStrategy::Commit,
    );
    assert!(t.delete_snapshot && !t.create_snapshot);
    assert!(t.status.is_none(), "no ACK until the leftover is gone");
}

#[test]
fn pausing_waits_for_the_snapshot_then_deletes_pods_and_is_paused() {
    let b = bs(2, Some(true), Some(SandboxPhase::Pausing), 2);
    let pods = [pod("bs-0", true)];
    let committing = snapshot(Some(SnapshotPhase::Committing));
    let t = turn(&b, Some(&committing), &pods, SnapshotStrategy::Commit);
    assert!(t.hold_pods && t.status.is_none() && t.delete_pods.is_empty());
    let done = snapshot(Some(SnapshotPhase::Succeed));
    let t = turn(&b, Some(&done), &pods, SnapshotStrategy::Commit);
    assert_eq!(phase_of(&t), Some(SandboxPhase::Paused));
    assert_eq!(t.delete_pods, vec!["bs-0".to_string()]);
    assert!(cond(&t, COND_PAUSED).unwrap().is_true());
}

#[test]
fn freeze_pause_keeps_the_pods() {
    let b = bs(2, Some(true), Some(SandboxPhase::Pausing), 2);
    let done = snapshot(Some(SnapshotPhase::Succeed));
    let t = turn(
        &b,
        Some(&done),
        &[pod("bs-0", true)],
        SnapshotStrategy::Freeze,
    );
    assert_eq!(phase_of(&t), Some(SandboxPhase::Paused));
    assert!(t.delete_pods.is_empty() && t.sandbox_patch.is_none());
}

#[test]
fn failed_snapshot_returns_to_running_with_pause_failed() {
    let b = bs(2, Some(true), Some(SandboxPhase::Pausing), 2);
    let failed = snapshot(Some(SnapshotPhase::Failed));
    let t = turn(
        &b,
        Some(&failed),
        &[pod("bs-0", true)],
        SnapshotStrategy::Commit,
    );
    assert_eq!(phase_of(&t), Some(SandboxPhase::Succeed));
    assert_eq!(
        cond(&t, COND_PAUSE_FAILED).unwrap().reason.as_deref(),
        Some("SnapshotFailed")
    );
    let t = turn(&b, Some(&failed), &[], SnapshotStrategy::Commit);
    assert_eq!(phase_of(&t), Some(SandboxPhase::Failed));
    assert_eq!(
        cond(&t, COND_PAUSE_FAILED).unwrap().reason.as_deref(),
        Some("PodNotFound")
    );
}

#[test]
fn second_pause_on_paused_keeps_the_good_snapshot() {
    let b = bs(5, Some(true), Some(SandboxPhase::Paused), 3);
    let done = snapshot(Some(SnapshotPhase::Succeed));
    let t = turn(&b, Some(&done), &[], SnapshotStrategy::Commit);
    assert!(!t.delete_snapshot && !t.create_snapshot && t.hold_pods);
    assert_eq!(phase_of(&t), Some(SandboxPhase::Paused));
    assert_eq!(t.status.unwrap().pause_observed_generation, Some(5));
}

#[test]
fn create_with_pause_false_is_only_acked() {
    let mut b = bs(1, Some(false), None, 0);
    b.status = None;
    let t = turn(&b, None, &[], SnapshotStrategy::Commit);
    assert_eq!(phase_of(&t), None);
    assert!(!t.hold_pods);
    assert_eq!(t.status.unwrap().pause_observed_generation, Some(1));
}

#[test]
fn resume_rewrites_images_then_completes_and_acks_its_own_generation() {
    let done = snapshot(Some(SnapshotPhase::Succeed));
    // Resume requested on Paused.
    let b = bs(3, Some(false), Some(SandboxPhase::Paused), 2);
    let t = turn(&b, Some(&done), &[], SnapshotStrategy::Commit);
    assert_eq!(phase_of(&t), Some(SandboxPhase::Resuming));
    // Resuming: the template is patched first, pods held.
    let b = bs(3, Some(false), Some(SandboxPhase::Resuming), 3);
    let t = turn(&b, Some(&done), &[], SnapshotStrategy::Commit);
    let patch = t.sandbox_patch.clone().unwrap();
    assert_eq!(
        patch["spec"]["template"]["spec"]["containers"][0]["image"],
        "reg.local/bs-main:snap-gen2"
    );
    assert_eq!(
        patch["spec"]["template"]["spec"]["imagePullSecrets"][0]["name"],
        "pull"
    );
    assert!(t.hold_pods);
    // The patch bumped the generation to 4; pods may now be created.
    let mut b = bs(4, Some(false), Some(SandboxPhase::Resuming), 3);
    b.spec.template = Some(patch["spec"]["template"].clone());
    let t = turn(&b, Some(&done), &[], SnapshotStrategy::Commit);
    assert!(!t.hold_pods && t.sandbox_patch.is_none() && t.status.is_none());
    // A ready pod completes the resume and ACKs generation 4: no flap.
    let t = turn(
        &b,
        Some(&done),
        &[pod("bs-0", true)],
        SnapshotStrategy::Commit,
    );
    assert_eq!(phase_of(&t), Some(SandboxPhase::Succeed));
    assert_eq!(
        t.status.as_ref().unwrap().pause_observed_generation,
        Some(4)
    );
    assert!(t.delete_snapshot);
    // The next turn with that status is steady.
    let mut next = b.clone();
    next.status = t.status.clone();
    let t2 = turn(&next, None, &[pod("bs-0", true)], SnapshotStrategy::Commit);
    assert!(t2.status.is_none() && !t2.hold_pods);
}

#[test]
fn resume_without_snapshot_or_pod_goes_back_to_paused() {
    let b = bs(3, Some(false), Some(SandboxPhase::Resuming), 3);
    let t = turn(&b, None, &[], SnapshotStrategy::Commit);
    assert_eq!(phase_of(&t), Some(SandboxPhase::Paused));
    assert_eq!(
        cond(&t, COND_RESUME_FAILED).unwrap().reason.as_deref(),
        Some("SnapshotNotFound")
    );
}

#[test]
fn freeze_resume_thaws_then_completes() {
    let done = snapshot(Some(SnapshotPhase::Succeed));
    let b = bs(3, Some(false), Some(SandboxPhase::Resuming), 3);
    let mut frozen = (*pod("bs-0", true)).clone();
    frozen.freeze_requested = true;
    frozen.frozen = true;
    let t = turn(
        &b,
        Some(&done),
        &[Arc::new(frozen)],
        SnapshotStrategy::Freeze,
    );
    assert_eq!(t.freeze, vec![("bs-0".to_string(), false)]);
    assert!(t.status.is_none());
    let t = turn(
        &b,
        Some(&done),
        &[pod("bs-0", true)],
        SnapshotStrategy::Freeze,
    );
    assert_eq!(phase_of(&t), Some(SandboxPhase::Succeed));
    assert!(t.delete_snapshot);
}

#[test]
fn resume_template_keeps_other_containers_and_one_pull_secret() {
    let snap = snapshot(Some(SnapshotPhase::Succeed));
    let t = json!({"spec": {"containers": [{"name": "main", "image": "a"}, {"name": "side", "image": "b"}],
        "imagePullSecrets": [{"name": "pull"}]}});
    let r = resume_template(&t, &snap, Some("pull"));
    assert_eq!(r["spec"]["containers"][1]["image"], "b");
    assert_eq!(r["spec"]["imagePullSecrets"].as_array().unwrap().len(), 1);
    assert_eq!(resume_template(&r, &snap, Some("pull")), r, "idempotent");
}

fn any_phase() -> impl Strategy<Value = Option<SandboxPhase>> {
    prop_oneof![
        Just(None),
        Just(Some(SandboxPhase::Pending)),
        Just(Some(SandboxPhase::Succeed)),
        Just(Some(SandboxPhase::Failed)),
        Just(Some(SandboxPhase::Pausing)),
        Just(Some(SandboxPhase::Paused)),
        Just(Some(SandboxPhase::Resuming)),
    ]
}

fn any_snapshot() -> impl Strategy<Value = Option<Option<SnapshotPhase>>> {
    prop_oneof![
        Just(None),
        Just(Some(None)),
        Just(Some(Some(SnapshotPhase::Pending))),
        Just(Some(Some(SnapshotPhase::Committing))),
        Just(Some(Some(SnapshotPhase::Succeed))),
        Just(Some(Some(SnapshotPhase::Failed))),
    ]
}

proptest! {
    /// Whatever the state: a Paused sandbox with its Succeeded snapshot never loses it to a
    /// pause request; applying a turn's status and running again is steady (no flapping
    /// without an outside change); and pods are never created while Pausing or Paused.
    #[test]
    fn pause_turns_are_safe(
        phase in any_phase(),
        pause in prop_oneof![Just(None), Just(Some(true)), Just(Some(false))],
        generation in 1i64..5,
        lag in 0i64..2,
        snap in any_snapshot(),
        ready in any::<bool>(),
        freeze in any::<bool>(),
    ) {
        let strategy = if freeze { SnapshotStrategy::Freeze } else { SnapshotStrategy::Commit };
        let b = bs(generation, pause, phase, generation - lag);
        let s = snap.map(snapshot);
        let pods = [pod("bs-0", ready)];
        let t = turn(&b, s.as_ref(), &pods, strategy);
        if phase == Some(SandboxPhase::Paused) && pause == Some(true)
            && s.as_ref().is_some_and(|x| snapshot_phase(x) == Some(SnapshotPhase::Succeed)) {
            prop_assert!(!t.delete_snapshot);
            prop_assert_eq!(phase_of(&t).or(phase), Some(SandboxPhase::Paused));
        }
        let new_phase = t.status.as_ref().map(|s| s.phase).unwrap_or(phase);
        if matches!(new_phase, Some(SandboxPhase::Pausing | SandboxPhase::Paused)) {
            prop_assert!(t.hold_pods);
        }
        if pause == Some(false) && !matches!(phase, Some(SandboxPhase::Paused | SandboxPhase::Resuming | SandboxPhase::Failed | SandboxPhase::Pausing)) {
            prop_assert_eq!(new_phase, phase, "pause:false never moves a sandbox that is not paused");
        }
        // Steady: outside the in-flight phases, a second turn on the result changes nothing.
        let consumed = t.status.as_ref().or(b.status.as_ref())
            .and_then(|s| s.pause_observed_generation) == Some(generation);
        if !matches!(new_phase, Some(SandboxPhase::Pausing | SandboxPhase::Resuming))
            && !t.delete_snapshot && consumed
        {
            let mut next = b.clone();
            if let Some(st) = &t.status { next.status = Some(st.clone()); }
            let t2 = turn(&next, s.as_ref(), &pods, strategy);
            prop_assert!(t2.status.is_none(), "second turn changed the status: {:?}", t2.status);
        }
    }
}
