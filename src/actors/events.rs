//! Kubernetes Events with aggregation and rate limits, so a burst of a thousand sandboxes
//! does not write a thousand Event objects.
//!
//! Occurrences are keyed on (object, reason, type). The first one creates a core/v1 Event
//! (what `kubectl describe` lists); repeats within the series window fold into it and are
//! written as one `count`/`lastTimestamp` patch at most every `patch_interval`. New Events are rate-limited per object and globally; what the
//! limits refuse is counted in metrics and logged at debug level, never queued forever.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Event as K8sEvent, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Api, Patch, PatchParams, PostParams};
use tokio::sync::mpsc;

/// What identifies a series: the object, the reason and the type.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SeriesKey {
    pub namespace: String,
    pub kind: String,
    pub name: String,
    pub uid: String,
    pub reason: String,
    pub warning: bool,
}

impl SeriesKey {
    fn object(&self) -> (String, String, String) {
        (self.namespace.clone(), self.kind.clone(), self.name.clone())
    }
}

/// Limits of the aggregator.
#[derive(Clone, Copy, Debug)]
pub struct EventPolicy {
    /// A repeat within this time of the last occurrence joins the series.
    pub series_window: Duration,
    /// Shortest time between two writes of one series.
    pub patch_interval: Duration,
    /// New Events one object may get within `rate_window`.
    pub per_object: usize,
    /// New Events in total within `rate_window`.
    pub global: usize,
    pub rate_window: Duration,
}

impl Default for EventPolicy {
    fn default() -> Self {
        Self {
            series_window: Duration::from_secs(300),
            patch_interval: Duration::from_secs(10),
            per_object: 10,
            global: 50,
            rate_window: Duration::from_secs(60),
        }
    }
}

/// What to do with one occurrence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Create a new Event.
    Create,
    /// Patch the series of the Event `name` to `count` occurrences.
    Patch { name: String, count: i32 },
    /// Folded into the series; a later flush writes it.
    Fold,
    /// Refused by a rate limit.
    Drop,
}

struct Series {
    /// The Event's name once created.
    name: Option<String>,
    count: i32,
    written: i32,
    last_seen: Instant,
    last_write: Instant,
}

/// Pure aggregation state: no I/O, time passed in.
pub struct Aggregator {
    policy: EventPolicy,
    series: HashMap<SeriesKey, Series>,
    per_object: HashMap<(String, String, String), VecDeque<Instant>>,
    global: VecDeque<Instant>,
}

fn admit(window: &mut VecDeque<Instant>, limit: usize, span: Duration, now: Instant) -> bool {
    while window
        .front()
        .is_some_and(|t| now.duration_since(*t) >= span)
    {
        window.pop_front();
    }
    if window.len() >= limit {
        return false;
    }
    window.push_back(now);
    true
}

impl Aggregator {
    pub fn new(policy: EventPolicy) -> Self {
        Self {
            policy,
            series: HashMap::new(),
            per_object: HashMap::new(),
            global: VecDeque::new(),
        }
    }

    /// One occurrence of `key` at `now`.
    pub fn observe(&mut self, key: &SeriesKey, now: Instant) -> Decision {
        let window = self.policy.series_window;
        if let Some(s) = self
            .series
            .get_mut(key)
            .filter(|s| now.duration_since(s.last_seen) < window)
        {
            s.count += 1;
            s.last_seen = now;
            return match &s.name {
                Some(name) if now.duration_since(s.last_write) >= self.policy.patch_interval => {
                    s.written = s.count;
                    s.last_write = now;
                    Decision::Patch {
                        name: name.clone(),
                        count: s.count,
                    }
                }
                _ => Decision::Fold,
            };
        }
        let span = self.policy.rate_window;
        let object = self.per_object.entry(key.object()).or_default();
        if !admit(object, self.policy.per_object, span, now) {
            return Decision::Drop;
        }
        if !admit(&mut self.global, self.policy.global, span, now) {
            // The object's slot was taken for nothing; give it back.
            object.pop_back();
            return Decision::Drop;
        }
        self.series.insert(
            key.clone(),
            Series {
                name: None,
                count: 1,
                written: 1,
                last_seen: now,
                last_write: now,
            },
        );
        Decision::Create
    }

    /// The Event of `key` was created as `name` (or its create failed: `None` forgets it).
    pub fn created(&mut self, key: &SeriesKey, name: Option<String>) {
        match name {
            Some(n) => {
                if let Some(s) = self.series.get_mut(key) {
                    s.name = Some(n);
                }
            }
            None => {
                self.series.remove(key);
            }
        }
    }

