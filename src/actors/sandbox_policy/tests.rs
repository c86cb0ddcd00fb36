use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::{Value, json};

use super::*;
use crate::cache::objects::{ContainerState, OwnerRef, PodInfo};
use crate::crd::conditions::find;
use crate::crd::{BatchSandbox, BatchSandboxStatus, SandboxPhase, keys};

pub(super) fn sandbox(spec: Value) -> BatchSandbox {
    serde_json::from_value(json!({
        "apiVersion": "sandbox.opensandbox.io/v1alpha1", "kind": "BatchSandbox",
        "metadata": {"name": "bs", "namespace": "ns", "uid": "bs-uid", "generation": 3},
        "spec": spec,
    }))
    .unwrap()
}

fn template() -> Value {
    json!({
        "metadata": {"labels": {"app": "x"}, "annotations": {"a": "b"}},
        "spec": {"containers": [{"name": "main", "image": "img", "command": ["sleep"]}]}
    })
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
}

pub(super) fn pod(name: &str, index: Option<u32>) -> PodInfo {
    PodInfo {
        namespace: "ns".into(),
        name: name.into(),
        uid: format!("uid-{name}"),
        resource_version: "1".into(),
        batch_sandbox: Some("bs".into()),
        pod_index: index,
        owner: Some(OwnerRef {
            kind: "BatchSandbox".into(),
            name: "bs".into(),
            uid: "bs-uid".into(),
        }),
        created: t0(),
        phase: "Pending".into(),
        ..Default::default()
    }
}

fn ready_pod(name: &str, index: u32, ip: &str) -> PodInfo {
    PodInfo {
        node_name: Some("node".into()),
        pod_ip: Some(ip.into()),
        phase: "Running".into(),
        ready: true,
        containers: vec![container(None, 0)],
        ..pod(name, Some(index))
    }
}

fn container(waiting: Option<&str>, restarts: i32) -> ContainerState {
    ContainerState {
        name: "main".into(),
        container_id: Some("c1".into()),
        running: waiting.is_none(),
        restarts,
        waiting_reason: waiting.map(String::from),
    }
}

fn arcs(pods: Vec<PodInfo>) -> Vec<Arc<PodInfo>> {
    pods.into_iter().map(Arc::new).collect()
}

// ---- template_pod ----

#[test]
fn template_pod_has_name_labels_owner_namespace() {
    let bs = sandbox(json!({"replicas": 2, "template": template()}));
    let pod = template_pod(&bs, 1).unwrap();
    let meta = &pod.metadata;
    assert_eq!(meta.name.as_deref(), Some("bs-1"));
    assert_eq!(meta.namespace.as_deref(), Some("ns"));
    let labels = meta.labels.as_ref().unwrap();
    assert_eq!(labels[keys::LABEL_POD_INDEX], "1");
    assert_eq!(labels[keys::LABEL_BATCH_SANDBOX_NAME], "bs");
    assert_eq!(labels[keys::LABEL_MANAGED], "true");
    assert_eq!(labels["app"], "x");
    assert_eq!(meta.annotations.as_ref().unwrap()["a"], "b");
    let owner = &meta.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str(), owner.uid.as_str()),
        ("BatchSandbox", "bs", "bs-uid")
    );
    assert_eq!(owner.controller, Some(true));
    assert_eq!(owner.block_owner_deletion, Some(true));
    assert_eq!(
        owner.api_version,
        "sandbox.opensandbox.io/v1alpha1".to_string()
    );
}

#[test]
fn shard_patches_give_each_pod_its_own_command() {
    let patches: Vec<Value> = (0..3)
        .map(|i| json!({"spec": {"containers": [{"name": "main", "command": [format!("custom-command-{i}")]}]}}))
        .collect();
    let bs = sandbox(json!({"replicas": 4, "template": template(), "shardPatches": patches}));
    for i in 0..3u32 {
        let spec = template_pod(&bs, i).unwrap().spec.unwrap();
        assert_eq!(spec.containers.len(), 1, "merged by name, not appended");
        assert_eq!(
            spec.containers[0].command,
            Some(vec![format!("custom-command-{i}")])
        );
        assert_eq!(spec.containers[0].image.as_deref(), Some("img"));
    }
    // Beyond the patches: the plain template.
    let spec = template_pod(&bs, 3).unwrap().spec.unwrap();
    assert_eq!(spec.containers[0].command, Some(vec!["sleep".to_string()]));
}

