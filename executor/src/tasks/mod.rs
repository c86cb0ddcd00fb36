//! The task-executor API (port 5758) with a process runtime.

pub mod api;
pub mod manager;
pub mod model;
pub mod runtime;
pub mod state;
