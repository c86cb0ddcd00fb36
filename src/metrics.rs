//! Prometheus metrics of the manager, in one registry served at `/metrics`.

use std::sync::OnceLock;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

/// Every metric the manager exports.
pub struct Metrics {
    pub registry: Registry,
    pub informer_events: IntCounterVec,
    pub informer_relists: IntCounterVec,
    pub informer_errors: IntCounterVec,
    pub kube_requests: IntCounterVec,
    pub kube_request_seconds: HistogramVec,
    pub actor_turns: IntCounterVec,
    pub actor_turn_seconds: HistogramVec,
    pub pool_reservations: IntCounterVec,
    pub pool_pods: IntGaugeVec,
    pub cache_objects: IntGaugeVec,
    pub cache_pod_bytes: IntGauge,
    pub leader: IntGauge,
}

fn counter(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    IntCounterVec::new(Opts::new(name, help), labels)
        .unwrap_or_else(|e| panic!("metric {name} is malformed: {e}"))
}

fn gauge_vec(name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    IntGaugeVec::new(Opts::new(name, help), labels)
        .unwrap_or_else(|e| panic!("metric {name} is malformed: {e}"))
}

fn histogram(name: &str, help: &str, labels: &[&str]) -> HistogramVec {
    let buckets = vec![
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
    ];
    HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), labels)
        .unwrap_or_else(|e| panic!("metric {name} is malformed: {e}"))
}

impl Metrics {
    fn new() -> Self {
        let m = Self {
            registry: Registry::new(),
            informer_events: counter(
                "opensandbox_informer_events_total",
                "Watch events applied to the cache",
                &["kind", "event"],
            ),
            informer_relists: counter(
                "opensandbox_informer_relists_total",
                "Full lists (initial, after 410, periodic)",
                &["kind"],
            ),
            informer_errors: counter(
                "opensandbox_informer_errors_total",
                "Watch errors (retried with backoff)",
                &["kind"],
            ),
            kube_requests: counter(
                "opensandbox_kube_requests_total",
                "Kubernetes API requests",
                &["verb", "resource", "code"],
            ),
            kube_request_seconds: histogram(
                "opensandbox_kube_request_duration_seconds",
                "Kubernetes API request latency",
                &["verb"],
            ),
            actor_turns: counter(
                "opensandbox_actor_turns_total",
                "Actor reconcile turns",
                &["kind", "result"],
            ),
            actor_turn_seconds: histogram(
                "opensandbox_actor_turn_duration_seconds",
                "Actor turn latency",
                &["kind"],
            ),
            pool_reservations: counter(
                "opensandbox_pool_reservations_total",
                "Pooled sandbox creates served from idle pods by the pool's actor",
                &["result"],
            ),
            pool_pods: gauge_vec(
                "opensandbox_pool_pods",
                "Pool pods by state",
                &["namespace", "pool", "state"],
            ),
            cache_objects: gauge_vec(
                "opensandbox_cache_objects",
                "Objects in the informer cache",
                &["kind"],
            ),
            cache_pod_bytes: IntGauge::new(
                "opensandbox_cache_pod_bytes",
                "Approximate bytes of cached pods",
            )
            .unwrap_or_else(|e| panic!("metric is malformed: {e}")),
            leader: IntGauge::new("opensandbox_leader", "1 while this replica is the leader")
                .unwrap_or_else(|e| panic!("metric is malformed: {e}")),
        };
        let collectors: Vec<Box<dyn prometheus::core::Collector>> = vec![
            Box::new(m.informer_events.clone()),
            Box::new(m.informer_relists.clone()),
            Box::new(m.informer_errors.clone()),
            Box::new(m.kube_requests.clone()),
            Box::new(m.kube_request_seconds.clone()),
            Box::new(m.actor_turns.clone()),
            Box::new(m.actor_turn_seconds.clone()),
            Box::new(m.pool_reservations.clone()),
            Box::new(m.pool_pods.clone()),
            Box::new(m.cache_objects.clone()),
            Box::new(m.cache_pod_bytes.clone()),
            Box::new(m.leader.clone()),
        ];
        for c in collectors {
            // Names are unique constants; registration cannot collide.
            let _ = m.registry.register(c);
        }
        m
    }
}

/// The process-wide metrics.
pub fn get() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

/// The text exposition of every metric.
pub fn render() -> String {
    let mut buf = Vec::new();
    let _ = TextEncoder::new().encode(&get().registry.gather(), &mut buf);
    String::from_utf8(buf).unwrap_or_default()
}
