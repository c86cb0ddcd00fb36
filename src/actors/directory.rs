//! Where the rest of the process (the SDK API) finds the running actors: the Supervisor's
//! address while this replica leads, nothing otherwise.

use std::sync::Arc;

use actix::Addr;
use parking_lot::RwLock;

use super::supervisor::Supervisor;

#[derive(Clone, Default)]
pub struct ActorDirectory(Arc<RwLock<Option<Addr<Supervisor>>>>);

impl ActorDirectory {
    /// The Supervisor, if the actors run (this replica leads).
    pub fn supervisor(&self) -> Option<Addr<Supervisor>> {
        self.0.read().as_ref().filter(|a| a.connected()).cloned()
    }

    pub(super) fn publish(&self, supervisor: Option<Addr<Supervisor>>) {
        *self.0.write() = supervisor;
    }
}

impl std::fmt::Debug for ActorDirectory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ActorDirectory(running: {})",
            self.supervisor().is_some()
        )
    }
}
