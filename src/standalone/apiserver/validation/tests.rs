//! End-to-end validation of our own CRDs' schemas.

use std::sync::LazyLock;

use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;

static SCHEMAS: LazyLock<Vec<(String, Value)>> = LazyLock::new(|| {
    ["Pool", "BatchSandbox", "SandboxSnapshot"]
        .into_iter()
        .map(|k| (k.to_string(), generate_schema(k)))
        .collect()
});

fn schema_of(kind: &str) -> Value {
    SCHEMAS
        .iter()
        .find(|(k, _)| k == kind)
        .map(|(_, s)| s.clone())
        .unwrap()
}

fn generate_schema(kind: &str) -> Value {
    crate::crd::all_crds()
        .into_iter()
        .map(|crd| serde_json::to_value(crd).unwrap())
        .find(|crd| crd["spec"]["names"]["kind"] == kind)
        .map(|crd| crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone())
        .unwrap()
}

fn pool(spec: Value) -> Value {
    json!({"apiVersion": "sandbox.opensandbox.io/v1alpha1", "kind": "Pool",
           "metadata": {"name": "demo", "namespace": "default"}, "spec": spec})
}

fn capacity(bmax: i64, bmin: i64, pmax: i64, pmin: i64) -> Value {
    json!({"bufferMax": bmax, "bufferMin": bmin, "poolMax": pmax, "poolMin": pmin})
}

fn batch(spec: Value) -> Value {
    json!({"apiVersion": "sandbox.opensandbox.io/v1alpha1", "kind": "BatchSandbox",
           "metadata": {"name": "bs", "namespace": "default"}, "spec": spec})
}

fn run(
    kind: &str,
    mut obj: Value,
    old: Option<&Value>,
    mode: FieldValidation,
) -> (Result<Vec<String>, ValidationError>, Value) {
    let r = validate_custom_resource(&schema_of(kind), &mut obj, old, mode);
    (r, obj)
}

fn causes(kind: &str, obj: Value, old: Option<&Value>) -> Vec<(String, String, String)> {
    match run(kind, obj, old, FieldValidation::Strict).0 {
        Err(ValidationError::Invalid(cs)) => cs
            .into_iter()
            .map(|c| (c.field, c.reason, c.message))
            .collect(),
        other => panic!("expected Invalid, got {other:?}"),
    }
}

const NOT_CHECKED: &str = "Invalid value: null: some validation rules were not checked because the object was invalid; correct the existing errors to complete validation";

#[test]
fn valid_pool_passes_unchanged() {
    let obj = pool(json!({
        "template": {"metadata": {"labels": {"app": "x"}},
                     "spec": {"containers": [{"name": "c", "image": "busybox", "anything": {"deep": [1, {"k": null}]}}]}},
        "capacitySpec": capacity(3, 1, 10, 0),
        "scaleStrategy": {"maxUnavailable": "25%"},
        "updateStrategy": {"maxUnavailable": 2},
        "recycleStrategy": null
    }));
    let (r, after) = run("Pool", obj.clone(), None, FieldValidation::Strict);
    assert_eq!(r, Ok(vec![]));
    assert_eq!(
        after, obj,
        "preserve-unknown template and nullable null kept intact"
    );
}

#[test]
fn buffer_min_above_max_is_rejected_by_cel() {
    assert_eq!(
        causes(
            "Pool",
            pool(json!({"capacitySpec": capacity(1, 2, 10, 0)})),
            None
        ),
        vec![(
            "spec.capacitySpec.bufferMin".into(),
            "FieldValueInvalid".into(),
            "Invalid value: bufferMin must be less than or equal to bufferMax".into()
        )]
    );
    let both = causes(
        "Pool",
        pool(json!({"capacitySpec": capacity(1, 2, 1, 2)})),
        None,
    );
    assert_eq!(both.len(), 2);
    assert_eq!(both[1].0, "spec.capacitySpec.poolMin");
}

#[test]
fn negative_capacity_hits_the_minimum() {
    assert_eq!(
        causes("Pool", pool(json!({"capacitySpec": capacity(3, -1, 10, 0)})), None),
        vec![(
            "spec.capacitySpec.bufferMin".into(),
            "FieldValueInvalid".into(),
            "Invalid value: -1: spec.capacitySpec.bufferMin in body should be greater than or equal to 0".into()
        )]
    );
}

