//! PoolActor: owns one Pool's pods and its buffer-size policy. Each turn reads the cache,
//! asks [`pool_policy::plan`] what to do, issues the creates and deletes, and writes the
//! status once, only when it changed. Restart recycling follows
//! [`recycle_restart`]'s steps; its `pods/exec` runs beside the turns and wakes the actor when
//! done, and a timer wakes it for the next retry.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{ObjectReference, Pod};
use kube::api::{Api, DeleteParams, Patch, Preconditions};
use kube::{Resource, ResourceExt};
use serde_json::json;

use super::allocation::{self, LedgerWrite, PodState, SandboxView};
use super::context::Controller;
use super::pool_pod::{check_template, pool_pod};
use super::pool_policy::{self, DeleteReason, PodPhase, PodView, PoolInputs};
use super::recycle_restart::{self, RecyclePod, RestartSettings, Step};
use super::restart_exec;
use crate::cache::{ObjKey, PodInfo};
use crate::crd::conditions::{Condition, set_condition};
use crate::crd::ledger::{Ledger, PodList};
use crate::crd::{BatchSandbox, Pool, PoolStatus, RecycleType, keys};
use crate::metrics;

mod reserve;
pub use reserve::{Reserve, ReserveError};

/// Something changed for this pool: run a turn (coalesced while one runs).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Wake;

/// Stop after the current turn.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Stop;

pub struct PoolActor {
    key: ObjKey,
    ctx: Arc<Controller>,
    /// Pods created and not yet seen in the cache.
    created: HashMap<String, Instant>,
    /// Pods deleted and still in the cache (not yet terminating there).
    deleted: HashMap<String, Instant>,
    /// Ledgers this actor wrote (or is writing) that the cache does not show yet
    /// (sandbox -> ledger).
    written_ledgers: HashMap<String, (Vec<String>, Instant)>,
    /// Pods handed to sandboxes this actor is creating or created, not yet in the cache
    /// (sandbox -> pods): held like a ledger so no turn or reservation gives them out again.
    reserved: HashMap<String, (Vec<String>, Instant)>,
    /// Idle Ready pods nobody holds, for reservations: computed at each turn's start, kept
    /// until the next one, and recomputed when it runs short (taking a pod re-checks it
    /// against the cache).
    spare: Option<Vec<String>>,
    /// The spare list was recomputed since the last turn started: a reservation that still
    /// finds too few pods does not plan the whole pool again (the pool is short, and the next
    /// turn, woken by whatever changes that, computes a new list).
    spare_recomputed: bool,
    /// How long the last turn took to plan: the gap before the next turn grows with it.
    last_plan: std::time::Duration,
    running: bool,
    again: bool,
    last_status: Option<PoolStatus>,
    last_invalid: Option<String>,
    /// `restart-record` values this actor wrote (None: removed) that the cache does not
    /// show yet.
    written_records: HashMap<String, (Option<String>, Instant)>,
    /// Pods whose restart command is running.
    execs: HashSet<String>,
    /// The pending wake-up for the next restart retry.
    retry_timer: Option<(chrono::DateTime<chrono::Utc>, SpawnHandle)>,
}

impl PoolActor {
    pub fn new(key: ObjKey, ctx: Arc<Controller>) -> Self {
        Self {
            key,
            ctx,
            created: HashMap::new(),
            deleted: HashMap::new(),
            written_ledgers: HashMap::new(),
            reserved: HashMap::new(),
            spare: None,
            spare_recomputed: false,
            last_plan: std::time::Duration::ZERO,
            running: false,
            again: false,
            last_status: None,
            last_invalid: None,
            written_records: HashMap::new(),
            execs: HashSet::new(),
            retry_timer: None,
        }
    }
}

impl Actor for PoolActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(64);
    }
}

/// Everything one turn writes, computed from the cache before any I/O.
struct TurnWork {
    pool: Arc<Pool>,
    reference: ObjectReference,
    create: Vec<Pod>,
    delete: Vec<(String, String, DeleteReason)>,
    /// Ledger writes, with the sandbox's resourceVersion and current finalizers.
    ledgers: Vec<(LedgerWrite, String, Vec<String>)>,
    /// Pods taken back from sandboxes, to recycle before the ledger writes.
    recycle: Vec<(String, String)>,
    recycle_type: RecycleType,
    /// Restart recycling steps (pod, uid, step) and the command to run.
    restarts: Vec<(String, String, Step)>,
    restart_command: Vec<String>,
    /// Released pod -> the sandbox releasing it (its ledger write waits for the pod's record).
    released_by: HashMap<String, String>,
    status: Option<PoolStatus>,
    /// Why the spec is invalid, if it is.
    invalid: Option<String>,
    /// Allocatable pods this turn leaves unallocated.
    spare: Vec<String>,
}

