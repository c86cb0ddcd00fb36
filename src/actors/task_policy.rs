//! The pure task policy of a BatchSandbox (reference/upstream-controller.md §7.10, gaps fixed):
//! the task of every replica (template plus shard patch), what the executor's report means,
//! and how per-replica task states become the status counters, phase and conditions.
//! No I/O; the task tracker and the BatchSandboxActor are thin shells around it.
//!
//! Decisions that differ from upstream:
//! * `timeoutSeconds` comes from the *patched* template (upstream takes the unpatched one), and
//!   a patch that removes `process` is a spec error on the object, not a crash.
//! * A failed task shows in the phase (`Failed`) and in a `TaskFailed` condition naming the
//!   shard and its pod (upstream keeps reporting the pod phase).
//! * An executor that does not answer makes its task `Unknown` with the reason in a
//!   `TaskUnknown` condition; a replica without a reachable pod yet is `Pending`.
//! * Replica `i` runs on the pod listed for index `i`; when that pod is replaced an unfinished
//!   task runs on the new pod (upstream keeps retrying the dead pod's address), a finished one
//!   keeps its result.

mod observe;
mod spec;
mod summary;

#[cfg(test)]
mod tests;

pub use observe::{Observation, TaskReport, TaskState, classify};
pub use spec::{TaskSpec, TaskSpecError, task_specs};
pub use summary::{
    COND_TASK_FAILED, COND_TASK_UNKNOWN, NamedTask, SlotView, TaskSummary, apply_task_status,
    summarize,
};
