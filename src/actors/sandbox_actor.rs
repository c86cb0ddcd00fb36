//! BatchSandboxActor: owns one BatchSandbox. Template mode: creates, scales and recreates
//! its pods. Both modes: status and endpoints from the listed pods (one write per turn, only
//! when changed), expiry timer, pool auto-assignment, and finalizer cleanup when the pool is
//! gone. Pooled pods are allocated by the PoolActor, never here.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch};
use serde_json::json;

use super::context::Controller;
use super::pool_actor::{Stop, Wake};
use super::pool_assign;
use super::sandbox_pause::{self, PauseWork};
use super::sandbox_policy::{self, Expiry, StatusInput};
use super::task_tracker::TaskTracker;
use crate::cache::{ObjKey, PodInfo};
use crate::crd::conditions::{Condition, set_condition};
use crate::crd::ledger::{Ledger, endpoints_annotation};
use crate::crd::{BatchSandbox, BatchSandboxStatus, keys};
use crate::metrics;

mod tasks;

pub struct SandboxActor {
    key: ObjKey,
    ctx: Arc<Controller>,
    running: bool,
    again: bool,
    last_status: Option<BatchSandboxStatus>,
    last_endpoints: Option<Vec<String>>,
    restart_baseline: HashMap<String, i32>,
    /// Pods created and not yet in the cache (name -> when).
    created: HashMap<String, Instant>,
    expiry_timer: Option<SpawnHandle>,
    delete_issued: bool,
    tasks: TaskTracker,
    task_timer: Option<SpawnHandle>,
    /// The last `released-tasks` value written (the cache may not show it yet).
    released_tasks_written: Option<String>,
    /// When the cache first showed the sandbox (this actor starts then).
    first_seen: chrono::DateTime<chrono::Utc>,
}

impl SandboxActor {
    pub fn new(key: ObjKey, ctx: Arc<Controller>) -> Self {
        Self {
            key,
            ctx,
            running: false,
            again: false,
            last_status: None,
            last_endpoints: None,
            restart_baseline: HashMap::new(),
            created: HashMap::new(),
            expiry_timer: None,
            delete_issued: false,
            tasks: TaskTracker::default(),
            task_timer: None,
            released_tasks_written: None,
            first_seen: chrono::Utc::now(),
        }
    }
}

impl Actor for SandboxActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(64);
    }
}

/// The writes of one turn.
#[derive(Default)]
struct TurnWork {
    ns: String,
    name: String,
    delete_sandbox: bool,
    remove_pool_finalizer: Option<(String, Vec<String>)>,
    assign_pool: Option<String>,
    create: Vec<Pod>,
    delete_pods: Vec<String>,
    endpoints: Option<Vec<String>>,
    status: Option<BatchSandboxStatus>,
    task_finalizer: Option<tasks::FinalizerEdit>,
    released_tasks: Option<String>,
    pause: PauseWork,
}

#[derive(Default)]
struct TurnOutcome {
    created: Vec<String>,
    endpoints: Option<Vec<String>>,
    status: Option<BatchSandboxStatus>,
    released_tasks: Option<String>,
    deleted_sandbox: bool,
    retry: bool,
}

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

impl SandboxActor {
    /// Pods listed for the sandbox, in index order.
    fn listed_pods(&self, bs: &BatchSandbox) -> (Vec<Arc<PodInfo>>, Option<String>) {
        match bs.pool_ref() {
            Some(_) => match Ledger::from_annotations(bs.metadata.annotations.as_ref()) {
                Ok(l) => (
                    l.held()
                        .iter()
                        .filter_map(|p| self.ctx.cache.pod(&(self.key.0.clone(), p.clone())))
                        .collect(),
                    None,
                ),
                Err(e) => (Vec::new(), Some(e.to_string())),
            },
            None => {
                let mut pods = self.ctx.cache.pods_owned_by(&bs.uid().unwrap_or_default());
                pods.sort_by_key(|p| {
                    (
                        sandbox_policy::pod_index(p).unwrap_or(u32::MAX),
                        p.name.clone(),
                    )
                });
                (pods, None)
            }
        }
    }

