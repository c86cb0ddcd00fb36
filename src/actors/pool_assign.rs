//! Pool auto-assign for `spec.poolRef: "*"` (reference/upstream-controller.md §6), pure.
//!
//! The actor lists the namespace's Pools from the cache, loads the profile with
//! [`load_profile`] (from the `pool-assign-profiles` ConfigMap) and calls [`choose_pool`]; it
//! then writes the chosen name to `spec.poolRef`, or a condition built from
//! [`AssignError::NoEligiblePool`], which says why each pool was rejected.
//!
//! Decisions that differ from upstream:
//! * A `"*"` sandbox *with* a template is matched against the pools' templates like any other
//!   and is then served as a pooled sandbox (upstream assigns it and never serves it).
//! * Unknown plugin names and bad plugin args make the profiles invalid (built-in default
//!   with a note) instead of being skipped silently.
//! * A resource with only a limit counts the limit as its request (Kubernetes defaulting).
//! * Pools being deleted, or in another namespace, are never chosen.

mod predicates;
mod profile;
mod quantity;

#[cfg(test)]
mod tests;

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::sync::Arc;

use kube::ResourceExt;

use crate::crd::{BatchSandbox, Condition, Pool};

use predicates::Sides;
pub use predicates::expression_matches;
pub use profile::{
    DEFAULT_PROFILE, PROFILES_CONFIGMAP, PROFILES_KEY, Predicate, Profile, ProfileChoice,
    ProfileError, Strategy, WeightedScorer, load_profile, parse_profiles,
};
pub use quantity::{NANO, QuantityError, parse_quantity};

/// Condition type for the outcome of auto-assign (kept apart from Ready, which the status
/// computation owns).
pub const COND_POOL_ASSIGNED: &str = "PoolAssigned";

/// The `PoolAssigned` condition for a [`choose_pool`] outcome; `note` is the profile's
/// fallback note from [`load_profile`], if any. `now` is RFC 3339.
pub fn assign_condition(
    result: &Result<String, AssignError>,
    note: Option<&str>,
    now: &str,
) -> Condition {
    let with_note = |msg: String| match note {
        Some(n) => format!("{msg} ({n})"),
        None => msg,
    };
    match result {
        Ok(pool) => Condition::new(
            COND_POOL_ASSIGNED,
            true,
            "Assigned",
            &with_note(format!("assigned pool {pool}")),
            now,
        ),
        Err(e) => Condition::new(
            COND_POOL_ASSIGNED,
            false,
            "NoEligiblePool",
            &with_note(e.to_string()),
            now,
        ),
    }
}

/// One pool that was not eligible, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    pub pool: String,
    pub reason: String,
}

/// No pool can serve the sandbox.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum AssignError {
    #[error("no eligible pool for BatchSandbox {sandbox}: {}", summary(.reasons))]
    NoEligiblePool {
        sandbox: String,
        /// Every pool considered, in name order, with its first failing predicate.
        reasons: Vec<Rejection>,
    },
}

fn summary(reasons: &[Rejection]) -> String {
    if reasons.is_empty() {
        return "there is no Pool in the namespace".to_string();
    }
    reasons
        .iter()
        .map(|r| format!("pool {}: {}", r.pool, r.reason))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Picks the pool for `bs`: pools passing every predicate of `profile`, ranked by the sum of
/// weighted scores, ties to the lexicographically smaller name.
pub fn choose_pool(
    bs: &BatchSandbox,
    pools: &[Arc<Pool>],
    profile: &Profile,
) -> Result<String, AssignError> {
    let mut sorted: Vec<&Pool> = pools.iter().map(Arc::as_ref).collect();
    sorted.sort_by_key(|p| p.name_any());
    let mut best: Option<(f64, String)> = None;
    let mut reasons = Vec::new();
    for pool in sorted {
        let name = pool.name_any();
        if let Err(reason) = eligible(bs, pool, profile) {
            reasons.push(Rejection { pool: name, reason });
            continue;
        }
        let s = score(pool, profile);
        // Pools come in name order, so only a strictly higher score replaces the best.
        if best
            .as_ref()
            .is_none_or(|(b, _)| s.partial_cmp(b) == Some(Ordering::Greater))
        {
            best = Some((s, name));
        }
    }
    best.map(|(_, name)| name)
        .ok_or_else(|| AssignError::NoEligiblePool {
            sandbox: bs.name_any(),
            reasons,
        })
}

fn eligible(bs: &BatchSandbox, pool: &Pool, profile: &Profile) -> Result<(), String> {
    if pool.metadata.deletion_timestamp.is_some() {
        return Err("pool is being deleted".to_string());
    }
    if pool.namespace() != bs.namespace() {
        return Err("pool is in another namespace".to_string());
    }
    let empty = BTreeMap::new();
    let sides = Sides {
        bs_template: bs.spec.template.as_ref().filter(|t| t.is_object()),
        bs_labels: bs.metadata.labels.as_ref().unwrap_or(&empty),
        pool_template: pool.spec.template.as_ref().filter(|t| t.is_object()),
        pool_labels: pool.metadata.labels.as_ref().unwrap_or(&empty),
    };
    for p in &profile.predicates {
        match p {
            Predicate::Image => predicates::image(&sides)?,
            Predicate::Resource => predicates::resource(&sides)?,
            Predicate::NodeSelector => predicates::node_selector(&sides)?,
            Predicate::LabelSelector { keys } => predicates::label_selector(&sides, keys)?,
        }
    }
    Ok(())
}

/// Σ weight × score; `resbalance` reads the pool's status (total 0 scores 0 either way).
fn score(pool: &Pool, profile: &Profile) -> f64 {
    let (allocated, total) = pool
        .status
        .as_ref()
        .map(|s| (f64::from(s.allocated), f64::from(s.total)))
        .unwrap_or_default();
    profile
        .scorers
        .iter()
        .map(|s| {
            let raw = if total <= 0.0 {
                0.0
            } else {
                match s.strategy {
                    Strategy::MostAllocated => allocated / total,
                    Strategy::LeastAllocated => 1.0 - allocated / total,
                }
            };
            raw * s.weight as f64
        })
        .sum()
}
