use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Value, json};

use super::*;
use crate::crd::{BatchSandbox, Pool};

fn sandbox(labels: Value, template: Value) -> BatchSandbox {
    serde_json::from_value(json!({
        "apiVersion": "sandbox.opensandbox.io/v1alpha1", "kind": "BatchSandbox",
        "metadata": {"name": "bs", "namespace": "ns", "labels": labels},
        "spec": {"replicas": 1, "poolRef": "*", "template": template},
    }))
    .unwrap()
}

fn pool(name: &str, labels: Value, template: Value, allocated: i32, total: i32) -> Arc<Pool> {
    Arc::new(
        serde_json::from_value(json!({
            "apiVersion": "sandbox.opensandbox.io/v1alpha1", "kind": "Pool",
            "metadata": {"name": name, "namespace": "ns", "labels": labels},
            "spec": {"template": template, "capacitySpec": {"bufferMin": 0, "bufferMax": 1, "poolMin": 0, "poolMax": 5}},
            "status": {"total": total, "allocated": allocated, "available": 0, "revision": "r"},
        }))
        .unwrap(),
    )
}

fn tpl(image: &str, requests: Value) -> Value {
    json!({"spec": {"containers": [{"name": "c", "image": image, "resources": {"requests": requests}}]}})
}

fn choose(bs: &BatchSandbox, pools: &[Arc<Pool>]) -> Result<String, AssignError> {
    choose_pool(bs, pools, &Profile::builtin())
}

fn reasons(err: AssignError) -> Vec<Rejection> {
    let AssignError::NoEligiblePool { reasons, .. } = err;
    reasons
}

// ---- quantities ----

#[test]
fn quantities_parse_exactly() {
    let q = |s: &str| parse_quantity(s).unwrap();
    assert_eq!(q("100m"), NANO / 10);
    assert_eq!(q("1"), NANO);
    assert_eq!(q("0.5"), NANO / 2);
    assert_eq!(q("256Mi"), 256 * 1024 * 1024 * NANO);
    assert_eq!(q("1Gi"), 1024 * 1024 * 1024 * NANO);
    assert_eq!(q("1G"), 1_000_000_000 * NANO);
    assert_eq!(q("2k"), 2000 * NANO);
    assert_eq!(q("1e3"), 1000 * NANO);
    assert_eq!(q("1E"), 1_000_000_000_000_000_000 * NANO);
    assert_eq!(q("1.5Gi"), 3 * 512 * 1024 * 1024 * NANO);
    assert_eq!(q("1n"), 1);
    assert_eq!(q("0.1n"), 1, "rounded up");
    assert_eq!(q("1000m"), q("1"));
    for bad in ["", "abc", "1.2.3", "-1", "1X", "Mi", "1e"] {
        assert!(parse_quantity(bad).is_err(), "{bad}");
    }
}

// ---- predicates ----

#[test]
fn image_predicate() {
    let bs = sandbox(json!({}), tpl("python:3", json!({})));
    let pools = [
        pool("a", json!({}), tpl("node:20", json!({})), 0, 0),
        pool("b", json!({}), tpl("python:3", json!({})), 0, 0),
        pool("c", json!({}), Value::Null, 0, 0),
    ];
    assert_eq!(choose(&bs, &pools).unwrap(), "b");
    let r = reasons(choose(&bs, &[pools[0].clone(), pools[2].clone()]).unwrap_err());
    assert_eq!(r.len(), 2);
    assert!(r[0].reason.starts_with("image:"), "{}", r[0].reason);
    // No image wanted: any pool, even without a template.
    let any = sandbox(
        json!({}),
        json!({"spec": {"containers": [{"name": "c", "image": ""}]}}),
    );
    assert_eq!(choose(&any, &[pools[2].clone()]).unwrap(), "c");
}

#[test]
fn nil_sandbox_template_passes_template_predicates() {
    let bs = sandbox(json!({}), Value::Null);
    let pools = [pool("z", json!({}), Value::Null, 0, 0)];
    assert_eq!(choose(&bs, &pools).unwrap(), "z");
}