#[test]
fn wrong_type_blocks_cel() {
    let mut cap = capacity(3, 1, 10, 0);
    cap["bufferMax"] = json!("string");
    assert_eq!(
        causes("Pool", pool(json!({"capacitySpec": cap})), None),
        vec![
            (
                "spec.capacitySpec.bufferMax".into(),
                "FieldValueTypeInvalid".into(),
                "Invalid value: \"string\": spec.capacitySpec.bufferMax in body must be of type integer: \"string\"".into()
            ),
            ("<nil>".into(), "FieldValueInvalid".into(), NOT_CHECKED.into()),
        ]
    );
    let mut cap = capacity(3, 1, 10, 0);
    cap["poolMax"] = json!(3_000_000_000i64);
    let e = causes("Pool", pool(json!({"capacitySpec": cap})), None);
    assert_eq!(e[0].0, "spec.capacitySpec.poolMax");
    assert!(e[0].2.contains("must be of type int32"), "{e:?}");
}

#[test]
fn missing_capacity_spec_is_required() {
    for spec in [json!({}), json!({"capacitySpec": null})] {
        assert_eq!(
            causes("Pool", pool(spec), None),
            vec![
                (
                    "spec.capacitySpec".into(),
                    "FieldValueRequired".into(),
                    "Required value".into()
                ),
                (
                    "<nil>".into(),
                    "FieldValueInvalid".into(),
                    NOT_CHECKED.into()
                ),
            ]
        );
    }
    let mut obj = pool(json!({}));
    obj.as_object_mut().unwrap().remove("spec");
    assert_eq!(causes("Pool", obj, None)[0].0, "spec");
    let mut cap = capacity(3, 1, 10, 0);
    cap.as_object_mut().unwrap().remove("poolMin");
    assert_eq!(
        causes("Pool", pool(json!({"capacitySpec": cap})), None)[0].0,
        "spec.capacitySpec.poolMin"
    );
}

#[test]
fn unknown_fields_per_mode() {
    let obj = pool(
        json!({"capacitySpec": capacity(3, 1, 10, 0), "foo": 1, "scaleStrategy": {"bar": true}}),
    );
    let mut with_meta = obj.clone();
    with_meta["metadata"]["bogus"] = json!("x");

    let (r, _) = run("Pool", with_meta.clone(), None, FieldValidation::Strict);
    let err = r.unwrap_err();
    assert_eq!(
        err,
        ValidationError::UnknownFields(vec![
            "metadata.bogus".into(),
            "spec.foo".into(),
            "spec.scaleStrategy.bar".into()
        ])
    );
    assert_eq!(
        err.message(),
        "strict decoding error: unknown field \"metadata.bogus\", unknown field \"spec.foo\", unknown field \"spec.scaleStrategy.bar\""
    );

    let (r, after) = run("Pool", with_meta.clone(), None, FieldValidation::Warn);
    assert_eq!(
        r,
        Ok(vec![
            "unknown field \"metadata.bogus\"".to_string(),
            "unknown field \"spec.foo\"".to_string(),
            "unknown field \"spec.scaleStrategy.bar\"".to_string()
        ])
    );
    let pruned = pool(json!({"capacitySpec": capacity(3, 1, 10, 0), "scaleStrategy": {}}));
    assert_eq!(after, pruned);

    let (r, after) = run("Pool", with_meta, None, FieldValidation::Ignore);
    assert_eq!(r, Ok(vec![]));
    assert_eq!(after, pruned);
    assert_eq!(FieldValidation::default(), FieldValidation::Warn);
    assert_eq!(
        FieldValidation::parse("Strict"),
        Some(FieldValidation::Strict)
    );
    assert_eq!(FieldValidation::parse("strict"), None);
}

#[test]
fn batch_sandbox_defaults() {
    let (r, after) = run(
        "BatchSandbox",
        batch(json!({"poolRef": "p"})),
        None,
        FieldValidation::Strict,
    );
    assert_eq!(r, Ok(vec![]));
    assert_eq!(after["spec"]["replicas"], json!(1));
    assert_eq!(
        after["spec"]["taskResourcePolicyWhenCompleted"],
        json!("Retain")
    );
    let (_, after) = run(
        "BatchSandbox",
        batch(json!({"replicas": 4})),
        None,
        FieldValidation::Strict,
    );
    assert_eq!(after["spec"]["replicas"], json!(4));
    let e = causes("BatchSandbox", batch(json!({"replicas": -1})), None);
    assert_eq!(
        e[0].2,
        "Invalid value: -1: spec.replicas in body should be greater than or equal to 0"
    );
}