    /// Series with folded occurrences whose patch is due, marked written; and the
    /// forgetting of series and rate windows that went quiet.
    pub fn due(&mut self, now: Instant) -> Vec<(SeriesKey, String, i32)> {
        let window = self.policy.series_window;
        self.series
            .retain(|_, s| now.duration_since(s.last_seen) < window || s.count > s.written);
        let span = self.policy.rate_window;
        self.per_object
            .retain(|_, w| w.back().is_some_and(|t| now.duration_since(*t) < span));
        let interval = self.policy.patch_interval;
        let mut out = Vec::new();
        for (key, s) in &mut self.series {
            if s.count > s.written
                && now.duration_since(s.last_write) >= interval
                && let Some(name) = &s.name
            {
                s.written = s.count;
                s.last_write = now;
                out.push((key.clone(), name.clone(), s.count));
            }
        }
        out
    }
}

/// One occurrence to publish.
pub struct Occurrence {
    pub regarding: ObjectReference,
    pub warning: bool,
    pub reason: String,
    pub action: String,
    pub note: String,
}

impl Occurrence {
    fn key(&self) -> SeriesKey {
        let r = &self.regarding;
        SeriesKey {
            namespace: r.namespace.clone().unwrap_or_default(),
            kind: r.kind.clone().unwrap_or_default(),
            name: r.name.clone().unwrap_or_default(),
            uid: r.uid.clone().unwrap_or_default(),
            reason: self.reason.clone(),
            warning: self.warning,
        }
    }
}

/// Hands occurrences to the publishing task; never blocks the caller.
#[derive(Clone)]
pub struct EventSink {
    tx: mpsc::Sender<Occurrence>,
}

impl EventSink {
    /// Starts the publishing task on the current runtime.
    pub fn start(client: kube::Client, controller: String, instance: String) -> Self {
        Self::with_policy(client, controller, instance, EventPolicy::default())
    }

    pub fn with_policy(
        client: kube::Client,
        controller: String,
        instance: String,
        policy: EventPolicy,
    ) -> Self {
        let (tx, rx) = mpsc::channel(4096);
        let publisher = Publisher {
            client,
            controller,
            instance,
            agg: Aggregator::new(policy),
        };
        tokio::spawn(publisher.run(rx, policy.patch_interval));
        Self { tx }
    }

    pub fn publish(&self, occurrence: Occurrence) {
        let reason = occurrence.reason.clone();
        if self.tx.try_send(occurrence).is_err() {
            crate::metrics::get()
                .events_suppressed
                .with_label_values(&[&reason, "queue_full"])
                .inc();
        }
    }
}

struct Publisher {
    client: kube::Client,
    controller: String,
    instance: String,
    agg: Aggregator,
}

/// Nanoseconds since the epoch, made strictly increasing within this process.
fn unique_suffix() -> u128 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or_default();
    let prev = LAST.fetch_max(now, Ordering::Relaxed);
    let v = if now > prev {
        now
    } else {
        LAST.fetch_add(1, Ordering::Relaxed) + 1
    };
    u128::from(v)
}

fn now() -> Time {
    Time(k8s_openapi::jiff::Timestamp::now())
}

impl Publisher {
    async fn run(mut self, mut rx: mpsc::Receiver<Occurrence>, interval: Duration) {
        let mut tick = tokio::time::interval(interval.max(Duration::from_millis(100)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                o = rx.recv() => match o {
                    Some(o) => self.handle(o).await,
                    None => break,
                },
                _ = tick.tick() => self.flush().await,
            }
        }
    }

    async fn handle(&mut self, o: Occurrence) {
        let key = o.key();
        let m = crate::metrics::get();
        match self.agg.observe(&key, Instant::now()) {
            Decision::Create => {
                let name = self.create(&o).await;
                if name.is_some() {
                    m.events_written
                        .with_label_values(&[&o.reason, "create"])
                        .inc();
                }
                self.agg.created(&key, name);
            }
            Decision::Patch { name, count } => {
                m.events_suppressed
                    .with_label_values(&[&o.reason, "aggregated"])
                    .inc();
                self.patch(&key, &name, count).await;
            }
            Decision::Fold => m
                .events_suppressed
                .with_label_values(&[&o.reason, "aggregated"])
                .inc(),
            Decision::Drop => {
                m.events_suppressed
                    .with_label_values(&[&o.reason, "rate_limited"])
                    .inc();
                tracing::debug!(reason = %o.reason, object = ?o.regarding.name, "event dropped by the rate limit");
            }
        }
    }

