//! Server-side apply and managedFields tests.

use serde_json::{Value, json};

use super::apply::{ApplyError, ApplyOptions, apply, record_update};
use super::lists::{BuiltinLists, ListSemantics, ListType, PathElement, SchemaLists};

const T0: &str = "2026-01-01T00:00:00Z";
const T1: &str = "2026-01-01T00:01:00Z";
const T2: &str = "2026-01-01T00:02:00Z";

fn opts(manager: &str, force: bool, now: &str) -> ApplyOptions {
    ApplyOptions {
        manager: manager.into(),
        force,
        api_version: "v1".into(),
        subresource: None,
        now: now.into(),
    }
}

fn cm(data: Value) -> Value {
    json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c","namespace":"default"},"data":data})
}

fn cm_lists() -> BuiltinLists {
    BuiltinLists::new("ConfigMap")
}

fn entries(obj: &Value) -> Vec<Value> {
    obj["metadata"]["managedFields"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn entry<'a>(obj: &'a Value, manager: &str) -> Option<&'a Value> {
    obj["metadata"]["managedFields"]
        .as_array()?
        .iter()
        .find(|e| e["manager"] == manager)
}

/// A stored object after the server assigned its own metadata.
fn stored(mut obj: Value) -> Value {
    obj["metadata"]["resourceVersion"] = json!("7");
    obj["metadata"]["uid"] = json!("u-1");
    obj["metadata"]["creationTimestamp"] = json!(T0);
    obj
}

fn apply_ok(live: Option<&Value>, applied: &Value, o: &ApplyOptions) -> Value {
    apply(live, applied, o, &cm_lists()).unwrap()
}

#[test]
fn create_via_apply_records_the_apply_entry() {
    let mut applied = cm(json!({"a":"1"}));
    applied["metadata"]["labels"] = json!({"app":"x"});
    let out = apply_ok(None, &applied, &opts("kubectl", false, T0));
    assert_eq!(out["data"], json!({"a":"1"}));
    assert_eq!(
        entries(&out),
        vec![json!({
            "manager":"kubectl","operation":"Apply","apiVersion":"v1","time":T0,
            "fieldsType":"FieldsV1",
            "fieldsV1":{"f:data":{"f:a":{}},"f:metadata":{"f:labels":{"f:app":{}}}}
        })]
    );
}

#[test]
fn reapply_without_a_field_removes_it() {
    let live = stored(apply_ok(
        None,
        &cm(json!({"a":"1","b":"2"})),
        &opts("m", false, T0),
    ));
    let out = apply_ok(Some(&live), &cm(json!({"a":"1"})), &opts("m", false, T1));
    assert_eq!(out["data"], json!({"a":"1"}));
    assert_eq!(
        entry(&out, "m").unwrap()["fieldsV1"],
        json!({"f:data":{"f:a":{}}})
    );
    assert_eq!(out["metadata"]["uid"], "u-1");
    // Dropping the whole map removes it.
    let out = apply_ok(Some(&out), &cm(Value::Null), &opts("m", false, T2));
    assert!(out.get("data").is_none());
    assert!(out["metadata"].get("managedFields").is_none());
}

#[test]
fn maps_emptied_by_a_reapply_are_removed() {
    let mut first = cm(json!({"a":"1"}));
    first["metadata"]["labels"] = json!({"app":"x"});
    first["metadata"]["annotations"] = json!({"keep":"y"});
    let live = stored(apply_ok(None, &first, &opts("m", false, T0)));
    let mut second = cm(json!({"a":"1"}));
    second["metadata"]["annotations"] = json!({"keep":"y"});
    let out = apply_ok(Some(&live), &second, &opts("m", false, T1));
    assert!(out["metadata"].get("labels").is_none());
    assert_eq!(out["metadata"]["annotations"], json!({"keep":"y"}));
    assert_eq!(out["metadata"]["name"], "c");
}

