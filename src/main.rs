use anyhow::Context;
use clap::{Parser, Subcommand};
use std::time::Duration;

use opensandbox::http::lifecycle::ServerConfig;
use opensandbox::kubeclient::ClientLimits;
use opensandbox::manager::{LeaderOptions, Manager, ManagerOptions};
use opensandbox::standalone::run::{StandaloneOptions, default_state_dir};

#[global_allocator]
static ALLOCATOR: opensandbox::allocator::Allocator = opensandbox::allocator::Allocator {};

#[derive(Parser)]
#[command(
    name = "opensandbox",
    version,
    about = "OpenSandbox controller, SDK API and standalone runtime"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the CRDs as YAML (or write one file per CRD into a directory).
    Crdgen {
        /// Write `<crd-name>.yaml` files into this directory instead of printing.
        #[arg(long)]
        out_dir: Option<std::path::PathBuf>,
    },
    /// Run the controller manager against a Kubernetes cluster (kubeconfig or in-cluster).
    Manager(Box<ManagerArgs>),
    /// Run the platform on this machine with an embedded Kubernetes API server.
    Standalone {
        /// State directory (kubeconfig, persisted objects).
        #[arg(long, env = "OPENSANDBOX_STATE_DIR")]
        state_dir: Option<std::path::PathBuf>,
        /// Address of the embedded Kubernetes API (port 0: any free loopback port).
        #[arg(long, default_value = "127.0.0.1:0")]
        kube_listen: std::net::SocketAddr,
        /// Address of the OpenSandbox SDK API.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
        /// API key the SDK must send (OPEN-SANDBOX-API-KEY); without one, a key is generated
        /// once and kept in `<state dir>/api-key`.
        #[arg(long, env = "OPENSANDBOX_SERVER_API_KEY")]
        api_key: Option<String>,
        /// Do not create the `default` Pool.
        #[arg(long)]
        no_default_pool: bool,
        /// Optional SDK API configuration (TOML, as for `opensandbox manager --config`).
        #[arg(long)]
        config: Option<std::path::PathBuf>,
        /// Serve Prometheus `/metrics` on this address (off by default).
        #[arg(long)]
        metrics_listen: Option<std::net::SocketAddr>,
    },
}

fn main() -> anyhow::Result<()> {
    opensandbox::allocator::tune();
    let cli = Cli::parse();
    match cli.command {
        Command::Crdgen { out_dir } => crdgen(out_dir),
        Command::Manager(args) => manager(*args),
        Command::Standalone {
            state_dir,
            kube_listen,
            listen,
            api_key,
            no_default_pool,
            config,
            metrics_listen,
        } => standalone(StandaloneOptions {
            config,
            metrics_listen,
            state_dir: state_dir.unwrap_or_else(default_state_dir),
            kube_listen,
            listen,
            api_key,
            default_pool: !no_default_pool,
        }),
    }
}

/// Where other replicas reach this one's SDK API: the explicit flag, else the pod IP with
/// the API port; `None` when the API is off.
fn advertised_api(
    flag: Option<&str>,
    pod_ip: Option<&str>,
    api: Option<std::net::SocketAddr>,
) -> Option<String> {
    let api = api?;
    if let Some(url) = flag.map(str::trim).filter(|f| !f.is_empty()) {
        return Some(url.trim_end_matches('/').to_string());
    }
    let ip: std::net::IpAddr = pod_ip?.trim().parse().ok()?;
    Some(format!(
        "http://{}",
        std::net::SocketAddr::new(ip, api.port())
    ))
}

fn init_tracing(level: &str, json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    if json {
        tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .init();
    } else {
        tracing_subscriber::fmt().with_env_filter(filter).init();
    }
}

