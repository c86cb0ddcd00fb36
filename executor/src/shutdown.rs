//! Termination requests (SIGTERM, SIGINT) to the executor.
//!
//! The listeners must exist before any other runtime runs in the process (the HTTP server's
//! workers): tokio hands a signal to the listeners subscribed when whichever runtime drains its
//! self-pipe broadcasts it, so a signal broadcast by a worker before the listener subscribed is
//! dropped, and the executor never stopped (its pod hung in Terminating, one start in a few
//! hundred when the stop came right after the start).
//!
//! The signals are not blocked instead (a signalfd would need that): processes the executor
//! starts inherit the mask, and a sandbox whose commands ignore SIGTERM is not an option.

use std::io;

use nix::sys::signal::Signal;
use tokio::signal::unix::{SignalKind, signal};

pub struct Requests {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Requests {
    /// Subscribes; call it first thing in the runtime, before starting other threads.
    pub fn listen() -> io::Result<Self> {
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    /// Waits for the next termination request.
    pub async fn next(&mut self) -> Signal {
        tokio::select! {
            _ = self.term.recv() => Signal::SIGTERM,
            _ = self.int.recv() => Signal::SIGINT,
        }
    }
}