#[test]
fn two_appliers_share_a_field_and_it_survives_one_leaving() {
    let live = stored(apply_ok(
        None,
        &cm(json!({"a":"1"})),
        &opts("one", false, T0),
    ));
    let live = apply_ok(
        Some(&live),
        &cm(json!({"a":"1","b":"2"})),
        &opts("two", false, T1),
    );
    assert_eq!(entries(&live).len(), 2);
    assert_eq!(
        entry(&live, "two").unwrap()["fieldsV1"],
        json!({"f:data":{"f:a":{},"f:b":{}}})
    );
    let mut applied = cm(Value::Null);
    applied.as_object_mut().unwrap().remove("data");
    let out = apply_ok(Some(&live), &applied, &opts("one", false, T2));
    assert_eq!(out["data"], json!({"a":"1","b":"2"}));
    assert!(entry(&out, "one").is_none());
}

fn created_by_client_side_apply() -> Value {
    let mut obj = stored(cm(json!({"a":"1"})));
    record_update(
        None,
        &mut obj,
        "kubectl-client-side-apply",
        "v1",
        None,
        T0,
        &cm_lists(),
    );
    obj
}

#[test]
fn conflict_without_force_has_the_real_message_and_causes() {
    let live = created_by_client_side_apply();
    let err = apply(
        Some(&live),
        &cm(json!({"a":"2"})),
        &opts("kubectl", false, T1),
        &cm_lists(),
    )
    .unwrap_err();
    assert_eq!(
        err.message(),
        "Apply failed with 1 conflict: conflict with \"kubectl-client-side-apply\" using v1: .data.a"
    );
    assert_eq!(
        err.causes(),
        vec![json!({"reason":"FieldManagerConflict",
            "message":"conflict with \"kubectl-client-side-apply\" using v1","field":".data.a"})]
    );
    let status = err.to_api_error();
    assert_eq!((status.code, status.reason.as_str()), (409, "Conflict"));
}

#[test]
fn several_conflicts_are_grouped_by_manager() {
    let live = stored(apply_ok(
        None,
        &cm(json!({"a":"1","b":"1"})),
        &opts("helm", false, T0),
    ));
    let err = apply(
        Some(&live),
        &cm(json!({"a":"2","b":"2"})),
        &opts("kubectl", false, T1),
        &cm_lists(),
    )
    .unwrap_err();
    assert_eq!(
        err.message(),
        "Apply failed with 2 conflicts: conflicts with \"helm\":\n- .data.a\n- .data.b"
    );
    assert!(matches!(err, ApplyError::Conflicts(ref c) if c.len() == 2));
}

#[test]
fn force_transfers_ownership() {
    let live = created_by_client_side_apply();
    let out = apply_ok(
        Some(&live),
        &cm(json!({"a":"2"})),
        &opts("kubectl", true, T1),
    );
    assert_eq!(out["data"]["a"], "2");
    assert_eq!(
        entry(&out, "kubectl").unwrap()["fieldsV1"],
        json!({"f:data":{"f:a":{}}})
    );
    // The Update manager keeps only the map itself.
    assert_eq!(
        entry(&out, "kubectl-client-side-apply").unwrap()["fieldsV1"],
        json!({"f:data":{}})
    );
    // Apply entries come first.
    assert_eq!(entries(&out)[0]["operation"], "Apply");
}

#[test]
fn same_value_as_an_update_owner_is_no_conflict() {
    let live = created_by_client_side_apply();
    let out = apply_ok(
        Some(&live),
        &cm(json!({"a":"1"})),
        &opts("kubectl", false, T1),
    );
    assert_eq!(entries(&out).len(), 2);
}