/// What the turn achieved.
struct TurnOutcome {
    created: Vec<String>,
    deleted: Vec<String>,
    written_ledgers: Vec<(String, Vec<String>)>,
    /// Ledger writes and deletes that did not happen (their expectations are dropped).
    failed_ledgers: Vec<String>,
    failed_deletes: Vec<String>,
    /// A write lost a race (409): run another turn on fresh state.
    retry: bool,
    written_status: Option<PoolStatus>,
    /// Restart records written (None: removed).
    written_records: Vec<(String, Option<String>)>,
    /// Restart commands to start: pod and containers.
    execs: Vec<(String, Vec<String>)>,
    restart_command: Vec<String>,
    /// The earliest time a waiting restart needs another look.
    wake_at: Option<chrono::DateTime<chrono::Utc>>,
}

fn pod_view(p: &PodInfo) -> PodView {
    PodView {
        name: p.name.clone(),
        uid: p.uid.clone(),
        revision: p.revision.clone(),
        ready: p.ready,
        phase: PodPhase::parse(&p.phase),
        terminating: p.deleting,
        scheduled: p.node_name.is_some(),
        // A frozen pod (a paused sandbox's, in standalone) never serves anyone else: if it
        // comes back to the pool still frozen, it is drained like an evicted one.
        evict_label: p.evict || p.freeze_requested || p.frozen,
        restarts: p.restarts(),
        ready_since: p.ready_since,
        created: p.created,
    }
}

impl PoolActor {
    /// Forgets expectations the cache has caught up with (or that timed out).
    fn settle_expectations(&mut self, pods: &[Arc<PodInfo>]) {
        let timeout = self.ctx.config.expectation_timeout;
        let seen: HashMap<&str, &PodInfo> = pods.iter().map(|p| (p.name.as_str(), &**p)).collect();
        self.created
            .retain(|name, at| !seen.contains_key(name.as_str()) && at.elapsed() < timeout);
        self.deleted.retain(|name, at| {
            seen.get(name.as_str()).is_some_and(|p| !p.deleting) && at.elapsed() < timeout
        });
    }

    /// The pool's sandboxes in service order (oldest first) as the allocator sees them,
    /// with this actor's own unobserved ledger writes applied.
    fn sandbox_views(
        &mut self,
        pod_names: &HashSet<String>,
    ) -> Vec<(SandboxView, String, Vec<String>)> {
        let timeout = self.ctx.config.expectation_timeout;
        let mut sandboxes = self.ctx.cache.sandboxes_of_pool(&self.key);
        sandboxes.sort_by(|a, b| {
            (
                a.metadata.creation_timestamp.as_ref().map(|t| t.0),
                a.name_any(),
            )
                .cmp(&(
                    b.metadata.creation_timestamp.as_ref().map(|t| t.0),
                    b.name_any(),
                ))
        });
        let mut views = Vec::new();
        let mut live = HashSet::new();
        for bs in sandboxes {
            let name = bs.name_any();
            live.insert(name.clone());
            let annotations = bs.metadata.annotations.as_ref();
            let (mut ledger, release, malformed) = match Ledger::from_annotations(annotations) {
                Ok(l) => (l.status.pods, l.release.pods, false),
                Err(_) => {
                    // Hold every pool pod the broken annotation names; never hand them out.
                    let raw = annotations
                        .and_then(|a| a.get(keys::ANNOTATION_ALLOC_STATUS))
                        .cloned()
                        .unwrap_or_default();
                    let named = pod_names
                        .iter()
                        .filter(|p| raw.contains(p.as_str()))
                        .cloned()
                        .collect();
                    (named, Vec::new(), true)
                }
            };
            if let Some((written, at)) = self.written_ledgers.get(&name) {
                if *written == ledger || at.elapsed() > timeout {
                    self.written_ledgers.remove(&name);
                } else {
                    ledger = written.clone();
                }
            }
            let finalizers = bs.metadata.finalizers.clone().unwrap_or_default();
            views.push((
                SandboxView {
                    name,
                    replicas: bs.spec.replicas.max(0) as u32,
                    deleting: bs.metadata.deletion_timestamp.is_some(),
                    ledger,
                    release_requests: release,
                    has_finalizer: finalizers
                        .iter()
                        .any(|f| f == keys::FINALIZER_POOL_ALLOCATION),
                    malformed,
                    stopping_tasks: finalizers.iter().any(|f| f == keys::FINALIZER_TASK_CLEANUP),
                    retired: bs.released_tasks().0.into_keys().collect(),
                },
                bs.resource_version().unwrap_or_default(),
                finalizers,
            ));
        }
        self.written_ledgers.retain(|n, _| live.contains(n));
        self.reserved.retain(|name, (_, at)| {
            let cached = live.contains(name);
            !cached && at.elapsed() < timeout
        });
        for (name, (pods, _)) in &self.reserved {
            views.push((
                reserve::reserved_view(name, pods),
                String::new(),
                Vec::new(),
            ));
        }
        views
    }

