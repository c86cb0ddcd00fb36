use chrono::{TimeZone, Utc};
use proptest::prelude::*;
use serde_json::{Value, json};

use super::spec::merge;
use super::*;
use crate::crd::conditions::find;
use crate::crd::{BatchSandbox, BatchSandboxStatus, SandboxPhase};

fn sandbox(spec: Value) -> BatchSandbox {
    serde_json::from_value(json!({
        "apiVersion": "sandbox.opensandbox.io/v1alpha1", "kind": "BatchSandbox",
        "metadata": {"name": "bs", "namespace": "ns", "uid": "u", "generation": 1},
        "spec": spec,
    }))
    .unwrap()
}

fn sample() -> BatchSandbox {
    sandbox(json!({
        "replicas": 3,
        "taskTemplate": {"spec": {"process": {"command": ["sleep"], "args": ["infinite"],
            "env": [{"name": "foo", "value": "bar"}]}, "timeoutSeconds": 60}},
        "shardTaskPatches": [
            {"spec": {"process": {"command": ["python"], "args": ["-m", "http.server", "8080"]}}},
            {"spec": {"process": {"args": ["3600"], "env": [{"name": "hello", "value": "world"}]}}},
        ],
    }))
}

#[test]
fn shard_patches_merge_like_upstream() {
    let specs: Vec<TaskSpec> = task_specs(&sample())
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(specs.len(), 3);
    assert_eq!(specs[0].name, "bs-0");
    assert_eq!(
        specs[0].process,
        json!({"command": ["python"], "args": ["-m", "http.server", "8080"],
               "env": [{"name": "foo", "value": "bar"}], "timeoutSeconds": 60})
    );
    assert_eq!(
        specs[1].process,
        json!({"command": ["sleep"], "args": ["3600"],
               "env": [{"name": "foo", "value": "bar"}, {"name": "hello", "value": "world"}],
               "timeoutSeconds": 60})
    );
    // Beyond the patches: the template as is.
    assert_eq!(specs[2].process["args"], json!(["infinite"]));
    assert_eq!(specs[2].index, 2);
}

#[test]
fn patched_timeout_and_env_override_by_name() {
    let bs = sandbox(json!({
        "replicas": 1,
        "taskTemplate": {"spec": {"process": {"command": ["x"], "env": [{"name": "A", "value": "1"}]},
                                  "timeoutSeconds": 5}},
        "shardTaskPatches": [{"spec": {"timeoutSeconds": 9, "process": {"env": [{"name": "A", "value": "2"}],
                                                                          "workingDir": "/w"}}}],
    }));
    let s = task_specs(&bs).remove(0).unwrap();
    assert_eq!(
        s.process,
        json!({"command": ["x"], "env": [{"name": "A", "value": "2"}], "workingDir": "/w", "timeoutSeconds": 9})
    );
}

#[test]
fn bad_templates_name_the_field_and_spoil_only_their_replica() {
    let bs = sandbox(json!({
        "replicas": 3,
        "taskTemplate": {"spec": {"process": {"command": ["echo"]}}},
        "shardTaskPatches": [null, {"spec": {"process": null}}, {"spec": {"process": {"env": [{"name": 3}]}}}],
    }));
    let specs = task_specs(&bs);
    assert!(specs[0].is_ok());
    let e1 = specs[1].as_ref().unwrap_err().to_string();
    assert!(
        e1.contains("spec.shardTaskPatches[1]") && e1.contains("spec.process"),
        "{e1}"
    );
    let e2 = specs[2].as_ref().unwrap_err().to_string();
    assert!(e2.contains("spec.process.env[0].name"), "{e2}");

    let empty =
        sandbox(json!({"replicas": 1, "taskTemplate": {"spec": {"process": {"command": []}}}}));
    let e = task_specs(&empty).remove(0).unwrap_err().to_string();
    assert!(e.contains("spec.taskTemplate: spec.process.command"), "{e}");
    let no_template = sandbox(json!({"replicas": 2}));
    assert!(task_specs(&no_template).is_empty());
}

fn report(v: Value) -> TaskReport {
    serde_json::from_value(v).unwrap()
}

#[test]
fn executor_reports_classify() {
    let ok = classify(&report(
        json!({"name": "t", "processStatus": {"terminated": {"exitCode": 0, "reason": "Succeeded"}}}),
    ));
    assert_eq!(ok.state(), TaskState::Succeed);
    let bad = classify(&report(
        json!({"name": "t", "processStatus": {"terminated": {
        "exitCode": 127, "reason": "CommandNotFound", "message": "nope: not found"}}}),
    ));
    assert_eq!(bad.state(), TaskState::Failed);
    assert_eq!(
        bad.detail(),
        "exit code 127 (CommandNotFound): nope: not found"
    );
    let run = classify(&report(
        json!({"name": "t", "processStatus": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}}),
    ));
    assert_eq!(run.state(), TaskState::Running);
    let wait = classify(&report(
        json!({"name": "t", "processStatus": {"waiting": {"reason": "Pending"}}}),
    ));
    assert_eq!(wait.state(), TaskState::Pending);
    assert_eq!(
        classify(&report(json!({"name": "t"}))).state(),
        TaskState::Unknown
    );
}

