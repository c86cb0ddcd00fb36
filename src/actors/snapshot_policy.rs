//! The pure SandboxSnapshot policy (reference/upstream-controller.md §8): phases Pending ->
//! Committing -> Succeed | Failed, the commit Job it drives, and the Job time-out.
//!
//! Two strategies take the snapshot:
//! * [`SnapshotStrategy::Commit`] (Kubernetes): a commit Job on the source pod's node commits
//!   every container to `<registry>/<sandbox>-<container>:snap-gen<generation>` and pushes it.
//!   The Job carries `activeDeadlineSeconds`, and the policy also fails the snapshot itself
//!   once the Job outlives `--commit-job-timeout` (a cluster without a Job controller, or one
//!   that never reports the deadline, must not leave the sandbox Pausing forever).
//! * [`SnapshotStrategy::Freeze`] (standalone): there is no registry; the "snapshot" is the
//!   frozen process tree itself. The policy asks the node agent to freeze the source pod
//!   (annotation) and succeeds once the agent reports it frozen. The pod and its filesystem
//!   are kept.

mod job;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use k8s_openapi::api::batch::v1::Job;
use kube::ResourceExt;

use crate::cache::PodInfo;
use crate::cache::objects::to_chrono;
use crate::crd::conditions::{Condition, set_condition};
use crate::crd::{BatchSandbox, SandboxSnapshot, SandboxSnapshotStatus, SnapshotPhase, keys};

pub use job::{commit_job, commit_job_name, unpause_job, unpause_job_name};

/// How snapshots are taken.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SnapshotStrategy {
    /// Commit Job + registry (Kubernetes).
    #[default]
    Commit,
    /// Freeze the pod's processes in place (standalone node agent).
    Freeze,
}

/// The snapshot settings (manager flags `--snapshot-*`, `--image-committer-image`...).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotConfig {
    pub strategy: SnapshotStrategy,
    /// `--snapshot-registry`; empty fails every commit snapshot `RegistryNotConfigured`.
    pub registry: String,
    pub registry_insecure: bool,
    /// Secret (dockerconfigjson) mounted into commit Jobs.
    pub push_secret: Option<String>,
    /// Added to the template's `imagePullSecrets` on resume.
    pub resume_pull_secret: Option<String>,
    pub committer_image: String,
    pub containerd_socket_path: String,
    /// Commit Job deadline (and the freeze deadline).
    pub commit_job_timeout: Duration,
}

impl Default for SnapshotConfig {
    fn default() -> Self {
        Self {
            strategy: SnapshotStrategy::Commit,
            registry: String::new(),
            registry_insecure: false,
            push_secret: None,
            resume_pull_secret: None,
            committer_image: "image-committer:dev".into(),
            containerd_socket_path: "/var/run/containerd/containerd.sock".into(),
            commit_job_timeout: Duration::from_secs(600),
        }
    }
}

/// How often a freezing snapshot looks at its pod (a cache read).
const FREEZE_POLL: Duration = Duration::from_millis(200);

pub const COND_READY: &str = "Ready";
pub const COND_FAILED: &str = "Failed";

/// Everything one decision looks at.
pub struct SnapshotInput<'a> {
    pub snapshot: &'a SandboxSnapshot,
    /// The BatchSandbox `spec.sandboxName` names, if it exists.
    pub sandbox: Option<&'a BatchSandbox>,
    /// Candidate source pods in preference order (ledger pods, then the sandbox's own pods).
    pub pods: &'a [Arc<PodInfo>],
    /// Containers to snapshot: `(name, image)` of the sandbox's (or its pool's) template.
    pub template_containers: &'a [(String, String)],
    /// `<snapshot>-commit`, if it exists.
    pub job: Option<&'a Job>,
    pub config: &'a SnapshotConfig,
    pub now: DateTime<Utc>,
}

