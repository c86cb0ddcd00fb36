//! Actors (supervisor, pool and sandbox actors) and the pure policies they call.

pub mod pool_policy;