#[test]
fn resource_predicate() {
    let bs = sandbox(
        json!({}),
        tpl("img", json!({"cpu": "500m", "memory": "256Mi"})),
    );
    let small = pool(
        "small",
        json!({}),
        tpl("img", json!({"cpu": "250m", "memory": "1Gi"})),
        0,
        0,
    );
    let nomem = pool("nomem", json!({}), tpl("img", json!({"cpu": "1"})), 0, 0);
    let big = pool(
        "big",
        json!({}),
        tpl("img", json!({"cpu": 1, "memory": "1G"})),
        0,
        0,
    );
    assert_eq!(
        choose(&bs, &[small.clone(), nomem.clone(), big]).unwrap(),
        "big"
    );
    let r = reasons(choose(&bs, &[small, nomem]).unwrap_err());
    assert!(
        r.iter()
            .any(|x| x.reason.contains("pool requests no memory")),
        "{r:?}"
    );
    assert!(
        r.iter()
            .any(|x| x.reason.contains("cpu 0.25 < sandbox's 0.5")),
        "{r:?}"
    );
}

#[test]
fn resource_requests_sum_over_containers_and_limits_default_requests() {
    let two = json!({"spec": {"containers": [
        {"name": "a", "image": "img", "resources": {"requests": {"cpu": "300m"}}},
        {"name": "b", "image": "img", "resources": {"limits": {"cpu": "300m"}}}
    ]}});
    let bs = sandbox(json!({}), tpl("img", json!({"cpu": "600m"})));
    assert_eq!(
        choose(&bs, &[pool("p", json!({}), two, 0, 0)]).unwrap(),
        "p"
    );
    let bad = sandbox(json!({}), tpl("img", json!({"cpu": "lots"})));
    let r =
        reasons(choose(&bad, &[pool("p", json!({}), tpl("img", json!({})), 0, 0)]).unwrap_err());
    assert!(r[0].reason.contains("invalid quantity"), "{r:?}");
}

fn with_node(selector: Value, affinity: Value) -> Value {
    json!({"spec": {"containers": [{"name": "c"}], "nodeSelector": selector, "affinity": affinity}})
}

#[test]
fn nodeselector_uses_pool_labels_and_template_selector() {
    let bs = sandbox(
        json!({}),
        with_node(json!({"zone": "a", "gpu": "yes"}), Value::Null),
    );
    let labelled = pool(
        "l",
        json!({"zone": "a"}),
        with_node(json!({"gpu": "yes"}), Value::Null),
        0,
        0,
    );
    let template_wins = pool(
        "t",
        json!({"zone": "a", "gpu": "yes"}),
        with_node(json!({"gpu": "no"}), Value::Null),
        0,
        0,
    );
    assert_eq!(
        choose(&bs, &[labelled, template_wins.clone()]).unwrap(),
        "l"
    );
    let r = reasons(choose(&bs, &[template_wins]).unwrap_err());
    assert!(r[0].reason.contains("gpu=yes"), "{r:?}");
}

#[test]
fn node_affinity_terms() {
    let affinity = |exprs: Value| {
        json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": exprs},
            {"matchExpressions": [{"key": "never", "operator": "Exists"}]}
        ]}}})
    };
    let p = pool(
        "p",
        json!({"zone": "a", "cores": "8"}),
        with_node(Value::Null, Value::Null),
        0,
        0,
    );
    let ok = |exprs: Value| {
        choose(
            &sandbox(json!({}), with_node(Value::Null, affinity(exprs))),
            std::slice::from_ref(&p),
        )
        .is_ok()
    };
    assert!(ok(
        json!([{"key": "zone", "operator": "In", "values": ["a", "b"]}])
    ));
    assert!(!ok(
        json!([{"key": "zone", "operator": "In", "values": ["b"]}])
    ));
    assert!(ok(
        json!([{"key": "zone", "operator": "NotIn", "values": ["b"]}])
    ));
    assert!(ok(
        json!([{"key": "other", "operator": "NotIn", "values": ["b"]}])
    ));
    assert!(!ok(
        json!([{"key": "zone", "operator": "NotIn", "values": ["a"]}])
    ));
    assert!(ok(json!([{"key": "zone", "operator": "Exists"}])));
    assert!(!ok(json!([{"key": "zone", "operator": "DoesNotExist"}])));
    assert!(ok(json!([{"key": "other", "operator": "DoesNotExist"}])));
    assert!(ok(
        json!([{"key": "cores", "operator": "Gt", "values": ["4"]}])
    ));
    assert!(!ok(
        json!([{"key": "cores", "operator": "Gt", "values": ["8"]}])
    ));
    assert!(ok(
        json!([{"key": "cores", "operator": "Lt", "values": ["16"]}])
    ));
    assert!(
        !ok(json!([{"key": "zone", "operator": "Lt", "values": ["16"]}])),
        "not an integer"
    );
    assert!(
        !ok(json!([{"key": "zone", "operator": "Near", "values": ["a"]}])),
        "unknown operator"
    );
    assert!(
        !ok(
            json!([{"key": "zone", "operator": "In", "values": ["a"]}, {"key": "cores", "operator": "Lt", "values": ["2"]}])
        ),
        "all expressions of a term must hold"
    );
}

