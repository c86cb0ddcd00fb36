//! CustomResourceDefinition lifecycle: acceptance, establishment and removal.

use std::sync::Arc;

use serde_json::{Value, json};

use super::super::objects::now_rfc3339;
use super::super::server::Core;
use super::super::status::{ApiError, FieldCause};
use super::super::store::Mutation;

/// Checks a CRD and gives it the status the real server reports once it is served.
pub fn prepare_crd(obj: &mut Value) -> Result<(), ApiError> {
    let name = obj["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let spec = &obj["spec"];
    let group = spec["group"].as_str().unwrap_or_default();
    let plural = spec["names"]["plural"].as_str().unwrap_or_default();
    let mut causes = Vec::new();
    if group.is_empty() {
        causes.push(FieldCause::new(
            "FieldValueRequired",
            "spec.group",
            "Required value",
        ));
    }
    if plural.is_empty() {
        causes.push(FieldCause::new(
            "FieldValueRequired",
            "spec.names.plural",
            "Required value",
        ));
    }
    if spec["names"]["kind"]
        .as_str()
        .unwrap_or_default()
        .is_empty()
    {
        causes.push(FieldCause::new(
            "FieldValueRequired",
            "spec.names.kind",
            "Required value",
        ));
    }
    if !matches!(spec["scope"].as_str(), Some("Namespaced") | Some("Cluster")) {
        causes.push(FieldCause::new(
            "FieldValueNotSupported",
            "spec.scope",
            format!(
                "Unsupported value: {}: supported values: \"Cluster\", \"Namespaced\"",
                spec["scope"]
            ),
        ));
    }
    let versions = spec["versions"].as_array().cloned().unwrap_or_default();
    if versions.is_empty() {
        causes.push(FieldCause::new(
            "FieldValueRequired",
            "spec.versions",
            "Required value: must have exactly one version marked as storage version",
        ));
    }
    if !group.is_empty() && !plural.is_empty() && name != format!("{plural}.{group}") {
        causes.push(FieldCause::new(
            "FieldValueInvalid",
            "metadata.name",
            format!("Invalid value: \"{name}\": must be spec.names.plural+\".\"+spec.group"),
        ));
    }
    if !causes.is_empty() {
        return Err(ApiError::new(
            422,
            "Invalid",
            format!(
                "CustomResourceDefinition.apiextensions.k8s.io \"{name}\" is invalid: {}",
                causes
                    .iter()
                    .map(|c| format!("{}: {}", c.field, c.message))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    let storage: Vec<Value> = versions
        .iter()
        .filter(|v| v["storage"] == json!(true))
        .filter_map(|v| v.get("name").cloned())
        .collect();
    let now = now_rfc3339();
    let keep_time = |t: &str| -> String {
        obj["status"]["conditions"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["type"] == t))
            .and_then(|c| c["lastTransitionTime"].as_str())
            .map(str::to_string)
            .unwrap_or_else(|| now.clone())
    };
    let status = json!({
        "acceptedNames": spec["names"].clone(),
        "storedVersions": storage,
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
             "message": "no conflicts found", "lastTransitionTime": keep_time("NamesAccepted")},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
             "message": "the initial names have been accepted", "lastTransitionTime": keep_time("Established")}
        ]
    });
    obj["status"] = status;
    Ok(())
}

/// Removes a deleted CRD's resources from the registry and deletes all its objects.
pub fn remove_crd(core: &Arc<Core>, crd: &Value) {
    let group = crd["spec"]["group"].as_str().unwrap_or_default();
    let plural = crd["spec"]["names"]["plural"].as_str().unwrap_or_default();
    let infos: Vec<_> = core
        .registry
        .all()
        .into_iter()
        .filter(|r| r.group == group && r.plural == plural)
        .collect();
    core.registry.remove(group, plural);
    if let Some(res) = infos.first() {
        let (items, _) = core.store.list(&res.key(), None);
        for obj in items {
            let key = (obj.namespace().to_string(), obj.name().to_string());
            let _ = core.store.commit(
                &res.key(),
                &key,
                Some(&obj),
                Mutation::Delete(obj.value.clone()),
            );
            core.gc.enqueue_owner_gone(obj.uid());
        }
    }
}