    async fn flush(&mut self) {
        for (key, name, count) in self.agg.due(Instant::now()) {
            self.patch(&key, &name, count).await;
        }
    }

    async fn create(&self, o: &Occurrence) -> Option<String> {
        let ns = o
            .regarding
            .namespace
            .clone()
            .unwrap_or_else(|| "default".to_string());
        let base = o.regarding.name.clone().unwrap_or_default();
        let ev = K8sEvent {
            metadata: ObjectMeta {
                // `<object>.<hex time>`, like other controllers' Events (a generateName
                // prefix may not end in a dot).
                name: Some(format!("{base}.{:x}", unique_suffix())),
                namespace: Some(ns.clone()),
                ..Default::default()
            },
            first_timestamp: Some(now()),
            last_timestamp: Some(now()),
            count: Some(1),
            action: Some(o.action.clone()),
            reason: Some(o.reason.clone()),
            message: Some(o.note.chars().take(1000).collect()),
            involved_object: o.regarding.clone(),
            source: Some(EventSource {
                component: Some(self.controller.clone()),
                host: None,
            }),
            reporting_component: Some(self.controller.clone()),
            reporting_instance: Some(self.instance.clone()),
            type_: Some(if o.warning { "Warning" } else { "Normal" }.to_string()),
            ..Default::default()
        };
        let api: Api<K8sEvent> = Api::namespaced(self.client.clone(), &ns);
        match api.create(&PostParams::default(), &ev).await {
            Ok(created) => created.metadata.name,
            Err(e) => {
                tracing::debug!(error = %e, reason = %o.reason, "creating an event failed");
                None
            }
        }
    }

    async fn patch(&self, key: &SeriesKey, name: &str, count: i32) {
        let api: Api<K8sEvent> = Api::namespaced(self.client.clone(), &key.namespace);
        let patch = serde_json::json!({"count": count, "lastTimestamp": now()});
        match api
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => crate::metrics::get()
                .events_written
                .with_label_values(&[&key.reason, "patch"])
                .inc(),
            Err(e) => {
                tracing::debug!(error = %e, reason = %key.reason, "updating an event series failed")
            }
        }
    }
}

