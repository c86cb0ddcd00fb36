//! The Supervisor starts and stops one actor per Pool and per BatchSandbox as the cache
//! reports them, and routes
//! coalesced cache changes to the actors they concern.

use std::collections::HashMap;
use std::sync::Arc;

use actix::prelude::*;

use super::context::Controller;
use super::pool_actor::{PoolActor, Stop, Wake};
use super::sandbox_actor::SandboxActor;
use crate::cache::{ObjKey, Target};

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
}

impl Supervisor {
    pub fn new(ctx: Arc<Controller>) -> Self {
        Self {
            ctx,
            pools: HashMap::new(),
            sandboxes: HashMap::new(),
        }
    }

    fn route_sandbox(&mut self, key: ObjKey) {
        if self.ctx.cache.sandbox(&key).is_none() {
            if let Some(addr) = self.sandboxes.remove(&key) {
                addr.do_send(Stop);
            }
            return;
        }
        let ctx = self.ctx.clone();
        let addr = self
            .sandboxes
            .entry(key.clone())
            .or_insert_with(|| SandboxActor::new(key, ctx).start());
        let _ = addr.try_send(Wake);
    }

    fn route_pool(&mut self, key: ObjKey) {
        if self.ctx.cache.pool(&key).is_none() {
            if let Some(addr) = self.pools.remove(&key) {
                addr.do_send(Stop);
            }
            return;
        }
        let ctx = self.ctx.clone();
        let addr = self
            .pools
            .entry(key.clone())
            .or_insert_with(|| PoolActor::new(key, ctx).start());
        // A full mailbox already holds a Wake, and a Wake reads the latest cache state.
        let _ = addr.try_send(Wake);
    }
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
            }
        }
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
        ctx.stop();
    }
}

impl Handler<CountPools> for Supervisor {
    type Result = usize;

    fn handle(&mut self, _: CountPools, _: &mut Context<Self>) -> usize {
        self.pools.len()
    }
}
