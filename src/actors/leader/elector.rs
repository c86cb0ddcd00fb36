//! The election task: client-go's acquire/renew loop on a Lease, with resourceVersion
//! preconditions on every write so two candidates can never both win a round.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use kube::api::PostParams;
use thiserror::Error;
use tokio::sync::oneshot;
use tracing::{debug, info, warn};

use super::config::{LeaderConfig, LeaderConfigError};
use super::handle::{LeaderHandle, Shared};
use super::record::{self, Observer};

/// Longest accepted fieldManager on the API server.
const MAX_FIELD_MANAGER: usize = 128;
/// Follower retries wait up to this fraction longer than retry_period.
const JITTER: f64 = 0.2;
/// Attempts to clear the holder on release when a concurrent write gets in between.
const RELEASE_ATTEMPTS: usize = 3;

/// Runs leader election for one identity on one Lease.
pub struct LeaderElector {
    api: Api<Lease>,
    cfg: LeaderConfig,
    lease_seconds: i32,
    params: PostParams,
    shared: Arc<Shared>,
    observer: Observer,
    /// The latest Lease we read or wrote; its resourceVersion preconditions the fast renew.
    last: Option<Lease>,
    /// The task's view of leadership, which decides when to log and publish transitions.
    leading: bool,
}

#[derive(Debug, Error)]
enum AttemptError {
    #[error("lease request failed: {0}")]
    Kube(#[from] kube::Error),
    #[error("lease request timed out after {0:?}")]
    Timeout(Duration),
    #[error("lease was reported to exist but cannot be read")]
    Vanished,
}

/// The result of one acquire-or-renew round.
enum Outcome {
    /// We wrote the lease; `Instant` is taken before the request was sent.
    Holding(Box<Lease>, Instant),
    /// Someone else holds it; their published SDK API address, if any.
    HeldBy(String, Option<String>),
    /// Someone else wrote the lease between our read and our write.
    Conflict,
}

impl LeaderElector {
    /// Validates `cfg` and starts the election task on the current tokio runtime.
    /// An invalid config is an error here rather than an elector that can never lead.
    pub fn spawn(
        client: kube::Client,
        cfg: LeaderConfig,
    ) -> Result<LeaderHandle, LeaderConfigError> {
        cfg.validate()?;
        let shared = Shared::new();
        let elector = Self {
            api: Api::namespaced(client, &cfg.namespace),
            lease_seconds: cfg.lease_seconds(),
            params: PostParams {
                dry_run: false,
                field_manager: Some(field_manager(&cfg.identity)),
            },
            cfg,
            shared: shared.clone(),
            observer: Observer::default(),
            last: None,
            leading: false,
        };
        let (stop_tx, stop_rx) = oneshot::channel();
        let task = tokio::spawn(elector.run(stop_rx));
        Ok(LeaderHandle::new(shared, stop_tx, task))
    }

    async fn run(mut self, mut stop: oneshot::Receiver<()>) {
        info!(lease = %self.lease_ref(), identity = %self.cfg.identity, "leader election started");
        loop {
            let started = Instant::now();
            tokio::select! {
                biased;
                _ = &mut stop => break,
                () = self.round() => {}
            }
            let wake = self.next_wake(started);
            tokio::select! {
                biased;
                _ = &mut stop => break,
                () = tokio::time::sleep_until(wake.into()) => {}
            }
            self.check_deadline();
        }
        self.release().await;
    }

    async fn round(&mut self) {
        let limit = self.attempt_limit();
        let result = match tokio::time::timeout(limit, self.try_acquire_or_renew()).await {
            Ok(result) => result,
            Err(_) => Err(AttemptError::Timeout(limit)),
        };
        match result {
            Ok(Outcome::Holding(lease, base)) => self.hold(*lease, base),
            Ok(Outcome::HeldBy(holder, address)) => self.follow(holder, address),
            Ok(Outcome::Conflict) => debug!(lease = %self.lease_ref(), "lost a write race"),
            Err(e) if self.leading => warn!(lease = %self.lease_ref(), error = %e, "renew failed"),
            Err(e) => debug!(lease = %self.lease_ref(), error = %e, "acquire failed"),
        }
        self.check_deadline();
    }

