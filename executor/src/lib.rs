//! opensandbox-executor: the in-sandbox agent. It serves the execd-compatible API, the
//! task API, and can act as the container's init process.

pub mod envfile;
pub mod error;
pub mod execd;
pub mod fuzzing;
pub mod paths;
pub mod process;
pub mod range;
pub mod server;
pub mod shutdown;
pub mod stream;
pub mod supervisor;
pub mod tasks;
pub mod users;
