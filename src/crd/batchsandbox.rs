//! The `BatchSandbox` kind: N sandboxes delivered as one object.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::ledger::ReleasedTasks;
use super::{keys, schema};

/// Desired sandboxes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "sandbox.opensandbox.io",
    version = "v1alpha1",
    kind = "BatchSandbox",
    plural = "batchsandboxes",
    singular = "batchsandbox",
    shortname = "bsbx",
    namespaced,
    status = "BatchSandboxStatus",
    printcolumn(name = "DESIRED", type_ = "integer", json_path = ".spec.replicas"),
    printcolumn(name = "TOTAL", type_ = "integer", json_path = ".status.replicas"),
    printcolumn(name = "ALLOCATED", type_ = "integer", json_path = ".status.allocated"),
    printcolumn(name = "Ready", type_ = "integer", json_path = ".status.ready"),
    printcolumn(
        name = "TASK_RUNNING",
        type_ = "integer",
        json_path = ".status.taskRunning",
        priority = 1
    ),
    printcolumn(
        name = "TASK_SUCCEED",
        type_ = "integer",
        json_path = ".status.taskSucceed",
        priority = 1
    ),
    printcolumn(
        name = "TASK_FAILED",
        type_ = "integer",
        json_path = ".status.taskFailed",
        priority = 1
    ),
    printcolumn(
        name = "TASK_UNKNOWN",
        type_ = "integer",
        json_path = ".status.taskUnknown",
        priority = 1
    ),
    printcolumn(name = "EXPIRE", type_ = "string", json_path = ".spec.expireTime"),
    printcolumn(
        name = "AGE",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct BatchSandboxSpec {
    /// Desired pods (and tasks).
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 0, max = super::MAX_PODS))]
    pub replicas: i32,
    /// Pool to take pods from: empty for template mode, `*` to let the controller pick one.
    /// Immutable once set, except that `*` resolves to a pool name and it may be cleared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "self == oldSelf || oldSelf == '' || oldSelf == '*' || self == ''",
         "message": "spec.poolRef is immutable once set"}
    ]))]
    pub pool_ref: Option<String>,
    /// Pod template for template mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::preserve_unknown_object")]
    pub template: Option<Value>,
    /// Per-replica strategic merge patches applied to the pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::preserve_unknown_object_list")]
    pub shard_patches: Option<Vec<Value>>,
    /// Absolute time at which the sandbox is deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::date_time")]
    pub expire_time: Option<String>,
    /// Task every replica runs (`{spec:{process:{...}, timeoutSeconds}}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::preserve_unknown_object")]
    pub task_template: Option<Value>,
    /// Per-replica strategic merge patches applied to the task template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::preserve_unknown_object_list")]
    pub shard_task_patches: Option<Vec<Value>>,
    /// `Retain` (default) or `Release`: what happens to a pod whose task finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(default = "default_task_policy")]
    pub task_resource_policy_when_completed: Option<String>,
    /// Pause intent: true pauses, false resumes, absent does nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause: Option<bool>,
}

fn default_replicas() -> i32 {
    1
}

fn default_task_policy() -> Option<String> {
    Some("Retain".to_string())
}

/// Aggregated lifecycle phase.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum SandboxPhase {
    Pending,
    Succeed,
    Pausing,
    Paused,
    Resuming,
    Failed,
}

/// Observed state of a BatchSandbox.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BatchSandboxStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Pods currently listed for the sandbox.
    #[serde(default)]
    pub replicas: i32,
    /// Listed pods that are scheduled or have an address.
    #[serde(default)]
    pub allocated: i32,
    /// Listed pods that are Running and Ready.
    #[serde(default)]
    pub ready: i32,
    #[serde(default)]
    pub task_pending: i32,
    #[serde(default)]
    pub task_running: i32,
    #[serde(default)]
    pub task_succeed: i32,
    #[serde(default)]
    pub task_failed: i32,
    #[serde(default)]
    pub task_unknown: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<SandboxPhase>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause_observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "schema::condition_list")]
    pub conditions: Vec<super::Condition>,
}

impl BatchSandbox {
    /// The pool reference, `None` when empty (template mode).
    pub fn pool_ref(&self) -> Option<&str> {
        self.spec.pool_ref.as_deref().filter(|p| !p.is_empty())
    }

    /// True when the controller must pick a pool.
    pub fn wants_auto_pool(&self) -> bool {
        self.pool_ref() == Some(keys::POOL_REF_AUTO)
    }

    /// `taskResourcePolicyWhenCompleted: Release` on a task-mode sandbox: a replica whose
    /// task finished gives its pod back and is not refilled.
    pub fn releases_finished_tasks(&self) -> bool {
        self.spec.task_template.is_some()
            && self.spec.task_resource_policy_when_completed.as_deref() == Some("Release")
    }

    /// Replicas retired after their task finished (an unreadable annotation retires none).
    pub fn released_tasks(&self) -> ReleasedTasks {
        ReleasedTasks::from_annotations(self.metadata.annotations.as_ref()).unwrap_or_default()
    }
}
