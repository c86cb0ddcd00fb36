//! Building a template-mode pod `<bs>-<index>` (pure).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::{Resource, ResourceExt};
use serde_json::{Value, json};

use crate::actors::pool_pod::{TemplateError, check_template};
use crate::crd::{BatchSandbox, keys};
use crate::standalone::apiserver::patch::apply_shard_patch;

/// Why a BatchSandbox spec cannot produce its pods.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum SandboxSpecError {
    #[error("spec.template is missing: a BatchSandbox without poolRef needs a pod template")]
    MissingTemplate,
    #[error("spec.template.spec.containers must list at least one container")]
    NoContainers,
    #[error("spec.shardPatches[{index}] cannot be applied: {reason}")]
    ShardPatch { index: u32, reason: String },
    #[error("pod {index} is not a valid pod: {reason}")]
    InvalidPod { index: u32, reason: String },
}

impl From<TemplateError> for SandboxSpecError {
    fn from(e: TemplateError) -> Self {
        match e {
            TemplateError::NoContainers => Self::NoContainers,
            TemplateError::Missing | TemplateError::Invalid(_) => Self::MissingTemplate,
        }
    }
}

/// `<bs>-<index>`, the name of a template-mode pod.
pub fn pod_name(bs: &BatchSandbox, index: u32) -> String {
    format!("{}-{index}", bs.name_any())
}

/// The controller ownerReference of a sandbox's pods.
pub fn owner_ref(bs: &BatchSandbox) -> OwnerReference {
    OwnerReference {
        api_version: BatchSandbox::api_version(&()).into_owned(),
        kind: BatchSandbox::kind(&()).into_owned(),
        name: bs.name_any(),
        uid: bs.uid().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// The template-mode pod for replica `index`: `spec.template` as a pod, `shardPatches[index]`
/// applied as a strategic merge patch, then our name, namespace, labels and owner on top (so a
/// patch cannot take the pod away from its sandbox).
pub fn template_pod(bs: &BatchSandbox, index: u32) -> Result<Pod, SandboxSpecError> {
    let template = check_template(bs.spec.template.as_ref())?;
    let mut pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": template.get("metadata").cloned().unwrap_or_else(|| json!({})),
        "spec": template["spec"].clone(),
    });
    if let Some(patch) = shard_patch(bs, index) {
        pod = apply_shard_patch(&pod, patch).map_err(|e| SandboxSpecError::ShardPatch {
            index,
            reason: e.to_string(),
        })?;
    }
    if pod["spec"]["containers"]
        .as_array()
        .is_none_or(|c| c.is_empty())
    {
        return Err(SandboxSpecError::ShardPatch {
            index,
            reason: "the patched pod has no containers".to_string(),
        });
    }
    pod["metadata"] = metadata(bs, index, &pod["metadata"]);
    serde_json::from_value(pod).map_err(|e| SandboxSpecError::InvalidPod {
        index,
        reason: e.to_string(),
    })
}

fn shard_patch(bs: &BatchSandbox, index: u32) -> Option<&Value> {
    bs.spec
        .shard_patches
        .as_ref()?
        .get(usize::try_from(index).ok()?)
        .filter(|p| !p.is_null())
}

/// Template labels, annotations and finalizers, plus ours; everything else in the template's
/// metadata (name, generateName, uid...) is dropped.
fn metadata(bs: &BatchSandbox, index: u32, template_meta: &Value) -> Value {
    let mut labels: BTreeMap<String, String> =
        serde_json::from_value(template_meta["labels"].clone()).unwrap_or_default();
    labels.insert(keys::LABEL_POD_INDEX.to_string(), index.to_string());
    labels.insert(keys::LABEL_BATCH_SANDBOX_NAME.to_string(), bs.name_any());
    labels.insert(
        keys::LABEL_MANAGED.to_string(),
        keys::LABEL_MANAGED_VALUE.to_string(),
    );
    let mut meta = json!({
        "name": pod_name(bs, index),
        "namespace": bs.namespace(),
        "labels": labels,
        "ownerReferences": [owner_ref(bs)],
    });
    for field in ["annotations", "finalizers"] {
        if let Some(v) = template_meta.get(field).filter(|v| !v.is_null()) {
            meta[field] = v.clone();
        }
    }
    meta
}
