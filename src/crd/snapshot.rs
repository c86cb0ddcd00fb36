//! The `SandboxSnapshot` kind: a committed image of a paused sandbox.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::schema;

/// Which sandbox to snapshot.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[kube(
    group = "sandbox.opensandbox.io",
    version = "v1alpha1",
    kind = "SandboxSnapshot",
    plural = "sandboxsnapshots",
    singular = "sandboxsnapshot",
    shortname = "sbxsnap",
    namespaced,
    status = "SandboxSnapshotStatus",
    printcolumn(name = "PHASE", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "SANDBOX", type_ = "string", json_path = ".spec.sandboxName"),
    printcolumn(
        name = "AGE",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct SandboxSnapshotSpec {
    /// Name of a BatchSandbox in the same namespace.
    pub sandbox_name: String,
}

/// Phases of a snapshot.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum SnapshotPhase {
    Pending,
    Committing,
    Succeed,
    Failed,
}

/// One committed container image.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotContainer {
    pub container_name: String,
    pub image_uri: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_digest: Option<String>,
}

/// Observed state of a snapshot.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SandboxSnapshotStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<SnapshotPhase>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub containers: Vec<SnapshotContainer>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "schema::condition_list")]
    pub conditions: Vec<super::Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_pod_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_node_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}
