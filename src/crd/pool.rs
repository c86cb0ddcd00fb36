//! The `Pool` kind: a warm pool of identical sandbox pods.

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::schema;

/// Desired shape of a pool.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "sandbox.opensandbox.io",
    version = "v1alpha1",
    kind = "Pool",
    plural = "pools",
    singular = "pool",
    namespaced,
    status = "PoolStatus",
    printcolumn(name = "TOTAL", type_ = "integer", json_path = ".status.total"),
    printcolumn(name = "ALLOCATED", type_ = "integer", json_path = ".status.allocated"),
    printcolumn(name = "AVAILABLE", type_ = "integer", json_path = ".status.available"),
    printcolumn(name = "UPDATED", type_ = "integer", json_path = ".status.updated"),
    printcolumn(
        name = "AGE",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct PoolSpec {
    /// Pod template of every pool pod (schemaless: validated by the controller).
    #[serde(default)]
    #[schemars(schema_with = "schema::preserve_unknown_object")]
    pub template: Option<Value>,
    /// Buffer and size limits.
    pub capacity_spec: CapacitySpec,
    /// How fast new pods are created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_strategy: Option<RolloutStrategy>,
    /// How idle pods of an old template revision are replaced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_strategy: Option<RolloutStrategy>,
    /// What happens to a pod a sandbox gives back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recycle_strategy: Option<RecycleStrategy>,
}

/// Buffer (idle pods) and total bounds of a pool.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "self.bufferMin <= self.bufferMax", "message": "bufferMin must be less than or equal to bufferMax", "fieldPath": ".bufferMin"},
    {"rule": "self.poolMin <= self.poolMax", "message": "poolMin must be less than or equal to poolMax", "fieldPath": ".poolMin"}
]))]
pub struct CapacitySpec {
    /// Most idle (warm) pods kept.
    #[schemars(range(min = 0, max = super::MAX_PODS))]
    pub buffer_max: i32,
    /// Fewest idle pods kept.
    #[schemars(range(min = 0, max = super::MAX_PODS))]
    pub buffer_min: i32,
    /// Cap on total pods.
    #[schemars(range(min = 0, max = super::MAX_PODS))]
    pub pool_max: i32,
    /// Floor on total pods.
    #[schemars(range(min = 0, max = super::MAX_PODS))]
    pub pool_min: i32,
}

/// A `maxUnavailable` budget, as a count or a percentage.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutStrategy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::int_or_string")]
    pub max_unavailable: Option<IntOrString>,
}

/// How a released pod is made ready for its next sandbox.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecycleStrategy {
    #[serde(rename = "type", default)]
    #[schemars(default = "RecycleType::default_value")]
    pub type_: RecycleType,
}

/// Recycle strategies.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum RecycleType {
    /// Delete the pod; the pool creates a fresh one.
    #[default]
    Delete,
    /// Restart the pod's containers in place.
    Restart,
    /// Give the pod back untouched.
    Noop,
}

impl RecycleType {
    fn default_value() -> Self {
        RecycleType::Delete
    }
}

/// Observed state of a pool.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PoolStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Template revision (16 hex characters).
    #[serde(default)]
    pub revision: String,
    /// Non-terminating pods of the pool.
    #[serde(default)]
    pub total: i32,
    /// Pods allocated to sandboxes.
    #[serde(default)]
    pub allocated: i32,
    /// Idle Ready pods that can be allocated now.
    #[serde(default)]
    pub available: i32,
    /// Pods of the current revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated: Option<i32>,
    /// Ready and error conditions (for example an invalid spec).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "schema::condition_list")]
    pub conditions: Vec<super::Condition>,
}

impl Pool {
    /// The recycle strategy in force (absent means Delete).
    pub fn recycle_type(&self) -> RecycleType {
        self.spec
            .recycle_strategy
            .as_ref()
            .map(|r| r.type_)
            .unwrap_or_default()
    }
}
