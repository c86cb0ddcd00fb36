//! `opensandbox standalone`: the platform on one machine.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use kube::api::{Api, PostParams};
use serde_json::{Value, json};

use super::apiserver::persist::{PersistError, Persistence};
use super::apiserver::{ApiServer, BearerToken};
use super::credentials::{self, ApiKeySource};
use super::node_agent::{self, NodeAgentHandle, NodeAgentOptions};
use crate::cache::Cache;
use crate::crd::Pool;
use crate::http::lifecycle::ServerConfig;
use crate::http::lifecycle::config::ConfigError;
use crate::manager::{Manager, ManagerOptions};

/// Options of the standalone command.
#[derive(Clone, Debug)]
pub struct StandaloneOptions {
    /// Where the kubeconfig and the sandboxes' directories live.
    pub state_dir: PathBuf,
    /// Address of the embedded Kubernetes API (port 0 picks a free one).
    pub kube_listen: SocketAddr,
    /// Address of the SDK lifecycle API.
    pub listen: SocketAddr,
    /// API key of the SDK API; required to listen beyond loopback.
    pub api_key: Option<String>,
    /// Create the `default` Pool when it does not exist.
    pub default_pool: bool,
    /// Optional SDK API configuration file (the manager's TOML); flags win over it.
    pub config: Option<PathBuf>,
    /// Where to serve Prometheus `/metrics` (off when `None`).
    pub metrics_listen: Option<SocketAddr>,
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
    #[error(
        "refusing to serve the SDK API on {0} without --api-key: only loopback addresses may run without one"
    )]
    NeedsApiKey(SocketAddr),
    #[error(transparent)]
    Manager(#[from] crate::manager::ManagerError),
    #[error(transparent)]
    Persist(#[from] PersistError),
    #[error("the SDK API configuration is invalid: {0}")]
    Config(#[from] ConfigError),
    #[error(
        "the sandbox agent `opensandbox-executor` was not found next to this binary nor in $OPENSANDBOX_EXECUTOR_BIN; build it with `cargo build --release --workspace --bins`"
    )]
    NoExecutor,
    #[error("creating the default pool failed: {0}")]
    DefaultPool(kube::Error),
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
    /// Keeps the store in `<state dir>/store.json` across restarts.
    pub persistence: Persistence,
    /// Objects restored from the state directory at start.
    pub restored: usize,
}

/// Starts the embedded API server with our CRDs and writes the kubeconfig.
pub async fn start(opts: &StandaloneOptions) -> Result<Standalone, StandaloneError> {
    if !opts.listen.ip().is_loopback() && opts.api_key.as_deref().is_none_or(str::is_empty) {
        return Err(StandaloneError::NeedsApiKey(opts.listen));
    }
    std::fs::create_dir_all(&opts.state_dir).map_err(|source| StandaloneError::StateDir {
        path: opts.state_dir.clone(),
        source,
    })?;
    let api = ApiServer::new();
    let (persistence, restored) =
        Persistence::start(api.core().clone(), opts.state_dir.join("store.json"))?;
    let crds: Vec<Value> = crate::crd::all_crds()
        .into_iter()
        .filter_map(|c| serde_json::to_value(c).ok())
        .collect();
    api.install_crds(&crds)
        .await
        .map_err(|e| StandaloneError::Crds(e.to_string()))?;
    let token = BearerToken::generate();
    let endpoint = api
        .serve_authenticated(opts.kube_listen, token.clone())
        .await
        .map_err(|source| StandaloneError::Listen {
            addr: opts.kube_listen,
            source,
        })?;
    let kubeconfig = opts.state_dir.join("kubeconfig");
    ApiServer::write_kubeconfig_with_token(&kubeconfig, endpoint.addr, &token).map_err(
        |source| StandaloneError::StateDir {
            path: kubeconfig.clone(),
            source,
        },
    )?;
    Ok(Standalone {
        api,
        kube_addr: endpoint.addr,
        kubeconfig,
        persistence,
        restored,
    })
}

/// Everything standalone runs: the API server, the manager (with the SDK API) and the
/// local node agent.
pub struct Running {
    pub standalone: Standalone,
    pub manager: Manager,
    pub agent: NodeAgentHandle,
    /// Where the SDK API key came from.
    pub api_key_source: ApiKeySource,
}

impl Running {
    /// Stops the manager and the sandboxes, then writes the final state.
    pub async fn shutdown(self) {
        self.manager.shutdown().await;
        self.agent.shutdown().await;
        if let Err(e) = self.standalone.persistence.flush() {
            tracing::warn!(error = %e, "saving the state directory failed");
        }
    }
}