    fn prepare(&mut self) -> Option<TurnWork> {
        let pool = self.ctx.cache.pool(&self.key)?;
        let pods = self.ctx.cache.pods_of_pool(&self.key);
        self.settle_expectations(&pods);
        let pod_names: HashSet<String> = pods.iter().map(|p| p.name.clone()).collect();
        let sandboxes = self.sandbox_views(&pod_names);
        let views: Vec<PodView> = pods.iter().map(|p| pod_view(p)).collect();
        let deleting: HashSet<String> = self.deleted.keys().cloned().collect();
        let pod_states: HashMap<String, PodState> = pods
            .iter()
            .map(|p| {
                let failed = matches!(p.phase.as_str(), "Failed" | "Succeeded");
                let alive = !p.deleting && !failed && !deleting.contains(&p.name);
                (
                    p.name.clone(),
                    PodState {
                        alive,
                        ip: p.pod_ip.clone(),
                    },
                )
            })
            .collect();
        let sandbox_views: Vec<SandboxView> = sandboxes.iter().map(|(v, _, _)| v.clone()).collect();
        let held = allocation::held_pods(&sandbox_views);
        let restart = pool.recycle_type() == RecycleType::Restart;
        let records = self.effective_records(&pods);
        // A restart in progress completes even if the pool has switched strategies since.
        let recycle_pods: Vec<RecyclePod> = pods
            .iter()
            .map(|p| RecyclePod {
                name: &p.name,
                phase: &p.phase,
                containers: &p.containers,
                record: records.get(&p.name).and_then(|r| r.as_deref()),
                terminating: p.deleting || deleting.contains(&p.name),
            })
            .collect();
        // Recycling pods count as allocated: never handed out, never scaled in.
        let mut allocated = held.clone();
        allocated.extend(recycle_restart::recycling(&recycle_pods, &held).map(str::to_string));
        let demand = allocation::demand(&sandbox_views, &pod_states);
        let template = pool
            .spec
            .template
            .clone()
            .unwrap_or(serde_json::Value::Null);
        let revision = pool_policy::revision_hash(&template);
        let spec = &pool.spec;
        let plan = pool_policy::plan(&PoolInputs {
            capacity: &spec.capacity_spec,
            scale_max_unavailable: spec
                .scale_strategy
                .as_ref()
                .and_then(|s| s.max_unavailable.as_ref()),
            update_max_unavailable: spec
                .update_strategy
                .as_ref()
                .and_then(|s| s.max_unavailable.as_ref()),
            revision: &revision,
            pods: &views,
            allocated: &allocated,
            deleting: &deleting,
            demand,
            pending_creates: self.created.len() as u32,
        });
        let template_problem = check_template(spec.template.as_ref())
            .err()
            .map(|e| e.to_string());
        let invalid = match (&plan.invalid, &template_problem) {
            (Some(a), Some(b)) => Some(format!("{a}; {b}")),
            (a, b) => a.clone().or_else(|| b.clone()),
        };
        let create: Vec<Pod> = if template_problem.is_none() {
            (0..plan.create)
                .filter_map(|_| pool_pod(&pool, &revision).ok())
                .collect()
        } else {
            Vec::new()
        };
        let uids: HashMap<&str, &str> = pods
            .iter()
            .map(|p| (p.name.as_str(), p.uid.as_str()))
            .collect();
        let delete = plan
            .delete
            .iter()
            .map(|d| {
                (
                    d.pod.clone(),
                    uids.get(d.pod.as_str()).unwrap_or(&"").to_string(),
                    d.reason,
                )
            })
            .collect();
        let alloc = allocation::plan(&sandbox_views, &pod_states, &plan.allocatable);
        let newly: u32 = alloc
            .writes
            .iter()
            .map(|w| w.newly_allocated.len() as u32)
            .sum();
        let ledgers: Vec<(LedgerWrite, String, Vec<String>)> = alloc
            .writes
            .into_iter()
            .filter_map(|w| {
                let (_, rv, fin) = sandboxes.iter().find(|(v, _, _)| v.name == w.sandbox)?;
                Some((w, rv.clone(), fin.clone()))
            })
            .collect();
        let recycle = alloc
            .released
            .iter()
            .map(|p| (p.clone(), uids.get(p.as_str()).unwrap_or(&"").to_string()))
            .collect();
        let released_by: HashMap<String, String> = alloc
            .released
            .iter()
            .filter_map(|p| {
                let s = sandbox_views.iter().find(|s| s.ledger.contains(p))?;
                Some((p.clone(), s.name.clone()))
            })
            .collect();
        let settings = RestartSettings::from_annotation(
            pool.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(keys::ANNOTATION_RESTART_CONFIG))
                .map(String::as_str),
        );
        let released = if restart {
            self.release_ids(&released_by)
        } else {
            Vec::new()
        };
        let restarts = recycle_restart::plan_turn(
            &recycle_pods,
            &released,
            &held,
            &self.execs,
            &settings,
            chrono::Utc::now(),
        )
        .into_iter()
        .map(|(pod, step)| {
            let uid = uids.get(pod.as_str()).unwrap_or(&"").to_string();
            (pod, uid, step)
        })
        .collect();
        let counts = plan.status.after_allocating(newly);
        let terminating = views.iter().filter(|v| v.terminating).count();
        metrics::pools::observe(&self.key, &counts, terminating, &spec.capacity_spec);
        let status = self.next_status(&pool, &revision, &counts, invalid.as_deref());
        let spare = reserve::spare_pods(&plan.allocatable, &sandbox_views, &alloc_taken(&ledgers));
        Some(TurnWork {
            recycle_type: pool.recycle_type(),
            reference: pool.object_ref(&()),
            pool,
            create,
            delete,
            ledgers,
            recycle,
            restarts,
            restart_command: settings.command,
            released_by,
            status,
            invalid,
            spare,
        })
    }

    /// Released pods with the id of their release: the releasing sandbox's uid.
    fn release_ids(&self, released_by: &HashMap<String, String>) -> Vec<(String, String)> {
        let uids: HashMap<String, String> = self
            .ctx
            .cache
            .sandboxes_of_pool(&self.key)
            .iter()
            .map(|bs| (bs.name_any(), bs.uid().unwrap_or_default()))
            .collect();
        released_by
            .iter()
            .map(|(pod, sandbox)| {
                let id = uids
                    .get(sandbox)
                    .filter(|u| !u.is_empty())
                    .unwrap_or(sandbox);
                (pod.clone(), id.clone())
            })
            .collect()
    }

    /// Each pod's `restart-record`, with this actor's own unobserved writes applied.
    fn effective_records(&mut self, pods: &[Arc<PodInfo>]) -> HashMap<String, Option<String>> {
        let timeout = self.ctx.config.expectation_timeout;
        let mut out = HashMap::new();
        for p in pods {
            let mut record = p.restart_record.clone();
            if let Some((written, at)) = self.written_records.get(&p.name) {
                if *written == record || at.elapsed() > timeout {
                    self.written_records.remove(&p.name);
                } else {
                    record = written.clone();
                }
            }
            out.insert(p.name.clone(), record);
        }
        self.written_records.retain(|n, _| out.contains_key(n));
        out
    }

    /// Runs the restart command in `pod` without holding up the actor's turns.
    fn start_exec(
        &mut self,
        ctx: &mut Context<Self>,
        pod: String,
        containers: Vec<String>,
        command: Vec<String>,
    ) {
        if !self.execs.insert(pod.clone()) {
            return;
        }
        let api: Api<Pod> = Api::namespaced(self.ctx.client.clone(), &self.key.0);
        let run = restart_exec::restart_containers(api, pod.clone(), containers, command);
        ctx.spawn(run.into_actor(self).map(move |_, act, ctx| {
            act.execs.remove(&pod);
            ctx.notify(Wake);
        }));
    }

    /// Wakes the actor at `at` (keeps an earlier pending wake-up).
    fn wake_at(&mut self, ctx: &mut Context<Self>, at: chrono::DateTime<chrono::Utc>) {
        if let Some((pending, _)) = &self.retry_timer
            && *pending <= at
        {
            return;
        }
        if let Some((_, handle)) = self.retry_timer.take() {
            ctx.cancel_future(handle);
        }
        let delay = (at - chrono::Utc::now())
            .to_std()
            .unwrap_or_default()
            .saturating_add(std::time::Duration::from_millis(10));
        let handle = ctx.run_later(delay, |act, ctx| {
            act.retry_timer = None;
            ctx.notify(Wake);
        });
        self.retry_timer = Some((at, handle));
    }

    /// The status to write, or None when it equals what is stored or was last written.
    fn next_status(
        &self,
        pool: &Pool,
        revision: &str,
        counts: &pool_policy::PoolStatusCounts,
        invalid: Option<&str>,
    ) -> Option<PoolStatus> {
        let current = pool.status.clone().unwrap_or_default();
        let mut conditions = current.conditions.clone();
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let ready = match invalid {
            Some(msg) => Condition::new("Ready", false, "InvalidSpec", msg, &now),
            None => Condition::new(
                "Ready",
                true,
                "PoolReconciled",
                "pool pods are managed",
                &now,
            ),
        };
        set_condition(&mut conditions, ready);
        let next = PoolStatus {
            observed_generation: pool.metadata.generation,
            revision: revision.to_string(),
            total: counts.total as i32,
            allocated: counts.allocated as i32,
            available: counts.available as i32,
            updated: Some(counts.updated as i32),
            conditions,
        };
        if pool.status.as_ref() == Some(&next) || self.last_status.as_ref() == Some(&next) {
            None
        } else {
            Some(next)
        }
    }

    fn start_turn(&mut self, ctx: &mut Context<Self>) {
        let planning = Instant::now();
        let Some(mut work) = self.prepare() else {
            return;
        };
        self.last_plan = planning.elapsed();
        work.invalid = if work.invalid != self.last_invalid {
            self.last_invalid = work.invalid.clone();
            work.invalid.clone()
        } else {
            None
        };
        // Count this turn's allocations and deletes as done from now on, so a reservation
        // served while the turn's writes are in flight can never pick the same pods.
        let now = Instant::now();
        for (w, _, _) in &work.ledgers {
            self.written_ledgers
                .insert(w.sandbox.clone(), (w.ledger.clone(), now));
        }
        let recycled_by_delete = work.recycle_type == RecycleType::Delete;
        let recycled = work
            .recycle
            .iter()
            .map(|(n, _)| n)
            .filter(|_| recycled_by_delete);
        for name in work.delete.iter().map(|(n, _, _)| n).chain(recycled) {
            self.deleted.insert(name.clone(), now);
        }
        self.spare = Some(std::mem::take(&mut work.spare));
        self.spare_recomputed = false;
        self.running = true;
        let actor_ctx = self.ctx.clone();
        let started = Instant::now();
        let fut = tracing::Instrument::instrument(
            execute(actor_ctx, work),
            super::spans::pool(&self.key),
        );
        ctx.spawn(fut.into_actor(self).map(move |outcome, act, ctx| {
            let now = Instant::now();
            for name in outcome.created {
                act.created.insert(name, now);
            }
            for name in outcome.deleted {
                act.deleted.insert(name, now);
            }
            for (sandbox, ledger) in outcome.written_ledgers {
                act.written_ledgers.insert(sandbox, (ledger, now));
            }
            for sandbox in &outcome.failed_ledgers {
                act.written_ledgers.remove(sandbox);
            }
            for pod in &outcome.failed_deletes {
                act.deleted.remove(pod);
            }
            if outcome.written_status.is_some() {
                act.last_status = outcome.written_status;
            }
            for (pod, record) in outcome.written_records {
                act.written_records.insert(pod, (record, now));
            }
            for (pod, containers) in outcome.execs {
                act.start_exec(ctx, pod, containers, outcome.restart_command.clone());
            }
            if let Some(at) = outcome.wake_at {
                act.wake_at(ctx, at);
            }
            if outcome.retry {
                act.again = true;
            }
            metrics::get()
                .actor_turn_seconds
                .with_label_values(&["pool"])
                .observe(started.elapsed().as_secs_f64());
            act.running = false;
            if std::mem::take(&mut act.again) {
                act.start_turn_after_gap(ctx);
            }
        }));
    }

    /// Runs the next turn after the configured gap, holding the actor "running" meanwhile
    /// so further wake-ups only mark it again.
    fn start_turn_after_gap(&mut self, ctx: &mut Context<Self>) {
        let gap = turn_gap(self.ctx.config.pool_turn_gap, self.last_plan);
        if gap.is_zero() {
            self.start_turn(ctx);
            return;
        }
        self.running = true;
        ctx.run_later(gap, |act, ctx| {
            // This turn reads the latest cache, so wake-ups during the gap are covered.
            act.running = false;
            act.again = false;
            act.start_turn(ctx);
        });
    }
}

