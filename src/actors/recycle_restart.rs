//! Restart recycling as a pure state machine: a pod released by a sandbox gets its
//! containers restarted in place (through `pods/exec`) before it serves anyone else.
//!
//! The progress lives in the pod's `restart-record` annotation, so a new leader continues
//! where the old one stopped. A pod that carries a record is *recycling*: never allocatable,
//! never scaled in. The PoolActor executes each [`Step`] and nothing else:
//!
//! * a release starts a record keyed by the releasing sandbox's uid (a later release, even by a
//!   sandbox of the same name, starts a fresh record);
//! * the restart command runs in every recorded container, at most `maxRetries` times,
//!   `retryInterval` apart;
//! * once every recorded container runs with a new containerID the record is removed and the
//!   pod is idle again (allocatable as soon as it is Ready);
//! * after `maxRetries` attempts without success, or when the pod has terminated, it is
//!   deleted and the buffer logic replaces it.
//!
//! A pod that is not Running is judged on its own: it is never exec'd into, and each
//! `retryInterval` it stays that way counts as a failed attempt.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};

use crate::cache::objects::ContainerState;
use crate::crd::ledger::{RestartConfig, RestartRecord};

/// The timeout of one exec of the restart command.
pub const EXEC_TIMEOUT: Duration = Duration::from_secs(10);

/// `restart-config` resolved to values (every unusable field falls back to its default).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestartSettings {
    pub blacklist: Vec<String>,
    pub retry_interval: Duration,
    pub max_retries: u32,
    pub command: Vec<String>,
}

impl RestartSettings {
    /// Reads the Pool annotation; invalid JSON means all defaults, an invalid duration or an
    /// empty command means that field's default.
    pub fn from_annotation(raw: Option<&str>) -> Self {
        let cfg = RestartConfig::parse(raw);
        let defaults = RestartConfig::default();
        let retry_interval = parse_go_duration(&cfg.retry_interval)
            .filter(|d| !d.is_zero())
            .or_else(|| parse_go_duration(&defaults.retry_interval))
            .unwrap_or(Duration::from_secs(30));
        let command = if cfg.restart_command.is_empty() {
            defaults.restart_command
        } else {
            cfg.restart_command
        };
        Self {
            blacklist: cfg.blacklist,
            retry_interval,
            max_retries: cfg.max_retries,
            command,
        }
    }
}

impl Default for RestartSettings {
    fn default() -> Self {
        Self::from_annotation(None)
    }
}

/// Parses a Go `time.Duration` string (`30s`, `1m30s`, `1.5h`, `250ms`).
pub fn parse_go_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    if s == "0" {
        return Some(Duration::ZERO);
    }
    if s.is_empty() || s.starts_with('-') {
        return None;
    }
    let s = s.strip_prefix('+').unwrap_or(s);
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return None;
        }
        let value: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let nanos_per = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += value * nanos_per;
    }
    if !total.is_finite() || total > u64::MAX as f64 {
        return None;
    }
    Some(Duration::from_nanos(total as u64))
}

/// The pod, as the state machine sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodSnapshot<'a> {
    pub phase: &'a str,
    pub containers: &'a [ContainerState],
}

/// What to do with one recycling pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Write `record`, then (when `exec` is non-empty) run the restart command in those
    /// containers.
    Attempt {
        record: RestartRecord,
        exec: Vec<String>,
    },
    /// Nothing to do before `until` (or before the pod changes).
    Wait {
        record: RestartRecord,
        until: DateTime<Utc>,
    },
    /// Every recorded container restarted: remove the record, the pod is idle again.
    Restarted,
    /// Give up: delete the pod.
    Failed { reason: String },
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Parses a `restart-record` annotation (None when absent or unusable).
pub fn parse_record(raw: Option<&str>) -> Option<RestartRecord> {
    raw.and_then(|r| serde_json::from_str::<RestartRecord>(r).ok())
        .filter(|r| !r.id.is_empty())
}

/// Renders a record for the annotation.
pub fn record_annotation(record: &RestartRecord) -> String {
    serde_json::to_string(record).unwrap_or_default()
}