#[test]
fn update_after_apply_takes_only_changed_fields() {
    let live = stored(apply_ok(
        None,
        &cm(json!({"a":"1","b":"2"})),
        &opts("helm", false, T0),
    ));
    let mut new = live.clone();
    new["data"]["a"] = json!("9");
    record_update(
        Some(&live),
        &mut new,
        "kubectl-edit",
        "v1",
        None,
        T1,
        &cm_lists(),
    );
    let edit = entry(&new, "kubectl-edit").unwrap();
    assert_eq!(edit["operation"], "Update");
    assert_eq!(edit["time"], T1);
    assert_eq!(edit["fieldsV1"], json!({"f:data":{"f:a":{}}}));
    assert_eq!(
        entry(&new, "helm").unwrap()["fieldsV1"],
        json!({"f:data":{"f:b":{}}})
    );
    assert_eq!(entry(&new, "helm").unwrap()["time"], T0);
}

#[test]
fn update_removing_a_field_takes_it_from_its_owner() {
    let live = stored(apply_ok(
        None,
        &cm(json!({"a":"1"})),
        &opts("helm", false, T0),
    ));
    let mut new = live.clone();
    new["data"] = json!({});
    record_update(
        Some(&live),
        &mut new,
        "kubectl-edit",
        "v1",
        None,
        T1,
        &cm_lists(),
    );
    // helm owned nothing else, and a removal gives the remover nothing to own.
    assert!(new["metadata"].get("managedFields").is_none());
    assert_eq!(new["data"], json!({}));
}

#[test]
fn create_by_update_owns_all_but_server_fields() {
    let mut obj = stored(cm(json!({"a":"1"})));
    obj["metadata"]["labels"] = json!({"x":"y"});
    obj["metadata"]["generation"] = json!(1);
    record_update(
        None,
        &mut obj,
        "kubectl-create",
        "v1",
        None,
        T0,
        &cm_lists(),
    );
    assert_eq!(
        entries(&obj),
        vec![
            json!({"manager":"kubectl-create","operation":"Update","apiVersion":"v1","time":T0,
            "fieldsType":"FieldsV1",
            "fieldsV1":{"f:data":{".":{},"f:a":{}},"f:metadata":{"f:labels":{".":{},"f:x":{}}}}})
        ]
    );
}

#[test]
fn no_op_apply_and_update_keep_managed_fields_identical() {
    let live = stored(apply_ok(
        None,
        &cm(json!({"a":"1"})),
        &opts("kubectl", false, T0),
    ));
    let again = apply_ok(
        Some(&live),
        &cm(json!({"a":"1"})),
        &opts("kubectl", false, T2),
    );
    assert_eq!(again, live, "{again:#}");

    let mut same = live.clone();
    record_update(
        Some(&live),
        &mut same,
        "kubectl-patch",
        "v1",
        None,
        T2,
        &cm_lists(),
    );
    assert_eq!(same, live);

    // A PUT body without managedFields keeps the stored ones.
    let mut put = live.clone();
    put["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("managedFields");
    record_update(
        Some(&live),
        &mut put,
        "kubectl-replace",
        "v1",
        None,
        T2,
        &cm_lists(),
    );
    assert_eq!(put, live);
}

#[test]
fn managed_fields_sent_by_the_client_replace_the_stored_ones() {
    let live = created_by_client_side_apply();
    // kubectl's JSON patch hands the annotation-free entry list back.
    let mut new = live.clone();
    new["metadata"]["managedFields"] = json!([{"manager":"kubectl","operation":"Apply",
        "apiVersion":"v1","time":T1,"fieldsType":"FieldsV1","fieldsV1":{"f:data":{"f:a":{}}}}]);
    let sent = new["metadata"]["managedFields"].clone();
    record_update(
        Some(&live),
        &mut new,
        "kubectl",
        "v1",
        None,
        T2,
        &cm_lists(),
    );
    assert_eq!(new["metadata"]["managedFields"], sent);
    // `[{}]` resets them.
    let mut reset = live.clone();
    reset["metadata"]["managedFields"] = json!([{}]);
    record_update(Some(&live), &mut reset, "x", "v1", None, T2, &cm_lists());
    assert!(reset["metadata"].get("managedFields").is_none());
}

fn deployment(containers: Value) -> Value {
    json!({"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d"},
        "spec":{"template":{"spec":{"containers":containers}}}})
}

