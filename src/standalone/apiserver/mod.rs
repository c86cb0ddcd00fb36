//! An in-memory server that speaks the Kubernetes REST API: the test bed of every
//! controller test and the store of standalone mode.
//!
//! [`ApiServer::new`] starts one instance (inside a tokio runtime). Clients reach it
//! in-process through [`ApiServer::client`] or over loopback HTTP after
//! [`ApiServer::serve`], which also yields a kubeconfig for kubectl and helm.

pub mod auth;
pub mod discovery;
pub mod exec;
pub mod faults;
pub mod gc;
pub mod handlers;
pub mod objects;
pub mod openapi;
pub mod patch;
pub mod persist;
pub mod protobuf;
pub mod registry;
pub mod reqlog;
pub mod request;
pub mod server;
pub mod status;
pub mod store;
pub mod table;
pub mod transport;
pub mod validation;
pub mod watch;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use http::Request;
use serde_json::Value;
use tokio::task::JoinHandle;

pub use auth::BearerToken;
pub use exec::{ExecError, ExecIo, ExecRequest, PodExecutor};
pub use faults::{FaultCounts, FaultRule, Faults, WatchDisruption, disrupt_watches};
pub use reqlog::{LoggedRequest, RequestLog};
pub use server::{ApiServerConfig, Body, Core};

/// A running embedded API server. Cloning shares the same server.
#[derive(Clone)]
pub struct ApiServer {
    core: Arc<Core>,
}

/// The loopback HTTP endpoint of a server.
pub struct HttpEndpoint {
    pub addr: SocketAddr,
    pub task: JoinHandle<()>,
}

impl Default for ApiServer {
    fn default() -> Self {
        Self::new()
    }
}

impl ApiServer {
    /// Starts a server with default settings. Must run inside a tokio runtime.
    pub fn new() -> Self {
        Self::with_config(ApiServerConfig::default())
    }

    pub fn with_config(config: ApiServerConfig) -> Self {
        let interval = config.bookmark_interval;
        let core = Core::new(config);
        gc::start(&core);
        let weak = Arc::downgrade(&core);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.tick().await;
            loop {
                tick.tick().await;
                match weak.upgrade() {
                    Some(core) => core.store.bookmark_all(),
                    None => break,
                }
            }
        });
        Self { core }
    }

    /// Shared internals (store, registry, faults, request log).
    pub fn core(&self) -> &Arc<Core> {
        &self.core
    }

    /// A `kube::Client` talking to this server in-process, default namespace `default`.
    pub fn client(&self) -> kube::Client {
        kube::Client::new(
            transport::InProcess {
                core: self.core.clone(),
                user_agent: None,
            },
            "default",
        )
    }

    /// Like [`ApiServer::client`], with a `User-Agent` the request log records.
    pub fn client_with_user_agent(&self, user_agent: &str) -> kube::Client {
        kube::Client::new(
            transport::InProcess {
                core: self.core.clone(),
                user_agent: http::HeaderValue::from_str(user_agent).ok(),
            },
            "default",
        )
    }

    /// A client like the manager's against a cluster: metered and rate-limited by `limits`.
    pub fn instrumented_client(&self, limits: crate::kubeclient::ClientLimits) -> kube::Client {
        let service = transport::InProcess {
            core: self.core.clone(),
            user_agent: None,
        };
        crate::kubeclient::wrap(service, limits, "default")
    }

    /// Serves loopback HTTP on `addr` (port 0 picks a free port) to anyone: for test
    /// servers. Standalone mode uses [`ApiServer::serve_authenticated`].
    pub async fn serve(&self, addr: SocketAddr) -> std::io::Result<HttpEndpoint> {
        self.serve_with(addr, None).await
    }

    /// Serves HTTP on `addr`, answering requests without `token` with a 401 Status.
    pub async fn serve_authenticated(
        &self,
        addr: SocketAddr,
        token: BearerToken,
    ) -> std::io::Result<HttpEndpoint> {
        self.serve_with(addr, Some(token)).await
    }

    async fn serve_with(
        &self,
        addr: SocketAddr,
        token: Option<BearerToken>,
    ) -> std::io::Result<HttpEndpoint> {
        let (listener, addr) = transport::bind(addr).await?;
        *self.core.address.lock() = Some(addr.to_string());
        let task = transport::serve_http(self.core.clone(), listener, token);
        Ok(HttpEndpoint { addr, task })
    }

    /// Writes a kubeconfig for an unauthenticated server at `addr` to `path`.
    pub fn write_kubeconfig(path: &Path, addr: SocketAddr) -> std::io::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        write_private(
            path,
            transport::kubeconfig(addr, "", "opensandbox-local").as_bytes(),
        )
    }

    /// Writes a kubeconfig for a server at `addr` served with `token`, to `path`, readable by
    /// its owner only: the token both as the user's bearer token and in the server URL's path.
    pub fn write_kubeconfig_with_token(
        path: &Path,
        addr: SocketAddr,
        token: &BearerToken,
    ) -> std::io::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let config = transport::kubeconfig(addr, &token.path_prefix(), token.as_str());
        write_private(path, config.as_bytes())
    }

    /// Serves one request directly (benchmarks and tests of the raw protocol).
    pub async fn request(&self, req: Request<Bytes>) -> http::Response<Body> {
        self.core.handle(req).await
    }

    /// Hands `pods/exec` to whatever runs the pods (None: exec answers 503).
    pub fn set_pod_executor(&self, executor: Option<Arc<dyn PodExecutor>>) {
        *self.core.executor.write() = executor;
    }

    pub fn faults(&self) -> &Faults {
        &self.core.faults
    }

    pub fn requests(&self) -> &RequestLog {
        &self.core.log
    }

    /// Ends every open watch stream (clients resume from their last resourceVersion).
    pub fn drop_watches(&self) {
        self.core.store.drop_watches();
    }

    /// Forgets the event history: resuming watches get `410 Expired` and relist.
    pub fn compact(&self) {
        self.core.store.compact();
    }

    /// Creates (or keeps) CRDs through the normal write path.
    pub async fn install_crds(&self, crds: &[Value]) -> Result<(), status::ApiError> {
        for crd in crds {
            let body = serde_json::to_vec(crd).unwrap_or_default();
            let req = Request::post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions")
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(Bytes::from(body))
                .map_err(|e| status::ApiError::internal(e.to_string()))?;
            let resp = self.core.handle(req).await;
            let code = resp.status().as_u16();
            if code != 201 && code != 409 {
                return Err(status::ApiError::internal(format!(
                    "installing CRD {} failed with {code}",
                    crd["metadata"]["name"]
                )));
            }
        }
        Ok(())
    }
}

/// Writes `contents` to `path` with mode 0600 (also when the file already existed).
pub fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    f.write_all(contents)
}
