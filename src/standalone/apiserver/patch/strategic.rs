//! Strategic merge patch (`application/strategic-merge-patch+json`) for built-in kinds.
//!
//! Maps merge recursively and `null` deletes a key; lists with a merge key merge element-wise,
//! merge-strategy scalar lists merge as sets, other lists are replaced. Directives: `$patch`
//! (`replace`, `delete`, `merge`), `$setElementOrder/<f>`, `$deleteFromPrimitiveList/<f>`,
//! `$retainKeys`.

use serde_json::{Map, Value};

use super::PatchError;
use super::lists::{Ctx, RootKind, Strategy, child_ctx, list_info};

const PATCH: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ORDER: &str = "$setElementOrder/";
const DELETE_PRIMITIVE: &str = "$deleteFromPrimitiveList/";

/// Applies a strategic merge patch to an object of the built-in `kind`.
pub fn strategic_merge(original: &Value, patch: &Value, kind: &str) -> Result<Value, PatchError> {
    merge_root(original, patch, Ctx::Root(RootKind::of(kind)))
}

/// Strategic merge over a Pod-shaped value: BatchSandbox `shardPatches` (pod templates) and
/// `shardTaskPatches` (`{"spec":{"process":{"env":[...]}}}`, env merged by name).
pub fn apply_shard_patch(original: &Value, patch: &Value) -> Result<Value, PatchError> {
    merge_root(original, patch, Ctx::Root(RootKind::Pod))
}

fn merge_root(original: &Value, patch: &Value, ctx: Ctx) -> Result<Value, PatchError> {
    let Value::Object(patch) = patch else {
        return Err(PatchError::Invalid(
            "a strategic merge patch must be a JSON object".into(),
        ));
    };
    let empty = Map::new();
    let original = original.as_object().unwrap_or(&empty);
    Ok(merge_map(original, patch, ctx)?
        .map(Value::Object)
        .unwrap_or_else(|| Value::Object(Map::new())))
}

/// Merges `patch` into `original`; `None` when the patch deletes the whole map.
fn merge_map(
    original: &Map<String, Value>,
    patch: &Map<String, Value>,
    ctx: Ctx,
) -> Result<Option<Map<String, Value>>, PatchError> {
    match patch.get(PATCH) {
        None => {}
        Some(Value::String(d)) if d == "merge" => {}
        Some(Value::String(d)) if d == "replace" => {
            let mut replaced = patch.clone();
            replaced.remove(PATCH);
            return Ok(Some(replaced));
        }
        Some(Value::String(d)) if d == "delete" => return Ok(None),
        Some(other) => {
            return Err(PatchError::Invalid(format!(
                "Unknown patch type: {other} in map"
            )));
        }
    }
    let mut result = original.clone();
    if let Some(keys) = patch.get(RETAIN_KEYS) {
        retain_keys(&mut result, keys)?;
    }
    for (k, v) in patch {
        if let Some(field) = k.strip_prefix(DELETE_PRIMITIVE) {
            delete_from_primitive_list(&mut result, field, v)?;
        }
    }
    for (k, v) in patch {
        if k.starts_with('$') {
            continue;
        }
        merge_field(&mut result, k, v, ctx)?;
    }
    for (k, v) in patch {
        if let Some(field) = k.strip_prefix(SET_ORDER) {
            set_element_order(&mut result, field, v, ctx)?;
        }
    }
    Ok(Some(result))
}

fn merge_field(
    result: &mut Map<String, Value>,
    key: &str,
    value: &Value,
    ctx: Ctx,
) -> Result<(), PatchError> {
    match value {
        Value::Null => {
            result.remove(key);
        }
        Value::Object(p) => {
            let empty = Map::new();
            let orig = result.get(key).and_then(Value::as_object).unwrap_or(&empty);
            // `$patch: delete` on a map leaves an empty map, as kube-apiserver does.
            let merged = merge_map(orig, p, child_ctx(ctx, key))?.unwrap_or_default();
            result.insert(key.to_string(), Value::Object(merged));
        }
        Value::Array(p) => {
            let merged = merge_list(result.get(key), p, ctx, key)?;
            result.insert(key.to_string(), merged);
        }
        scalar => {
            result.insert(key.to_string(), scalar.clone());
        }
    }
    Ok(())
}

