//! Columns of built-in kinds, as the real server prints them.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use super::{Column, human_duration, name_of, parse_time, since};

const NONE: &str = "<none>";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Printer {
    Pod,
    Deployment,
    ReplicaSet,
    StatefulSet,
    Service,
    ConfigMap,
    Secret,
    Namespace,
    ServiceAccount,
    Event,
    EventsV1,
    Lease,
    Crd,
    Job,
    Default,
}

impl Printer {
    pub(super) fn for_kind(group: &str, kind: &str) -> Self {
        match (group, kind) {
            ("", "Pod") => Printer::Pod,
            ("apps", "Deployment") => Printer::Deployment,
            ("apps", "ReplicaSet") => Printer::ReplicaSet,
            ("apps", "StatefulSet") => Printer::StatefulSet,
            ("", "Service") => Printer::Service,
            ("", "ConfigMap") => Printer::ConfigMap,
            ("", "Secret") => Printer::Secret,
            ("", "Namespace") => Printer::Namespace,
            ("", "ServiceAccount") => Printer::ServiceAccount,
            ("", "Event") => Printer::Event,
            ("events.k8s.io", "Event") => Printer::EventsV1,
            ("coordination.k8s.io", "Lease") => Printer::Lease,
            ("apiextensions.k8s.io", "CustomResourceDefinition") => Printer::Crd,
            ("batch", "Job") => Printer::Job,
            _ => Printer::Default,
        }
    }

    pub(super) fn columns(self) -> Vec<Column> {
        let c = Column::new;
        let age = || c("Age", "string", 0, AGE_DESC);
        let workload_wide = || {
            vec![
                c(
                    "Containers",
                    "string",
                    1,
                    "Names of each container in the template.",
                ),
                c(
                    "Images",
                    "string",
                    1,
                    "Images referenced by each container in the template.",
                ),
                c("Selector", "string", 1, "Label selector of the workload."),
            ]
        };
        let mut cols = match self {
            Printer::Event | Printer::EventsV1 => return event_columns(),
            _ => vec![Column::name_column()],
        };
        match self {
            Printer::Pod => cols.extend([
                c("Ready", "string", 0, "The aggregate readiness state of this pod for accepting traffic."),
                c("Status", "string", 0, "The aggregate status of the containers in this pod."),
                c("Restarts", "string", 0, "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted."),
                age(),
                c("IP", "string", 1, "IP address allocated to the pod."),
                c("Node", "string", 1, "Name of the node this pod is assigned to."),
                c("Nominated Node", "string", 1, "Name of the node this pod is nominated to."),
                c("Readiness Gates", "string", 1, "Pod readiness gates."),
            ]),
            Printer::Deployment => {
                cols.extend([
                    c("Ready", "string", 0, "Number of the pod with ready state."),
                    c("Up-to-date", "integer", 0, "Total number of non-terminated pods targeted by this deployment that have the desired template spec."),
                    c("Available", "integer", 0, "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment."),
                    age(),
                ]);
                cols.extend(workload_wide());
            }
            Printer::ReplicaSet => {
                cols.extend([
                    c("Desired", "integer", 0, "Number of desired pods."),
                    c("Current", "integer", 0, "Number of actually running pods."),
                    c("Ready", "integer", 0, "Number of ready pods."),
                    age(),
                ]);
                cols.extend(workload_wide());
            }
            Printer::StatefulSet => {
                cols.extend([c("Ready", "string", 0, "Number of the pod with ready state."), age()]);
                cols.extend(workload_wide().into_iter().take(2));
            }
            Printer::Service => cols.extend([
                c("Type", "string", 0, "The type of the service."),
                c("Cluster-IP", "string", 0, "The cluster IP address of the service."),
                c("External-IP", "string", 0, "The external IP addresses of the service."),
                c("Port(s)", "string", 0, "The ports exposed by the service."),
                age(),
                c("Selector", "string", 1, "Pods matching this selector receive the service's traffic."),
            ]),
            Printer::ConfigMap => cols.extend([c("Data", "integer", 0, "Number of data entries."), age()]),
            Printer::Secret => cols.extend([
                c("Type", "string", 0, "The type of the secret."),
                c("Data", "integer", 0, "Number of data entries."),
                age(),
            ]),
            Printer::Namespace => cols.extend([c("Status", "string", 0, "The status of the namespace."), age()]),
            Printer::ServiceAccount => cols.extend([c("Secrets", "integer", 0, "Number of referenced secrets."), age()]),
            Printer::Lease => cols.extend([c("Holder", "string", 0, "The identity of the lease holder."), age()]),
            Printer::Crd => cols.push(c("Created At", "date", 0, "Time the definition was created.")),
            Printer::Job => {
                cols.extend([
                    c("Status", "string", 0, "Status of the job."),
                    c("Completions", "string", 0, "The desired number of successfully finished pods the job should be run with."),
                    c("Duration", "string", 0, "Time required to complete the job."),
                    age(),
                ]);
                cols.extend(workload_wide());
            }
            Printer::Event | Printer::EventsV1 | Printer::Default => cols.push(age()),
        }
        cols
    }

