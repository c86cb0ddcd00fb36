//! The OpenSandbox SDK lifecycle API (reference/lifecycle-api.md, sdk-1.1.1-addendum.md):
//! sandboxes as BatchSandbox objects, pools, endpoints, diagnostics and the server proxy.
//!
//! Mount with [`configure`]; every route exists at the root and under `/v1`. The API is one
//! catch-all scope (its middleware must see unmatched paths too, so auth runs before routing
//! and unknown paths get the JSON envelope): register any other routes of the same app
//! *before* calling [`configure`], or serve it alone with [`lifecycle_server`].

pub mod backend;
pub mod config;
pub mod deadline;
pub mod error;
pub mod forward;
pub mod middleware;
pub mod misc;
pub mod models;
pub mod openapi;
pub mod pause;
pub mod pools;
pub mod proxy;
pub mod sandboxes;
pub mod snapshots;
pub mod validate;
pub mod workload;

use std::sync::Arc;

use actix_web::{HttpResponse, web};

pub use config::{ConfigError, RuntimeType, ServerConfig};
pub use error::ApiError;

use crate::actors::ActorDirectory;
use crate::cache::Cache;

/// Shared state of the lifecycle routes.
pub struct LifecycleState {
    pub config: ServerConfig,
    pub backend: Arc<backend::Backend>,
    rate_limit: Option<middleware::RateLimit>,
    /// Set when replicas elect a leader: followers relay calls to it.
    leadership: Option<forward::Leadership>,
    /// How the controller takes snapshots: user snapshots need commits to a registry.
    pub snapshot_strategy: crate::actors::snapshot_policy::SnapshotStrategy,
    restore_pull_secret: Option<String>,
}

/// How the API is wired into a manager.
#[derive(Default)]
pub struct Wiring {
    /// Set when replicas elect a leader: followers relay calls to it.
    pub leadership: Option<forward::Leadership>,
    /// The running actors: pooled creates go to the pool's actor, which hands out idle
    /// pods in the create itself.
    pub actors: Option<ActorDirectory>,
    /// How the controller takes snapshots: user snapshots need commits to a registry.
    pub snapshot_strategy: crate::actors::snapshot_policy::SnapshotStrategy,
    /// The Secret restored sandboxes pull snapshot images with (`--resume-pull-secret`).
    pub restore_pull_secret: Option<String>,
}

impl LifecycleState {
    /// A single replica without actors: it serves and writes everything itself.
    /// Must be called inside a Tokio runtime (it spawns the cache-notification task).
    pub fn new(client: kube::Client, cache: Arc<Cache>, config: ServerConfig) -> Self {
        Self::wired(client, cache, config, Wiring::default())
    }

    /// The API inside a manager: only while `wiring.leadership` says we lead are calls
    /// served (and written) here; otherwise they are relayed to the leader.
    pub fn wired(
        client: kube::Client,
        cache: Arc<Cache>,
        config: ServerConfig,
        wiring: Wiring,
    ) -> Self {
        let writer = match &wiring.leadership {
            Some(l) => backend::Writer::elected(l.gate.clone(), l.identity.clone()),
            None => backend::Writer::always(),
        };
        let backend = Arc::new(backend::Backend::new(
            client,
            cache,
            config.namespace.clone(),
            writer,
            wiring.actors,
        ));
        Self {
            rate_limit: middleware::RateLimit::new(config.rate_limit_per_second),
            config,
            backend,
            leadership: wiring.leadership,
            snapshot_strategy: wiring.snapshot_strategy,
            restore_pull_secret: wiring.restore_pull_secret.filter(|s| !s.is_empty()),
        }
    }
}

async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::new(
        actix_web::http::StatusCode::NOT_FOUND,
        "GENERAL::NOT_FOUND",
        "No such route.",
    ))
}

async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok().json(openapi::document())
}

