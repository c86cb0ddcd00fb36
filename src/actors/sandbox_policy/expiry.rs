//! `spec.expireTime` (§7.4).

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::crd::BatchSandbox;

/// When the sandbox must be deleted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expiry {
    /// `expireTime` is now or in the past: delete the sandbox.
    Expired,
    /// Delete after this long (the actor's wake-up timer).
    At(Duration),
    /// No `expireTime`.
    Never,
}

/// A malformed `spec.expireTime` (the actor reports it as a condition and keeps the sandbox).
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[error("spec.expireTime {value:?} is not an RFC 3339 timestamp: {reason}")]
pub struct ExpiryError {
    pub value: String,
    pub reason: String,
}

/// Reads `spec.expireTime` against `now`; an empty string means no expiry.
pub fn expiry(bs: &BatchSandbox, now: DateTime<Utc>) -> Result<Expiry, ExpiryError> {
    let Some(raw) = bs.spec.expire_time.as_deref().filter(|s| !s.is_empty()) else {
        return Ok(Expiry::Never);
    };
    let at = DateTime::parse_from_rfc3339(raw).map_err(|e| ExpiryError {
        value: raw.to_string(),
        reason: e.to_string(),
    })?;
    match (at.with_timezone(&Utc) - now).to_std() {
        Ok(d) if !d.is_zero() => Ok(Expiry::At(d)),
        _ => Ok(Expiry::Expired),
    }
}
