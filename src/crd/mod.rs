//! Custom resources of `sandbox.opensandbox.io/v1alpha1`, their wire keys and ledger formats.

pub mod batchsandbox;
pub mod conditions;
pub mod keys;
pub mod ledger;
pub mod pool;
pub mod schema;
pub mod snapshot;

pub use batchsandbox::{BatchSandbox, BatchSandboxSpec, BatchSandboxStatus, SandboxPhase};
pub use conditions::Condition;
pub use pool::{CapacitySpec, Pool, PoolSpec, PoolStatus, RecycleType};
pub use snapshot::{SandboxSnapshot, SandboxSnapshotSpec, SandboxSnapshotStatus, SnapshotPhase};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

/// API group of every kind in this module.
pub const GROUP: &str = "sandbox.opensandbox.io";
/// The only served and stored version.
pub const VERSION: &str = "v1alpha1";

/// Most pods one BatchSandbox or Pool may ask for (`replicas` and every capacity field):
/// far beyond one cluster's sandboxes, small enough that a typo cannot make the controller
/// try to create a billion pods.
pub const MAX_PODS: i32 = 10_000;

/// The three CRDs in a stable order (Pool, BatchSandbox, SandboxSnapshot).
pub fn all_crds() -> Vec<CustomResourceDefinition> {
    vec![Pool::crd(), BatchSandbox::crd(), SandboxSnapshot::crd()]
}

/// Renders a CRD as YAML, as the chart's `crds/` directory stores it.
pub fn crd_yaml(crd: &CustomResourceDefinition) -> Result<String, serde_saphyr::ser::Error> {
    serde_saphyr::to_string(crd)
}

/// File name of a CRD inside `helm/opensandbox-controller/crds/`.
pub fn crd_file_name(crd: &CustomResourceDefinition) -> String {
    format!("{}.yaml", crd.metadata.name.as_deref().unwrap_or("crd"))
}