/// Routes mounted both at the root and under `/v1`.
fn shared_routes(cfg: &mut web::ServiceConfig) {
    use actix_web::web::{delete, get, patch, post, put, route};
    cfg.route("/sandboxes", post().to(sandboxes::create))
        .route("/sandboxes", get().to(sandboxes::list))
        .route("/sandboxes/{id}", get().to(sandboxes::get))
        .route("/sandboxes/{id}", delete().to(sandboxes::delete))
        .route(
            "/sandboxes/{id}/metadata",
            patch().to(sandboxes::patch_metadata),
        )
        .route(
            "/sandboxes/{id}/renew-expiration",
            post().to(sandboxes::renew),
        )
        .route(
            "/sandboxes/{id}/endpoints/{port}",
            get().to(sandboxes::endpoint),
        )
        .route("/sandboxes/{id}/pause", post().to(sandboxes::pause))
        .route("/sandboxes/{id}/resume", post().to(sandboxes::resume))
        .route("/sandboxes/{id}/snapshots", post().to(snapshots::create))
        .route("/snapshots", get().to(snapshots::list))
        .route("/snapshots/{sid}", get().to(snapshots::get))
        .route("/snapshots/{sid}", delete().to(snapshots::delete))
        .route("/sandboxes/{id}/diagnostics/logs", get().to(misc::logs))
        .route("/sandboxes/{id}/diagnostics/events", get().to(misc::events))
        .route("/pools", post().to(pools::create))
        .route("/pools", get().to(pools::list))
        .route("/pools/{name}", get().to(pools::get))
        .route("/pools/{name}", put().to(pools::update))
        .route("/pools/{name}", delete().to(pools::delete))
        .route("/sandboxes/{id}/proxy/{port}", route().to(proxy::proxy))
        .route(
            "/sandboxes/{id}/proxy/{port}/{tail:.*}",
            route().to(proxy::proxy),
        );
}

/// Serves the lifecycle API alone on `addr` (for callers that do not build their own app).
pub fn lifecycle_server(
    addr: std::net::SocketAddr,
    state: web::Data<LifecycleState>,
    workers: usize,
) -> std::io::Result<actix_web::dev::Server> {
    Ok(actix_web::HttpServer::new(move || {
        let state = state.clone();
        actix_web::App::new().configure(move |cfg| configure(cfg, state.clone()))
    })
    .workers(workers.max(1))
    .client_request_timeout(deadline::HEADER_READ_TIMEOUT)
    .disable_signals()
    .bind(addr)?
    .run())
}

/// Registers the lifecycle API (with its middleware, JSON limits and 422 mapping) on an app.
pub fn configure(cfg: &mut web::ServiceConfig, state: web::Data<LifecycleState>) {
    let limit = state.config.max_body_bytes;
    let json = web::JsonConfig::default()
        .limit(limit)
        .content_type_required(false)
        .error_handler(|err, _req| {
            let msg = match &err {
                actix_web::error::JsonPayloadError::Overflow { .. }
                | actix_web::error::JsonPayloadError::OverflowKnownLength { .. } => {
                    return ApiError::new(
                        actix_web::http::StatusCode::PAYLOAD_TOO_LARGE,
                        "GENERAL::PAYLOAD_TOO_LARGE",
                        err.to_string(),
                    )
                    .into();
                }
                actix_web::error::JsonPayloadError::Payload(p) if deadline::is_timeout(p) => {
                    return ApiError::new(
                        actix_web::http::StatusCode::REQUEST_TIMEOUT,
                        "GENERAL::REQUEST_TIMEOUT",
                        p.to_string(),
                    )
                    .into();
                }
                actix_web::error::JsonPayloadError::Deserialize(e) => {
                    format!("Invalid request body: {e}")
                }
                other => format!("Invalid request body: {other}"),
            };
            ApiError::validation(msg).into()
        });
    let path = web::PathConfig::default()
        .error_handler(|err, _req| ApiError::validation(format!("Invalid path: {err}")).into());
    cfg.service(
        web::scope("")
            .app_data(state)
            .app_data(json)
            .app_data(path)
            .wrap(actix_web::middleware::from_fn(
                middleware::lifecycle_middleware,
            ))
            .wrap(actix_web::middleware::from_fn(crate::metrics::api::track))
            .route("/health", web::get().to(misc::health))
            .route("/version", web::get().to(misc::version))
            .route("/openapi.json", web::get().to(openapi_json))
            .service(
                web::scope("/v1")
                    .route("/metrics/events", web::post().to(misc::metrics_event))
                    .configure(shared_routes)
                    .default_service(web::to(not_found)),
            )
            .configure(shared_routes)
            .default_service(web::to(not_found)),
    );
}