/// The pause between two turns: the configured gap, or four times what planning the last
/// turn took when that is longer (a big pool under churn then plans in larger batches and
/// leaves the actor's thread free for reservations), at most 100 ms.
fn turn_gap(
    configured: std::time::Duration,
    last_plan: std::time::Duration,
) -> std::time::Duration {
    const MAX_ADAPTIVE: std::time::Duration = std::time::Duration::from_millis(100);
    if configured.is_zero() {
        return configured;
    }
    configured.max(last_plan.saturating_mul(4).min(MAX_ADAPTIVE))
}

async fn execute(ctx: Arc<Controller>, work: TurnWork) -> TurnOutcome {
    let mut out = TurnOutcome {
        created: Vec::new(),
        deleted: Vec::new(),
        written_ledgers: Vec::new(),
        failed_ledgers: Vec::new(),
        failed_deletes: Vec::new(),
        retry: false,
        written_status: None,
        written_records: Vec::new(),
        execs: Vec::new(),
        restart_command: work.restart_command.clone(),
        wake_at: None,
    };
    let ns = work.pool.namespace().unwrap_or_default();
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let concurrency = ctx.config.pod_write_concurrency.max(1);
    // Recycle released pods first so a pod is never idle and dirty at once.
    let mut blocked = HashSet::new();
    if !work.restarts.is_empty() && ctx.gate.is_leader() {
        blocked = execute_restarts(&ctx, &pods, &work, &mut out, concurrency).await;
    }
    if work.recycle_type != RecycleType::Restart
        && !work.recycle.is_empty()
        && ctx.gate.is_leader()
        && work.recycle_type != RecycleType::Noop
    {
        let deleted = delete_pods(
            &ctx,
            &pods,
            work.recycle
                .iter()
                .map(|(n, u)| (n.clone(), u.clone(), DeleteReason::ScaleIn))
                .collect(),
            concurrency,
        )
        .await;
        for (name, _, r) in deleted {
            match r {
                Ok(()) => out.deleted.push(name),
                Err(_) => out.failed_deletes.push(name),
            }
        }
    }
    super::events::released_event(&ctx, &work.reference, work.recycle.len());
    let (ledgers, held_back): (Vec<_>, Vec<_>) = work
        .ledgers
        .into_iter()
        .partition(|(w, _, _)| !blocked.contains(&w.sandbox));
    if !blocked.is_empty() {
        out.retry = true;
    }
    out.failed_ledgers
        .extend(held_back.into_iter().map(|(w, _, _)| w.sandbox));
    let fresh = metrics::pools::newly_served(&ledgers);
    if !ledgers.is_empty() && ctx.gate.is_leader() {
        let api: Api<BatchSandbox> = Api::namespaced(ctx.client.clone(), &ns);
        let results: Vec<(String, Vec<String>, Result<(), kube::Error>)> =
            futures::stream::iter(ledgers)
                .map(|(w, rv, finalizers)| {
                    let api = api.clone();
                    let gate = ctx.gate.clone();
                    let pp = ctx.patch_params();
                    async move {
                        if !gate.is_leader() {
                            return (
                                w.sandbox,
                                w.ledger,
                                Err(kube::Error::Service("not the leader".into())),
                            );
                        }
                        let patch = ledger_patch(&w, &rv, finalizers);
                        let r = api
                            .patch(&w.sandbox, &pp, &Patch::Merge(&patch))
                            .await
                            .map(|_| ());
                        (w.sandbox, w.ledger, r)
                    }
                })
                .buffer_unordered(concurrency)
                .collect()
                .await;
        for (sandbox, ledger, r) in results {
            metrics::pools::ledger_written(&ns, &work.pool.name_any(), &fresh, &sandbox, &r);
            super::events::allocation_event(&ctx, &ns, &fresh, &sandbox, &ledger, &r);
            match r {
                Ok(()) => out.written_ledgers.push((sandbox, ledger)),
                Err(kube::Error::Api(s)) if s.code == 409 || s.code == 404 => {
                    out.retry = true;
                    out.failed_ledgers.push(sandbox);
                }
                Err(e) => {
                    out.retry = true;
                    tracing::warn!(sandbox = %sandbox, error = %e, "writing an allocation failed");
                    out.failed_ledgers.push(sandbox);
                }
            }
        }
    }
    if !work.create.is_empty() && ctx.gate.is_leader() {
        let results: Vec<Result<Pod, kube::Error>> = futures::stream::iter(work.create)
            .map(|pod| {
                let pods = pods.clone();
                let gate = ctx.gate.clone();
                let pp = ctx.post_params();
                async move {
                    if !gate.is_leader() {
                        return Err(kube::Error::Service("not the leader".into()));
                    }
                    pods.create(&pp, &pod).await
                }
            })
            .buffer_unordered(concurrency)
            .collect()
            .await;
        let mut failed = None;
        for r in results {
            match r {
                Ok(p) => out.created.push(p.name_any()),
                Err(e) => failed = Some(e.to_string()),
            }
        }
        metrics::pools::scaled(&ns, &work.pool.name_any(), out.created.len(), 0);
        if !out.created.is_empty() {
            ctx.event(
                &work.reference,
                false,
                "ScaledUp",
                "Scale",
                format!("Created {} pool pods", out.created.len()),
            )
            .await;
        }
        if let Some(e) = failed {
            ctx.event(
                &work.reference,
                true,
                "FailedCreate",
                "Scale",
                format!("Failed to create pool pod: {e}"),
            )
            .await;
        }
    }
    if !work.delete.is_empty() && ctx.gate.is_leader() {
        let results = delete_pods(&ctx, &pods, work.delete, concurrency).await;
        let mut scaled_in = 0;
        for (name, reason, r) in results {
            match r {
                Ok(()) => {
                    if reason == DeleteReason::Failed {
                        ctx.emit(
                            &work.reference,
                            false,
                            "ReplacedDeadPod",
                            "Replace",
                            format!("Deleted failed idle pod {name}; a new one replaces it"),
                        );
                    }
                    if reason == DeleteReason::Evicted {
                        ctx.event(
                            &work.reference,
                            false,
                            "PodEvicted",
                            "Evict",
                            format!("Evicted idle pod: {name}"),
                        )
                        .await;
                    } else {
                        scaled_in += 1;
                    }
                    out.deleted.push(name);
                }
                Err(e) => {
                    tracing::warn!(pod = %name, error = %e, "deleting a pool pod failed");
                    out.failed_deletes.push(name);
                }
            }
        }
        metrics::pools::scaled(&ns, &work.pool.name_any(), 0, scaled_in);
        if scaled_in > 0 {
            ctx.event(
                &work.reference,
                false,
                "ScaledDown",
                "Scale",
                format!("Deleted {scaled_in} pool pods"),
            )
            .await;
        }
    }
    if let Some(msg) = &work.invalid {
        ctx.event(
            &work.reference,
            true,
            "InvalidSpec",
            "Validate",
            msg.clone(),
        )
        .await;
    }
    if let Some(status) = work.status
        && ctx.gate.is_leader()
    {
        let pools: Api<Pool> = Api::namespaced(ctx.client.clone(), &ns);
        let patch = json!({ "status": status });
        match pools
            .patch_status(
                &work.pool.name_any(),
                &ctx.patch_params(),
                &Patch::Merge(&patch),
            )
            .await
        {
            Ok(_) => out.written_status = Some(status),
            Err(e) => {
                tracing::warn!(pool = %work.pool.name_any(), error = %e, "writing pool status failed")
            }
        }
    }
    let result = if out.created.is_empty() && out.deleted.is_empty() {
        "steady"
    } else {
        "changed"
    };
    metrics::get()
        .actor_turns
        .with_label_values(&["pool", result])
        .inc();
    out
}

