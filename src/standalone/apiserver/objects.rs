//! Pure rules for stamping, defaulting and comparing objects on writes.

use chrono::{SecondsFormat, Utc};
use serde_json::{Map, Value, json};

use super::registry::ResourceInfo;
use super::status::{ApiError, FieldCause};

/// The current time as the API server writes timestamps.
pub fn now_rfc3339() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Same as [`now_rfc3339`] with microseconds (MicroTime fields such as Lease renewTime).
pub fn now_micro() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// A random suffix for `generateName`, from the alphabet the real server uses.
pub fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let id = uuid::Uuid::new_v4();
    id.as_bytes()[..5]
        .iter()
        .map(|b| ALPHABET[(*b as usize) % ALPHABET.len()] as char)
        .collect()
}

/// Checks that the body's apiVersion/kind fit the resource; fills them when absent.
pub fn check_type(res: &ResourceInfo, obj: &mut Value) -> Result<(), ApiError> {
    let Some(map) = obj.as_object_mut() else {
        return Err(ApiError::bad_request(
            "the body of the request must be a JSON object",
        ));
    };
    let expected_av = res.api_version();
    match map.get("apiVersion").and_then(Value::as_str) {
        None | Some("") => {
            map.insert("apiVersion".into(), Value::String(expected_av));
        }
        Some(av) if av != expected_av => {
            // Objects of the same group may arrive in another served version; the store keeps
            // one representation per group, so only the group must agree.
            let (g, _) = super::registry::split_api_version(av);
            if g != res.group {
                return Err(ApiError::bad_request(format!(
                    "the API version in the data ({av}) does not match the expected API version ({expected_av})"
                )));
            }
            map.insert("apiVersion".into(), Value::String(expected_av));
        }
        Some(_) => {}
    }
    match map.get("kind").and_then(Value::as_str) {
        None | Some("") => {
            map.insert("kind".into(), Value::String(res.kind.clone()));
        }
        Some(k) if k != res.kind => {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({k}) does not match the expected kind ({}) of resource {}",
                res.kind,
                res.qualified_name()
            )));
        }
        Some(_) => {}
    }
    if !map.get("metadata").is_some_and(Value::is_object) {
        if map.get("metadata").is_some_and(|m| !m.is_null()) {
            return Err(ApiError::bad_request("metadata must be an object"));
        }
        map.insert("metadata".into(), Value::Object(Map::new()));
    }
    Ok(())
}

/// Fields of `metadata` only the server sets.
const SERVER_META: &[&str] = &[
    "uid",
    "resourceVersion",
    "creationTimestamp",
    "generation",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "selfLink",
];

/// Stamps a new object: name (from generateName), namespace, uid, timestamps, generation.
pub fn stamp_new(obj: &mut Value, namespace: Option<&str>) {
    let meta = &mut obj["metadata"];
    for k in SERVER_META {
        if let Some(m) = meta.as_object_mut() {
            m.remove(*k);
        }
    }
    if meta["name"].as_str().is_none_or(str::is_empty)
        && let Some(prefix) = meta["generateName"].as_str()
    {
        meta["name"] = Value::String(format!("{prefix}{}", random_suffix()));
    }
    match namespace {
        Some(ns) => meta["namespace"] = Value::String(ns.to_string()),
        None => {
            if let Some(m) = meta.as_object_mut() {
                m.remove("namespace");
            }
        }
    }
    meta["uid"] = Value::String(uuid::Uuid::new_v4().to_string());
    meta["creationTimestamp"] = Value::String(now_rfc3339());
    meta["generation"] = json!(1);
}

/// Carries the server-owned metadata of `old` into `new` (an update cannot change them).
pub fn carry_server_meta(old: &Value, new: &mut Value) {
    for k in SERVER_META {
        if *k == "resourceVersion" {
            continue;
        }
        match old["metadata"].get(*k) {
            Some(v) => new["metadata"][*k] = v.clone(),
            None => {
                if let Some(m) = new["metadata"].as_object_mut() {
                    m.remove(*k);
                }
            }
        }
    }
    for k in ["name", "namespace"] {
        match old["metadata"].get(k) {
            Some(v) => new["metadata"][k] = v.clone(),
            None => {
                if let Some(m) = new["metadata"].as_object_mut() {
                    m.remove(k);
                }
            }
        }
    }
}

