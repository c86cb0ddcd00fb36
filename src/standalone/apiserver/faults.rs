//! Fault injection for reliability tests: latency (fixed plus random jitter), errors,
//! pauses, and a schedule that drops every watch and compacts the history periodically.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A rule matching requests by verb and resource (`None` matches any).
#[derive(Clone, Debug, Default)]
pub struct FaultRule {
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`.
    pub verb: Option<String>,
    /// Resource plural, optionally with a subresource (`pods`, `batchsandboxes/status`).
    pub resource: Option<String>,
    /// Added before the request is served.
    pub latency: Duration,
    /// A further delay drawn uniformly from `[0, jitter]` per request.
    pub jitter: Duration,
    /// Only requests whose `User-Agent` starts with this (`None`: every client).
    pub agent_prefix: Option<String>,
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

    /// Adds a random delay of up to `max` per matched request.
    pub fn jitter(mut self, max: Duration) -> Self {
        self.jitter = max;
        self
    }

    /// Applies only to clients whose `User-Agent` starts with `prefix`.
    pub fn for_agent(mut self, prefix: &str) -> Self {
        self.agent_prefix = Some(prefix.to_string());
        self
    }

    fn matches(&self, verb: &str, resource: &str, agent: &str) -> bool {
        self.agent_prefix
            .as_deref()
            .is_none_or(|p| agent.starts_with(p))
            && self.verb.as_deref().is_none_or(|v| v == verb)
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

/// How many faults were injected since the server started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultCounts {
    /// Requests answered with an injected error.
    pub errors: u64,
    /// Requests delayed by a rule.
    pub delayed: u64,
    /// Times every open watch was closed.
    pub watch_drops: u64,
    /// Times the event history was forgotten.
    pub compactions: u64,
}

#[derive(Default)]
struct Counters {
    errors: AtomicU64,
    delayed: AtomicU64,
    watch_drops: AtomicU64,
    compactions: AtomicU64,
}

/// The set of active rules, the pause switch and the random source of error rolls and
/// jitter (seedable, so a failing run can be replayed).
pub struct Faults {
    rules: Mutex<Vec<FaultRule>>,
    paused: watch::Sender<bool>,
    rng: Mutex<SplitMix64>,
    counters: Counters,
}

impl Default for Faults {
    fn default() -> Self {
        let seed = u64::from_le_bytes(
            uuid::Uuid::new_v4().as_bytes()[..8]
                .try_into()
                .unwrap_or_default(),
        );
        Self {
            rules: Mutex::new(Vec::new()),
            paused: watch::channel(false).0,
            rng: Mutex::new(SplitMix64(seed)),
            counters: Counters::default(),
        }
    }
}

impl Faults {
    /// Makes the error rolls and jitter a deterministic sequence.
    pub fn seed(&self, seed: u64) {
        *self.rng.lock() = SplitMix64(seed);
    }

    pub fn counts(&self) -> FaultCounts {
        let c = &self.counters;
        FaultCounts {
            errors: c.errors.load(Ordering::Relaxed),
            delayed: c.delayed.load(Ordering::Relaxed),
            watch_drops: c.watch_drops.load(Ordering::Relaxed),
            compactions: c.compactions.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn note_watch_drop(&self) {
        self.counters.watch_drops.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn note_compaction(&self) {
        self.counters.compactions.fetch_add(1, Ordering::Relaxed);
    }

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

    /// The faults for a request from any client.
    pub fn decide(&self, verb: &str, resource: &str) -> FaultDecision {
        self.decide_for(verb, resource, "")
    }

    /// The faults for a request from the client with `User-Agent` `agent`.
    pub fn decide_for(&self, verb: &str, resource: &str, agent: &str) -> FaultDecision {
        let mut out = FaultDecision::default();
        let mut rules = self.rules.lock();
        let mut rng = self.rng.lock();
        for rule in rules.iter_mut() {
            if !rule.matches(verb, resource, agent) || rule.remaining == Some(0) {
                continue;
            }
            if let Some(n) = rule.remaining.as_mut() {
                *n -= 1;
            }
            out.latency += rule.latency;
            if !rule.jitter.is_zero() {
                out.latency += rule.jitter.mul_f64(rng.unit());
            }
            if out.error.is_none() && rule.error_rate > 0.0 && rng.unit() < rule.error_rate {
                out.error = Some(rule.error_code);
            }
        }
        rules.retain(|r| r.remaining != Some(0));
        if out.error.is_some() {
            self.counters.errors.fetch_add(1, Ordering::Relaxed);
        }
        if !out.latency.is_zero() {
            self.counters.delayed.fetch_add(1, Ordering::Relaxed);
        }
        out
    }
}

/// A small seedable generator (SplitMix64): enough for fault rolls, no crate needed.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// When to disrupt every watch: close all streams every `drop_every` (clients resume from
/// their last resourceVersion), and forget the history every `compact_every` just before a
/// drop (resuming clients get `410 Expired` and relist).
#[derive(Clone, Copy, Debug)]
pub struct WatchDisruption {
    pub drop_every: Duration,
    pub compact_every: Option<Duration>,
}

impl WatchDisruption {
    /// Whether the drop at `tick` (1, 2, ...) also compacts.
    fn compacts_at(&self, tick: u64) -> bool {
        let Some(every) = self.compact_every else {
            return false;
        };
        let per = (every.as_secs_f64() / self.drop_every.as_secs_f64().max(1e-3))
            .round()
            .max(1.0) as u64;
        tick.is_multiple_of(per)
    }
}

/// Runs `plan` against `server` until the handle is aborted or the server is gone.
pub fn disrupt_watches(server: &super::ApiServer, plan: WatchDisruption) -> JoinHandle<()> {
    let weak = std::sync::Arc::downgrade(server.core());
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(plan.drop_every);
        tick.tick().await;
        let mut n = 0u64;
        loop {
            tick.tick().await;
            n += 1;
            let Some(core) = weak.upgrade() else { break };
            if plan.compacts_at(n) {
                core.store.compact();
                core.faults.note_compaction();
            }
            core.store.drop_watches();
            core.faults.note_watch_drop();
        }
    })
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
        assert_eq!(f.counts().errors, 1);
    }

    #[test]
    fn rules_can_target_one_client() {
        let f = Faults::default();
        f.add(FaultRule::error(None, None, 1.0, 500).for_agent("opensandbox-manager/"));
        assert_eq!(f.decide_for("get", "pods", "kubelet").error, None);
        assert_eq!(
            f.decide_for("get", "pods", "opensandbox-manager/a").error,
            Some(500)
        );
    }

    #[test]
    fn jitter_stays_within_its_bound_and_replays_with_the_seed() {
        let draw = |seed| {
            let f = Faults::default();
            f.seed(seed);
            f.add(
                FaultRule::latency(None, None, Duration::from_millis(5))
                    .jitter(Duration::from_millis(50)),
            );
            f.add(FaultRule::error(None, None, 0.1, 500));
            (0..500)
                .map(|_| f.decide("get", "pods"))
                .map(|d| (d.latency, d.error))
                .collect::<Vec<_>>()
        };
        let a = draw(7);
        assert_eq!(a, draw(7));
        assert!(
            a.iter()
                .all(|(l, _)| (Duration::from_millis(5)..=Duration::from_millis(55)).contains(l))
        );
        let spread =
            a.iter().map(|(l, _)| *l).max().unwrap() - a.iter().map(|(l, _)| *l).min().unwrap();
        assert!(spread > Duration::from_millis(40), "{spread:?}");
        let errors = a.iter().filter(|(_, e)| e.is_some()).count();
        assert!(
            (20..=90).contains(&errors),
            "10% of 500 rolls, got {errors}"
        );
    }

    #[test]
    fn compaction_falls_on_every_nth_drop() {
        let plan = WatchDisruption {
            drop_every: Duration::from_secs(2),
            compact_every: Some(Duration::from_secs(6)),
        };
        let compacting: Vec<u64> = (1..=9).filter(|t| plan.compacts_at(*t)).collect();
        assert_eq!(compacting, vec![3, 6, 9]);
        let never = WatchDisruption {
            compact_every: None,
            ..plan
        };
        assert!((1..=9).all(|t| !never.compacts_at(t)));
    }

    #[tokio::test]
    async fn disruption_closes_watches_and_expires_old_resource_versions() {
        use crate::standalone::apiserver::store::WatchStart;
        use crate::standalone::apiserver::watch::WatchFilter;
        let server = crate::standalone::apiserver::ApiServer::new();
        let client = server.client();
        let cms: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
            kube::Api::namespaced(client, "default");
        let mut cm = k8s_openapi::api::core::v1::ConfigMap::default();
        cm.metadata.name = Some("a".into());
        let created = cms.create(&Default::default(), &cm).await.unwrap();
        let rv: u64 = created.metadata.resource_version.unwrap().parse().unwrap();
        let res = server
            .core()
            .registry
            .get("", "v1", "configmaps")
            .unwrap()
            .key();
        let mut reg = server
            .core()
            .store
            .watch(&res, WatchFilter::default(), WatchStart::Current)
            .unwrap();
        let task = disrupt_watches(
            &server,
            WatchDisruption {
                drop_every: Duration::from_millis(20),
                compact_every: Some(Duration::from_millis(20)),
            },
        );
        let ended = tokio::time::timeout(Duration::from_secs(5), reg.rx.recv()).await;
        assert!(matches!(ended, Ok(None)), "the stream ends");
        cm.metadata.name = Some("b".into());
        cms.create(&Default::default(), &cm).await.unwrap();
        tokio::time::sleep(Duration::from_millis(60)).await;
        task.abort();
        let resumed =
            server
                .core()
                .store
                .watch(&res, WatchFilter::default(), WatchStart::After(rv));
        assert!(resumed.is_err(), "history before the compaction is gone");
        let counts = server.faults().counts();
        assert!(
            counts.watch_drops >= 1 && counts.compactions >= 1,
            "{counts:?}"
        );
    }
}
