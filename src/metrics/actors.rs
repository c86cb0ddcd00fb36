//! Actor metrics: live actors by kind, mailbox depth (sent minus handled), messages handled
//! and handler latency.
//!
//! actix does not expose a mailbox's length, so messages the Supervisor routes are wrapped
//! in [`Counted`]: the depth goes up when the send is accepted and down when the message
//! is dropped, handled or not (an actor that stops discards its mailbox), so the gauge is
//! exact for routed messages.

use std::time::Instant;

use actix::prelude::*;

/// An actor kind with a metrics label.
pub trait Labelled {
    const KIND: &'static str;
}

/// Holds one unit of a kind's mailbox depth while it lives.
pub struct Queued(&'static str);

impl Queued {
    fn new(kind: &'static str) -> Self {
        super::get()
            .actor_mailbox_depth
            .with_label_values(&[kind])
            .inc();
        Self(kind)
    }
}

impl Drop for Queued {
    fn drop(&mut self) {
        super::get()
            .actor_mailbox_depth
            .with_label_values(&[self.0])
            .dec();
    }
}

/// A message counted in the mailbox depth of its receiver's kind until it is handled.
pub struct Counted<M>(pub M, pub Queued);

impl<M: Message> Message for Counted<M> {
    type Result = M::Result;
}

/// Sends `msg` without waiting. A full mailbox refuses it; `false` then.
pub fn try_send<A, M>(addr: &Addr<A>, msg: M) -> bool
where
    A: Actor<Context = Context<A>> + Labelled + Handler<Counted<M>>,
    M: Message + Send + 'static,
    M::Result: Send,
{
    addr.try_send(Counted(msg, Queued::new(A::KIND))).is_ok()
}

/// Sends `msg` and waits for the answer.
pub async fn send<A, M>(addr: Addr<A>, msg: M) -> Result<M::Result, MailboxError>
where
    A: Actor<Context = Context<A>> + Labelled + Handler<Counted<M>>,
    M: Message + Send + 'static,
    M::Result: Send,
{
    addr.send(Counted(msg, Queued::new(A::KIND))).await
}

/// Lives while a [`Counted`] handler runs: counts the message and times the handler.
pub struct Handling {
    kind: &'static str,
    message: &'static str,
    started: Instant,
}

impl Handling {
    pub fn start(kind: &'static str, message: &'static str) -> Self {
        super::get()
            .actor_messages
            .with_label_values(&[kind, message])
            .inc();
        Self {
            kind,
            message,
            started: Instant::now(),
        }
    }
}

impl Drop for Handling {
    fn drop(&mut self) {
        super::get()
            .actor_handler_seconds
            .with_label_values(&[self.kind, self.message])
            .observe(self.started.elapsed().as_secs_f64());
    }
}

/// The Supervisor's actor maps changed size.
pub fn live(pools: usize, sandboxes: usize, snapshots: usize) {
    let g = &super::get().actors_live;
    g.with_label_values(&["pool"]).set(pools as i64);
    g.with_label_values(&["batchsandbox"]).set(sandboxes as i64);
    g.with_label_values(&["sandboxsnapshot"])
        .set(snapshots as i64);
}

/// Implements `Labelled` for an actor and `Handler<Counted<M>>` for each message by handing
/// the inner message to its plain handler.
#[macro_export]
macro_rules! counted_actor {
    ($actor:ty, $kind:literal, $($msg:ident => $label:literal),+ $(,)?) => {
        impl $crate::metrics::actors::Labelled for $actor {
            const KIND: &'static str = $kind;
        }
        $(
            impl ::actix::Handler<$crate::metrics::actors::Counted<$msg>> for $actor {
                type Result = <$actor as ::actix::Handler<$msg>>::Result;

                fn handle(
                    &mut self,
                    msg: $crate::metrics::actors::Counted<$msg>,
                    ctx: &mut Self::Context,
                ) -> Self::Result {
                    let $crate::metrics::actors::Counted(inner, queued) = msg;
                    drop(queued);
                    let _handling = $crate::metrics::actors::Handling::start($kind, $label);
                    <$actor as ::actix::Handler<$msg>>::handle(self, inner, ctx)
                }
            }
        )+
    };
}

mod registrations {
    use crate::actors::pool_actor::{PoolActor, Reserve, Wake};
    use crate::actors::sandbox_actor::SandboxActor;
    use crate::actors::snapshot_actor::SnapshotActor;

    crate::counted_actor!(PoolActor, "pool", Wake => "wake", Reserve => "reserve");
    crate::counted_actor!(SandboxActor, "batchsandbox", Wake => "wake");
    crate::counted_actor!(SnapshotActor, "sandboxsnapshot", Wake => "wake");
}
