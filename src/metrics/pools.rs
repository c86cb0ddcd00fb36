//! Pool and allocation metrics, recorded by the pool and sandbox actors and the SDK API.

use chrono::{DateTime, Utc};

use crate::actors::pool_policy::PoolStatusCounts;
use crate::cache::ObjKey;
use crate::crd::pool::CapacitySpec;

/// A pool's pods by state and its capacity bounds, after a turn's plan.
pub fn observe(key: &ObjKey, counts: &PoolStatusCounts, terminating: usize, cap: &CapacitySpec) {
    let m = super::get();
    let (ns, pool) = (key.0.as_str(), key.1.as_str());
    let pending = counts
        .total
        .saturating_sub(counts.allocated)
        .saturating_sub(counts.available);
    for (state, v) in [
        ("idle", i64::from(counts.available)),
        ("allocated", i64::from(counts.allocated)),
        ("pending", i64::from(pending)),
        ("terminating", terminating as i64),
    ] {
        m.pool_pods.with_label_values(&[ns, pool, state]).set(v);
    }
    // Zero-valued series exist from the start, so rates and alerts see them.
    for path in ["warm", "cold"] {
        m.allocations.with_label_values(&[ns, pool, path]);
    }
    for reason in FAILURE_REASONS {
        m.allocation_failures.with_label_values(&[ns, pool, reason]);
    }
    for direction in ["up", "down"] {
        m.pool_scale_events
            .with_label_values(&[ns, pool, direction]);
    }
    m.pool_buffer_target
        .with_label_values(&[ns, pool, "min"])
        .set(i64::from(cap.buffer_min));
    m.pool_buffer_target
        .with_label_values(&[ns, pool, "max"])
        .set(i64::from(cap.buffer_max));
    m.pool_capacity_limit
        .with_label_values(&[ns, pool, "min"])
        .set(i64::from(cap.pool_min));
    m.pool_capacity_limit
        .with_label_values(&[ns, pool, "max"])
        .set(i64::from(cap.pool_max));
}

/// Reasons of `opensandbox_allocation_failures_total`.
pub const FAILURE_REASONS: [&str; 4] = [
    "reserved_create",
    "ledger_write",
    "ready_timeout",
    "pod_failed",
];

/// A pool that is gone exports nothing any more.
pub fn forget(key: &ObjKey) {
    let m = super::get();
    let (ns, pool) = (key.0.as_str(), key.1.as_str());
    for state in ["idle", "allocated", "pending", "terminating"] {
        let _ = m.pool_pods.remove_label_values(&[ns, pool, state]);
    }
    for bound in ["min", "max"] {
        let _ = m.pool_buffer_target.remove_label_values(&[ns, pool, bound]);
        let _ = m
            .pool_capacity_limit
            .remove_label_values(&[ns, pool, bound]);
    }
}

/// A turn of the pool created (`created > 0`) or scaled in (`scaled_in > 0`) pods.
pub fn scaled(namespace: &str, pool: &str, created: usize, scaled_in: usize) {
    let m = super::get();
    if created > 0 {
        m.pool_scale_events
            .with_label_values(&[namespace, pool, "up"])
            .inc();
    }
    if scaled_in > 0 {
        m.pool_scale_events
            .with_label_values(&[namespace, pool, "down"])
            .inc();
    }
}

/// How a sandbox got its pool pods.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Path {
    /// Idle pods reserved at create time.
    Warm,
    /// A pool turn after the sandbox waited for pods.
    Cold,
}

pub fn allocated(namespace: &str, pool: &str, path: Path, sandboxes: usize) {
    let label = match path {
        Path::Warm => "warm",
        Path::Cold => "cold",
    };
    super::get()
        .allocations
        .with_label_values(&[namespace, pool, label])
        .inc_by(sandboxes as u64);
}

pub fn failed(namespace: &str, pool: &str, reason: &str) {
    super::get()
        .allocation_failures
        .with_label_values(&[namespace, pool, reason])
        .inc();
}

/// Sandboxes a turn's ledger writes hand new pods to.
pub fn newly_served(
    ledgers: &[(crate::actors::allocation::LedgerWrite, String, Vec<String>)],
) -> std::collections::HashSet<String> {
    ledgers
        .iter()
        .filter(|(w, _, _)| !w.newly_allocated.is_empty())
        .map(|(w, _, _)| w.sandbox.clone())
        .collect()
}

/// The outcome of one ledger write of a pool turn. A conflict or a sandbox deleted
/// meanwhile is not a failure: the next turn allocates on fresh state.
pub fn ledger_written(
    namespace: &str,
    pool: &str,
    fresh: &std::collections::HashSet<String>,
    sandbox: &str,
    result: &Result<(), kube::Error>,
) {
    match result {
        Ok(()) if fresh.contains(sandbox) => allocated(namespace, pool, Path::Cold, 1),
        Ok(()) => {}
        Err(kube::Error::Api(s)) if s.code == 409 || s.code == 404 => {}
        Err(_) => failed(namespace, pool, "ledger_write"),
    }
}

/// [`failed`], passing `err` through.
pub fn failed_with<E>(namespace: &str, pool: Option<&str>, reason: &str, err: E) -> E {
    failed(namespace, pool.unwrap_or(""), reason);
    err
}

/// An SDK create finished with an allocated, addressable sandbox.
pub fn create_served(namespace: &str, pool: Option<&str>, seconds: f64) {
    super::get()
        .allocation_seconds
        .with_label_values(&[namespace, pool.unwrap_or("")])
        .observe(seconds);
}

