//! The pure pause/resume policy of a BatchSandbox (reference/upstream-controller.md §7.11),
//! with upstream's quirks fixed:
//!
//! * A resume that succeeded ACKs the generation its own image patch produced, so the phase
//!   does not flap `Succeed -> Resuming -> Succeed`.
//! * `pause: false` on a sandbox that is not Paused (e.g. created with `pause: false`) is a
//!   plain ACK: it never moves the sandbox to Resuming or Paused.
//! * A second pause request on a Paused sandbox is ACKed and changes nothing: the Succeeded
//!   snapshot (the saved state) is kept.
//! * Only the sandbox's own internal snapshot (`<bs>-pause`, controlled by the sandbox) is
//!   deleted after a resume.
//! * `PauseFailed` / `ResumeFailed` set to False stay on the object with a reason.
//!
//! Expiry: pausing does **not** stop the expiry clock. `spec.expireTime` is an absolute time
//! the SDK sets and renews (`renew-expiration`); a paused sandbox still holds a snapshot or a
//! frozen process tree, and an expiry that silently stopped while paused would leak them.
//! This matches upstream, where the server's expiry is independent of pause.
//!
//! The snapshot strategy decides what "paused" holds: [`SnapshotStrategy::Commit`] deletes the
//! pods (template mode) or hands the pod back to its pool, and resume recreates the pod from
//! the snapshot's images; [`SnapshotStrategy::Freeze`] keeps the pods frozen in place and
//! resume thaws them.

#[cfg(test)]
mod tests;

use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use kube::ResourceExt;
use serde_json::{Value, json};

use super::snapshot_policy::{self, SnapshotStrategy};
use crate::cache::PodInfo;
use crate::crd::conditions::{Condition, set_condition};
use crate::crd::{
    BatchSandbox, BatchSandboxStatus, SandboxPhase, SandboxSnapshot, SnapshotPhase, keys,
};

pub const COND_PAUSED: &str = "Paused";
pub const COND_PAUSE_FAILED: &str = "PauseFailed";
pub const COND_RESUME_FAILED: &str = "ResumeFailed";
const COND_READY: &str = "Ready";
const COND_PROGRESSING: &str = "Progressing";

/// The internal snapshot a pause of `bs` creates.
pub fn pause_snapshot_name(bs: &str) -> String {
    format!("{bs}{}", keys::PAUSE_SNAPSHOT_SUFFIX)
}

/// Everything the pause policy looks at.
pub struct PauseInput<'a> {
    pub bs: &'a BatchSandbox,
    /// `<bs>-pause`, if it exists.
    pub snapshot: Option<&'a SandboxSnapshot>,
    /// Listed pods in index order.
    pub pods: &'a [Arc<PodInfo>],
    pub strategy: SnapshotStrategy,
    pub resume_pull_secret: Option<&'a str>,
    /// The pool's pod template (pooled sandboxes), used as the sandbox's own template once the
    /// pool pod is given back.
    pub pool_template: Option<&'a Value>,
    pub now: DateTime<Utc>,
}

/// The pause flow's part of one sandbox turn.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PauseTurn {
    /// The status the rest of the turn starts from (phase, pause conditions, ACK), when the
    /// pause flow changed it.
    pub status: Option<BatchSandboxStatus>,
    /// Template-mode pods must not be created this turn (Pausing, Paused, or a resume whose
    /// image patch is not in the cache yet).
    pub hold_pods: bool,
    pub create_snapshot: bool,
    /// Delete `<bs>-pause` (a leftover before a new pause, or ours after a resume).
    pub delete_snapshot: bool,
    /// Merge patch on the sandbox (template images, poolRef, ledger, finalizers).
    pub sandbox_patch: Option<Value>,
    /// Pods to delete (template mode, commit strategy).
    pub delete_pods: Vec<String>,
    /// Pool pods to label for eviction before the sandbox lets go of them.
    pub evict_pods: Vec<String>,
    /// Freeze strategy: `(pod, freeze)` annotation changes.
    pub freeze: Vec<(String, bool)>,
}

fn now_str(now: DateTime<Utc>) -> String {
    now.to_rfc3339_opts(SecondsFormat::Secs, true)
}

