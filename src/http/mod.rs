//! actix-web servers of the manager: health probes and Prometheus metrics (and, with the SDK
//! lifecycle API, the routes the OpenSandbox SDKs call).

pub mod lifecycle;
pub mod metrics_tls;
pub mod probes;
