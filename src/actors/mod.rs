//! Actors (supervisor, pool and sandbox actors), leader election and the pure policies
//! the actors call.

pub mod leader;
pub mod pool_policy;
