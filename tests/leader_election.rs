//! Leader election on the embedded API server: one leader at a time, fast hand-over on
//! release, take-over after expiry, and a leader that stops before its lease can expire.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Api;
use opensandbox::actors::leader::{LeaderConfig, LeaderConfigError, LeaderElector, LeaderHandle};
use opensandbox::standalone::apiserver::{ApiServer, FaultRule};

const LEASE: &str = "opensandbox-controller";
const LEASE_DURATION: Duration = Duration::from_secs(1);
const RENEW_DEADLINE: Duration = Duration::from_millis(600);
const RETRY: Duration = Duration::from_millis(150);
const SAMPLE: Duration = Duration::from_millis(5);

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .try_init();
}

fn cfg(identity: &str) -> LeaderConfig {
    LeaderConfig {
        lease_name: LEASE.into(),
        namespace: "default".into(),
        identity: identity.into(),
        lease_duration: LEASE_DURATION,
        renew_deadline: RENEW_DEADLINE,
        retry_period: RETRY,
        advertise_address: None,
    }
}

fn spawn(server: &ApiServer, identity: &str) -> LeaderHandle {
    LeaderElector::spawn(server.client(), cfg(identity)).unwrap()
}

async fn lease(server: &ApiServer) -> LeaseSpec {
    let api: Api<Lease> = Api::namespaced(server.client(), "default");
    api.get(LEASE).await.unwrap().spec.unwrap()
}

/// The Lease as stored, to check the wire format.
async fn raw_lease(server: &ApiServer) -> serde_json::Value {
    let path = format!("/apis/coordination.k8s.io/v1/namespaces/default/leases/{LEASE}");
    let req = http::Request::get(path).body(bytes::Bytes::new()).unwrap();
    let body = http_body_util::BodyExt::collect(server.request(req).await.into_body())
        .await
        .unwrap()
        .to_bytes();
    serde_json::from_slice(&body).unwrap()
}

/// RFC 3339 with exactly six fractional digits, UTC: `2026-11-28T12:00:00.123456Z`.
fn assert_micro_time(v: &serde_json::Value) {
    let t = v.as_str().unwrap_or_default();
    let digits = t.get(20..26).unwrap_or_default();
    assert!(
        t.len() == 27
            && t.as_bytes()[19] == b'.'
            && t.ends_with('Z')
            && digits.bytes().all(|b| b.is_ascii_digit()),
        "not a MicroTime: {v}"
    );
}

