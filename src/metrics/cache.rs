//! Informer metrics: events applied, relists and watch restarts by reason, and the age of
//! the last event per kind (a stalled watch shows as a growing age).

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Instant;

use parking_lot::Mutex;

fn last_seen() -> &'static Mutex<HashMap<&'static str, Instant>> {
    static LAST: OnceLock<Mutex<HashMap<&'static str, Instant>>> = OnceLock::new();
    LAST.get_or_init(Default::default)
}

/// Why the informer of a kind is listing or watching again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Restart {
    Initial,
    Periodic,
    Error,
}

impl Restart {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Initial => "initial",
            Self::Periodic => "periodic",
            Self::Error => "error",
        }
    }
}

/// A watch event (`apply`, `delete`) or list item batch was applied for `kind`.
pub fn event(kind: &'static str, event: &str) {
    super::get()
        .informer_events
        .with_label_values(&[kind, event])
        .inc();
    last_seen().lock().insert(kind, Instant::now());
}

/// A full list finished for `kind`.
pub fn listed(kind: &'static str) {
    last_seen().lock().insert(kind, Instant::now());
}

/// A full list started for `kind`, for `why`.
pub fn relist(kind: &'static str, why: Restart) {
    super::get()
        .informer_relists
        .with_label_values(&[kind, why.as_str()])
        .inc();
}

/// The watch of `kind` failed (it restarts with backoff).
pub fn watch_error(kind: &'static str) {
    let m = super::get();
    m.informer_errors.with_label_values(&[kind]).inc();
    m.informer_watch_restarts
        .with_label_values(&[kind, Restart::Error.as_str()])
        .inc();
}

/// The watch of `kind` is started again on purpose (periodic relist).
pub fn periodic_restart(kind: &'static str) {
    super::get()
        .informer_watch_restarts
        .with_label_values(&[kind, Restart::Periodic.as_str()])
        .inc();
}

pub(super) fn refresh_ages() {
    let m = super::get();
    for (kind, at) in last_seen().lock().iter() {
        m.informer_last_event_age
            .with_label_values(&[kind])
            .set(at.elapsed().as_secs_f64());
    }
}