#[test]
fn recycle_strategy_defaults_and_enum() {
    let (r, after) = run(
        "Pool",
        pool(json!({"capacitySpec": capacity(3, 1, 10, 0), "recycleStrategy": {}})),
        None,
        FieldValidation::Strict,
    );
    assert_eq!(r, Ok(vec![]));
    assert_eq!(after["spec"]["recycleStrategy"], json!({"type": "Delete"}));
    let e = causes(
        "Pool",
        pool(json!({"capacitySpec": capacity(3, 1, 10, 0), "recycleStrategy": {"type": "X"}})),
        None,
    );
    assert_eq!(
        e,
        vec![
            (
                "spec.recycleStrategy.type".into(),
                "FieldValueNotSupported".into(),
                "Unsupported value: \"X\": supported values: \"Delete\", \"Restart\", \"Noop\""
                    .into()
            ),
            (
                "<nil>".into(),
                "FieldValueInvalid".into(),
                NOT_CHECKED.into()
            ),
        ]
    );
}

#[test]
fn int_or_string_and_date_time_fields() {
    let e = causes(
        "Pool",
        pool(
            json!({"capacitySpec": capacity(3, 1, 10, 0), "scaleStrategy": {"maxUnavailable": true}}),
        ),
        None,
    );
    assert_eq!(e[0].0, "spec.scaleStrategy.maxUnavailable");
    let e = causes("BatchSandbox", batch(json!({"expireTime": "soon"})), None);
    assert_eq!(
        e[0].2,
        "Invalid value: \"soon\": spec.expireTime in body must be of type date-time: \"soon\""
    );
    let (r, _) = run(
        "BatchSandbox",
        batch(json!({"expireTime": "2026-11-28T12:00:00Z"})),
        None,
        FieldValidation::Strict,
    );
    assert_eq!(r, Ok(vec![]));
}

fn pool_ref_update(old: Option<&str>, new: Option<&str>) -> Result<Vec<String>, ValidationError> {
    let spec = |p: Option<&str>| match p {
        Some(p) => json!({"poolRef": p}),
        None => json!({}),
    };
    let old = old.map(|o| batch(spec(Some(o))));
    let old = old.or_else(|| Some(batch(spec(None))));
    run(
        "BatchSandbox",
        batch(spec(new)),
        old.as_ref(),
        FieldValidation::Strict,
    )
    .0
}

#[test]
fn pool_ref_transition_rule() {
    assert_eq!(
        pool_ref_update(Some("x"), Some("y")),
        Err(ValidationError::Invalid(vec![FieldCause::new(
            "FieldValueInvalid",
            "spec.poolRef",
            "Invalid value: \"y\": spec.poolRef is immutable once set"
        )]))
    );
    assert!(pool_ref_update(Some("*"), Some("x")).is_ok());
    assert!(pool_ref_update(Some(""), Some("x")).is_ok());
    assert!(pool_ref_update(Some("x"), Some("")).is_ok());
    assert!(pool_ref_update(Some("x"), Some("x")).is_ok());
    assert!(
        pool_ref_update(None, Some("x")).is_ok(),
        "old object without poolRef"
    );
    assert!(
        pool_ref_update(Some("x"), None).is_ok(),
        "removed: no node to check"
    );
    let (r, _) = run(
        "BatchSandbox",
        batch(json!({"poolRef": "x"})),
        None,
        FieldValidation::Strict,
    );
    assert_eq!(r, Ok(vec![]), "create never checks oldSelf");
}

#[test]
fn preserve_unknown_lists_kept_intact() {
    let patches = json!([{"metadata": {"labels": {"shard": "0"}}, "spec": {"x": [1, 2]}}, {}]);
    let obj = batch(
        json!({"replicas": 2, "shardPatches": patches, "taskTemplate": {"spec": {"process": {"command": ["sh"]}}}}),
    );
    let (r, after) = run("BatchSandbox", obj.clone(), None, FieldValidation::Strict);
    assert_eq!(r, Ok(vec![]));
    assert_eq!(after["spec"]["shardPatches"], patches);
    assert_eq!(after["spec"]["taskTemplate"], obj["spec"]["taskTemplate"]);
}

#[test]
fn condition_list_map_duplicates() {
    let mut obj = pool(json!({"capacitySpec": capacity(3, 1, 10, 0)}));
    obj["status"] = json!({"conditions": [
        {"type": "Ready", "status": "True"},
        {"type": "Ready", "status": "False"},
        {"type": "Other", "status": "Maybe"}
    ]});
    let e = causes("Pool", obj, None);
    assert_eq!(
        e[0],
        (
            "status.conditions[1]".into(),
            "FieldValueDuplicate".into(),
            "Duplicate value: {\"type\":\"Ready\"}".into()
        )
    );
    assert_eq!(e[1].0, "status.conditions[2].status");
    assert_eq!(e[1].1, "FieldValueNotSupported");
}

