//! Observability of an end-to-end run: the `/metrics` exposition parses with a real
//! Prometheus parser and every family holds values that match the run; the Grafana
//! dashboard queries only metrics that exist; Kubernetes Events are aggregated and
//! rate-limited; and the logs (debug level, JSON and text) never contain the API key or
//! an access token.

mod common;

use std::collections::{BTreeSet, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use common::{
    api_server, eventually, free_addr, http_json, kubelet, metric_value as value, pool_json, scrape,
};
use k8s_openapi::api::core::v1::Event;
use k8s_openapi::api::core::v1::{ObjectReference, Pod};
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use opensandbox::actors::events::{EventPolicy, EventSink, Occurrence};
use opensandbox::crd::{BatchSandbox, Pool};
use opensandbox::http::lifecycle::ServerConfig;
use opensandbox::kubeclient::ClientLimits;
use opensandbox::manager::{Manager, ManagerOptions};
use opensandbox::standalone::apiserver::ApiServer;
use prometheus_parse::{Scrape, Value as Sample};
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(30);
const API_KEY: &str = "obs-test-key-5b1d0c7e9a";
const KEY_HEADER: &str = "OPEN-SANDBOX-API-KEY";

/// Every family the manager exports, by area.
const FAMILIES: &[&str] = &[
    // pools
    "opensandbox_pool_pods",
    "opensandbox_pool_buffer_target",
    "opensandbox_pool_capacity_limit",
    "opensandbox_pool_scale_events_total",
    "opensandbox_pool_reservations_total",
    // allocation
    "opensandbox_allocation_duration_seconds",
    "opensandbox_batchsandbox_ready_duration_seconds",
    "opensandbox_ready_propagation_duration_seconds",
    "opensandbox_allocations_total",
    "opensandbox_allocation_failures_total",
    // Kubernetes client
    "opensandbox_kube_requests_total",
    "opensandbox_kube_request_duration_seconds",
    "opensandbox_kube_client_rate_limit_waits_total",
    "opensandbox_kube_client_rate_limit_wait_seconds",
    // cache
    "opensandbox_cache_objects",
    "opensandbox_cache_pod_bytes",
    "opensandbox_informer_events_total",
    "opensandbox_informer_relists_total",
    "opensandbox_informer_last_event_age_seconds",
    // actors
    "opensandbox_actors",
    "opensandbox_actor_mailbox_depth",
    "opensandbox_actor_messages_total",
    "opensandbox_actor_handler_duration_seconds",
    "opensandbox_actor_turns_total",
    "opensandbox_actor_turn_duration_seconds",
    // API
    "opensandbox_api_requests_total",
    "opensandbox_api_request_duration_seconds",
    "opensandbox_api_rate_limited_total",
    // events
    "opensandbox_events_written_total",
    // leader and process
    "opensandbox_leader",
    "opensandbox_leader_transitions_total",
    "process_resident_memory_bytes",
    "process_cpu_seconds_total",
    "process_open_fds",
    "process_threads",
];

/// Log lines captured by a test-wide subscriber: JSON and text, both at debug level.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

fn logs() -> &'static (Captured, Captured) {
    static LOGS: OnceLock<(Captured, Captured)> = OnceLock::new();
    LOGS.get_or_init(|| {
        use tracing_subscriber::layer::SubscriberExt;
        let (json, text) = (Captured::default(), Captured::default());
        let subscriber = tracing_subscriber::registry()
            .with(tracing_subscriber::EnvFilter::new("debug"))
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(json.clone()),
            )
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(false)
                    .with_writer(text.clone()),
            );
        tracing::subscriber::set_global_default(subscriber).unwrap();
        (json, text)
    })
}

fn has_family(s: &Scrape, name: &str) -> bool {
    s.docs.contains_key(name) && s.samples.iter().any(|x| x.metric == name)
}

async fn sdk(addr: SocketAddr, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let (code, _, answer) = http_json(addr, method, path, &[(KEY_HEADER, API_KEY)], body).await;
    (code, answer)
}

/// A pooled create, or (no pool) a template sandbox with secure access.
fn create_body(pool: Option<&str>) -> Value {
    let mut body = json!({"timeout": 600, "entrypoint": ["tail", "-f", "/dev/null"],
        "image": {"uri": "busybox:1.36"}, "resourceLimits": {"cpu": "100m", "memory": "64Mi"}});
    match pool {
        Some(p) => body["extensions"] = json!({"poolRef": p}),
        None => body["secureAccess"] = json!(true),
    }
    body
}