fn dep_opts(manager: &str, force: bool, now: &str) -> ApplyOptions {
    ApplyOptions {
        api_version: "apps/v1".into(),
        ..opts(manager, force, now)
    }
}

#[test]
fn associative_lists_merge_by_key_between_appliers() {
    let l = BuiltinLists::new("Deployment");
    let live = apply(
        None,
        &deployment(json!([{"name":"a","image":"a:1","args":["x"]}])),
        &dep_opts("one", false, T0),
        &l,
    )
    .unwrap();
    assert_eq!(
        entry(&live, "one").unwrap()["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:containers"],
        json!({"k:{\"name\":\"a\"}":{".":{},"f:args":{},"f:image":{},"f:name":{}}})
    );
    let live = apply(
        Some(&live),
        &deployment(json!([{"name":"b","image":"b:1"}])),
        &dep_opts("two", false, T1),
        &l,
    )
    .unwrap();
    let names: Vec<&str> = live["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a", "b"]);
    // An atomic list owned by another manager conflicts when changed.
    let err = apply(
        Some(&live),
        &deployment(json!([{"name":"a","args":["y"]}])),
        &dep_opts("two", false, T2),
        &l,
    )
    .unwrap_err();
    assert_eq!(
        err.message(),
        "Apply failed with 1 conflict: conflict with \"one\": .spec.template.spec.containers[name=\"a\"].args"
    );
    // The first manager dropping its container removes it.
    let out = apply(
        Some(&live),
        &deployment(json!([])),
        &dep_opts("one", false, T2),
        &l,
    )
    .unwrap();
    assert_eq!(
        out["spec"]["template"]["spec"]["containers"],
        json!([{"name":"b","image":"b:1"}])
    );
}

#[test]
fn sets_merge_by_value() {
    let l = cm_lists();
    let with_finalizers = |fs: Value| {
        let mut o = cm(json!({}));
        o["metadata"]["finalizers"] = fs;
        o
    };
    let live = apply(
        None,
        &with_finalizers(json!(["a"])),
        &opts("one", false, T0),
        &l,
    )
    .unwrap();
    let live = apply(
        Some(&live),
        &with_finalizers(json!(["b"])),
        &opts("two", false, T1),
        &l,
    )
    .unwrap();
    assert_eq!(live["metadata"]["finalizers"], json!(["a", "b"]));
    assert_eq!(
        entry(&live, "two").unwrap()["fieldsV1"]["f:metadata"],
        json!({"f:finalizers":{"v:\"b\"":{}}})
    );
    let out = apply(
        Some(&live),
        &with_finalizers(json!([])),
        &opts("one", false, T2),
        &l,
    )
    .unwrap();
    assert_eq!(out["metadata"]["finalizers"], json!(["b"]));
}

#[test]
fn atomic_lists_are_replaced() {
    let l = cm_lists();
    let mut a = cm(json!({}));
    a["rules"] = json!([{"verbs":["get"]},{"verbs":["list"]}]);
    let live = apply(None, &a, &opts("one", false, T0), &l).unwrap();
    assert_eq!(
        entry(&live, "one").unwrap()["fieldsV1"]["f:rules"],
        json!({})
    );
    a["rules"] = json!([{"verbs":["watch"]}]);
    let out = apply(Some(&live), &a, &opts("one", false, T1), &l).unwrap();
    assert_eq!(out["rules"], json!([{"verbs":["watch"]}]));
}

fn batchsandbox_schema() -> Value {
    let crd = crate::crd::all_crds()
        .into_iter()
        .map(|c| serde_json::to_value(c).unwrap())
        .find(|c| c["spec"]["names"]["kind"] == "BatchSandbox")
        .unwrap();
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone()
}

