//! Pure task state logic: phase from observed files, API status, ordering, names.

use chrono::{DateTime, Utc};

use super::model::{ProcessStatus, Running, Terminated, Waiting};

/// What the runtime files say about a task's process.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observed {
    /// mtime of the `pid` file (the start time), when present.
    pub started: Option<DateTime<Utc>>,
    pub alive: bool,
    /// Exit code and mtime of the `exit` file.
    pub exit: Option<(i32, DateTime<Utc>)>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Phase {
    Pending,
    Running {
        started: DateTime<Utc>,
    },
    Exited {
        code: i32,
        started: Option<DateTime<Utc>>,
        finished: DateTime<Utc>,
    },
    Crashed {
        started: DateTime<Utc>,
    },
    Timeout {
        started: DateTime<Utc>,
    },
    /// The process never started (see [`super::runtime::preflight`]).
    StartFailed {
        code: i32,
        reason: String,
        message: String,
        at: DateTime<Utc>,
    },
}

pub const TIMEOUT_EXIT: i32 = 137;

pub fn phase(
    obs: &Observed,
    timeout_seconds: Option<i64>,
    timed_out: bool,
    now: DateTime<Utc>,
) -> Phase {
    if let Some((code, finished)) = obs.exit {
        if timed_out {
            return Phase::Timeout {
                started: obs.started.unwrap_or(finished),
            };
        }
        return Phase::Exited {
            code,
            started: obs.started,
            finished,
        };
    }
    let Some(started) = obs.started else {
        return Phase::Pending;
    };
    if timed_out {
        return Phase::Timeout { started };
    }
    if !obs.alive {
        return Phase::Crashed { started };
    }
    if let Some(t) = timeout_seconds.filter(|t| *t > 0)
        && now.signed_duration_since(started).num_milliseconds() >= t * 1000
    {
        return Phase::Timeout { started };
    }
    Phase::Running { started }
}

impl Phase {
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            Phase::Exited { .. } | Phase::Crashed { .. } | Phase::StartFailed { .. }
        )
    }
    pub fn is_active(&self) -> bool {
        matches!(self, Phase::Pending | Phase::Running { .. })
    }
}

pub fn status(phase: &Phase, timeout_seconds: Option<i64>, now: DateTime<Utc>) -> ProcessStatus {
    match phase {
        Phase::Pending => ProcessStatus {
            waiting: Some(Waiting {
                reason: Some("Pending".into()),
                message: None,
            }),
            ..Default::default()
        },
        Phase::Running { started } => ProcessStatus {
            running: Some(Running {
                started_at: *started,
            }),
            ..Default::default()
        },
        Phase::Exited {
            code,
            started,
            finished,
        } => ProcessStatus {
            terminated: Some(Terminated {
                exit_code: *code,
                signal: None,
                reason: Some(if *code == 0 { "Succeeded" } else { "Failed" }.into()),
                message: None,
                started_at: *started,
                finished_at: Some(*finished),
            }),
            ..Default::default()
        },
        Phase::Crashed { started } => ProcessStatus {
            terminated: Some(Terminated {
                exit_code: TIMEOUT_EXIT,
                signal: None,
                reason: Some("ProcessCrashed".into()),
                message: Some("Process exited without writing exit code".into()),
                started_at: Some(*started),
                finished_at: Some(now),
            }),
            ..Default::default()
        },
        Phase::StartFailed {
            code,
            reason,
            message,
            at,
        } => ProcessStatus {
            terminated: Some(Terminated {
                exit_code: *code,
                signal: None,
                reason: Some(reason.clone()),
                message: Some(message.clone()),
                started_at: None,
                finished_at: Some(*at),
            }),
            ..Default::default()
        },
        Phase::Timeout { started } => ProcessStatus {
            terminated: Some(Terminated {
                exit_code: TIMEOUT_EXIT,
                signal: None,
                reason: Some("TaskTimeout".into()),
                message: Some(format!(
                    "Task exceeded timeout of {} seconds",
                    timeout_seconds.unwrap_or(0)
                )),
                started_at: Some(*started),
                finished_at: Some(now),
            }),
            ..Default::default()
        },
    }
}

