//! What an executor's `/getTasks` entry says about one task, and what the controller knows
//! about one replica's task.

use serde::Deserialize;

/// One entry of the executor's task list (only what the controller reads).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskReport {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub deletion_timestamp: Option<String>,
    #[serde(default)]
    pub process_status: Option<ProcessStatusReport>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProcessStatusReport {
    #[serde(default)]
    pub waiting: Option<WaitingReport>,
    #[serde(default)]
    pub running: Option<serde_json::Value>,
    #[serde(default)]
    pub terminated: Option<TerminatedReport>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WaitingReport {
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TerminatedReport {
    #[serde(default)]
    pub exit_code: i32,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
}

/// The five task counters of the status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TaskState {
    Pending,
    Running,
    Succeed,
    Failed,
    Unknown,
}

impl TaskState {
    pub fn is_final(self) -> bool {
        matches!(self, TaskState::Succeed | TaskState::Failed)
    }
}

/// What the controller knows about one replica's task.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Observation {
    /// Not running anywhere yet: no pod, no address, not Ready, or not reported yet.
    Waiting(String),
    /// The executor reported the task: its state and a human-readable detail.
    Reported { state: TaskState, detail: String },
    /// The executor did not answer (connection refused, timeout, bad response).
    Unreachable(String),
    /// The executor answered `setTasks` with an error.
    Rejected(String),
    /// The spec gives this replica no runnable task.
    Invalid(String),
}

impl Observation {
    pub fn state(&self) -> TaskState {
        match self {
            Observation::Waiting(_) => TaskState::Pending,
            Observation::Reported { state, .. } => *state,
            Observation::Unreachable(_) | Observation::Rejected(_) => TaskState::Unknown,
            Observation::Invalid(_) => TaskState::Failed,
        }
    }

    pub fn detail(&self) -> &str {
        match self {
            Observation::Waiting(d)
            | Observation::Reported { detail: d, .. }
            | Observation::Unreachable(d)
            | Observation::Rejected(d)
            | Observation::Invalid(d) => d,
        }
    }
}

/// The state of a reported task: running, exit 0 ⇒ Succeed, other exit ⇒ Failed, waiting ⇒
/// Pending, no process status ⇒ Unknown.
pub fn classify(report: &TaskReport) -> Observation {
    let Some(ps) = report.process_status.as_ref() else {
        return Observation::Reported {
            state: TaskState::Unknown,
            detail: "the executor reports no process status".into(),
        };
    };
    if let Some(t) = &ps.terminated {
        let state = if t.exit_code == 0 {
            TaskState::Succeed
        } else {
            TaskState::Failed
        };
        let mut detail = format!("exit code {}", t.exit_code);
        if let Some(r) = t.reason.as_deref().filter(|r| !r.is_empty()) {
            detail.push_str(&format!(" ({r})"));
        }
        if let Some(m) = t.message.as_deref().filter(|m| !m.is_empty()) {
            detail.push_str(&format!(": {m}"));
        }
        return Observation::Reported { state, detail };
    }
    if ps.running.is_some() {
        return Observation::Reported {
            state: TaskState::Running,
            detail: "running".into(),
        };
    }
    let reason = ps
        .waiting
        .as_ref()
        .and_then(|w| w.reason.clone().or_else(|| w.message.clone()))
        .unwrap_or_else(|| "waiting".into());
    Observation::Reported {
        state: TaskState::Pending,
        detail: reason,
    }
}