    pub(super) fn cells(self, obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
        let name = json!(name_of(obj));
        let age = || json!(since(&obj["metadata"]["creationTimestamp"], now));
        match self {
            Printer::Pod => pod_cells(obj, now),
            Printer::Deployment => {
                let (spec, status) = (&obj["spec"], &obj["status"]);
                let mut cells = vec![
                    name,
                    json!(format!(
                        "{}/{}",
                        int(&status["readyReplicas"]),
                        replicas(spec)
                    )),
                    json!(int(&status["updatedReplicas"])),
                    json!(int(&status["availableReplicas"])),
                    age(),
                ];
                cells.extend(workload_wide_cells(spec));
                cells
            }
            Printer::ReplicaSet => {
                let (spec, status) = (&obj["spec"], &obj["status"]);
                let mut cells = vec![
                    name,
                    json!(replicas(spec)),
                    json!(int(&status["replicas"])),
                    json!(int(&status["readyReplicas"])),
                    age(),
                ];
                cells.extend(workload_wide_cells(spec));
                cells
            }
            Printer::StatefulSet => {
                let (spec, status) = (&obj["spec"], &obj["status"]);
                let mut cells = vec![
                    name,
                    json!(format!(
                        "{}/{}",
                        int(&status["readyReplicas"]),
                        replicas(spec)
                    )),
                    age(),
                ];
                cells.extend(workload_wide_cells(spec).into_iter().take(2));
                cells
            }
            Printer::Service => service_cells(obj, name, age()),
            Printer::ConfigMap => vec![
                name,
                json!(len(&obj["data"]) + len(&obj["binaryData"])),
                age(),
            ],
            Printer::Secret => vec![
                name,
                json!(obj["type"].as_str().unwrap_or("Opaque")),
                json!(len(&obj["data"])),
                age(),
            ],
            Printer::Namespace => vec![
                name,
                json!(obj["status"]["phase"].as_str().unwrap_or("Active")),
                age(),
            ],
            Printer::ServiceAccount => vec![name, json!(len(&obj["secrets"])), age()],
            Printer::Lease => vec![
                name,
                json!(obj["spec"]["holderIdentity"].as_str().unwrap_or_default()),
                age(),
            ],
            Printer::Crd => vec![name, created_at(obj)],
            Printer::Job => job_cells(obj, name, age(), now),
            Printer::Event => event_cells(&EventView::core(obj), now),
            Printer::EventsV1 => event_cells(&EventView::events_v1(obj), now),
            Printer::Default => vec![name, age()],
        }
    }

    /// Row conditions: the real server marks finished pods `Completed`.
    pub(super) fn row_conditions(self, obj: &Value) -> Option<Value> {
        if self != Printer::Pod {
            return None;
        }
        let message = match obj["status"]["phase"].as_str() {
            Some("Succeeded") => "The pod has completed successfully.",
            Some("Failed") => "The pod failed.",
            _ => return None,
        };
        Some(json!([{
            "type": "Completed",
            "status": "True",
            "reason": obj["status"]["phase"],
            "message": message,
        }]))
    }
}

const AGE_DESC: &str =
    "CreationTimestamp is a timestamp representing the server time when this object was created.";

fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

fn len(v: &Value) -> usize {
    match v {
        Value::Object(m) => m.len(),
        Value::Array(a) => a.len(),
        _ => 0,
    }
}