/// Pods the turn's ledger writes newly hand out.
fn alloc_taken(ledgers: &[(LedgerWrite, String, Vec<String>)]) -> HashSet<String> {
    ledgers
        .iter()
        .flat_map(|(w, _, _)| w.ledger.iter().filter(|p| !p.is_empty()).cloned())
        .collect()
}

/// Executes the Restart recycling steps. Returns the sandboxes whose ledger write must wait
/// because a pod they release could not be marked as recycling.
async fn execute_restarts(
    ctx: &Controller,
    pods: &Api<Pod>,
    work: &TurnWork,
    out: &mut TurnOutcome,
    concurrency: usize,
) -> HashSet<String> {
    let pp = ctx.patch_params();
    let results: Vec<(String, Step, Result<(), kube::Error>)> =
        futures::stream::iter(work.restarts.iter().cloned())
            .map(|(name, uid, step)| {
                let pods = pods.clone();
                let pp = pp.clone();
                let gate = ctx.gate.clone();
                async move {
                    if !gate.is_leader() {
                        let e = kube::Error::Service("not the leader".into());
                        return (name, step, Err(e));
                    }
                    let r = match &step {
                        Step::Attempt { record, .. } => {
                            let value = recycle_restart::record_annotation(record);
                            patch_record(&pods, &name, Some(&value), &pp).await
                        }
                        Step::Restarted => patch_record(&pods, &name, None, &pp).await,
                        Step::Failed { .. } => {
                            let dp = DeleteParams {
                                preconditions: (!uid.is_empty()).then(|| Preconditions {
                                    uid: Some(uid.clone()),
                                    resource_version: None,
                                }),
                                ..DeleteParams::background()
                            };
                            match pods.delete(&name, &dp).await {
                                Ok(_) => Ok(()),
                                Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
                                Err(e) => Err(e),
                            }
                        }
                        Step::Wait { .. } => Ok(()),
                    };
                    (name, step, r)
                }
            })
            .buffer_unordered(concurrency)
            .collect()
            .await;
    let mut blocked = HashSet::new();
    for (name, step, r) in results {
        if let Err(e) = r {
            tracing::warn!(pod = %name, error = %e, "restart recycling write failed");
            out.retry = true;
            if let Some(sandbox) = work.released_by.get(&name) {
                blocked.insert(sandbox.clone());
            }
            continue;
        }
        match step {
            Step::Attempt { record, exec } => {
                out.written_records.push((
                    name.clone(),
                    Some(recycle_restart::record_annotation(&record)),
                ));
                if !exec.is_empty() {
                    out.execs.push((name, exec));
                }
            }
            Step::Restarted => {
                out.written_records.push((name.clone(), None));
                ctx.event(
                    &work.reference,
                    false,
                    "PodRestarted",
                    "Recycle",
                    format!(
                        "Restarted the containers of pod {name} in place; it returns to the pool"
                    ),
                )
                .await;
            }
            Step::Failed { reason } => {
                ctx.event(
                    &work.reference,
                    true,
                    "RestartFailed",
                    "Recycle",
                    format!("Restart recycling of pod {name} failed: {reason}; deleting the pod"),
                )
                .await;
                out.deleted.push(name);
            }
            Step::Wait { until, .. } => {
                out.wake_at = Some(out.wake_at.map_or(until, |w| w.min(until)));
            }
        }
    }
    blocked
}