async fn start_manager(s: &ApiServer) -> (Manager, SocketAddr, SocketAddr) {
    let (api, metrics) = (free_addr(), free_addr());
    let opts = ManagerOptions {
        identity: "obs".into(),
        metrics_addr: Some(metrics),
        api: Some((
            api,
            ServerConfig {
                api_key: Some(API_KEY.into()),
                sandbox_create_timeout_seconds: 20,
                ..ServerConfig::default()
            },
        )),
        ..ManagerOptions::default()
    };
    // A small client burst makes the rate limiter wait during start-up.
    let limits = ClientLimits {
        qps: 500.0,
        burst: 2,
    };
    let m = Manager::start(s.instrumented_client(limits), &opts)
        .await
        .unwrap();
    (m, api, metrics)
}

fn pool_key(name: &str) -> (String, String) {
    ("default".to_string(), name.to_string())
}

async fn event_reasons(s: &ApiServer) -> BTreeSet<String> {
    Api::<Event>::namespaced(s.client(), "default")
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|e| e.reason)
        .collect()
}

#[actix_rt::test]
async fn an_end_to_end_run_is_observable() {
    let (json_logs, text_logs) = logs();
    let s = api_server().await;
    let _k = kubelet(&s);
    let (m, api, metrics) = start_manager(&s).await;

    // Pool fill.
    let pool: Pool = serde_json::from_value(pool_json("obs", 4, 4, 0, 20)).unwrap();
    Api::<Pool>::namespaced(s.client(), "default")
        .create(&PostParams::default(), &pool)
        .await
        .unwrap();
    eventually("pool warm", T, || async {
        m.cache
            .pool(&pool_key("obs"))
            .and_then(|p| p.status.clone())
            .is_some_and(|st| st.available >= 4)
    })
    .await;

    // Pooled creates served from idle pods, and a template sandbox with an access token.
    let mut ids = Vec::new();
    for pool in [Some("obs"), Some("obs"), Some("obs"), None] {
        let (code, body) = sdk(api, "POST", "/v1/sandboxes", Some(create_body(pool))).await;
        assert_eq!(code, 202, "{body}");
        ids.push(body["id"].as_str().unwrap().to_string());
    }
    let secure = ids.pop().unwrap();
    let (code, _) = sdk(
        api,
        "GET",
        &format!("/v1/sandboxes/{secure}/endpoints/44772"),
        None,
    )
    .await;
    assert_eq!(code, 200);
    // A call without the key is refused.
    let (code, _, _) = http_json(api, "GET", "/v1/sandboxes", &[], None).await;
    assert_eq!(code, 401);

    // A batch of two template pods, and one that expires at once.
    let batch = json!({"apiVersion": "sandbox.opensandbox.io/v1alpha1", "kind": "BatchSandbox",
        "metadata": {"name": "batch", "namespace": "default"},
        "spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "main", "image": "busybox:1.36"}]}}}});
    let expiring = json!({"apiVersion": "sandbox.opensandbox.io/v1alpha1", "kind": "BatchSandbox",
        "metadata": {"name": "short", "namespace": "default"},
        "spec": {"replicas": 1, "poolRef": "obs",
                 "expireTime": (chrono::Utc::now() + chrono::Duration::seconds(2)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)}});
    let sandboxes = Api::<BatchSandbox>::namespaced(s.client(), "default");
    for b in [batch, expiring] {
        let b: BatchSandbox = serde_json::from_value(b).unwrap();
        sandboxes.create(&PostParams::default(), &b).await.unwrap();
    }
    // An invalid pool: a template without containers.
    let mut invalid = pool_json("bad", 1, 1, 0, 2);
    invalid["spec"]["template"]["spec"]["containers"] = json!([]);
    let invalid: Pool = serde_json::from_value(invalid).unwrap();
    Api::<Pool>::namespaced(s.client(), "default")
        .create(&PostParams::default(), &invalid)
        .await
        .unwrap();

    // Delete one sandbox through the API: its pod is released.
    let (code, _) = sdk(api, "DELETE", &format!("/v1/sandboxes/{}", ids[2]), None).await;
    assert_eq!(code, 204);

    // An idle pool pod dies: the pool replaces it.
    let held: HashSet<String> = sandboxes
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .flat_map(|bs| {
            opensandbox::crd::ledger::Ledger::from_annotations(bs.metadata.annotations.as_ref())
                .map(|l| l.held())
                .unwrap_or_default()
        })
        .collect();
    let pods = Api::<Pod>::namespaced(s.client(), "default");
    let idle = pods
        .list(&ListParams::default().labels("app=sandbox"))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|p| p.metadata.name)
        .find(|n| !held.contains(n))
        .expect("an idle pool pod");
    pods.patch_status(
        &idle,
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"phase": "Failed"}})),
    )
    .await
    .unwrap();

    // Every decision a human wants in `kubectl describe` is an Event.
    let want: BTreeSet<String> = [
        "ScaledUp",
        "Allocated",
        "Released",
        "ReplacedDeadPod",
        "Expired",
        "InvalidSpec",
    ]
    .iter()
    .map(|r| r.to_string())
    .collect();
    eventually("events of every decision", T, || async {
        event_reasons(&s).await.is_superset(&want)
    })
    .await;
    eventually("expired sandbox gone", T, || async {
        sandboxes.get_opt("short").await.unwrap().is_none()
    })
    .await;
    eventually("batch ready", T, || async {
        sandboxes
            .get("batch")
            .await
            .unwrap()
            .status
            .is_some_and(|st| st.ready == 2)
    })
    .await;

    // Metrics: wait until the pool gauges settle, then check every family.
    let live_sandboxes = || async {
        sandboxes
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len()
    };
    eventually("pool gauges settled", T, || async {
        let x = scrape(metrics).await;
        let l = |state| [("pool", "obs"), ("state", state)];
        value(&x, "opensandbox_pool_pods", &l("allocated")) == 2.0
            && value(&x, "opensandbox_pool_pods", &l("idle")) == 4.0
            && value(&x, "opensandbox_pool_pods", &l("pending")) == 0.0
            && value(&x, "opensandbox_pool_pods", &l("terminating")) == 0.0
            && value(&x, "opensandbox_cache_objects", &[("kind", "batchsandbox")])
                == live_sandboxes().await as f64
    })
    .await;
    let x = scrape(metrics).await;
    for f in FAMILIES {
        assert!(has_family(&x, f), "family {f} missing");
    }
    let obs = [("namespace", "default"), ("pool", "obs")];
    let with = |extra: (&'static str, &'static str)| {
        let mut v = obs.to_vec();
        v.push(extra);
        v
    };
    // Pools.
    assert_eq!(
        value(
            &x,
            "opensandbox_pool_buffer_target",
            &with(("bound", "min"))
        ),
        4.0
    );
    assert_eq!(
        value(
            &x,
            "opensandbox_pool_capacity_limit",
            &with(("bound", "max"))
        ),
        20.0
    );
    assert!(
        value(
            &x,
            "opensandbox_pool_scale_events_total",
            &with(("direction", "up"))
        ) >= 1.0
    );
    // Allocation: three warm SDK creates, one cold (the expiring sandbox waited for a turn).
    assert_eq!(
        value(&x, "opensandbox_allocations_total", &with(("path", "warm"))),
        3.0
    );
    assert!(value(&x, "opensandbox_allocations_total", &with(("path", "cold"))) >= 1.0);
    assert_eq!(
        value(
            &x,
            "opensandbox_pool_reservations_total",
            &[("result", "created")]
        ),
        3.0
    );
    let failures: Vec<_> = x
        .samples
        .iter()
        .filter(|s| s.metric == "opensandbox_allocation_failures_total")
        .filter(|s| s.labels.get("pool") == Some("obs"))
        .filter(|s| !matches!(s.value, Sample::Counter(v) if v == 0.0))
        .map(|s| format!("{:?} {:?}", s.labels.get("reason"), s.value))
        .collect();
    assert_eq!(
        value(&x, "opensandbox_allocation_failures_total", &obs),
        0.0,
        "{failures:?}"
    );
    assert_eq!(
        value(&x, "opensandbox_allocation_duration_seconds_count", &obs),
        3.0
    );
    let ready = value(
        &x,
        "opensandbox_batchsandbox_ready_duration_seconds_count",
        &[],
    );
    assert_eq!(
        ready, 6.0,
        "4 SDK sandboxes, the batch and the expiring one, each counted once"
    );
    assert!(
        value(
            &x,
            "opensandbox_ready_propagation_duration_seconds_count",
            &[]
        ) == 6.0
    );
    // Kubernetes client: the three pooled creates went through it.
    assert!(
        value(
            &x,
            "opensandbox_kube_requests_total",
            &[
                ("verb", "create"),
                ("resource", "batchsandboxes"),
                ("code", "201")
            ]
        ) >= 3.0
    );
    let requests = value(&x, "opensandbox_kube_requests_total", &[]);
    let watches = value(&x, "opensandbox_kube_requests_total", &[("verb", "watch")]);
    assert_eq!(
        value(&x, "opensandbox_kube_request_duration_seconds_count", &[]),
        requests - watches
    );
    let waits = value(&x, "opensandbox_kube_client_rate_limit_waits_total", &[]);
    assert!(waits > 0.0, "a burst of 2 makes start-up wait");
    assert_eq!(
        value(
            &x,
            "opensandbox_kube_client_rate_limit_wait_seconds_count",
            &[]
        ),
        waits
    );
    // Cache.
    assert_eq!(
        value(&x, "opensandbox_cache_objects", &[("kind", "pool")]),
        2.0
    );
    assert!(
        value(
            &x,
            "opensandbox_informer_relists_total",
            &[("kind", "pod"), ("reason", "initial")]
        ) >= 1.0
    );
    assert!(
        value(
            &x,
            "opensandbox_informer_events_total",
            &[("kind", "batchsandbox")]
        ) >= 5.0
    );
    let age = value(
        &x,
        "opensandbox_informer_last_event_age_seconds",
        &[("kind", "pod")],
    );
    assert!((0.0..60.0).contains(&age), "{age}");
    // Actors.
    assert_eq!(value(&x, "opensandbox_actors", &[("kind", "pool")]), 2.0);
    assert_eq!(
        value(&x, "opensandbox_actors", &[("kind", "batchsandbox")]),
        live_sandboxes().await as f64
    );
    assert_eq!(
        value(
            &x,
            "opensandbox_actor_messages_total",
            &[("kind", "pool"), ("message", "reserve")]
        ),
        3.0
    );
    assert!(
        value(
            &x,
            "opensandbox_actor_messages_total",
            &[("kind", "batchsandbox"), ("message", "wake")]
        ) >= 5.0
    );
    for kind in ["pool", "batchsandbox"] {
        let depth = value(&x, "opensandbox_actor_mailbox_depth", &[("kind", kind)]);
        assert!(
            (0.0..100.0).contains(&depth),
            "{kind} mailbox depth {depth}"
        );
    }
    assert!(
        value(
            &x,
            "opensandbox_actor_turn_duration_seconds_count",
            &[("kind", "pool")]
        ) >= 1.0
    );
    // API.
    let api_count = |route, method, code| {
        value(
            &x,
            "opensandbox_api_requests_total",
            &[("route", route), ("method", method), ("code", code)],
        )
    };
    assert_eq!(api_count("/v1/sandboxes", "POST", "202"), 4.0);
    assert_eq!(api_count("/v1/sandboxes", "GET", "401"), 1.0);
    assert_eq!(
        api_count("/v1/sandboxes/:id/endpoints/:port", "GET", "200"),
        1.0
    );
    let routes: Vec<String> = x
        .samples
        .iter()
        .filter(|s| s.metric == "opensandbox_api_requests_total")
        .map(|s| format!("{} {:?}", s.labels, s.value))
        .collect();
    assert_eq!(
        api_count("/v1/sandboxes/:id", "DELETE", "204"),
        1.0,
        "{routes:?}"
    );
    assert_eq!(
        value(
            &x,
            "opensandbox_api_request_duration_seconds_count",
            &[("route", "/v1/sandboxes"), ("method", "POST")]
        ),
        4.0
    );
    assert_eq!(value(&x, "opensandbox_api_rate_limited_total", &[]), 0.0);
    // Events, leader, process.
    assert!(
        value(
            &x,
            "opensandbox_events_written_total",
            &[("reason", "Allocated"), ("write", "create")]
        ) >= 1.0
    );
    assert_eq!(value(&x, "opensandbox_leader", &[]), 1.0);
    assert_eq!(value(&x, "opensandbox_leader_transitions_total", &[]), 1.0);
    assert!(value(&x, "process_resident_memory_bytes", &[]) > 1e6);
    assert!(value(&x, "process_cpu_seconds_total", &[]) > 0.0);
    assert!(value(&x, "process_open_fds", &[]) >= 3.0);
    assert!(value(&x, "process_threads", &[]) >= 2.0);

    // The dashboard asks only for metrics that exist.
    let exported: HashSet<String> = x
        .samples
        .iter()
        .map(|s| s.metric.clone())
        .chain(x.docs.keys().cloned())
        .collect();
    for name in dashboard_metric_names() {
        let base = ["_bucket", "_count", "_sum"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix))
            .unwrap_or(&name);
        assert!(
            exported.contains(&name) || exported.contains(base),
            "the dashboard queries {name}, which the manager does not export"
        );
    }

    // Logs: no secret in either format, and JSON lines carry the request id.
    m.shutdown().await;
    let bs = sandboxes.get(&secure).await.unwrap();
    let token = opensandbox::http::lifecycle::workload::access_token(&bs)
        .expect("a secureAccess sandbox carries a token")
        .to_string();
    let (json_text, plain) = (json_logs.text(), text_logs.text());
    assert!(json_text.lines().count() > 50 && plain.lines().count() > 50);
    for secret in [API_KEY.to_string(), token] {
        assert!(!json_text.contains(&secret), "a secret is in the JSON logs");
        assert!(!plain.contains(&secret), "a secret is in the text logs");
    }
    let mut with_request_id = 0;
    for line in json_text.lines() {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        if v["span"]["request_id"].is_string() {
            with_request_id += 1;
        }
    }
    assert!(
        with_request_id >= 6,
        "request lines with a request id: {with_request_id}"
    );
    assert!(plain.contains("request_id="));
}