#[test]
fn crd_schema_list_semantics_for_batchsandbox() {
    let l = SchemaLists::new(&batchsandbox_schema());
    let f = PathElement::field;
    assert_eq!(
        l.list_type(&[f("status"), f("conditions")]),
        ListType::Map(vec!["type".into()])
    );
    assert_eq!(
        l.list_type(&[f("spec"), f("shardPatches")]),
        ListType::Atomic
    );
    let under_template = [f("spec"), f("template"), f("spec"), f("containers")];
    assert_eq!(l.list_type(&under_template), ListType::Atomic);

    let bs = |conds: Value| {
        json!({"apiVersion":"sandbox.opensandbox.io/v1alpha1","kind":"BatchSandbox",
            "metadata":{"name":"b"},"status":{"conditions":conds}})
    };
    let o = |m: &str, now: &str| ApplyOptions {
        api_version: "sandbox.opensandbox.io/v1alpha1".into(),
        subresource: Some("status".into()),
        ..opts(m, false, now)
    };
    let live = apply(
        None,
        &bs(json!([{"type":"Ready","status":"True"}])),
        &o("ctl", T0),
        &l,
    )
    .unwrap();
    let live = apply(
        Some(&live),
        &bs(json!([{"type":"Paused","status":"False"}])),
        &o("other", T1),
        &l,
    )
    .unwrap();
    assert_eq!(live["status"]["conditions"].as_array().unwrap().len(), 2);
    let e = entry(&live, "other").unwrap();
    assert_eq!(e["subresource"], "status");
    assert_eq!(
        e["fieldsV1"]["f:status"]["f:conditions"],
        json!({"k:{\"type\":\"Paused\"}":{".":{},"f:status":{},"f:type":{}}})
    );
}

#[test]
fn port_protocol_defaults_to_tcp_when_matching_elements() {
    let l = BuiltinLists::new("Service");
    let svc = |ports: Value| json!({"apiVersion":"v1","kind":"Service","metadata":{"name":"s"},"spec":{"ports":ports}});
    let live = apply(
        None,
        &svc(json!([{"port":80,"protocol":"TCP","targetPort":8080}])),
        &opts("helm", false, T0),
        &l,
    )
    .unwrap();
    let out = apply(
        Some(&live),
        &svc(json!([{"port":80,"targetPort":8080}])),
        &opts("helm", false, T1),
        &l,
    )
    .unwrap();
    assert_eq!(out["spec"]["ports"].as_array().unwrap().len(), 1);
    assert_eq!(
        entry(&out, "helm").unwrap()["fieldsV1"]["f:spec"]["f:ports"],
        json!({"k:{\"port\":80,\"protocol\":\"TCP\"}":{".":{},"f:port":{},"f:targetPort":{}}})
    );
}

#[test]
fn nulls_in_an_applied_configuration_are_not_applied() {
    let mut body = cm(json!({"a":"1","b":"2"}));
    body["metadata"]["labels"] = json!({"x":null});
    let live = apply_ok(None, &body, &opts("m", false, T0));
    assert_eq!(live["metadata"]["labels"], json!({}));
    let out = apply_ok(
        Some(&live),
        &cm(json!({"a":"1","b":null})),
        &opts("m", false, T1),
    );
    assert_eq!(out["data"], json!({"a":"1"}));
}

#[test]
fn managed_fields_in_an_apply_body_are_rejected() {
    let mut body = cm(json!({}));
    body["metadata"]["managedFields"] = json!([]);
    let err = apply(None, &body, &opts("m", false, T0), &cm_lists()).unwrap_err();
    assert_eq!(err.message(), "metadata.managedFields must be nil");
    assert_eq!(err.to_api_error().code, 400);
    assert!(apply(None, &json!([1]), &opts("m", false, T0), &cm_lists()).is_err());
}

