//! Tracing spans of actor turns, so every log line of a turn names its pool or sandbox.

use tracing::{Instrument, Span};

use crate::cache::ObjKey;

/// The span of one pool turn.
pub fn pool(key: &ObjKey) -> Span {
    tracing::info_span!("pool_turn", namespace = %key.0, pool = %key.1)
}

/// The span of one BatchSandbox turn.
pub fn sandbox(key: &ObjKey) -> Span {
    tracing::info_span!("sandbox_turn", namespace = %key.0, sandbox = %key.1)
}

/// `turn` running in the span of its sandbox.
pub fn in_sandbox<F: std::future::Future>(
    key: &ObjKey,
    turn: F,
) -> tracing::instrument::Instrumented<F> {
    turn.instrument(sandbox(key))
}