    async fn try_acquire_or_renew(&mut self) -> Result<Outcome, AttemptError> {
        if let Some(outcome) = self.fast_renew().await {
            return outcome;
        }
        let lease = match self.get_or_create().await? {
            Ok(lease) => lease,
            Err(created) => return Ok(created),
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let now = Instant::now();
        self.observer.observe(&spec, now);
        self.last = Some(lease.clone());
        let live =
            self.observer
                .live_other_holder(&self.cfg.identity, now, self.cfg.lease_duration);
        if let Some(holder) = live {
            let address = record::advertised_address(&lease);
            return Ok(Outcome::HeldBy(holder.to_string(), address));
        }
        let claim = record::claimed(Some(&spec), &self.cfg.identity, self.lease_seconds);
        self.write(&lease, claim).await
    }

    /// While leading, renew straight from the lease we last wrote, skipping the GET.
    /// A conflict or a deleted lease falls back to the full read-then-write round; other
    /// errors do not, so an outage costs one request per round.
    async fn fast_renew(&self) -> Option<Result<Outcome, AttemptError>> {
        if !self.leading || !self.shared.is_leader() {
            return None;
        }
        let last = self.last.as_ref()?;
        let spec = last.spec.clone().unwrap_or_default();
        if record::holder(&spec) != Some(self.cfg.identity.as_str()) {
            return None;
        }
        let claim = record::claimed(Some(&spec), &self.cfg.identity, self.lease_seconds);
        match self.write(last, claim).await {
            Ok(Outcome::Conflict) => None,
            Err(AttemptError::Kube(kube::Error::Api(s))) if s.code == 404 => None,
            other => Some(other),
        }
    }

    /// The existing lease, or `Err(outcome)` when we just created it.
    async fn get_or_create(&self) -> Result<Result<Lease, Outcome>, AttemptError> {
        // A 409 on create means someone else created it first: read theirs once more.
        for _ in 0..2 {
            if let Some(lease) = self.api.get_opt(&self.cfg.lease_name).await? {
                return Ok(Ok(lease));
            }
            let mut metadata = ObjectMeta {
                name: Some(self.cfg.lease_name.clone()),
                namespace: Some(self.cfg.namespace.clone()),
                ..ObjectMeta::default()
            };
            record::set_advertised_address(&mut metadata, self.cfg.advertise_address.as_deref());
            let fresh = Lease {
                metadata,
                spec: Some(record::claimed(
                    None,
                    &self.cfg.identity,
                    self.lease_seconds,
                )),
            };
            let base = Instant::now();
            match self.api.create(&self.params, &fresh).await {
                Ok(lease) => return Ok(Err(Outcome::Holding(Box::new(lease), base))),
                Err(e) if is_conflict(&e) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(AttemptError::Vanished)
    }

    /// PUT `spec` with `current`'s resourceVersion as the precondition.
    async fn write(&self, current: &Lease, spec: LeaseSpec) -> Result<Outcome, AttemptError> {
        let mut next = current.clone();
        next.metadata.managed_fields = None;
        let ours = record::holder(&spec) == Some(self.cfg.identity.as_str());
        let address = self.cfg.advertise_address.as_deref().filter(|_| ours);
        record::set_advertised_address(&mut next.metadata, address);
        next.spec = Some(spec);
        let base = Instant::now();
        match self
            .api
            .replace(&self.cfg.lease_name, &self.params, &next)
            .await
        {
            Ok(lease) => Ok(Outcome::Holding(Box::new(lease), base)),
            Err(e) if is_conflict(&e) => Ok(Outcome::Conflict),
            Err(e) => Err(e.into()),
        }
    }

    fn hold(&mut self, lease: Lease, base: Instant) {
        let spec = lease.spec.clone().unwrap_or_default();
        self.observer.observe(&spec, Instant::now());
        self.last = Some(lease);
        if record::holder(&spec) != Some(self.cfg.identity.as_str()) {
            return;
        }
        if !self.shared.extend(base + self.cfg.renew_deadline) {
            return;
        }
        if !self.leading {
            self.leading = true;
            info!(lease = %self.lease_ref(), identity = %self.cfg.identity, "became leader");
        }
        self.shared.publish(
            true,
            Some(self.cfg.identity.clone()),
            self.cfg.advertise_address.clone(),
        );
    }

    fn follow(&mut self, holder: String, address: Option<String>) {
        if self.leading {
            self.step_down(&format!("lease is held by {holder}"));
        }
        if self
            .shared
            .publish(false, Some(holder.clone()), address.clone())
        {
            info!(lease = %self.lease_ref(), %holder, address = ?address, "following leader");
        }
    }

    fn check_deadline(&mut self) {
        if self.leading && !self.shared.is_leader() {
            self.step_down("renew deadline passed without a successful renew");
        }
    }

    fn step_down(&mut self, reason: &str) {
        self.leading = false;
        self.shared.step_down();
        self.shared.publish(false, None, None);
        warn!(lease = %self.lease_ref(), identity = %self.cfg.identity, reason, "stepped down");
    }

    /// A leader's round may run until its deadline; a follower's until renew_deadline.
    fn attempt_limit(&self) -> Duration {
        let remaining = self
            .shared
            .deadline()
            .map(|d| d.saturating_duration_since(Instant::now()))
            .filter(|d| !d.is_zero());
        remaining.map_or(self.cfg.renew_deadline, |r| r.min(self.cfg.renew_deadline))
    }

    /// Leaders renew on a fixed beat (and wake at the deadline to step down on time);
    /// followers jitter so candidates do not collide round after round.
    fn next_wake(&self, started: Instant) -> Instant {
        if self.leading {
            let beat = started + self.cfg.retry_period;
            return self.shared.deadline().map_or(beat, |d| beat.min(d));
        }
        started + self.cfg.retry_period.mul_f64(1.0 + JITTER * random_unit())
    }

    async fn release(mut self) {
        self.leading = false;
        self.shared.close();
        let limit = self.cfg.renew_deadline;
        let result = match tokio::time::timeout(limit, self.clear_holder()).await {
            Ok(result) => result,
            Err(_) => Err(AttemptError::Timeout(limit)),
        };
        match result {
            Ok(true) => {
                self.shared.publish(false, None, None);
                info!(lease = %self.lease_ref(), identity = %self.cfg.identity, "released lease");
            }
            Ok(false) => debug!(lease = %self.lease_ref(), "not the holder; nothing to release"),
            Err(e) => {
                warn!(lease = %self.lease_ref(), error = %e, "release failed; the lease will expire")
            }
        }
    }

    /// Clears holderIdentity if we still hold the lease; true when we did.
    async fn clear_holder(&self) -> Result<bool, AttemptError> {
        for _ in 0..RELEASE_ATTEMPTS {
            let Some(lease) = self.api.get_opt(&self.cfg.lease_name).await? else {
                return Ok(false);
            };
            let spec = lease.spec.clone().unwrap_or_default();
            if record::holder(&spec) != Some(self.cfg.identity.as_str()) {
                return Ok(false);
            }
            match self.write(&lease, record::released(&spec)).await? {
                Outcome::Conflict => continue,
                _ => return Ok(true),
            }
        }
        Ok(false)
    }

    fn lease_ref(&self) -> String {
        format!("{}/{}", self.cfg.namespace, self.cfg.lease_name)
    }
}

fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

fn field_manager(identity: &str) -> String {
    identity.chars().take(MAX_FIELD_MANAGER).collect()
}

/// A uniform number in [0, 1) for jitter; uuid v4 is our only randomness source.
fn random_unit() -> f64 {
    let bits = uuid::Uuid::new_v4().as_u128() as u64 >> 11;
    bits as f64 / (1u64 << 53) as f64
}