/// `spec.replicas`, which the server defaults to 1.
fn replicas(spec: &Value) -> i64 {
    spec["replicas"].as_i64().unwrap_or(1)
}

fn strs<'a>(v: &'a Value, field: &str) -> Vec<&'a str> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c[field].as_str())
        .collect()
}

fn workload_wide_cells(spec: &Value) -> Vec<Value> {
    let containers = &spec["template"]["spec"]["containers"];
    vec![
        json!(strs(containers, "name").join(",")),
        json!(strs(containers, "image").join(",")),
        json!(label_selector(&spec["selector"])),
    ]
}

/// A label selector as the real server prints it: requirements sorted by key
/// (`app=web,tier in (a,b),!legacy`), or `<none>` for an empty selector.
pub(super) fn label_selector(sel: &Value) -> String {
    let mut parts: Vec<(String, String)> = sel["matchLabels"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), format!("{k}={}", v.as_str().unwrap_or_default())))
        .collect();
    for e in sel["matchExpressions"].as_array().into_iter().flatten() {
        let key = e["key"].as_str().unwrap_or_default();
        let mut values: Vec<&str> = e["values"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        values.sort_unstable();
        let text = match e["operator"].as_str().unwrap_or_default() {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" => key.to_string(),
            "DoesNotExist" => format!("!{key}"),
            other => format!("{key} {other} ({})", values.join(",")),
        };
        parts.push((key.to_string(), text));
    }
    if parts.is_empty() {
        return NONE.to_string();
    }
    parts.sort_by(|a, b| a.0.cmp(&b.0));
    let texts: Vec<String> = parts.into_iter().map(|(_, t)| t).collect();
    texts.join(",")
}

/// `k=v,...` of a plain label map (sorted), or `<none>`.
fn label_map(m: &Value) -> String {
    let parts: Vec<String> = m
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect();
    if parts.is_empty() {
        NONE.to_string()
    } else {
        parts.join(",")
    }
}

fn created_at(obj: &Value) -> Value {
    match obj["metadata"]["creationTimestamp"]
        .as_str()
        .and_then(parse_time)
    {
        Some(t) => json!(t.to_rfc3339_opts(SecondsFormat::Secs, true)),
        None => Value::Null,
    }
}

// ---------------------------------------------------------------------------------------------
// Pods

/// Restart count, the latest container termination, and what kubectl shows as STATUS / READY.
struct PodSummary {
    reason: String,
    ready: usize,
    total: usize,
    restarts: i64,
    last_restart: Option<DateTime<Utc>>,
}

fn pod_cells(pod: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let s = summarise_pod(pod);
    let restarts = match s.last_restart {
        Some(t) => format!("{} ({} ago)", s.restarts, human_duration(now - t)),
        None => s.restarts.to_string(),
    };
    let status = &pod["status"];
    let ip = status["podIP"]
        .as_str()
        .filter(|s| !s.is_empty())
        .or_else(|| status["podIPs"][0]["ip"].as_str())
        .unwrap_or(NONE);
    let node = pod["spec"]["nodeName"]
        .as_str()
        .filter(|s| !s.is_empty())
        .unwrap_or(NONE);
    let nominated = status["nominatedNodeName"]
        .as_str()
        .filter(|s| !s.is_empty())
        .unwrap_or(NONE);
    vec![
        json!(name_of(pod)),
        json!(format!("{}/{}", s.ready, s.total)),
        json!(s.reason),
        json!(restarts),
        json!(since(&pod["metadata"]["creationTimestamp"], now)),
        json!(ip),
        json!(node),
        json!(nominated),
        json!(readiness_gates(pod)),
    ]
}

fn readiness_gates(pod: &Value) -> String {
    let gates = strs(&pod["spec"]["readinessGates"], "conditionType");
    if gates.is_empty() {
        return NONE.to_string();
    }
    let conditions = pod["status"]["conditions"].as_array();
    let passed = gates
        .iter()
        .filter(|g| {
            conditions
                .into_iter()
                .flatten()
                .any(|c| c["type"].as_str() == Some(g) && c["status"] == "True")
        })
        .count();
    format!("{passed}/{}", gates.len())
}

fn has_condition(pod: &Value, type_: &str) -> bool {
    pod["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == type_ && c["status"] == "True")
}

fn later(a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, y) => x.or(y),
    }
}

