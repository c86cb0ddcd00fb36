use chrono::{Duration, TimeZone};
use serde_json::{Value, json};

use super::*;
use crate::standalone::apiserver::registry::{Registry, resources_from_crd};

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 10, 12, 0, 0).unwrap()
}

fn ago(d: Duration) -> String {
    (now() - d).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

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

fn res(group: &str, plural: &str) -> std::sync::Arc<ResourceInfo> {
    let reg = registry();
    reg.all()
        .into_iter()
        .find(|r| r.group == group && r.plural == plural)
        .unwrap()
}

fn opts() -> TableOptions {
    TableOptions::new("107", now())
}

fn names(table: &Value) -> Vec<String> {
    table["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect()
}

fn cells(table: &Value) -> Vec<Value> {
    table["rows"][0]["cells"].as_array().unwrap().clone()
}

fn render_one(r: &ResourceInfo, obj: &Value) -> Value {
    render_table(r, &[obj], &opts())
}

fn pool(name: &str) -> Value {
    json!({
        "apiVersion": "sandbox.opensandbox.io/v1alpha1",
        "kind": "Pool",
        "metadata": {"name": name, "namespace": "default", "labels": {"a": "b"},
                     "creationTimestamp": ago(Duration::seconds(5)), "resourceVersion": "7"},
        "spec": {},
        "status": {"total": 3, "allocated": 1, "available": 2, "updated": 3}
    })
}

#[test]
fn pool_table() {
    let r = res("sandbox.opensandbox.io", "pools");
    let t = render_one(&r, &pool("demo"));
    assert_eq!(t["kind"], "Table");
    assert_eq!(t["apiVersion"], "meta.k8s.io/v1");
    assert_eq!(t["metadata"], json!({"resourceVersion": "107"}));
    assert_eq!(
        names(&t),
        ["Name", "TOTAL", "ALLOCATED", "AVAILABLE", "UPDATED", "AGE"]
    );
    assert_eq!(t["columnDefinitions"][0]["format"], "name");
    assert_eq!(t["columnDefinitions"][1]["type"], "integer");
    assert_eq!(t["columnDefinitions"][5]["type"], "date");
    assert_eq!(
        cells(&t),
        vec![
            json!("demo"),
            json!(3),
            json!(1),
            json!(2),
            json!(3),
            json!("5s")
        ]
    );
    let row_obj = &t["rows"][0]["object"];
    assert_eq!(row_obj["kind"], "PartialObjectMetadata");
    assert_eq!(row_obj["apiVersion"], "meta.k8s.io/v1");
    assert_eq!(row_obj["metadata"]["labels"], json!({"a": "b"}));
    assert_eq!(row_obj["metadata"]["namespace"], "default");
    assert!(row_obj.get("status").is_none());
}

#[test]
fn batch_sandbox_columns_keep_names_and_priorities() {
    let r = res("sandbox.opensandbox.io", "batchsandboxes");
    let obj = json!({
        "metadata": {"name": "bs", "creationTimestamp": ago(Duration::hours(3))},
        "spec": {"replicas": 2},
        "status": {"replicas": 2, "allocated": 2, "ready": 1, "taskRunning": 1}
    });
    let t = render_one(&r, &obj);
    let cols = t["columnDefinitions"].as_array().unwrap();
    let col = |n: &str| cols.iter().find(|c| c["name"] == n).unwrap().clone();
    assert_eq!(col("TASK_RUNNING")["priority"], 1);
    assert_eq!(col("Ready")["priority"], 0);
    assert_eq!(col("DESIRED")["priority"], 0);
    let i = |n: &str| cols.iter().position(|c| c["name"] == n).unwrap();
    let c = cells(&t);
    assert_eq!(c[i("Ready")], json!(1));
    assert_eq!(c[i("TASK_RUNNING")], json!(1));
    assert_eq!(c[i("TASK_FAILED")], Value::Null);
    assert_eq!(c[i("EXPIRE")], Value::Null);
    assert_eq!(c[i("AGE")], json!("3h"));
    assert_eq!(c.len(), cols.len());
}

fn custom(cols: &[(&str, &str, &str)]) -> ResourceInfo {
    let mut r = (*res("sandbox.opensandbox.io", "pools")).clone();
    r.printer_columns = cols
        .iter()
        .map(
            |(name, t, path)| crate::standalone::apiserver::registry::PrinterColumn {
                name: name.to_string(),
                type_: t.to_string(),
                format: String::new(),
                description: String::new(),
                priority: 0,
                json_path: path.to_string(),
            },
        )
        .collect();
    r
}

#[test]
fn custom_columns_jsonpath_filters_missing_and_first_match() {
    let r = custom(&[
        (
            "READY",
            "string",
            ".status.conditions[?(@.type==\"Ready\")].status",
        ),
        (
            "SYNCED",
            "string",
            ".status.conditions[?(@.type==\"Synced\")].status",
        ),
        ("IMAGES", "string", ".spec.containers[*].image"),
        ("FIRST", "string", ".spec.containers[0].name"),
        ("COUNT", "integer", ".status.count"),
        ("RATIO", "number", ".status.ratio"),
        ("OK", "boolean", ".status.ok"),
        ("OBJ", "string", ".spec.obj"),
        ("WHEN", "date", ".status.when"),
        ("BAD", "date", ".status.bad"),
        ("WRONG", "integer", ".status.ok"),
        ("BROKEN", "string", ".a["),
    ]);
    let obj = json!({
        "metadata": {"name": "x"},
        "spec": {"containers": [{"name": "a", "image": "ia"}, {"name": "b", "image": "ib"}],
                 "obj": {"z": ["a", true], "k": 1}},
        "status": {"conditions": [{"type": "Ready", "status": "True"}],
                   "count": 4.0, "ratio": 0.5, "ok": true,
                   "when": ago(Duration::days(4)), "bad": "yesterday"}
    });
    let t = render_one(&r, &obj);
    assert_eq!(
        t["columnDefinitions"][3]["description"],
        "Custom resource definition column (in JSONPath format): .spec.containers[*].image"
    );
    let c = cells(&t);
    assert_eq!(
        c,
        vec![
            json!("x"),
            json!("True"),
            Value::Null,
            json!("ia"),
            json!("a"),
            json!(4),
            json!(0.5),
            json!(true),
            json!("map[k:1 z:[a true]]"),
            json!("4d"),
            json!("<invalid>"),
            Value::Null,
            Value::Null,
        ]
    );
}

#[test]
fn crd_without_columns_gets_age() {
    let r = custom(&[]);
    let t = render_one(&r, &pool("p"));
    assert_eq!(names(&t), ["Name", "Age"]);
    assert_eq!(t["columnDefinitions"][1]["type"], "date");
    assert_eq!(cells(&t), vec![json!("p"), json!("5s")]);
    let no_ts = json!({"metadata": {"name": "q"}});
    assert_eq!(
        cells(&render_one(&r, &no_ts)),
        vec![json!("q"), Value::Null]
    );
}

#[test]
fn include_object_variants_and_metadata() {
    let r = res("sandbox.opensandbox.io", "pools");
    let mut bare = pool("demo");
    bare.as_object_mut().unwrap().remove("kind");
    bare.as_object_mut().unwrap().remove("apiVersion");
    let (a, b) = (pool("a"), bare);
    let mut o = opts();
    o.include_object = IncludeObject::None;
    o.continue_token = Some("tok".into());
    let t = render_table(&r, &[&a, &b], &o);
    assert!(t["rows"][0].get("object").is_none());
    assert_eq!(t["rows"].as_array().unwrap().len(), 2);
    assert_eq!(
        t["metadata"],
        json!({"resourceVersion": "107", "continue": "tok"})
    );

    o.include_object = IncludeObject::Object;
    o.continue_token = Some(String::new());
    let t = render_table(&r, &[&a, &b], &o);
    assert_eq!(t["rows"][0]["object"], a);
    assert_eq!(t["rows"][1]["object"]["kind"], "Pool");
    assert_eq!(
        t["rows"][1]["object"]["apiVersion"],
        "sandbox.opensandbox.io/v1alpha1"
    );
    assert_eq!(t["rows"][1]["object"]["status"]["total"], 3);
    assert!(t["metadata"].get("continue").is_none());

    o.with_column_definitions = false;
    let ev = table_watch_event_object(&r, &a, &o);
    assert_eq!(ev["columnDefinitions"], json!([]));
    assert_eq!(ev["rows"].as_array().unwrap().len(), 1);
    assert_eq!(ev["kind"], "Table");

    let empty = render_table(&r, &[], &opts());
    assert_eq!(empty["rows"], json!([]));
    assert_eq!(names(&empty).len(), 6);
    assert_eq!(columns_for(&r).len(), 6);
}

#[test]
fn accept_and_include_object_parsing() {
    let table = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
    assert!(parse_table_accept(table));
    assert_eq!(table_api_version(table), Some("meta.k8s.io/v1"));
    assert_eq!(
        table_api_version("application/json;as=Table;v=v1beta1;g=meta.k8s.io"),
        Some("meta.k8s.io/v1beta1")
    );
    assert_eq!(table_api_version("application/json"), None);
    assert!(parse_table_accept(
        "application/json;as=Table;v=v1beta1;g=meta.k8s.io"
    ));
    assert!(parse_table_accept(
        "application/json; g=meta.k8s.io; v=v1; as=Table"
    ));
    assert!(!parse_table_accept("application/json"));
    assert!(!parse_table_accept(
        "application/json;as=Table;v=v2;g=meta.k8s.io"
    ));
    assert!(!parse_table_accept(
        "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
    ));
    assert_eq!(parse_include_object(None), IncludeObject::Metadata);
    assert_eq!(
        parse_include_object(Some("Metadata")),
        IncludeObject::Metadata
    );
    assert_eq!(parse_include_object(Some("Object")), IncludeObject::Object);
    assert_eq!(parse_include_object(Some("None")), IncludeObject::None);
    assert_eq!(parse_include_object(Some("bogus")), IncludeObject::Metadata);
}

#[test]
fn human_durations() {
    let cases = [
        (Duration::seconds(-5), "<invalid>"),
        (Duration::seconds(-1), "0s"),
        (Duration::zero(), "0s"),
        (Duration::seconds(5), "5s"),
        (Duration::seconds(119), "119s"),
        (Duration::seconds(120), "2m"),
        (Duration::seconds(150), "2m30s"),
        (Duration::minutes(10), "10m"),
        (Duration::minutes(179), "179m"),
        (Duration::hours(3), "3h"),
        (Duration::minutes(185), "3h5m"),
        (Duration::hours(8), "8h"),
        (Duration::hours(47), "47h"),
        (Duration::hours(48), "2d"),
        (Duration::hours(76), "3d4h"),
        (Duration::days(8), "8d"),
        (Duration::days(729), "729d"),
        (Duration::days(730), "2y"),
        (Duration::days(760), "2y30d"),
        (Duration::days(365 * 8), "8y"),
        (Duration::days(365 * 10 + 3), "10y"),
    ];
    for (d, want) in cases {
        assert_eq!(human_duration(d), want, "{d:?}");
    }
}

// --- built-in kinds --------------------------------------------------------------------------

fn pod(status: Value, containers: usize) -> Value {
    let cs: Vec<Value> = (0..containers)
        .map(|i| json!({"name": format!("c{i}"), "image": "img"}))
        .collect();
    json!({
        "metadata": {"name": "p", "namespace": "default", "creationTimestamp": ago(Duration::minutes(3))},
        "spec": {"containers": cs, "nodeName": "node-1"},
        "status": status
    })
}

fn pod_cells(p: &Value) -> Vec<Value> {
    cells(&render_one(&res("", "pods"), p))
}

#[test]
fn pod_columns() {
    let t = render_one(&res("", "pods"), &pod(json!({"phase": "Pending"}), 1));
    assert_eq!(
        names(&t),
        [
            "Name",
            "Ready",
            "Status",
            "Restarts",
            "Age",
            "IP",
            "Node",
            "Nominated Node",
            "Readiness Gates"
        ]
    );
    let prio: Vec<i64> = t["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["priority"].as_i64().unwrap())
        .collect();
    assert_eq!(prio, [0, 0, 0, 0, 0, 1, 1, 1, 1]);
    assert_eq!(
        cells(&t),
        vec![
            json!("p"),
            json!("0/1"),
            json!("Pending"),
            json!("0"),
            json!("3m"),
            json!("<none>"),
            json!("node-1"),
            json!("<none>"),
            json!("<none>")
        ]
    );
}

#[test]
fn pod_running_one_of_two_ready() {
    let p = pod(
        json!({
            "phase": "Running",
            "podIP": "10.0.0.5",
            "containerStatuses": [
                {"name": "c0", "ready": true, "restartCount": 0, "state": {"running": {}}},
                {"name": "c1", "ready": false, "restartCount": 0, "state": {"running": {}}}
            ]
        }),
        2,
    );
    let c = pod_cells(&p);
    assert_eq!(c[1], "1/2");
    assert_eq!(c[2], "Running");
    assert_eq!(c[5], "10.0.0.5");
}

#[test]
fn pod_crash_loop_with_last_restart() {
    let p = pod(
        json!({
            "phase": "Running",
            "containerStatuses": [{
                "name": "c0", "ready": false, "restartCount": 5,
                "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(Duration::seconds(150))}}
            }]
        }),
        1,
    );
    let c = pod_cells(&p);
    assert_eq!(c[1], "0/1");
    assert_eq!(c[2], "CrashLoopBackOff");
    assert_eq!(c[3], "5 (2m30s ago)");
}

#[test]
fn pod_terminating_and_terminal_phases() {
    let mut p = pod(
        json!({"phase": "Running", "containerStatuses": [
            {"name": "c0", "ready": true, "state": {"running": {}}}]}),
        1,
    );
    p["metadata"]["deletionTimestamp"] = json!(ago(Duration::seconds(1)));
    assert_eq!(pod_cells(&p)[2], "Terminating");
    p["status"]["reason"] = json!("NodeLost");
    assert_eq!(pod_cells(&p)[2], "Unknown");

    let done = pod(
        json!({"phase": "Succeeded", "containerStatuses": [
            {"name": "c0", "ready": false, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}),
        1,
    );
    let t = render_one(&res("", "pods"), &done);
    assert_eq!(cells(&t)[2], "Completed");
    assert_eq!(t["rows"][0]["conditions"][0]["type"], "Completed");
    let mut deleted_done = done.clone();
    deleted_done["metadata"]["deletionTimestamp"] = json!(ago(Duration::seconds(1)));
    assert_eq!(pod_cells(&deleted_done)[2], "Completed");

    let killed = pod(
        json!({"phase": "Failed", "containerStatuses": [
            {"name": "c0", "state": {"terminated": {"exitCode": 137, "signal": 9}}}]}),
        1,
    );
    assert_eq!(pod_cells(&killed)[2], "Signal:9");
    let evicted = pod(json!({"phase": "Failed", "reason": "Evicted"}), 1);
    assert_eq!(pod_cells(&evicted)[2], "Evicted");
}

#[test]
fn pod_init_containers_and_gates() {
    let mut p = pod(
        json!({
            "phase": "Pending",
            "initContainerStatuses": [{"name": "init", "restartCount": 2,
                "state": {"waiting": {"reason": "PodInitializing"}}}],
            "containerStatuses": [{"name": "c0", "restartCount": 0,
                "state": {"waiting": {"reason": "PodInitializing"}}}]
        }),
        1,
    );
    p["spec"]["initContainers"] = json!([{"name": "init"}]);
    let c = pod_cells(&p);
    assert_eq!(c[2], "Init:0/1");
    assert_eq!(c[3], "2");

    p["status"]["initContainerStatuses"][0]["state"] =
        json!({"waiting": {"reason": "ImagePullBackOff"}});
    assert_eq!(pod_cells(&p)[2], "Init:ImagePullBackOff");
    p["status"]["initContainerStatuses"][0]["state"] = json!({"terminated": {"exitCode": 3}});
    assert_eq!(pod_cells(&p)[2], "Init:ExitCode:3");

    // A started sidecar counts as a ready container.
    let mut s = pod(
        json!({
            "phase": "Running",
            "initContainerStatuses": [{"name": "side", "restartCount": 1, "started": true, "ready": true,
                "state": {"running": {}}}],
            "containerStatuses": [{"name": "c0", "ready": true, "restartCount": 0, "state": {"running": {}}}],
            "conditions": [{"type": "gate", "status": "True"}]
        }),
        1,
    );
    s["spec"]["initContainers"] = json!([{"name": "side", "restartPolicy": "Always"}]);
    s["spec"]["readinessGates"] = json!([{"conditionType": "gate"}, {"conditionType": "other"}]);
    let c = pod_cells(&s);
    assert_eq!(c[1], "2/2");
    assert_eq!(c[2], "Running");
    assert_eq!(c[3], "1");
    assert_eq!(c[8], "1/2");
}

#[test]
fn deployment_table() {
    let d = json!({
        "metadata": {"name": "web", "creationTimestamp": ago(Duration::days(4))},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"},
                    "matchExpressions": [{"key": "tier", "operator": "In", "values": ["b", "a"]},
                                         {"key": "alpha", "operator": "DoesNotExist"}]},
                 "template": {"spec": {"containers": [{"name": "a", "image": "ia"}, {"name": "b", "image": "ib"}]}}},
        "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}
    });
    let t = render_one(&res("apps", "deployments"), &d);
    assert_eq!(
        names(&t),
        [
            "Name",
            "Ready",
            "Up-to-date",
            "Available",
            "Age",
            "Containers",
            "Images",
            "Selector"
        ]
    );
    assert_eq!(
        cells(&t),
        vec![
            json!("web"),
            json!("2/3"),
            json!(3),
            json!(2),
            json!("4d"),
            json!("a,b"),
            json!("ia,ib"),
            json!("!alpha,app=web,tier in (a,b)")
        ]
    );
}

#[test]
fn service_table() {
    let svc = json!({
        "metadata": {"name": "s", "creationTimestamp": ago(Duration::seconds(30))},
        "spec": {"type": "NodePort", "clusterIP": "10.96.0.10",
                 "ports": [{"port": 80, "protocol": "TCP", "nodePort": 30080}, {"port": 53, "protocol": "UDP"}],
                 "selector": {"app": "s"}}
    });
    let t = render_one(&res("", "services"), &svc);
    assert_eq!(
        names(&t),
        [
            "Name",
            "Type",
            "Cluster-IP",
            "External-IP",
            "Port(s)",
            "Age",
            "Selector"
        ]
    );
    assert_eq!(
        cells(&t),
        vec![
            json!("s"),
            json!("NodePort"),
            json!("10.96.0.10"),
            json!("<none>"),
            json!("80:30080/TCP,53/UDP"),
            json!("30s"),
            json!("app=s")
        ]
    );
    let lb = json!({"metadata": {"name": "lb"}, "spec": {"type": "LoadBalancer"}});
    assert_eq!(
        cells(&render_one(&res("", "services"), &lb))[3],
        "<pending>"
    );
}

#[test]
fn simple_builtin_tables() {
    let ts = ago(Duration::hours(4));
    let cm = json!({"metadata": {"name": "cm", "creationTimestamp": ts}, "data": {"a": "1", "b": "2"}, "binaryData": {"c": "AA=="}});
    let t = render_one(&res("", "configmaps"), &cm);
    assert_eq!(names(&t), ["Name", "Data", "Age"]);
    assert_eq!(cells(&t), vec![json!("cm"), json!(3), json!("4h")]);

    let sec = json!({"metadata": {"name": "s", "creationTimestamp": ts}, "type": "helm.sh/release.v1", "data": {"release": "x"}});
    let t = render_one(&res("", "secrets"), &sec);
    assert_eq!(names(&t), ["Name", "Type", "Data", "Age"]);
    assert_eq!(
        cells(&t),
        vec![
            json!("s"),
            json!("helm.sh/release.v1"),
            json!(1),
            json!("4h")
        ]
    );

    let ns = json!({"metadata": {"name": "default", "creationTimestamp": ts}, "status": {"phase": "Terminating"}});
    let t = render_one(&res("", "namespaces"), &ns);
    assert_eq!(names(&t), ["Name", "Status", "Age"]);
    assert_eq!(
        cells(&t),
        vec![json!("default"), json!("Terminating"), json!("4h")]
    );

    let lease = json!({"metadata": {"name": "l", "creationTimestamp": ts}, "spec": {"holderIdentity": "ctrl-1"}});
    let t = render_one(&res("coordination.k8s.io", "leases"), &lease);
    assert_eq!(names(&t), ["Name", "Holder", "Age"]);
    assert_eq!(cells(&t), vec![json!("l"), json!("ctrl-1"), json!("4h")]);

    let crd = json!({"metadata": {"name": "pools.sandbox.opensandbox.io", "creationTimestamp": "2026-01-01T00:00:00Z"}});
    let t = render_one(
        &res("apiextensions.k8s.io", "customresourcedefinitions"),
        &crd,
    );
    assert_eq!(names(&t), ["Name", "Created At"]);
    assert_eq!(
        cells(&t),
        vec![
            json!("pools.sandbox.opensandbox.io"),
            json!("2026-01-01T00:00:00Z")
        ]
    );

    let role = json!({"metadata": {"name": "r"}});
    let t = render_one(&res("rbac.authorization.k8s.io", "roles"), &role);
    assert_eq!(names(&t), ["Name", "Age"]);
    assert_eq!(cells(&t), vec![json!("r"), json!("<unknown>")]);
}

#[test]
fn job_table() {
    let job = json!({
        "metadata": {"name": "j", "creationTimestamp": ago(Duration::minutes(5))},
        "spec": {"completions": 3, "template": {"spec": {"containers": [{"name": "w", "image": "busybox"}]}}},
        "status": {"succeeded": 3, "startTime": ago(Duration::minutes(5)), "completionTime": ago(Duration::minutes(4)),
                   "conditions": [{"type": "Complete", "status": "True"}]}
    });
    let t = render_one(&res("batch", "jobs"), &job);
    assert_eq!(
        names(&t),
        [
            "Name",
            "Status",
            "Completions",
            "Duration",
            "Age",
            "Containers",
            "Images",
            "Selector"
        ]
    );
    let c = cells(&t);
    assert_eq!(
        c[..5],
        [
            json!("j"),
            json!("Complete"),
            json!("3/3"),
            json!("60s"),
            json!("5m")
        ]
    );
    let running = json!({"metadata": {"name": "r"}, "spec": {"parallelism": 2},
                         "status": {"startTime": ago(Duration::seconds(20))}});
    let c = cells(&render_one(&res("batch", "jobs"), &running));
    assert_eq!(c[1..4], [json!("Running"), json!("0/1 of 2"), json!("20s")]);
}

#[test]
fn event_tables() {
    let ev = json!({
        "metadata": {"name": "demo.1", "namespace": "default"},
        "involvedObject": {"kind": "Pool", "name": "demo", "fieldPath": "spec"},
        "reason": "Scaled", "message": "scaled to 3\n", "type": "Normal",
        "source": {"component": "pool-controller"},
        "firstTimestamp": ago(Duration::minutes(30)), "lastTimestamp": ago(Duration::seconds(40)),
        "count": 4
    });
    let t = render_one(&res("", "events"), &ev);
    assert_eq!(
        names(&t),
        [
            "Last Seen",
            "Type",
            "Reason",
            "Object",
            "Subobject",
            "Source",
            "Message",
            "First Seen",
            "Count",
            "Name"
        ]
    );
    assert_eq!(
        cells(&t),
        vec![
            json!("40s"),
            json!("Normal"),
            json!("Scaled"),
            json!("pool/demo"),
            json!("spec"),
            json!("pool-controller"),
            json!("scaled to 3"),
            json!("30m"),
            json!(4),
            json!("demo.1")
        ]
    );
    let new = json!({
        "metadata": {"name": "e2"},
        "regarding": {"kind": "BatchSandbox", "name": "bs"},
        "reason": "Created", "note": "made", "type": "Warning",
        "reportingController": "ctrl", "eventTime": ago(Duration::seconds(9))
    });
    let c = cells(&render_one(&res("events.k8s.io", "events"), &new));
    assert_eq!(c[0], "9s");
    assert_eq!(c[3], "batchsandbox/bs");
    assert_eq!(c[5], "ctrl");
    assert_eq!(c[6], "made");
    assert_eq!(c[7], "9s");
    assert_eq!(c[8], 1);
}
