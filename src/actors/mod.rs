//! Actors (supervisor, pool and sandbox actors), leader election and the pure policies
//! the actors call.

pub mod allocation;
pub mod context;
pub mod leader;
pub mod pause_policy;
pub mod pool_actor;
pub mod pool_assign;
pub mod pool_pod;
pub mod pool_policy;
pub mod runner;
pub mod sandbox_actor;
pub mod sandbox_pause;
pub mod sandbox_policy;
pub mod snapshot_actor;
pub mod snapshot_policy;
pub mod supervisor;

pub use context::{ActorConfig, Controller};
pub use runner::run_actors;
