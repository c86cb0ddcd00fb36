//! `opensandbox standalone`: the platform on one machine.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::apiserver::ApiServer;

/// Options of the standalone command.
#[derive(Clone, Debug)]
pub struct StandaloneOptions {
    /// Where the kubeconfig (and, later, persisted objects) live.
    pub state_dir: PathBuf,
    /// Address of the embedded Kubernetes API (port 0 picks a free one).
    pub kube_listen: SocketAddr,
}

/// Problems starting standalone mode.
#[derive(Debug, thiserror::Error)]
pub enum StandaloneError {
    #[error("cannot use state directory {path}: {source}")]
    StateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("installing the CRDs failed: {0}")]
    Crds(String),
}

/// The default state directory: `<data dir>/opensandbox` (for example
/// `~/.local/share/opensandbox`), else `./.opensandbox`.
pub fn default_state_dir() -> PathBuf {
    dirs::data_dir()
        .map(|d| d.join("opensandbox"))
        .unwrap_or_else(|| PathBuf::from(".opensandbox"))
}

/// A running standalone instance.
pub struct Standalone {
    pub api: ApiServer,
    pub kube_addr: SocketAddr,
    pub kubeconfig: PathBuf,
}

/// Starts the embedded API server with our CRDs and writes the kubeconfig.
pub async fn start(opts: &StandaloneOptions) -> Result<Standalone, StandaloneError> {
    std::fs::create_dir_all(&opts.state_dir).map_err(|source| StandaloneError::StateDir {
        path: opts.state_dir.clone(),
        source,
    })?;
    let api = ApiServer::new();
    let crds: Vec<Value> = crate::crd::all_crds()
        .into_iter()
        .filter_map(|c| serde_json::to_value(c).ok())
        .collect();
    api.install_crds(&crds)
        .await
        .map_err(|e| StandaloneError::Crds(e.to_string()))?;
    let endpoint = api
        .serve(opts.kube_listen)
        .await
        .map_err(|source| StandaloneError::Listen {
            addr: opts.kube_listen,
            source,
        })?;
    let kubeconfig = opts.state_dir.join("kubeconfig");
    ApiServer::write_kubeconfig(&kubeconfig, endpoint.addr).map_err(|source| {
        StandaloneError::StateDir {
            path: kubeconfig.clone(),
            source,
        }
    })?;
    Ok(Standalone {
        api,
        kube_addr: endpoint.addr,
        kubeconfig,
    })
}

/// The start-up banner.
pub fn banner(s: &Standalone, state_dir: &Path) -> String {
    format!(
        "OpenSandbox standalone\n  \
         Kubernetes API (embedded): http://{addr}\n  \
         kubeconfig:                {kc}\n  \
         state directory:           {dir}\n  \
         try:                       kubectl --kubeconfig {kc} get pools,batchsandboxes\n",
        addr = s.kube_addr,
        kc = s.kubeconfig.display(),
        dir = state_dir.display(),
    )
}
