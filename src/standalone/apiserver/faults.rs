//! Fault injection for reliability tests: latency, errors, pauses.

use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::watch;

/// A rule matching requests by verb and resource (`None` matches any).
#[derive(Clone, Debug, Default)]
pub struct FaultRule {
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`.
    pub verb: Option<String>,
    /// Resource plural, optionally with a subresource (`pods`, `batchsandboxes/status`).
    pub resource: Option<String>,
    /// Added before the request is served.
    pub latency: Duration,
    /// Probability in [0, 1] of answering `error_code` instead of serving.
    pub error_rate: f64,
    pub error_code: u16,
    /// Stop applying after this many matched requests.
    pub remaining: Option<u64>,
}

impl FaultRule {
    pub fn latency(verb: Option<&str>, resource: Option<&str>, latency: Duration) -> Self {
        Self {
            verb: verb.map(str::to_string),
            resource: resource.map(str::to_string),
            latency,
            ..Default::default()
        }
    }

    pub fn error(verb: Option<&str>, resource: Option<&str>, rate: f64, code: u16) -> Self {
        Self {
            verb: verb.map(str::to_string),
            resource: resource.map(str::to_string),
            error_rate: rate,
            error_code: code,
            ..Default::default()
        }
    }

    /// Applies to at most `n` requests.
    pub fn times(mut self, n: u64) -> Self {
        self.remaining = Some(n);
        self
    }

    fn matches(&self, verb: &str, resource: &str) -> bool {
        self.verb.as_deref().is_none_or(|v| v == verb)
            && self
                .resource
                .as_deref()
                .is_none_or(|r| r == resource || resource.split('/').next() == Some(r))
    }
}

/// What the server must do for one request.
#[derive(Debug, Default, PartialEq)]
pub struct FaultDecision {
    pub latency: Duration,
    pub error: Option<u16>,
}

/// The set of active rules and the pause switch.
pub struct Faults {
    rules: Mutex<Vec<FaultRule>>,
    paused: watch::Sender<bool>,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            rules: Mutex::new(Vec::new()),
            paused: watch::channel(false).0,
        }
    }
}

impl Faults {
    pub fn add(&self, rule: FaultRule) {
        self.rules.lock().push(rule);
    }

    pub fn clear(&self) {
        self.rules.lock().clear();
    }

    /// While paused, every request waits until [`Faults::resume`].
    pub fn pause(&self) {
        self.paused.send_replace(true);
    }

    pub fn resume(&self) {
        self.paused.send_replace(false);
    }

    pub async fn wait_unpaused(&self) {
        let mut rx = self.paused.subscribe();
        // An error means the sender is gone, which cannot happen while `self` lives.
        let _ = rx.wait_for(|p| !*p).await;
    }

    pub fn decide(&self, verb: &str, resource: &str) -> FaultDecision {
        let mut out = FaultDecision::default();
        let mut rules = self.rules.lock();
        for rule in rules.iter_mut() {
            if !rule.matches(verb, resource) || rule.remaining == Some(0) {
                continue;
            }
            if let Some(n) = rule.remaining.as_mut() {
                *n -= 1;
            }
            out.latency += rule.latency;
            if out.error.is_none() && rule.error_rate > 0.0 && roll() < rule.error_rate {
                out.error = Some(rule.error_code);
            }
        }
        rules.retain(|r| r.remaining != Some(0));
        out
    }
}

fn roll() -> f64 {
    let b = uuid::Uuid::new_v4();
    let n = u32::from_le_bytes([
        b.as_bytes()[0],
        b.as_bytes()[1],
        b.as_bytes()[2],
        b.as_bytes()[3],
    ]);
    n as f64 / u32::MAX as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_match_and_expire() {
        let f = Faults::default();
        f.add(FaultRule::error(Some("patch"), Some("pods"), 1.0, 409).times(1));
        assert_eq!(f.decide("get", "pods").error, None);
        assert_eq!(f.decide("patch", "pods/status").error, Some(409));
        assert_eq!(f.decide("patch", "pods").error, None);
    }
}
