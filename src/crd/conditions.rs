//! The condition shape shared by BatchSandbox and SandboxSnapshot status.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One entry of `status.conditions`, keyed by `type`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(rename = "type")]
    pub type_: String,
    /// `"True"` or `"False"`; False conditions stay on the object with their reason.
    #[schemars(extend("enum" = ["True", "False", "Unknown"]))]
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
}

impl Condition {
    pub fn new(type_: &str, status: bool, reason: &str, message: &str, now: &str) -> Self {
        Self {
            type_: type_.to_string(),
            status: if status { "True" } else { "False" }.to_string(),
            reason: Some(reason.to_string()),
            message: Some(message.to_string()),
            last_transition_time: Some(now.to_string()),
        }
    }

    pub fn is_true(&self) -> bool {
        self.status == "True"
    }
}

/// Sets `cond` in `list`, keeping `lastTransitionTime` when the status did not change.
/// Returns true when anything changed.
pub fn set_condition(list: &mut Vec<Condition>, cond: Condition) -> bool {
    match list.iter_mut().find(|c| c.type_ == cond.type_) {
        Some(existing) => {
            if existing.status == cond.status
                && existing.reason == cond.reason
                && existing.message == cond.message
            {
                return false;
            }
            let keep_time = existing.status == cond.status;
            let time = if keep_time {
                existing.last_transition_time.clone()
            } else {
                cond.last_transition_time.clone()
            };
            *existing = Condition {
                last_transition_time: time,
                ..cond
            };
            true
        }
        None => {
            list.push(cond);
            true
        }
    }
}

/// Finds a condition by type.
pub fn find<'a>(list: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    list.iter().find(|c| c.type_ == type_)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_keeps_transition_time_when_status_unchanged() {
        let mut list = vec![Condition::new("Ready", true, "A", "a", "t1")];
        assert!(set_condition(
            &mut list,
            Condition::new("Ready", true, "B", "b", "t2")
        ));
        assert_eq!(list[0].last_transition_time.as_deref(), Some("t1"));
        assert_eq!(list[0].reason.as_deref(), Some("B"));
        assert!(set_condition(
            &mut list,
            Condition::new("Ready", false, "C", "c", "t3")
        ));
        assert_eq!(list[0].last_transition_time.as_deref(), Some("t3"));
        assert_eq!(list[0].status, "False");
        assert!(!set_condition(
            &mut list,
            Condition::new("Ready", false, "C", "c", "t4")
        ));
    }
}