/// Flags of `opensandbox manager` (each also read from the environment variable shown).
#[derive(clap::Args, Debug)]
struct ManagerArgs {
    /// Namespace to watch; empty watches all namespaces.
    #[arg(long, env = "WATCH_NAMESPACE", default_value = "")]
    namespace: String,
    /// Elect a leader on a coordination.k8s.io/v1 Lease; only the leader writes.
    #[arg(long, default_value_t = false, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    leader_elect: bool,
    #[arg(long, default_value = "opensandbox-controller-leader")]
    leader_election_id: String,
    /// Namespace of the Lease (defaults to the pod's namespace, else `default`).
    #[arg(long, env = "POD_NAMESPACE")]
    leader_election_namespace: Option<String>,
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
    lease_duration: Duration,
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    renew_deadline: Duration,
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    retry_period: Duration,
    /// Leader identity (defaults to the pod name, else the host name).
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// Client-side request rate limit; 0 disables it.
    #[arg(long, default_value_t = 0.0)]
    kube_client_qps: f64,
    #[arg(long, default_value_t = 0)]
    kube_client_burst: u32,
    /// Prometheus metrics address (`0` disables).
    #[arg(long, default_value = "0.0.0.0:8443")]
    metrics_bind_address: String,
    /// Serve metrics over HTTPS with the certificate in `--metrics-cert-path`.
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    metrics_secure: bool,
    /// Directory of the metrics serving certificate (a mounted `kubernetes.io/tls` Secret).
    #[arg(long, default_value = "/tmp/k8s-metrics-server/metrics-certs")]
    metrics_cert_path: std::path::PathBuf,
    /// Certificate file name in `--metrics-cert-path`.
    #[arg(long, default_value = "tls.crt")]
    metrics_cert_name: String,
    /// Key file name in `--metrics-cert-path`.
    #[arg(long, default_value = "tls.key")]
    metrics_cert_key: String,
    /// Health probe address (`/healthz`, `/readyz`).
    #[arg(long, default_value = "0.0.0.0:8081")]
    health_probe_bind_address: String,
    /// Address of the OpenSandbox SDK lifecycle API (`0` disables it).
    #[arg(long, default_value = "0.0.0.0:8080")]
    api_bind_address: String,
    /// SDK API base URL other replicas relay calls to while this one leads
    /// (default: `http://$POD_IP:<api port>` when POD_IP is set).
    #[arg(long, env = "API_ADVERTISE_ADDRESS")]
    api_advertise_address: Option<String>,
    /// This pod's IP (downward API), for the default advertise address.
    #[arg(long, env = "POD_IP", hide = true)]
    pod_ip: Option<String>,
    /// Lifecycle API configuration (TOML, compatible with the upstream server's keys).
    #[arg(long, env = "SANDBOX_CONFIG_PATH")]
    config: Option<std::path::PathBuf>,
    /// Image whose static `/opensandbox-executor` an init container copies into sandboxes.
    #[arg(long, default_value = concat!("opensandbox/executor:", env!("CARGO_PKG_VERSION")))]
    executor_image: String,
    /// Reference image for Pool task sidecars (defaults to the executor image).
    #[arg(long)]
    task_executor_image: Option<String>,
    #[command(flatten)]
    snapshot: SnapshotArgs,
    #[arg(long, default_value = "info")]
    log_level: String,
    #[arg(long, default_value = "json", value_parser = ["json", "text"])]
    log_format: String,
}

/// Pause/resume: SandboxSnapshot commit Jobs and the registry they push to.
#[derive(clap::Args, Debug)]
struct SnapshotArgs {
    #[arg(long, default_value = "")]
    snapshot_registry: String,
    #[arg(long, default_value = "")]
    snapshot_push_secret: String,
    #[arg(long, default_value = "")]
    resume_pull_secret: String,
    #[arg(long, default_value = "image-committer:dev")]
    image_committer_image: String,
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    commit_job_timeout: Duration,
    #[arg(long, default_value_t = false, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    snapshot_registry_insecure: bool,
    /// Host path of the containerd socket mounted into commit Jobs.
    #[arg(long, default_value = "/var/run/containerd/containerd.sock")]
    containerd_socket_path: String,
}

impl SnapshotArgs {
    fn config(&self) -> opensandbox::actors::snapshot_policy::SnapshotConfig {
        let non_empty = |s: &str| Some(s.to_string()).filter(|s| !s.is_empty());
        opensandbox::actors::snapshot_policy::SnapshotConfig {
            strategy: opensandbox::actors::snapshot_policy::SnapshotStrategy::Commit,
            registry: self.snapshot_registry.clone(),
            registry_insecure: self.snapshot_registry_insecure,
            push_secret: non_empty(&self.snapshot_push_secret),
            resume_pull_secret: non_empty(&self.resume_pull_secret),
            committer_image: self.image_committer_image.clone(),
            containerd_socket_path: self.containerd_socket_path.clone(),
            commit_job_timeout: self.commit_job_timeout,
        }
    }
}

fn parse_addr(flag: &str, value: &str) -> anyhow::Result<Option<std::net::SocketAddr>> {
    if value == "0" || value.is_empty() {
        return Ok(None);
    }
    let v = value
        .strip_prefix(':')
        .map(|p| format!("0.0.0.0:{p}"))
        .unwrap_or_else(|| value.to_string());
    v.parse()
        .map(Some)
        .with_context(|| format!("--{flag}: {value:?} is not an address (host:port, :port or 0)"))
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "opensandbox-manager".to_string())
}

