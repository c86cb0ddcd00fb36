//! Pure Lease record logic: who holds it, whether it is still live, and the next record.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::LeaseSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;

/// The non-empty holder of a record, if any.
pub(super) fn holder(spec: &LeaseSpec) -> Option<&str> {
    spec.holder_identity.as_deref().filter(|h| !h.is_empty())
}

/// The last record we saw and when we first saw it, on our monotonic clock.
///
/// Expiry is judged from when *we* observed a change, never from the holder's wall clock
/// `renewTime`, so clock skew between nodes cannot make us take over a live lease.
#[derive(Debug, Default)]
pub(super) struct Observer {
    seen: Option<(LeaseSpec, Instant)>,
}

impl Observer {
    pub(super) fn observe(&mut self, spec: &LeaseSpec, now: Instant) {
        match &self.seen {
            Some((old, _)) if old == spec => {}
            _ => self.seen = Some((spec.clone(), now)),
        }
    }

    /// Another identity whose lease has not expired as we observed it.
    pub(super) fn live_other_holder(
        &self,
        identity: &str,
        now: Instant,
        fallback: Duration,
    ) -> Option<&str> {
        let (spec, seen_at) = self.seen.as_ref()?;
        let other = holder(spec).filter(|h| *h != identity)?;
        let secs = spec.lease_duration_seconds.filter(|s| *s > 0);
        let duration = secs.map_or(fallback, |s| Duration::from_secs(s.unsigned_abs().into()));
        (*seen_at + duration > now).then_some(other)
    }
}

/// The record to write to take or keep the lease.
pub(super) fn claimed(old: Option<&LeaseSpec>, identity: &str, lease_seconds: i32) -> LeaseSpec {
    let now = Some(MicroTime(Timestamp::now()));
    let ours = old.and_then(holder) == Some(identity);
    let transitions = old.and_then(|s| s.lease_transitions).unwrap_or(0);
    let (acquire_time, lease_transitions) = match old {
        None => (now.clone(), 0),
        Some(o) if ours => (o.acquire_time.clone().or(now.clone()), transitions),
        Some(_) => (now.clone(), transitions.saturating_add(1)),
    };
    LeaseSpec {
        holder_identity: Some(identity.to_string()),
        lease_duration_seconds: Some(lease_seconds),
        acquire_time,
        renew_time: now,
        lease_transitions: Some(lease_transitions),
        ..old.cloned().unwrap_or_default()
    }
}

/// The record that hands the lease back: no holder and a 1 s duration, so a follower that
/// still trusts an older observation waits at most one more second.
pub(super) fn released(old: &LeaseSpec) -> LeaseSpec {
    LeaseSpec {
        holder_identity: None,
        lease_duration_seconds: Some(1),
        acquire_time: None,
        renew_time: Some(MicroTime(Timestamp::now())),
        ..old.clone()
    }
}
