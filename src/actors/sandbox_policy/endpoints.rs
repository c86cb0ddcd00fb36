//! The `sandbox.opensandbox.io/endpoints` annotation (§7.8).

use std::sync::Arc;

use crate::cache::objects::PodInfo;

/// Pod IP per listed pod, in the given (index) order; `""` for a pod with no IP yet.
pub fn endpoints(pods: &[Arc<PodInfo>]) -> Vec<String> {
    pods.iter()
        .map(|p| p.pod_ip.clone().unwrap_or_default())
        .collect()
}

/// Whether the annotation must be written: it differs from `next`, except that an absent
/// annotation is not created just to say `[]`. An unreadable annotation is rewritten.
pub fn endpoints_changed(current: Option<&str>, next: &[String]) -> bool {
    match current {
        None => !next.is_empty(),
        Some(raw) => serde_json::from_str::<Vec<String>>(raw).map_or(true, |cur| cur != next),
    }
}
