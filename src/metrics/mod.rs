//! Prometheus metrics of the manager, in one registry served at `/metrics`.
//!
//! Labels are bounded: namespace, pool, kind, verb, resource, route, code and small fixed
//! enums. A sandbox or pod name is never a label.

use std::sync::OnceLock;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

pub mod actors;
pub mod api;
pub mod cache;
pub mod pools;
pub mod process;

/// Every metric the manager exports.
pub struct Metrics {
    pub registry: Registry,
    // Cache and informers.
    pub informer_events: IntCounterVec,
    pub informer_relists: IntCounterVec,
    pub informer_errors: IntCounterVec,
    pub informer_watch_restarts: IntCounterVec,
    pub informer_last_event_age: prometheus::GaugeVec,
    pub cache_objects: IntGaugeVec,
    pub cache_pod_bytes: IntGauge,
    // Kubernetes client.
    pub kube_requests: IntCounterVec,
    pub kube_request_seconds: HistogramVec,
    pub kube_rate_limit_waits: IntCounter,
    pub kube_rate_limit_wait_seconds: prometheus::Histogram,
    // Actors.
    pub actor_turns: IntCounterVec,
    pub actor_turn_seconds: HistogramVec,
    pub actors_live: IntGaugeVec,
    pub actor_mailbox_depth: IntGaugeVec,
    pub actor_messages: IntCounterVec,
    pub actor_handler_seconds: HistogramVec,
    // Pools.
    pub pool_reservations: IntCounterVec,
    pub pool_pods: IntGaugeVec,
    pub pool_buffer_target: IntGaugeVec,
    pub pool_capacity_limit: IntGaugeVec,
    pub pool_scale_events: IntCounterVec,
    // Allocation.
    pub allocation_seconds: HistogramVec,
    pub sandbox_ready_seconds: HistogramVec,
    pub ready_propagation_seconds: HistogramVec,
    pub allocations: IntCounterVec,
    pub allocation_failures: IntCounterVec,
    // SDK API.
    pub api_requests: IntCounterVec,
    pub api_request_seconds: HistogramVec,
    pub api_rate_limited: IntCounterVec,
    // Events.
    pub events_written: IntCounterVec,
    pub events_suppressed: IntCounterVec,
    // Leader election.
    pub leader: IntGauge,
    pub leader_transitions: IntCounter,
    pub process: process::ProcessMetrics,
}

fn malformed(name: &str, e: prometheus::Error) -> ! {
    panic!("metric {name} is malformed: {e}")
}

fn counter(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    IntCounterVec::new(Opts::new(name, help), labels).unwrap_or_else(|e| malformed(name, e))
}

fn counter1(name: &str, help: &str) -> IntCounter {
    IntCounter::new(name, help).unwrap_or_else(|e| malformed(name, e))
}

fn gauge_vec(name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    IntGaugeVec::new(Opts::new(name, help), labels).unwrap_or_else(|e| malformed(name, e))
}

/// Buckets for fast in-process work (actor turns, API calls, client requests).
const FAST: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];
/// Buckets for allocation and readiness, which include pod start-up.
const SLOW: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

