//! The informer cache: watch -> trimmed store -> indexes -> coalesced subscriptions.

pub mod informer;
pub mod objects;
mod snapshots;
pub mod state;

pub use informer::{InformerConfig, managed_pod_selector};
pub use objects::{ObjKey, PodInfo};
pub use state::{Cache, CacheStats, Kind, Subscription, Target};
