//! The state shared between the election task and its handle.

use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

/// What the elector last concluded, for gating and metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LeaderState {
    pub is_leader: bool,
    /// The holder we last observed (ourselves while leading).
    pub holder: Option<String>,
    /// The SDK API address the holder published on the Lease, if any.
    pub holder_address: Option<String>,
    /// When this `(is_leader, holder)` pair began, on our monotonic clock.
    pub since: Option<Instant>,
}

#[derive(Debug, Default)]
struct Lock {
    /// Last successful renew + renew_deadline: past it the lease may be someone else's.
    deadline: Option<Instant>,
    /// Set once the elector is stopping; no renew can make us leader again.
    closed: bool,
}

#[derive(Debug)]
pub(super) struct Shared {
    lock: Mutex<Lock>,
    state: watch::Sender<LeaderState>,
}

impl Shared {
    pub(super) fn new() -> Arc<Self> {
        Arc::new(Self {
            lock: Mutex::new(Lock::default()),
            state: watch::Sender::new(LeaderState::default()),
        })
    }

    pub(super) fn is_leader(&self) -> bool {
        self.lock
            .lock()
            .deadline
            .is_some_and(|d| Instant::now() < d)
    }

    pub(super) fn deadline(&self) -> Option<Instant> {
        self.lock.lock().deadline
    }

    /// Records a successful renew; false if it came too late or we are stopping.
    pub(super) fn extend(&self, deadline: Instant) -> bool {
        let mut lock = self.lock.lock();
        if lock.closed || deadline <= Instant::now() {
            return false;
        }
        lock.deadline = Some(deadline);
        true
    }

    pub(super) fn step_down(&self) {
        self.lock.lock().deadline = None;
    }

    pub(super) fn close(&self) {
        let mut lock = self.lock.lock();
        lock.closed = true;
        lock.deadline = None;
    }

    /// Publishes a transition; returns whether anything changed.
    pub(super) fn publish(
        &self,
        is_leader: bool,
        holder: Option<String>,
        holder_address: Option<String>,
    ) -> bool {
        self.state.send_if_modified(|s| {
            if s.is_leader == is_leader && s.holder == holder {
                if s.holder_address == holder_address {
                    return false;
                }
                s.holder_address = holder_address;
                return true;
            }
            let since = (is_leader || holder.is_some()).then(Instant::now);
            *s = LeaderState {
                is_leader,
                holder,
                holder_address,
                since,
            };
            true
        })
    }

    fn demote(&self) {
        let (holder, address) = {
            let s = self.state.borrow();
            (s.holder.clone(), s.holder_address.clone())
        };
        self.publish(false, holder, address);
    }
}

/// Controls a running elector. Dropping it stops the elector without releasing the lease.
pub struct LeaderHandle {
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl LeaderHandle {
    pub(super) fn new(
        shared: Arc<Shared>,
        stop: oneshot::Sender<()>,
        task: JoinHandle<()>,
    ) -> Self {
        Self {
            shared,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub fn subscribe(&self) -> watch::Receiver<LeaderState> {
        self.shared.state.subscribe()
    }

    /// True only while the lease is certainly ours: checked against the local renew
    /// deadline on every call, so it turns false even while a renew request hangs.
    pub fn is_leader(&self) -> bool {
        self.shared.is_leader()
    }

    /// A cheap, clonable check for writers (actors) that must stop the moment the lease
    /// may no longer be ours.
    pub fn gate(&self) -> LeaderGate {
        LeaderGate(Some(self.shared.clone()))
    }

    /// Graceful stop (SIGTERM): stop renewing and hand the lease back if we hold it, so a
    /// follower takes over at once instead of after the lease expires.
    pub async fn release(mut self) {
        self.shared.close();
        self.shared.demote();
        if let Some(stop) = self.stop.take() {
            // The task may already be gone; then there is nothing to stop.
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take()
            && let Err(e) = task.await
        {
            tracing::warn!(error = %e, "leader election task ended abnormally");
        }
    }

    /// Stops the elector the way a crash would: no release, the lease runs out on its own.
    pub fn abort(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
        self.shared.close();
        self.shared.demote();
    }
}

/// Whether this replica may write now. Without leader election it always may.
#[derive(Clone, Default)]
pub struct LeaderGate(Option<Arc<Shared>>);

impl LeaderGate {
    /// A gate that is always open (leader election disabled).
    pub fn always() -> Self {
        Self(None)
    }

    pub fn is_leader(&self) -> bool {
        self.0.as_ref().is_none_or(|s| s.is_leader())
    }

    /// A gate that is never open (a replica that has not won any election).
    pub fn never() -> Self {
        Self(Some(Shared::new()))
    }
}

impl std::fmt::Debug for LeaderGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LeaderGate({})", self.is_leader())
    }
}

impl std::fmt::Debug for LeaderHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaderHandle")
            .field("is_leader", &self.is_leader())
            .field("state", &*self.shared.state.borrow())
            .finish_non_exhaustive()
    }
}

impl Drop for LeaderHandle {
    fn drop(&mut self) {
        self.halt();
    }
}
