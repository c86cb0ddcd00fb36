//! Standalone mode: the embedded Kubernetes API server and the local node agent.

pub mod apiserver;
pub mod credentials;
pub mod kubelet_sim;
pub mod node_agent;
pub mod run;