/// The part of an object that counts as its spec for `generation`: everything but
/// `metadata`, `status`, `apiVersion` and `kind`.
fn spec_part(obj: &Value) -> Map<String, Value> {
    obj.as_object()
        .map(|m| {
            m.iter()
                .filter(|(k, _)| {
                    !matches!(k.as_str(), "metadata" | "status" | "apiVersion" | "kind")
                })
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// Bumps `metadata.generation` when the spec changed.
pub fn bump_generation(old: &Value, new: &mut Value) {
    let generation = old["metadata"]["generation"].as_i64().unwrap_or(1);
    let changed = spec_part(old) != spec_part(new);
    new["metadata"]["generation"] = json!(if changed { generation + 1 } else { generation });
}

/// True when two stored states are equal apart from resourceVersion and managedFields times.
pub fn same_content(old: &Value, new: &Value) -> bool {
    fn equal_except(a: &Map<String, Value>, b: &Map<String, Value>, skip: &str) -> bool {
        let keys = |m: &Map<String, Value>| m.keys().filter(|k| *k != skip).count();
        keys(a) == keys(b)
            && a.iter()
                .filter(|(k, _)| *k != skip)
                .all(|(k, v)| b.get(k) == Some(v))
    }
    match (old.as_object(), new.as_object()) {
        (Some(o), Some(n)) => {
            o.len() == n.len()
                && o.iter().all(|(k, ov)| match (n.get(k), k.as_str()) {
                    (Some(Value::Object(nm)), "metadata") => ov
                        .as_object()
                        .is_some_and(|om| equal_except(om, nm, "resourceVersion")),
                    (Some(nv), _) => ov == nv,
                    (None, _) => false,
                })
        }
        _ => old == new,
    }
}

/// Applies the real server's create-time defaults for the built-in kinds we care about.
pub fn default_builtin(res: &ResourceInfo, obj: &mut Value) {
    if !res.builtin {
        return;
    }
    match (res.group.as_str(), res.kind.as_str()) {
        ("", "Pod") => {
            let spec = &mut obj["spec"];
            if spec.is_object() {
                for (k, v) in [
                    ("restartPolicy", json!("Always")),
                    ("dnsPolicy", json!("ClusterFirst")),
                    ("schedulerName", json!("default-scheduler")),
                    ("terminationGracePeriodSeconds", json!(30)),
                    ("securityContext", json!({})),
                ] {
                    if spec.get(k).is_none() {
                        spec[k] = v;
                    }
                }
                if let Some(containers) = spec["containers"].as_array_mut() {
                    for c in containers {
                        if c.get("terminationMessagePath").is_none() {
                            c["terminationMessagePath"] = json!("/dev/termination-log");
                        }
                        if c.get("terminationMessagePolicy").is_none() {
                            c["terminationMessagePolicy"] = json!("File");
                        }
                        if c.get("imagePullPolicy").is_none() {
                            let latest = c["image"]
                                .as_str()
                                .is_some_and(|i| i.ends_with(":latest") || !i.contains(':'));
                            c["imagePullPolicy"] =
                                json!(if latest { "Always" } else { "IfNotPresent" });
                        }
                    }
                }
            }
        }
        ("", "Service") => {
            let spec = &mut obj["spec"];
            if spec.is_object() {
                if spec.get("type").is_none() {
                    spec["type"] = json!("ClusterIP");
                }
                if spec.get("clusterIP").is_none() && spec["type"] != json!("ExternalName") {
                    let b = uuid::Uuid::new_v4().as_bytes()[..2].to_vec();
                    let ip = format!("10.96.{}.{}", b[0], b[1].max(1));
                    spec["clusterIP"] = json!(ip);
                    spec["clusterIPs"] = json!([ip]);
                }
                if spec.get("sessionAffinity").is_none() {
                    spec["sessionAffinity"] = json!("None");
                }
            }
        }
        ("", "Namespace") => {
            obj["status"] = json!({ "phase": "Active" });
        }
        ("", "Secret") if obj.get("type").is_none() => {
            obj["type"] = json!("Opaque");
        }
        _ => {}
    }
}

/// The status a created object starts with.
pub fn initial_status(res: &ResourceInfo, obj: &mut Value) {
    if !res.has_status {
        return;
    }
    match (res.group.as_str(), res.kind.as_str()) {
        ("", "Pod") => {
            if !obj["status"].is_object() || obj["status"]["phase"].is_null() {
                obj["status"] = json!({ "phase": "Pending", "qosClass": "BestEffort" });
            }
        }
        // The test kubelet and the standalone node agent write pod status; other built-ins keep
        // what the client sent so that helm's readiness checks can be satisfied by fixtures.
        _ if res.builtin => {}
        // Custom resources with a status subresource ignore status on create.
        _ => {
            if let Some(m) = obj.as_object_mut() {
                m.remove("status");
            }
        }
    }
}

/// Validation that applies to every object regardless of kind: the name.
pub fn require_name(obj: &Value) -> Result<(), FieldCause> {
    match obj["metadata"]["name"].as_str() {
        Some(n) if !n.is_empty() => Ok(()),
        _ => Err(FieldCause::new(
            "FieldValueRequired",
            "metadata.name",
            "Required value: name or generateName is required",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_bumps_only_on_spec() {
        let old = json!({"metadata": {"generation": 3}, "spec": {"a": 1}, "status": {"x": 1}});
        let mut new =
            json!({"metadata": {"labels": {"l": "v"}}, "spec": {"a": 1}, "status": {"x": 2}});
        bump_generation(&old, &mut new);
        assert_eq!(new["metadata"]["generation"], 3);
        let mut new = json!({"metadata": {}, "spec": {"a": 2}});
        bump_generation(&old, &mut new);
        assert_eq!(new["metadata"]["generation"], 4);
    }

    #[test]
    fn generate_name() {
        let mut o = json!({"metadata": {"generateName": "pool-"}});
        stamp_new(&mut o, Some("default"));
        let name = o["metadata"]["name"].as_str().unwrap();
        assert!(name.starts_with("pool-") && name.len() == 10);
        assert_eq!(o["metadata"]["generation"], 1);
    }

    #[test]
    fn same_content_ignores_only_the_resource_version() {
        let a = json!({"metadata": {"name": "a", "resourceVersion": "1", "labels": {"x": "1"}}, "spec": {"n": 1}});
        let mut b = a.clone();
        b["metadata"]["resourceVersion"] = json!("2");
        assert!(same_content(&a, &b));
        b["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("resourceVersion");
        assert!(same_content(&a, &b));
        b["metadata"]["labels"]["x"] = json!("2");
        assert!(!same_content(&a, &b));
        let mut c = a.clone();
        c["spec"]["n"] = json!(2);
        assert!(!same_content(&a, &c));
        let mut d = a.clone();
        d["metadata"]["uid"] = json!("u");
        assert!(!same_content(&a, &d));
        assert!(!same_content(&a, &json!({"spec": {"n": 1}})));
    }
}