/// Sets (or with None removes) a pod's `restart-record`.
async fn patch_record(
    pods: &Api<Pod>,
    name: &str,
    value: Option<&str>,
    pp: &kube::api::PatchParams,
) -> Result<(), kube::Error> {
    let patch = json!({"metadata": {"annotations": {keys::ANNOTATION_RESTART_RECORD: value}}});
    pods.patch(name, pp, &Patch::Merge(&patch))
        .await
        .map(|_| ())
}

/// The merge patch of one allocation: ledger, endpoints, finalizer, with the sandbox's
/// resourceVersion as a precondition (a concurrent change is a 409, never a lost update).
fn ledger_patch(w: &LedgerWrite, rv: &str, mut finalizers: Vec<String>) -> serde_json::Value {
    if w.add_finalizer
        && !finalizers
            .iter()
            .any(|f| f == keys::FINALIZER_POOL_ALLOCATION)
    {
        finalizers.push(keys::FINALIZER_POOL_ALLOCATION.to_string());
    }
    if w.remove_finalizer {
        finalizers.retain(|f| f != keys::FINALIZER_POOL_ALLOCATION);
    }
    let mut annotations = json!({
        keys::ANNOTATION_ALLOC_STATUS: PodList::new(w.ledger.clone()).to_annotation(),
        keys::ANNOTATION_ENDPOINTS: crate::crd::ledger::endpoints_annotation(&w.endpoints),
    });
    if w.clear_release {
        annotations[keys::ANNOTATION_ALLOC_RELEASE] = serde_json::Value::Null;
    }
    json!({"metadata": {"resourceVersion": rv, "annotations": annotations, "finalizers": finalizers}})
}

