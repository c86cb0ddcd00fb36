//! Kubernetes access for the API: reads from the informer cache, writes BatchSandbox and
//! Pool objects through the client, and waits on cache change notifications.

use std::sync::Arc;
use std::time::Duration;

use actix_web::http::StatusCode;
use k8s_openapi::api::core::v1::{Event as CoreEvent, Pod};
use k8s_openapi::api::events::v1::Event as EventsEvent;
use kube::api::{Api, DeleteParams, ListParams, LogParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::Value;
use tokio::sync::watch;
use tokio::time::Instant;

use super::error::ApiError;
use super::workload::LABEL_ID;
use crate::actors::ActorDirectory;
use crate::actors::leader::LeaderGate;
use crate::actors::pool_actor::{Reserve, ReserveError};
use crate::cache::Cache;
use crate::crd::ledger::Ledger;
use crate::crd::{BatchSandbox, Pool};

/// The API's view of the cluster.
pub struct Backend {
    client: Client,
    cache: Arc<Cache>,
    namespace: String,
    changes: watch::Receiver<u64>,
    writer: Writer,
    actors: Option<ActorDirectory>,
}

/// Whether this replica may write now: always alone, only while leading among replicas.
pub struct Writer {
    gate: LeaderGate,
    identity: String,
}

impl Writer {
    pub fn always() -> Self {
        Self {
            gate: LeaderGate::always(),
            identity: String::new(),
        }
    }

    pub fn elected(gate: LeaderGate, identity: String) -> Self {
        Self { gate, identity }
    }

    /// Checked right before every write, so a replica that lost the lease mid-call
    /// answers "not the leader" instead of writing.
    fn check(&self) -> Result<(), ApiError> {
        if self.gate.is_leader() {
            Ok(())
        } else {
            Err(ApiError::not_leader(&self.identity))
        }
    }
}

/// How a wait ended.
pub enum Wait<T> {
    Done(T),
    TimedOut,
}

fn is_status(e: &kube::Error, code: u16) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == code)
}