fn view<'a>(index: u32, task: &'a str, obs: &'a Observation) -> SlotView<'a> {
    SlotView {
        index,
        task,
        pod: Some(task),
        observation: obs,
    }
}

#[test]
fn failed_shard_fails_the_sandbox_and_is_named() {
    let ok = Observation::Reported {
        state: TaskState::Succeed,
        detail: "exit code 0".into(),
    };
    let bad = Observation::Reported {
        state: TaskState::Failed,
        detail: "exit code 3 (Failed)".into(),
    };
    let gone = Observation::Unreachable("connection refused".into());
    let s = summarize([
        view(0, "bs-0", &ok),
        view(1, "bs-1", &bad),
        view(2, "bs-2", &gone),
    ]);
    assert_eq!(
        (s.counts.succeed, s.counts.failed, s.counts.unknown),
        (1, 1, 1)
    );
    let mut status = BatchSandboxStatus {
        phase: Some(SandboxPhase::Succeed),
        ..Default::default()
    };
    let now = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    apply_task_status(&mut status, &s, now);
    assert_eq!(status.phase, Some(SandboxPhase::Failed));
    assert_eq!(
        (status.task_succeed, status.task_failed, status.task_unknown),
        (1, 1, 1)
    );
    let failed = find(&status.conditions, COND_TASK_FAILED).unwrap();
    assert!(failed.is_true());
    assert_eq!(
        failed.message.as_deref(),
        Some("shard 1 (task bs-1 on pod bs-1): exit code 3 (Failed)")
    );
    assert!(!find(&status.conditions, "Ready").unwrap().is_true());
    let unknown = find(&status.conditions, COND_TASK_UNKNOWN).unwrap();
    assert!(
        unknown.is_true()
            && unknown
                .message
                .as_deref()
                .unwrap()
                .contains("connection refused")
    );
    // Applying the same summary again changes nothing (no second write).
    let again = status.clone();
    apply_task_status(&mut status, &s, now + chrono::Duration::seconds(5));
    assert_eq!(status, again);
}

#[test]
fn paused_sandboxes_keep_their_phase() {
    let bad = Observation::Invalid("x".into());
    let s = summarize([view(0, "bs-0", &bad)]);
    let mut status = BatchSandboxStatus {
        phase: Some(SandboxPhase::Paused),
        ..Default::default()
    };
    apply_task_status(&mut status, &s, Utc::now());
    assert_eq!(status.phase, Some(SandboxPhase::Paused));
    assert_eq!(status.task_failed, 1);
}

fn state_strategy() -> impl Strategy<Value = Observation> {
    prop_oneof![
        Just(Observation::Waiting("w".into())),
        Just(Observation::Unreachable("u".into())),
        Just(Observation::Rejected("r".into())),
        Just(Observation::Invalid("i".into())),
        prop_oneof![
            Just(TaskState::Pending),
            Just(TaskState::Running),
            Just(TaskState::Succeed),
            Just(TaskState::Failed),
            Just(TaskState::Unknown)
        ]
        .prop_map(|state| Observation::Reported {
            state,
            detail: "d".into()
        }),
    ]
}

proptest! {
    /// Every replica is counted exactly once, and the sandbox is Failed exactly when a task is.
    #[test]
    fn counters_partition_the_replicas(obs in proptest::collection::vec(state_strategy(), 0..40)) {
        let names: Vec<String> = (0..obs.len()).map(|i| format!("bs-{i}")).collect();
        let s = summarize(obs.iter().enumerate().map(|(i, o)| view(i as u32, &names[i], o)));
        let c = s.counts;
        prop_assert_eq!((c.pending + c.running + c.succeed + c.failed + c.unknown) as usize, obs.len());
        let mut status = BatchSandboxStatus { phase: Some(SandboxPhase::Succeed), ..Default::default() };
        apply_task_status(&mut status, &s, Utc::now());
        prop_assert_eq!(status.phase == Some(SandboxPhase::Failed), c.failed > 0);
        if let Some(first) = s.failed.first() {
            let msg = find(&status.conditions, COND_TASK_FAILED).unwrap().message.clone().unwrap();
            let prefix = format!("shard {} ", first.index);
            prop_assert!(msg.starts_with(&prefix));
        }
    }

    /// A merge with an empty patch is the identity; patching twice is patching once.
    #[test]
    fn merge_is_idempotent(args in proptest::collection::vec("[a-z]{1,4}", 0..4), env in "[A-Z]{1,3}") {
        let original = json!({"spec": {"process": {"command": ["c"], "env": [{"name": "X", "value": "1"}]}}});
        prop_assert_eq!(merge(&original, &json!({})), original.clone());
        let patch = json!({"spec": {"process": {"args": args, "env": [{"name": env, "value": "v"}]}}});
        let once = merge(&original, &patch);
        prop_assert_eq!(merge(&once, &patch), once);
    }
}