/// What the actor does for one snapshot this turn.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SnapshotTurn {
    /// Add the cleanup finalizer (nothing else this turn).
    pub add_finalizer: bool,
    /// Deleting: delete these Jobs, then remove the finalizer.
    pub cleanup_jobs: Option<Vec<String>>,
    /// The new status, when it changed.
    pub status: Option<SandboxSnapshotStatus>,
    pub create_jobs: Vec<Job>,
    /// Freeze strategy: annotate this pod to be frozen.
    pub freeze_pod: Option<String>,
    /// Look again after this long (Job deadline), even without an event.
    pub recheck_after: Option<Duration>,
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The pushed image of one container (upstream §2.4).
pub fn image_uri(
    registry: &str,
    snapshot: &SandboxSnapshot,
    sandbox: &str,
    container: &str,
    generation: i64,
) -> String {
    let registry = registry.trim_end_matches('/');
    let tag = if owned_by_sandbox(snapshot) {
        format!("snap-gen{generation}")
    } else {
        public_tag(&snapshot.name_any())
    };
    format!("{registry}/{sandbox}-{container}:{tag}")
}

/// A pause snapshot: controlled by its BatchSandbox.
fn owned_by_sandbox(snapshot: &SandboxSnapshot) -> bool {
    snapshot
        .owner_references()
        .iter()
        .any(|o| o.controller == Some(true) && o.kind == "BatchSandbox")
}

/// Tag of a snapshot not owned by a sandbox: its id when named `osb-snap-<32 hex>`, else the
/// first 32 hex digits of the SHA-256 of its name.
fn public_tag(name: &str) -> String {
    use sha2::{Digest, Sha256};
    if let Some(id) = name.strip_prefix("osb-snap-")
        && id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return format!("snap-{id}");
    }
    let digest = Sha256::digest(name.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("snap-{}", &hex[..32])
}

/// Sets the phase and its conditions; `failure` is `(reason, message)` for Failed.
fn set_phase(
    status: &mut SandboxSnapshotStatus,
    phase: SnapshotPhase,
    failure: Option<(&str, &str)>,
    now: &str,
) {
    status.phase = Some(phase);
    let conds = &mut status.conditions;
    match phase {
        SnapshotPhase::Succeed => {
            set_condition(
                conds,
                Condition::new(COND_READY, true, "SnapshotReady", "Snapshot is ready", now),
            );
        }
        SnapshotPhase::Failed => {
            let (reason, msg) = failure.unwrap_or(("Failed", "snapshot failed"));
            set_condition(conds, Condition::new(COND_READY, false, reason, msg, now));
            set_condition(conds, Condition::new(COND_FAILED, true, reason, msg, now));
        }
        SnapshotPhase::Pending | SnapshotPhase::Committing => {
            let msg = if phase == SnapshotPhase::Pending {
                "Snapshot is pending"
            } else {
                "Snapshot is being committed"
            };
            set_condition(
                conds,
                Condition::new(COND_READY, false, &format!("{phase:?}"), msg, now),
            );
        }
    }
}

/// The message of a failed snapshot (its True `Failed` condition), as a pause reports it.
pub fn failure_message(s: &SandboxSnapshot) -> String {
    s.status
        .as_ref()
        .and_then(|st| {
            st.conditions
                .iter()
                .find(|c| c.type_ == COND_FAILED && c.is_true())
        })
        .and_then(|c| c.message.clone())
        .unwrap_or_else(|| "snapshot failed".to_string())
}

