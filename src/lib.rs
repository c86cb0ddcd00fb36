//! OpenSandbox controller: CRDs, informer cache, actors, SDK API and standalone runtime.

pub mod actors;
pub mod allocator;
pub mod cache;
pub mod crd;
pub mod fuzzing;
pub mod http;
pub mod kubeclient;
pub mod manager;
pub mod metrics;
pub mod standalone;