/// Task names become directory names: no separators, no dot-only names, no NUL.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name != "."
        && name != ".."
        && !name.contains(['/', '\\', '\0'])
}

/// Sort key for `/getTasks`: the active task first, then oldest first, then by name.
pub fn order_key(
    active: bool,
    created: DateTime<Utc>,
    name: &str,
) -> (bool, DateTime<Utc>, String) {
    (!active, created, name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(s, 0).unwrap()
    }

    #[test]
    fn phases() {
        let now = t(100);
        assert_eq!(
            phase(&Observed::default(), None, false, now),
            Phase::Pending
        );
        let running = Observed {
            started: Some(t(90)),
            alive: true,
            exit: None,
        };
        assert_eq!(
            phase(&running, None, false, now),
            Phase::Running { started: t(90) }
        );
        assert_eq!(
            phase(&running, Some(5), false, now),
            Phase::Timeout { started: t(90) }
        );
        assert_eq!(
            phase(&running, Some(50), false, now),
            Phase::Running { started: t(90) }
        );
        let dead = Observed {
            started: Some(t(90)),
            alive: false,
            exit: None,
        };
        assert_eq!(
            phase(&dead, None, false, now),
            Phase::Crashed { started: t(90) }
        );
        let done = Observed {
            started: Some(t(90)),
            alive: false,
            exit: Some((3, t(95))),
        };
        assert_eq!(
            phase(&done, None, false, now),
            Phase::Exited {
                code: 3,
                started: Some(t(90)),
                finished: t(95)
            }
        );
        // A task stopped because of its timeout keeps reporting the timeout.
        assert_eq!(
            phase(&done, Some(1), true, now),
            Phase::Timeout { started: t(90) }
        );
    }

    #[test]
    fn statuses() {
        let now = t(100);
        let s = status(&Phase::Timeout { started: t(1) }, Some(2), now);
        let term = s.terminated.unwrap();
        assert_eq!(term.exit_code, 137);
        assert_eq!(term.reason.as_deref(), Some("TaskTimeout"));
        let ok = status(
            &Phase::Exited {
                code: 0,
                started: None,
                finished: now,
            },
            None,
            now,
        );
        assert_eq!(ok.terminated.unwrap().reason.as_deref(), Some("Succeeded"));
        assert!(status(&Phase::Pending, None, now).waiting.is_some());
    }

    #[test]
    fn start_failures_are_terminal_failures() {
        let p = Phase::StartFailed {
            code: 127,
            reason: "CommandNotFound".into(),
            message: "x: command not found".into(),
            at: t(7),
        };
        assert!(p.is_terminal() && !p.is_active());
        let term = status(&p, None, t(100)).terminated.unwrap();
        assert_eq!(term.exit_code, 127);
        assert_eq!(term.reason.as_deref(), Some("CommandNotFound"));
        assert_eq!(term.message.as_deref(), Some("x: command not found"));
        assert_eq!(term.finished_at, Some(t(7)));
    }

    #[test]
    fn names() {
        for bad in ["", ".", "..", "a/b", "../x", "a\0b"] {
            assert!(!valid_name(bad), "{bad:?}");
        }
        assert!(valid_name("bs-0"));
        assert!(valid_name("a..b"));
    }

    #[test]
    fn ordering() {
        let mut v = [
            order_key(false, t(1), "old"),
            order_key(true, t(5), "active"),
            order_key(false, t(3), "b"),
        ];
        v.sort();
        let names: Vec<&str> = v.iter().map(|k| k.2.as_str()).collect();
        assert_eq!(names, ["active", "old", "b"]);
    }
}