fn manager(args: ManagerArgs) -> anyhow::Result<()> {
    init_tracing(&args.log_level, args.log_format == "json");
    if args.snapshot.snapshot_registry.is_empty() {
        tracing::warn!(
            "--snapshot-registry is not set: pausing a sandbox fails (RegistryNotConfigured)"
        );
    } else {
        tracing::info!(
            registry = %args.snapshot.snapshot_registry,
            committer = %args.snapshot.image_committer_image,
            timeout = ?args.snapshot.commit_job_timeout,
            "snapshot settings"
        );
    }
    tracing::info!(
        executor_image = %args.executor_image,
        task_executor_image = %args.task_executor_image.as_deref().unwrap_or(&args.executor_image),
        "sandbox images"
    );
    let identity = args.identity.clone().unwrap_or_else(host_name);
    let api_addr = parse_addr("api-bind-address", &args.api_bind_address)?;
    let advertise_address = advertised_api(
        args.api_advertise_address.as_deref(),
        args.pod_ip.as_deref(),
        api_addr,
    );
    if args.leader_elect && api_addr.is_some() && advertise_address.is_none() {
        tracing::warn!(
            "leader election is on but this replica advertises no SDK API address \
             (set POD_IP or --api-advertise-address): while it leads, other replicas \
             cannot relay SDK calls to it"
        );
    }
    let opts = ManagerOptions {
        namespace: Some(args.namespace.clone()).filter(|n| !n.is_empty()),
        leader: args.leader_elect.then(|| LeaderOptions {
            lease_name: args.leader_election_id.clone(),
            namespace: args
                .leader_election_namespace
                .clone()
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| "default".to_string()),
            identity: identity.clone(),
            lease_duration: args.lease_duration,
            renew_deadline: args.renew_deadline,
            retry_period: args.retry_period,
            advertise_address: advertise_address.clone(),
        }),
        identity,
        health_addr: parse_addr("health-probe-bind-address", &args.health_probe_bind_address)?,
        api: match api_addr {
            None => None,
            Some(addr) => {
                let mut config = ServerConfig::load(args.config.as_deref())
                    .with_context(|| "loading the lifecycle API configuration")?;
                for w in &config.warnings {
                    tracing::warn!("{w}");
                }
                if config.executor_image.is_empty()
                    || config.executor_image == ServerConfig::default().executor_image
                {
                    config.executor_image = args.executor_image.clone();
                }
                Some((addr, config))
            }
        },
        metrics_addr: parse_addr("metrics-bind-address", &args.metrics_bind_address)?,
        metrics_tls: args
            .metrics_secure
            .then(|| opensandbox::http::metrics_tls::MetricsTls {
                cert: args.metrics_cert_path.join(&args.metrics_cert_name),
                key: args.metrics_cert_path.join(&args.metrics_cert_key),
            }),
        actors: opensandbox::actors::ActorConfig {
            snapshot: args.snapshot.config(),
            ..Default::default()
        },
        write_fence: Some(opensandbox::actors::leader::WriteFence::default()),
        ..ManagerOptions::default()
    };
    let limits = ClientLimits {
        qps: args.kube_client_qps,
        burst: args.kube_client_burst,
    };
    let user_agent = format!("opensandbox-manager/{}", opts.identity);
    let fence = opts.write_fence.clone().unwrap_or_default();
    actor_system().block_on(async move {
        let client = opensandbox::kubeclient::connect(limits, &user_agent, &fence)
            .await
            .context("connecting to the Kubernetes API (kubeconfig or in-cluster)")?;
        let running = Manager::start(client, &opts).await?;
        tracing::info!("manager started");
        shutdown_signal().await;
        tracing::info!("shutting down: draining actors and releasing the lease");
        running.shutdown().await;
        Ok(())
    })
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
    }
}

/// The actix System on a multi-thread tokio runtime: actors on the System arbiter,
/// watchers and servers on the worker pool.
fn actor_system() -> actix::SystemRunner {
    actix::System::with_tokio_rt(|| {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("cannot build the tokio runtime: {e}"))
    })
}

fn standalone(opts: StandaloneOptions) -> anyhow::Result<()> {
    init_tracing("info,actix_server=warn", false);
    actor_system().block_on(async move {
        let running = opensandbox::standalone::run::launch(&opts).await?;
        print!("{}", opensandbox::standalone::run::banner(&running, &opts));
        actix_rt::spawn(opensandbox::standalone::run::report_warmup(
            running.manager.cache.clone(),
        ));
        shutdown_signal().await;
        eprintln!("shutting down: stopping the manager and every sandbox");
        running.shutdown().await;
        Ok(())
    })
}

fn crdgen(out_dir: Option<std::path::PathBuf>) -> anyhow::Result<()> {
    let crds = opensandbox::crd::all_crds();
    match out_dir {
        Some(dir) => {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            for crd in &crds {
                let path = dir.join(opensandbox::crd::crd_file_name(crd));
                let yaml = opensandbox::crd::crd_yaml(crd)?;
                std::fs::write(&path, yaml)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
        }
        None => {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            for crd in &crds {
                write!(out, "---\n{}", opensandbox::crd::crd_yaml(crd)?)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::advertised_api;

    #[test]
    fn the_advertised_api_address_follows_the_flag_then_the_pod_ip() {
        let api = Some("0.0.0.0:8080".parse().unwrap());
        assert_eq!(
            advertised_api(Some("http://svc:9/"), Some("10.0.0.7"), api).as_deref(),
            Some("http://svc:9")
        );
        assert_eq!(
            advertised_api(None, Some("10.0.0.7"), api).as_deref(),
            Some("http://10.0.0.7:8080")
        );
        assert_eq!(
            advertised_api(None, Some("fd00::7"), api).as_deref(),
            Some("http://[fd00::7]:8080")
        );
        assert_eq!(advertised_api(None, Some("not-an-ip"), api), None);
        assert_eq!(advertised_api(None, None, api), None);
        assert_eq!(
            advertised_api(Some("http://x:1"), Some("10.0.0.7"), None),
            None
        );
    }
}