/// Metric names in every panel expression of the shipped dashboard.
fn dashboard_metric_names() -> BTreeSet<String> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/helm/opensandbox-controller/files/dashboards/opensandbox.json"
    );
    let dash: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut exprs = Vec::new();
    collect_exprs(&dash, &mut exprs);
    assert!(exprs.len() >= 8, "dashboard has panels with queries");
    let name = regex::Regex::new(r"\b(opensandbox_[a-z_]+|process_[a-z_]+)\b").unwrap();
    let names: BTreeSet<String> = exprs
        .iter()
        .flat_map(|e| name.find_iter(e).map(|m| m.as_str().to_string()))
        .collect();
    assert!(!names.is_empty());
    names
}

fn collect_exprs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                match (k.as_str(), x) {
                    ("expr", Value::String(e)) => out.push(e.clone()),
                    _ => collect_exprs(x, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| collect_exprs(x, out)),
        _ => {}
    }
}

/// A burst of a thousand allocations writes a bounded number of Event objects, and
/// repeats of one reason on one object become one Event whose count says how many.
#[actix_rt::test]
async fn an_event_burst_writes_a_bounded_number_of_events() {
    let s = api_server().await;
    let policy = EventPolicy {
        patch_interval: Duration::from_millis(200),
        ..EventPolicy::default()
    };
    let sink = EventSink::with_policy(s.client(), "test".into(), "burst".into(), policy);
    let reference = |kind: &str, name: &str| ObjectReference {
        api_version: Some("sandbox.opensandbox.io/v1alpha1".into()),
        kind: Some(kind.into()),
        namespace: Some("default".into()),
        name: Some(name.into()),
        uid: Some(format!("uid-{name}")),
        ..Default::default()
    };
    for i in 0..1000 {
        sink.publish(Occurrence {
            regarding: reference("Pool", "p"),
            warning: false,
            reason: "ScaledUp".into(),
            action: "Scale".into(),
            note: format!("Created {i} pool pods"),
        });
        sink.publish(Occurrence {
            regarding: reference("BatchSandbox", &format!("sb-{i}")),
            warning: false,
            reason: "Allocated".into(),
            action: "Allocate".into(),
            note: "Holds pool pods".into(),
        });
    }
    let events = Api::<Event>::namespaced(s.client(), "default");
    let pool_series = || async {
        events
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .iter()
            .filter(|e| e.reason.as_deref() == Some("ScaledUp"))
            .map(|e| e.count.unwrap_or(1))
            .collect::<Vec<i32>>()
    };
    let deadline = tokio::time::Instant::now() + T;
    while pool_series().await != [1000] {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the pool's Events: {:?}",
            pool_series().await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let all = events.list(&ListParams::default()).await.unwrap().items;
    let scaled = all
        .iter()
        .filter(|e| e.reason.as_deref() == Some("ScaledUp"))
        .count();
    assert_eq!(scaled, 1, "one Event for the pool's repeats");
    assert!(
        all.len() <= policy.global,
        "{} Events for 2,000 occurrences; the global limit is {}",
        all.len(),
        policy.global
    );
    assert!(all.len() > 10, "the first sandboxes still got their Events");
}