#[test]
fn labelselector_predicate() {
    let profile = parse_profiles(
        r#"[{"name":"default","plugins":{"predicate":["labelselector"]},
            "pluginConf":[{"name":"labelselector","args":{"keys":["team"]}}]}]"#,
    )
    .unwrap()
    .remove(0);
    let bs = sandbox(json!({"team": "ml"}), Value::Null);
    let pools = [
        pool("a", json!({"team": "web"}), Value::Null, 0, 0),
        pool("b", json!({"team": "ml"}), Value::Null, 0, 0),
        pool("c", json!({}), Value::Null, 0, 0),
    ];
    assert_eq!(choose_pool(&bs, &pools, &profile).unwrap(), "b");
    let unlabelled = sandbox(json!({}), Value::Null);
    let r = reasons(choose_pool(&unlabelled, &pools, &profile).unwrap_err());
    assert!(r[0].reason.contains("sandbox has no label team"), "{r:?}");
    let no_keys =
        parse_profiles(r#"[{"name":"x","plugins":{"predicate":["labelselector"]}}]"#).unwrap();
    assert_eq!(choose_pool(&unlabelled, &pools, &no_keys[0]).unwrap(), "a");
}

// ---- scoring ----

#[test]
fn least_allocated_by_default_ties_to_smaller_name() {
    let bs = sandbox(json!({}), Value::Null);
    let pools = [
        pool("busy", json!({}), Value::Null, 8, 10),
        pool("quiet", json!({}), Value::Null, 1, 10),
        pool("empty", json!({}), Value::Null, 0, 0),
    ];
    assert_eq!(choose(&bs, &pools).unwrap(), "quiet");
    let tie = [
        pool("b", json!({}), Value::Null, 1, 2),
        pool("a", json!({}), Value::Null, 2, 4),
    ];
    assert_eq!(choose(&bs, &tie).unwrap(), "a");
}

#[test]
fn most_allocated_and_weights() {
    let profile = parse_profiles(
        r#"[{"name":"default","plugins":{"score":[{"name":"resbalance","weight":10}]},
            "pluginConf":[{"name":"resbalance","args":{"strategy":"MostAllocated"}}]}]"#,
    )
    .unwrap()
    .remove(0);
    assert_eq!(
        profile.scorers,
        vec![WeightedScorer {
            strategy: Strategy::MostAllocated,
            weight: 10
        }]
    );
    assert!(profile.predicates.is_empty());
    let bs = sandbox(json!({}), Value::Null);
    let pools = [
        pool("busy", json!({}), Value::Null, 8, 10),
        pool("quiet", json!({}), Value::Null, 1, 10),
        pool("empty", json!({}), Value::Null, 0, 0),
    ];
    assert_eq!(choose_pool(&bs, &pools, &profile).unwrap(), "busy");
    // Total 0 scores 0 under either strategy: the empty pool only wins by name.
    let zero = [
        pool("z", json!({}), Value::Null, 0, 0),
        pool("y", json!({}), Value::Null, 0, 0),
    ];
    assert_eq!(choose_pool(&bs, &zero, &profile).unwrap(), "y");
}

// ---- eligibility and errors ----

#[test]
fn no_pools_and_deleting_pools() {
    let bs = sandbox(json!({}), Value::Null);
    let err = choose(&bs, &[]).unwrap_err();
    assert!(err.to_string().contains("there is no Pool"), "{err}");
    let mut gone = (*pool("gone", json!({}), Value::Null, 0, 0)).clone();
    gone.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
    ));
    let err = choose(&bs, &[Arc::new(gone)]).unwrap_err();
    assert!(
        err.to_string().contains("pool gone: pool is being deleted"),
        "{err}"
    );
}

#[test]
fn template_sandbox_is_matched_to_a_compatible_pool() {
    // The upstream quirk: "*" plus a template. We pick a pool whose template fits.
    let bs = sandbox(json!({}), tpl("python:3", json!({"cpu": "1"})));
    let pools = [
        pool(
            "a-node",
            json!({}),
            tpl("node:20", json!({"cpu": "2"})),
            0,
            2,
        ),
        pool(
            "b-py",
            json!({}),
            tpl("python:3", json!({"cpu": "2"})),
            1,
            2,
        ),
    ];
    assert_eq!(choose(&bs, &pools).unwrap(), "b-py");
}