impl Backend {
    /// Needs a Tokio runtime: it spawns the task that turns cache notifications into a
    /// change counter every waiting request can watch.
    pub fn new(
        client: Client,
        cache: Arc<Cache>,
        namespace: String,
        writer: Writer,
        actors: Option<ActorDirectory>,
    ) -> Self {
        let (tx, rx) = watch::channel(0u64);
        let sub = cache.subscribe();
        tokio::spawn(async move {
            loop {
                sub.next_batch().await;
                if tx.is_closed() {
                    break;
                }
                tx.send_modify(|v| *v = v.wrapping_add(1));
            }
        });
        Self {
            client,
            cache,
            namespace,
            changes: rx,
            writer,
            actors,
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    pub fn cache(&self) -> &Arc<Cache> {
        &self.cache
    }

    fn sandboxes_api(&self) -> Api<BatchSandbox> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    fn pools_api(&self) -> Api<Pool> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    fn key(&self, name: &str) -> (String, String) {
        (self.namespace.clone(), name.to_string())
    }

    /// A sandbox by id (name `id`, or the legacy `sandbox-<id>`), if the API created it.
    pub fn find(&self, id: &str) -> Option<Arc<BatchSandbox>> {
        [id.to_string(), format!("sandbox-{id}")]
            .iter()
            .filter_map(|n| self.cache.sandbox(&self.key(n)))
            .find(|bs| {
                bs.labels().contains_key(LABEL_ID) && bs.metadata.deletion_timestamp.is_none()
            })
    }

    /// Every sandbox the API created in its namespace.
    pub fn list(&self) -> Vec<Arc<BatchSandbox>> {
        self.cache
            .sandboxes()
            .into_iter()
            .filter(|bs| bs.namespace().as_deref() == Some(self.namespace.as_str()))
            .filter(|bs| bs.labels().contains_key(LABEL_ID))
            .filter(|bs| bs.metadata.deletion_timestamp.is_none())
            .collect()
    }

    /// A change-counter receiver; take it *before* the write whose effect you will wait for.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changes.clone()
    }

    /// Re-evaluates `check` on every cache change until it decides or `deadline` passes.
    pub async fn wait<T>(
        &self,
        mut rx: watch::Receiver<u64>,
        deadline: Instant,
        mut check: impl FnMut(&Cache) -> Option<T>,
    ) -> Wait<T> {
        loop {
            rx.mark_unchanged();
            if let Some(v) = check(&self.cache) {
                return Wait::Done(v);
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => {}
                // The notifier is gone: nothing will change any more.
                Ok(Err(_)) | Err(_) => return Wait::TimedOut,
            }
        }
    }

    pub async fn create_sandbox(&self, manifest: Value) -> Result<BatchSandbox, ApiError> {
        self.writer.check()?;
        let bs: BatchSandbox =
            serde_json::from_value(manifest).map_err(|e| ApiError::kube("build sandbox", e))?;
        // The pool's actor creates it holding idle pods when it can; otherwise (no actors
        // here, no idle pod, the actor just stopped) it is created plainly.
        let result = match self.reserve(&bs).await {
            Ok(Some(created)) => return Ok(created),
            Err(ReserveError::NotLeader) => {
                return Err(ApiError::not_leader(&self.writer.identity));
            }
            Err(ReserveError::UnknownPool(p)) => return Err(ApiError::pool_not_found(&p)),
            Err(ReserveError::Create(e)) => Err(e),
            Ok(None) | Err(ReserveError::ActorGone) => {
                self.sandboxes_api()
                    .create(&PostParams::default(), &bs)
                    .await
            }
        };
        result.map_err(|e| {
            if is_status(&e, 409) {
                ApiError::new(
                    StatusCode::CONFLICT,
                    "KUBERNETES::API_ERROR",
                    "Sandbox already exists",
                )
            } else if is_status(&e, 403) {
                ApiError::new(
                    StatusCode::FORBIDDEN,
                    "KUBERNETES::QUOTA_EXCEEDED",
                    e.to_string(),
                )
            } else {
                ApiError::kube("create sandbox", e)
            }
        })
    }

    /// A pooled create handed to the pool's actor, which creates the sandbox holding idle
    /// pods; `Ok(None)` when it cannot (no actors here, `poolRef: "*"`, no idle pods).
    async fn reserve(&self, bs: &BatchSandbox) -> Result<Option<BatchSandbox>, ReserveError> {
        let pooled = bs
            .pool_ref()
            .is_some_and(|p| p != crate::crd::keys::POOL_REF_AUTO);
        let supervisor = self.actors.as_ref().and_then(ActorDirectory::supervisor);
        let Some(supervisor) = supervisor.filter(|_| pooled) else {
            return Ok(None);
        };
        let sandbox = bs.clone();
        supervisor
            .send(Reserve { sandbox })
            .await
            .map_err(|_| ReserveError::ActorGone)?
    }

    /// Deletes a BatchSandbox by name; 404 when already gone.
    pub async fn delete_sandbox(&self, name: &str, id: &str) -> Result<(), ApiError> {
        self.writer.check()?;
        let dp = DeleteParams {
            grace_period_seconds: Some(0),
            ..DeleteParams::default()
        };
        match self.sandboxes_api().delete(name, &dp).await {
            Ok(_) => Ok(()),
            Err(e) if is_status(&e, 404) => Err(ApiError::sandbox_not_found(id)),
            Err(e) => Err(ApiError::kube("delete sandbox", e)),
        }
    }

    pub async fn patch_sandbox(
        &self,
        name: &str,
        id: &str,
        patch: Value,
    ) -> Result<BatchSandbox, ApiError> {
        self.writer.check()?;
        self.sandboxes_api()
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(|e| {
                if is_status(&e, 404) {
                    ApiError::sandbox_not_found(id)
                } else {
                    ApiError::kube("patch sandbox", e)
                }
            })
    }

    pub fn pool(&self, name: &str) -> Option<Arc<Pool>> {
        self.cache.pool(&self.key(name))
    }

    pub fn pools(&self) -> Vec<Arc<Pool>> {
        self.cache
            .pools()
            .into_iter()
            .filter(|p| p.namespace().as_deref() == Some(self.namespace.as_str()))
            .collect()
    }

    pub async fn create_pool(&self, pool: Value) -> Result<Pool, ApiError> {
        self.writer.check()?;
        let name = pool["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let pool: Pool =
            serde_json::from_value(pool).map_err(|e| ApiError::validation(e.to_string()))?;
        self.pools_api()
            .create(&PostParams::default(), &pool)
            .await
            .map_err(|e| match &e {
                kube::Error::Api(s) if s.code == 409 => ApiError::new(
                    StatusCode::CONFLICT,
                    "KUBERNETES::POOL_ALREADY_EXISTS",
                    format!("Pool '{name}' already exists"),
                ),
                kube::Error::Api(s) if s.code == 422 || s.code == 400 => {
                    ApiError::validation(s.message.clone())
                }
                _ => pool_error("create pool", e),
            })
    }

    pub async fn patch_pool(&self, name: &str, patch: Value) -> Result<Pool, ApiError> {
        self.writer.check()?;
        self.pools_api()
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(|e| match &e {
                kube::Error::Api(s) if s.code == 404 => ApiError::pool_not_found(name),
                kube::Error::Api(s) if s.code == 422 || s.code == 400 => {
                    ApiError::validation(s.message.clone())
                }
                _ => pool_error("update pool", e),
            })
    }

    pub async fn delete_pool(&self, name: &str) -> Result<(), ApiError> {
        self.writer.check()?;
        match self
            .pools_api()
            .delete(name, &DeleteParams::default())
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_status(&e, 404) => Err(ApiError::pool_not_found(name)),
            Err(e) => Err(pool_error("delete pool", e)),
        }
    }

    /// Names of the pods a sandbox holds: owned pods (template mode) and ledger pods (pool).
    fn pods_of(&self, bs: &BatchSandbox) -> Vec<String> {
        let mut pods: Vec<String> = bs
            .metadata
            .uid
            .as_deref()
            .map(|uid| self.cache.pods_owned_by(uid))
            .unwrap_or_default()
            .iter()
            .map(|p| p.name.clone())
            .collect();
        if let Ok(l) = Ledger::from_annotations(bs.metadata.annotations.as_ref()) {
            pods.extend(l.status.pods.into_iter().filter(|p| !p.is_empty()));
        }
        pods.sort();
        pods.dedup();
        pods
    }

    /// The newest `tail` log lines of the sandbox's main container, with warnings.
    pub async fn logs(&self, bs: &BatchSandbox, tail: i64) -> (Vec<String>, Vec<String>) {
        let mut warnings = Vec::new();
        let pods = self.pods_of(bs);
        let Some(pod) = pods.first() else {
            warnings.push("The sandbox has no pod yet.".to_string());
            return (Vec::new(), warnings);
        };
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &self.namespace);
        let lp = LogParams {
            tail_lines: Some(tail),
            ..LogParams::default()
        };
        match tokio::time::timeout(Duration::from_secs(10), api.logs(pod, &lp)).await {
            Ok(Ok(text)) => (text.lines().map(str::to_string).collect(), warnings),
            Ok(Err(e)) => {
                warnings.push(format!("Failed to read logs of pod {pod}: {e}"));
                (Vec::new(), warnings)
            }
            Err(_) => {
                warnings.push(format!("Timed out reading logs of pod {pod}"));
                (Vec::new(), warnings)
            }
        }
    }

