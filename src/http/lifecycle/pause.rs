//! Which pause/resume requests a sandbox accepts (reference/lifecycle-api.md §3.6), and what
//! its endpoints answer while it is paused.

use actix_web::http::StatusCode;

use super::error::ApiError;
use crate::actors::pause_policy::{COND_PAUSE_FAILED, COND_RESUME_FAILED};
use crate::crd::{BatchSandbox, SandboxPhase};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Intent {
    Pause,
    Resume,
}

fn phase(bs: &BatchSandbox) -> Option<SandboxPhase> {
    bs.status.as_ref().and_then(|s| s.phase)
}

fn phase_name(p: Option<SandboxPhase>) -> String {
    p.map(|p| format!("{p:?}"))
        .unwrap_or_else(|| "Pending".to_string())
}

fn conflict(msg: String) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, "KUBERNETES::INVALID_STATE", msg)
}

/// 409 unless the sandbox is in the phase the request starts from: pause from Running
/// (`Succeed`), resume from `Paused`.
pub fn check(bs: &BatchSandbox, intent: Intent) -> Result<(), ApiError> {
    let p = phase(bs);
    match (intent, p) {
        (Intent::Pause, Some(SandboxPhase::Succeed)) => Ok(()),
        (Intent::Pause, Some(SandboxPhase::Paused)) => {
            Err(conflict("Sandbox is already paused".into()))
        }
        (Intent::Pause, Some(SandboxPhase::Pausing | SandboxPhase::Resuming)) => {
            Err(conflict(format!(
                "Cannot pause: operation in progress (phase={})",
                phase_name(p)
            )))
        }
        (Intent::Pause, None | Some(SandboxPhase::Pending)) => Err(conflict(format!(
            "Cannot pause: sandbox is being created (phase={})",
            phase_name(p)
        ))),
        (Intent::Pause, _) => Err(conflict(format!(
            "Cannot pause sandbox in phase {}, expected Succeed",
            phase_name(p)
        ))),
        (Intent::Resume, Some(SandboxPhase::Paused)) => Ok(()),
        (Intent::Resume, _) => Err(conflict(format!(
            "Cannot resume sandbox in phase {}, expected Paused",
            phase_name(p)
        ))),
    }
}

/// Whether the last attempt of this kind failed, so the same `spec.pause` value must be
/// cleared first to make a new generation (the retry bridge).
pub fn needs_bridge(bs: &BatchSandbox, intent: Intent) -> bool {
    let cond = match intent {
        Intent::Pause => COND_PAUSE_FAILED,
        Intent::Resume => COND_RESUME_FAILED,
    };
    let wanted = intent == Intent::Pause;
    bs.spec.pause == Some(wanted)
        && bs
            .status
            .as_ref()
            .is_some_and(|s| s.conditions.iter().any(|c| c.type_ == cond && c.is_true()))
}

/// A paused sandbox has no address (its pods are gone or frozen), and a resuming one has
/// none until the controller says it runs again: the endpoint and proxy routes answer the
/// 404 the SDK retries on while it resumes, so `Sandbox.resume` returns a sandbox whose state
/// is already `Running` (a thawed pod answers pings a moment before its status says so).
pub fn check_reachable(bs: &BatchSandbox, id: &str) -> Result<(), ApiError> {
    let unreachable = |why: &str| {
        Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "KUBERNETES::POD_IP_NOT_AVAILABLE",
            format!("Sandbox '{id}' {why}"),
        ))
    };
    match phase(bs) {
        Some(SandboxPhase::Paused) => unreachable("is paused; resume it to reach its endpoints"),
        Some(SandboxPhase::Resuming) => {
            unreachable("is resuming; its endpoints are reachable once it is Running")
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::conditions::Condition;
    use crate::crd::{BatchSandboxSpec, BatchSandboxStatus};

    fn bs(phase: Option<SandboxPhase>, pause: Option<bool>, failed: Option<&str>) -> BatchSandbox {
        let mut spec: BatchSandboxSpec =
            serde_json::from_value(serde_json::json!({"replicas": 1})).unwrap();
        spec.pause = pause;
        let mut b = BatchSandbox::new("bs", spec);
        b.status = Some(BatchSandboxStatus {
            phase,
            conditions: failed
                .map(|c| vec![Condition::new(c, true, "X", "x", "2026-01-01T00:00:00Z")])
                .unwrap_or_default(),
            ..Default::default()
        });
        b
    }

    #[test]
    fn phases_and_messages() {
        assert!(check(&bs(Some(SandboxPhase::Succeed), None, None), Intent::Pause).is_ok());
        let e = check(&bs(Some(SandboxPhase::Paused), None, None), Intent::Pause).unwrap_err();
        assert_eq!(
            (e.status.as_u16(), e.message.as_str()),
            (409, "Sandbox is already paused")
        );
        let e = check(&bs(Some(SandboxPhase::Pausing), None, None), Intent::Pause).unwrap_err();
        assert_eq!(
            e.message,
            "Cannot pause: operation in progress (phase=Pausing)"
        );
        let e = check(&bs(None, None, None), Intent::Pause).unwrap_err();
        assert_eq!(
            e.message,
            "Cannot pause: sandbox is being created (phase=Pending)"
        );
        let e = check(&bs(Some(SandboxPhase::Succeed), None, None), Intent::Resume).unwrap_err();
        assert_eq!(
            e.message,
            "Cannot resume sandbox in phase Succeed, expected Paused"
        );
        assert_eq!(e.code, "KUBERNETES::INVALID_STATE");
        assert!(check(&bs(Some(SandboxPhase::Paused), None, None), Intent::Resume).is_ok());
    }

    #[test]
    fn bridge_only_after_a_failed_attempt_of_the_same_kind() {
        let b = bs(
            Some(SandboxPhase::Succeed),
            Some(true),
            Some(COND_PAUSE_FAILED),
        );
        assert!(needs_bridge(&b, Intent::Pause));
        assert!(!needs_bridge(&b, Intent::Resume));
        assert!(!needs_bridge(
            &bs(Some(SandboxPhase::Succeed), Some(true), None),
            Intent::Pause
        ));
        let b = bs(
            Some(SandboxPhase::Paused),
            Some(false),
            Some(COND_RESUME_FAILED),
        );
        assert!(needs_bridge(&b, Intent::Resume));
    }

    #[test]
    fn paused_and_resuming_sandboxes_have_no_endpoint() {
        let e = check_reachable(&bs(Some(SandboxPhase::Paused), None, None), "id").unwrap_err();
        assert_eq!(
            (e.status.as_u16(), e.code.as_str()),
            (404, "KUBERNETES::POD_IP_NOT_AVAILABLE")
        );
        let e = check_reachable(&bs(Some(SandboxPhase::Resuming), None, None), "id").unwrap_err();
        assert_eq!(e.status.as_u16(), 404);
        assert!(check_reachable(&bs(Some(SandboxPhase::Succeed), None, None), "id").is_ok());
        assert!(check_reachable(&bs(Some(SandboxPhase::Pausing), None, None), "id").is_ok());
    }
}