#[test]
fn a_shard_patch_cannot_steal_the_pod() {
    let patch =
        json!({"metadata": {"name": "evil", "labels": {keys::LABEL_POD_INDEX: "9", "extra": "y"}}});
    let bs = sandbox(json!({"replicas": 1, "template": template(), "shardPatches": [patch]}));
    let pod = template_pod(&bs, 0).unwrap();
    assert_eq!(pod.metadata.name.as_deref(), Some("bs-0"));
    let labels = pod.metadata.labels.unwrap();
    assert_eq!(labels[keys::LABEL_POD_INDEX], "0");
    assert_eq!(labels["extra"], "y");
}

#[test]
fn template_errors_are_clear() {
    let no_template = sandbox(json!({"replicas": 1}));
    assert_eq!(
        template_pod(&no_template, 0).unwrap_err(),
        SandboxSpecError::MissingTemplate
    );
    let empty = sandbox(json!({"replicas": 1, "template": {"spec": {"containers": []}}}));
    assert_eq!(
        template_pod(&empty, 0).unwrap_err(),
        SandboxSpecError::NoContainers
    );
    let bad_patch =
        sandbox(json!({"replicas": 1, "template": template(), "shardPatches": [[1, 2]]}));
    let err = template_pod(&bad_patch, 0).unwrap_err();
    assert!(
        matches!(err, SandboxSpecError::ShardPatch { index: 0, .. }),
        "{err}"
    );
    let drop_containers = sandbox(
        json!({"replicas": 1, "template": template(), "shardPatches": [{"spec": {"containers": null}}]}),
    );
    let err = template_pod(&drop_containers, 0).unwrap_err();
    assert!(err.to_string().contains("no containers"), "{err}");
}

// ---- parse_index / template_plan ----

#[test]
fn parse_index_from_label_name_or_error() {
    assert_eq!(parse_index(Some("4"), "whatever"), Ok(4));
    assert_eq!(parse_index(None, "bs-7"), Ok(7));
    assert_eq!(parse_index(Some("x"), "my-bs-12"), Ok(12));
    assert!(parse_index(None, "bs-abc").is_err());
    assert!(parse_index(None, "nodash").is_err());
    assert_eq!(pod_index(&pod("bs-2", None)), Ok(2));
    assert_eq!(pod_index(&pod("odd", Some(5))), Ok(5));
}

#[test]
fn creates_all_replicas_from_scratch() {
    let bs = sandbox(json!({"replicas": 3, "template": template()}));
    let plan = template_plan(&bs, &[]);
    assert_eq!(plan.create, vec![0, 1, 2]);
    assert!(plan.delete.is_empty());
}

#[test]
fn scale_out_creates_only_the_missing_index() {
    let bs = sandbox(json!({"replicas": 3, "template": template()}));
    let pods = arcs(vec![pod("bs-0", Some(0)), pod("bs-1", Some(1))]);
    assert_eq!(template_plan(&bs, &pods).create, vec![2]);
}

#[test]
fn deleted_pod_is_recreated_with_the_same_name_once_gone() {
    let bs = sandbox(json!({"replicas": 2, "template": template()}));
    let terminating = PodInfo {
        deleting: true,
        ..pod("bs-0", Some(0))
    };
    let pods = arcs(vec![terminating, pod("bs-1", Some(1))]);
    assert!(
        template_plan(&bs, &pods).is_steady(),
        "no duplicate name while terminating"
    );
    let pods = arcs(vec![pod("bs-1", Some(1))]);
    let plan = template_plan(&bs, &pods);
    assert_eq!(plan.create, vec![0]);
    assert_eq!(
        template_pod(&bs, plan.create[0])
            .unwrap()
            .metadata
            .name
            .as_deref(),
        Some("bs-0")
    );
}

