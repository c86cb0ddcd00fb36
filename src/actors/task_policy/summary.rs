//! Per-replica task states ⇒ the five status counters, the phase and the task conditions.

use chrono::{DateTime, SecondsFormat, Utc};

use super::observe::{Observation, TaskState};
use crate::actors::sandbox_policy::{COND_PROGRESSING, COND_READY, TaskCounts};
use crate::crd::conditions::{Condition, set_condition};
use crate::crd::{BatchSandboxStatus, SandboxPhase};

/// True (with the first failing shard named) while any task failed, else False.
pub const COND_TASK_FAILED: &str = "TaskFailed";
/// True (with the shard and the reason) while any task's executor cannot be asked.
pub const COND_TASK_UNKNOWN: &str = "TaskUnknown";

/// One replica's task as the summary sees it.
#[derive(Clone, Copy, Debug)]
pub struct SlotView<'a> {
    pub index: u32,
    pub task: &'a str,
    pub pod: Option<&'a str>,
    pub observation: &'a Observation,
}

/// A task worth naming in a condition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamedTask {
    pub index: u32,
    pub task: String,
    pub pod: Option<String>,
    pub detail: String,
}

impl NamedTask {
    pub fn describe(&self) -> String {
        match &self.pod {
            Some(pod) => format!(
                "shard {} (task {} on pod {pod}): {}",
                self.index, self.task, self.detail
            ),
            None => format!("shard {} (task {}): {}", self.index, self.task, self.detail),
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TaskSummary {
    pub counts: TaskCounts,
    pub total: usize,
    /// Failed tasks, in index order.
    pub failed: Vec<NamedTask>,
    /// Unknown tasks, in index order.
    pub unknown: Vec<NamedTask>,
}

pub fn summarize<'a>(slots: impl IntoIterator<Item = SlotView<'a>>) -> TaskSummary {
    let mut s = TaskSummary::default();
    for slot in slots {
        s.total += 1;
        let named = || NamedTask {
            index: slot.index,
            task: slot.task.to_string(),
            pod: slot.pod.map(String::from),
            detail: slot.observation.detail().to_string(),
        };
        match slot.observation.state() {
            TaskState::Pending => s.counts.pending += 1,
            TaskState::Running => s.counts.running += 1,
            TaskState::Succeed => s.counts.succeed += 1,
            TaskState::Failed => {
                s.counts.failed += 1;
                s.failed.push(named());
            }
            TaskState::Unknown => {
                s.counts.unknown += 1;
                s.unknown.push(named());
            }
        }
    }
    s
}

fn list_message(what: &str, tasks: &[NamedTask], total: usize) -> String {
    let mut msg = tasks.first().map(NamedTask::describe).unwrap_or_default();
    if tasks.len() > 1 {
        let shards: Vec<String> = tasks.iter().take(10).map(|t| t.index.to_string()).collect();
        let more = if tasks.len() > 10 { ", ..." } else { "" };
        msg.push_str(&format!(
            "; {} of {total} tasks {what} (shards {}{more})",
            tasks.len(),
            shards.join(", ")
        ));
    }
    msg
}

/// Writes the counters, and unless the sandbox is in the pause/resume flow: a failed task
/// makes the phase `Failed` (Ready and Progressing False with the shard named), and the
/// `TaskFailed` / `TaskUnknown` conditions say which shard and why.
pub fn apply_task_status(status: &mut BatchSandboxStatus, s: &TaskSummary, now: DateTime<Utc>) {
    status.task_pending = s.counts.pending;
    status.task_running = s.counts.running;
    status.task_succeed = s.counts.succeed;
    status.task_failed = s.counts.failed;
    status.task_unknown = s.counts.unknown;
    if matches!(
        status.phase,
        Some(SandboxPhase::Pausing | SandboxPhase::Paused | SandboxPhase::Resuming)
    ) {
        return;
    }
    let now = now.to_rfc3339_opts(SecondsFormat::Secs, true);
    let conds = &mut status.conditions;
    if s.failed.is_empty() {
        set_condition(
            conds,
            Condition::new(
                COND_TASK_FAILED,
                false,
                "NoTaskFailed",
                "no task failed",
                &now,
            ),
        );
    } else {
        let msg = list_message("failed", &s.failed, s.total);
        status.phase = Some(SandboxPhase::Failed);
        for type_ in [COND_TASK_FAILED, COND_READY, COND_PROGRESSING] {
            let value = type_ == COND_TASK_FAILED;
            set_condition(
                conds,
                Condition::new(type_, value, "TaskFailed", &msg, &now),
            );
        }
    }
    let unknown = if s.unknown.is_empty() {
        Condition::new(
            COND_TASK_UNKNOWN,
            false,
            "AllTasksKnown",
            "every executor answered",
            &now,
        )
    } else {
        let msg = list_message("unknown", &s.unknown, s.total);
        Condition::new(COND_TASK_UNKNOWN, true, "TaskStateUnknown", &msg, &now)
    };
    set_condition(conds, unknown);
}