/// Seconds from creation to Ready, and from the moment the sandbox could first be Ready
/// (its last pod Ready, or its creation for pods that were Ready in the pool before) to
/// now, when a sandbox becomes Ready.
pub fn ready_latencies(
    created: Option<DateTime<Utc>>,
    pods_ready_since: impl IntoIterator<Item = Option<DateTime<Utc>>>,
    now: DateTime<Utc>,
) -> (Option<f64>, Option<f64>) {
    let secs = |from: DateTime<Utc>| ((now - from).num_milliseconds().max(0) as f64) / 1000.0;
    let last_ready = pods_ready_since.into_iter().flatten().max();
    let could_be_ready = match (last_ready, created) {
        (Some(r), Some(c)) => Some(r.max(c)),
        (r, _) => r,
    };
    (created.map(secs), could_be_ready.map(secs))
}

/// A sandbox became Ready (all its replicas) as this controller sees it.
pub fn sandbox_ready(
    namespace: &str,
    pool: Option<&str>,
    created: Option<DateTime<Utc>>,
    pods_ready_since: impl IntoIterator<Item = Option<DateTime<Utc>>>,
) {
    let m = super::get();
    let labels = [namespace, pool.unwrap_or("")];
    let (total, propagation) = ready_latencies(created, pods_ready_since, Utc::now());
    if let Some(s) = total {
        m.sandbox_ready_seconds
            .with_label_values(&labels)
            .observe(s);
    }
    if let Some(s) = propagation {
        m.ready_propagation_seconds
            .with_label_values(&labels)
            .observe(s);
    }
}

/// A sandbox status is about to be written; records the latencies when it turns Ready.
/// `previous` holds the cached status and the last one this actor wrote (the cache may
/// not show it yet): a sandbox is counted once.
pub fn sandbox_status_written(
    bs: &crate::crd::BatchSandbox,
    previous: [Option<&crate::crd::BatchSandboxStatus>; 2],
    next: &crate::crd::BatchSandboxStatus,
    pods: &[std::sync::Arc<crate::cache::PodInfo>],
    first_seen: DateTime<Utc>,
) {
    if !is_ready(next) || previous.iter().flatten().any(|s| is_ready(s)) {
        return;
    }
    let created = bs
        .metadata
        .creation_timestamp
        .as_ref()
        .map(|t| creation_time(crate::cache::objects::to_chrono(&t.0), first_seen));
    sandbox_ready(
        bs.metadata.namespace.as_deref().unwrap_or_default(),
        bs.spec.pool_ref.as_deref(),
        created,
        pods.iter().map(|p| p.ready_since),
    );
}

/// `creationTimestamp` has whole seconds: when the controller first saw the object within
/// that second, that moment (a watch event's delay after the create) is the better estimate.
pub fn creation_time(timestamp: DateTime<Utc>, first_seen: DateTime<Utc>) -> DateTime<Utc> {
    let after = first_seen - timestamp;
    if after >= chrono::Duration::zero() && after < chrono::Duration::seconds(1) {
        first_seen
    } else {
        timestamp
    }
}

/// All replicas of a status are Ready.
pub fn is_ready(status: &crate::crd::BatchSandboxStatus) -> bool {
    status.replicas > 0 && status.ready >= status.replicas
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn creation_time_refines_whole_seconds_with_the_first_sighting() {
        let ts = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 5).unwrap();
        let seen = ts + chrono::Duration::milliseconds(730);
        assert_eq!(creation_time(ts, seen), seen);
        // Seen much later (a controller restart) or before: the timestamp stands.
        assert_eq!(creation_time(ts, ts + chrono::Duration::seconds(30)), ts);
        assert_eq!(
            creation_time(ts, ts - chrono::Duration::milliseconds(1)),
            ts
        );
    }

    #[test]
    fn ready_latencies_use_creation_and_the_last_pod_ready() {
        let t = |s: i64| Utc.timestamp_opt(1_000 + s, 0).single();
        let (total, prop) = ready_latencies(t(0), [t(3), None, t(5)], t(6).unwrap_or_default());
        assert_eq!(total, Some(6.0));
        assert_eq!(prop, Some(1.0));
        // Pool pods Ready long before the sandbox: propagation counts from its creation.
        let (total, prop) = ready_latencies(t(4), [t(-100)], t(6).unwrap_or_default());
        assert_eq!((total, prop), (Some(2.0), Some(2.0)));
        let (total, prop) = ready_latencies(None, [None], t(6).unwrap_or_default());
        assert_eq!((total, prop), (None, None));
        // Clock skew never yields a negative latency.
        let (_, prop) = ready_latencies(None, [t(9)], t(6).unwrap_or_default());
        assert_eq!(prop, Some(0.0));
    }

    #[test]
    fn pending_pods_are_the_rest_of_the_live_ones() {
        let key = ("ns-metrics-test".to_string(), "p".to_string());
        let counts = PoolStatusCounts {
            total: 7,
            allocated: 2,
            available: 3,
            updated: 7,
        };
        let cap = CapacitySpec {
            buffer_max: 4,
            buffer_min: 2,
            pool_max: 10,
            pool_min: 1,
        };
        observe(&key, &counts, 1, &cap);
        let m = super::super::get();
        let get = |s: &str| {
            m.pool_pods
                .with_label_values(&[key.0.as_str(), key.1.as_str(), s])
                .get()
        };
        assert_eq!(
            (
                get("idle"),
                get("allocated"),
                get("pending"),
                get("terminating")
            ),
            (3, 2, 2, 1)
        );
        forget(&key);
    }
}