fn finished_at(cs: &Value) -> Option<DateTime<Utc>> {
    cs["lastState"]["terminated"]["finishedAt"]
        .as_str()
        .and_then(parse_time)
}

/// Sidecar init containers (`restartPolicy: Always`) count as regular containers.
fn restartable_init_containers(pod: &Value) -> Vec<&str> {
    pod["spec"]["initContainers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["restartPolicy"] == "Always")
        .filter_map(|c| c["name"].as_str())
        .collect()
}

fn summarise_pod(pod: &Value) -> PodSummary {
    let status = &pod["status"];
    let phase = status["phase"].as_str().unwrap_or_default();
    let sidecars = restartable_init_containers(pod);
    let mut s = PodSummary {
        reason: status["reason"]
            .as_str()
            .filter(|r| !r.is_empty())
            .unwrap_or(phase)
            .to_string(),
        ready: 0,
        total: len(&pod["spec"]["containers"]) + sidecars.len(),
        restarts: 0,
        last_restart: None,
    };
    let gated = status["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "PodScheduled" && c["reason"] == "SchedulingGated");
    if gated {
        s.reason = "SchedulingGated".to_string();
    }
    let init = summarise_init_containers(pod, &sidecars, &mut s);
    if !init.initializing || has_condition(pod, "Initialized") {
        summarise_containers(pod, &mut s);
    } else {
        s.restarts = init.restarts;
        s.last_restart = init.last_restart;
    }
    if !pod["metadata"]["deletionTimestamp"].is_null() {
        if status["reason"] == "NodeLost" {
            s.reason = "Unknown".to_string();
        } else if phase != "Succeeded" && phase != "Failed" {
            s.reason = "Terminating".to_string();
        }
    }
    s
}

/// What the init containers say about a pod.
struct InitSummary {
    initializing: bool,
    /// Restarts of every init container (shown while initialising).
    restarts: i64,
    last_restart: Option<DateTime<Utc>>,
}

/// Walks init container statuses, setting the init reason while the pod initialises.
/// Only sidecar restarts and readiness go into `s`.
fn summarise_init_containers(pod: &Value, sidecars: &[&str], s: &mut PodSummary) -> InitSummary {
    let statuses = pod["status"]["initContainerStatuses"].as_array();
    let declared = len(&pod["spec"]["initContainers"]);
    let mut initializing = false;
    let (mut all_restarts, mut all_last) = (0, None);
    for (i, cs) in statuses.into_iter().flatten().enumerate() {
        let restarts = int(&cs["restartCount"]);
        all_restarts += restarts;
        all_last = later(all_last, finished_at(cs));
        let sidecar = cs["name"].as_str().is_some_and(|n| sidecars.contains(&n));
        if sidecar {
            s.restarts += restarts;
            s.last_restart = later(s.last_restart, finished_at(cs));
        }
        let state = &cs["state"];
        let terminated = &state["terminated"];
        if terminated.is_object() && int(&terminated["exitCode"]) == 0 {
            continue;
        }
        if sidecar && cs["started"] == true {
            if cs["ready"] == true {
                s.ready += 1;
            }
            continue;
        }
        let waiting_reason = state["waiting"]["reason"].as_str().unwrap_or_default();
        s.reason = if terminated.is_object() {
            match terminated["reason"].as_str().filter(|r| !r.is_empty()) {
                Some(r) => format!("Init:{r}"),
                None => exit_reason("Init:", terminated),
            }
        } else if !waiting_reason.is_empty() && waiting_reason != "PodInitializing" {
            format!("Init:{waiting_reason}")
        } else {
            format!("Init:{i}/{declared}")
        };
        initializing = true;
        break;
    }
    InitSummary {
        initializing,
        restarts: all_restarts,
        last_restart: all_last,
    }
}

fn exit_reason(prefix: &str, terminated: &Value) -> String {
    let signal = int(&terminated["signal"]);
    if signal != 0 {
        format!("{prefix}Signal:{signal}")
    } else {
        format!("{prefix}ExitCode:{}", int(&terminated["exitCode"]))
    }
}

fn summarise_containers(pod: &Value, s: &mut PodSummary) {
    let mut has_running = false;
    let statuses = pod["status"]["containerStatuses"].as_array();
    for cs in statuses.into_iter().flatten().rev() {
        s.restarts += int(&cs["restartCount"]);
        s.last_restart = later(s.last_restart, finished_at(cs));
        let state = &cs["state"];
        let waiting = state["waiting"]["reason"].as_str().unwrap_or_default();
        let terminated = &state["terminated"];
        let terminated_reason = terminated["reason"].as_str().unwrap_or_default();
        if !waiting.is_empty() {
            s.reason = waiting.to_string();
        } else if !terminated_reason.is_empty() {
            s.reason = terminated_reason.to_string();
        } else if terminated.is_object() {
            s.reason = exit_reason("", terminated);
        } else if cs["ready"] == true && state["running"].is_object() {
            has_running = true;
            s.ready += 1;
        }
    }
    if s.reason == "Completed" && has_running {
        s.reason = if has_condition(pod, "Ready") {
            "Running"
        } else {
            "NotReady"
        }
        .to_string();
    }
}

// ---------------------------------------------------------------------------------------------
// Services

fn service_cells(svc: &Value, name: Value, age: Value) -> Vec<Value> {
    let spec = &svc["spec"];
    let type_ = spec["type"].as_str().unwrap_or("ClusterIP");
    let cluster_ip = spec["clusterIPs"][0]
        .as_str()
        .or_else(|| spec["clusterIP"].as_str())
        .filter(|s| !s.is_empty())
        .unwrap_or(NONE);
    vec![
        name,
        json!(type_),
        json!(cluster_ip),
        json!(external_ip(svc, type_)),
        json!(ports(&spec["ports"])),
        age,
        json!(label_map(&spec["selector"])),
    ]
}

fn external_ip(svc: &Value, type_: &str) -> String {
    let external: Vec<&str> = svc["spec"]["externalIPs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let joined_or = |list: Vec<&str>, fallback: &str| {
        if list.is_empty() {
            fallback.to_string()
        } else {
            list.join(",")
        }
    };
    match type_ {
        "ClusterIP" | "NodePort" => joined_or(external, NONE),
        "LoadBalancer" => {
            let mut ips: Vec<&str> = svc["status"]["loadBalancer"]["ingress"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|i| {
                    i["ip"]
                        .as_str()
                        .filter(|s| !s.is_empty())
                        .or_else(|| i["hostname"].as_str())
                })
                .collect();
            ips.extend(external);
            joined_or(ips, "<pending>")
        }
        "ExternalName" => svc["spec"]["externalName"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        _ => "<unknown>".to_string(),
    }
}

fn ports(ports: &Value) -> String {
    let parts: Vec<String> = ports
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let protocol = p["protocol"].as_str().unwrap_or("TCP");
            match p["nodePort"].as_i64().filter(|n| *n != 0) {
                Some(node) => format!("{}:{node}/{protocol}", int(&p["port"])),
                None => format!("{}/{protocol}", int(&p["port"])),
            }
        })
        .collect();
    if parts.is_empty() {
        NONE.to_string()
    } else {
        parts.join(",")
    }
}

// ---------------------------------------------------------------------------------------------
// Jobs

fn job_cells(job: &Value, name: Value, age: Value, now: DateTime<Utc>) -> Vec<Value> {
    let (spec, status) = (&job["spec"], &job["status"]);
    let succeeded = int(&status["succeeded"]);
    let completions = match spec["completions"].as_i64() {
        Some(c) => format!("{succeeded}/{c}"),
        None => match spec["parallelism"].as_i64().filter(|p| *p > 1) {
            Some(p) => format!("{succeeded}/1 of {p}"),
            None => format!("{succeeded}/1"),
        },
    };
    let start = status["startTime"].as_str().and_then(parse_time);
    let end = status["completionTime"].as_str().and_then(parse_time);
    let duration = match (start, end) {
        (None, _) => String::new(),
        (Some(s), None) => human_duration(now - s),
        (Some(s), Some(e)) => human_duration(e - s),
    };
    let mut cells = vec![
        name,
        json!(job_status(job)),
        json!(completions),
        json!(duration),
        age,
    ];
    cells.extend(workload_wide_cells(spec));
    cells
}

fn job_status(job: &Value) -> &'static str {
    let has = |t: &str| {
        job["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == t && c["status"] == "True")
    };
    if !job["metadata"]["deletionTimestamp"].is_null() {
        "Terminating"
    } else if has("Complete") {
        "Complete"
    } else if has("Failed") {
        "Failed"
    } else if has("SuccessCriteriaMet") {
        "SuccessCriteriaMet"
    } else if has("FailureTarget") {
        "FailureTarget"
    } else if has("Suspended") {
        "Suspended"
    } else {
        "Running"
    }
}

// ---------------------------------------------------------------------------------------------
// Events

fn event_columns() -> Vec<Column> {
    let c = Column::new;
    vec![
        c("Last Seen", "string", 0, "Time of the last occurrence."),
        c("Type", "string", 0, "Type of this event (Normal, Warning)."),
        c(
            "Reason",
            "string",
            0,
            "Short, machine understandable reason for the event.",
        ),
        c("Object", "string", 0, "The object this event is about."),
        c(
            "Subobject",
            "string",
            1,
            "The field of the object this event is about.",
        ),
        c("Source", "string", 1, "The component reporting this event."),
        c(
            "Message",
            "string",
            0,
            "A human-readable description of the event.",
        ),
        c("First Seen", "string", 1, "Time of the first occurrence."),
        c(
            "Count",
            "integer",
            1,
            "Number of times this event has occurred.",
        ),
        Column {
            format: "name".to_string(),
            ..c("Name", "string", 1, "Name of the event.")
        },
    ]
}

/// The fields the event printer needs, from a core/v1 or an events.k8s.io/v1 Event.
struct EventView<'a> {
    obj: &'a Value,
    regarding: &'a Value,
    message: &'a Value,
    component: &'a Value,
    host: &'a Value,
    first: &'a Value,
    last: &'a Value,
    count: &'a Value,
}