/// Samples `handles` until `done` holds, asserting at every sample that at most one of
/// them is leader. Returns the time it took.
async fn sample_until(
    handles: &[&LeaderHandle],
    limit: Duration,
    what: &str,
    mut done: impl FnMut(&[bool]) -> bool,
) -> Duration {
    let start = Instant::now();
    loop {
        let states: Vec<bool> = handles.iter().map(|h| h.is_leader()).collect();
        assert!(
            states.iter().filter(|l| **l).count() <= 1,
            "two leaders at once: {states:?}"
        );
        if done(&states) {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(SAMPLE).await;
    }
}

/// Samples `handles` for `period`, asserting at most one leader at every sample.
/// Returns the leader seen at each sample.
async fn watch_for(handles: &[&LeaderHandle], period: Duration) -> Vec<Option<usize>> {
    let start = Instant::now();
    let mut seen = Vec::new();
    while start.elapsed() < period {
        let states: Vec<bool> = handles.iter().map(|h| h.is_leader()).collect();
        assert!(
            states.iter().filter(|l| **l).count() <= 1,
            "two leaders at once: {states:?}"
        );
        seen.push(leader_index(&states));
        tokio::time::sleep(SAMPLE).await;
    }
    seen
}

fn leader_index(states: &[bool]) -> Option<usize> {
    states.iter().position(|l| *l)
}

/// Successful lease writes by anyone but `identity`.
fn lease_writes_not_by(server: &ApiServer, identity: &str) -> usize {
    server
        .requests()
        .writes(|e| e.resource == "leases" && e.field_manager.as_deref() != Some(identity))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_candidate_becomes_leader_and_keeps_renewing() {
    init_tracing();
    let server = ApiServer::new();
    let a = spawn(&server, "a");
    let took = sample_until(&[&a], LEASE_DURATION, "a to lead", |s| s[0]).await;
    assert!(took < RETRY * 2, "first acquisition took {took:?}");

    let state = a.subscribe().borrow().clone();
    assert!(state.is_leader);
    assert_eq!(state.holder.as_deref(), Some("a"));
    assert!(state.since.is_some());

    let first = lease(&server).await;
    let raw = raw_lease(&server).await;
    assert_micro_time(&raw["spec"]["renewTime"]);
    assert_micro_time(&raw["spec"]["acquireTime"]);
    assert_eq!(first.holder_identity.as_deref(), Some("a"));
    assert_eq!(first.lease_duration_seconds, Some(1));
    assert_eq!(first.lease_transitions, Some(0));
    assert!(first.acquire_time.is_some());

    // Outlive the lease several times over: renewals keep it.
    tokio::time::sleep(LEASE_DURATION * 2).await;
    assert!(a.is_leader());
    let later = lease(&server).await;
    assert!(
        later.renew_time > first.renew_time,
        "renewTime did not advance"
    );
    assert_eq!(later.acquire_time, first.acquire_time);
    assert_eq!(later.lease_transitions, Some(0));
    assert_eq!(lease_writes_not_by(&server, "a"), 0);
    a.release().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_candidates_never_lead_at_once() {
    init_tracing();
    let server = ApiServer::new();
    let a = spawn(&server, "a");
    let b = spawn(&server, "b");
    let seen = watch_for(&[&a, &b], LEASE_DURATION * 3).await;

    let leader = seen.last().copied().flatten().expect("someone leads");
    assert!(
        seen.iter()
            .skip_while(|s| s.is_none())
            .all(|s| *s == Some(leader)),
        "leadership moved although nobody failed"
    );
    let (winner, loser) = if leader == 0 { (&a, &b) } else { (&b, &a) };
    let name = ["a", "b"][leader];
    assert_eq!(loser.subscribe().borrow().holder.as_deref(), Some(name));
    assert!(!loser.subscribe().borrow().is_leader);
    assert!(winner.subscribe().borrow().is_leader);
    assert_eq!(lease(&server).await.holder_identity.as_deref(), Some(name));
    assert_eq!(
        lease_writes_not_by(&server, name),
        0,
        "the follower wrote the lease"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_hands_over_at_once_and_transitions_count_holder_changes() {
    init_tracing();
    let server = ApiServer::new();
    let a = spawn(&server, "a");
    sample_until(&[&a], LEASE_DURATION, "a to lead", |s| s[0]).await;
    let b = spawn(&server, "b");
    let mut follower = b.subscribe();
    tokio::time::timeout(
        LEASE_DURATION,
        follower.wait_for(|s| s.holder.as_deref() == Some("a")),
    )
    .await
    .unwrap()
    .unwrap();

    let start = Instant::now();
    a.release().await;
    let released = lease(&server).await;
    assert_eq!(released.holder_identity, None);
    assert_eq!(released.lease_duration_seconds, Some(1));
    let took = sample_until(&[&b], LEASE_DURATION, "b to take over", |s| s[0]).await;
    let took = took.max(start.elapsed());
    assert!(took < LEASE_DURATION / 2, "hand-over took {took:?}");
    assert_eq!(lease(&server).await.lease_transitions, Some(1));

    // And back: every change of holder counts once.
    let a = spawn(&server, "a");
    b.release().await;
    sample_until(&[&a], LEASE_DURATION / 2, "a to take over", |s| s[0]).await;
    let spec = lease(&server).await;
    assert_eq!(spec.holder_identity.as_deref(), Some("a"));
    assert_eq!(spec.lease_transitions, Some(2));
    a.release().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_leader_is_replaced_after_its_lease_expires() {
    init_tracing();
    let server = ApiServer::new();
    let a = spawn(&server, "a");
    sample_until(&[&a], LEASE_DURATION, "a to lead", |s| s[0]).await;
    let b = spawn(&server, "b");
    let mut follower = b.subscribe();
    tokio::time::timeout(
        LEASE_DURATION,
        follower.wait_for(|s| s.holder.as_deref() == Some("a")),
    )
    .await
    .unwrap()
    .unwrap();

    let start = Instant::now();
    a.abort();
    let slack = Duration::from_millis(500);
    let limit = LEASE_DURATION + RETRY.mul_f64(1.2) + slack;
    let took = sample_until(&[&b], limit, "b to take over", |s| s[0]).await;
    // a renewed at most one retry period before it died; b must wait out the lease.
    assert!(
        took >= LEASE_DURATION - RETRY * 2,
        "b took over after {took:?}, before the lease could expire"
    );
    let spec = lease(&server).await;
    assert_eq!(spec.holder_identity.as_deref(), Some("b"));
    assert_eq!(spec.lease_transitions, Some(1));
    assert!(start.elapsed() < limit + slack);
    b.release().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_holder_is_judged_by_our_clock_not_its_renew_time() {
    init_tracing();
    let server = ApiServer::new();
    let api: Api<Lease> = Api::namespaced(server.client(), "default");
    // renewTime an hour ago, as a node with a skewed clock could write it.
    let stale = Timestamp::now() - SignedDuration::from_hours(1);
    let ghost = Lease {
        metadata: kube::api::ObjectMeta {
            name: Some(LEASE.into()),
            ..Default::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some("ghost".into()),
            lease_duration_seconds: Some(1),
            renew_time: Some(MicroTime(stale)),
            acquire_time: Some(MicroTime(stale)),
            lease_transitions: Some(5),
            ..Default::default()
        }),
    };
    api.create(&kube::api::PostParams::default(), &ghost)
        .await
        .unwrap();

    let a = spawn(&server, "a");
    let mut state = a.subscribe();
    tokio::time::timeout(
        RETRY * 2,
        state.wait_for(|s| s.holder.as_deref() == Some("ghost")),
    )
    .await
    .expect("a reports the foreign holder")
    .unwrap();
    let limit = LEASE_DURATION + RETRY * 2 + Duration::from_millis(500);
    let took = sample_until(&[&a], limit, "a to take over", |s| s[0]).await;
    assert!(
        took >= LEASE_DURATION - SAMPLE * 2,
        "took over after {took:?}, before a full lease duration of our own observation"
    );
    let spec = lease(&server).await;
    assert_eq!(spec.holder_identity.as_deref(), Some("a"));
    assert_eq!(spec.lease_transitions, Some(6));
    assert_ne!(spec.acquire_time, Some(MicroTime(stale)));
    a.release().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_cannot_renew_stops_before_its_lease_expires() {
    init_tracing();
    let server = ApiServer::new();
    let a = spawn(&server, "a");
    sample_until(&[&a], LEASE_DURATION, "a to lead", |s| s[0]).await;
    let b = spawn(&server, "b");
    let mut leader_state = a.subscribe();

    server
        .faults()
        .add(FaultRule::error(Some("update"), Some("leases"), 1.0, 500));
    sample_until(&[&a, &b], LEASE_DURATION, "a to step down", |s| !s[0]).await;
    let stepped_down_at = Timestamp::now();
    let spec = lease(&server).await;
    assert_eq!(spec.holder_identity.as_deref(), Some("a"));
    let renewed = spec.renew_time.expect("renewTime").0;
    let expires = renewed + SignedDuration::from_secs(1);
    assert!(
        stepped_down_at < expires,
        "a led until {stepped_down_at}, its lease expired at {expires}"
    );
    tokio::time::timeout(RETRY * 2, leader_state.wait_for(|s| !s.is_leader))
        .await
        .expect("the state channel reports the step-down")
        .unwrap();

    // Nobody can write the lease, so nobody may lead, past its expiry too.
    let seen = watch_for(&[&a, &b], LEASE_DURATION + RETRY * 2).await;
    assert!(
        seen.iter().all(Option::is_none),
        "someone led without renewing"
    );

    server.faults().clear();
    sample_until(&[&a, &b], LEASE_DURATION, "a leader after recovery", |s| {
        leader_index(s).is_some()
    })
    .await;
    watch_for(&[&a, &b], RETRY * 4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_leader_stops_while_its_renew_hangs() {
    init_tracing();
    let server = ApiServer::new();
    let a = spawn(&server, "a");
    sample_until(&[&a], LEASE_DURATION, "a to lead", |s| s[0]).await;

    server.faults().pause();
    let took = sample_until(&[&a], LEASE_DURATION, "a to step down", |s| !s[0]).await;
    // The last renew may have passed the server just as it paused; allow for sampling
    // and scheduling, which still leaves a wide margin to the 1 s lease.
    let bound = RENEW_DEADLINE + Duration::from_millis(100);
    assert!(took < bound, "stepped down after {took:?}");
    server.faults().resume();
    sample_until(&[&a], LEASE_DURATION, "a to lead again", |s| s[0]).await;
    a.release().await;
}

#[tokio::test]
async fn invalid_config_is_rejected_with_a_clear_error() {
    let server = ApiServer::new();
    assert_eq!(LeaderConfig::new("l", "ns", "me").validate(), Ok(()));

    let mut c = cfg("a");
    c.renew_deadline = c.lease_duration;
    let Err(err) = LeaderElector::spawn(server.client(), c) else {
        panic!("an invalid config was accepted");
    };
    assert!(matches!(
        err,
        LeaderConfigError::RenewDeadlineTooLong { .. }
    ));
    assert!(
        err.to_string()
            .contains("renew_deadline (1s) must be shorter than lease_duration (1s)")
    );

    let mut c = cfg("a");
    c.retry_period = Duration::from_millis(700);
    let err = c.validate().unwrap_err();
    assert!(matches!(err, LeaderConfigError::RetryPeriodTooLong { .. }));
    assert!(err.to_string().contains("retry_period (700ms)"));

    let mut c = cfg("");
    assert_eq!(c.validate(), Err(LeaderConfigError::Empty("identity")));
    c = cfg("a");
    c.lease_duration = Duration::from_millis(900);
    c.renew_deadline = Duration::from_millis(500);
    assert!(matches!(
        c.validate(),
        Err(LeaderConfigError::LeaseTooShort(_))
    ));
    c = cfg("a");
    c.retry_period = Duration::ZERO;
    assert_eq!(c.validate(), Err(LeaderConfigError::ZeroRetryPeriod));
}
