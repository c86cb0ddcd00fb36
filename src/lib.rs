//! OpenSandbox controller: CRDs, informer cache, actors, SDK API and standalone runtime.

pub mod actors;
pub mod crd;
pub mod standalone;