/// Deletes pods with uid preconditions (a replaced pod of the same name stays safe).
async fn delete_pods(
    ctx: &Controller,
    pods: &Api<Pod>,
    list: Vec<(String, String, DeleteReason)>,
    concurrency: usize,
) -> Vec<(String, DeleteReason, Result<(), kube::Error>)> {
    futures::stream::iter(list)
        .map(|(name, uid, reason)| {
            let pods = pods.clone();
            let gate = ctx.gate.clone();
            async move {
                if !gate.is_leader() {
                    return (
                        name,
                        reason,
                        Err(kube::Error::Service("not the leader".into())),
                    );
                }
                let dp = DeleteParams {
                    preconditions: (!uid.is_empty()).then_some(Preconditions {
                        uid: Some(uid),
                        resource_version: None,
                    }),
                    ..DeleteParams::background()
                };
                let r = match pods.delete(&name, &dp).await {
                    Ok(_) => Ok(()),
                    Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
                    Err(e) => Err(e),
                };
                (name, reason, r)
            }
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await
}

impl Handler<Wake> for PoolActor {
    type Result = ();

    fn handle(&mut self, _: Wake, ctx: &mut Context<Self>) {
        if self.running {
            self.again = true;
        } else {
            self.start_turn(ctx);
        }
    }
}

impl Handler<Stop> for PoolActor {
    type Result = ();

    fn handle(&mut self, _: Stop, ctx: &mut Context<Self>) {
        metrics::pools::forget(&self.key);
        ctx.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_turn_gap_grows_with_planning_time_within_bounds() {
        let ms = std::time::Duration::from_millis;
        assert_eq!(turn_gap(ms(5), ms(0)), ms(5));
        assert_eq!(turn_gap(ms(5), ms(1)), ms(5));
        assert_eq!(turn_gap(ms(5), ms(3)), ms(12));
        assert_eq!(turn_gap(ms(5), ms(500)), ms(100));
        // No gap configured (tests that want every wake-up to run a turn): none at all.
        assert_eq!(turn_gap(ms(0), ms(50)), ms(0));
    }

    #[test]
    fn a_frozen_pod_is_drained_like_an_evicted_one() {
        let base = PodInfo {
            name: "p".into(),
            ready: true,
            phase: "Running".into(),
            ..Default::default()
        };
        assert!(!pod_view(&base).evict_label);
        for frozen in [
            PodInfo {
                frozen: true,
                ..base.clone()
            },
            PodInfo {
                freeze_requested: true,
                ..base.clone()
            },
            PodInfo {
                evict: true,
                ..base.clone()
            },
        ] {
            assert!(pod_view(&frozen).evict_label, "{frozen:?}");
        }
    }
}