// ---- profiles ----

#[test]
fn builtin_profile_shape() {
    let p = Profile::builtin();
    assert_eq!(p.name, "default");
    assert_eq!(
        p.predicates,
        vec![
            Predicate::Image,
            Predicate::Resource,
            Predicate::NodeSelector
        ]
    );
    assert_eq!(
        p.scorers,
        vec![WeightedScorer {
            strategy: Strategy::LeastAllocated,
            weight: 100
        }]
    );
}

#[test]
fn load_profile_falls_back_with_a_reason() {
    let none = load_profile(None, DEFAULT_PROFILE);
    assert_eq!(
        (none.profile.clone(), none.note),
        (Profile::builtin(), None)
    );
    assert_eq!(load_profile(Some("  "), DEFAULT_PROFILE).note, None);

    let bad_json = load_profile(Some("{not json"), DEFAULT_PROFILE);
    assert_eq!(bad_json.profile, Profile::builtin());
    assert!(bad_json.note.unwrap().contains("invalid"));

    let unknown = load_profile(
        Some(r#"[{"name":"default","plugins":{"predicate":["imagee"]}}]"#),
        DEFAULT_PROFILE,
    );
    assert_eq!(unknown.profile, Profile::builtin());
    assert!(
        unknown
            .note
            .unwrap()
            .contains("unknown predicate plugin \"imagee\"")
    );

    let bad_strategy = load_profile(
        Some(
            r#"[{"name":"default","plugins":{"score":[{"name":"resbalance","weight":1}]},
                 "pluginConf":[{"name":"resbalance","args":{"strategy":"Random"}}]}]"#,
        ),
        DEFAULT_PROFILE,
    );
    assert!(bad_strategy.note.unwrap().contains("Random"));

    let bad_keys = load_profile(
        Some(
            r#"[{"name":"default","plugins":{"predicate":["labelselector"]},
                 "pluginConf":[{"name":"labelselector","args":{"keys":"team"}}]}]"#,
        ),
        DEFAULT_PROFILE,
    );
    assert!(bad_keys.note.unwrap().contains("keys must be an array"));

    let other = load_profile(Some(r#"[{"name":"other"}]"#), DEFAULT_PROFILE);
    assert_eq!(other.profile, Profile::builtin());
    assert!(other.note.unwrap().contains("no profile \"default\""));

    let good = load_profile(
        Some(
            r#"[{"name":"x"},{"name":"default","plugins":{"predicate":["image"],"score":[{"name":"resbalance","weight":5}]}}]"#,
        ),
        DEFAULT_PROFILE,
    );
    assert_eq!(good.note, None);
    assert_eq!(good.profile.predicates, vec![Predicate::Image]);
    assert_eq!(
        good.profile.scorers,
        vec![WeightedScorer {
            strategy: Strategy::LeastAllocated,
            weight: 5
        }]
    );
}

#[test]
fn expression_matches_is_public_for_reuse() {
    let labels: BTreeMap<String, String> = [("k".to_string(), "v".to_string())].into();
    assert!(expression_matches(
        &json!({"key": "k", "operator": "In", "values": ["v"]}),
        &labels
    ));
}

#[test]
fn assign_condition_explains_the_outcome() {
    let ok = assign_condition(&Ok("p".to_string()), None, "t");
    assert_eq!(
        (ok.type_.as_str(), ok.status.as_str()),
        (COND_POOL_ASSIGNED, "True")
    );
    assert_eq!(ok.message.as_deref(), Some("assigned pool p"));
    let bs = sandbox(json!({}), tpl("python:3", json!({})));
    let err = choose(
        &bs,
        &[pool("a", json!({}), tpl("node:20", json!({})), 0, 0)],
    );
    let c = assign_condition(&err, Some("profiles invalid"), "t");
    assert_eq!(
        (c.status.as_str(), c.reason.as_deref()),
        ("False", Some("NoEligiblePool"))
    );
    let msg = c.message.unwrap();
    assert!(
        msg.starts_with("no eligible pool for BatchSandbox bs: pool a: image:"),
        "{msg}"
    );
    assert!(msg.ends_with("(profiles invalid)"), "{msg}");
}