#[test]
fn scale_down_deletes_highest_index_first() {
    let bs = sandbox(json!({"replicas": 1, "template": template()}));
    let pods = arcs((0..4).map(|i| pod(&format!("bs-{i}"), Some(i))).collect());
    let plan = template_plan(&bs, &pods);
    assert_eq!(plan.delete, vec!["bs-3", "bs-2", "bs-1"]);
    assert!(plan.create.is_empty());
    let zero = sandbox(json!({"replicas": 0, "template": template()}));
    assert_eq!(template_plan(&zero, &pods).delete.len(), 4);
}

#[test]
fn failed_pods_are_deleted_for_recreation() {
    let bs = sandbox(json!({"replicas": 3, "template": template()}));
    let failed = PodInfo {
        phase: "Failed".into(),
        ..pod("bs-0", Some(0))
    };
    let succeeded = PodInfo {
        phase: "Succeeded".into(),
        ..pod("bs-1", Some(1))
    };
    let pods = arcs(vec![failed, succeeded, ready_pod("bs-2", 2, "10.0.0.3")]);
    let plan = template_plan(&bs, &pods);
    assert_eq!(plan.delete, vec!["bs-1", "bs-0"]);
    assert!(
        plan.create.is_empty(),
        "recreated next turn, after deletion"
    );

    // restartPolicy Never: a Succeeded pod finished its work and stays.
    let mut t = template();
    t["spec"]["restartPolicy"] = json!("Never");
    let never = sandbox(json!({"replicas": 3, "template": t}));
    assert_eq!(template_plan(&never, &pods).delete, vec!["bs-0"]);
}

#[test]
fn duplicate_indexes_keep_the_canonical_pod() {
    let bs = sandbox(json!({"replicas": 1, "template": template()}));
    let pods = arcs(vec![pod("other-0", Some(0)), pod("bs-0", Some(0))]);
    assert_eq!(template_plan(&bs, &pods).delete, vec!["other-0"]);
}

#[test]
fn unparsable_pods_are_reported_not_touched() {
    let bs = sandbox(json!({"replicas": 1, "template": template()}));
    let pods = arcs(vec![pod("bs-0", Some(0)), pod("stray", None)]);
    let plan = template_plan(&bs, &pods);
    assert!(plan.is_steady());
    assert_eq!(plan.unparsable.len(), 1);
    assert_eq!(plan.unparsable[0].pod, "stray");
}

// ---- endpoints ----

#[test]
fn endpoints_follow_order_with_blank_for_unassigned() {
    let pods = arcs(vec![
        ready_pod("bs-0", 0, "10.0.0.1"),
        pod("bs-1", Some(1)),
        ready_pod("bs-2", 2, "10.0.0.3"),
    ]);
    assert_eq!(endpoints(&pods), vec!["10.0.0.1", "", "10.0.0.3"]);
}