fn histogram(name: &str, help: &str, labels: &[&str], buckets: &[f64]) -> HistogramVec {
    HistogramVec::new(
        HistogramOpts::new(name, help).buckets(buckets.to_vec()),
        labels,
    )
    .unwrap_or_else(|e| malformed(name, e))
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
                "Full lists, by reason: initial, periodic, or after a watch error or 410 Gone",
                &["kind", "reason"],
            ),
            informer_errors: counter(
                "opensandbox_informer_errors_total",
                "Watch errors (retried with backoff)",
                &["kind"],
            ),
            informer_watch_restarts: counter(
                "opensandbox_informer_watch_restarts_total",
                "Watch streams started again, by reason: error (after backoff) or periodic",
                &["kind", "reason"],
            ),
            informer_last_event_age: prometheus::GaugeVec::new(
                Opts::new(
                    "opensandbox_informer_last_event_age_seconds",
                    "Seconds since the informer last applied an event or list",
                ),
                &["kind"],
            )
            .unwrap_or_else(|e| malformed("opensandbox_informer_last_event_age_seconds", e)),
            cache_objects: gauge_vec(
                "opensandbox_cache_objects",
                "Objects in the informer cache",
                &["kind"],
            ),
            cache_pod_bytes: IntGauge::new(
                "opensandbox_cache_pod_bytes",
                "Approximate bytes of cached pods",
            )
            .unwrap_or_else(|e| malformed("opensandbox_cache_pod_bytes", e)),
            kube_requests: counter(
                "opensandbox_kube_requests_total",
                "Kubernetes API requests",
                &["verb", "resource", "code"],
            ),
            kube_request_seconds: histogram(
                "opensandbox_kube_request_duration_seconds",
                "Kubernetes API request latency (watches excluded)",
                &["verb"],
                FAST,
            ),
            kube_rate_limit_waits: counter1(
                "opensandbox_kube_client_rate_limit_waits_total",
                "Kubernetes requests that waited for the client-side rate limiter",
            ),
            kube_rate_limit_wait_seconds: prometheus::Histogram::with_opts(
                HistogramOpts::new(
                    "opensandbox_kube_client_rate_limit_wait_seconds",
                    "Time requests waited for the client-side rate limiter",
                )
                .buckets(FAST.to_vec()),
            )
            .unwrap_or_else(|e| malformed("opensandbox_kube_client_rate_limit_wait_seconds", e)),
            actor_turns: counter(
                "opensandbox_actor_turns_total",
                "Actor reconcile turns",
                &["kind", "result"],
            ),
            actor_turn_seconds: histogram(
                "opensandbox_actor_turn_duration_seconds",
                "Actor turn latency",
                &["kind"],
                FAST,
            ),
            actors_live: gauge_vec("opensandbox_actors", "Running actors by kind", &["kind"]),
            actor_mailbox_depth: gauge_vec(
                "opensandbox_actor_mailbox_depth",
                "Messages sent to actors of a kind and not handled yet",
                &["kind"],
            ),
            actor_messages: counter(
                "opensandbox_actor_messages_total",
                "Messages actors handled",
                &["kind", "message"],
            ),
            actor_handler_seconds: histogram(
                "opensandbox_actor_handler_duration_seconds",
                "Time an actor's message handler ran",
                &["kind", "message"],
                FAST,
            ),
            pool_reservations: counter(
                "opensandbox_pool_reservations_total",
                "Pooled sandbox creates served from idle pods by the pool's actor",
                &["result"],
            ),
            pool_pods: gauge_vec(
                "opensandbox_pool_pods",
                "Pool pods by state: idle, allocated, pending, terminating",
                &["namespace", "pool", "state"],
            ),
            pool_buffer_target: gauge_vec(
                "opensandbox_pool_buffer_target",
                "Idle pods the pool keeps (spec.capacitySpec bufferMin/bufferMax)",
                &["namespace", "pool", "bound"],
            ),
            pool_capacity_limit: gauge_vec(
                "opensandbox_pool_capacity_limit",
                "Total pods the pool is bounded to (spec.capacitySpec poolMin/poolMax)",
                &["namespace", "pool", "bound"],
            ),
            pool_scale_events: counter(
                "opensandbox_pool_scale_events_total",
                "Turns in which a pool created (up) or scaled in (down) pods",
                &["namespace", "pool", "direction"],
            ),
            allocation_seconds: histogram(
                "opensandbox_allocation_duration_seconds",
                "SDK create request to sandbox allocated with an address",
                &["namespace", "pool"],
                SLOW,
            ),
            sandbox_ready_seconds: histogram(
                "opensandbox_batchsandbox_ready_duration_seconds",
                "BatchSandbox creation (the controller's first sighting within its whole-second creationTimestamp) to all replicas Ready",
                &["namespace", "pool"],
                SLOW,
            ),
            ready_propagation_seconds: histogram(
                "opensandbox_ready_propagation_duration_seconds",
                "Last pod Ready (or the sandbox's creation, for pods Ready before) to the controller seeing the sandbox Ready",
                &["namespace", "pool"],
                SLOW,
            ),
            allocations: counter(
                "opensandbox_allocations_total",
                "Sandboxes given pool pods: warm (idle pods at create) or cold (a later pool turn)",
                &["namespace", "pool", "path"],
            ),
            allocation_failures: counter(
                "opensandbox_allocation_failures_total",
                "Failed allocations by reason",
                &["namespace", "pool", "reason"],
            ),
            api_requests: counter(
                "opensandbox_api_requests_total",
                "SDK API requests by route pattern, method and status code",
                &["route", "method", "code"],
            ),
            api_request_seconds: histogram(
                "opensandbox_api_request_duration_seconds",
                "SDK API request latency",
                &["route", "method"],
                SLOW,
            ),
            api_rate_limited: counter(
                "opensandbox_api_rate_limited_total",
                "SDK API requests refused with 429",
                &["route"],
            ),
            events_written: counter(
                "opensandbox_events_written_total",
                "Kubernetes Events created or updated, by reason",
                &["reason", "write"],
            ),
            events_suppressed: counter(
                "opensandbox_events_suppressed_total",
                "Event occurrences folded into an existing Event or dropped by rate limits",
                &["reason", "why"],
            ),
            leader: IntGauge::new("opensandbox_leader", "1 while this replica is the leader")
                .unwrap_or_else(|e| malformed("opensandbox_leader", e)),
            leader_transitions: counter1(
                "opensandbox_leader_transitions_total",
                "Times this replica gained or lost leadership",
            ),
            process: process::ProcessMetrics::new(),
        };
        let collectors: Vec<Box<dyn prometheus::core::Collector>> = vec![
            Box::new(m.informer_events.clone()),
            Box::new(m.informer_relists.clone()),
            Box::new(m.informer_errors.clone()),
            Box::new(m.informer_watch_restarts.clone()),
            Box::new(m.informer_last_event_age.clone()),
            Box::new(m.cache_objects.clone()),
            Box::new(m.cache_pod_bytes.clone()),
            Box::new(m.kube_requests.clone()),
            Box::new(m.kube_request_seconds.clone()),
            Box::new(m.kube_rate_limit_waits.clone()),
            Box::new(m.kube_rate_limit_wait_seconds.clone()),
            Box::new(m.actor_turns.clone()),
            Box::new(m.actor_turn_seconds.clone()),
            Box::new(m.actors_live.clone()),
            Box::new(m.actor_mailbox_depth.clone()),
            Box::new(m.actor_messages.clone()),
            Box::new(m.actor_handler_seconds.clone()),
            Box::new(m.pool_reservations.clone()),
            Box::new(m.pool_pods.clone()),
            Box::new(m.pool_buffer_target.clone()),
            Box::new(m.pool_capacity_limit.clone()),
            Box::new(m.pool_scale_events.clone()),
            Box::new(m.allocation_seconds.clone()),
            Box::new(m.sandbox_ready_seconds.clone()),
            Box::new(m.ready_propagation_seconds.clone()),
            Box::new(m.allocations.clone()),
            Box::new(m.allocation_failures.clone()),
            Box::new(m.api_requests.clone()),
            Box::new(m.api_request_seconds.clone()),
            Box::new(m.api_rate_limited.clone()),
            Box::new(m.events_written.clone()),
            Box::new(m.events_suppressed.clone()),
            Box::new(m.leader.clone()),
            Box::new(m.leader_transitions.clone()),
        ];
        for c in collectors.into_iter().chain(m.process.collectors()) {
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

/// The text exposition of every metric, with the scrape-time gauges refreshed.
pub fn render() -> String {
    let m = get();
    m.process.refresh();
    cache::refresh_ages();
    let mut buf = Vec::new();
    let _ = TextEncoder::new().encode(&m.registry.gather(), &mut buf);
    String::from_utf8(buf).unwrap_or_default()
}

/// Records a leadership change seen by this replica.
pub fn set_leader(is_leader: bool) {
    let m = get();
    let was = m.leader.get() == 1;
    if was != is_leader {
        m.leader_transitions.inc();
    }
    m.leader.set(i64::from(is_leader));
}

/// A Kubernetes request waited `seconds` for the client-side rate limiter.
pub fn kube_rate_limit_waited(seconds: f64) {
    let m = get();
    m.kube_rate_limit_waits.inc();
    m.kube_rate_limit_wait_seconds.observe(seconds);
}
