//! The manager: watch cache, leader election, actors and the HTTP servers, in one process.
//! `opensandbox manager` runs it against a cluster; standalone mode runs it in-process
//! against the embedded API server.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::actors::leader::{
    LeaderConfig, LeaderConfigError, LeaderElector, LeaderGate, LeaderHandle,
};
use crate::actors::{ActorConfig, Controller, run_actors};
use crate::cache::{Cache, InformerConfig};
use actix_web::web;

use crate::http::lifecycle::forward::Leadership;
use crate::http::lifecycle::{LifecycleState, ServerConfig, Wiring, lifecycle_server};
use crate::http::probes;

/// Leader election settings.
#[derive(Clone, Debug)]
pub struct LeaderOptions {
    pub lease_name: String,
    pub namespace: String,
    pub identity: String,
    pub lease_duration: Duration,
    pub renew_deadline: Duration,
    pub retry_period: Duration,
    /// This replica's SDK API base URL (`http://<pod IP>:<port>`), published on the Lease
    /// while it leads; followers relay SDK calls there.
    pub advertise_address: Option<String>,
}

/// Everything the manager needs besides its client.
#[derive(Clone, Debug, Default)]
pub struct ManagerOptions {
    /// Watch one namespace, or all.
    pub namespace: Option<String>,
    /// Leader election; `None` runs the actors unconditionally (single replica).
    pub leader: Option<LeaderOptions>,
    pub identity: String,
    pub health_addr: Option<SocketAddr>,
    pub metrics_addr: Option<SocketAddr>,
    /// Serve metrics over TLS with this certificate and key.
    pub metrics_tls: Option<crate::http::metrics_tls::MetricsTls>,
    pub actors: ActorConfig,
    pub relist_interval: Option<Duration>,
    /// The SDK lifecycle API: where it listens and how it is configured.
    pub api: Option<(SocketAddr, ServerConfig)>,
    /// The fence layer of the manager's client, armed with the leader gate on start.
    pub write_fence: Option<crate::actors::leader::WriteFence>,
}

/// Problems starting the manager.
#[derive(Debug, thiserror::Error)]
pub enum ManagerError {
    #[error("invalid leader election settings: {0}")]
    Leader(#[from] LeaderConfigError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    MetricsTls(#[from] crate::http::metrics_tls::MetricsTlsError),
}

/// A running manager.
pub struct Manager {
    pub cache: Arc<Cache>,
    shutdown: watch::Sender<bool>,
    informers: Vec<JoinHandle<()>>,
    leader: Option<LeaderHandle>,
    servers: Vec<actix_web::dev::ServerHandle>,
}

impl Manager {
    /// Starts the manager. Must run on the actix System arbiter (it starts actors).
    pub async fn start(client: kube::Client, opts: &ManagerOptions) -> Result<Self, ManagerError> {
        let cache = Cache::new();
        let mut servers = Vec::new();
        if let Some(addr) = opts.health_addr {
            let srv = probes::probe_server(addr, cache.clone())
                .map_err(|source| ManagerError::Listen { addr, source })?;
            servers.push(srv.handle());
            actix_rt::spawn(srv);
        }
        if let Some(addr) = opts.metrics_addr {
            let tls = opts
                .metrics_tls
                .as_ref()
                .map(crate::http::metrics_tls::server_config)
                .transpose()?;
            let srv = probes::metrics_server(addr, cache.clone(), tls)
                .map_err(|source| ManagerError::Listen { addr, source })?;
            servers.push(srv.handle());
            actix_rt::spawn(srv);
        }
        let mut informer_cfg = InformerConfig {
            namespace: opts.namespace.clone(),
            ..InformerConfig::default()
        };
        if let Some(r) = opts.relist_interval {
            informer_cfg.relist_interval = r;
        }
        let informers = crate::cache::informer::start(client.clone(), cache.clone(), &informer_cfg);
        let leader = match &opts.leader {
            Some(l) => Some(LeaderElector::spawn(
                client.clone(),
                LeaderConfig {
                    lease_name: l.lease_name.clone(),
                    namespace: l.namespace.clone(),
                    identity: l.identity.clone(),
                    lease_duration: l.lease_duration,
                    renew_deadline: l.renew_deadline,
                    retry_period: l.retry_period,
                    advertise_address: l.advertise_address.clone(),
                },
            )?),
            None => None,
        };
        let gate = leader
            .as_ref()
            .map(|h| h.gate())
            .unwrap_or_else(LeaderGate::always);
        if let Some((fence, h)) = opts.write_fence.as_ref().zip(leader.as_ref()) {
            fence.arm(h.gate());
        }
        if let Some(h) = &leader {
            let mut rx = h.subscribe();
            tokio::spawn(async move {
                loop {
                    crate::metrics::set_leader(rx.borrow().is_leader);
                    if rx.changed().await.is_err() {
                        break;
                    }
                }
            });
        } else {
            crate::metrics::set_leader(true);
        }
        let ctx = Controller::new(
            client.clone(),
            cache.clone(),
            gate,
            &opts.identity,
            opts.actors.clone(),
        );
        if let Some((addr, config)) = &opts.api {
            let leadership = leader
                .as_ref()
                .zip(opts.leader.as_ref())
                .map(|(h, l)| Leadership {
                    gate: h.gate(),
                    state: h.subscribe(),
                    identity: l.identity.clone(),
                    // A failover: the old lease runs out, then a follower needs a round to win.
                    wait: l.lease_duration + l.retry_period * 2,
                });
            let wiring = Wiring {
                leadership,
                actors: Some(ctx.directory.clone()),
                snapshot_strategy: opts.actors.snapshot.strategy,
                restore_pull_secret: opts.actors.snapshot.resume_pull_secret.clone(),
            };
            let state = web::Data::new(LifecycleState::wired(
                client.clone(),
                cache.clone(),
                config.clone(),
                wiring,
            ));
            let srv = lifecycle_server(*addr, state, 2).map_err(|source| ManagerError::Listen {
                addr: *addr,
                source,
            })?;
            servers.push(srv.handle());
            actix_rt::spawn(srv);
        }
        let (tx, rx) = watch::channel(false);
        actix_rt::spawn(run_actors(ctx, leader.as_ref().map(|h| h.subscribe()), rx));
        Ok(Self {
            cache,
            shutdown: tx,
            informers,
            leader,
            servers,
        })
    }

    /// Graceful stop: actors drain, then the lease is handed back so a follower takes over
    /// at once.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        // Give in-flight turns a moment to finish their writes.
        tokio::time::sleep(Duration::from_millis(200)).await;
        if let Some(l) = self.leader.take() {
            l.release().await;
        }
        for t in &self.informers {
            t.abort();
        }
        for s in self.servers.drain(..) {
            s.stop(true).await;
        }
    }
}
