//! OpenAPI v3 documents, as far as kubectl and helm need them.
//!
//! kubectl (`create`, `apply`) and helm (`install`, `upgrade`) with default flags ask, per object,
//! whether the server accepts `fieldValidation` on PATCH for its group-version-kind. They look in
//! `/openapi/v3/{api/v1 | apis/g/v}` for a path whose `patch` operation carries
//! `x-kubernetes-group-version-kind` and a `fieldValidation` query parameter. For a custom resource
//! whose group-version is missing they check the Namespace PATCH of `api/v1` instead, so that path
//! is always present. `/openapi/v2` is not served (clients tolerate a 404 there).
//!
//! The strategic-merge-patch media type is deliberately not advertised: kubectl would then look
//! for strategic-merge schemas here instead of using its compiled-in types.

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::registry::{Registry, ResourceInfo};

/// `/openapi/v3`: every served group-version with the URL of its document.
pub fn v3_root(reg: &Registry) -> Value {
    let mut paths = Map::new();
    for (key, group, version) in group_versions(reg) {
        let url = match v3_group_version(reg, &group, &version) {
            Some(doc) => format!("/openapi/v3/{key}?hash={}", document_hash(&doc)),
            None => format!("/openapi/v3/{key}"),
        };
        paths.insert(key, json!({ "serverRelativeURL": url }));
    }
    json!({ "paths": paths })
}

/// `/openapi/v3/api/v1` or `/openapi/v3/apis/{group}/{version}`; None when not served.
/// `api/v1` is always served.
pub fn v3_group_version(reg: &Registry, group: &str, version: &str) -> Option<Value> {
    let is_core_v1 = group.is_empty() && version == "v1";
    let resources: Vec<_> = reg
        .all()
        .into_iter()
        .filter(|r| r.group == group && r.version == version)
        .collect();
    if resources.is_empty() && !is_core_v1 {
        return None;
    }
    let mut paths = Map::new();
    let mut schemas = Map::new();
    for r in &resources {
        let schema_name = r.schema.as_ref().map(|s| {
            let name = schema_name(r);
            schemas.insert(name.clone(), component_schema(r, s));
            name
        });
        paths.insert(
            item_path(r),
            json!({ "patch": patch_operation(r, schema_name.as_deref()) }),
        );
    }
    if is_core_v1 && !resources.iter().any(|r| r.kind == "Namespace") {
        paths.insert(
            "/api/v1/namespaces/{name}".to_string(),
            json!({ "patch": patch_operation(&namespace_info(), None) }),
        );
    }
    let mut doc = json!({
        "openapi": "3.0.0",
        "info": { "title": "Kubernetes", "version": "v1.35.0" },
        "paths": paths,
    });
    if !schemas.is_empty() {
        doc["components"] = json!({ "schemas": schemas });
    }
    Some(doc)
}

/// Stable hash of a document, used as the `hash` query parameter clients cache by.
pub fn document_hash(doc: &Value) -> String {
    let digest = Sha256::digest(doc.to_string().as_bytes());
    hex::encode_upper(digest)
}

/// (root key, group, version) of `api/v1` and every served `apis/{g}/{v}`.
fn group_versions(reg: &Registry) -> Vec<(String, String, String)> {
    let mut out = vec![("api/v1".to_string(), String::new(), "v1".to_string())];
    for (group, versions) in reg.groups() {
        for v in versions {
            if group.is_empty() {
                if v != "v1" {
                    out.push((format!("api/{v}"), String::new(), v));
                }
            } else {
                out.push((format!("apis/{group}/{v}"), group.clone(), v));
            }
        }
    }
    out
}

fn item_path(r: &ResourceInfo) -> String {
    let prefix = if r.group.is_empty() {
        format!("/api/{}", r.version)
    } else {
        format!("/apis/{}/{}", r.group, r.version)
    };
    if r.namespaced {
        format!("{prefix}/namespaces/{{namespace}}/{}/{{name}}", r.plural)
    } else {
        format!("{prefix}/{}/{{name}}", r.plural)
    }
}

