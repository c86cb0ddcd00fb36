//! What every actor shares: the client, the cache, the write gate and the event sink.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;

use super::events::{EventSink, Occurrence};
use super::leader::LeaderGate;
use crate::cache::Cache;

/// Tunables of the actors.
#[derive(Clone, Debug)]
pub struct ActorConfig {
    /// Creates and deletes a pool issues at once.
    pub pod_write_concurrency: usize,
    /// How long a create or delete may stay unobserved in the cache before the actor
    /// stops counting it (the expectation timeout).
    pub expectation_timeout: Duration,
    /// Field manager of every write (`fieldManager`), so writers are attributable.
    pub field_manager: String,
    /// How pauses take snapshots (commit Jobs, or freezing in place in standalone mode).
    pub snapshot: super::snapshot_policy::SnapshotConfig,
    /// Pause between a pool's back-to-back turns: under churn, changes that arrive while a
    /// turn runs are batched into the next one instead of each costing a full pass. A turn
    /// on a quiet pool still starts at once.
    pub pool_turn_gap: Duration,
}

impl Default for ActorConfig {
    fn default() -> Self {
        Self {
            pod_write_concurrency: 64,
            expectation_timeout: Duration::from_secs(60),
            field_manager: "opensandbox-controller".to_string(),
            snapshot: Default::default(),
            pool_turn_gap: Duration::from_millis(5),
        }
    }
}

/// Shared by the supervisor and every actor.
pub struct Controller {
    pub client: kube::Client,
    pub cache: Arc<Cache>,
    pub gate: LeaderGate,
    pub events: EventSink,
    pub config: ActorConfig,
    /// The running Supervisor, for the SDK API.
    pub directory: super::ActorDirectory,
}

impl Controller {
    pub fn new(
        client: kube::Client,
        cache: Arc<Cache>,
        gate: LeaderGate,
        identity: &str,
        config: ActorConfig,
    ) -> Arc<Self> {
        Arc::new(Self {
            events: EventSink::start(
                client.clone(),
                "opensandbox-controller".into(),
                identity.to_string(),
            ),
            client,
            cache,
            gate,
            config,
            directory: super::ActorDirectory::default(),
        })
    }

    pub fn post_params(&self) -> kube::api::PostParams {
        kube::api::PostParams {
            dry_run: false,
            field_manager: Some(self.config.field_manager.clone()),
        }
    }

    pub fn patch_params(&self) -> kube::api::PatchParams {
        kube::api::PatchParams {
            field_manager: Some(self.config.field_manager.clone()),
            ..Default::default()
        }
    }

    /// Publishes a Kubernetes Event if this replica may write: aggregated into a series
    /// with its repeats and rate-limited (see [`super::events`]); never waits for the write.
    pub async fn event(
        &self,
        reference: &ObjectReference,
        warning: bool,
        reason: &str,
        action: &str,
        note: String,
    ) {
        self.emit(reference, warning, reason, action, note);
    }

    /// [`Controller::event`] for synchronous callers.
    pub fn emit(
        &self,
        reference: &ObjectReference,
        warning: bool,
        reason: &str,
        action: &str,
        note: String,
    ) {
        if !self.gate.is_leader() {
            return;
        }
        self.events.publish(Occurrence {
            regarding: reference.clone(),
            warning,
            reason: reason.to_string(),
            action: action.to_string(),
            note,
        });
    }

    /// An Event on the BatchSandbox `namespace/name` as the cache knows it (none if it
    /// is not cached).
    pub fn sandbox_event(
        &self,
        namespace: &str,
        name: &str,
        warning: bool,
        reason: &str,
        action: &str,
        note: String,
    ) {
        use kube::Resource;
        let key = (namespace.to_string(), name.to_string());
        if let Some(bs) = self.cache.sandbox(&key) {
            self.emit(&bs.object_ref(&()), warning, reason, action, note);
        }
    }
}
