//! The BatchSandboxActor's task mode: drives its [`TaskTracker`] from the actor's turns,
//! runs executor calls off the turn and feeds the results back, owns the `task-cleanup`
//! finalizer. Policy lives in `task_policy` and `task_tracker`.

use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;
use chrono::{DateTime, Utc};
use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde_json::json;

use super::{SandboxActor, TurnOutcome, TurnWork};
use crate::actors::task_client::{Probe, run_round};
use crate::actors::task_policy::{apply_task_status, task_specs};
use crate::actors::task_tracker::{CLEANUP_TIMEOUT, PodSlot, ReplicaOrder, replica_pods};
use crate::cache::PodInfo;
use crate::crd::ledger::Ledger;
use crate::crd::{BatchSandbox, BatchSandboxStatus, keys};

/// A write of the `task-cleanup` finalizer list, guarded by the resourceVersion it was
/// computed from.
#[derive(Debug)]
pub(super) enum FinalizerEdit {
    Add { rv: String, finalizers: Vec<String> },
    Remove { rv: String, finalizers: Vec<String> },
}

fn has_task_finalizer(bs: &BatchSandbox) -> bool {
    bs.finalizers()
        .iter()
        .any(|f| f == keys::FINALIZER_TASK_CLEANUP)
}

/// Task mode: the sandbox has a task template.
pub(super) fn task_mode(bs: &BatchSandbox) -> bool {
    bs.spec.task_template.is_some()
}

/// Deleting with the `task-cleanup` finalizer: the tasks must be stopped first.
pub(super) fn needs_cleanup(bs: &BatchSandbox) -> bool {
    bs.metadata.deletion_timestamp.is_some() && has_task_finalizer(bs)
}

/// The pod of every replica: by index label (template mode) or ledger position (pooled).
fn replica_slots(
    bs: &BatchSandbox,
    replicas: usize,
    pods: &[Arc<PodInfo>],
) -> Vec<Option<PodSlot>> {
    if bs.pool_ref().is_some() {
        let ledger = Ledger::from_annotations(bs.metadata.annotations.as_ref())
            .map(|l| l.by_index())
            .unwrap_or_default();
        replica_pods(ReplicaOrder::Ledger(&ledger), replicas, pods)
    } else {
        replica_pods(ReplicaOrder::IndexLabel, replicas, pods)
    }
}

