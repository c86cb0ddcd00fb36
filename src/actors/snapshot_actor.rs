//! SnapshotActor: owns one SandboxSnapshot. Drives its commit Job (or the pod freeze in
//! standalone mode) and its status through [`snapshot_policy`]; removes its Jobs when the
//! snapshot is deleted.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, Patch};
use kube::{Resource, ResourceExt};
use serde_json::json;

use super::context::Controller;
use super::pool_actor::{Stop, Wake};
use super::snapshot_policy::{self, SnapshotInput, SnapshotTurn};
use crate::cache::{ObjKey, PodInfo};
use crate::crd::ledger::Ledger;
use crate::crd::{BatchSandbox, SandboxSnapshot, keys};

pub struct SnapshotActor {
    key: ObjKey,
    ctx: Arc<Controller>,
    running: bool,
    again: bool,
    recheck: Option<SpawnHandle>,
}

impl SnapshotActor {
    pub fn new(key: ObjKey, ctx: Arc<Controller>) -> Self {
        Self {
            key,
            ctx,
            running: false,
            again: false,
            recheck: None,
        }
    }
}

impl Actor for SnapshotActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(16);
    }
}

/// Candidate source pods: the sandbox's ledger pods, then its own pods (template mode).
fn source_pods(ctrl: &Controller, ns: &str, bs: &BatchSandbox) -> Vec<Arc<PodInfo>> {
    let mut pods: Vec<Arc<PodInfo>> = Ledger::from_annotations(bs.metadata.annotations.as_ref())
        .map(|l| l.held())
        .unwrap_or_default()
        .into_iter()
        .filter_map(|p| ctrl.cache.pod(&(ns.to_string(), p)))
        .collect();
    let mut owned = ctrl.cache.pods_owned_by(&bs.uid().unwrap_or_default());
    owned.sort_by(|a, b| a.name.cmp(&b.name));
    pods.extend(owned);
    pods
}

/// `(name, image)` of the containers of the sandbox's template, else of its pool's.
fn template_containers(ctrl: &Controller, ns: &str, bs: &BatchSandbox) -> Vec<(String, String)> {
    let from = |t: &serde_json::Value| -> Vec<(String, String)> {
        t.pointer("/spec/containers")
            .and_then(|c| c.as_array())
            .into_iter()
            .flatten()
            .map(|c| {
                (
                    c["name"].as_str().unwrap_or_default().to_string(),
                    c["image"].as_str().unwrap_or_default().to_string(),
                )
            })
            .filter(|(n, _)| !n.is_empty())
            .collect()
    };
    if let Some(t) = &bs.spec.template {
        return from(t);
    }
    bs.pool_ref()
        .and_then(|p| ctrl.cache.pool(&(ns.to_string(), p.to_string())))
        .and_then(|pool| pool.spec.template.as_ref().map(from))
        .unwrap_or_default()
}

impl SnapshotActor {
    fn prepare(&self) -> Option<(Arc<SandboxSnapshot>, SnapshotTurn)> {
        let snap = self.ctx.cache.snapshot(&self.key)?;
        let ns = self.key.0.as_str();
        let bs = self
            .ctx
            .cache
            .sandbox(&(ns.to_string(), snap.spec.sandbox_name.clone()));
        let (pods, containers) = match &bs {
            Some(bs) => (
                source_pods(&self.ctx, ns, bs),
                template_containers(&self.ctx, ns, bs),
            ),
            None => (Vec::new(), Vec::new()),
        };
        let job_key = (
            ns.to_string(),
            snapshot_policy::commit_job_name(&self.key.1),
        );
        let job = self.ctx.cache.job(&job_key);
        let turn = snapshot_policy::snapshot_turn(&SnapshotInput {
            snapshot: &snap,
            sandbox: bs.as_deref(),
            pods: &pods,
            template_containers: &containers,
            job: job.as_deref(),
            config: &self.ctx.config.snapshot,
            now: chrono::Utc::now(),
        });
        Some((snap, turn))
    }