#[test]
fn helm_reapply_conflicts_after_a_scale_by_another_manager() {
    let l = BuiltinLists::new("Deployment");
    let mut dep = deployment(json!([{"name":"a","image":"a:1"}]));
    dep["spec"]["replicas"] = json!(1);
    let live = apply(None, &dep, &dep_opts("helm", false, T0), &l).unwrap();
    let mut scaled = live.clone();
    scaled["spec"]["replicas"] = json!(3);
    record_update(
        Some(&live),
        &mut scaled,
        "kubectl",
        "apps/v1",
        Some("scale"),
        T1,
        &l,
    );
    let e = entry(&scaled, "kubectl").unwrap();
    assert_eq!(e["subresource"], "scale");
    assert_eq!(e["fieldsV1"], json!({"f:spec":{"f:replicas":{}}}));
    let err = apply(Some(&scaled), &dep, &dep_opts("helm", false, T2), &l).unwrap_err();
    assert_eq!(
        err.message(),
        "Apply failed with 1 conflict: conflict with \"kubectl\" with subresource \"scale\" using apps/v1: .spec.replicas"
    );
    // Without replicas in the applied config helm gives the field up, and it stays at 3.
    dep["spec"].as_object_mut().unwrap().remove("replicas");
    let out = apply(Some(&scaled), &dep, &dep_opts("helm", false, T2), &l).unwrap();
    assert_eq!(out["spec"]["replicas"], 3);
}

#[test]
fn update_inside_an_associative_list_element() {
    let l = BuiltinLists::new("Deployment");
    let live = apply(
        None,
        &deployment(json!([{"name":"a","image":"a:1"}])),
        &dep_opts("helm", false, T0),
        &l,
    )
    .unwrap();
    let mut new = live.clone();
    new["spec"]["template"]["spec"]["containers"][0]["image"] = json!("a:2");
    record_update(
        Some(&live),
        &mut new,
        "kubectl-set",
        "apps/v1",
        None,
        T1,
        &l,
    );
    assert_eq!(
        entry(&new, "kubectl-set").unwrap()["fieldsV1"],
        json!({"f:spec":{"f:template":{"f:spec":{"f:containers":{"k:{\"name\":\"a\"}":{"f:image":{}}}}}}})
    );
    let helm = &entry(&new, "helm").unwrap()["fieldsV1"]["f:spec"]["f:template"]["f:spec"];
    assert_eq!(
        helm["f:containers"],
        json!({"k:{\"name\":\"a\"}":{".":{},"f:name":{}}})
    );
}

#[test]
fn dropped_element_stays_for_fields_another_manager_owns() {
    let l = BuiltinLists::new("Deployment");
    let live = apply(
        None,
        &deployment(json!([{"name":"a","image":"a:1"},{"name":"b","image":"b:1"}])),
        &dep_opts("helm", false, T0),
        &l,
    )
    .unwrap();
    let mut new = live.clone();
    new["spec"]["template"]["spec"]["containers"][0]["resources"] = json!({"limits":{"cpu":"1"}});
    record_update(Some(&live), &mut new, "vpa", "apps/v1", None, T1, &l);
    let out = apply(
        Some(&new),
        &deployment(json!([{"name":"b","image":"b:1"}])),
        &dep_opts("helm", false, T2),
        &l,
    )
    .unwrap();
    assert_eq!(
        out["spec"]["template"]["spec"]["containers"],
        json!([{"name":"a","resources":{"limits":{"cpu":"1"}}},{"name":"b","image":"b:1"}])
    );
}

#[test]
fn first_apply_to_an_unmanaged_object_conflicts_with_before_first_apply() {
    let live = stored(cm(json!({"a":"1","b":"1"})));
    let err = apply(
        Some(&live),
        &cm(json!({"a":"2"})),
        &opts("kubectl", false, T1),
        &cm_lists(),
    )
    .unwrap_err();
    assert_eq!(
        err.message(),
        "Apply failed with 1 conflict: conflict with \"before-first-apply\" using v1: .data.a"
    );
    let out = apply_ok(
        Some(&live),
        &cm(json!({"a":"1"})),
        &opts("kubectl", false, T1),
    );
    assert_eq!(out["data"], json!({"a":"1","b":"1"}));
    let bfa = entry(&out, "before-first-apply").unwrap();
    assert_eq!(bfa["operation"], "Update");
    assert_eq!(
        bfa["fieldsV1"],
        json!({"f:data":{".":{},"f:a":{},"f:b":{}}})
    );
}