/// Decides one turn.
pub fn snapshot_turn(input: &SnapshotInput<'_>) -> SnapshotTurn {
    let snap = input.snapshot;
    let finalizers = snap.finalizers();
    let has_finalizer = finalizers
        .iter()
        .any(|f| f == keys::FINALIZER_SNAPSHOT_CLEANUP);
    if snap.metadata.deletion_timestamp.is_some() {
        if !has_finalizer {
            return SnapshotTurn::default();
        }
        let name = snap.name_any();
        return SnapshotTurn {
            cleanup_jobs: Some(vec![commit_job_name(&name), unpause_job_name(&name)]),
            ..Default::default()
        };
    }
    if !has_finalizer {
        return SnapshotTurn {
            add_finalizer: true,
            ..Default::default()
        };
    }
    let current = snap.status.clone().unwrap_or_default();
    let mut status = current.clone();
    status.observed_generation = snap.metadata.generation;
    let now = rfc3339(input.now);
    let mut turn = SnapshotTurn::default();
    match current.phase {
        Some(SnapshotPhase::Succeed | SnapshotPhase::Failed) => {}
        Some(SnapshotPhase::Committing) => committing(input, &mut status, &mut turn, &now),
        Some(SnapshotPhase::Pending) | None => pending(input, &mut status, &mut turn, &now),
    }
    if status != current {
        turn.status = Some(status);
    }
    turn
}

/// Resolves the source pod and its containers, then starts the commit (or the freeze).
fn pending(
    input: &SnapshotInput<'_>,
    status: &mut SandboxSnapshotStatus,
    turn: &mut SnapshotTurn,
    now: &str,
) {
    let snap = input.snapshot;
    let fail = |status: &mut SandboxSnapshotStatus, reason: &str, msg: &str| {
        set_phase(status, SnapshotPhase::Failed, Some((reason, msg)), now);
    };
    let commit = input.config.strategy == SnapshotStrategy::Commit;
    if !commit && !owned_by_sandbox(snap) {
        // Freezing is how a sandbox pauses; it saves nothing another sandbox could start from.
        return fail(
            status,
            "SnapshotNotSupported",
            "this controller has no snapshot registry (standalone): only pause snapshots are supported",
        );
    }
    if commit && input.config.registry.trim().is_empty() {
        return fail(
            status,
            "RegistryNotConfigured",
            "snapshot-registry not configured in controller manager",
        );
    }
    let sandbox_name = &snap.spec.sandbox_name;
    let Some(bs) = input.sandbox else {
        return fail(
            status,
            "BatchSandboxLookupFailed",
            &format!("failed to get BatchSandbox {sandbox_name}: not found"),
        );
    };
    let Some(pod) = input
        .pods
        .iter()
        .find(|p| p.phase == "Running" && !p.deleting)
    else {
        return fail(
            status,
            "SourcePodNotFound",
            &format!("source pod not found: no running pod found for BatchSandbox {sandbox_name}"),
        );
    };
    let names: Vec<String> = if input.template_containers.is_empty() {
        pod.containers.iter().map(|c| c.name.clone()).collect()
    } else {
        input
            .template_containers
            .iter()
            .map(|(n, _)| n.clone())
            .collect()
    };
    if names.is_empty() {
        return fail(status, "NoContainers", "the source pod has no containers");
    }
    let generation = bs.metadata.generation.unwrap_or(0);
    status.source_pod_name = Some(pod.name.clone());
    status.source_node_name = pod.node_name.clone();
    status.containers = names
        .iter()
        .map(|n| crate::crd::snapshot::SnapshotContainer {
            container_name: n.clone(),
            image_uri: if commit {
                image_uri(&input.config.registry, snap, sandbox_name, n, generation)
            } else {
                format!("frozen://{}/{}/{n}", pod.namespace, pod.name)
            },
            image_digest: None,
        })
        .collect();
    if commit {
        if input.job.is_none() {
            turn.create_jobs
                .push(commit_job(snap, status, &pod.namespace, input.config));
        }
        turn.recheck_after = Some(input.config.commit_job_timeout);
    } else {
        turn.freeze_pod = Some(pod.name.clone());
        turn.recheck_after = Some(freeze_remaining(input).min(FREEZE_POLL));
    }
    set_phase(status, SnapshotPhase::Committing, None, now);
}

