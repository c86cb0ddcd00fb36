//! The Supervisor starts and stops one actor per Pool, BatchSandbox and SandboxSnapshot as the cache
//! reports them, and routes
//! coalesced cache changes to the actors they concern.

use std::collections::HashMap;
use std::sync::Arc;

use actix::prelude::*;

use super::context::Controller;
use super::pool_actor::{PoolActor, Reserve, ReserveError, Stop, Wake};
use super::sandbox_actor::SandboxActor;
use super::snapshot_actor::SnapshotActor;
use crate::cache::{ObjKey, Target};
use crate::crd::BatchSandbox;

/// Cache targets that changed.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Route(pub Vec<Target>);

/// Stops every actor (leadership lost, shutdown).
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopAll;

/// Number of running pool actors (tests and metrics).
#[derive(Message)]
#[rtype(result = "usize")]
pub struct CountPools;

pub struct Supervisor {
    ctx: Arc<Controller>,
    pools: HashMap<ObjKey, Addr<PoolActor>>,
    sandboxes: HashMap<ObjKey, Addr<SandboxActor>>,
    snapshots: HashMap<ObjKey, Addr<SnapshotActor>>,
}

impl Supervisor {
    pub fn new(ctx: Arc<Controller>) -> Self {
        Self {
            ctx,
            pools: HashMap::new(),
            sandboxes: HashMap::new(),
            snapshots: HashMap::new(),
        }
    }

    fn route_sandbox(&mut self, key: ObjKey) {
        let exists = self.ctx.cache.sandbox(&key).is_some();
        let ctx = self.ctx.clone();
        route(&mut self.sandboxes, key, exists, |k| {
            SandboxActor::new(k, ctx).start()
        });
    }

    fn route_snapshot(&mut self, key: ObjKey) {
        let exists = self.ctx.cache.snapshot(&key).is_some();
        let ctx = self.ctx.clone();
        route(&mut self.snapshots, key, exists, |k| {
            SnapshotActor::new(k, ctx).start()
        });
    }

    fn route_pool(&mut self, key: ObjKey) {
        let exists = self.ctx.cache.pool(&key).is_some();
        let ctx = self.ctx.clone();
        route(&mut self.pools, key, exists, |k| {
            PoolActor::new(k, ctx).start()
        });
    }
}

/// Wakes the actor of `key` (starting it first), or stops it when its object is gone.
fn route<A>(
    actors: &mut HashMap<ObjKey, Addr<A>>,
    key: ObjKey,
    exists: bool,
    start: impl FnOnce(ObjKey) -> Addr<A>,
) where
    A: Actor<Context = Context<A>> + Handler<Wake> + Handler<Stop>,
    A: crate::metrics::actors::Labelled + Handler<crate::metrics::actors::Counted<Wake>>,
{
    if !exists {
        if let Some(addr) = actors.remove(&key) {
            addr.do_send(Stop);
        }
        return;
    }
    let addr = actors.entry(key.clone()).or_insert_with(|| start(key));
    // A full mailbox already holds a Wake, and a Wake reads the latest cache state.
    crate::metrics::actors::try_send(addr, Wake);
}

impl Actor for Supervisor {
    type Context = Context<Self>;
}

impl Handler<Route> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: Route, _: &mut Context<Self>) {
        for target in msg.0 {
            match target {
                Target::Pool(key) => self.route_pool(key),
                Target::Sandbox(key) => self.route_sandbox(key),
                Target::Snapshot(key) => self.route_snapshot(key),
            }
        }
        crate::metrics::actors::live(self.pools.len(), self.sandboxes.len(), self.snapshots.len());
    }
}

impl Handler<StopAll> for Supervisor {
    type Result = ();

    fn handle(&mut self, _: StopAll, ctx: &mut Context<Self>) {
        for (_, addr) in self.pools.drain() {
            addr.do_send(Stop);
        }
        for (_, addr) in self.sandboxes.drain() {
            addr.do_send(Stop);
        }
        for (_, addr) in self.snapshots.drain() {
            addr.do_send(Stop);
        }
        crate::metrics::actors::live(0, 0, 0);
        ctx.stop();
    }
}

impl Handler<CountPools> for Supervisor {
    type Result = usize;

    fn handle(&mut self, _: CountPools, _: &mut Context<Self>) -> usize {
        self.pools.len()
    }
}

/// Hands a pooled create to the pool's actor (starting it if needed): it is the only
/// allocator of its pool.
impl Handler<Reserve> for Supervisor {
    type Result = ResponseFuture<Result<Option<BatchSandbox>, ReserveError>>;

    fn handle(&mut self, msg: Reserve, _: &mut Context<Self>) -> Self::Result {
        let namespace = msg.sandbox.metadata.namespace.clone().unwrap_or_default();
        let pool = msg.sandbox.spec.pool_ref.clone().unwrap_or_default();
        let key = (namespace, pool.clone());
        if self.ctx.cache.pool(&key).is_none() {
            return Box::pin(async move { Err(ReserveError::UnknownPool(pool)) });
        }
        self.route_pool(key.clone());
        let addr = self.pools.get(&key).cloned();
        Box::pin(async move {
            match addr {
                Some(addr) => crate::metrics::actors::send(addr, msg)
                    .await
                    .map_err(|_| ReserveError::ActorGone)?,
                None => Err(ReserveError::ActorGone),
            }
        })
    }
}
