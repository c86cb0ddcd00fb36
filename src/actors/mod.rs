//! Actors (supervisor, pool and sandbox actors), leader election and the pure policies
//! the actors call.

pub mod allocation;
pub mod context;
pub mod directory;
pub mod events;
pub mod leader;
pub mod pause_policy;
pub mod pool_actor;
pub mod pool_assign;
pub mod pool_pod;
pub mod pool_policy;
pub mod recycle_restart;
pub mod restart_exec;
pub mod runner;
pub mod sandbox_actor;
pub mod sandbox_pause;
pub mod sandbox_policy;
pub mod snapshot_actor;
pub mod snapshot_policy;
pub mod spans;
pub mod supervisor;
pub mod task_client;
pub mod task_policy;
pub mod task_tracker;

pub use context::{ActorConfig, Controller};
pub use directory::ActorDirectory;
pub use runner::run_actors;
