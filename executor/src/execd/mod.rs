//! The execd-compatible API (port 44772).

pub mod commands;
pub mod dirs;
pub mod fileinfo;
pub mod files;
pub mod metrics;
pub mod proxy;
pub mod pty;
pub mod query;
pub mod routes;
pub mod session;
pub mod state;
pub mod transfer;