impl<'a> EventView<'a> {
    fn core(e: &'a Value) -> Self {
        Self {
            obj: e,
            regarding: &e["involvedObject"],
            message: &e["message"],
            component: &e["source"]["component"],
            host: &e["source"]["host"],
            first: &e["firstTimestamp"],
            last: &e["lastTimestamp"],
            count: &e["count"],
        }
    }

    fn events_v1(e: &'a Value) -> Self {
        let controller = &e["reportingController"];
        Self {
            obj: e,
            regarding: &e["regarding"],
            message: &e["note"],
            component: if controller.is_null() {
                &e["deprecatedSource"]["component"]
            } else {
                controller
            },
            host: &e["deprecatedSource"]["host"],
            first: &e["deprecatedFirstTimestamp"],
            last: &e["deprecatedLastTimestamp"],
            count: &e["deprecatedCount"],
        }
    }
}

fn first_time<'a>(candidates: &[&'a Value]) -> &'a Value {
    candidates
        .iter()
        .find(|v| v.as_str().is_some_and(|s| !s.is_empty()))
        .copied()
        .unwrap_or(&Value::Null)
}

fn event_cells(e: &EventView<'_>, now: DateTime<Utc>) -> Vec<Value> {
    let obj = e.obj;
    let series = &obj["series"];
    let last = first_time(&[&series["lastObservedTime"], e.last, &obj["eventTime"]]);
    let first = first_time(&[e.first, &obj["eventTime"]]);
    let count = series["count"]
        .as_i64()
        .or_else(|| e.count.as_i64())
        .unwrap_or(1);
    let kind = e.regarding["kind"]
        .as_str()
        .unwrap_or_default()
        .to_lowercase();
    let object = format!(
        "{kind}/{}",
        e.regarding["name"].as_str().unwrap_or_default()
    );
    let component = e.component.as_str().unwrap_or_default();
    let source = match e.host.as_str().filter(|h| !h.is_empty()) {
        Some(h) => format!("{component}, {h}"),
        None => component.to_string(),
    };
    vec![
        json!(since(last, now)),
        json!(obj["type"].as_str().unwrap_or_default()),
        json!(obj["reason"].as_str().unwrap_or_default()),
        json!(object),
        json!(e.regarding["fieldPath"].as_str().unwrap_or_default()),
        json!(source),
        json!(e.message.as_str().unwrap_or_default().trim()),
        json!(since(first, now)),
        json!(count),
        json!(name_of(obj)),
    ]
}
