//! Runs the actors while this replica leads: waits for the cache's first complete lists,
//! starts the Supervisor, routes every coalesced cache change to it, and stops all actors
//! when leadership is lost.

use std::sync::Arc;

use actix::prelude::*;
use tokio::sync::watch;

use super::context::Controller;
use super::leader::LeaderState;
use super::supervisor::{Route, StopAll, Supervisor};
use crate::cache::Target;

async fn wait_for_leadership(rx: &mut Option<watch::Receiver<LeaderState>>) -> bool {
    match rx {
        None => true,
        Some(rx) => rx.wait_for(|s| s.is_leader).await.is_ok(),
    }
}

async fn leadership_lost(rx: &mut Option<watch::Receiver<LeaderState>>) {
    match rx {
        None => std::future::pending::<()>().await,
        Some(rx) => {
            let _ = rx.wait_for(|s| !s.is_leader).await;
        }
    }
}

/// Runs until `shutdown` resolves. Must be spawned on the actix System arbiter
/// (`actix::spawn`), because it starts actors.
pub async fn run_actors(
    ctx: Arc<Controller>,
    mut leadership: Option<watch::Receiver<LeaderState>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let sub = ctx.cache.subscribe();
    tokio::select! {
        _ = ctx.cache.wait_synced() => {}
        _ = shutdown.wait_for(|s| *s) => return,
    }
    tracing::info!("cache synced");
    loop {
        tokio::select! {
            ok = wait_for_leadership(&mut leadership) => if !ok { return },
            _ = shutdown.wait_for(|s| *s) => return,
        }
        tracing::info!("leading: starting actors");
        let sup = Supervisor::new(ctx.clone()).start();
        ctx.directory.publish(Some(sup.clone()));
        let key = |m: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
            (
                m.namespace.clone().unwrap_or_default(),
                m.name.clone().unwrap_or_default(),
            )
        };
        let all: Vec<Target> = ctx
            .cache
            .pools()
            .iter()
            .map(|p| Target::Pool(key(&p.metadata)))
            .chain(
                ctx.cache
                    .sandboxes()
                    .iter()
                    .map(|b| Target::Sandbox(key(&b.metadata))),
            )
            .chain(
                ctx.cache
                    .snapshots(None)
                    .iter()
                    .map(|s| Target::Snapshot(key(&s.metadata))),
            )
            .collect();
        let _ = sup.send(Route(all)).await;
        let stop = loop {
            tokio::select! {
                batch = sub.next_batch() => {
                    if sup.send(Route(batch)).await.is_err() {
                        break false;
                    }
                }
                _ = leadership_lost(&mut leadership) => break false,
                _ = shutdown.wait_for(|s| *s) => break true,
            }
        };
        ctx.directory.publish(None);
        let _ = sup.send(StopAll).await;
        tracing::info!("actors stopped");
        if stop {
            return;
        }
    }
}