    fn prepare(&mut self, ctx: &mut Context<Self>) -> Option<TurnWork> {
        let bs = self.ctx.cache.sandbox(&self.key)?;
        let mut work = TurnWork {
            ns: self.key.0.clone(),
            name: self.key.1.clone(),
            ..Default::default()
        };
        let deleting = bs.metadata.deletion_timestamp.is_some();
        let finalizers = bs.metadata.finalizers.clone().unwrap_or_default();
        if tasks::needs_cleanup(&bs) {
            let (pods, _) = self.listed_pods(&bs);
            return self.task_cleanup_turn(ctx, &bs, &pods, work);
        }
        if deleting {
            // A sandbox whose pool is gone must not wait forever for the pool's release.
            let has = finalizers
                .iter()
                .any(|f| f == keys::FINALIZER_POOL_ALLOCATION);
            let pool_gone = bs.pool_ref().is_none_or(|p| {
                self.ctx
                    .cache
                    .pool(&(self.key.0.clone(), p.to_string()))
                    .is_none()
            });
            if has && pool_gone {
                work.remove_pool_finalizer =
                    Some((bs.resource_version().unwrap_or_default(), finalizers));
                return Some(work);
            }
            // Frozen pods go back to their pool (or away) running again.
            work.pause.freeze = sandbox_pause::thaw_all(&self.listed_pods(&bs).0);
            return (!work.pause.freeze.is_empty()).then_some(work);
        }
        let now = chrono::Utc::now();
        let mut spec_problem: Option<(String, String)> = None;
        match sandbox_policy::expiry(&bs, now) {
            Ok(Expiry::Expired) => {
                if !self.delete_issued {
                    work.delete_sandbox = true;
                    return Some(work);
                }
                return None;
            }
            Ok(Expiry::At(d)) => self.arm_expiry(ctx, d),
            Ok(Expiry::Never) => {}
            Err(e) => spec_problem = Some(("InvalidExpireTime".into(), e.to_string())),
        }
        if bs.wants_auto_pool() {
            match pool_assign::choose_pool(
                &bs,
                &self.ctx.cache.pools_in(&self.key.0),
                &pool_assign::Profile::builtin(),
            ) {
                Ok(pool) => {
                    work.assign_pool = Some(pool);
                    return Some(work);
                }
                Err(e) => spec_problem = Some(("NoEligiblePool".into(), e.to_string())),
            }
        }
        let (pods, ledger_problem) = self.listed_pods(&bs);
        if let Some(p) = ledger_problem {
            spec_problem = Some(("MalformedLedger".into(), p));
        }
        if let Some(pool) = bs.pool_ref().filter(|p| *p != keys::POOL_REF_AUTO)
            && self
                .ctx
                .cache
                .pool(&(self.key.0.clone(), pool.to_string()))
                .is_none()
        {
            spec_problem = Some((
                "PoolNotFound".into(),
                format!("pool {pool} does not exist in namespace {}", self.key.0),
            ));
        }
        let original_status = bs.status.clone();
        let pause = sandbox_pause::plan(&self.ctx, &bs, &pods);
        work.pause = sandbox_pause::work(&bs, &pause);
        let bs = sandbox_pause::overlay(bs, &pause);
        if bs.pool_ref().is_none() && spec_problem.is_none() && !pause.hold_pods {
            self.created.retain(|n, at| {
                at.elapsed() < Duration::from_secs(60) && !pods.iter().any(|p| &p.name == n)
            });
            let plan = sandbox_policy::template_plan(&bs, &pods);
            for index in plan.create {
                let name = sandbox_policy::pod_name(&bs, index);
                if self.created.contains_key(&name) {
                    continue;
                }
                match sandbox_policy::template_pod(&bs, index) {
                    Ok(pod) => work.create.push(pod),
                    Err(e) => {
                        spec_problem = Some(("InvalidTemplate".into(), e.to_string()));
                        break;
                    }
                }
            }
            work.delete_pods = plan.delete;
        }
        sandbox_policy::track_ready_restarts(&mut self.restart_baseline, &pods);
        let mut status = sandbox_policy::sandbox_status(&StatusInput {
            bs: &bs,
            pods: &pods,
            tasks: None,
            restart_baseline: &self.restart_baseline,
            now,
        });
        if tasks::task_mode(&bs)
            && let Some(problem) = self.task_turn(ctx, &bs, &pods, &mut status, &mut work, now)
        {
            spec_problem.get_or_insert(problem);
        }
        let spec_cond = match &spec_problem {
            Some((reason, msg)) => Condition::new("SpecValid", false, reason, msg, &now_rfc3339()),
            None => Condition::new(
                "SpecValid",
                true,
                "Valid",
                "the spec is valid",
                &now_rfc3339(),
            ),
        };
        if spec_problem.is_some() || status.conditions.iter().any(|c| c.type_ == "SpecValid") {
            set_condition(&mut status.conditions, spec_cond);
        }
        let current = original_status.as_ref();
        // A new sandbox stays status-less until it has a pod (one status write per batch),
        // unless there is a spec problem to report.
        let deferred =
            spec_problem.is_none() && sandbox_policy::first_write_deferred(&bs, pods.len());
        if !deferred
            && sandbox_policy::status_changed(current, &status)
            && self.last_status.as_ref() != Some(&status)
        {
            metrics::pools::sandbox_status_written(
                &bs,
                [current, self.last_status.as_ref()],
                &status,
                &pods,
                self.first_seen,
            );
            if let Some((why, msg)) = &spec_problem {
                self.ctx.sandbox_event(
                    &self.key.0,
                    &self.key.1,
                    true,
                    "InvalidSpec",
                    "Validate",
                    format!("{why}: {msg}"),
                );
            }
            work.status = Some(status);
        }
        let endpoints = sandbox_policy::endpoints(sandbox_pause::published(&bs, &pods));
        let current_annotation = bs
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(keys::ANNOTATION_ENDPOINTS))
            .map(String::as_str);
        if sandbox_policy::endpoints_changed(current_annotation, &endpoints)
            && self.last_endpoints.as_ref() != Some(&endpoints)
        {
            work.endpoints = Some(endpoints);
        }
        Some(work)
    }

    fn arm_expiry(&mut self, ctx: &mut Context<Self>, after: Duration) {
        if let Some(h) = self.expiry_timer.take() {
            ctx.cancel_future(h);
        }
        // Wake exactly at expiry; the turn then deletes the sandbox.
        self.expiry_timer = Some(ctx.run_later(after, |act, ctx| {
            act.expiry_timer = None;
            act.wake(ctx);
        }));
    }

    fn wake(&mut self, ctx: &mut Context<Self>) {
        if self.running {
            self.again = true;
            return;
        }
        let Some(work) = self.prepare(ctx) else {
            return;
        };
        self.running = true;
        let started = Instant::now();
        ctx.spawn(
            super::spans::in_sandbox(&self.key, execute(self.ctx.clone(), work))
                .into_actor(self)
                .map(move |out, act, ctx| {
                    let now = Instant::now();
                    for n in out.created {
                        act.created.insert(n, now);
                    }
                    if out.endpoints.is_some() {
                        act.last_endpoints = out.endpoints;
                    }
                    if out.status.is_some() {
                        act.last_status = out.status;
                    }
                    if out.released_tasks.is_some() {
                        act.released_tasks_written = out.released_tasks;
                    }
                    if out.deleted_sandbox {
                        act.delete_issued = true;
                    }
                    if out.retry {
                        act.again = true;
                    }
                    metrics::get()
                        .actor_turn_seconds
                        .with_label_values(&["batchsandbox"])
                        .observe(started.elapsed().as_secs_f64());
                    act.running = false;
                    if std::mem::take(&mut act.again) {
                        act.wake(ctx);
                    }
                }),
        );
    }
}