struct Ctx<'a, 'b> {
    input: &'a PauseInput<'b>,
    status: BatchSandboxStatus,
    turn: PauseTurn,
    now: String,
    generation: i64,
}

impl Ctx<'_, '_> {
    fn ack(&mut self) {
        self.status.pause_observed_generation = Some(self.generation);
    }

    fn cond(&mut self, ty: &str, on: bool, reason: &str, msg: &str) {
        let c = Condition::new(ty, on, reason, msg, &self.now);
        set_condition(&mut self.status.conditions, c);
    }

    /// Sets a pause-flow phase and its Ready/Progressing/Paused conditions.
    fn phase(&mut self, phase: SandboxPhase) {
        self.status.phase = Some(phase);
        let (reason, msg) = match phase {
            SandboxPhase::Pausing => ("PauseInProgress", "Pausing sandbox"),
            SandboxPhase::Paused => ("Paused", "Sandbox is paused"),
            SandboxPhase::Resuming => ("ResumeInProgress", "Resuming sandbox"),
            _ => return,
        };
        let progressing = phase != SandboxPhase::Paused;
        self.cond(COND_READY, false, reason, msg);
        self.cond(COND_PROGRESSING, progressing, reason, msg);
        self.cond(COND_PAUSED, phase == SandboxPhase::Paused, reason, msg);
    }

    /// Leaves the pause flow: the normal status computation takes the phase from the pods.
    fn running(&mut self, phase: SandboxPhase) {
        self.status.phase = Some(phase);
        if self
            .status
            .conditions
            .iter()
            .any(|c| c.type_ == COND_PAUSED)
        {
            self.cond(COND_PAUSED, false, "Running", "Sandbox is not paused");
        }
    }

    fn own_snapshot(&self) -> Option<&SandboxSnapshot> {
        let uid = self.input.bs.uid();
        self.input.snapshot.filter(|s| {
            s.owner_references()
                .iter()
                .any(|o| o.controller == Some(true) && Some(&o.uid) == uid.as_ref())
        })
    }
}

fn snapshot_phase(s: &SandboxSnapshot) -> Option<SnapshotPhase> {
    s.status.as_ref().and_then(|st| st.phase)
}

fn has_ready_pod(pods: &[Arc<PodInfo>]) -> bool {
    pods.iter()
        .any(|p| p.ready && !p.deleting && !p.frozen && !p.freeze_requested)
}

/// Decides the pause flow's part of one turn.
pub fn pause_turn(input: &PauseInput<'_>) -> PauseTurn {
    let bs = input.bs;
    let current = bs.status.clone().unwrap_or_default();
    let mut c = Ctx {
        input,
        status: current.clone(),
        turn: PauseTurn::default(),
        now: now_str(input.now),
        generation: bs.metadata.generation.unwrap_or(0),
    };
    let observed = current.pause_observed_generation.unwrap_or(0);
    let new_generation = c.generation > observed;
    match (current.phase, bs.spec.pause) {
        (Some(SandboxPhase::Resuming), _) => continue_resume(&mut c),
        (Some(SandboxPhase::Pausing), _) => sync_pause(&mut c),
        (_, Some(true)) if new_generation => handle_pause(&mut c),
        (_, Some(false)) if new_generation => handle_resume(&mut c),
        (phase, _) => {
            c.ack();
            c.turn.hold_pods = phase == Some(SandboxPhase::Paused);
        }
    }
    if c.status != current {
        c.turn.status = Some(c.status);
    }
    c.turn
}

fn handle_pause(c: &mut Ctx<'_, '_>) {
    let bs = c.input.bs;
    if bs.spec.replicas != 1 {
        c.ack();
        let msg = format!(
            "pause/resume currently supports only BatchSandbox spec.replicas=1; got spec.replicas={}",
            bs.spec.replicas
        );
        c.cond(COND_PAUSE_FAILED, true, "UnsupportedReplicas", &msg);
        return;
    }
    if c.status.phase == Some(SandboxPhase::Paused) {
        // Already paused: the saved state stays as it is.
        c.ack();
        c.turn.hold_pods = true;
        return;
    }
    if let Some(snap) = c.input.snapshot {
        if snap.metadata.deletion_timestamp.is_some() {
            return; // a leftover is going away; ACK once it is gone
        }
        if matches!(
            snapshot_phase(snap),
            Some(SnapshotPhase::Succeed | SnapshotPhase::Failed)
        ) {
            c.turn.delete_snapshot = true;
            return;
        }
    }
    c.ack();
    c.cond(
        COND_PAUSE_FAILED,
        false,
        "PauseRequested",
        "a pause is in progress",
    );
    c.phase(SandboxPhase::Pausing);
    c.turn.hold_pods = true;
    c.turn.create_snapshot = c.input.snapshot.is_none();
}

