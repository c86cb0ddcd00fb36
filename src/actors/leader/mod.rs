//! Leader election on a `coordination.k8s.io/v1` Lease, with client-go semantics.
//!
//! Every write carries the resourceVersion just read, so a lost race is a 409, never a
//! second leader. Expiry of another holder is judged from when we observed its last renew,
//! on our monotonic clock. The leader counts itself leader only until its last successful
//! renew + `renew_deadline`, which is shorter than `lease_duration`: a partitioned or deposed
//! leader stops writing before anyone else can take the lease.

mod config;
mod elector;
mod fence;
mod handle;
mod record;

pub use config::{LeaderConfig, LeaderConfigError};
pub use elector::LeaderElector;
pub use fence::{FenceLayer, Fenced, WriteFence};
pub use handle::{LeaderGate, LeaderHandle, LeaderState};