/// Starts everything and creates the default pool.
pub async fn launch(opts: &StandaloneOptions) -> Result<Running, StandaloneError> {
    if node_agent::find_executor(None).is_none_or(|p| !p.is_file()) {
        return Err(StandaloneError::NoExecutor);
    }
    let standalone = start(opts).await?;
    let base = match &opts.config {
        Some(path) => ServerConfig::load(Some(path))?,
        None => ServerConfig::default(),
    };
    for w in &base.warnings {
        tracing::warn!("{w}");
    }
    let given = opts
        .api_key
        .clone()
        .filter(|k| !k.is_empty())
        .or(base.api_key.clone());
    let (api_key, api_key_source) = credentials::sdk_api_key(given.as_deref(), &opts.state_dir)
        .map_err(|source| StandaloneError::StateDir {
            path: opts.state_dir.join(credentials::API_KEY_FILE),
            source,
        })?;
    let api_config = ServerConfig {
        host: opts.listen.ip().to_string(),
        port: opts.listen.port(),
        api_key: Some(api_key),
        namespace: "default".to_string(),
        ..base
    };
    let manager = Manager::start(
        standalone.api.instrumented_client(Default::default()),
        &ManagerOptions {
            identity: "standalone".to_string(),
            metrics_addr: opts.metrics_listen,
            api: Some((opts.listen, api_config)),
            // No registry here: a pause freezes the sandbox's processes in place.
            actors: crate::actors::ActorConfig {
                snapshot: crate::actors::snapshot_policy::SnapshotConfig {
                    strategy: crate::actors::snapshot_policy::SnapshotStrategy::Freeze,
                    ..Default::default()
                },
                ..Default::default()
            },
            ..ManagerOptions::default()
        },
    )
    .await?;
    let agent = node_agent::start(
        standalone.api.client(),
        NodeAgentOptions {
            state_dir: opts.state_dir.join("node"),
            ..NodeAgentOptions::default()
        },
    );
    standalone.api.set_pod_executor(Some(agent.executor()));
    if opts.default_pool {
        ensure_default_pool(&standalone.api.client())
            .await
            .map_err(StandaloneError::DefaultPool)?;
    }
    Ok(Running {
        standalone,
        manager,
        agent,
        api_key_source,
    })
}

/// Name of the pool standalone creates, so `extensions={"poolRef": "default"}` works at once.
pub const DEFAULT_POOL: &str = "default";

async fn ensure_default_pool(client: &kube::Client) -> Result<(), kube::Error> {
    let pools: Api<Pool> = Api::namespaced(client.clone(), "default");
    if pools.get_opt(DEFAULT_POOL).await?.is_some() {
        return Ok(());
    }
    let pool: Pool = serde_json::from_value(json!({
        "apiVersion": "sandbox.opensandbox.io/v1alpha1", "kind": "Pool",
        "metadata": {"name": DEFAULT_POOL, "namespace": "default"},
        "spec": {
            "template": {"spec": {"containers": [{
                "name": "sandbox", "image": "host",
                "command": ["tail", "-f", "/dev/null"]
            }]}},
            "capacitySpec": {"bufferMin": 2, "bufferMax": 4, "poolMin": 0, "poolMax": 32},
            "scaleStrategy": {"maxUnavailable": "100%"}
        }
    }))
    .map_err(kube::Error::SerdeError)?;
    match pools.create(&PostParams::default(), &pool).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}

/// Prints the default pool's warm-up until its buffer is Ready.
pub async fn report_warmup(cache: Arc<Cache>) {
    let key = ("default".to_string(), DEFAULT_POOL.to_string());
    let mut last = -1;
    for _ in 0..600 {
        if let Some(st) = cache.pool(&key).and_then(|p| p.status.clone()) {
            if st.available != last {
                last = st.available;
                eprintln!("default pool: {} warm sandboxes ready", st.available);
            }
            if st.available >= 2 {
                return;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}

/// The start-up banner.
pub fn banner(r: &Running, opts: &StandaloneOptions) -> String {
    let s = &r.standalone;
    format!(
        "OpenSandbox standalone\n  \
         SDK API:                   http://{listen}  (auth: {auth})\n  \
         Kubernetes API (embedded): http://{addr}  (auth: bearer token in the kubeconfig)\n  \
         kubeconfig:                {kc}\n  \
         state directory:           {dir} ({restored} objects restored)\n  \
         node agent:                {cg}\n  \
         default pool:              {pool} (SDK: extensions={{\"poolRef\": \"{pool}\"}})\n  \
         try:                       kubectl --kubeconfig {kc} get pools,batchsandboxes\n",
        listen = opts.listen,
        auth = match &r.api_key_source {
            ApiKeySource::Given => "OPEN-SANDBOX-API-KEY required".to_string(),
            ApiKeySource::File(p) => format!(
                "OPEN-SANDBOX-API-KEY required, generated: export OPEN_SANDBOX_API_KEY=$(cat {})",
                p.display()
            ),
        },
        addr = s.kube_addr,
        kc = s.kubeconfig.display(),
        dir = opts.state_dir.display(),
        restored = s.restored,
        cg = r.agent.cgroups().describe(),
        pool = DEFAULT_POOL,
    )
}