    /// Kubernetes Events about the BatchSandbox and its pods, oldest first, with warnings.
    pub async fn events(&self, bs: &BatchSandbox) -> (Vec<String>, Vec<String>) {
        let mut names = self.pods_of(bs);
        names.push(bs.name_any());
        let mut rows: Vec<(String, String)> = Vec::new();
        let mut warnings = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let core: Api<CoreEvent> = Api::namespaced(self.client.clone(), &self.namespace);
        let new: Api<EventsEvent> = Api::namespaced(self.client.clone(), &self.namespace);
        for name in &names {
            let lp = ListParams::default().fields(&format!("involvedObject.name={name}"));
            match core.list(&lp).await {
                Ok(list) => rows.extend(list.items.into_iter().map(|e| {
                    seen.insert(e.metadata.name.clone().unwrap_or_default());
                    let at = e
                        .last_timestamp
                        .as_ref()
                        .map(|t| t.0.to_string())
                        .or_else(|| e.event_time.as_ref().map(|t| t.0.to_string()))
                        .or_else(|| {
                            e.metadata
                                .creation_timestamp
                                .as_ref()
                                .map(|t| t.0.to_string())
                        })
                        .unwrap_or_default();
                    let line = format!(
                        "{at} {} {} {}: {}",
                        e.type_.unwrap_or_default(),
                        e.involved_object.name.unwrap_or_default(),
                        e.reason.unwrap_or_default(),
                        e.message.unwrap_or_default()
                    );
                    (at, line)
                })),
                Err(e) => warnings.push(format!("Failed to list core/v1 events: {e}")),
            }
            let lp = ListParams::default().fields(&format!("regarding.name={name}"));
            match new.list(&lp).await {
                // On a real cluster both APIs show the same objects: skip those seen.
                Ok(list) => rows.extend(
                    list.items
                        .into_iter()
                        .filter(|e| !seen.contains(e.metadata.name.as_deref().unwrap_or_default()))
                        .map(|e| {
                            let at = e
                                .event_time
                                .as_ref()
                                .map(|t| t.0.to_string())
                                .or_else(|| {
                                    e.metadata
                                        .creation_timestamp
                                        .as_ref()
                                        .map(|t| t.0.to_string())
                                })
                                .unwrap_or_default();
                            let line = format!(
                                "{at} {} {} {}: {}",
                                e.type_.unwrap_or_default(),
                                e.regarding.and_then(|r| r.name).unwrap_or_default(),
                                e.reason.unwrap_or_default(),
                                e.note.unwrap_or_default()
                            );
                            (at, line)
                        }),
                ),
                Err(e) => warnings.push(format!("Failed to list events.k8s.io/v1 events: {e}")),
            }
        }
        rows.sort();
        rows.dedup();
        (rows.into_iter().map(|(_, l)| l).collect(), warnings)
    }
}

fn pool_error(action: &str, e: kube::Error) -> ApiError {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "KUBERNETES::POOL_API_ERROR",
        format!("Failed to {action}: {e}"),
    )
}