    fn wake(&mut self, ctx: &mut Context<Self>) {
        if self.running {
            self.again = true;
            return;
        }
        let Some((snap, turn)) = self.prepare() else {
            return;
        };
        if let Some(h) = self.recheck.take() {
            ctx.cancel_future(h);
        }
        if let Some(after) = turn.recheck_after {
            // Past the deadline the next turn fails the snapshot; a little slack avoids
            // waking just before it.
            let after = after + Duration::from_millis(50);
            self.recheck = Some(ctx.run_later(after, |act, ctx| {
                act.recheck = None;
                act.wake(ctx);
            }));
        }
        self.running = true;
        ctx.spawn(
            execute(self.ctx.clone(), snap, turn)
                .into_actor(self)
                .map(|retry, act, ctx| {
                    act.running = false;
                    if retry {
                        ctx.run_later(Duration::from_millis(500), |act, ctx| act.wake(ctx));
                    }
                    if std::mem::take(&mut act.again) {
                        act.wake(ctx);
                    }
                }),
        );
    }
}

fn not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

/// Runs the turn's writes; true asks for a retry.
async fn execute(ctx: Arc<Controller>, snap: Arc<SandboxSnapshot>, turn: SnapshotTurn) -> bool {
    if !ctx.gate.is_leader() {
        return false;
    }
    let ns = snap.namespace().unwrap_or_default();
    let name = snap.name_any();
    let api: Api<SandboxSnapshot> = Api::namespaced(ctx.client.clone(), &ns);
    let pp = ctx.patch_params();
    let finalizer_patch = |finalizers: Vec<String>| json!({"metadata": {"resourceVersion": snap.resource_version(), "finalizers": finalizers}});
    if turn.add_finalizer {
        let mut f = snap.finalizers().to_vec();
        f.push(keys::FINALIZER_SNAPSHOT_CLEANUP.to_string());
        return match api
            .patch(&name, &pp, &Patch::Merge(&finalizer_patch(f)))
            .await
        {
            Ok(_) => false,
            Err(e) => !not_found(&e),
        };
    }
    if let Some(jobs) = turn.cleanup_jobs {
        let job_api: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
        for j in jobs {
            if let Err(e) = job_api.delete(&j, &DeleteParams::background()).await
                && !not_found(&e)
            {
                tracing::warn!(job = %j, error = %e, "deleting a snapshot job failed");
                return true;
            }
        }
        let f: Vec<String> = snap
            .finalizers()
            .iter()
            .filter(|f| *f != keys::FINALIZER_SNAPSHOT_CLEANUP)
            .cloned()
            .collect();
        return match api
            .patch(&name, &pp, &Patch::Merge(&finalizer_patch(f)))
            .await
        {
            Ok(_) => false,
            Err(e) => !not_found(&e),
        };
    }
    let mut retry = false;
    if !turn.create_jobs.is_empty() {
        let job_api: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
        for job in &turn.create_jobs {
            match job_api.create(&ctx.post_params(), job).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 409 => {}
                Err(e) => {
                    tracing::warn!(snapshot = %name, error = %e, "creating a snapshot job failed");
                    ctx.event(
                        &snap.object_ref(&()),
                        true,
                        "FailedCreate",
                        "CreateJob",
                        format!("failed to create job {}: {e}", job.name_any()),
                    )
                    .await;
                    return true;
                }
            }
        }
    }
    if let Some(pod) = &turn.freeze_pod {
        let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
        let patch = json!({"metadata": {"annotations": {keys::ANNOTATION_FREEZE: "true"}}});
        if let Err(e) = pods.patch(pod, &pp, &Patch::Merge(&patch)).await {
            tracing::warn!(pod = %pod, error = %e, "requesting a pod freeze failed");
            retry = !not_found(&e);
        }
    }
    if let Some(status) = turn.status {
        let phase = status.phase;
        let patch = json!({ "status": status });
        match api.patch_status(&name, &pp, &Patch::Merge(&patch)).await {
            Ok(_) => {
                if let Some(p) = phase {
                    tracing::info!(snapshot = %name, phase = ?p, "snapshot phase");
                }
            }
            Err(e) => {
                tracing::warn!(snapshot = %name, error = %e, "writing snapshot status failed");
                retry = !not_found(&e);
            }
        }
    }
    retry
}

impl Handler<Wake> for SnapshotActor {
    type Result = ();

    fn handle(&mut self, _: Wake, ctx: &mut Context<Self>) {
        self.wake(ctx);
    }
}

impl Handler<Stop> for SnapshotActor {
    type Result = ();

    fn handle(&mut self, _: Stop, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}