/// `$retainKeys`: keys of the original not listed are cleared before merging.
fn retain_keys(result: &mut Map<String, Value>, keys: &Value) -> Result<(), PatchError> {
    let Value::Array(keys) = keys else {
        return Err(PatchError::Invalid("$retainKeys must be a list".into()));
    };
    let keep: Vec<&str> = keys.iter().filter_map(Value::as_str).collect();
    result.retain(|k, _| keep.contains(&k.as_str()));
    Ok(())
}

fn delete_from_primitive_list(
    result: &mut Map<String, Value>,
    field: &str,
    values: &Value,
) -> Result<(), PatchError> {
    let Value::Array(values) = values else {
        return Err(PatchError::Invalid(format!(
            "{DELETE_PRIMITIVE}{field} must be a list"
        )));
    };
    if let Some(Value::Array(list)) = result.get_mut(field) {
        list.retain(|e| !values.contains(e));
    }
    Ok(())
}

fn is_directive(elem: &Value, directive: &str) -> bool {
    elem.get(PATCH).and_then(Value::as_str) == Some(directive)
}

fn merge_list(
    original: Option<&Value>,
    patch: &[Value],
    ctx: Ctx,
    field: &str,
) -> Result<Value, PatchError> {
    let elem_ctx = child_ctx(ctx, field);
    if patch.iter().any(|e| is_directive(e, "replace")) {
        let kept = patch
            .iter()
            .filter(|e| !is_directive(e, "replace"))
            .map(|e| strip_directives(e, elem_ctx))
            .collect::<Result<Vec<_>, _>>()?;
        return Ok(Value::Array(kept));
    }
    let original: &[Value] = original
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let strategy = list_info(ctx, field)
        .map(|i| i.strategy)
        .unwrap_or(Strategy::Replace);
    match strategy {
        Strategy::Merge(key) => merge_keyed(original, patch, key, elem_ctx),
        Strategy::PrimitiveSet => Ok(Value::Array(union(original, patch))),
        Strategy::Replace => Ok(Value::Array(patch.to_vec())),
    }
}

fn union(original: &[Value], patch: &[Value]) -> Vec<Value> {
    let mut out = original.to_vec();
    for p in patch {
        if !p.is_object() && !out.contains(p) {
            out.push(p.clone());
        }
    }
    out
}

fn strip_directives(elem: &Value, ctx: Ctx) -> Result<Value, PatchError> {
    match elem {
        Value::Object(m) => Ok(merge_map(&Map::new(), m, ctx)?
            .map(Value::Object)
            .unwrap_or(Value::Null)),
        other => Ok(other.clone()),
    }
}

fn merge_keyed(
    original: &[Value],
    patch: &[Value],
    key: &str,
    elem_ctx: Ctx,
) -> Result<Value, PatchError> {
    let mut out = original.to_vec();
    for p in patch {
        let Value::Object(pm) = p else {
            out.push(p.clone());
            continue;
        };
        let Some(kv) = pm.get(key) else {
            return Err(PatchError::Invalid(format!(
                "map: {p} does not contain declared merge key: {key}"
            )));
        };
        let pos = out.iter().position(|e| e.get(key) == Some(kv));
        match pm.get(PATCH).and_then(Value::as_str) {
            Some("delete") => {
                out.retain(|e| e.get(key) != Some(kv));
                continue;
            }
            Some("merge") => {
                return Err(PatchError::Invalid(
                    "merging lists cannot yet be specified in the patch".into(),
                ));
            }
            _ => {}
        }
        let empty = Map::new();
        let base = pos.and_then(|i| out[i].as_object()).unwrap_or(&empty);
        let merged = merge_map(base, pm, elem_ctx)?;
        match (pos, merged) {
            (Some(i), Some(m)) => out[i] = Value::Object(m),
            (Some(i), None) => {
                out.remove(i);
            }
            (None, Some(m)) => out.push(Value::Object(m)),
            (None, None) => {}
        }
    }
    Ok(Value::Array(out))
}

