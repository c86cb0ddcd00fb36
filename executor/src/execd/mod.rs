//! The execd-compatible API (port 44772).

pub mod commands;
pub mod dirs;
pub mod fileinfo;
pub mod files;
pub mod metrics;
pub mod proxy;
pub mod pty;
pub mod query;
pub mod routes;
pub mod session;
pub mod state;
pub mod transfer;

use actix_web::{App, HttpServer, middleware, web};

/// Stream events are small writes; without TCP_NODELAY Nagle's algorithm holds them back.
pub fn no_delay(conn: &dyn std::any::Any, _ext: &mut actix_web::dev::Extensions) {
    if let Some(tcp) = conn.downcast_ref::<actix_web::rt::net::TcpStream>() {
        let _ = tcp.set_nodelay(true);
    }
}

/// Builds the execd HTTP server on an already bound listener.
pub fn server(
    state: state::Shared,
    listener: std::net::TcpListener,
) -> std::io::Result<actix_web::dev::Server> {
    let data = web::Data::new(state);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .app_data(web::PayloadConfig::new(8 * 1024 * 1024))
            .wrap(middleware::from_fn(routes::auth))
            .configure(routes::configure)
    })
    .on_connect(no_delay)
    // Clients trickling their headers (slow-loris) are cut off.
    .client_request_timeout(std::time::Duration::from_secs(10))
    .workers(
        std::thread::available_parallelism()
            .map_or(2, |n| n.get())
            .max(2),
    )
    .disable_signals()
    .listen(listener)?
    .run();
    Ok(server)
}