/// A fresh record for release `id`: the running containers outside the blacklist with
/// their current containerIDs.
pub fn new_record(
    id: &str,
    pod: &PodSnapshot<'_>,
    settings: &RestartSettings,
    now: DateTime<Utc>,
) -> RestartRecord {
    let containers: BTreeMap<String, String> = pod
        .containers
        .iter()
        .filter(|c| c.running && !settings.blacklist.contains(&c.name))
        .filter_map(|c| Some((c.name.clone(), c.container_id.clone()?)))
        .collect();
    RestartRecord {
        id: id.to_string(),
        start_time: rfc3339(now),
        containers,
        last_retry_time: None,
        retry_count: None,
    }
}

/// Every recorded container runs with a containerID other than the recorded one.
pub fn all_restarted(record: &RestartRecord, pod: &PodSnapshot<'_>) -> bool {
    record.containers.iter().all(|(name, old_id)| {
        pod.containers.iter().any(|c| {
            c.name == *name && c.running && c.container_id.as_ref().is_some_and(|id| id != old_id)
        })
    })
}

/// One step of the state machine for a pod released by `release_id` (the releasing
/// sandbox's uid), given the record currently on the pod.
pub fn decide(
    release_id: &str,
    current: Option<&RestartRecord>,
    pod: &PodSnapshot<'_>,
    settings: &RestartSettings,
    now: DateTime<Utc>,
) -> Step {
    if matches!(pod.phase, "Failed" | "Succeeded") {
        return Step::Failed {
            reason: format!("pod phase is {}", pod.phase),
        };
    }
    let record = match current {
        Some(r) if r.id == release_id => r.clone(),
        _ => new_record(release_id, pod, settings, now),
    };
    if pod.phase == "Running" && all_restarted(&record, pod) {
        return Step::Restarted;
    }
    let tries = record.retry_count.unwrap_or(0);
    let last = record
        .last_retry_time
        .as_deref()
        .and_then(parse_time)
        .or_else(|| {
            (tries > 0)
                .then(|| parse_time(&record.start_time))
                .flatten()
        });
    let interval = chrono::Duration::from_std(settings.retry_interval)
        .unwrap_or_else(|_| chrono::Duration::seconds(30));
    if let Some(last) = last
        && now < last + interval
    {
        return Step::Wait {
            until: last + interval,
            record,
        };
    }
    if tries >= settings.max_retries {
        return Step::Failed {
            reason: format!("max retries ({}) exceeded", settings.max_retries),
        };
    }
    let exec = if pod.phase == "Running" {
        record
            .containers
            .iter()
            .filter(|(name, old_id)| {
                !pod.containers.iter().any(|c| {
                    c.name == **name
                        && c.running
                        && c.container_id.as_ref().is_some_and(|id| id != *old_id)
                })
            })
            .map(|(name, _)| name.clone())
            .collect()
    } else {
        Vec::new()
    };
    let mut record = record;
    record.retry_count = Some(tries + 1);
    record.last_retry_time = Some(rfc3339(now));
    Step::Attempt { record, exec }
}

/// One pool pod as the turn planner sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecyclePod<'a> {
    pub name: &'a str,
    pub phase: &'a str,
    pub containers: &'a [ContainerState],
    /// The `restart-record` annotation as this actor last knows it.
    pub record: Option<&'a str>,
    pub terminating: bool,
}

/// The pods a Restart pool must act on this turn and what to do with each: the pods
/// sandboxes release now (with the releasing sandbox's uid) and every unheld pod that still
/// carries a record. Pods with a restart command still running are left alone.
pub fn plan_turn<'a>(
    pods: &[RecyclePod<'a>],
    released: &[(String, String)],
    held: &std::collections::HashSet<String>,
    in_flight: &std::collections::HashSet<String>,
    settings: &RestartSettings,
    now: DateTime<Utc>,
) -> Vec<(String, Step)> {
    let mut out = Vec::new();
    for pod in pods
        .iter()
        .filter(|p| !p.terminating && !in_flight.contains(p.name))
    {
        let record = parse_record(pod.record);
        let release_id = match released.iter().find(|(name, _)| name == pod.name) {
            Some((_, id)) => id.clone(),
            None if held.contains(pod.name) || pod.record.is_none() => continue,
            // An unreadable record still marks the pod as dirty: restart it under a fresh id.
            None => record
                .as_ref()
                .map(|r| r.id.clone())
                .unwrap_or_else(|| format!("recovered-{}", pod.name)),
        };
        let snapshot = PodSnapshot {
            phase: pod.phase,
            containers: pod.containers,
        };
        let step = decide(&release_id, record.as_ref(), &snapshot, settings, now);
        out.push((pod.name.to_string(), step));
    }
    out
}