#[test]
fn status_defaults_apply_when_status_is_sent() {
    let mut obj = pool(json!({"capacitySpec": capacity(3, 1, 10, 0)}));
    obj["status"] = json!({"total": 2});
    let (r, after) = run("Pool", obj, None, FieldValidation::Strict);
    assert_eq!(r, Ok(vec![]));
    assert_eq!(
        after["status"],
        json!({"total": 2, "allocated": 0, "available": 0, "revision": ""})
    );
}

#[test]
fn metadata_of_a_pool() {
    let meta = json!({"name": "Bad_Name", "namespace": "default",
        "labels": {"bad key!": "v"}, "annotations": {"ok/key": "v"}});
    let fields: Vec<String> = validate_object_meta(&meta, true, "Pool")
        .into_iter()
        .map(|c| c.field)
        .collect();
    assert_eq!(fields, vec!["metadata.name", "metadata.labels"]);
}

#[test]
fn updates_ratchet_unchanged_invalid_values() {
    // Stored under an older, laxer schema.
    let stored = pool(json!({"capacitySpec": capacity(1, 2, 10, -1)}));
    let mut relabelled = stored.clone();
    relabelled["metadata"]["labels"] = json!({"a": "b"});
    let (r, _) = run("Pool", relabelled, Some(&stored), FieldValidation::Strict);
    assert_eq!(
        r,
        Ok(vec!["spec.capacitySpec.bufferMin: Invalid value: bufferMin must be less than or equal to bufferMax".to_string()])
    );
    let mut changed = stored.clone();
    changed["spec"]["capacitySpec"]["poolMax"] = json!(11);
    let e = causes("Pool", changed, Some(&stored));
    let fields: Vec<&str> = e.iter().map(|c| c.0.as_str()).collect();
    // poolMin (-1) is unchanged, so its minimum is ratcheted; the changed capacitySpec's rule is not.
    assert_eq!(fields, vec!["spec.capacitySpec.bufferMin"]);
}

fn arb_pool() -> impl Strategy<Value = Value> {
    (
        (0i64..50, 0i64..50, 0i64..200, 0i64..200),
        prop::option::of(prop::sample::select(vec!["Delete", "Restart", "Noop"])),
        prop::option::of(prop_oneof![
            (0i64..10).prop_map(Value::from),
            (0u8..100).prop_map(|p| Value::from(format!("{p}%")))
        ]),
        prop::collection::btree_map("[a-z]{1,6}", "[a-zA-Z0-9 ]{0,8}", 0..4),
        any::<bool>(),
    )
        .prop_map(|((a, b, c, d), recycle, unavailable, extra, with_status)| {
            let mut spec = json!({
                "capacitySpec": capacity(a.max(b), a.min(b), c.max(d), c.min(d)),
                "template": {"spec": extra},
            });
            if let Some(t) = recycle {
                spec["recycleStrategy"] = json!({"type": t});
            }
            if let Some(u) = unavailable {
                spec["scaleStrategy"] = json!({"maxUnavailable": u});
                spec["updateStrategy"] = json!({});
            }
            let mut obj = pool(spec);
            if with_status {
                obj["status"] = json!({"conditions": [{"type": "Ready", "status": "True"}]});
            }
            obj
        })
}

proptest! {
    #[test]
    fn validate_round_is_idempotent(obj in arb_pool()) {
        let schema = schema_of("Pool");
        let mut once = obj.clone();
        let first = validate_custom_resource(&schema, &mut once, None, FieldValidation::Strict);
        prop_assert_eq!(first, Ok(vec![]));
        let mut twice = once.clone();
        let second = validate_custom_resource(&schema, &mut twice, Some(&once), FieldValidation::Strict);
        prop_assert_eq!(second, Ok(vec![]));
        prop_assert_eq!(&twice, &once);
    }

    #[test]
    fn batch_defaults_are_idempotent(replicas in prop::option::of(0i64..100), pool_ref in prop::option::of("[a-z*]{0,4}")) {
        let schema = schema_of("BatchSandbox");
        let mut spec = json!({});
        if let Some(r) = replicas { spec["replicas"] = json!(r); }
        if let Some(p) = pool_ref { spec["poolRef"] = json!(p); }
        let mut once = batch(spec);
        prop_assert_eq!(validate_custom_resource(&schema, &mut once, None, FieldValidation::Strict), Ok(vec![]));
        let mut twice = once.clone();
        prop_assert_eq!(validate_custom_resource(&schema, &mut twice, Some(&once), FieldValidation::Strict), Ok(vec![]));
        prop_assert_eq!(twice, once);
    }
}