fn sync_pause(c: &mut Ctx<'_, '_>) {
    c.turn.hold_pods = true;
    let Some(snap) = c.input.snapshot else {
        c.turn.create_snapshot = true;
        return;
    };
    if snap.metadata.deletion_timestamp.is_some() {
        return;
    }
    match snapshot_phase(snap) {
        Some(SnapshotPhase::Succeed) => complete_pause(c),
        Some(SnapshotPhase::Failed) => {
            let msg = snapshot_policy::failure_message(snap);
            c.turn.hold_pods = false;
            if c.input.bs.spec.pause == Some(true) {
                c.ack(); // a retry needs a new request (a new generation)
            }
            // A freeze that failed half-way must not leave the pod frozen.
            c.turn.freeze = c
                .input
                .pods
                .iter()
                .filter(|p| p.freeze_requested)
                .map(|p| (p.name.clone(), false))
                .collect();
            if c.input.pods.is_empty() {
                c.cond(COND_PAUSE_FAILED, true, "PodNotFound", &msg);
                c.running(SandboxPhase::Failed);
            } else {
                c.cond(COND_PAUSE_FAILED, true, "SnapshotFailed", &msg);
                c.running(SandboxPhase::Succeed);
            }
            c.cond(COND_PROGRESSING, false, "PauseFailed", &msg);
        }
        _ => {}
    }
}

fn complete_pause(c: &mut Ctx<'_, '_>) {
    let bs = c.input.bs;
    if c.input.strategy == SnapshotStrategy::Commit {
        let pods: Vec<String> = c
            .input
            .pods
            .iter()
            .filter(|p| !p.deleting)
            .map(|p| p.name.clone())
            .collect();
        if bs.pool_ref().is_some() {
            // The pool gets its pod back (evicted, so nobody else inherits its state) and the
            // sandbox becomes a template-mode sandbox that resume re-creates.
            let Some(template) = c.input.pool_template else {
                return; // the pool is gone from the cache: wait for it
            };
            let finalizers: Vec<String> = bs
                .finalizers()
                .iter()
                .filter(|f| *f != keys::FINALIZER_POOL_ALLOCATION)
                .cloned()
                .collect();
            c.turn.sandbox_patch = Some(json!({
                "metadata": {
                    "resourceVersion": bs.resource_version(),
                    "finalizers": finalizers,
                    "annotations": {
                        keys::ANNOTATION_ALLOC_STATUS: null,
                        keys::ANNOTATION_ALLOC_RELEASE: null,
                    },
                },
                "spec": {"poolRef": "", "template": template},
            }));
            c.turn.evict_pods = pods;
        } else {
            c.turn.delete_pods = pods;
        }
    }
    c.phase(SandboxPhase::Paused);
    if bs.spec.pause == Some(true) {
        c.ack();
    }
}

fn handle_resume(c: &mut Ctx<'_, '_>) {
    let resumable = c.status.phase == Some(SandboxPhase::Paused)
        || (c.status.phase == Some(SandboxPhase::Failed)
            && c.own_snapshot()
                .is_some_and(|s| snapshot_phase(s) == Some(SnapshotPhase::Succeed)));
    c.ack();
    if !resumable {
        // Nothing is paused: `pause: false` is only an intent, already satisfied.
        return;
    }
    c.cond(
        COND_RESUME_FAILED,
        false,
        "ResumeRequested",
        "a resume is in progress",
    );
    c.phase(SandboxPhase::Resuming);
    c.turn.hold_pods = true;
}

fn continue_resume(c: &mut Ctx<'_, '_>) {
    match c.input.strategy {
        SnapshotStrategy::Commit => resume_from_images(c),
        SnapshotStrategy::Freeze => resume_by_thaw(c),
    }
}