/// A sandbox got pool pods from a pool turn (its first ones, more, or replacements).
pub fn allocation_event<E>(
    ctx: &super::Controller,
    namespace: &str,
    fresh: &std::collections::HashSet<String>,
    sandbox: &str,
    ledger: &[String],
    result: &Result<(), E>,
) {
    if result.is_err() || !fresh.contains(sandbox) {
        return;
    }
    ctx.sandbox_event(
        namespace,
        sandbox,
        false,
        "Allocated",
        "Allocate",
        format!(
            "Holds pool pods {}",
            ledger
                .iter()
                .filter(|p| !p.is_empty())
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );
}

/// A sandbox was created holding idle pool pods (a warm allocation).
pub fn reserved_event(ctx: &super::Controller, sandbox: &crate::crd::BatchSandbox) {
    use kube::Resource;
    let pods = crate::crd::ledger::Ledger::from_annotations(sandbox.metadata.annotations.as_ref())
        .map(|l| l.held().join(", "))
        .unwrap_or_default();
    ctx.emit(
        &sandbox.object_ref(&()),
        false,
        "Allocated",
        "Allocate",
        format!("Created holding idle pool pods {pods}"),
    );
}

/// A pool turn takes pods back from sandboxes for recycling.
pub fn released_event(ctx: &super::Controller, pool: &ObjectReference, pods: usize) {
    if pods > 0 {
        ctx.emit(
            pool,
            false,
            "Released",
            "Recycle",
            format!("Took back {pods} pods from sandboxes for recycling"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str, reason: &str) -> SeriesKey {
        SeriesKey {
            namespace: "ns".into(),
            kind: "BatchSandbox".into(),
            name: name.into(),
            uid: format!("uid-{name}"),
            reason: reason.into(),
            warning: false,
        }
    }

    fn policy() -> EventPolicy {
        EventPolicy {
            series_window: Duration::from_secs(300),
            patch_interval: Duration::from_secs(10),
            per_object: 3,
            global: 5,
            rate_window: Duration::from_secs(60),
        }
    }

    #[test]
    fn repeats_fold_into_one_series_patched_at_most_every_interval() {
        let mut a = Aggregator::new(policy());
        let t0 = Instant::now();
        let k = key("pool", "Scaled");
        assert_eq!(a.observe(&k, t0), Decision::Create);
        a.created(&k, Some("pool.abc".into()));
        for i in 1..=100 {
            assert_eq!(a.observe(&k, t0 + Duration::from_millis(i)), Decision::Fold);
        }
        assert!(a.due(t0 + Duration::from_secs(5)).is_empty());
        assert_eq!(
            a.due(t0 + Duration::from_secs(10)),
            vec![(k.clone(), "pool.abc".to_string(), 101)]
        );
        // Nothing new: nothing to write.
        assert!(a.due(t0 + Duration::from_secs(30)).is_empty());
        assert_eq!(
            a.observe(&k, t0 + Duration::from_secs(31)),
            Decision::Patch {
                name: "pool.abc".into(),
                count: 102
            }
        );
    }

    #[test]
    fn a_quiet_series_starts_over() {
        let mut a = Aggregator::new(policy());
        let t0 = Instant::now();
        let k = key("pool", "Scaled");
        assert_eq!(a.observe(&k, t0), Decision::Create);
        a.created(&k, Some("e1".into()));
        let later = t0 + Duration::from_secs(301);
        assert!(a.due(later).is_empty());
        assert_eq!(a.observe(&k, later), Decision::Create);
    }

    #[test]
    fn new_events_are_rate_limited_per_object_and_globally() {
        let mut a = Aggregator::new(policy());
        let t0 = Instant::now();
        let reasons = ["A", "B", "C", "D"];
        let got: Vec<Decision> = reasons
            .iter()
            .map(|r| a.observe(&key("one", r), t0))
            .collect();
        assert_eq!(
            got,
            vec![
                Decision::Create,
                Decision::Create,
                Decision::Create,
                Decision::Drop
            ]
        );
        // Two more objects fill the global budget of 5.
        assert_eq!(a.observe(&key("two", "A"), t0), Decision::Create);
        assert_eq!(a.observe(&key("three", "A"), t0), Decision::Create);
        assert_eq!(a.observe(&key("four", "A"), t0), Decision::Drop);
        // The window passes: budgets refill.
        let later = t0 + Duration::from_secs(60);
        assert_eq!(a.observe(&key("four", "A"), later), Decision::Create);
        assert_eq!(a.observe(&key("one", "D"), later), Decision::Create);
    }

    #[test]
    fn a_failed_create_is_forgotten() {
        let mut a = Aggregator::new(policy());
        let t0 = Instant::now();
        let k = key("x", "Allocated");
        assert_eq!(a.observe(&k, t0), Decision::Create);
        a.created(&k, None);
        assert_eq!(a.observe(&k, t0 + Duration::from_secs(1)), Decision::Create);
    }

    proptest::proptest! {
        /// However occurrences arrive, creates never exceed the global budget per window,
        /// and every folded occurrence is eventually written into its series' count.
        #[test]
        fn bounded_and_lossless(events in proptest::collection::vec((0usize..20, 0usize..3, 0u64..2000), 1..400)) {
            let mut a = Aggregator::new(policy());
            let t0 = Instant::now();
            let mut events = events;
            events.sort_by_key(|e| e.2);
            let mut creates = 0;
            let mut accepted: HashMap<SeriesKey, i32> = HashMap::new();
            let mut written: HashMap<SeriesKey, i32> = HashMap::new();
            for (obj, reason, ms) in events {
                let k = key(&format!("o{obj}"), &format!("R{reason}"));
                let now = t0 + Duration::from_millis(ms);
                match a.observe(&k, now) {
                    Decision::Create => {
                        creates += 1;
                        a.created(&k, Some(format!("{}-{}", k.name, k.reason)));
                        *accepted.entry(k.clone()).or_default() += 1;
                        written.insert(k, 1);
                    }
                    Decision::Patch { count, .. } => {
                        *accepted.entry(k.clone()).or_default() += 1;
                        written.insert(k, count);
                    }
                    Decision::Fold => *accepted.entry(k).or_default() += 1,
                    Decision::Drop => {}
                }
            }
            proptest::prop_assert!(creates <= 5);
            for (k, _, count) in a.due(t0 + Duration::from_secs(20)) {
                written.insert(k, count);
            }
            proptest::prop_assert_eq!(accepted, written);
        }
    }
}