/// Pods that are recycling (carry a record and are held by no sandbox): never allocatable.
pub fn recycling<'a>(
    pods: &'a [RecyclePod<'a>],
    held: &'a std::collections::HashSet<String>,
) -> impl Iterator<Item = &'a str> + 'a {
    pods.iter()
        .filter(|p| p.record.is_some() && !held.contains(p.name))
        .map(|p| p.name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn c(name: &str, id: &str, running: bool) -> ContainerState {
        ContainerState {
            name: name.into(),
            container_id: Some(id.into()),
            running,
            restarts: 0,
            waiting_reason: None,
        }
    }

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
    }

    fn settings(max: u32, interval_s: u64) -> RestartSettings {
        RestartSettings {
            blacklist: vec![],
            retry_interval: Duration::from_secs(interval_s),
            max_retries: max,
            command: vec!["kill".into(), "1".into()],
        }
    }

    fn running(cs: &[ContainerState]) -> PodSnapshot<'_> {
        PodSnapshot {
            phase: "Running",
            containers: cs,
        }
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_go_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_go_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_go_duration("1.5h"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_go_duration("0"), Some(Duration::ZERO));
        for bad in ["", "30", "s", "-1s", "1x", "1.2.3s"] {
            assert_eq!(parse_go_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn settings_default_on_invalid_json_and_per_field() {
        let d = RestartSettings::from_annotation(Some("{not json"));
        assert_eq!(d, settings(3, 30));
        let s = RestartSettings::from_annotation(Some(
            r#"{"retryInterval":"soon","maxRetries":5,"restartCommand":[],"blacklist":["sidecar"]}"#,
        ));
        assert_eq!(s.retry_interval, Duration::from_secs(30));
        assert_eq!(s.max_retries, 5);
        assert_eq!(s.command, vec!["kill".to_string(), "1".to_string()]);
        assert_eq!(s.blacklist, vec!["sidecar".to_string()]);
        let s = RestartSettings::from_annotation(Some(
            r#"{"retryInterval":"2s","restartCommand":["sh","-c","exit 0"]}"#,
        ));
        assert_eq!(s.retry_interval, Duration::from_secs(2));
        assert_eq!(s.command.len(), 3);
    }

    #[test]
    fn release_starts_a_record_and_execs_in_running_non_blacklisted_containers() {
        let cs = [
            c("main", "a1", true),
            c("side", "b1", true),
            c("idle", "c1", false),
        ];
        let mut s = settings(3, 30);
        s.blacklist = vec!["side".into()];
        let Step::Attempt { record, exec } = decide("uid-1", None, &running(&cs), &s, t(0)) else {
            panic!("expected an attempt");
        };
        assert_eq!(exec, vec!["main".to_string()]);
        assert_eq!(record.id, "uid-1");
        assert_eq!(record.containers.len(), 1);
        assert_eq!(record.containers["main"], "a1");
        assert_eq!(record.retry_count, Some(1));
        assert!(record.last_retry_time.is_some());
    }

    #[test]
    fn waits_within_the_interval_then_retries_then_fails() {
        let s = settings(2, 30);
        let cs = [c("main", "a1", true)];
        let Step::Attempt { record, .. } = decide("u", None, &running(&cs), &s, t(0)) else {
            panic!()
        };
        let step = decide("u", Some(&record), &running(&cs), &s, t(10));
        assert_eq!(
            step,
            Step::Wait {
                record: record.clone(),
                until: t(30)
            }
        );
        let Step::Attempt { record, exec } = decide("u", Some(&record), &running(&cs), &s, t(30))
        else {
            panic!()
        };
        assert_eq!(exec, vec!["main".to_string()]);
        assert_eq!(record.retry_count, Some(2));
        assert!(matches!(
            decide("u", Some(&record), &running(&cs), &s, t(45)),
            Step::Wait { .. }
        ));
        assert_eq!(
            decide("u", Some(&record), &running(&cs), &s, t(61)),
            Step::Failed {
                reason: "max retries (2) exceeded".into()
            }
        );
    }

    #[test]
    fn restarted_when_every_recorded_container_runs_with_a_new_id() {
        let s = settings(3, 30);
        let before = [c("main", "a1", true), c("side", "b1", true)];
        let Step::Attempt { record, .. } = decide("u", None, &running(&before), &s, t(0)) else {
            panic!()
        };
        let half = [c("main", "a2", true), c("side", "b1", true)];
        let Step::Wait { .. } = decide("u", Some(&record), &running(&half), &s, t(1)) else {
            panic!("one container still has its old id")
        };
        let not_running = [c("main", "a2", true), c("side", "b2", false)];
        assert!(matches!(
            decide("u", Some(&record), &running(&not_running), &s, t(1)),
            Step::Wait { .. }
        ));
        let after = [c("main", "a2", true), c("side", "b2", true)];
        assert_eq!(
            decide("u", Some(&record), &running(&after), &s, t(1)),
            Step::Restarted
        );
        // Only the containers still on their old id are exec'd on a retry.
        let Step::Attempt { exec, .. } = decide("u", Some(&record), &running(&half), &s, t(30))
        else {
            panic!()
        };
        assert_eq!(exec, vec!["side".to_string()]);
    }

    #[test]
    fn a_later_release_with_another_id_starts_over() {
        let s = settings(3, 30);
        let cs = [c("main", "a1", true)];
        let Step::Attempt { record, .. } = decide("first", None, &running(&cs), &s, t(0)) else {
            panic!()
        };
        let restarted = [c("main", "a2", true)];
        assert_eq!(
            decide("first", Some(&record), &running(&restarted), &s, t(5)),
            Step::Restarted
        );
        // Same pod, released again by another sandbox (same name or not: other uid).
        let Step::Attempt { record: next, exec } =
            decide("second", Some(&record), &running(&restarted), &s, t(100))
        else {
            panic!("a stale record must not count as restarted")
        };
        assert_eq!(next.id, "second");
        assert_eq!(next.containers["main"], "a2");
        assert_eq!(exec, vec!["main".to_string()]);
    }

    #[test]
    fn no_container_to_restart_is_immediately_restarted() {
        let cs = [c("main", "a1", false)];
        assert_eq!(
            decide("u", None, &running(&cs), &settings(3, 30), t(0)),
            Step::Restarted
        );
    }

    #[test]
    fn terminated_pod_fails_and_pending_pod_is_never_execd() {
        let cs = [c("main", "a1", true)];
        let s = settings(2, 30);
        let failed = PodSnapshot {
            phase: "Failed",
            containers: &cs,
        };
        assert!(matches!(
            decide("u", None, &failed, &s, t(0)),
            Step::Failed { .. }
        ));
        let Step::Attempt { record, .. } = decide("u", None, &running(&cs), &s, t(0)) else {
            panic!()
        };
        let pending = PodSnapshot {
            phase: "Pending",
            containers: &cs,
        };
        let Step::Attempt { record, exec } = decide("u", Some(&record), &pending, &s, t(30)) else {
            panic!("a pod stuck outside Running still uses up an attempt")
        };
        assert!(exec.is_empty());
        assert!(matches!(
            decide("u", Some(&record), &pending, &s, t(60)),
            Step::Failed { .. }
        ));
    }

    #[test]
    fn turn_plan_covers_releases_and_recycling_pods_only() {
        use std::collections::HashSet;
        let cs = [c("main", "a1", true)];
        let record = record_annotation(&RestartRecord {
            retry_count: Some(1),
            last_retry_time: Some(rfc3339(t(0))),
            ..new_record("old", &running(&cs), &settings(3, 30), t(0))
        });
        let pod = |name: &'static str, record: Option<&'static str>| RecyclePod {
            name,
            phase: "Running",
            containers: &[],
            record,
            terminating: false,
        };
        let leaked: &'static str = Box::leak(record.into_boxed_str());
        let pods = vec![
            RecyclePod {
                containers: &cs,
                ..pod("released", None)
            },
            RecyclePod {
                containers: &cs,
                ..pod("recycling", Some(leaked))
            },
            RecyclePod {
                containers: &cs,
                ..pod("busy", Some(leaked))
            },
            RecyclePod {
                containers: &cs,
                ..pod("held", Some(leaked))
            },
            RecyclePod {
                containers: &cs,
                ..pod("idle", None)
            },
            RecyclePod {
                containers: &cs,
                ..pod("garbled", Some("{"))
            },
        ];
        let held: HashSet<String> = ["released", "held"].iter().map(|s| s.to_string()).collect();
        let in_flight: HashSet<String> = ["busy".to_string()].into();
        let released = vec![("released".to_string(), "bs-uid".to_string())];
        let steps = plan_turn(&pods, &released, &held, &in_flight, &settings(3, 30), t(5));
        let names: Vec<&str> = steps.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, vec!["released", "recycling", "garbled"]);
        assert!(matches!(&steps[0].1, Step::Attempt { record, .. } if record.id == "bs-uid"));
        assert!(matches!(&steps[1].1, Step::Wait { until, .. } if *until == t(30)));
        assert!(
            matches!(&steps[2].1, Step::Attempt { record, .. } if record.id == "recovered-garbled")
        );
        let recycling: Vec<&str> = recycling(&pods, &held).collect();
        assert_eq!(recycling, vec!["recycling", "busy", "garbled"]);
    }

    #[test]
    fn record_annotation_roundtrip_and_garbage() {
        let cs = [c("main", "a1", true)];
        let r = new_record("u", &running(&cs), &settings(3, 30), t(0));
        assert_eq!(parse_record(Some(&record_annotation(&r))), Some(r));
        assert_eq!(parse_record(Some("{bad")), None);
        assert_eq!(parse_record(None), None);
    }

    proptest! {
        /// Whatever the pod does, a release ends within maxRetries attempts: the number of
        /// Attempt steps never exceeds maxRetries, and time moving past the last interval
        /// always ends in Restarted or Failed.
        #[test]
        fn attempts_are_bounded(
            max in 0u32..5,
            interval in 1u64..60,
            events in proptest::collection::vec((0u64..90, any::<bool>(), 0u8..3), 1..40),
        ) {
            let s = settings(max, interval);
            let mut record: Option<RestartRecord> = None;
            let mut now = 0i64;
            let mut attempts = 0u32;
            let mut id = 1u32;
            let mut ended = false;
            for (dt, restart, phase) in events {
                now += dt as i64;
                let phase = ["Running", "Pending", "Running"][phase as usize];
                let cs = [c("main", &format!("id{id}"), true)];
                let pod = PodSnapshot { phase, containers: &cs };
                match decide("u", record.as_ref(), &pod, &s, t(now)) {
                    Step::Attempt { record: r, exec } => {
                        attempts += 1;
                        prop_assert!(attempts <= max);
                        prop_assert!(exec.is_empty() || phase == "Running");
                        record = Some(r);
                        if restart { id += 1; }
                    }
                    Step::Wait { until, record: r } => {
                        prop_assert!(until > t(now));
                        record = Some(r);
                    }
                    Step::Restarted | Step::Failed { .. } => { ended = true; break; }
                }
            }
            if !ended {
                let cs = [c("main", &format!("id{id}"), true)];
                let pod = PodSnapshot { phase: "Running", containers: &cs };
                for _ in 0..=max + 1 {
                    now += interval as i64 + 1;
                    match decide("u", record.as_ref(), &pod, &s, t(now)) {
                        Step::Attempt { record: r, .. } => { attempts += 1; record = Some(r); }
                        Step::Restarted | Step::Failed { .. } => { ended = true; break; }
                        Step::Wait { .. } => {}
                    }
                }
            }
            prop_assert!(ended, "a release always ends");
            prop_assert!(attempts <= max);
        }
    }
}