/// The `released-tasks` annotation with `retired` added, when that changes it.
fn released_tasks_update(bs: &BatchSandbox, retired: &[(u32, &'static str)]) -> Option<String> {
    let mut all = bs.released_tasks();
    let before = all.len();
    for (index, state) in retired {
        all.0.entry(*index).or_insert_with(|| state.to_string());
    }
    (all.len() != before).then(|| all.to_annotation())
}

fn deletion_deadline(bs: &BatchSandbox) -> Option<DateTime<Utc>> {
    let ts = bs.metadata.deletion_timestamp.as_ref()?;
    let since = DateTime::from_timestamp(ts.0.as_second(), 0)?;
    Some(since + chrono::Duration::from_std(CLEANUP_TIMEOUT).ok()?)
}

impl SandboxActor {
    /// One turn of a running task-mode sandbox: ensures the finalizer, starts a round when
    /// one is due, and puts the task counters, phase and conditions into `status`. Returns a
    /// spec problem (reason, message) when some replica has no runnable task.
    pub(super) fn task_turn(
        &mut self,
        ctx: &mut Context<Self>,
        bs: &BatchSandbox,
        pods: &[Arc<PodInfo>],
        status: &mut BatchSandboxStatus,
        work: &mut TurnWork,
        now: DateTime<Utc>,
    ) -> Option<(String, String)> {
        if !has_task_finalizer(bs) {
            let mut finalizers = bs.finalizers().to_vec();
            finalizers.push(keys::FINALIZER_TASK_CLEANUP.to_string());
            work.task_finalizer = Some(FinalizerEdit::Add {
                rv: bs.resource_version().unwrap_or_default(),
                finalizers,
            });
        }
        let specs = task_specs(bs);
        let slots = replica_slots(bs, specs.len(), pods);
        self.tasks
            .set_release_finished(bs.releases_finished_tasks());
        self.tasks
            .observe(&bs.name_any(), &specs, &slots, &bs.released_tasks());
        if let Some(probes) = self.tasks.next_round(&specs, Instant::now()) {
            self.run_task_round(ctx, probes);
        }
        if let Some(update) = released_tasks_update(bs, &self.tasks.newly_retired())
            && self.released_tasks_written.as_ref() != Some(&update)
        {
            work.released_tasks = Some(update);
        }
        apply_task_status(status, &self.tasks.summary(), now);
        specs.iter().find_map(|s| s.as_ref().err()).map(|e| {
            (
                "InvalidTaskTemplate".to_string(),
                format!("{e} (every replica it concerns counts as a failed task)"),
            )
        })
    }

    /// One turn of a deleted task-mode sandbox: stop every task (`setTasks []`) and wait for
    /// the executors to drop them, at most [`CLEANUP_TIMEOUT`] after the deletion; then write
    /// the tasks' final state and remove the finalizer, which lets the pods go.
    pub(super) fn task_cleanup_turn(
        &mut self,
        ctx: &mut Context<Self>,
        bs: &BatchSandbox,
        pods: &[Arc<PodInfo>],
        mut work: TurnWork,
    ) -> Option<TurnWork> {
        let now = Utc::now();
        self.tasks.start_stopping();
        let specs = task_specs(bs);
        let slots = replica_slots(bs, specs.len(), pods);
        self.tasks
            .observe(&bs.name_any(), &specs, &slots, &bs.released_tasks());
        let timed_out = deletion_deadline(bs).is_some_and(|d| now >= d);
        if !self.tasks.cleanup_done() && !timed_out {
            if let Some(probes) = self.tasks.next_round(&specs, Instant::now()) {
                self.run_task_round(ctx, probes);
            }
            return None;
        }
        let summary = self.tasks.summary();
        if timed_out && !self.tasks.cleanup_done() {
            tracing::warn!(sandbox = %work.name, unknown = ?summary.unknown,
                "task cleanup timed out; releasing the pods anyway");
        }
        let mut status = bs.status.clone().unwrap_or_default();
        apply_task_status(&mut status, &summary, now);
        if bs.status.as_ref() != Some(&status) && self.last_status.as_ref() != Some(&status) {
            work.status = Some(status);
        }
        let mut finalizers = bs.finalizers().to_vec();
        finalizers.retain(|f| f != keys::FINALIZER_TASK_CLEANUP);
        work.task_finalizer = Some(FinalizerEdit::Remove {
            rv: bs.resource_version().unwrap_or_default(),
            finalizers,
        });
        Some(work)
    }

    /// Runs a round of executor calls off the turn; its results update the tracker, wake the
    /// actor when anything changed, and arm the next poll.
    fn run_task_round(&mut self, ctx: &mut Context<Self>, probes: Vec<Probe>) {
        // Telling executors what to run is a write: only the leader does it.
        if !self.ctx.gate.is_leader() {
            self.tasks.absorb(Vec::new(), Instant::now());
            return;
        }
        ctx.spawn(run_round(probes).into_actor(self).map(|results, act, ctx| {
            let changed = act.tasks.absorb(results, Instant::now());
            act.report_task_failures(ctx);
            if let Some(h) = act.task_timer.take() {
                ctx.cancel_future(h);
            }
            act.task_timer = Some(ctx.run_later(act.tasks.poll_interval(), |act, ctx| {
                act.task_timer = None;
                act.wake(ctx);
            }));
            if changed || act.tasks.round_due_now() {
                act.wake(ctx);
            }
        }));
    }
}

impl SandboxActor {
    /// One Warning event `TaskFailed` per task that failed, on the BatchSandbox.
    fn report_task_failures(&mut self, ctx: &mut Context<Self>) {
        let failures = self.tasks.take_new_failures();
        if failures.is_empty() {
            return;
        }
        let Some(bs) = self.ctx.cache.sandbox(&self.key) else {
            return;
        };
        let reference = bs.object_ref(&());
        let controller = self.ctx.clone();
        ctx.spawn(
            async move {
                for f in failures {
                    controller
                        .event(&reference, true, "TaskFailed", "RunTask", f.describe())
                        .await;
                }
            }
            .into_actor(self),
        );
    }
}

/// The task writes of a turn, before any other: add the finalizer (and go on with the
/// turn), or write the final status and remove it (and end the turn). Returns true when the
/// turn is over.
pub(super) async fn write_task_finalizer(
    api: &Api<BatchSandbox>,
    pp: &PatchParams,
    work: &mut TurnWork,
    out: &mut TurnOutcome,
) -> bool {
    let Some(edit) = work.task_finalizer.take() else {
        return false;
    };
    let (rv, finalizers, removing) = match edit {
        FinalizerEdit::Add { rv, finalizers } => (rv, finalizers, false),
        FinalizerEdit::Remove { rv, finalizers } => (rv, finalizers, true),
    };
    if removing && let Some(status) = work.status.take() {
        let patch = json!({ "status": status });
        match api
            .patch_status(&work.name, pp, &Patch::Merge(&patch))
            .await
        {
            Ok(_) => out.status = Some(status),
            Err(e) => {
                tracing::warn!(sandbox = %work.name, error = %e, "writing the final task status failed")
            }
        }
    }
    let patch = json!({"metadata": {"resourceVersion": rv, "finalizers": finalizers}});
    if let Err(e) = api.patch(&work.name, pp, &Patch::Merge(&patch)).await {
        let gone = matches!(&e, kube::Error::Api(s) if s.code == 404);
        if !gone {
            tracing::debug!(sandbox = %work.name, error = %e, "task-cleanup finalizer write failed");
            out.retry = true;
        }
        return true;
    }
    removing
}

/// Records replicas retired after their task finished; the pool (pooled) or the template
/// plan then lets their pods go and never refills them.
pub(super) async fn write_released_tasks(
    api: &Api<BatchSandbox>,
    pp: &PatchParams,
    work: &mut TurnWork,
    out: &mut TurnOutcome,
) {
    let Some(value) = work.released_tasks.take() else {
        return;
    };
    let patch = json!({"metadata": {"annotations": {keys::ANNOTATION_RELEASED_TASKS: value}}});
    match api.patch(&work.name, pp, &Patch::Merge(&patch)).await {
        Ok(_) => out.released_tasks = Some(value),
        Err(e) => {
            tracing::warn!(sandbox = %work.name, error = %e, "recording released tasks failed");
            out.retry = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn released_tasks_update_adds_only_new_replicas() {
        let mut bs: BatchSandbox = serde_json::from_value(json!({
            "apiVersion": "sandbox.opensandbox.io/v1alpha1", "kind": "BatchSandbox",
            "metadata": {"name": "bs"}, "spec": {"replicas": 3}
        }))
        .unwrap();
        assert_eq!(
            released_tasks_update(&bs, &[(2, "SUCCEED")]).as_deref(),
            Some(r#"{"2":"SUCCEED"}"#)
        );
        bs.metadata.annotations = Some(
            [(
                keys::ANNOTATION_RELEASED_TASKS.to_string(),
                r#"{"2":"SUCCEED"}"#.to_string(),
            )]
            .into(),
        );
        assert_eq!(released_tasks_update(&bs, &[(2, "FAILED")]), None);
        assert_eq!(released_tasks_update(&bs, &[]), None);
        assert_eq!(
            released_tasks_update(&bs, &[(0, "FAILED")]).as_deref(),
            Some(r#"{"0":"FAILED","2":"SUCCEED"}"#)
        );
    }
}