async fn execute(ctx: Arc<Controller>, work: TurnWork) -> TurnOutcome {
    let mut out = TurnOutcome::default();
    if !ctx.gate.is_leader() {
        return out;
    }
    let api: Api<BatchSandbox> = Api::namespaced(ctx.client.clone(), &work.ns);
    let pp = ctx.patch_params();
    let mut work = work;
    if tasks::write_task_finalizer(&api, &pp, &mut work, &mut out).await {
        return out;
    }
    tasks::write_released_tasks(&api, &pp, &mut work, &mut out).await;
    if work.delete_sandbox {
        match api.delete(&work.name, &DeleteParams::background()).await {
            Ok(_) => {
                ctx.sandbox_event(
                    &work.ns,
                    &work.name,
                    false,
                    "Expired",
                    "Delete",
                    "The sandbox reached its expiry time and was deleted".into(),
                );
                out.deleted_sandbox = true
            }
            Err(kube::Error::Api(s)) if s.code == 404 => out.deleted_sandbox = true,
            Err(e) => {
                tracing::warn!(sandbox = %work.name, error = %e, "deleting an expired sandbox failed")
            }
        }
        return out;
    }
    if let Some((rv, mut finalizers)) = work.remove_pool_finalizer {
        finalizers.retain(|f| f != keys::FINALIZER_POOL_ALLOCATION);
        let patch = json!({"metadata": {"resourceVersion": rv, "finalizers": finalizers}});
        if let Err(e) = api.patch(&work.name, &pp, &Patch::Merge(&patch)).await {
            out.retry = !matches!(&e, kube::Error::Api(s) if s.code == 404);
        }
        return out;
    }
    if let Some(pool) = work.assign_pool {
        let patch = json!({"spec": {"poolRef": pool}});
        if let Err(e) = api.patch(&work.name, &pp, &Patch::Merge(&patch)).await {
            tracing::warn!(sandbox = %work.name, error = %e, "assigning a pool failed");
            out.retry = true;
        }
        return out;
    }
    let pause = sandbox_pause::execute(&ctx, &work.ns, &work.name, work.pause).await;
    out.retry |= pause.retry;
    let status = if pause.blocked { None } else { work.status };
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &work.ns);
    let concurrency = ctx.config.pod_write_concurrency.max(1);
    if !work.create.is_empty() {
        let post = ctx.post_params();
        let results: Vec<Result<Pod, kube::Error>> = futures::stream::iter(work.create)
            .map(|pod| {
                let pods = pods.clone();
                let post = post.clone();
                async move { pods.create(&post, &pod).await }
            })
            .buffer_unordered(concurrency)
            .collect()
            .await;
        for r in results {
            match r {
                Ok(p) => out.created.push(p.name_any()),
                // The pod exists already (a terminating one, or a lagging cache): retry later.
                Err(kube::Error::Api(s)) if s.code == 409 => out.retry = true,
                Err(e) => {
                    tracing::warn!(sandbox = %work.name, error = %e, "creating a sandbox pod failed")
                }
            }
        }
    }
    for name in work.delete_pods {
        if let Err(e) = pods.delete(&name, &DeleteParams::background()).await
            && !matches!(&e, kube::Error::Api(s) if s.code == 404)
        {
            tracing::warn!(pod = %name, error = %e, "deleting a sandbox pod failed");
        }
    }
    if let Some(endpoints) = work.endpoints {
        let patch = json!({"metadata": {"annotations": {keys::ANNOTATION_ENDPOINTS: endpoints_annotation(&endpoints)}}});
        match api.patch(&work.name, &pp, &Patch::Merge(&patch)).await {
            Ok(_) => out.endpoints = Some(endpoints),
            Err(e) => tracing::warn!(sandbox = %work.name, error = %e, "writing endpoints failed"),
        }
    }
    if let Some(status) = status {
        let patch = json!({ "status": status });
        match api
            .patch_status(&work.name, &pp, &Patch::Merge(&patch))
            .await
        {
            Ok(_) => out.status = Some(status),
            Err(e) => {
                tracing::warn!(sandbox = %work.name, error = %e, "writing sandbox status failed")
            }
        }
    }
    let result = if out.retry { "retry" } else { "ok" };
    metrics::get()
        .actor_turns
        .with_label_values(&["batchsandbox", result])
        .inc();
    out
}

impl Handler<Wake> for SandboxActor {
    type Result = ();

    fn handle(&mut self, _: Wake, ctx: &mut Context<Self>) {
        self.wake(ctx);
    }
}

impl Handler<Stop> for SandboxActor {
    type Result = ();

    fn handle(&mut self, _: Stop, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}
