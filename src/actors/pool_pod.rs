//! Building a pool pod from the Pool's template (pure).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::{Resource, ResourceExt};
use serde_json::{Value, json};

use crate::crd::{Pool, keys};

/// Why a template cannot produce a pod.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TemplateError {
    #[error("spec.template is missing")]
    Missing,
    #[error("spec.template.spec.containers must list at least one container")]
    NoContainers,
    #[error("spec.template is not a valid pod template: {0}")]
    Invalid(String),
}

/// Checks the parts of a pod template the controller depends on.
pub fn check_template(template: Option<&Value>) -> Result<&Value, TemplateError> {
    let t = template
        .filter(|t| t.is_object())
        .ok_or(TemplateError::Missing)?;
    let containers = t["spec"]["containers"].as_array();
    if containers.is_none_or(|c| c.is_empty()) {
        return Err(TemplateError::NoContainers);
    }
    Ok(t)
}

/// The controller ownerReference of a pool's pods.
pub fn owner_ref(pool: &Pool) -> OwnerReference {
    OwnerReference {
        api_version: Pool::api_version(&()).into_owned(),
        kind: Pool::kind(&()).into_owned(),
        name: pool.name_any(),
        uid: pool.uid().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// A new pool pod: the template plus the pool and revision labels, the managed label,
/// `generateName: <pool>-` and the Pool as controller owner.
pub fn pool_pod(pool: &Pool, revision: &str) -> Result<Pod, TemplateError> {
    let template = check_template(pool.spec.template.as_ref())?;
    let mut labels: BTreeMap<String, String> =
        serde_json::from_value(template["metadata"]["labels"].clone()).unwrap_or_default();
    labels.insert(keys::LABEL_POOL_NAME.to_string(), pool.name_any());
    labels.insert(keys::LABEL_POOL_REVISION.to_string(), revision.to_string());
    labels.insert(
        keys::LABEL_MANAGED.to_string(),
        keys::LABEL_MANAGED_VALUE.to_string(),
    );
    let mut meta = json!({
        "generateName": format!("{}-", pool.name_any()),
        "namespace": pool.namespace(),
        "labels": labels,
        "ownerReferences": [owner_ref(pool)],
    });
    for field in ["annotations", "finalizers"] {
        if let Some(v) = template["metadata"].get(field).filter(|v| !v.is_null()) {
            meta[field] = v.clone();
        }
    }
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": template["spec"].clone(),
    }))
    .map_err(|e| TemplateError::Invalid(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(template: Value) -> Pool {
        serde_json::from_value(json!({
            "apiVersion": "sandbox.opensandbox.io/v1alpha1", "kind": "Pool",
            "metadata": {"name": "p", "namespace": "ns", "uid": "u1"},
            "spec": {"template": template, "capacitySpec": {"bufferMin": 1, "bufferMax": 1, "poolMin": 0, "poolMax": 1}}
        }))
        .unwrap()
    }

    #[test]
    fn pod_carries_labels_owner_and_template() {
        let p = pool(
            json!({"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}),
        );
        let pod = pool_pod(&p, "rev1").unwrap();
        let labels = pod.metadata.labels.unwrap();
        assert_eq!(labels["app"], "x");
        assert_eq!(labels[keys::LABEL_POOL_NAME], "p");
        assert_eq!(labels[keys::LABEL_POOL_REVISION], "rev1");
        assert_eq!(labels[keys::LABEL_MANAGED], "true");
        assert_eq!(pod.metadata.generate_name.as_deref(), Some("p-"));
        assert_eq!(pod.metadata.owner_references.unwrap()[0].uid, "u1");
        assert_eq!(pod.spec.unwrap().containers[0].image.as_deref(), Some("i"));
    }

    #[test]
    fn bad_templates_are_errors() {
        assert_eq!(
            pool_pod(&pool(Value::Null), "r").unwrap_err(),
            TemplateError::Missing
        );
        assert_eq!(
            pool_pod(&pool(json!({"spec": {"containers": []}})), "r").unwrap_err(),
            TemplateError::NoContainers
        );
    }
}