#[test]
fn update_managers_are_capped_into_ancient_changes() {
    let mut obj = stored(cm(json!({"k0":"0"})));
    record_update(
        None,
        &mut obj,
        "m00",
        "v1",
        None,
        "2026-01-01T00:00:00Z",
        &cm_lists(),
    );
    for i in 1..=11 {
        let old = obj.clone();
        obj["data"][format!("k{i}")] = json!("x");
        let now = format!("2026-01-01T00:00:{i:02}Z");
        record_update(
            Some(&old),
            &mut obj,
            &format!("m{i:02}"),
            "v1",
            None,
            &now,
            &cm_lists(),
        );
    }
    let es = entries(&obj);
    assert_eq!(es.len(), 10);
    let ancient = entry(&obj, "ancient-changes").unwrap();
    assert_eq!(
        ancient["fieldsV1"],
        json!({"f:data":{".":{},"f:k0":{},"f:k1":{},"f:k2":{}}})
    );
    assert_eq!(ancient["time"], "2026-01-01T00:00:02Z");
    assert!(entry(&obj, "m01").is_none() && entry(&obj, "m03").is_some());
}

mod props {
    use super::*;
    use proptest::prelude::*;

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
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
        fn reapplying_the_live_object_by_its_sole_owner_is_a_no_op(
            spec in prop::collection::btree_map("[a-z]{1,4}", arb_json(), 0..5),
            labels in prop::collection::btree_map("[a-z]{1,4}", "[a-z]{0,3}", 0..3),
        ) {
            let obj = json!({"apiVersion":"v1","kind":"ConfigMap",
                "metadata":{"name":"p","labels":labels},"spec":spec});
            let l = cm_lists();
            let live = stored(apply(None, &obj, &opts("solo", false, T0), &l).unwrap());
            let mut own = live.clone();
            own["metadata"].as_object_mut().unwrap().remove("managedFields");
            let again = apply(Some(&live), &own, &opts("solo", false, T1), &l).unwrap();
            prop_assert_eq!(again, live);
        }

        #[test]
        fn reapplying_containers_by_their_sole_owner_is_a_no_op(
            containers in prop::collection::btree_map(
                "[a-z]{1,4}",
                (prop::collection::vec("[a-z]{1,3}", 0..3), prop::collection::btree_set(1u16..5, 0..3),
                 prop::option::of("[a-z]{1,3}")),
                0..4),
            finalizers in prop::collection::btree_set("[a-z]{1,3}", 0..3),
        ) {
            let containers: Vec<Value> = containers.into_iter().map(|(name, (args, ports, image))| {
                let mut c = json!({"name": name, "args": args,
                    "ports": ports.into_iter().map(|p| json!({"containerPort": p})).collect::<Vec<_>>()});
                if let Some(i) = image { c["image"] = json!(i); }
                c
            }).collect();
            let mut dep = deployment(Value::Array(containers));
            dep["metadata"]["finalizers"] = json!(finalizers);
            let l = BuiltinLists::new("Deployment");
            let live = stored(apply(None, &dep, &dep_opts("solo", false, T0), &l).unwrap());
            prop_assert_eq!(&apply(Some(&live), &dep, &dep_opts("solo", false, T1), &l).unwrap(), &live);
            let mut own = live.clone();
            own["metadata"].as_object_mut().unwrap().remove("managedFields");
            prop_assert_eq!(apply(Some(&live), &own, &dep_opts("solo", false, T1), &l).unwrap(), live);
        }
    }
}

#[test]
fn list_semantics_trait_objects_work() {
    let l: &dyn ListSemantics = &BuiltinLists::new("Pod");
    assert_eq!(
        l.list_type(&[PathElement::field("spec"), PathElement::field("volumes")]),
        ListType::Map(vec!["name".into()])
    );
}