/// Back to Paused with a ResumeFailed reason.
fn resume_failed(c: &mut Ctx<'_, '_>, reason: &str, msg: &str) {
    c.ack();
    c.cond(COND_RESUME_FAILED, true, reason, msg);
    c.phase(SandboxPhase::Paused);
    c.turn.hold_pods = true;
}

/// The resume is done: Running again, the generation of the resume's own patch ACKed (no
/// flap), the internal snapshot deleted.
fn resumed(c: &mut Ctx<'_, '_>) {
    if c.input.bs.spec.pause != Some(true) {
        c.ack();
    }
    c.cond(
        COND_RESUME_FAILED,
        false,
        "Resumed",
        "the sandbox was resumed",
    );
    c.running(SandboxPhase::Succeed);
    c.turn.delete_snapshot = c.own_snapshot().is_some();
}

fn resume_from_images(c: &mut Ctx<'_, '_>) {
    let failing = c.input.pods.iter().find_map(|p| {
        (!p.deleting)
            .then(|| p.failure_reason().map(|r| (p.name.clone(), r.to_string())))
            .flatten()
    });
    let Some(snap) = c.input.snapshot else {
        if has_ready_pod(c.input.pods) {
            return resumed(c);
        }
        return resume_failed(c, "SnapshotNotFound", "SandboxSnapshot not found");
    };
    if snapshot_phase(snap) != Some(SnapshotPhase::Succeed) {
        let msg = format!(
            "snapshot not ready: phase={}",
            snapshot_phase(snap)
                .map(|p| format!("{p:?}"))
                .unwrap_or_default()
        );
        return resume_failed(c, "SnapshotNotReady", &msg);
    }
    let bs = c.input.bs;
    let template = bs.spec.template.clone().unwrap_or_else(|| json!({}));
    let wanted = resume_template(&template, snap, c.input.resume_pull_secret);
    if wanted != template || bs.pool_ref().is_some() {
        c.turn.sandbox_patch = Some(json!({"spec": {"template": wanted, "poolRef": ""}}));
        c.turn.hold_pods = true;
        return;
    }
    if let Some((pod, reason)) = failing {
        let msg = format!("pod {pod} failed during resume; reason={reason}");
        c.ack();
        c.cond(COND_RESUME_FAILED, true, &reason, &msg);
        c.running(SandboxPhase::Failed);
        return;
    }
    if has_ready_pod(c.input.pods) {
        resumed(c);
    }
}

/// The sandbox template with every container that has a snapshot image switched to it and
/// the resume pull secret present.
pub fn resume_template(
    template: &Value,
    snap: &SandboxSnapshot,
    pull_secret: Option<&str>,
) -> Value {
    let mut t = template.clone();
    let images = snap
        .status
        .as_ref()
        .map(|s| s.containers.clone())
        .unwrap_or_default();
    if let Some(containers) = t
        .pointer_mut("/spec/containers")
        .and_then(Value::as_array_mut)
    {
        for container in containers {
            let name = container["name"].as_str().unwrap_or_default().to_string();
            if let Some(img) = images.iter().find(|i| i.container_name == name) {
                container["image"] = json!(img.image_uri);
            }
        }
    }
    if let Some(secret) = pull_secret.filter(|s| !s.is_empty())
        && let Some(spec) = t.get_mut("spec").and_then(Value::as_object_mut)
    {
        let secrets = spec.entry("imagePullSecrets").or_insert_with(|| json!([]));
        if let Some(list) = secrets.as_array_mut()
            && !list.iter().any(|s| s["name"] == secret)
        {
            list.push(json!({"name": secret}));
        }
    }
    t
}

fn resume_by_thaw(c: &mut Ctx<'_, '_>) {
    let pods = c.input.pods;
    if pods.iter().all(|p| p.deleting) {
        c.ack();
        c.cond(
            COND_RESUME_FAILED,
            true,
            "PodNotFound",
            "the frozen pod is gone; the paused state is lost",
        );
        c.running(SandboxPhase::Failed);
        return;
    }
    c.turn.freeze = pods
        .iter()
        .filter(|p| p.freeze_requested && !p.deleting)
        .map(|p| (p.name.clone(), false))
        .collect();
    if c.turn.freeze.is_empty() && has_ready_pod(pods) {
        resumed(c);
    }
}
