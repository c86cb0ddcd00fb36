//! The pure BatchSandbox policy (reference/upstream-controller.md §7.5-7.9, quirks fixed):
//! template-mode pods and their plan, the status (counts, phase, conditions), the endpoints
//! annotation and expiry. No I/O; the BatchSandboxActor is a thin shell around these.
//!
//! Decisions that differ from upstream:
//! * Template mode scales down: pods whose index is `>= replicas` are deleted, highest first.
//! * A pod that can never become Ready again (phase Failed, or Succeeded under restartPolicy
//!   Always) is deleted and re-created under the same name.
//! * `Failed` is not sticky: the phase follows the pods and recovers when they do.
//! * `Succeed` means *every* desired replica is Ready (`ready >= max(1, replicas)`), so
//!   "BatchSandbox Ready" is "all my sandboxes are usable"; upstream says Succeed on one Ready
//!   pod.
//! * Conditions set to False stay on the object with a reason; `PodRestarted` reports a
//!   container restart after the pod was Ready (in-memory state of that sandbox was lost).

mod endpoints;
mod expiry;
mod plan;
mod status;
mod template;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

pub use endpoints::{endpoints, endpoints_changed};
pub use expiry::{Expiry, ExpiryError, expiry};
pub use plan::{IndexError, TemplatePlan, parse_index, pod_index, template_plan};
pub use status::{
    COND_POD_FAILED, COND_POD_RESTARTED, COND_PROGRESSING, COND_READY, StatusInput, TaskCounts,
    first_write_deferred, sandbox_status, status_changed, track_ready_restarts,
};
pub use template::{SandboxSpecError, owner_ref, pod_name, template_pod};