#[test]
fn endpoints_written_only_when_changed() {
    let ips = vec!["10.0.0.1".to_string(), String::new()];
    assert!(!endpoints_changed(None, &[]), "no [] on a fresh object");
    assert!(endpoints_changed(None, &ips));
    assert!(!endpoints_changed(Some(r#"["10.0.0.1",""]"#), &ips));
    assert!(endpoints_changed(Some(r#"["10.0.0.1"]"#), &ips));
    assert!(
        endpoints_changed(Some(r#"["10.0.0.1"]"#), &[]),
        "cleared to []"
    );
    assert!(!endpoints_changed(Some("[]"), &[]));
    assert!(endpoints_changed(Some("not json"), &ips));
}

// ---- expiry ----

#[test]
fn expiry_parses_rfc3339() {
    let now = t0();
    let at = |v: Value| expiry(&sandbox(json!({"replicas": 1, "expireTime": v})), now);
    assert_eq!(
        expiry(&sandbox(json!({"replicas": 1})), now),
        Ok(Expiry::Never)
    );
    assert_eq!(at(json!("")), Ok(Expiry::Never));
    assert_eq!(
        at(json!("2026-01-01T00:00:30Z")),
        Ok(Expiry::At(Duration::from_secs(30)))
    );
    assert_eq!(
        at(json!("2026-01-01T01:00:30+01:00")),
        Ok(Expiry::At(Duration::from_secs(30)))
    );
    assert_eq!(at(json!("2026-01-01T00:00:00Z")), Ok(Expiry::Expired));
    assert_eq!(at(json!("2025-12-31T23:00:00Z")), Ok(Expiry::Expired));
    let err = at(json!("tomorrow")).unwrap_err();
    assert!(err.to_string().contains("tomorrow"), "{err}");
}

// ---- status ----

fn status_of(
    bs: &BatchSandbox,
    pods: &[Arc<PodInfo>],
    baseline: &HashMap<String, i32>,
) -> BatchSandboxStatus {
    sandbox_status(&StatusInput {
        bs,
        pods,
        tasks: None,
        restart_baseline: baseline,
        now: t0(),
    })
}

fn with_status(mut bs: BatchSandbox, status: BatchSandboxStatus) -> BatchSandbox {
    bs.status = Some(status);
    bs
}

fn cond<'a>(s: &'a BatchSandboxStatus, t: &str) -> (&'a str, &'a str) {
    let c = find(&s.conditions, t).unwrap_or_else(|| panic!("no {t} condition"));
    (c.status.as_str(), c.reason.as_deref().unwrap_or(""))
}

#[test]
fn counts_and_generation() {
    let bs = sandbox(json!({"replicas": 3, "template": template()}));
    let terminating_ready = PodInfo {
        deleting: true,
        ..ready_pod("bs-2", 2, "10.0.0.3")
    };
    let scheduled = PodInfo {
        node_name: Some("n".into()),
        ..pod("bs-1", Some(1))
    };
    let pods = arcs(vec![
        ready_pod("bs-0", 0, "10.0.0.1"),
        scheduled,
        terminating_ready,
    ]);
    let s = status_of(&bs, &pods, &HashMap::new());
    assert_eq!(s.observed_generation, Some(3));
    assert_eq!((s.replicas, s.allocated, s.ready), (3, 3, 1));
}

#[test]
fn all_replicas_ready_means_succeed() {
    let bs = sandbox(json!({"replicas": 2, "template": template()}));
    let one = arcs(vec![ready_pod("bs-0", 0, "ip0"), pod("bs-1", Some(1))]);
    let s = status_of(&bs, &one, &HashMap::new());
    assert_eq!(s.phase, Some(SandboxPhase::Pending));
    assert_eq!(cond(&s, COND_READY), ("False", "Creating"));
    assert_eq!(cond(&s, COND_PROGRESSING), ("True", "Creating"));

    let scheduled = PodInfo {
        node_name: Some("n".into()),
        pod_ip: Some("ip1".into()),
        phase: "Running".into(),
        ..pod("bs-1", Some(1))
    };
    let s = status_of(
        &bs,
        &arcs(vec![ready_pod("bs-0", 0, "ip0"), scheduled]),
        &HashMap::new(),
    );
    assert_eq!(cond(&s, COND_READY), ("False", "PodsNotReady"));

    let both = arcs(vec![
        ready_pod("bs-0", 0, "ip0"),
        ready_pod("bs-1", 1, "ip1"),
    ]);
    let s = status_of(&bs, &both, &HashMap::new());
    assert_eq!(s.phase, Some(SandboxPhase::Succeed));
    assert_eq!(cond(&s, COND_READY), ("True", "PodsReady"));
    assert_eq!(cond(&s, COND_PROGRESSING), ("False", "PodsReady"));
    assert_eq!(cond(&s, COND_POD_FAILED), ("False", "NoPodFailed"));
}

#[test]
fn zero_replicas_is_pending_with_a_reason() {
    let bs = sandbox(json!({"replicas": 0, "template": template()}));
    let s = status_of(&bs, &[], &HashMap::new());
    assert_eq!(s.phase, Some(SandboxPhase::Pending));
    assert_eq!(cond(&s, COND_READY), ("False", "NoReplicas"));
}

#[test]
fn failure_summary_message_and_primary_reason() {
    let bs = sandbox(json!({"replicas": 4, "template": template()}));
    let failing = |name: &str, i: u32, reason: &str| PodInfo {
        containers: vec![container(Some(reason), 1)],
        ..pod(name, Some(i))
    };
    let pods = arcs(vec![
        failing("bs-0", 0, "ImagePullBackOff"),
        failing("bs-1", 1, "CrashLoopBackOff"),
        failing("bs-2", 2, "CrashLoopBackOff"),
        ready_pod("bs-3", 3, "ip3"),
    ]);
    let s = status_of(&bs, &pods, &HashMap::new());
    assert_eq!(s.phase, Some(SandboxPhase::Failed));
    let c = find(&s.conditions, COND_POD_FAILED).unwrap();
    assert_eq!(c.status, "True");
    assert_eq!(c.reason.as_deref(), Some("CrashLoopBackOff"));
    assert_eq!(
        c.message.as_deref(),
        Some("3/4 observed pods failed; primary reason=CrashLoopBackOff; sample pod=bs-1")
    );
    assert_eq!(cond(&s, COND_READY), ("False", "PodFailed"));
    assert_eq!(cond(&s, COND_PROGRESSING), ("False", "PodFailed"));
}

#[test]
fn ties_go_to_the_reason_that_got_there_first() {
    let bs = sandbox(json!({"replicas": 2, "template": template()}));
    let pods = arcs(vec![
        PodInfo {
            containers: vec![container(Some("ErrImagePull"), 0)],
            ..pod("bs-0", Some(0))
        },
        PodInfo {
            phase: "Failed".into(),
            ..pod("bs-1", Some(1))
        },
    ]);
    let s = status_of(&bs, &pods, &HashMap::new());
    assert_eq!(cond(&s, COND_POD_FAILED), ("True", "ErrImagePull"));
}

#[test]
fn failed_is_not_sticky_and_false_conditions_stay() {
    let bs = sandbox(json!({"replicas": 1, "template": template()}));
    let crash = arcs(vec![PodInfo {
        containers: vec![container(Some("CrashLoopBackOff"), 3)],
        ..pod("bs-0", Some(0))
    }]);
    let failed = status_of(&bs, &crash, &HashMap::new());
    assert_eq!(failed.phase, Some(SandboxPhase::Failed));

    let bs = with_status(bs, failed);
    let recovered = status_of(
        &bs,
        &arcs(vec![ready_pod("bs-0", 0, "ip")]),
        &HashMap::new(),
    );
    assert_eq!(recovered.phase, Some(SandboxPhase::Succeed));
    let c = find(&recovered.conditions, COND_POD_FAILED).unwrap();
    assert_eq!(
        (c.status.as_str(), c.reason.as_deref()),
        ("False", Some("NoPodFailed"))
    );

    // Back to pending while the pod is not Ready yet: Ready stays, False, with a reason.
    let bs = with_status(bs, recovered);
    let s = status_of(&bs, &arcs(vec![pod("bs-0", Some(0))]), &HashMap::new());
    assert_eq!(s.phase, Some(SandboxPhase::Pending));
    assert_eq!(cond(&s, COND_READY), ("False", "Creating"));
    assert_eq!(s.conditions.len(), 3);
}

#[test]
fn transition_time_kept_and_same_inputs_give_no_change() {
    let bs = sandbox(json!({"replicas": 1, "template": template()}));
    let pods = arcs(vec![ready_pod("bs-0", 0, "ip")]);
    let first = status_of(&bs, &pods, &HashMap::new());
    let bs = with_status(bs, first.clone());
    let later = sandbox_status(&StatusInput {
        bs: &bs,
        pods: &pods,
        tasks: None,
        restart_baseline: &HashMap::new(),
        now: t0() + chrono::Duration::seconds(60),
    });
    assert!(!status_changed(Some(&first), &later));
    assert!(status_changed(None, &later));
    let ready = find(&later.conditions, COND_READY).unwrap();
    assert_eq!(
        ready.last_transition_time.as_deref(),
        Some("2026-01-01T00:00:00Z")
    );
}

#[test]
fn restart_after_ready_is_reported_and_phase_follows_readiness() {
    let bs = sandbox(json!({"replicas": 1, "template": template()}));
    let mut baseline = HashMap::new();
    let ready = arcs(vec![ready_pod("bs-0", 0, "ip")]);
    track_ready_restarts(&mut baseline, &ready);
    assert_eq!(baseline.get("uid-bs-0"), Some(&0));
    let s = status_of(&bs, &ready, &baseline);
    assert!(find(&s.conditions, COND_POD_RESTARTED).is_none());

    // The container restarts: not Ready for a moment, restart count 1.
    let restarting = arcs(vec![PodInfo {
        ready: false,
        containers: vec![container(None, 1)],
        ..ready_pod("bs-0", 0, "ip")
    }]);
    let bs = with_status(bs, s);
    let s = status_of(&bs, &restarting, &baseline);
    assert_eq!(s.phase, Some(SandboxPhase::Pending));
    let c = find(&s.conditions, COND_POD_RESTARTED).unwrap();
    assert_eq!(c.status, "True");
    assert_eq!(c.reason.as_deref(), Some("ContainerRestarted"));
    assert!(c.message.as_deref().unwrap().contains("bs-0"));
    assert!(c.message.as_deref().unwrap().contains("restart count 1"));

    // Ready again: phase recovers, the restart stays on record.
    let back = arcs(vec![PodInfo {
        containers: vec![container(None, 1)],
        ..ready_pod("bs-0", 0, "ip")
    }]);
    track_ready_restarts(&mut baseline, &back);
    let bs = with_status(bs, s);
    let s = status_of(&bs, &back, &baseline);
    assert_eq!(s.phase, Some(SandboxPhase::Succeed));
    assert_eq!(cond(&s, COND_POD_RESTARTED), ("True", "ContainerRestarted"));
}

#[test]
fn restarts_before_ready_or_before_allocation_are_not_reported() {
    let bs = sandbox(json!({"replicas": 1, "poolRef": "p"}));
    // A recycled pool pod arrives with restarts already counted.
    let recycled = arcs(vec![PodInfo {
        containers: vec![container(None, 4)],
        ..ready_pod("p-abc", 0, "ip")
    }]);
    let mut baseline = HashMap::new();
    track_ready_restarts(&mut baseline, &recycled);
    let s = status_of(&bs, &recycled, &baseline);
    assert!(find(&s.conditions, COND_POD_RESTARTED).is_none());
    // Pods no longer listed are forgotten.
    track_ready_restarts(&mut baseline, &[]);
    assert!(baseline.is_empty());
}

#[test]
fn pause_phases_are_kept() {
    for phase in [
        SandboxPhase::Pausing,
        SandboxPhase::Paused,
        SandboxPhase::Resuming,
    ] {
        let bs = with_status(
            sandbox(json!({"replicas": 1, "template": template()})),
            BatchSandboxStatus {
                phase: Some(phase),
                ..Default::default()
            },
        );
        let s = status_of(&bs, &[], &HashMap::new());
        assert_eq!(s.phase, Some(phase));
        assert!(s.conditions.is_empty());
        assert_eq!(s.observed_generation, Some(3));
    }
}

#[test]
fn task_counts_copied_or_kept() {
    let bs = with_status(
        sandbox(json!({"replicas": 1, "template": template()})),
        BatchSandboxStatus {
            task_pending: 7,
            ..Default::default()
        },
    );
    assert_eq!(status_of(&bs, &[], &HashMap::new()).task_pending, 7);
    let s = sandbox_status(&StatusInput {
        bs: &bs,
        pods: &[],
        tasks: Some(TaskCounts {
            pending: 1,
            running: 2,
            succeed: 3,
            failed: 4,
            unknown: 5,
        }),
        restart_baseline: &HashMap::new(),
        now: t0(),
    });
    assert_eq!(
        (
            s.task_pending,
            s.task_running,
            s.task_succeed,
            s.task_failed,
            s.task_unknown
        ),
        (1, 2, 3, 4, 5)
    );
}

#[test]
fn pooled_status_uses_ledger_order() {
    let bs = sandbox(json!({"replicas": 2, "poolRef": "p"}));
    let pods = arcs(vec![ready_pod("p-zz", 0, "10.0.0.9"), pod("p-aa", None)]);
    assert_eq!(endpoints(&pods), vec!["10.0.0.9", ""]);
    let s = status_of(&bs, &pods, &HashMap::new());
    assert_eq!((s.replicas, s.allocated, s.ready), (2, 1, 1));
}

#[test]
fn pooled_shortage_says_waiting_for_pool() {
    let bs = sandbox(json!({"replicas": 2, "poolRef": "p"}));
    let s = status_of(&bs, &arcs(vec![ready_pod("p-a", 0, "ip")]), &HashMap::new());
    let c = find(&s.conditions, COND_READY).unwrap();
    assert_eq!(c.reason.as_deref(), Some("WaitingForPool"));
    assert_eq!(
        c.message.as_deref(),
        Some("1 of 2 pods allocated from pool p, 1/2 pods ready")
    );
}

#[test]
fn first_write_waits_for_a_pod() {
    let bs = sandbox(json!({"replicas": 2, "template": template()}));
    assert!(first_write_deferred(&bs, 0));
    assert!(!first_write_deferred(&bs, 1));
    let zero = sandbox(json!({"replicas": 0, "template": template()}));
    assert!(!first_write_deferred(&zero, 0));
    let written = with_status(bs, status_of(&zero, &[], &HashMap::new()));
    assert!(!first_write_deferred(&written, 0));
}

fn with_released_tasks(mut bs: BatchSandbox, value: &str) -> BatchSandbox {
    bs.metadata.annotations = Some(
        [(
            keys::ANNOTATION_RELEASED_TASKS.to_string(),
            value.to_string(),
        )]
        .into(),
    );
    bs
}

#[test]
fn a_retired_replica_loses_its_pod_and_is_never_recreated() {
    let bs = with_released_tasks(
        sandbox(json!({"replicas": 3, "template": template()})),
        r#"{"1":"SUCCEED"}"#,
    );
    let pods = arcs(vec![pod("bs-0", Some(0)), pod("bs-1", Some(1))]);
    let plan = template_plan(&bs, &pods);
    assert_eq!(plan.delete, vec!["bs-1".to_string()]);
    assert_eq!(plan.create, vec![2]);
    let gone = arcs(vec![pod("bs-0", Some(0)), pod("bs-2", Some(2))]);
    assert!(template_plan(&bs, &gone).is_steady());
}

#[test]
fn retired_replicas_are_not_waited_for() {
    let bs = with_released_tasks(
        sandbox(json!({"replicas": 2, "template": template()})),
        r#"{"0":"SUCCEED"}"#,
    );
    let pods = arcs(vec![ready_pod("bs-1", 1, "10.0.0.2")]);
    let s = status_of(&bs, &pods, &HashMap::new());
    assert_eq!(s.phase, Some(SandboxPhase::Succeed));
    let ready = find(&s.conditions, COND_READY).unwrap();
    assert_eq!(ready.status, "True");
    let msg = ready.message.as_deref().unwrap_or("");
    assert!(msg.contains("1/1 pods ready (1 released"), "{msg}");
    let all = with_released_tasks(bs, r#"{"0":"SUCCEED","1":"FAILED"}"#);
    let s = status_of(&all, &[], &HashMap::new());
    assert_eq!(
        s.phase,
        Some(SandboxPhase::Succeed),
        "nothing left to wait for"
    );
}
