//! The BatchSandboxActor's pause/resume glue: gathers what [`pause_policy`] needs from the
//! cache and performs the writes it asks for (the internal SandboxSnapshot, the sandbox
//! patch, pod deletion, eviction and freeze annotations).

use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, Patch};
use kube::{Resource, ResourceExt};
use serde_json::{Value, json};

use super::context::Controller;
use super::pause_policy::{self, PauseInput, PauseTurn};
use crate::cache::PodInfo;
use crate::crd::{BatchSandbox, SandboxPhase, SandboxSnapshot, SandboxSnapshotSpec, keys};

/// The pause flow's writes of one turn.
#[derive(Default)]
pub struct PauseWork {
    pub create_snapshot: Option<SandboxSnapshot>,
    pub delete_snapshot: Option<String>,
    pub sandbox_patch: Option<Value>,
    pub delete_pods: Vec<String>,
    pub evict_pods: Vec<String>,
    pub freeze: Vec<(String, bool)>,
}

/// Decides the pause flow's part of this turn for `bs` and its listed pods.
pub fn plan(ctrl: &Controller, bs: &BatchSandbox, pods: &[Arc<PodInfo>]) -> PauseTurn {
    let ns = bs.namespace().unwrap_or_default();
    let snap = ctrl.cache.snapshot(&(
        ns.clone(),
        pause_policy::pause_snapshot_name(&bs.name_any()),
    ));
    let pool = bs
        .pool_ref()
        .and_then(|p| ctrl.cache.pool(&(ns, p.to_string())));
    let cfg = &ctrl.config.snapshot;
    pause_policy::pause_turn(&PauseInput {
        bs,
        snapshot: snap.as_deref(),
        pods,
        strategy: cfg.strategy,
        resume_pull_secret: cfg.resume_pull_secret.as_deref(),
        pool_template: pool.as_ref().and_then(|p| p.spec.template.as_ref()),
        now: chrono::Utc::now(),
    })
}

/// `bs` with the status the pause flow computed, so the rest of the turn builds on it.
pub fn overlay(bs: Arc<BatchSandbox>, turn: &PauseTurn) -> Arc<BatchSandbox> {
    match &turn.status {
        Some(s) => {
            let mut b = (*bs).clone();
            b.status = Some(s.clone());
            Arc::new(b)
        }
        None => bs,
    }
}

/// Pods whose addresses are published: none while paused (as upstream: endpoints `[]`).
pub fn published<'a>(bs: &BatchSandbox, pods: &'a [Arc<PodInfo>]) -> &'a [Arc<PodInfo>] {
    let paused = bs
        .status
        .as_ref()
        .is_some_and(|s| matches!(s.phase, Some(SandboxPhase::Paused)));
    if paused { &[] } else { pods }
}

/// Thaw requests for every pod a deleted sandbox left frozen.
pub fn thaw_all(pods: &[Arc<PodInfo>]) -> Vec<(String, bool)> {
    pods.iter()
        .filter(|p| p.freeze_requested && !p.deleting)
        .map(|p| (p.name.clone(), false))
        .collect()
}

/// The writes `turn` asks for.
pub fn work(bs: &BatchSandbox, turn: &PauseTurn) -> PauseWork {
    let name = pause_policy::pause_snapshot_name(&bs.name_any());
    PauseWork {
        create_snapshot: turn.create_snapshot.then(|| snapshot_for(bs, &name)),
        delete_snapshot: turn.delete_snapshot.then_some(name),
        sandbox_patch: turn.sandbox_patch.clone(),
        delete_pods: turn.delete_pods.clone(),
        evict_pods: turn.evict_pods.clone(),
        freeze: turn.freeze.clone(),
    }
}

fn snapshot_for(bs: &BatchSandbox, name: &str) -> SandboxSnapshot {
    let mut s = SandboxSnapshot::new(
        name,
        SandboxSnapshotSpec {
            sandbox_name: bs.name_any(),
        },
    );
    s.metadata.namespace = bs.namespace();
    s.metadata.owner_references = bs.controller_owner_ref(&()).map(|o| vec![o]);
    s
}

fn not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

/// How the pause writes went.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PauseOutcome {
    /// Try the turn again.
    pub retry: bool,
    /// A write the new status depends on failed: do not write the status this turn.
    pub blocked: bool,
}

/// Performs the writes.
pub async fn execute(ctx: &Controller, ns: &str, name: &str, work: PauseWork) -> PauseOutcome {
    let blocked = PauseOutcome {
        retry: true,
        blocked: true,
    };
    let mut retry = false;
    let pp = ctx.patch_params();
    let snaps: Api<SandboxSnapshot> = Api::namespaced(ctx.client.clone(), ns);
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    if let Some(s) = work.delete_snapshot
        && let Err(e) = snaps.delete(&s, &DeleteParams::background()).await
        && !not_found(&e)
    {
        tracing::warn!(snapshot = %s, error = %e, "deleting the pause snapshot failed");
        retry = true;
    }
    if let Some(s) = work.create_snapshot {
        match snaps.create(&ctx.post_params(), &s).await {
            Ok(_) => {}
            Err(kube::Error::Api(st)) if st.code == 409 => {}
            Err(e) => {
                tracing::warn!(sandbox = %name, error = %e, "creating the pause snapshot failed");
                retry = true;
            }
        }
    }
    for pod in &work.evict_pods {
        let patch = json!({"metadata": {"labels": {keys::LABEL_EVICT: "paused"}}});
        if let Err(e) = pods.patch(pod, &pp, &Patch::Merge(&patch)).await
            && !not_found(&e)
        {
            tracing::warn!(pod = %pod, error = %e, "labelling a paused pool pod for eviction failed");
            return blocked;
        }
    }
    if let Some(patch) = work.sandbox_patch {
        let api: Api<BatchSandbox> = Api::namespaced(ctx.client.clone(), ns);
        if let Err(e) = api.patch(name, &pp, &Patch::Merge(&patch)).await {
            tracing::warn!(sandbox = %name, error = %e, "patching the sandbox for pause/resume failed");
            return blocked;
        }
    }
    for pod in &work.delete_pods {
        if let Err(e) = pods.delete(pod, &DeleteParams::background()).await
            && !not_found(&e)
        {
            tracing::warn!(pod = %pod, error = %e, "deleting a paused sandbox pod failed");
            return blocked;
        }
    }
    for (pod, freeze) in &work.freeze {
        let value = if *freeze { json!("true") } else { Value::Null };
        let patch = json!({"metadata": {"annotations": {keys::ANNOTATION_FREEZE: value}}});
        if let Err(e) = pods.patch(pod, &pp, &Patch::Merge(&patch)).await
            && !not_found(&e)
        {
            tracing::warn!(pod = %pod, error = %e, "changing a pod's freeze request failed");
            retry = true;
        }
    }
    PauseOutcome {
        retry,
        blocked: false,
    }
}