/// `$setElementOrder/<field>`: the listed elements take that order; elements the list does not
/// name (present only on the server) stay right after the element that preceded them.
fn set_element_order(
    result: &mut Map<String, Value>,
    field: &str,
    order: &Value,
    ctx: Ctx,
) -> Result<(), PatchError> {
    let Value::Array(order) = order else {
        return Err(PatchError::Invalid(format!(
            "{SET_ORDER}{field} must be a list"
        )));
    };
    let Some(Value::Array(list)) = result.get_mut(field) else {
        return Ok(());
    };
    let key = match list_info(ctx, field).map(|i| i.strategy) {
        Some(Strategy::Merge(k)) => Some(k),
        _ => None,
    };
    let same = |elem: &Value, o: &Value| match key {
        Some(k) => elem.get(k).is_some() && elem.get(k) == o.get(k),
        None => elem == o,
    };
    // (index in the merged list, element)
    let mut rest: Vec<Option<(usize, Value)>> = list.drain(..).enumerate().map(Some).collect();
    let mut ordered: Vec<(usize, Value)> = Vec::with_capacity(rest.len());
    for o in order {
        if let Some(slot) = rest
            .iter_mut()
            .find(|s| s.as_ref().is_some_and(|(_, e)| same(e, o)))
        {
            ordered.extend(slot.take());
        }
    }
    for (idx, elem) in rest.into_iter().flatten() {
        let after = ordered
            .iter()
            .enumerate()
            .filter(|(_, (i, _))| *i < idx)
            .max_by_key(|(_, (i, _))| *i)
            .map(|(pos, _)| pos + 1)
            .unwrap_or(0);
        ordered.insert(after, (idx, elem));
    }
    *list = ordered.into_iter().map(|(_, e)| e).collect();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deploy(containers: Value) -> Value {
        json!({"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d"},
            "spec":{"replicas":1,"template":{"metadata":{"labels":{"app":"x"}},
            "spec":{"containers":containers}}}})
    }

    #[test]
    fn maps_merge_and_null_deletes() {
        let orig = json!({"metadata":{"labels":{"a":"1","b":"2"}},"data":{"x":"1"}});
        let patch = json!({"metadata":{"labels":{"a":null,"c":"3"}},"data":{"y":"2"}});
        let out = strategic_merge(&orig, &patch, "ConfigMap").unwrap();
        assert_eq!(
            out,
            json!({"metadata":{"labels":{"b":"2","c":"3"}},"data":{"x":"1","y":"2"}})
        );
    }

    #[test]
    fn containers_merge_by_name_in_pod_template() {
        let orig = deploy(json!([{"name":"a","image":"a:1"},{"name":"b","image":"b:1"}]));
        let patch = json!({"spec":{"template":{"spec":{"containers":[{"name":"b","image":"b:2"},{"name":"c","image":"c:1"}]}}}});
        let out = strategic_merge(&orig, &patch, "Deployment").unwrap();
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"],
            json!([{"name":"a","image":"a:1"},{"name":"b","image":"b:2"},{"name":"c","image":"c:1"}])
        );
        assert_eq!(out["spec"]["replicas"], 1);
    }

    #[test]
    fn kubectl_delete_element_and_set_element_order() {
        // What kubectl client-side apply sends after removing container b and adding c first.
        let orig = deploy(json!([{"name":"a","image":"a:1"},{"name":"b","image":"b:1"}]));
        let patch = json!({"spec":{"template":{"spec":{
            "$setElementOrder/containers":[{"name":"c"},{"name":"a"}],
            "containers":[{"name":"c","image":"c:1"},{"$patch":"delete","name":"b"}]}}}});
        let out = strategic_merge(&orig, &patch, "Deployment").unwrap();
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"],
            json!([{"name":"c","image":"c:1"},{"name":"a","image":"a:1"}])
        );
    }

    #[test]
    fn server_only_elements_keep_their_place_under_set_element_order() {
        let orig = deploy(json!([{"name":"x"},{"name":"a"},{"name":"injected"},{"name":"b"}]));
        let patch = json!({"spec":{"template":{"spec":{
            "$setElementOrder/containers":[{"name":"b"},{"name":"a"},{"name":"x"}],
            "containers":[{"name":"b","image":"b:2"}]}}}});
        let out = strategic_merge(&orig, &patch, "Deployment").unwrap();
        let names: Vec<&str> = out["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["b", "a", "injected", "x"]);
    }

    #[test]
    fn env_ports_and_mounts_merge_by_their_keys() {
        let orig = json!({"spec":{"containers":[{"name":"a",
            "env":[{"name":"X","value":"1"},{"name":"Y","value":"2"}],
            "ports":[{"containerPort":80,"name":"http"}],
            "volumeMounts":[{"mountPath":"/a","name":"v1"}],
            "args":["x","y"]}]}});
        let patch = json!({"spec":{"containers":[{"name":"a",
            "$setElementOrder/env":[{"name":"Y"},{"name":"X"}],
            "env":[{"name":"X","value":"9"}],
            "ports":[{"containerPort":80,"protocol":"TCP"},{"containerPort":443}],
            "volumeMounts":[{"mountPath":"/a","readOnly":true}],
            "args":["z"]}]}});
        let out = strategic_merge(&orig, &patch, "Pod").unwrap();
        let c = &out["spec"]["containers"][0];
        assert_eq!(
            c["env"],
            json!([{"name":"Y","value":"2"},{"name":"X","value":"9"}])
        );
        assert_eq!(
            c["ports"],
            json!([{"containerPort":80,"name":"http","protocol":"TCP"},{"containerPort":443}])
        );
        assert_eq!(
            c["volumeMounts"],
            json!([{"mountPath":"/a","name":"v1","readOnly":true}])
        );
        assert_eq!(c["args"], json!(["z"]));
    }

    #[test]
    fn service_ports_by_port_and_conditions_by_type() {
        let orig = json!({"spec":{"ports":[{"port":80,"targetPort":8080}]},
            "status":{"conditions":[{"type":"A","status":"True"}]}});
        let patch = json!({"spec":{"ports":[{"port":80,"name":"http"}]},
            "status":{"conditions":[{"type":"B","status":"False"}]}});
        let out = strategic_merge(&orig, &patch, "Service").unwrap();
        assert_eq!(
            out["spec"]["ports"],
            json!([{"port":80,"targetPort":8080,"name":"http"}])
        );
        assert_eq!(out["status"]["conditions"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn finalizers_merge_as_set_and_delete_from_primitive_list() {
        let orig = json!({"metadata":{"finalizers":["a","b"]}});
        let patch = json!({"metadata":{"finalizers":["b","c"]}});
        let out = strategic_merge(&orig, &patch, "Pod").unwrap();
        assert_eq!(out["metadata"]["finalizers"], json!(["a", "b", "c"]));
        let patch = json!({"metadata":{"$deleteFromPrimitiveList/finalizers":["a"]}});
        let out = strategic_merge(&out, &patch, "Pod").unwrap();
        assert_eq!(out["metadata"]["finalizers"], json!(["b", "c"]));
    }

    #[test]
    fn owner_references_merge_by_uid() {
        let orig = json!({"metadata":{"ownerReferences":[{"uid":"1","name":"a"}]}});
        let patch = json!({"metadata":{"ownerReferences":[{"uid":"2","name":"b"},{"uid":"1","controller":true}]}});
        let out = strategic_merge(&orig, &patch, "ConfigMap").unwrap();
        assert_eq!(
            out["metadata"]["ownerReferences"],
            json!([{"uid":"1","name":"a","controller":true},{"uid":"2","name":"b"}])
        );
    }

    #[test]
    fn lists_without_strategy_are_replaced() {
        let orig = json!({"spec":{"tolerations":[{"key":"a"}]},"rules":[{"verbs":["get"]}]});
        let patch = json!({"spec":{"tolerations":[{"key":"b"}]},"rules":[{"verbs":["list"]}]});
        let out = strategic_merge(&orig, &patch, "Pod").unwrap();
        assert_eq!(out["spec"]["tolerations"], json!([{"key":"b"}]));
        assert_eq!(out["rules"], json!([{"verbs":["list"]}]));
    }

    #[test]
    fn patch_replace_on_map_and_list() {
        let orig = json!({"metadata":{"labels":{"a":"1"}},"spec":{"containers":[{"name":"a"},{"name":"b"}]}});
        let patch = json!({"metadata":{"labels":{"$patch":"replace","z":"9"}},
            "spec":{"containers":[{"name":"c"},{"$patch":"replace"}]}});
        let out = strategic_merge(&orig, &patch, "Pod").unwrap();
        assert_eq!(out["metadata"]["labels"], json!({"z":"9"}));
        assert_eq!(out["spec"]["containers"], json!([{"name":"c"}]));
    }

    #[test]
    fn patch_delete_on_a_map_and_replace_on_a_list_element() {
        let orig = json!({"spec":{"affinity":{"nodeAffinity":{}},"containers":[{"name":"a","image":"x"},{"name":"b"}]}});
        // A `$patch: replace` element replaces the whole list by the patch's other elements
        // (the directive element itself is dropped), as kube-apiserver does.
        let patch = json!({"spec":{"affinity":{"$patch":"delete"},
            "containers":[{"name":"c"},{"name":"a","image":"y","$patch":"replace"}]}});
        let out = strategic_merge(&orig, &patch, "Pod").unwrap();
        assert_eq!(out["spec"]["affinity"], json!({}));
        assert_eq!(out["spec"]["containers"], json!([{"name":"c"}]));
    }

    #[test]
    fn delete_element_of_a_missing_key_is_a_no_op() {
        let orig = json!({"spec":{"containers":[{"name":"a"}]}});
        let patch = json!({"spec":{"containers":[{"name":"zz","$patch":"delete"}]}});
        let out = strategic_merge(&orig, &patch, "Pod").unwrap();
        assert_eq!(out, orig);
    }

    #[test]
    fn patch_merge_directive_is_a_plain_merge() {
        let orig = json!({"data":{"a":"1"}});
        let patch = json!({"data":{"$patch":"merge","b":"2"}});
        let out = strategic_merge(&orig, &patch, "ConfigMap").unwrap();
        assert_eq!(out["data"], json!({"a":"1","b":"2"}));
    }

    #[test]
    fn retain_keys_clears_other_fields() {
        let orig =
            json!({"spec":{"strategy":{"type":"RollingUpdate","rollingUpdate":{"maxSurge":1}}}});
        let patch = json!({"spec":{"strategy":{"$retainKeys":["type"],"type":"Recreate"}}});
        let out = strategic_merge(&orig, &patch, "Deployment").unwrap();
        assert_eq!(out["spec"]["strategy"], json!({"type":"Recreate"}));
    }

    #[test]
    fn merge_directive_inside_a_list_is_an_error() {
        let orig = json!({"spec":{"containers":[{"name":"a"}]}});
        let patch = json!({"spec":{"containers":[{"name":"a","$patch":"merge"}]}});
        assert!(strategic_merge(&orig, &patch, "Pod").is_err());
        let patch = json!({"spec":{"$patch":"bogus"}});
        assert!(strategic_merge(&orig, &patch, "Pod").is_err());
    }

    #[test]
    fn missing_merge_key_is_an_error() {
        let orig = json!({"spec":{"containers":[]}});
        let patch = json!({"spec":{"containers":[{"image":"x"}]}});
        assert!(strategic_merge(&orig, &patch, "Pod").is_err());
        assert!(strategic_merge(&orig, &json!([1]), "Pod").is_err());
    }

    #[test]
    fn cronjob_pod_template_volumes() {
        let orig = json!({"spec":{"jobTemplate":{"spec":{"template":{"spec":{"volumes":[{"name":"a","emptyDir":{}}]}}}}}});
        let patch = json!({"spec":{"jobTemplate":{"spec":{"template":{"spec":{"volumes":[{"name":"b","emptyDir":{}}]}}}}}});
        let out = strategic_merge(&orig, &patch, "CronJob").unwrap();
        let vols = &out["spec"]["jobTemplate"]["spec"]["template"]["spec"]["volumes"];
        assert_eq!(vols.as_array().unwrap().len(), 2);
    }

    #[test]
    fn shard_patches_on_pod_template_and_task_template() {
        let template = json!({"metadata":{"labels":{"a":"1"}},"spec":{"containers":[{"name":"main","image":"x","env":[{"name":"A","value":"1"}]}]}});
        let patch = json!({"metadata":{"labels":{"shard":"0"}},"spec":{"containers":[{"name":"main","env":[{"name":"SHARD","value":"0"}]}]}});
        let out = apply_shard_patch(&template, &patch).unwrap();
        assert_eq!(out["metadata"]["labels"], json!({"a":"1","shard":"0"}));
        assert_eq!(
            out["spec"]["containers"][0]["env"],
            json!([{"name":"A","value":"1"},{"name":"SHARD","value":"0"}])
        );
        let task = json!({"spec":{"process":{"command":["run"],"env":[{"name":"A","value":"1"}]},"timeoutSeconds":5}});
        let patch =
            json!({"spec":{"process":{"env":[{"name":"A","value":"2"},{"name":"B","value":"3"}]}}});
        let out = apply_shard_patch(&task, &patch).unwrap();
        assert_eq!(
            out["spec"]["process"]["env"],
            json!([{"name":"A","value":"2"},{"name":"B","value":"3"}])
        );
        assert_eq!(out["spec"]["timeoutSeconds"], 5);
    }

    #[test]
    fn task_template_sample_from_the_upstream_controller() {
        let task = json!({"spec":{"process":{"command":["sleep"],"args":["infinite"],
            "env":[{"name":"foo","value":"bar"}]}}});
        let patch =
            json!({"spec":{"process":{"args":["3600"],"env":[{"name":"hello","value":"world"}]}}});
        let out = apply_shard_patch(&task, &patch).unwrap();
        assert_eq!(
            out["spec"]["process"],
            json!({"command":["sleep"],"args":["3600"],
                "env":[{"name":"foo","value":"bar"},{"name":"hello","value":"world"}]})
        );
    }

    #[test]
    fn webhooks_merge_by_name() {
        let orig = json!({"webhooks":[{"name":"a","sideEffects":"None"}]});
        let patch = json!({"webhooks":[{"name":"a","timeoutSeconds":5}]});
        let out = strategic_merge(&orig, &patch, "ValidatingWebhookConfiguration").unwrap();
        assert_eq!(
            out["webhooks"],
            json!([{"name":"a","sideEffects":"None","timeoutSeconds":5}])
        );
    }

    #[test]
    fn statefulset_and_job_templates_merge_like_pods() {
        for kind in [
            "StatefulSet",
            "DaemonSet",
            "ReplicaSet",
            "Job",
            "ReplicationController",
        ] {
            let orig = json!({"spec":{"template":{"spec":{"initContainers":[{"name":"i","image":"1"}],
                "imagePullSecrets":[{"name":"s1"}]}}}});
            let patch = json!({"spec":{"template":{"spec":{"initContainers":[{"name":"i","image":"2"}],
                "imagePullSecrets":[{"name":"s2"}]}}}});
            let out = strategic_merge(&orig, &patch, kind).unwrap();
            let spec = &out["spec"]["template"]["spec"];
            assert_eq!(
                spec["initContainers"],
                json!([{"name":"i","image":"2"}]),
                "{kind}"
            );
            assert_eq!(
                spec["imagePullSecrets"].as_array().unwrap().len(),
                2,
                "{kind}"
            );
        }
    }

    #[test]
    fn new_keys_from_patch_lose_their_directives() {
        let orig = json!({"spec":{}});
        let patch =
            json!({"spec":{"containers":[{"name":"a","env":[{"name":"X","$patch":"delete"}]}]}});
        let out = strategic_merge(&orig, &patch, "Pod").unwrap();
        assert_eq!(out["spec"]["containers"], json!([{"name":"a","env":[]}]));
    }

    mod props {
        use super::super::strategic_merge;
        use proptest::prelude::*;
        use serde_json::{Value, json};

        fn arb_json() -> impl Strategy<Value = Value> {
            let leaf = prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::Bool),
                any::<i32>().prop_map(|i| json!(i)),
                "[a-z]{0,4}".prop_map(Value::String),
            ];
            leaf.prop_recursive(4, 32, 4, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                    prop::collection::btree_map("[a-z]{1,3}", inner, 0..4)
                        .prop_map(|m| Value::Object(m.into_iter().collect())),
                ]
            })
        }

        proptest! {
            #[test]
            fn empty_patch_is_identity(fields in prop::collection::btree_map("[a-z]{1,6}", arb_json(), 0..5),
                                       kind in prop::sample::select(vec!["Pod","Deployment","Service","ConfigMap"])) {
                let orig = Value::Object(fields.into_iter().collect());
                let out = strategic_merge(&orig, &json!({}), kind).unwrap();
                prop_assert_eq!(out, orig);
            }
        }
    }
}
