//! Pure Lease record logic: who holds it, whether it is still live, and the next record.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;

use crate::crd::keys::ANNOTATION_LEADER_API_ADDRESS;

/// The non-empty holder of a record, if any.
pub(super) fn holder(spec: &LeaseSpec) -> Option<&str> {
    spec.holder_identity.as_deref().filter(|h| !h.is_empty())
}

/// The SDK API address the holder published on the Lease.
pub(super) fn advertised_address(lease: &Lease) -> Option<String> {
    lease
        .metadata
        .annotations
        .as_ref()?
        .get(ANNOTATION_LEADER_API_ADDRESS)
        .filter(|a| !a.is_empty())
        .cloned()
}

/// Publishes `address` on the Lease, or removes a stale one (a released lease or a
/// replica that serves no API must not attract forwarded requests).
pub(super) fn set_advertised_address(meta: &mut ObjectMeta, address: Option<&str>) {
    match address {
        Some(a) => {
            meta.annotations
                .get_or_insert_with(Default::default)
                .insert(ANNOTATION_LEADER_API_ADDRESS.to_string(), a.to_string());
        }
        None => {
            if let Some(annotations) = meta.annotations.as_mut() {
                annotations.remove(ANNOTATION_LEADER_API_ADDRESS);
            }
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_advertised_address_is_published_and_removed() {
        let mut lease = Lease::default();
        assert_eq!(advertised_address(&lease), None);
        set_advertised_address(&mut lease.metadata, Some("http://10.0.0.7:8080"));
        assert_eq!(
            advertised_address(&lease).as_deref(),
            Some("http://10.0.0.7:8080")
        );
        set_advertised_address(&mut lease.metadata, None);
        assert_eq!(advertised_address(&lease), None);
        set_advertised_address(&mut lease.metadata, Some(""));
        assert_eq!(advertised_address(&lease), None, "empty means none");
    }
}