fn freeze_remaining(input: &SnapshotInput<'_>) -> Duration {
    let created = input
        .snapshot
        .metadata
        .creation_timestamp
        .as_ref()
        .map(|t| to_chrono(&t.0))
        .unwrap_or(input.now);
    remaining(created, input.config.commit_job_timeout, input.now)
}

fn remaining(since: DateTime<Utc>, timeout: Duration, now: DateTime<Utc>) -> Duration {
    let elapsed = (now - since).to_std().unwrap_or_default();
    timeout.saturating_sub(elapsed)
}

fn committing(
    input: &SnapshotInput<'_>,
    status: &mut SandboxSnapshotStatus,
    turn: &mut SnapshotTurn,
    now: &str,
) {
    match input.config.strategy {
        SnapshotStrategy::Commit => commit_progress(input, status, turn, now),
        SnapshotStrategy::Freeze => freeze_progress(input, status, turn, now),
    }
}

fn commit_progress(
    input: &SnapshotInput<'_>,
    status: &mut SandboxSnapshotStatus,
    turn: &mut SnapshotTurn,
    now: &str,
) {
    let Some(job) = input.job else {
        // The Job vanished (deleted by hand, TTL): start over.
        return pending(input, status, turn, now);
    };
    let job_status = job.status.clone().unwrap_or_default();
    if job_status.succeeded.unwrap_or(0) > 0 {
        return set_phase(status, SnapshotPhase::Succeed, None, now);
    }
    let failed_cond = job_status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Failed" && c.status == "True");
    let created = job
        .metadata
        .creation_timestamp
        .as_ref()
        .map(|t| to_chrono(&t.0))
        .unwrap_or(input.now);
    let left = remaining(created, input.config.commit_job_timeout, input.now);
    let failure = match failed_cond {
        Some(c) => Some((
            "CommitJobFailed",
            c.message
                .clone()
                .filter(|m| !m.is_empty())
                .unwrap_or_else(|| "Commit job failed".into()),
        )),
        None if left.is_zero() => Some((
            "CommitJobTimeout",
            format!(
                "commit job did not finish within {}s",
                input.config.commit_job_timeout.as_secs()
            ),
        )),
        None => None,
    };
    match failure {
        Some((reason, msg)) => {
            // Best effort: the committer may have left the containers paused.
            if let Some(pod) = &status.source_pod_name
                && !status.containers.is_empty()
            {
                let ns = input.snapshot.namespace().unwrap_or_default();
                turn.create_jobs
                    .push(unpause_job(input.snapshot, status, pod, &ns, input.config));
            }
            set_phase(status, SnapshotPhase::Failed, Some((reason, &msg)), now);
        }
        None => turn.recheck_after = Some(left),
    }
}

fn freeze_progress(
    input: &SnapshotInput<'_>,
    status: &mut SandboxSnapshotStatus,
    turn: &mut SnapshotTurn,
    now: &str,
) {
    let source = status.source_pod_name.clone().unwrap_or_default();
    let Some(pod) = input.pods.iter().find(|p| p.name == source && !p.deleting) else {
        let msg = format!("source pod {source} is gone");
        return set_phase(
            status,
            SnapshotPhase::Failed,
            Some(("SourcePodNotFound", &msg)),
            now,
        );
    };
    if pod.frozen {
        return set_phase(status, SnapshotPhase::Succeed, None, now);
    }
    let left = freeze_remaining(input);
    if left.is_zero() {
        let msg = format!(
            "the node agent did not freeze pod {source} within {}s",
            input.config.commit_job_timeout.as_secs()
        );
        return set_phase(
            status,
            SnapshotPhase::Failed,
            Some(("FreezeTimeout", &msg)),
            now,
        );
    }
    if !pod.freeze_requested {
        turn.freeze_pod = Some(source);
    }
    // Pod changes wake the sandbox, not its snapshot: look at the pod again shortly.
    turn.recheck_after = Some(left.min(FREEZE_POLL));
}
