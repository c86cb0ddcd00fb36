use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use k8s_openapi::api::batch::v1::{JobCondition, JobStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{OwnerReference, Time};
use serde_json::json;

use super::*;
use crate::cache::objects::{ContainerState, PodInfo};
use crate::crd::{BatchSandboxSpec, SandboxSnapshotSpec};

fn t(secs: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + chrono::Duration::seconds(secs)
}

fn k8s_time(secs: i64) -> Time {
    Time(k8s_openapi::jiff::Timestamp::from_second(t(secs).timestamp()).unwrap())
}

fn snap(phase: Option<SnapshotPhase>) -> SandboxSnapshot {
    let mut s = SandboxSnapshot::new(
        "bs-pause",
        SandboxSnapshotSpec {
            sandbox_name: "bs".into(),
        },
    );
    s.metadata.namespace = Some("ns".into());
    s.metadata.uid = Some("snap-uid".into());
    s.metadata.generation = Some(1);
    s.metadata.creation_timestamp = Some(k8s_time(0));
    s.metadata.finalizers = Some(vec![keys::FINALIZER_SNAPSHOT_CLEANUP.into()]);
    s.metadata.owner_references = Some(vec![OwnerReference {
        api_version: "sandbox.opensandbox.io/v1alpha1".into(),
        kind: "BatchSandbox".into(),
        name: "bs".into(),
        uid: "bs-uid".into(),
        controller: Some(true),
        block_owner_deletion: None,
    }]);
    if let Some(p) = phase {
        s.status = Some(SandboxSnapshotStatus {
            phase: Some(p),
            source_pod_name: Some("bs-0".into()),
            source_node_name: Some("node-a".into()),
            observed_generation: Some(1),
            containers: vec![crate::crd::snapshot::SnapshotContainer {
                container_name: "main".into(),
                image_uri: "reg/bs-main:snap-gen7".into(),
                image_digest: None,
            }],
            ..Default::default()
        });
    }
    s
}

fn sandbox() -> BatchSandbox {
    let mut b = BatchSandbox::new(
        "bs",
        serde_json::from_value::<BatchSandboxSpec>(json!({"replicas": 1})).unwrap(),
    );
    b.metadata.generation = Some(7);
    b
}

fn running_pod(frozen: bool) -> Arc<PodInfo> {
    Arc::new(PodInfo {
        namespace: "ns".into(),
        name: "bs-0".into(),
        uid: "u".into(),
        resource_version: "1".into(),
        batch_sandbox: Some("bs".into()),
        pod_index: Some(0),
        created: t(0),
        node_name: Some("node-a".into()),
        phase: "Running".into(),
        pod_ip: Some("10.0.0.1".into()),
        ready: true,
        containers: vec![ContainerState {
            name: "main".into(),
            container_id: None,
            running: true,
            restarts: 0,
            waiting_reason: None,
        }],
        freeze_requested: frozen,
        frozen,
        ..Default::default()
    })
}

fn config(strategy: SnapshotStrategy) -> SnapshotConfig {
    SnapshotConfig {
        strategy,
        registry: "reg/".into(),
        push_secret: Some("push".into()),
        registry_insecure: true,
        commit_job_timeout: Duration::from_secs(60),
        ..Default::default()
    }
}

fn job(status: JobStatus) -> Job {
    let mut j = Job::default();
    j.metadata.creation_timestamp = Some(k8s_time(0));
    j.status = Some(status);
    j
}

struct Case {
    snapshot: SandboxSnapshot,
    sandbox: Option<BatchSandbox>,
    pods: Vec<Arc<PodInfo>>,
    job: Option<Job>,
    config: SnapshotConfig,
    now: i64,
}

impl Case {
    fn new(phase: Option<SnapshotPhase>) -> Self {
        Self {
            snapshot: snap(phase),
            sandbox: Some(sandbox()),
            pods: vec![running_pod(false)],
            job: None,
            config: config(SnapshotStrategy::Commit),
            now: 5,
        }
    }

    fn run(&self) -> SnapshotTurn {
        snapshot_turn(&SnapshotInput {
            snapshot: &self.snapshot,
            sandbox: self.sandbox.as_ref(),
            pods: &self.pods,
            template_containers: &[("main".into(), "busybox".into())],
            job: self.job.as_ref(),
            config: &self.config,
            now: t(self.now),
        })
    }
}

fn phase(turn: &SnapshotTurn) -> Option<SnapshotPhase> {
    turn.status.as_ref().and_then(|s| s.phase)
}

fn failed_reason(turn: &SnapshotTurn) -> Option<String> {
    turn.status.as_ref().and_then(|s| {
        s.conditions
            .iter()
            .find(|c| c.type_ == COND_FAILED)
            .and_then(|c| c.reason.clone())
    })
}

#[test]
fn finalizer_first() {
    let mut c = Case::new(None);
    c.snapshot.metadata.finalizers = None;
    assert!(c.run().add_finalizer);
}

#[test]
fn pending_creates_the_commit_job_on_the_source_node() {
    let turn = Case::new(None).run();
    assert_eq!(phase(&turn), Some(SnapshotPhase::Committing));
    let st = turn.status.as_ref().unwrap();
    assert_eq!(st.source_pod_name.as_deref(), Some("bs-0"));
    assert_eq!(st.containers[0].image_uri, "reg/bs-main:snap-gen7");
    let job = serde_json::to_value(&turn.create_jobs[0]).unwrap();
    assert_eq!(job["metadata"]["name"], "bs-pause-commit");
    assert_eq!(job["spec"]["activeDeadlineSeconds"], 60);
    assert_eq!(job["spec"]["backoffLimit"], 3);
    let pod = &job["spec"]["template"]["spec"];
    assert_eq!(pod["nodeName"], "node-a");
    assert_eq!(
        pod["containers"][0]["args"],
        json!(["bs-0", "ns", "main:reg/bs-main:snap-gen7"])
    );
    assert_eq!(pod["volumes"][1]["secret"]["secretName"], "push");
    assert_eq!(
        pod["containers"][0]["env"][1],
        json!({"name": "SNAPSHOT_REGISTRY_INSECURE", "value": "true"})
    );
    assert_eq!(
        job["metadata"]["labels"][keys::LABEL_SANDBOX_SNAPSHOT_NAME],
        "bs-pause"
    );
}

#[test]
fn pending_failures_are_terminal_with_reasons() {
    let mut c = Case::new(None);
    c.config.registry = String::new();
    assert_eq!(
        failed_reason(&c.run()).as_deref(),
        Some("RegistryNotConfigured")
    );
    let mut c = Case::new(None);
    c.sandbox = None;
    assert_eq!(
        failed_reason(&c.run()).as_deref(),
        Some("BatchSandboxLookupFailed")
    );
    let mut c = Case::new(None);
    c.pods.clear();
    assert_eq!(
        failed_reason(&c.run()).as_deref(),
        Some("SourcePodNotFound")
    );
}

#[test]
fn committing_follows_the_job() {
    let mut c = Case::new(Some(SnapshotPhase::Committing));
    c.job = Some(job(JobStatus::default()));
    let turn = c.run();
    assert!(turn.status.is_none());
    assert_eq!(turn.recheck_after, Some(Duration::from_secs(55)));
    c.job = Some(job(JobStatus {
        succeeded: Some(1),
        ..Default::default()
    }));
    assert_eq!(phase(&c.run()), Some(SnapshotPhase::Succeed));
    c.job = Some(job(JobStatus {
        conditions: Some(vec![JobCondition {
            type_: "Failed".into(),
            status: "True".into(),
            message: Some("BackoffLimitExceeded".into()),
            ..Default::default()
        }]),
        ..Default::default()
    }));
    let turn = c.run();
    assert_eq!(phase(&turn), Some(SnapshotPhase::Failed));
    assert_eq!(failed_reason(&turn).as_deref(), Some("CommitJobFailed"));
    let unpause = serde_json::to_value(&turn.create_jobs[0]).unwrap();
    assert_eq!(unpause["metadata"]["name"], "bs-pause-unpause");
    assert_eq!(
        unpause["spec"]["template"]["spec"]["containers"][0]["args"],
        json!(["unpause", "bs-0", "ns", "main"])
    );
}

#[test]
fn a_job_past_its_deadline_fails_the_snapshot() {
    let mut c = Case::new(Some(SnapshotPhase::Committing));
    c.job = Some(job(JobStatus::default()));
    c.now = 61;
    let turn = c.run();
    assert_eq!(failed_reason(&turn).as_deref(), Some("CommitJobTimeout"));
}

#[test]
fn a_vanished_job_is_recreated() {
    let c = Case::new(Some(SnapshotPhase::Committing));
    let turn = c.run();
    assert_eq!(turn.create_jobs.len(), 1);
    assert!(phase(&turn).is_none_or(|p| p == SnapshotPhase::Committing));
}

#[test]
fn terminal_phases_stay() {
    for p in [SnapshotPhase::Succeed, SnapshotPhase::Failed] {
        let mut c = Case::new(Some(p));
        c.pods.clear();
        c.sandbox = None;
        let turn = c.run();
        assert!(turn.create_jobs.is_empty());
        assert!(phase(&turn).is_none_or(|x| x == p));
    }
}

#[test]
fn deletion_removes_both_jobs() {
    let mut c = Case::new(Some(SnapshotPhase::Committing));
    c.snapshot.metadata.deletion_timestamp = Some(k8s_time(3));
    assert_eq!(
        c.run().cleanup_jobs,
        Some(vec![
            "bs-pause-commit".to_string(),
            "bs-pause-unpause".to_string()
        ])
    );
}

#[test]
fn freeze_requests_then_waits_for_the_agent() {
    let mut c = Case::new(None);
    c.config.strategy = SnapshotStrategy::Freeze;
    c.config.registry = String::new();
    let turn = c.run();
    assert_eq!(phase(&turn), Some(SnapshotPhase::Committing));
    assert_eq!(turn.freeze_pod.as_deref(), Some("bs-0"));
    assert!(turn.create_jobs.is_empty());
    let mut c = Case::new(Some(SnapshotPhase::Committing));
    c.config.strategy = SnapshotStrategy::Freeze;
    c.pods = vec![running_pod(true)];
    assert_eq!(phase(&c.run()), Some(SnapshotPhase::Succeed));
    c.pods = vec![running_pod(false)];
    c.now = 100;
    assert_eq!(failed_reason(&c.run()).as_deref(), Some("FreezeTimeout"));
}

#[test]
fn freeze_refuses_snapshots_that_are_not_pauses() {
    let mut c = Case::new(None);
    c.config.strategy = SnapshotStrategy::Freeze;
    c.snapshot.metadata.owner_references = None;
    let turn = c.run();
    assert_eq!(
        failed_reason(&turn).as_deref(),
        Some("SnapshotNotSupported")
    );
    assert!(turn.freeze_pod.is_none());
}

#[test]
fn image_uri_tags() {
    let s = snap(None);
    assert_eq!(
        image_uri("r:5000/", &s, "bs", "main", 3),
        "r:5000/bs-main:snap-gen3"
    );
    let mut public = SandboxSnapshot::new(
        &format!("osb-snap-{}", "a".repeat(32)),
        SandboxSnapshotSpec {
            sandbox_name: "bs".into(),
        },
    );
    assert_eq!(
        image_uri("r", &public, "bs", "main", 3),
        format!("r/bs-main:snap-{}", "a".repeat(32))
    );
    public.metadata.name = Some("mine".into());
    let tag = image_uri("r", &public, "bs", "main", 3);
    assert_eq!(tag.len(), "r/bs-main:snap-".len() + 32);
}
