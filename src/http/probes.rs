//! `/healthz`, `/readyz` and `/metrics`.

use std::net::SocketAddr;
use std::sync::Arc;

use actix_web::{App, HttpResponse, HttpServer, web};

use crate::cache::Cache;
use crate::metrics;

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("ok")
}

async fn readyz(cache: web::Data<Arc<Cache>>) -> HttpResponse {
    // Followers are ready too: readiness means the cache is synced, not leadership, so a
    // rolling update never waits on a replica that is not the leader.
    if cache.is_synced() {
        HttpResponse::Ok().content_type("text/plain").body("ok")
    } else {
        HttpResponse::ServiceUnavailable()
            .content_type("text/plain")
            .body("cache not synced")
    }
}

async fn metrics_text(cache: web::Data<Arc<Cache>>) -> HttpResponse {
    let stats = cache.stats();
    let m = metrics::get();
    m.cache_objects
        .with_label_values(&["pool"])
        .set(stats.pools as i64);
    m.cache_objects
        .with_label_values(&["batchsandbox"])
        .set(stats.sandboxes as i64);
    m.cache_objects
        .with_label_values(&["pod"])
        .set(stats.pods as i64);
    m.cache_pod_bytes.set(stats.pod_bytes as i64);
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(metrics::render())
}

/// Serves the probes on `addr`.
pub fn probe_server(
    addr: SocketAddr,
    cache: Arc<Cache>,
) -> std::io::Result<actix_web::dev::Server> {
    let data = web::Data::new(cache);
    Ok(HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .route("/healthz", web::get().to(healthz))
            .route("/readyz", web::get().to(readyz))
    })
    .workers(1)
    .disable_signals()
    .bind(addr)?
    .run())
}

/// Serves `/metrics` on `addr`, over TLS when `tls` is given.
pub fn metrics_server(
    addr: SocketAddr,
    cache: Arc<Cache>,
    tls: Option<rustls::ServerConfig>,
) -> std::io::Result<actix_web::dev::Server> {
    let data = web::Data::new(cache);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .route("/metrics", web::get().to(metrics_text))
    })
    .workers(1)
    .disable_signals();
    let server = match tls {
        Some(config) => server.bind_rustls_0_23(addr, config)?,
        None => server.bind(addr)?,
    };
    Ok(server.run())
}