/// Go-style operation id, e.g. `patchAppsV1NamespacedDeployment`.
fn operation_id(r: &ResourceInfo) -> String {
    let group: String = if r.group.is_empty() {
        "Core".to_string()
    } else {
        r.group.split(['.', '-']).take(1).map(capitalise).collect()
    };
    let scope = if r.namespaced { "Namespaced" } else { "" };
    format!("patch{group}{}{scope}{}", capitalise(&r.version), r.kind)
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

fn query_param(name: &str, description: &str, schema: Value) -> Value {
    json!({
        "name": name,
        "in": "query",
        "description": description,
        "schema": schema,
        "uniqueItems": true
    })
}

fn path_param(name: &str) -> Value {
    json!({
        "name": name,
        "in": "path",
        "required": true,
        "description": format!("{name} of the object"),
        "schema": { "type": "string", "uniqueItems": true }
    })
}

fn patch_operation(r: &ResourceInfo, schema_name: Option<&str>) -> Value {
    let mut parameters = vec![path_param("name")];
    if r.namespaced {
        parameters.push(path_param("namespace"));
    }
    parameters.extend([
        query_param(
            "dryRun",
            "When present, modifications are not persisted.",
            json!({"type": "string"}),
        ),
        query_param(
            "fieldManager",
            "Name of the actor making the change.",
            json!({"type": "string"}),
        ),
        query_param(
            "fieldValidation",
            "How to handle unknown or duplicate fields: Ignore, Warn or Strict.",
            json!({"type": "string"}),
        ),
        query_param(
            "force",
            "Force apply requests, taking over conflicting fields.",
            json!({"type": "boolean"}),
        ),
    ]);
    let body_schema = json!({ "type": "object" });
    let mut response = json!({ "description": "OK" });
    if let Some(name) = schema_name {
        response["content"] = json!({
            "application/json": { "schema": { "$ref": format!("#/components/schemas/{name}") } }
        });
    }
    json!({
        "description": format!("partially update the specified {}", r.kind),
        "operationId": operation_id(r),
        "parameters": parameters,
        "requestBody": {
            "required": true,
            "content": {
                "application/apply-patch+yaml": { "schema": body_schema },
                "application/json-patch+json": { "schema": body_schema },
                "application/merge-patch+json": { "schema": body_schema }
            }
        },
        "responses": { "200": response.clone(), "201": response },
        "x-kubernetes-action": "patch",
        "x-kubernetes-group-version-kind": {
            "group": r.group, "version": r.version, "kind": r.kind
        }
    })
}

/// Schema component name the real server uses: reversed group, version, kind.
fn schema_name(r: &ResourceInfo) -> String {
    let reversed: Vec<&str> = r.group.split('.').rev().collect();
    format!("{}.{}.{}", reversed.join("."), r.version, r.kind)
}

fn component_schema(r: &ResourceInfo, schema: &Value) -> Value {
    let mut s = schema.clone();
    if let Value::Object(m) = &mut s {
        m.insert(
            "x-kubernetes-group-version-kind".into(),
            json!([{ "group": r.group, "version": r.version, "kind": r.kind }]),
        );
    }
    s
}

/// Namespace, for registries that were built without it.
fn namespace_info() -> ResourceInfo {
    ResourceInfo {
        group: String::new(),
        version: "v1".into(),
        kind: "Namespace".into(),
        list_kind: "NamespaceList".into(),
        plural: "namespaces".into(),
        singular: "namespace".into(),
        namespaced: false,
        short_names: vec![],
        categories: vec![],
        has_status: true,
        scale: None,
        printer_columns: vec![],
        schema: None,
        selectable_fields: vec![],
        builtin: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::standalone::apiserver::registry::resources_from_crd;

    fn registry() -> Registry {
        let reg = Registry::with_builtins();
        let crds = serde_json::to_value(crate::crd::all_crds()).unwrap();
        for crd in crds.as_array().unwrap() {
            for info in resources_from_crd(crd) {
                reg.insert(info);
            }
        }
        reg
    }

    /// What kubectl's query-param verifier looks for.
    fn supports_field_validation(doc: &Value, group: &str, version: &str, kind: &str) -> bool {
        doc["paths"].as_object().unwrap().values().any(|p| {
            let op = &p["patch"];
            op["x-kubernetes-group-version-kind"]
                == json!({"group": group, "version": version, "kind": kind})
                && op["parameters"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|q| q["name"] == "fieldValidation" && q["in"] == "query")
        })
    }

    #[test]
    fn root_lists_every_group_version_and_each_doc_covers_every_kind() {
        let reg = registry();
        let root = v3_root(&reg);
        let paths = root["paths"].as_object().unwrap();
        assert!(paths.contains_key("api/v1"));
        assert!(paths.contains_key("apis/apps/v1"));
        assert!(paths.contains_key("apis/sandbox.opensandbox.io/v1alpha1"));
        for (group, versions) in reg.groups() {
            for v in versions {
                let key = if group.is_empty() {
                    format!("api/{v}")
                } else {
                    format!("apis/{group}/{v}")
                };
                let url = paths[&key]["serverRelativeURL"].as_str().unwrap();
                assert!(
                    url.starts_with(&format!("/openapi/v3/{key}?hash=")),
                    "{url}"
                );
                let doc = v3_group_version(&reg, &group, &v).unwrap();
                for r in reg
                    .all()
                    .iter()
                    .filter(|r| r.group == group && r.version == v)
                {
                    assert!(
                        supports_field_validation(&doc, &r.group, &r.version, &r.kind),
                        "{key} {}",
                        r.kind
                    );
                }
            }
        }
        assert_eq!(
            paths.len(),
            reg.groups().iter().map(|(_, v)| v.len()).sum::<usize>()
        );
    }

    #[test]
    fn hash_is_stable_and_follows_content() {
        let reg = registry();
        assert_eq!(v3_root(&reg), v3_root(&reg));
        let before = v3_root(&reg)["paths"]["apis/sandbox.opensandbox.io/v1alpha1"].clone();
        reg.remove("sandbox.opensandbox.io", "pools");
        let after = v3_root(&reg)["paths"]["apis/sandbox.opensandbox.io/v1alpha1"].clone();
        assert_ne!(before, after);
    }

    #[test]
    fn core_v1_always_has_namespace_patch() {
        let reg = Registry::default();
        let doc = v3_group_version(&reg, "", "v1").unwrap();
        assert!(supports_field_validation(&doc, "", "v1", "Namespace"));
        assert!(v3_root(&reg)["paths"]["api/v1"].is_object());
        let full = v3_group_version(&registry(), "", "v1").unwrap();
        assert!(full["paths"]["/api/v1/namespaces/{name}"]["patch"].is_object());
        assert!(full["paths"]["/api/v1/namespaces/{namespace}/pods/{name}"]["patch"].is_object());
        assert!(v3_group_version(&reg, "nope.io", "v1").is_none());
    }

    #[test]
    fn crd_doc_has_schema_and_no_strategic_merge() {
        let reg = registry();
        let doc = v3_group_version(&reg, "sandbox.opensandbox.io", "v1alpha1").unwrap();
        let op = &doc["paths"]["/apis/sandbox.opensandbox.io/v1alpha1/namespaces/{namespace}/pools/{name}"]
            ["patch"];
        assert_eq!(op["operationId"], "patchSandboxV1alpha1NamespacedPool");
        let content = op["requestBody"]["content"].as_object().unwrap();
        assert!(!content.contains_key("application/strategic-merge-patch+json"));
        let schema = &doc["components"]["schemas"]["io.opensandbox.sandbox.v1alpha1.Pool"];
        assert_eq!(schema["type"], "object");
        assert_eq!(schema["x-kubernetes-group-version-kind"][0]["kind"], "Pool");
        assert_eq!(
            op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/io.opensandbox.sandbox.v1alpha1.Pool"
        );
        let apps = v3_group_version(&reg, "apps", "v1").unwrap();
        assert!(apps.get("components").is_none());
        assert_eq!(
            apps["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"]["operationId"],
            "patchAppsV1NamespacedDeployment"
        );
    }
}
